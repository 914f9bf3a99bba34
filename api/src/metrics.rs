//! Prometheus metrics of this process, served at `/metrics` in the text format. Decoding is
//! counted where it happens (the dispatcher), by data source type, so a test or an operator
//! can see exactly how many native chunks a request made tessera read.

use std::sync::LazyLock;

use prometheus::{Encoder, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// This process's registry (with the process collector: memory, CPU, open files).
pub static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let r = Registry::new_custom(Some("tessera".into()), None).unwrap_or_default();
    #[cfg(target_os = "linux")]
    let _ = r.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ));
    r
});

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .expect("metric definitions are static and valid");
    // Registering fails only for a duplicate name, which would leave it unexported.
    let _ = REGISTRY.register(Box::new(c.clone()));
    c
}

/// Native array blocks decoded (after a chunk-cache miss), by data source mimetype.
pub static BLOCKS_DECODED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "blocks_decoded_total",
        "Native array blocks (chunks) decoded, by data source mimetype",
        &["mimetype"],
    )
});

/// Table partitions read, by data source mimetype.
pub static PARTITIONS_READ: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "partitions_read_total",
        "Table partitions read, by data source mimetype",
        &["mimetype"],
    )
});

fn gauge(name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("metric definitions are static and valid");
    let _ = REGISTRY.register(Box::new(g.clone()));
    g
}

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
    counter(
        "requests_refused_total",
        "Requests refused by a limit, by the limit that refused them",
        &["limit"],
    )
});

/// The text exposition of every metric.
pub fn render() -> Vec<u8> {
    LazyLock::force(&BLOCKS_DECODED);
    LazyLock::force(&PARTITIONS_READ);
    LazyLock::force(&REQUESTS_IN_FLIGHT);
    LazyLock::force(&BYTES_IN_FLIGHT);
    LazyLock::force(&WAITING_FOR_BYTES);
    LazyLock::force(&REFUSED);
    let mut out = Vec::new();
    let _ = TextEncoder::new().encode(&REGISTRY.gather(), &mut out);
    out
}
