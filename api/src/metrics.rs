//! Prometheus metrics of this process, served at `/metrics` in the text format: the cache
//! tiers, jobs sent to workers and admission here; decoding is counted where it happens (the
//! executor, in `tessera_worker::metrics`), so a test or an operator can see exactly how many
//! native chunks a request made tessera read.

use std::sync::LazyLock;

use prometheus::{HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec};
use tessera_worker::metrics::{counter, counter_vec, gauge, gauge_vec, seconds};

/// Requests answered, by endpoint (a route name, never the path), method and status.
pub static HTTP_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "http_requests_total",
        "Requests answered, by endpoint (route name), method and status code",
        &["endpoint", "method", "status"],
    )
});

/// Seconds from a request's arrival to its response's headers, by endpoint and method.
pub static HTTP_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    seconds(
        "http_request_duration_seconds",
        "Seconds from a request's arrival to its response headers, by endpoint and method",
        &["endpoint", "method"],
    )
});

/// Response body bytes sent, by endpoint, media type and content encoding.
pub static HTTP_RESPONSE_BYTES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "http_response_bytes_total",
        "Response body bytes sent, by endpoint, media type (format) and content encoding",
        &["endpoint", "format", "encoding"],
    )
});

/// Entries a cache pushed out to make room, by cache (`chunk`, `encoded`).
pub static CACHE_EVICTIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "cache_evictions_total",
        "Entries this process's caches pushed out to make room, by cache (chunk, encoded)",
        &["cache"],
    )
});

/// Bytes held by this process's caches, by cache.
pub static CACHE_BYTES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "cache_bytes",
        "Bytes held by this process's caches, by cache (chunk, encoded)",
        &["cache"],
    )
});

/// Jobs this node has at workers now.
pub static JOBS_IN_FLIGHT: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "jobs_in_flight",
        "Jobs this node has sent to workers and not yet had answered",
    )
});

/// Seconds catalog operations took, by operation.
pub static CATALOG_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    seconds(
        "catalog_query_seconds",
        "Seconds catalog operations took, by operation (get, search, distinct, create, ...)",
        &["op"],
    )
});

/// Connections of the catalog's pool, by state (`in_use`, `idle`, `max`).
pub static CATALOG_POOL: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "catalog_pool_connections",
        "Connections of the catalog database pool, by state (in_use, idle, max)",
        &["state"],
    )
});

/// 1 while this node accepts traffic, 0 while it starts or drains.
pub static READY: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "ready",
        "1 while this node is ready for traffic, 0 while it is starting or draining",
    )
});

/// Chunk-cache lookups answered by a tier (`l1` in this process, `l2` the shared store).
pub static CHUNK_CACHE_HITS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "chunk_cache_hits_total",
        "Chunk-cache lookups answered by a tier (l1: this process, l2: the shared store)",
        &["tier"],
    )
});

/// Chunk-cache lookups a tier did not answer. An `l2` miss is counted by the node that then
/// produces the chunk; nodes that wait for it count a coalesced wait and then a hit.
pub static CHUNK_CACHE_MISSES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "chunk_cache_misses_total",
        "Chunk-cache lookups a tier did not answer",
        &["tier"],
    )
});

/// Misses that waited for a production already under way: on this node (`node`) or on
/// another (`cluster`).
pub static COALESCED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "chunk_coalesced_waits_total",
        "Cache misses that waited for a production already under way, by where it ran",
        &["scope"],
    )
});

/// Encoded-response lookups (PNG, JSON, Arrow... by ETag) answered by a tier.
pub static ENCODED_CACHE_HITS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "encoded_cache_hits_total",
        "Encoded-response lookups answered by a tier (l1: this process, l2: the shared store)",
        &["tier"],
    )
});

/// Encoded-response lookups a tier did not answer.
pub static ENCODED_CACHE_MISSES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "encoded_cache_misses_total",
        "Encoded-response lookups a tier did not answer",
        &["tier"],
    )
});

/// Failed operations on the shared store (each served uncached or retried).
pub static SHARED_STORE_ERRORS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "shared_store_errors_total",
        "Operations on the shared store (Redis) that failed",
    )
});

/// Jobs sent to workers, by outcome (`done`, `failed`, `retried`, `gave_up`,
/// `inline_fallback`).
pub static JOBS_SENT: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "jobs_sent_total",
        "Jobs this node sent to workers, by outcome",
        &["outcome"],
    )
});

/// Requests being handled (their response bodies included).
pub static REQUESTS_IN_FLIGHT: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "requests_in_flight",
        "Requests being handled, until their response body is sent",
    )
});

/// Bytes reserved for request and response bodies and buffers in flight.
pub static BYTES_IN_FLIGHT: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "bytes_in_flight",
        "Bytes reserved for bodies and buffers of requests in flight",
    )
});

