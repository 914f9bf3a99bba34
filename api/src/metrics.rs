//! Prometheus metrics of this process, served at `/metrics` in the text format: the cache
//! tiers, jobs sent to workers and admission here; decoding is counted where it happens (the
//! executor, in `tessera_worker::metrics`), so a test or an operator can see exactly how many
//! native chunks a request made tessera read.

use std::sync::LazyLock;

use prometheus::{IntCounter, IntCounterVec, IntGauge};
use tessera_worker::metrics::{counter, counter_vec, gauge};

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
