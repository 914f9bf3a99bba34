//! Runs decode work against data sources: opened adapters are kept (bounded), work runs on
//! the blocking pool with at most `threads` jobs at once, so a burst queues instead of
//! thrashing. Opening an adapter (libhdf5 calls, Parquet footers) is part of the work:
//! nothing touches a file on the async runtime.

use std::sync::Arc;

use bytes::Bytes;
use tessera_common::adapters::{self, Adapter, AdapterError, DataSource};
use tessera_common::jobs::{Job, SourceId, Work};
use tokio::sync::Semaphore;

use crate::metrics;

/// A bounded decode pool with the adapters it opened.
pub struct Executor {
    adapters: moka::sync::Cache<SourceId, Adapter>,
    permits: Arc<Semaphore>,
}

impl Executor {
    /// An executor running at most `threads` jobs concurrently.
    pub fn new(threads: usize) -> Self {
        Executor {
            adapters: moka::sync::Cache::new(1024),
            permits: Arc::new(Semaphore::new(threads.max(1))),
        }
    }

    /// Runs `work` on `source`'s adapter on the blocking pool. The permit moves into the
    /// task: a caller that goes away while its work runs does not free a slot the work still
    /// uses.
    pub async fn with_adapter<T, E>(
        &self,
        source: &DataSource,
        work: impl FnOnce(Adapter) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<AdapterError> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| AdapterError::Read("the decode pool is shut down".into()))?;
        let adapters = self.adapters.clone();
        let source = source.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work(open_cached(&adapters, &source)?)
        })
        .await
        .map_err(|e| AdapterError::Read(format!("a decode task failed: {e}")))?
    }

    /// Runs `job`, counting the decode. `check` runs first, once a decode slot is free (a
    /// worker drops there a job whose deadline passed while it waited).
    pub async fn run<E>(
        &self,
        job: &Job,
        check: impl FnOnce() -> Result<(), E> + Send + 'static,
    ) -> Result<Bytes, E>
    where
        E: From<AdapterError> + Send + 'static,
    {
        let job = job.clone();
        self.with_adapter(&job.source.clone(), move |adapter| {
            check()?;
            let mimetype = job.source.mimetype.as_str();
            match &job.work {
                Work::Block(_) => {
                    metrics::CHUNK_DECODES.inc();
                    metrics::BLOCKS_DECODED.with_label_values(&[mimetype]).inc();
                }
                Work::Partition(_) | Work::Columns { .. } => {
                    metrics::CHUNK_DECODES.inc();
                    metrics::PARTITIONS_READ
                        .with_label_values(&[mimetype])
                        .inc();
                }
                Work::SparseBlock(_) | Work::Awkward(_) | Work::Ragged => {
                    metrics::CHUNK_DECODES.inc();
                }
                Work::ExportTable(export) => {
                    let (partitions, media) = (&export.partitions, &export.media);
                    let n = partitions.len() as u64;
                    metrics::CHUNK_DECODES.inc_by(n);
                    metrics::PARTITIONS_READ
                        .with_label_values(&[mimetype])
                        .inc_by(n);
                    metrics::ENCODES.with_label_values(&[media]).inc();
                }
                Work::Encode { media, .. } => {
                    let blocks = job.blocks_touched();
                    metrics::CHUNK_DECODES.inc_by(blocks);
                    metrics::BLOCKS_DECODED
                        .with_label_values(&[mimetype])
                        .inc_by(blocks);
                    metrics::ENCODES.with_label_values(&[media]).inc();
                }
            }
            Ok(job.run(&adapter)?)
        })
        .await
    }
}

/// `source`'s adapter, opened once and kept.
fn open_cached(
    adapters: &moka::sync::Cache<SourceId, Adapter>,
    source: &DataSource,
) -> Result<Adapter, AdapterError> {
    let id = SourceId::of(source);
    if let Some(a) = adapters.get(&id) {
        return Ok(a);
    }
    let a = adapters::open(source)?;
    adapters.insert(id, a.clone());
    Ok(a)
}
