//! The hot-chunk cache in front of decoding. Keys are content keys (data source, data version,
//! block), so a write never leaves a stale entry. `ChunkCache` is the seam: [`MemoryCache`]
//! is the embedded tier (bounded by bytes, concurrent misses coalesced into one decode); the
//! cluster adds a Redis tier shared by all nodes behind the same trait.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::ApiError;

/// Identifies one decoded chunk: which data, which version of it, which block.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChunkKey {
    /// A stable hash of the node's data source description.
    pub source: u64,
    pub data_version: u64,
    pub block: Vec<usize>,
}

impl ChunkKey {
    /// The key as a string, for caches outside the process (`<source>:<version>:<i,j,..>`).
    pub fn to_key_string(&self) -> String {
        let block: Vec<String> = self.block.iter().map(usize::to_string).collect();
        format!(
            "{:016x}:{}:{}",
            self.source,
            self.data_version,
            block.join(",")
        )
    }
}

/// A decode that runs only on a miss.
pub type Loader = Pin<Box<dyn Future<Output = Result<Bytes, ApiError>> + Send>>;

/// A cache of decoded chunks.
#[async_trait]
pub trait ChunkCache: Send + Sync {
    /// The chunk under `key`, running `load` on a miss (once, however many callers wait).
    async fn get_or_load(&self, key: ChunkKey, load: Loader) -> Result<Bytes, ApiError>;
}

/// In-process cache bounded by total bytes (least recently used goes first).
pub struct MemoryCache {
    inner: moka::future::Cache<ChunkKey, Bytes>,
}

impl MemoryCache {
    /// A cache holding at most `max_bytes` of chunk data.
    pub fn new(max_bytes: u64) -> Self {
        let inner = moka::future::Cache::builder()
            .weigher(|_k: &ChunkKey, v: &Bytes| u32::try_from(v.len()).unwrap_or(u32::MAX))
            .max_capacity(max_bytes)
            .build();
        MemoryCache { inner }
    }
}

#[async_trait]
impl ChunkCache for MemoryCache {
    async fn get_or_load(&self, key: ChunkKey, load: Loader) -> Result<Bytes, ApiError> {
        self.inner
            .try_get_with(key, load)
            .await
            .map_err(|e: Arc<ApiError>| ApiError::clone(&e))
    }
}

/// Encoded responses (PNG, JSON, Arrow, ...) keyed by their ETag, which names the data
/// version, the selection and the media type: repeated requests skip decoding and encoding.
/// Per node and in-process: cheap to lose, never stale.
pub struct EncodedCache {
    inner: moka::future::Cache<String, Bytes>,
    /// Bodies larger than this are not kept (one huge export would evict everything else).
    max_entry: usize,
}

impl EncodedCache {
    /// A cache of at most `max_bytes` of encoded bodies, each at most `max_bytes / 16`.
    pub fn new(max_bytes: u64) -> Self {
        let inner = moka::future::Cache::builder()
            .weigher(|_k: &String, v: &Bytes| u32::try_from(v.len()).unwrap_or(u32::MAX))
            .max_capacity(max_bytes)
            .build();
        EncodedCache {
            inner,
            max_entry: usize::try_from(max_bytes / 16).unwrap_or(usize::MAX),
        }
    }

    /// The body for `etag`, producing it on a miss.
    pub async fn get_or_encode(
        &self,
        etag: &str,
        produce: impl Future<Output = Result<Bytes, ApiError>>,
    ) -> Result<Bytes, ApiError> {
        if let Some(b) = self.inner.get(etag).await {
            return Ok(b);
        }
        let body = produce.await?;
        if body.len() <= self.max_entry {
            self.inner.insert(etag.to_string(), body.clone()).await;
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn key(b: usize) -> ChunkKey {
        ChunkKey {
            source: 1,
            data_version: 0,
            block: vec![b],
        }
    }

    #[tokio::test]
    async fn concurrent_misses_decode_once() {
        let cache = Arc::new(MemoryCache::new(1 << 20));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                let load: Loader = Box::pin(async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    Ok(Bytes::from_static(b"chunk"))
                });
                cache.get_or_load(key(0), load).await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), Bytes::from_static(b"chunk"));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn errors_are_not_cached() {
        let cache = MemoryCache::new(1 << 20);
        let fail: Loader = Box::pin(async { Err(ApiError::bad_request("nope")) });
        assert!(cache.get_or_load(key(1), fail).await.is_err());
        let ok: Loader = Box::pin(async { Ok(Bytes::from_static(b"x")) });
        assert_eq!(cache.get_or_load(key(1), ok).await.unwrap(), "x");
    }

    #[tokio::test]
    async fn encoded_bodies_are_reused_and_big_ones_are_not_kept() {
        let cache = EncodedCache::new(1600);
        let calls = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let c = calls.clone();
            let produce: Loader = Box::pin(async move {
                c.fetch_add(1, Ordering::SeqCst);
                Ok(Bytes::from(vec![1u8; 10]))
            });
            assert_eq!(cache.get_or_encode("e1", produce).await.unwrap().len(), 10);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        for _ in 0..2 {
            let c = calls.clone();
            let produce: Loader = Box::pin(async move {
                c.fetch_add(1, Ordering::SeqCst);
                Ok(Bytes::from(vec![1u8; 500]))
            });
            cache.get_or_encode("big", produce).await.unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn key_string_names_version_and_block() {
        let k = ChunkKey {
            source: 255,
            data_version: 3,
            block: vec![1, 2],
        };
        assert_eq!(k.to_key_string(), "00000000000000ff:3:1,2");
    }
}
