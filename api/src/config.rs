//! The server configuration: `Settings`, the one documented serde struct behind every setting
//! (the `tessera:` key of a config file, and what the `serve` flags build), and `Config`, the
//! typed form the server runs on. Names follow Tiled's configuration where the concept is the
//! same.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Settings of one API node, as the server uses them. Built from `Settings` (and, for the
/// keys Tiled also has, from the config file's Tiled keys or the CLI flags).
#[derive(Clone, Debug)]
pub struct Config {
    /// Largest uncompressed response body, checked before any data is read (Tiled's name).
    pub response_bytesize_limit: usize,
    /// Bytes of decoded chunks kept in the in-process cache.
    pub cache_bytes: u64,
    /// Bytes of encoded responses (PNG, JSON, Arrow...) kept in memory, keyed by ETag.
    pub encoded_cache_bytes: u64,
    /// Concurrent decode jobs on the blocking pool.
    pub decode_threads: usize,
    /// Largest `page[limit]` a search may ask for.
    pub max_page_limit: usize,
    /// Deadline for producing a response (headers); slower requests get 504.
    pub request_timeout: Duration,
    /// Largest request body of a data upload (PUT/PATCH of array, table and awkward data),
    /// in bytes.
    pub request_bytesize_limit: usize,
    /// Largest request body of every other route (JSON or msgpack documents: metadata,
    /// registration, column lists), in bytes.
    pub document_bytesize_limit: usize,
    /// Requests one node handles at once (response bodies included); more get 503.
    pub max_in_flight_requests: usize,
    /// Bytes of request and response bodies and their buffers one node holds at once; a
    /// request that does not fit waits `admission_wait` for room, then gets 503.
    pub max_bytes_in_flight: u64,
    /// How long a request may wait for room in `max_bytes_in_flight`.
    pub admission_wait: Duration,
    /// Bytes of native chunks one request may make the server decode (or read from the
    /// chunk cache): a thin slice across many large chunks costs all of them.
    pub max_decoded_bytes_per_request: u64,
    /// Native chunks (or table partitions) one request may touch.
    pub max_chunks_per_request: usize,
    /// Search filters one request may give.
    pub max_filters: usize,
    /// Metadata keys one `distinct` request may ask for.
    pub max_distinct_keys: usize,
    /// Sort keys one search may give.
    pub max_sort_keys: usize,
    /// Deadline of one catalog statement (PostgreSQL `statement_timeout`; SQLite is
    /// interrupted after it).
    pub statement_timeout: Duration,
    /// The single-user API key; `None` serves everyone without one.
    pub api_key: Option<String>,
    /// With an API key: whether reads are open to anonymous clients.
    pub public: bool,
    /// Directories whose files may be registered (Tiled's `readable_storage`); canonical
    /// paths. Empty: registration is refused.
    pub readable: Vec<std::path::PathBuf>,
    /// Origins a browser may call the API from (CORS, Tiled's `allow_origins`); `*` is any.
    /// Empty: no CORS headers.
    pub allow_origins: Vec<String>,
    /// Whether `/metrics` and `/api/v1/metrics` are served (Tiled's `metrics.prometheus`).
    pub metrics: bool,
    /// After SIGTERM: how long `/readyz` answers 503 before the listener closes.
    pub shutdown_delay: Duration,
    /// After the listener closes: how long requests in flight get to finish.
    pub shutdown_timeout: Duration,
    /// The cluster's shared parts; `None` runs the embedded shape.
    pub cluster: Option<Cluster>,
    /// Multi-user access (login providers, principals, API keys), started from the config
    /// file's `authentication` and `database` sections; `None`: single-user mode.
    pub auth: Option<std::sync::Arc<crate::auth::Auth>>,
}

/// How a cluster node reaches the shared chunk cache (Redis) and the workers (NATS).
#[derive(Clone, Debug)]
pub struct Cluster {
    /// The shared chunk cache and the way decoded chunks travel from workers (`redis://...`).
    pub redis_url: String,
    /// Where decode jobs go (`nats://...`); `None` decodes on the API node.
    pub nats_url: Option<String>,
    /// Prefix of every Redis key and NATS subject, so that clusters (and test runs) sharing
    /// one Redis and one NATS never meet.
    pub key_prefix: String,
    /// Whether decoded chunks are looked up in (and kept in) Redis. Off, Redis only carries
    /// results from workers to the node that asked.
    pub l2_cache: bool,
    /// How long a chunk stays in Redis after it was stored.
    pub l2_ttl: Duration,
    /// Chunks larger than this are stored in Redis in parts of this size.
    pub l2_part_bytes: usize,
    /// A job whose worker has not been heard from for this long is sent again (once, to
    /// another worker), then the fallback applies.
    pub worker_timeout: Duration,
    /// Jobs one API node has at workers at once; more wait (within `admission_wait`).
    pub max_jobs_in_flight: usize,
    /// What happens when no worker answers.
    pub fallback: Fallback,
}

/// What an API node does when no worker answers a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    /// Decode on the API node itself.
    Inline,
    /// Answer 503 with Retry-After.
    Unavailable,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Plain text, for people.
    Text,
    /// One JSON object a line, for log collectors.
    Json,
}

