//! Admission control of one node: at most `max_in_flight_requests` requests at once, and at
//! most `max_bytes_in_flight` bytes of request and response bodies held in memory. A request
//! over the first limit is refused at once (503 with Retry-After); one whose bytes do not fit
//! waits a bounded time for others to finish, then is refused the same way. Nothing queues
//! without a bound.
//!
//! Both permits live as long as the response body (see [`Held`]): a 300 MB answer counts
//! until its last byte has left, not only until its handler returned.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;
use crate::metrics;

/// Bytes are counted in units of this many (a semaphore takes at most `u32` permits at once).
const UNIT: u64 = 1024;
/// What a refused client is told to wait before trying again, in seconds.
const RETRY_AFTER_SECS: u32 = 2;

/// The node's admission state.
pub struct Admission {
    requests: Arc<Semaphore>,
    max_requests: usize,
    bytes: Arc<Semaphore>,
    max_units: u64,
    wait: Duration,
}

/// A place among the requests in flight.
pub struct RequestSlot(#[allow(dead_code)] OwnedSemaphorePermit);

/// Bytes reserved for one request's bodies and buffers.
pub struct Reservation {
    _permit: OwnedSemaphorePermit,
    units: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        metrics::BYTES_IN_FLIGHT.sub((self.units * UNIT) as i64);
    }
}

impl Drop for RequestSlot {
    fn drop(&mut self) {
        metrics::REQUESTS_IN_FLIGHT.dec();
    }
}

impl Admission {
    /// At most `max_requests` requests and `max_bytes` bytes in flight; a request waits at
    /// most `wait` for bytes.
    pub fn new(max_requests: usize, max_bytes: u64, wait: Duration) -> Self {
        let max_units = (max_bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS as u64);
        Admission {
            requests: Arc::new(Semaphore::new(max_requests.max(1))),
            max_requests: max_requests.max(1),
            bytes: Arc::new(Semaphore::new(max_units as usize)),
            max_units,
            wait,
        }
    }

    /// The largest reservation that can ever be granted, in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_units * UNIT
    }

    /// A place for one more request, or 503 if the node is full.
    pub fn admit(&self) -> Result<RequestSlot, ApiError> {
        match self.requests.clone().try_acquire_owned() {
            Ok(p) => {
                metrics::REQUESTS_IN_FLIGHT.inc();
                Ok(RequestSlot(p))
            }
            Err(_) => {
                metrics::REFUSED.with_label_values(&["requests"]).inc();
                Err(overloaded(format!(
                    "this server is handling its limit of {} requests at once \
                     (max_in_flight_requests); retry after {RETRY_AFTER_SECS} s",
                    self.max_requests
                )))
            }
        }
    }

    /// Reserves `bytes` of memory for `what`, waiting for other requests to release theirs
    /// at most the configured time. A request larger than the whole budget is granted the
    /// whole budget (it runs alone); the per-request limits keep such requests rare.
    pub async fn reserve(&self, bytes: u64, what: &str) -> Result<Reservation, ApiError> {
        let units = bytes.div_ceil(UNIT).clamp(1, self.max_units);
        let n = u32::try_from(units).unwrap_or(u32::MAX);
        let sem = self.bytes.clone();
        let permit = match sem.clone().try_acquire_many_owned(n) {
            Ok(p) => p,
            Err(_) => {
                metrics::WAITING_FOR_BYTES.inc();
                let got = tokio::time::timeout(self.wait, sem.acquire_many_owned(n)).await;
                metrics::WAITING_FOR_BYTES.dec();
                match got {
                    Ok(Ok(p)) => p,
                    _ => {
                        metrics::REFUSED.with_label_values(&["bytes"]).inc();
                        return Err(overloaded(format!(
                            "{what} needs {} MiB of memory and this server's budget of {} MiB \
                             for bodies in flight (max_bytes_in_flight) stayed full for {} s; \
                             retry after {RETRY_AFTER_SECS} s, or ask for a smaller slice",
                            bytes.div_ceil(1 << 20),
                            self.max_bytes() >> 20,
                            self.wait.as_secs()
                        )));
                    }
                }
            }
        };
        metrics::BYTES_IN_FLIGHT.add((units * UNIT) as i64);
        Ok(Reservation {
            _permit: permit,
            units,
        })
    }
}

/// 503 Service Unavailable with Retry-After.
fn overloaded(detail: String) -> ApiError {
    ApiError::unavailable(detail, RETRY_AFTER_SECS)
}

