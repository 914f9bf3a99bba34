//! Reads that are not cached chunks in the embedded shape (sparse, awkward and ragged pieces,
//! Parquet partitions) and the small lookups of every shape (column structures, index
//! columns): `Dispatcher` is the seam, [`Inline`] runs them on this node's executor. In a
//! cluster with workers the planner sends the pieces as jobs through
//! [`crate::cache::ChunkCache`] instead (see `planner::read_sparse_block` and its siblings).

use std::sync::Arc;

use arrow_array::RecordBatch;
use async_trait::async_trait;
use bytes::Bytes;
use tessera_common::adapters::{self, Adapter, DataSource, SparseBlock, table_column};
use tessera_common::array::ArrayData;
use tessera_common::structure::ArrayStructure;
use tessera_worker::exec::Executor;

use crate::error::ApiError;

/// Runs decode jobs against data sources.
#[async_trait]
pub trait Dispatcher: Send + Sync {
    /// Reads one partition of a table (all columns).
    async fn read_partition(&self, source: &DataSource, i: usize) -> Result<RecordBatch, ApiError>;
    /// Reads only the named columns of one partition (formats that store columns apart
    /// decode only those).
    async fn read_partition_columns(
        &self,
        source: &DataSource,
        i: usize,
        columns: &[String],
    ) -> Result<RecordBatch, ApiError> {
        let _ = columns;
        self.read_partition(source, i).await
    }
    /// Reads one block of a sparse array.
    async fn read_sparse_block(
        &self,
        source: &DataSource,
        block: &[usize],
    ) -> Result<SparseBlock, ApiError>;
    /// Reads awkward buffers by form key.
    async fn read_awkward_buffers(
        &self,
        source: &DataSource,
        form_keys: &[String],
    ) -> Result<Vec<(String, Bytes)>, ApiError>;
    /// Reads a whole ragged array (offsets, values).
    async fn read_ragged(
        &self,
        source: &DataSource,
    ) -> Result<(Vec<Vec<i64>>, ArrayData), ApiError>;
    /// The table's index column names.
    async fn index_columns(&self, source: &DataSource) -> Result<Vec<String>, ApiError>;
    /// The array structure of one column of a table (`None` if there is no such column);
    /// string columns are scanned for their widest value.
    async fn column_structure(
        &self,
        source: &DataSource,
        npartitions: usize,
        column: &str,
    ) -> Result<Option<ArrayStructure>, ApiError>;
}

/// Decodes in-process on the node's executor (a bounded blocking pool that keeps opened
/// adapters).
pub struct Inline {
    exec: Arc<Executor>,
}

impl Inline {
    /// A dispatcher running its work on `exec`.
    pub fn new(exec: Arc<Executor>) -> Self {
        Inline { exec }
    }

    /// Runs `job` on `source`'s adapter on the executor's pool.
    async fn run<T: Send + 'static>(
        &self,
        source: &DataSource,
        job: impl FnOnce(Adapter) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.exec.with_adapter(source, job).await
    }
}

/// The table reader of an adapter, counting the partition read it is about to do.
fn partition_reader(
    adapter: Adapter,
    mimetype: &str,
) -> Result<Arc<dyn adapters::TableReader>, ApiError> {
    let Adapter::Table(r) = adapter else {
        return Err(wrong_family("a table"));
    };
    tessera_worker::metrics::PARTITIONS_READ
        .with_label_values(&[mimetype])
        .inc();
    Ok(r)
}

fn wrong_family(what: &str) -> ApiError {
    ApiError::not_found(format!("this node's data is not {what}"))
}

#[async_trait]
impl Dispatcher for Inline {
    async fn read_partition(&self, source: &DataSource, i: usize) -> Result<RecordBatch, ApiError> {
        let mimetype = source.mimetype.clone();
        self.run(source, move |a| {
            Ok(partition_reader(a, &mimetype)?.read_partition(i)?)
        })
        .await
    }

    async fn read_partition_columns(
        &self,
        source: &DataSource,
        i: usize,
        columns: &[String],
    ) -> Result<RecordBatch, ApiError> {
        let mimetype = source.mimetype.clone();
        let columns = columns.to_vec();
        self.run(source, move |a| {
            Ok(partition_reader(a, &mimetype)?.read_columns(i, &columns)?)
        })
        .await
    }

    async fn read_sparse_block(
        &self,
        source: &DataSource,
        block: &[usize],
    ) -> Result<SparseBlock, ApiError> {
        let block = block.to_vec();
        self.run(source, move |a| {
            let Adapter::Sparse(r) = a else {
                return Err(wrong_family("a sparse array"));
            };
            Ok(r.read_block(&block)?)
        })
        .await
    }

    async fn read_awkward_buffers(
        &self,
        source: &DataSource,
        form_keys: &[String],
    ) -> Result<Vec<(String, Bytes)>, ApiError> {
        let keys = form_keys.to_vec();
        self.run(source, move |a| {
            let Adapter::Awkward(r) = a else {
                return Err(wrong_family("an awkward array"));
            };
            Ok(r.read_buffers(&keys)?)
        })
        .await
    }

    async fn read_ragged(
        &self,
        source: &DataSource,
    ) -> Result<(Vec<Vec<i64>>, ArrayData), ApiError> {
        self.run(source, move |a| {
            let Adapter::Ragged(r) = a else {
                return Err(wrong_family("a ragged array"));
            };
            Ok(r.read()?)
        })
        .await
    }

    async fn index_columns(&self, source: &DataSource) -> Result<Vec<String>, ApiError> {
        self.run(source, move |a| {
            let Adapter::Table(r) = a else {
                return Err(wrong_family("a table"));
            };
            Ok(r.index_columns())
        })
        .await
    }

    async fn column_structure(
        &self,
        source: &DataSource,
        npartitions: usize,
        column: &str,
    ) -> Result<Option<ArrayStructure>, ApiError> {
        let column = column.to_string();
        self.run(source, move |a| {
            let Adapter::Table(r) = a else {
                return Err(wrong_family("a table"));
            };
            Ok(table_column::column_structure(
                r.as_ref(),
                npartitions,
                &column,
            )?)
        })
        .await
    }
}