/// A duration in a config file: a non-negative number of seconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Seconds(f64);

impl Seconds {
    /// `s` seconds; negative or not finite is refused.
    pub fn new(s: f64) -> Result<Self, String> {
        if s.is_finite() && s >= 0.0 {
            Ok(Seconds(s))
        } else {
            Err(format!(
                "{s} is not a duration: give a non-negative number of seconds"
            ))
        }
    }

    /// As a `Duration`.
    pub fn duration(self) -> Duration {
        Duration::from_secs_f64(self.0)
    }

    /// The number of seconds.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Seconds::new(f64::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// tessera's own settings: the `tessera:` key of a config file (every key optional, with the
/// default given here), and what the flags of `tessera serve demo|directory|catalog` build.
/// Durations are seconds. The settings Tiled also has (`response_bytesize_limit`, the API key,
/// `readable_storage`, `allow_origins`) are Tiled's keys of the config file, not these.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Bytes of decoded chunks kept in the in-process cache. Default 1 GiB.
    pub cache_bytes: u64,
    /// Bytes of encoded responses (PNG, JSON, Arrow...) kept in memory, keyed by ETag.
    /// Default 256 MiB.
    pub encoded_cache_bytes: u64,
    /// Concurrent decode jobs on the blocking pool. Default: the number of cores.
    pub decode_threads: usize,
    /// Largest `page[limit]` a search may ask for. Default 300.
    pub max_page_limit: usize,
    /// Seconds to produce a response (headers); slower requests get 504. Default 120.
    pub request_timeout: Seconds,
    /// Largest request body of a data upload, in bytes. Default 1 GiB.
    pub request_bytesize_limit: usize,
    /// Largest request body of every other route (JSON or msgpack documents), in bytes.
    /// Default 32 MiB.
    pub document_bytesize_limit: usize,
    /// Requests one node handles at once; more get 503. Default 1024.
    pub max_in_flight_requests: usize,
    /// Bytes of request and response bodies one node holds at once. Default 1 GiB.
    pub max_bytes_in_flight: u64,
    /// Seconds a request may wait for room in `max_bytes_in_flight`. Default 30.
    pub admission_wait: Seconds,
    /// Bytes of native chunks one request may make the server decode. Default 1 GiB.
    pub max_decoded_bytes_per_request: u64,
    /// Native chunks (or table partitions) one request may touch. Default 100,000.
    pub max_chunks_per_request: usize,
    /// Search filters one request may give. Default 64.
    pub max_filters: usize,
    /// Metadata keys one `distinct` request may ask for. Default 16.
    pub max_distinct_keys: usize,
    /// Sort keys one search may give. Default 8.
    pub max_sort_keys: usize,
    /// Seconds one catalog statement may run. Default 30.
    pub statement_timeout: Seconds,
    /// Seconds after which written data no catalog row points at (what a crash left behind)
    /// is removed at start-up. Default: 0 with SQLite (this process is its only writer),
    /// 3600 with PostgreSQL (other nodes may be writing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orphan_grace: Option<Seconds>,
    /// The Redis of a cluster (`redis://...`): given, the node runs in cluster shape with a
    /// shared chunk cache. Default: none (embedded shape).
    pub redis_url: Option<String>,
    /// Where decode jobs go (`nats://...`); needs `redis_url`. Default: none (decode on the
    /// API node).
    pub nats_url: Option<String>,
    /// Prefix of every Redis key and NATS subject. Default `tessera`.
    pub key_prefix: String,
    /// Whether decoded chunks are kept in Redis. Default true.
    pub l2_cache: bool,
    /// Seconds a chunk stays in Redis. Default 3600.
    pub l2_ttl: Seconds,
    /// Chunks larger than this are stored in Redis in parts of this size. Default 8 MiB.
    pub l2_part_bytes: usize,
    /// Seconds without word from a worker before its job is sent again. Default 5.
    pub worker_timeout: Seconds,
    /// Jobs one API node has at workers at once. Default 256.
    pub max_jobs_in_flight: usize,
    /// When no worker answers: `inline` (decode on the API node) or `unavailable` (503).
    /// Default `inline`.
    pub fallback: Fallback,
    /// Failed logins of one user in a minute before further attempts are refused (429);
    /// one client address may fail ten times as many. Default 10.
    pub login_failures_per_minute: u32,
    /// Seconds between SIGTERM and closing the listener, during which `/readyz` answers 503
    /// so the load balancer stops sending new requests here. Default 0 (give 5 or more
    /// behind a load balancer that polls readiness).
    pub shutdown_delay: Seconds,
    /// Seconds in-flight requests (and jobs) get to finish after the listener closes; the
    /// process then exits. Default 30.
    pub shutdown_timeout: Seconds,
    /// Where traces go: an OTLP/HTTP endpoint such as `http://collector:4318` (the
    /// `/v1/traces` path is added). Default: none, no traces.
    pub otlp_endpoint: Option<String>,
    /// The fraction of requests traced (0 to 1), when `otlp_endpoint` is given. Default 1.
    pub trace_sample_ratio: f64,
    /// Log lines as `text` (for people) or `json` (one object a line, for log collectors).
    /// Default `text`.
    pub log_format: LogFormat,
    /// The tag definitions of `access_control`'s tag-based policy (Tiled's tag YAML, with
    /// group members under `groups:`), read at start-up. Required with a policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_tag_definitions: Option<std::path::PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            cache_bytes: 1 << 30,
            encoded_cache_bytes: 256 << 20,
            decode_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_page_limit: 300,
            request_timeout: Seconds(120.0),
            request_bytesize_limit: 1 << 30,
            document_bytesize_limit: 32 << 20,
            max_in_flight_requests: 1024,
            max_bytes_in_flight: 1 << 30,
            admission_wait: Seconds(30.0),
            max_decoded_bytes_per_request: 1 << 30,
            max_chunks_per_request: 100_000,
            max_filters: 64,
            max_distinct_keys: 16,
            max_sort_keys: 8,
            statement_timeout: Seconds(30.0),
            orphan_grace: None,
            redis_url: None,
            nats_url: None,
            key_prefix: "tessera".into(),
            l2_cache: true,
            l2_ttl: Seconds(3600.0),
            l2_part_bytes: 8 << 20,
            worker_timeout: Seconds(5.0),
            max_jobs_in_flight: 256,
            fallback: Fallback::Inline,
            login_failures_per_minute: 10,
            shutdown_delay: Seconds(0.0),
            shutdown_timeout: Seconds(30.0),
            otlp_endpoint: None,
            trace_sample_ratio: 1.0,
            log_format: LogFormat::Text,
            access_tag_definitions: None,
        }
    }
}

