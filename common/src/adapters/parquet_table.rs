//! Tables stored as Parquet through `object_store`: one Parquet file per partition under the
//! table's location (`partition-<i>.parquet`). Each partition is written with one atomic put,
//! so a reader sees a partition either as it was or as it is after the write.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::Schema;
use bytes::Bytes;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{Adapter, AdapterError, DataSource, TableReader};
use crate::serializers::table::to_parquet;
use crate::structure::TableStructure;

/// The mimetype of tables kept as Parquet partitions.
pub const MIMETYPE: &str = "application/x-parquet";

/// The store and object path of the file `name` under the location `uri`.
pub(crate) fn object_path(
    uri: &str,
    name: &str,
) -> Result<(Arc<dyn ObjectStore>, StorePath), AdapterError> {
    let (store, dir) = crate::stores::locate(uri)?;
    Ok((store, dir.join(name)))
}

/// The Arrow schema a table structure declares.
pub fn schema(s: &TableStructure) -> Result<Schema, AdapterError> {
    use base64::Engine;
    let b64 = s
        .arrow_schema
        .strip_prefix("data:application/vnd.apache.arrow.file;base64,")
        .ok_or_else(|| {
            AdapterError::BadSource(
                "arrow_schema must be a data:application/vnd.apache.arrow.file;base64, URI".into(),
            )
        })?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| AdapterError::BadSource(format!("arrow_schema is not base64: {e}")))?;
    arrow_ipc::convert::try_schema_from_ipc_buffer(&raw)
        .map_err(|e| AdapterError::BadSource(format!("arrow_schema is not an Arrow schema: {e}")))
}

/// Writes partition `i` (replacing it whole).
pub async fn write_partition(
    uri: &str,
    i: usize,
    batches: &[RecordBatch],
) -> Result<(), AdapterError> {
    put_parquet(uri, &format!("partition-{i}.parquet"), batches).await
}

/// Reads partition `i`; `None` if it was never written.
pub async fn read_partition(uri: &str, i: usize) -> Result<Option<Vec<RecordBatch>>, AdapterError> {
    get_parquet(uri, &format!("partition-{i}.parquet")).await
}

/// Writes `batches` as the Parquet file `name` under `uri`, with one atomic put. Encoding
/// runs on the blocking pool.
pub async fn put_parquet(
    uri: &str,
    name: &str,
    batches: &[RecordBatch],
) -> Result<(), AdapterError> {
    let owned = batches.to_vec();
    let bytes = tokio::task::spawn_blocking(move || to_parquet(&owned))
        .await
        .map_err(|e| AdapterError::Read(e.to_string()))?
        .map_err(|e| AdapterError::Read(e.to_string()))?;
    let (store, path) = object_path(uri, name)?;
    store
        .put(&path, PutPayload::from(Bytes::from(bytes)))
        .await
        .map_err(|e| AdapterError::Read(format!("writing {path}: {e}")))?;
    Ok(())
}

/// Reads the Parquet file `name` under `uri`; `None` if it was never written. Decoding runs
/// on the blocking pool.
pub async fn get_parquet(uri: &str, name: &str) -> Result<Option<Vec<RecordBatch>>, AdapterError> {
    let (store, path) = object_path(uri, name)?;
    let bytes = match store.get(&path).await {
        Ok(r) => r
            .bytes()
            .await
            .map_err(|e| AdapterError::Read(format!("reading {path}: {e}")))?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(AdapterError::Read(format!("reading {path}: {e}"))),
    };
    tokio::task::spawn_blocking(move || {
        let decode_err =
            |e: &dyn std::fmt::Display| AdapterError::Read(format!("decoding {path}: {e}"));
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| decode_err(&e))?;
        // The batches the reader yields lack the schema's metadata (pandas' index
        // description): put the stored schema back on them.
        let schema = builder.schema().clone();
        let reader = builder.build().map_err(|e| decode_err(&e))?;
        let mut batches = Vec::new();
        for b in reader {
            let b = b.map_err(|e| decode_err(&e))?;
            batches.push(b.with_schema(schema.clone()).map_err(|e| decode_err(&e))?);
        }
        Ok(Some(batches))
    })
    .await
    .map_err(|e| AdapterError::Read(e.to_string()))?
}

/// The pandas index columns named in a schema's `pandas` metadata.
pub fn index_columns(schema: &Schema) -> Vec<String> {
    let Some(text) = schema.metadata().get("pandas") else {
        return Vec::new();
    };
    let Ok(meta) = serde_json::from_str::<serde_json::Value>(text) else {
        return Vec::new();
    };
    meta["index_columns"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

struct ParquetTable {
    uri: String,
    schema: Arc<Schema>,
    npartitions: usize,
    handle: tokio::runtime::Handle,
}

impl TableReader for ParquetTable {
    fn read_partition(&self, i: usize) -> Result<RecordBatch, AdapterError> {
        if i >= self.npartitions {
            return Err(AdapterError::PartitionOutOfRange(i));
        }
        let batches = self
            .handle
            .block_on(read_partition(&self.uri, i))?
            .unwrap_or_default();
        if batches.is_empty() {
            // A partition not written yet reads as no rows.
            return Ok(RecordBatch::new_empty(self.schema.clone()));
        }
        arrow_select::concat::concat_batches(&batches[0].schema(), &batches)
            .map_err(|e| AdapterError::Read(e.to_string()))
    }

    fn index_columns(&self) -> Vec<String> {
        index_columns(&self.schema)
    }
}

/// Opens a Parquet table data source (its first asset is the table's location).
pub fn open(source: &DataSource) -> Result<Adapter, AdapterError> {
    let structure: TableStructure = super::structure_of(source)?;
    Ok(Adapter::Table(Arc::new(ParquetTable {
        uri: super::first_asset(source)?,
        schema: Arc::new(schema(&structure)?),
        npartitions: structure.npartitions,
        handle: super::runtime()?,
    })))
}
