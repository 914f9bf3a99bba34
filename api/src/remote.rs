//! Jobs on workers, over NATS (see `tessera_worker::protocol`). A job goes to the workers'
//! queue group; the worker that takes it answers on this node's inbox at once, keeps saying
//! it is alive, and leaves the result in the shared store. No taker within a second (no worker
//! running), silence for `worker_timeout` (a worker killed mid-job), `busy` or a worker-side
//! error sends the job once more (NATS gives it to any worker of the group); then, or at once
//! while NATS is unreachable, the configured fallback applies.

use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, HeaderMap};
use async_trait::async_trait;
use futures::StreamExt;
use tessera_common::jobs::{ChunkKey, Job};
use tessera_worker::protocol::{self, DEADLINE_HEADER, JobRequest, Reply};
use tessera_worker::store::SharedStore;
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::cache::{InlineRunner, JobRunner, Produced};
use crate::config::Fallback;
use crate::error::ApiError;
use crate::metrics;

/// How long results meant only for the asking node stay in the shared store if it never
/// collects them.
const TRANSIT_TTL: Duration = Duration::from_secs(60);
/// Sends of one job: the first and one retry.
const ATTEMPTS: usize = 2;
/// How long a sent job waits for a worker to take it.
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(1);

/// Runs jobs on the workers.
pub struct Remote {
    pub nats: Client,
    pub store: SharedStore,
    pub prefix: String,
    /// Whether results are kept in the shared store for every node (the L2 tier is on); if
    /// not, they only travel through it and are removed once read.
    pub keep: bool,
    pub ttl: Duration,
    /// Silence from a worker longer than this sends the job again.
    pub timeout: Duration,
    /// How long a job may take in all: its deadline, told to the worker.
    pub deadline: Duration,
    /// Jobs this node has at workers at once.
    pub permits: Arc<Semaphore>,
    /// How long a job waits for a permit before the node answers 503.
    pub permit_wait: Duration,
    pub fallback: Fallback,
    /// The runner of the fallback (and of jobs when the shared store fails).
    pub inline: InlineRunner,
}

/// How one send of a job ended.
enum Outcome {
    Done(Produced),
    /// The data cannot be read: the client's answer, no retry.
    Failed(ApiError),
    /// No result from this send; why, for the log.
    Retry(String),
}

impl Remote {
    /// Sends `job` once and follows the worker's replies.
    async fn attempt(&self, key: &ChunkKey, job: &Job) -> Outcome {
        let (store_as, ttl) = if self.keep {
            (key.shared_key(&self.prefix), self.ttl)
        } else {
            let transit = uuid::Uuid::new_v4().simple();
            (format!("{}:r:{transit}", self.prefix), TRANSIT_TTL)
        };
        let request = JobRequest {
            job: job.clone(),
            store_as,
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
        };
        let payload = match serde_json::to_vec(&request) {
            Ok(p) => p,
            Err(e) => return Outcome::Failed(ApiError::internal(format!("a job: {e}"))),
        };
        let inbox = self.nats.new_inbox();
        let mut replies = match self.nats.subscribe(inbox.clone()).await {
            Ok(s) => s,
            Err(e) => return Outcome::Retry(format!("NATS: {e}")),
        };
        let mut headers = HeaderMap::new();
        let deadline = protocol::now_ms()
            .saturating_add(u64::try_from(self.deadline.as_millis()).unwrap_or(u64::MAX));
        headers.insert(DEADLINE_HEADER, deadline.to_string().as_str());
        // The worker's spans join this request's trace.
        tessera_worker::trace::inject(&mut headers);
        if let Err(e) = self
            .nats
            .publish_with_reply_and_headers(
                protocol::jobs_subject(&self.prefix),
                inbox,
                headers,
                payload.into(),
            )
            .await
        {
            return Outcome::Retry(format!("NATS: {e}"));
        }
        // A worker that takes the job says so at once: the first word is awaited only briefly,
        // so a job sent when no worker is listening is sent again (or falls back) quickly.
        let mut wait = self.timeout.min(ACCEPT_TIMEOUT);
        loop {
            let msg = match tokio::time::timeout(wait, replies.next()).await {
                Ok(Some(msg)) => msg,
                Ok(None) => return Outcome::Retry("the reply subscription ended".into()),
                Err(_) => {
                    return Outcome::Retry(format!(
                        "no word from a worker for {} s",
                        wait.as_secs_f64()
                    ));
                }
            };
            let reply: Reply = match serde_json::from_slice(&msg.payload) {
                Ok(r) => r,
                Err(e) => return Outcome::Retry(format!("a reply is not understood: {e}")),
            };
            match reply {
                Reply::Accepted | Reply::Working => {
                    wait = self.timeout;
                    continue;
                }
                Reply::Done { key: at, len } => {
                    let got = self.store.get(&at).await;
                    if !self.keep {
                        let _ = self.store.delete(&at).await;
                    }
                    return match got {
                        Ok(Some(bytes)) if bytes.len() as u64 == len => Outcome::Done(Produced {
                            bytes,
                            shared: self.keep,
                        }),
                        Ok(_) => {
                            Outcome::Retry("the result left in the shared store is gone".into())
                        }
                        Err(e) => Outcome::Retry(format!("the shared store: {e}")),
                    };
                }
                Reply::Failed { error } => return Outcome::Failed(error.into()),
                Reply::Busy => return Outcome::Retry("the worker is busy".into()),
                Reply::Expired => return Outcome::Retry("the job's deadline passed".into()),
                Reply::Error { detail } => return Outcome::Retry(detail),
            }
        }
    }
}