/// Tiled's default of `response_bytesize_limit` (300 MB).
pub const RESPONSE_BYTESIZE_LIMIT: usize = 300_000_000;

impl Settings {
    /// A setting that contradicts another: the key and why.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.nats_url.is_some() && self.redis_url.is_none() {
            return Err((
                "nats_url",
                "workers need the shared Redis: give `redis_url` too".into(),
            ));
        }
        if self.decode_threads == 0 {
            return Err(("decode_threads", "must be at least 1".into()));
        }
        if !(0.0..=1.0).contains(&self.trace_sample_ratio) {
            return Err((
                "trace_sample_ratio",
                format!("{} is not a fraction from 0 to 1", self.trace_sample_ratio),
            ));
        }
        if let Some(url) = &self.otlp_endpoint
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err((
                "otlp_endpoint",
                format!("{url:?} is not an http:// or https:// URL (OTLP over HTTP)"),
            ));
        }
        Ok(())
    }

    /// The node's `Config`: these settings, with Tiled's defaults for the keys Tiled owns
    /// (no API key, no registration, no CORS).
    pub fn config(&self) -> Config {
        Config {
            response_bytesize_limit: RESPONSE_BYTESIZE_LIMIT,
            cache_bytes: self.cache_bytes,
            encoded_cache_bytes: self.encoded_cache_bytes,
            decode_threads: self.decode_threads,
            max_page_limit: self.max_page_limit,
            request_timeout: self.request_timeout.duration(),
            request_bytesize_limit: self.request_bytesize_limit,
            document_bytesize_limit: self.document_bytesize_limit,
            max_in_flight_requests: self.max_in_flight_requests,
            max_bytes_in_flight: self.max_bytes_in_flight,
            admission_wait: self.admission_wait.duration(),
            max_decoded_bytes_per_request: self.max_decoded_bytes_per_request,
            max_chunks_per_request: self.max_chunks_per_request,
            max_filters: self.max_filters,
            max_distinct_keys: self.max_distinct_keys,
            max_sort_keys: self.max_sort_keys,
            statement_timeout: self.statement_timeout.duration(),
            api_key: None,
            public: true,
            readable: Vec::new(),
            allow_origins: Vec::new(),
            metrics: true,
            shutdown_delay: self.shutdown_delay.duration(),
            shutdown_timeout: self.shutdown_timeout.duration(),
            cluster: self.redis_url.clone().map(|url| self.cluster_on(url)),
            auth: None,
        }
    }

    /// The cluster section of these settings, on `redis_url`.
    fn cluster_on(&self, redis_url: String) -> Cluster {
        Cluster {
            redis_url,
            nats_url: self.nats_url.clone(),
            key_prefix: self.key_prefix.clone(),
            l2_cache: self.l2_cache,
            l2_ttl: self.l2_ttl.duration(),
            l2_part_bytes: self.l2_part_bytes,
            worker_timeout: self.worker_timeout.duration(),
            max_jobs_in_flight: self.max_jobs_in_flight,
            fallback: self.fallback,
        }
    }
}

impl Cluster {
    /// A cluster on `redis_url` with the documented defaults.
    pub fn new(redis_url: impl Into<String>) -> Self {
        Settings::default().cluster_on(redis_url.into())
    }
}

impl Default for Config {
    fn default() -> Self {
        Settings::default().config()
    }
}
