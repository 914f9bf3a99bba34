//! Encoding on the blocking pool: maps a negotiated media type to the serializer in `common`
//! and runs it off the request runtime (PNG, Parquet, XLSX, HDF5 and NetCDF take real CPU time).

use arrow_array::RecordBatch;
use bytes::Bytes;
use tessera_common::array::ArrayData;
use tessera_common::serializers::{self, SerializeError};

use crate::error::ApiError;
use crate::negotiate;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SerializeError> + Send + 'static,
) -> Result<T, ApiError> {
    on_blocking_pool(move || f().map_err(ApiError::from)).await
}

/// Encodes an array as `media`.
pub async fn array(data: ArrayData, media: &'static str) -> Result<Bytes, ApiError> {
    use serializers::array as a;
    if media == negotiate::OCTET {
        return Ok(a::to_octet_stream(&data));
    }
    blocking(move || a::encode(&data, media).map(Bytes::from)).await
}

/// Encodes table partitions (one schema) as `media`; `index` names the index columns.
pub async fn table(
    batches: Vec<RecordBatch>,
    index: Vec<String>,
    media: &'static str,
) -> Result<Bytes, ApiError> {
    table_with_options(batches, index, media, true).await
}

/// As [`table`], with the CSV header row optional (`text/csv;header=absent`).
pub async fn table_with_options(
    batches: Vec<RecordBatch>,
    index: Vec<String>,
    media: &'static str,
    csv_header: bool,
) -> Result<Bytes, ApiError> {
    blocking(move || serializers::table::encode(batches, index, media, csv_header).map(Bytes::from))
        .await
}

/// Encodes COO points (coordinates per kept dimension, values) as `media`.
pub async fn sparse(
    coords: Vec<Vec<i64>>,
    data: ArrayData,
    media: &'static str,
) -> Result<Bytes, ApiError> {
    let batch = serializers::sparse::to_record_batch(&coords, &data)?;
    if media == negotiate::HDF5 {
        return blocking(move || serializers::sparse::to_hdf5(&coords, &data).map(Bytes::from))
            .await;
    }
    table(vec![batch], Vec::new(), media).await
}

/// A stored (uncompressed) zip of named buffers.
pub async fn zip(entries: Vec<(String, Bytes)>) -> Result<Bytes, ApiError> {
    blocking(move || {
        let refs: Vec<(String, &[u8])> = entries.iter().map(|(n, b)| (n.clone(), &b[..])).collect();
        serializers::zip::zip_stored(&refs).map(Bytes::from)
    })
    .await
}

/// Runs `f` (JSON of awkward or ragged arrays, say) on the blocking pool.
pub async fn on_blocking_pool<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("encoder task failed: {e}")))?
}

/// A NetCDF file of variables, with global attributes `attrs`.
pub async fn netcdf(
    attrs: serde_json::Map<String, serde_json::Value>,
    vars: Vec<serializers::netcdf::NcVariable>,
) -> Result<Bytes, ApiError> {
    blocking(move || serializers::netcdf::to_netcdf(&attrs, &vars).map(Bytes::from)).await
}

/// An HDF5 file of a subtree.
pub async fn hdf5(tree: serializers::hdf5::H5Node) -> Result<Bytes, ApiError> {
    blocking(move || serializers::hdf5::to_hdf5(&tree).map(Bytes::from)).await
}
