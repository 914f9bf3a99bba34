//! The hot-chunk cache in front of decoding, in tiers: L1 in this process (bounded by bytes),
//! then, in a cluster, L2 in the shared store (Redis) that every node reads. Keys are content
//! keys (data source identity, data version, block or partition), so a write never leaves a
//! stale entry. Concurrent misses for one key are coalesced: within a node into one future,
//! across nodes by a lock in the shared store, so N clients on different nodes asking for one
//! cold chunk cause one decode. Misses run as jobs on a [`JobRunner`]: this node's executor
//! ([`InlineRunner`]) or the workers ([`crate::remote::Remote`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tessera_common::jobs::{ChunkKey, Job};
use tessera_worker::exec::Executor;
use tessera_worker::store::SharedStore;
use tracing::Instrument;

use crate::error::ApiError;
use crate::metrics;

/// A job's result, and whether it is already in the shared store under the key's shared key.
pub struct Produced {
    pub bytes: Bytes,
    pub shared: bool,
}

/// Where jobs run.
#[async_trait]
pub trait JobRunner: Send + Sync {
    /// Runs `job`, whose result's content key is `key`.
    async fn run(&self, key: &ChunkKey, job: &Job) -> Result<Produced, ApiError>;
}

/// Runs jobs on this node's executor.
pub struct InlineRunner(pub Arc<Executor>);

#[async_trait]
impl JobRunner for InlineRunner {
    async fn run(&self, _key: &ChunkKey, job: &Job) -> Result<Produced, ApiError> {
        let bytes = self.0.run(job, || Ok::<(), ApiError>(())).await?;
        Ok(Produced {
            bytes,
            shared: false,
        })
    }
}

/// The shared tier: the store, the key prefix, and how long values stay.
#[derive(Clone)]
pub struct L2 {
    pub store: SharedStore,
    pub prefix: String,
    pub ttl: Duration,
    /// How long a node may hold the lock of a key it is producing; a holder that dies frees
    /// the key after this.
    pub lock_ttl: Duration,
}

type Pending = Shared<BoxFuture<'static, Result<Bytes, Arc<ApiError>>>>;

/// Decoded chunks and table partitions, by content key, through the tiers.
pub struct ChunkCache {
    l1: Option<moka::future::Cache<ChunkKey, Bytes>>,
    l2: Option<L2>,
    runner: Arc<dyn JobRunner>,
    /// Misses being produced on this node, so concurrent ones wait for the same result.
    pending: Arc<Mutex<HashMap<ChunkKey, Pending>>>,
    /// The longest a miss waits for another node's production of the same key.
    wait: Duration,
}

impl ChunkCache {
    /// A cache with an L1 of `l1_bytes` (none if 0), the shared tier `l2` if any, and misses
    /// run on `runner`. A miss waits at most `wait` for another node producing the same key.
    pub fn new(l1_bytes: u64, l2: Option<L2>, runner: Arc<dyn JobRunner>, wait: Duration) -> Self {
        let l1 = (l1_bytes > 0).then(|| {
            moka::future::Cache::builder()
                .weigher(|_k: &ChunkKey, v: &Bytes| u32::try_from(v.len()).unwrap_or(u32::MAX))
                .max_capacity(l1_bytes)
                .eviction_listener(|_k, _v, cause| metrics::cache_lost("chunk", cause))
                .build()
        });
        ChunkCache {
            l1,
            l2,
            runner,
            pending: Arc::default(),
            wait,
        }
    }

    /// Bytes held in this process (L1), once pending evictions are applied.
    pub async fn held_bytes(&self) -> u64 {
        match &self.l1 {
            Some(l1) => {
                l1.run_pending_tasks().await;
                l1.weighted_size()
            }
            None => 0,
        }
    }

    /// An in-process cache of `bytes` decoding on `exec` (the embedded shape).
    pub fn embedded(bytes: u64, exec: Arc<Executor>) -> Self {
        ChunkCache::new(bytes, None, Arc::new(InlineRunner(exec)), Duration::ZERO)
    }

