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
    /// Largest request body (uploads), in bytes.
    pub request_bytesize_limit: usize,
    /// The single-user API key; `None` serves everyone without one.
    pub api_key: Option<String>,
    /// With an API key: whether reads are open to anonymous clients.
    pub public: bool,
    /// Directories whose files may be registered (Tiled's `readable_storage`); canonical
    /// paths. Empty: registration is refused.
    pub readable: Vec<std::path::PathBuf>,
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
            api_key: None,
            public: true,
            readable: Vec::new(),
        }
    }
}
