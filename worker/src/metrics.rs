//! The process's Prometheus registry (API nodes and workers alike: each process serves its
//! own, Prometheus sums them) and the counters of decoding, which happens in the executor.

use std::sync::LazyLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// This process's registry, every name prefixed `tessera_` (with the process collector:
/// memory, CPU, open files).
pub static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let r = Registry::new_custom(Some("tessera".into()), None).unwrap_or_default();
    #[cfg(target_os = "linux")]
    let _ = r.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ));
    r
});

/// A counter with labels, registered.
pub fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .expect("metric definitions are static and valid");
    // Registering fails only for a duplicate name, which would leave it unexported.
    let _ = REGISTRY.register(Box::new(c.clone()));
    c
}

/// A counter, registered.
pub fn counter(name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("metric definitions are static and valid");
    let _ = REGISTRY.register(Box::new(c.clone()));
    c
}

/// A gauge, registered.
pub fn gauge(name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("metric definitions are static and valid");
    let _ = REGISTRY.register(Box::new(g.clone()));
    g
}

/// A gauge with labels, registered.
pub fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)
        .expect("metric definitions are static and valid");
    let _ = REGISTRY.register(Box::new(g.clone()));
    g
}

/// A histogram of seconds, registered.
pub fn seconds(name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let buckets = vec![
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .expect("metric definitions are static and valid");
    let _ = REGISTRY.register(Box::new(h.clone()));
    h
}

/// Chunks (array blocks and table partitions) decoded by this process: every cache miss
/// that reached a decoder counts once, whichever node or worker it ran on.
pub static CHUNK_DECODES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "chunk_decodes_total",
        "Chunks (array blocks, table partitions) decoded by this process",
    )
});

/// Native array blocks decoded, by data source mimetype.
pub static BLOCKS_DECODED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "blocks_decoded_total",
        "Native array blocks (chunks) decoded, by data source mimetype",
        &["mimetype"],
    )
});

/// Array selections and table exports read and encoded in one job, by media type.
pub static ENCODES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "encodes_total",
        "Array selections and table exports read and encoded in one job, by media type",
        &["media"],
    )
});

/// Table partitions read, by data source mimetype.
pub static PARTITIONS_READ: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "partitions_read_total",
        "Table partitions read, by data source mimetype",
        &["mimetype"],
    )
});

/// Jobs a worker took from NATS, by kind (`block`, `partition`) and outcome (`done`,
/// `failed`, `expired`, `busy`, `error`).
pub static WORKER_JOBS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "worker_jobs_total",
        "Jobs taken by this worker, by kind and outcome",
        &["kind", "outcome"],
    )
});

/// How long a worker took from receiving a job to replying, by kind.
pub static WORKER_JOB_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    seconds(
        "worker_job_seconds",
        "Seconds from a job's arrival at a worker to its reply, by kind",
        &["kind"],
    )
});

/// Jobs this worker holds (waiting for a decode slot or running).
pub static WORKER_JOBS_HELD: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "worker_jobs_held",
        "Jobs this worker holds, waiting for a decode slot or running",
    )
});

/// 1, labelled with this build's version: which version every process runs.
pub static BUILD_INFO: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    let g = gauge_vec(
        "build_info",
        "Always 1, labelled with the version of this process's build",
        &["version"],
    );
    g.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    g
});

/// The registry in Prometheus' text format, the decode and worker metrics listed even
/// before they first count.
pub fn render() -> Vec<u8> {
    LazyLock::force(&BUILD_INFO);
    LazyLock::force(&CHUNK_DECODES);
    LazyLock::force(&BLOCKS_DECODED);
    LazyLock::force(&PARTITIONS_READ);
    LazyLock::force(&WORKER_JOBS);
    LazyLock::force(&WORKER_JOB_SECONDS);
    LazyLock::force(&WORKER_JOBS_HELD);
    let mut out = Vec::new();
    // The text encoder writes into a Vec and cannot fail.
    let _ = TextEncoder::new().encode(&REGISTRY.gather(), &mut out);
    out
}