    /// The result of `job`, whose content key is `key`: from a tier, or produced once however
    /// many callers ask at the same time.
    pub async fn get(self: &Arc<Self>, key: ChunkKey, job: Job) -> Result<Bytes, ApiError> {
        if let Some(l1) = &self.l1 {
            if let Some(b) = l1.get(&key).await {
                metrics::CHUNK_CACHE_HITS.with_label_values(&["l1"]).inc();
                return Ok(b);
            }
            metrics::CHUNK_CACHE_MISSES.with_label_values(&["l1"]).inc();
        }
        let pending = {
            let mut map = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            match map.get(&key) {
                Some(p) => {
                    metrics::COALESCED.with_label_values(&["node"]).inc();
                    p.clone()
                }
                None => {
                    let this = self.clone();
                    let k = key.clone();
                    // The production runs as a task of its own: it completes (and leaves the
                    // map) even if every request waiting for it goes away.
                    // It belongs to the trace of the request that started it.
                    let span = tracing::info_span!("chunk.produce");
                    let task = tokio::spawn(
                        async move {
                            let r = this.fill(&k, job).await.map_err(Arc::new);
                            let mut map = this.pending.lock().unwrap_or_else(|p| p.into_inner());
                            map.remove(&k);
                            r
                        }
                        .instrument(span),
                    );
                    let p = async move {
                        task.await.unwrap_or_else(|e| {
                            Err(Arc::new(ApiError::internal(format!(
                                "a chunk production failed: {e}"
                            ))))
                        })
                    }
                    .boxed()
                    .shared();
                    map.insert(key, p.clone());
                    p
                }
            }
        };
        pending.await.map_err(|e| ApiError::clone(&e))
    }

    /// Produces `key` (through the shared tier if there is one) and keeps it in L1.
    async fn fill(&self, key: &ChunkKey, job: Job) -> Result<Bytes, ApiError> {
        let bytes = match &self.l2 {
            Some(l2) => self.through_l2(l2, key, &job).await?,
            None => self.runner.run(key, &job).await?.bytes,
        };
        if let Some(l1) = &self.l1 {
            l1.insert(key.clone(), bytes.clone()).await;
        }
        Ok(bytes)
    }

    /// Looks `key` up in the shared store; on a miss, takes its lock and produces it, or
    /// waits for the node that holds the lock. Without the store (Redis down), produces it
    /// uncached.
    async fn through_l2(&self, l2: &L2, key: &ChunkKey, job: &Job) -> Result<Bytes, ApiError> {
        let shared_key = key.shared_key(&l2.prefix);
        let give_up = Instant::now() + self.wait;
        let mut pause = Duration::from_millis(1);
        let mut waited = false;
        loop {
            match l2.store.get(&shared_key).await {
                Ok(Some(b)) => {
                    metrics::CHUNK_CACHE_HITS.with_label_values(&["l2"]).inc();
                    return Ok(b);
                }
                Ok(None) => {}
                Err(e) => return self.uncached(key, job, &e).await,
            }
            match l2.store.lock(&shared_key, l2.lock_ttl).await {
                Ok(Some(token)) => {
                    // The node that held the lock may have stored the chunk and let go
                    // between our lookup and our lock: look again before producing it.
                    if let Ok(Some(b)) = l2.store.get(&shared_key).await {
                        let _ = l2.store.unlock(&shared_key, &token).await;
                        metrics::CHUNK_CACHE_HITS.with_label_values(&["l2"]).inc();
                        return Ok(b);
                    }
                    metrics::CHUNK_CACHE_MISSES.with_label_values(&["l2"]).inc();
                    let produced = self.runner.run(key, job).await;
                    if let Ok(p) = &produced
                        && !p.shared
                        && let Err(e) = l2.store.put(&shared_key, &p.bytes, l2.ttl).await
                    {
                        metrics::SHARED_STORE_ERRORS.inc();
                        tracing::warn!("a chunk was not kept in the shared store: {e}");
                    }
                    if let Err(e) = l2.store.unlock(&shared_key, &token).await {
                        metrics::SHARED_STORE_ERRORS.inc();
                        tracing::warn!("a chunk lock was not released (it expires): {e}");
                    }
                    return produced.map(|p| p.bytes);
                }
                Ok(None) => {
                    if !waited {
                        waited = true;
                        metrics::COALESCED.with_label_values(&["cluster"]).inc();
                    }
                    if Instant::now() >= give_up {
                        return Err(ApiError::unavailable(
                            "another node is still producing this chunk; try again",
                            1,
                        ));
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(25));
                }
                Err(e) => return self.uncached(key, job, &e).await,
            }
        }
    }