/// What a request holds until its response body is gone.
#[derive(Default)]
pub struct Holds {
    pub slot: Option<RequestSlot>,
    pub reservations: Vec<Reservation>,
}

/// A response body that keeps the request's [`Holds`] until it is sent or dropped. The
/// server drops a body once it has taken its last frame, so frames are cut to [`FRAME`]
/// bytes (zero-copy slices): the holds go with the last megabyte, not with the first frame
/// of a 300 MB answer.
pub struct Held {
    inner: Body,
    /// The rest of a large frame, still to be handed out.
    rest: Bytes,
    _holds: Holds,
}

/// The largest frame a held body hands out.
const FRAME: usize = 1 << 20;

impl Held {
    /// `inner`, holding `holds` for as long as it lives.
    pub fn wrap(inner: Body, holds: Holds) -> Body {
        Body::new(Held {
            inner,
            rest: Bytes::new(),
            _holds: holds,
        })
    }

    fn next_piece(&mut self) -> http_body::Frame<Bytes> {
        let n = self.rest.len().min(FRAME);
        http_body::Frame::data(self.rest.split_to(n))
    }
}

impl HttpBody for Held {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if !self.rest.is_empty() {
            return Poll::Ready(Some(Ok(self.next_piece())));
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) if data.len() > FRAME => {
                    self.rest = data;
                    Poll::Ready(Some(Ok(self.next_piece())))
                }
                Ok(data) => Poll::Ready(Some(Ok(http_body::Frame::data(data)))),
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let inner = self.inner.size_hint();
        let rest = self.rest.len() as u64;
        let mut hint = http_body::SizeHint::new();
        hint.set_lower(inner.lower() + rest);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + rest);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[tokio::test]
    async fn requests_over_the_limit_are_refused_at_once() {
        let a = Admission::new(2, 1 << 20, Duration::from_millis(10));
        let one = a.admit().unwrap();
        let _two = a.admit().unwrap();
        let e = a.admit().err().unwrap();
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.retry_after, Some(RETRY_AFTER_SECS));
        assert!(e.detail.contains("max_in_flight_requests"), "{}", e.detail);
        drop(one);
        assert!(a.admit().is_ok());
    }

    #[tokio::test]
    async fn bytes_wait_for_release_then_time_out() {
        let a = Arc::new(Admission::new(8, 1 << 20, Duration::from_millis(200)));
        let big = a.reserve(700 << 10, "the first").await.unwrap();
        // Does not fit beside `big`: waits, and gets it once `big` is released.
        let a2 = a.clone();
        let waiter = tokio::spawn(async move { a2.reserve(700 << 10, "the second").await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        drop(big);
        let second = waiter.await.unwrap().unwrap();
        // Nothing is released now: the third times out with a 503 naming the setting.
        let e = a.reserve(700 << 10, "the third").await.err().unwrap();
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(e.detail.contains("max_bytes_in_flight"), "{}", e.detail);
        drop(second);
        // A reservation larger than the budget gets the whole budget rather than never.
        assert!(a.reserve(10 << 20, "a huge one").await.is_ok());
    }

    #[tokio::test]
    async fn a_held_body_hands_out_large_frames_in_pieces_of_known_total_size() {
        use http_body_util::BodyExt;
        let data = Bytes::from(vec![7u8; 2 * FRAME + 5]);
        let mut body = Held::wrap(Body::from(data.clone()), Holds::default());
        assert_eq!(body.size_hint().exact(), Some(data.len() as u64));
        let mut sizes = Vec::new();
        let mut got = Vec::new();
        while let Some(frame) = body.frame().await {
            let chunk = frame.unwrap().into_data().unwrap();
            sizes.push(chunk.len());
            got.extend_from_slice(&chunk);
        }
        assert_eq!(sizes, vec![FRAME, FRAME, 5]);
        assert_eq!(got, data.to_vec());
    }

    #[tokio::test]
    async fn a_held_body_keeps_its_reservation_until_dropped() {
        let a = Admission::new(8, 1 << 20, Duration::from_millis(10));
        let r = a.reserve(1 << 20, "a body").await.unwrap();
        let body = Held::wrap(
            Body::from("x"),
            Holds {
                slot: None,
                reservations: vec![r],
            },
        );
        assert!(a.reserve(1 << 10, "another").await.is_err());
        drop(body);
        assert!(a.reserve(1 << 10, "another").await.is_ok());
    }
}