/// Counts a job in `tessera_jobs_in_flight` while it lives.
struct JobInFlight;

impl JobInFlight {
    fn new() -> Self {
        metrics::JOBS_IN_FLIGHT.inc();
        JobInFlight
    }
}

impl Drop for JobInFlight {
    fn drop(&mut self) {
        metrics::JOBS_IN_FLIGHT.dec();
    }
}

#[async_trait]
impl JobRunner for Remote {
    async fn run(&self, key: &ChunkKey, job: &Job) -> Result<Produced, ApiError> {
        let _permit = match tokio::time::timeout(
            self.permit_wait,
            self.permits.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(p)) => p,
            _ => {
                metrics::REFUSED.with_label_values(&["jobs"]).inc();
                return Err(ApiError::unavailable(
                    "this node has as many jobs at workers as it may (max_jobs_in_flight); \
                         try again",
                    1,
                ));
            }
        };
        let mut why = String::from("NATS is unreachable");
        let connected = self.nats.connection_state() == async_nats::connection::State::Connected;
        let _in_flight = JobInFlight::new();
        for attempt in (0..ATTEMPTS).filter(|_| connected) {
            let span = tracing::info_span!("job.dispatch", otel.kind = "producer", attempt);
            match self.attempt(key, job).instrument(span).await {
                Outcome::Done(p) => {
                    metrics::JOBS_SENT.with_label_values(&["done"]).inc();
                    return Ok(p);
                }
                Outcome::Failed(e) => {
                    metrics::JOBS_SENT.with_label_values(&["failed"]).inc();
                    return Err(e);
                }
                Outcome::Retry(w) => {
                    metrics::JOBS_SENT
                        .with_label_values(&[if attempt + 1 < ATTEMPTS {
                            "retried"
                        } else {
                            "gave_up"
                        }])
                        .inc();
                    tracing::warn!("a job at the workers came to nothing: {w}");
                    why = w;
                }
            }
        }
        match self.fallback {
            Fallback::Inline => {
                metrics::JOBS_SENT
                    .with_label_values(&["inline_fallback"])
                    .inc();
                self.inline.run(key, job).await
            }
            Fallback::Unavailable => Err(ApiError::unavailable(
                format!("no worker could decode this chunk ({why}); try again"),
                2,
            )),
        }
    }
}