    /// Produces `key` without the shared store, which failed with `e`.
    async fn uncached(
        &self,
        key: &ChunkKey,
        job: &Job,
        e: &redis::RedisError,
    ) -> Result<Bytes, ApiError> {
        metrics::SHARED_STORE_ERRORS.inc();
        tracing::warn!("the shared store is unreachable, serving uncached: {e}");
        Ok(self.runner.run(key, job).await?.bytes)
    }
}

/// Encoded responses (PNG, JSON, Arrow, ...) keyed by their ETag, which names the data
/// version, the selection and the media type: repeated requests skip decoding and encoding.
/// Per node and in-process: cheap to lose, never stale.
pub struct EncodedCache {
    inner: moka::future::Cache<String, Bytes>,
    /// Bodies larger than this are not kept (one huge export would evict everything else).
    max_entry: usize,
    /// In a cluster, the shared tier: a body encoded on one node serves every node.
    l2: Option<L2>,
}

impl EncodedCache {
    /// A cache of at most `max_bytes` of encoded bodies, each at most `max_bytes / 16`, in
    /// front of the shared tier `l2` if any.
    pub fn new(max_bytes: u64, l2: Option<L2>) -> Self {
        let inner = moka::future::Cache::builder()
            .weigher(|_k: &String, v: &Bytes| u32::try_from(v.len()).unwrap_or(u32::MAX))
            .max_capacity(max_bytes)
            .eviction_listener(|_k, _v, cause| metrics::cache_lost("encoded", cause))
            .build();
        EncodedCache {
            inner,
            max_entry: usize::try_from(max_bytes / 16).unwrap_or(usize::MAX),
            l2,
        }
    }

    /// Bytes held in this process, once pending evictions are applied.
    pub async fn held_bytes(&self) -> u64 {
        self.inner.run_pending_tasks().await;
        self.inner.weighted_size()
    }

    /// The body for `etag`, producing it on a miss.
    pub async fn get_or_encode(
        &self,
        etag: &str,
        produce: impl Future<Output = Result<Bytes, ApiError>>,
    ) -> Result<Bytes, ApiError> {
        if let Some(b) = self.inner.get(etag).await {
            metrics::ENCODED_CACHE_HITS.with_label_values(&["l1"]).inc();
            return Ok(b);
        }
        metrics::ENCODED_CACHE_MISSES
            .with_label_values(&["l1"])
            .inc();
        let shared_key = self
            .l2
            .as_ref()
            .map(|l2| format!("{}:e:{}", l2.prefix, etag.trim_matches('"')));
        if let (Some(l2), Some(key)) = (&self.l2, &shared_key) {
            match l2.store.get(key).await {
                Ok(Some(b)) => {
                    metrics::ENCODED_CACHE_HITS.with_label_values(&["l2"]).inc();
                    self.keep(etag, &b).await;
                    return Ok(b);
                }
                Ok(None) => metrics::ENCODED_CACHE_MISSES
                    .with_label_values(&["l2"])
                    .inc(),
                Err(e) => {
                    metrics::SHARED_STORE_ERRORS.inc();
                    tracing::warn!("the shared store is unreachable, encoding here: {e}");
                }
            }
        }
        let body = produce.await?;
        self.keep(etag, &body).await;
        if let (Some(l2), Some(key)) = (&self.l2, &shared_key)
            && body.len() <= self.max_entry
            && let Err(e) = l2.store.put(key, &body, l2.ttl).await
        {
            metrics::SHARED_STORE_ERRORS.inc();
            tracing::warn!("an encoded body was not kept in the shared store: {e}");
        }
        Ok(body)
    }

