//! The server configuration: one typed struct with defaults that work on a laptop. Names
//! follow Tiled's configuration where the concept is the same.

/// Settings of one API node.
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
    pub request_timeout: std::time::Duration,
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
    pub admission_wait: std::time::Duration,
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
    pub statement_timeout: std::time::Duration,
    /// The single-user API key; `None` serves everyone without one.
    pub api_key: Option<String>,
    /// With an API key: whether reads are open to anonymous clients.
    pub public: bool,
    /// Directories whose files may be registered (Tiled's `readable_storage`); canonical
    /// paths. Empty: registration is refused.
    pub readable: Vec<std::path::PathBuf>,
    /// The cluster's shared parts; `None` runs the embedded shape.
    pub cluster: Option<Cluster>,
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
    pub l2_ttl: std::time::Duration,
    /// Chunks larger than this are stored in Redis in parts of this size.
    pub l2_part_bytes: usize,
    /// A job whose worker has not been heard from for this long is sent again (once, to
    /// another worker), then the fallback applies.
    pub worker_timeout: std::time::Duration,
    /// Jobs one API node has at workers at once; more wait (within `admission_wait`).
    pub max_jobs_in_flight: usize,
    /// What happens when no worker answers.
    pub fallback: Fallback,
}

/// What an API node does when no worker answers a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    /// Decode on the API node itself.
    Inline,
    /// Answer 503 with Retry-After.
    Unavailable,
}

impl Cluster {
    /// A cluster on `redis_url` with the documented defaults.
    pub fn new(redis_url: impl Into<String>) -> Self {
        Cluster {
            redis_url: redis_url.into(),
            nats_url: None,
            key_prefix: "tessera".into(),
            l2_cache: true,
            l2_ttl: std::time::Duration::from_secs(3600),
            l2_part_bytes: 8 << 20,
            worker_timeout: std::time::Duration::from_secs(5),
            max_jobs_in_flight: 256,
            fallback: Fallback::Inline,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            response_bytesize_limit: 300_000_000,
            cache_bytes: 1 << 30,
            encoded_cache_bytes: 256 << 20,
            decode_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_page_limit: 300,
            request_timeout: std::time::Duration::from_secs(120),
            request_bytesize_limit: 1 << 30,
            document_bytesize_limit: 32 << 20,
            max_in_flight_requests: 1024,
            max_bytes_in_flight: 1 << 30,
            admission_wait: std::time::Duration::from_secs(30),
            max_decoded_bytes_per_request: 1 << 30,
            max_chunks_per_request: 100_000,
            max_filters: 64,
            max_distinct_keys: 16,
            max_sort_keys: 8,
            statement_timeout: std::time::Duration::from_secs(30),
            api_key: None,
            public: true,
            readable: Vec::new(),
            cluster: None,
        }
    }
}