/// Requests waiting for their bytes to fit in the budget.
pub static WAITING_FOR_BYTES: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "requests_waiting_for_bytes",
        "Requests waiting for room in the bytes-in-flight budget",
    )
});

/// Requests refused by a limit, by the limit (`requests`, `bytes`, `body`, `decoded`, ...).
pub static REFUSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "requests_refused_total",
        "Requests refused by a limit, by the limit that refused them",
        &["limit"],
    )
});

/// The text exposition of every metric of this process.
pub fn render() -> Vec<u8> {
    LazyLock::force(&HTTP_REQUESTS);
    LazyLock::force(&HTTP_DURATION);
    LazyLock::force(&HTTP_RESPONSE_BYTES);
    LazyLock::force(&CACHE_EVICTIONS);
    LazyLock::force(&CACHE_BYTES);
    LazyLock::force(&JOBS_IN_FLIGHT);
    LazyLock::force(&CATALOG_SECONDS);
    LazyLock::force(&CATALOG_POOL);
    LazyLock::force(&READY);
    LazyLock::force(&CHUNK_CACHE_HITS);
    LazyLock::force(&CHUNK_CACHE_MISSES);
    LazyLock::force(&COALESCED);
    LazyLock::force(&ENCODED_CACHE_HITS);
    LazyLock::force(&ENCODED_CACHE_MISSES);
    LazyLock::force(&SHARED_STORE_ERRORS);
    LazyLock::force(&JOBS_SENT);
    LazyLock::force(&REQUESTS_IN_FLIGHT);
    LazyLock::force(&BYTES_IN_FLIGHT);
    LazyLock::force(&WAITING_FOR_BYTES);
    LazyLock::force(&REFUSED);
    tessera_worker::metrics::render()
}

/// An entry left cache `cache` (`chunk` or `encoded`); counted when pushed out for room.
pub fn cache_lost(cache: &str, cause: moka::notification::RemovalCause) {
    if cause == moka::notification::RemovalCause::Size {
        CACHE_EVICTIONS.with_label_values(&[cache]).inc();
    }
}

/// The gauges read from the node's parts when metrics are scraped (not kept up to date on
/// every request): the bytes its caches hold and the catalog pool's use.
pub async fn read_node(state: &crate::state::AppState) {
    let set = |g: &IntGaugeVec, label: &str, n: u64| {
        g.with_label_values(&[label])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    };
    set(&CACHE_BYTES, "chunk", state.cache.held_bytes().await);
    set(&CACHE_BYTES, "encoded", state.encoded.held_bytes().await);
    if let Some(p) = state.catalog.pool_status() {
        set(&CATALOG_POOL, "in_use", p.in_use as u64);
        set(&CATALOG_POOL, "idle", p.idle as u64);
        set(&CATALOG_POOL, "max", p.max as u64);
    }
}

/// Counts an answered request (`endpoint`, `method`, its status and the time to its
/// headers), and its body's bytes as they are sent.
pub fn count_request(
    endpoint: &'static str,
    method: &'static str,
    started: std::time::Instant,
    resp: axum::response::Response,
) -> axum::response::Response {
    use axum::http::header;
    let status = resp.status();
    HTTP_REQUESTS
        .with_label_values(&[endpoint, method, status.as_str()])
        .inc();
    HTTP_DURATION
        .with_label_values(&[endpoint, method])
        .observe(started.elapsed().as_secs_f64());
    let header_text = |name| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    // The media type without parameters; the set is the server's own, so it stays small.
    let format = match header_text(header::CONTENT_TYPE)
        .split(';')
        .next()
        .map(str::trim)
    {
        Some(t) if !t.is_empty() => t,
        _ => "none",
    };
    let encoding = match header_text(header::CONTENT_ENCODING) {
        "" => "identity",
        "gzip" => "gzip",
        "zstd" => "zstd",
        "br" => "br",
        "deflate" => "deflate",
        _ => "other",
    };
    let counter = HTTP_RESPONSE_BYTES.with_label_values(&[endpoint, format, encoding]);
    let (parts, body) = resp.into_parts();
    axum::response::Response::from_parts(parts, CountedBody::wrap(body, counter))
}

/// A response body that adds the bytes of each frame it hands out to a counter.
struct CountedBody {
    inner: axum::body::Body,
    counter: IntCounter,
}

impl CountedBody {
    fn wrap(inner: axum::body::Body, counter: IntCounter) -> axum::body::Body {
        // A body whose size is known is counted at once, without a wrapper.
        if let Some(n) = http_body::Body::size_hint(&inner).exact() {
            counter.inc_by(n);
            return inner;
        }
        axum::body::Body::new(CountedBody { inner, counter })
    }
}

impl http_body::Body for CountedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.counter.inc_by(data.len() as u64);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