    /// Keeps `body` in this node's tier if it is not too large.
    async fn keep(&self, etag: &str, body: &Bytes) {
        if body.len() <= self.max_entry {
            self.inner.insert(etag.to_string(), body.clone()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tessera_common::adapters::{DataSource, Management};
    use tessera_common::jobs::{SourceId, Work};
    use tessera_common::structure::StructureFamily;

    /// Counts the jobs it runs and answers each with its block's index after a pause.
    struct Counting(AtomicUsize);

    #[async_trait]
    impl JobRunner for Counting {
        async fn run(&self, _key: &ChunkKey, job: &Job) -> Result<Produced, ApiError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            match &job.work {
                Work::Block(b) if b[0] == 99 => Err(ApiError::bad_request("nope")),
                Work::Block(b) => Ok(Produced {
                    bytes: Bytes::from(vec![b[0] as u8; 4]),
                    shared: false,
                }),
                _ => unreachable!(),
            }
        }
    }

    fn job(b: usize) -> (ChunkKey, Job) {
        let source = DataSource {
            structure_family: StructureFamily::Array,
            mimetype: "application/x-test".into(),
            parameters: Default::default(),
            assets: Vec::new(),
            management: Management::Writable,
        };
        let job = Job {
            source: Arc::new(source),
            data_version: 1,
            work: Work::Block(vec![b]),
        };
        (ChunkKey::of(SourceId::of(&job.source), &job), job)
    }

    /// A cache of one node with an L1 of `l1` bytes and no shared tier.
    fn local(runner: &Arc<Counting>, l1: u64) -> Arc<ChunkCache> {
        Arc::new(ChunkCache::new(l1, None, runner.clone(), Duration::ZERO))
    }

    async fn eight_concurrent(cache: Arc<ChunkCache>, b: usize) -> Vec<Result<Bytes, ApiError>> {
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let cache = cache.clone();
            tasks.push(tokio::spawn(async move {
                let (k, j) = job(b);
                cache.get(k, j).await
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn concurrent_misses_run_once_with_and_without_l1() {
        for l1 in [1 << 20, 0] {
            let runner = Arc::new(Counting(AtomicUsize::new(0)));
            let cache = local(&runner, l1);
            for r in eight_concurrent(cache.clone(), 3).await {
                assert_eq!(r.unwrap(), Bytes::from(vec![3u8; 4]));
            }
            assert_eq!(runner.0.load(Ordering::SeqCst), 1);
            let (k, j) = job(3);
            cache.get(k, j).await.unwrap();
            // Kept in L1, or produced again without one.
            assert_eq!(runner.0.load(Ordering::SeqCst), if l1 > 0 { 1 } else { 2 });
        }
    }

    #[tokio::test]
    async fn a_production_every_waiter_left_still_completes_and_is_kept() {
        let runner = Arc::new(Counting(AtomicUsize::new(0)));
        let cache = local(&runner, 1 << 20);
        let (k, j) = job(4);
        // The only waiter gives up long before the 20 ms production ends.
        let gave_up = tokio::time::timeout(Duration::from_millis(2), cache.get(k, j)).await;
        assert!(gave_up.is_err());
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(cache.pending.lock().unwrap().is_empty());
        let (k2, j2) = job(4);
        assert_eq!(cache.get(k2, j2).await.unwrap(), Bytes::from(vec![4u8; 4]));
        assert_eq!(runner.0.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn errors_are_not_cached() {
        let runner = Arc::new(Counting(AtomicUsize::new(0)));
        let cache = local(&runner, 1 << 20);
        for _ in 0..2 {
            let (k, j) = job(99);
            assert!(cache.get(k, j).await.is_err());
        }
        assert_eq!(runner.0.load(Ordering::SeqCst), 2);
    }

    async fn l2(prefix: &str) -> L2 {
        let store = SharedStore::connect("redis://127.0.0.1:6379/", 1 << 20)
            .await
            .expect("Redis on 127.0.0.1:6379");
        L2 {
            store,
            prefix: prefix.into(),
            ttl: Duration::from_secs(60),
            lock_ttl: Duration::from_secs(10),
        }
    }

    #[tokio::test]
    async fn nodes_sharing_redis_produce_a_cold_chunk_once() {
        let prefix = format!("tessera-test-{}", uuid::Uuid::new_v4().simple());
        let runner = Arc::new(Counting(AtomicUsize::new(0)));
        // Two "nodes": separate L1s and pending maps, one shared store.
        let a = Arc::new(ChunkCache::new(
            1 << 20,
            Some(l2(&prefix).await),
            runner.clone(),
            Duration::from_secs(10),
        ));
        let b = Arc::new(ChunkCache::new(
            1 << 20,
            Some(l2(&prefix).await),
            runner.clone(),
            Duration::from_secs(10),
        ));
        let (ra, rb) = tokio::join!(eight_concurrent(a, 5), eight_concurrent(b.clone(), 5));
        for r in ra.into_iter().chain(rb) {
            assert_eq!(r.unwrap(), Bytes::from(vec![5u8; 4]));
        }
        assert_eq!(runner.0.load(Ordering::SeqCst), 1);
        // A third node finds it in the shared store.
        let c = Arc::new(ChunkCache::new(
            0,
            Some(l2(&prefix).await),
            runner.clone(),
            Duration::from_secs(10),
        ));
        let (k, j) = job(5);
        assert_eq!(
            c.get(k.clone(), j).await.unwrap(),
            Bytes::from(vec![5u8; 4])
        );
        assert_eq!(runner.0.load(Ordering::SeqCst), 1);
        l2(&prefix)
            .await
            .store
            .delete(&k.shared_key(&prefix))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn an_encoded_body_made_on_one_node_serves_another() {
        let prefix = format!("tessera-test-{}", uuid::Uuid::new_v4().simple());
        let a = EncodedCache::new(1 << 20, Some(l2(&prefix).await));
        let b = EncodedCache::new(1 << 20, Some(l2(&prefix).await));
        let calls = Arc::new(AtomicUsize::new(0));
        for cache in [&a, &b, &a] {
            let c = calls.clone();
            let produce = async move {
                c.fetch_add(1, Ordering::SeqCst);
                Ok(Bytes::from_static(b"png bytes"))
            };
            assert_eq!(
                cache.get_or_encode("\"e1\"", produce).await.unwrap(),
                "png bytes"
            );
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        l2(&prefix)
            .await
            .store
            .delete(&format!("{prefix}:e:e1"))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn encoded_bodies_are_reused_and_big_ones_are_not_kept() {
        let cache = EncodedCache::new(1600, None);
        let calls = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let c = calls.clone();
            let produce = async move {
                c.fetch_add(1, Ordering::SeqCst);
                Ok(Bytes::from(vec![1u8; 10]))
            };
            assert_eq!(cache.get_or_encode("e1", produce).await.unwrap().len(), 10);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        for _ in 0..2 {
            let c = calls.clone();
            let produce = async move {
                c.fetch_add(1, Ordering::SeqCst);
                Ok(Bytes::from(vec![1u8; 500]))
            };
            cache.get_or_encode("big", produce).await.unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
