//! The read planner: maps a selection of an array to the native chunks it touches, fetches
//! each through the chunk cache (decoding misses through the dispatcher), and assembles the
//! result. A request for exactly one whole chunk is answered with the cached bytes as they are.
//! Table partitions of formats parsed whole (CSV, Excel) go through the chunk cache too.

use arrow_array::RecordBatch;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use tessera_common::adapters::{self, DataSource};
use tessera_common::array::ArrayData;
use tessera_common::chunks::{ChunkGrid, assemble};
use tessera_common::slicing::Selection;
use tessera_common::structure::ArrayStructure;

use crate::cache::{ChunkKey, Loader};
use crate::error::ApiError;
use crate::state::AppState;

/// Chunks fetched concurrently for one request.
const FETCH_CONCURRENCY: usize = 8;

/// A stable identity of a data source, for cache keys.
pub fn source_id(source: &DataSource) -> u64 {
    let json = serde_json::to_vec(source).unwrap_or_default();
    xxhash_rust::xxh3::xxh3_64(&json)
}

/// One decoded chunk, via the cache.
async fn chunk(
    state: &AppState,
    source: &DataSource,
    version: u64,
    block: Vec<usize>,
) -> Result<Bytes, ApiError> {
    let key = ChunkKey {
        source: source_id(source),
        data_version: version,
        block: block.clone(),
    };
    let dispatcher = state.dispatcher.clone();
    let source = source.clone();
    let load: Loader = Box::pin(async move {
        let a = dispatcher.read_block(&source, &block).await?;
        Ok(a.bytes)
    });
    state.cache.get_or_load(key, load).await
}

/// Reads `sel` of the array stored in `source`.
pub async fn read_array(
    state: &AppState,
    structure: &ArrayStructure,
    source: &DataSource,
    version: u64,
    sel: &Selection,
) -> Result<ArrayData, ApiError> {
    let grid = ChunkGrid::new(&structure.shape, structure.chunks.clone())?;
    let itemsize = structure.data_type.itemsize();
    let plan = grid.plan(sel);
    let out_shape = sel.out_shape();
    // Fast path: one whole chunk, unsliced, goes out without a copy.
    if let [only] = plan.as_slice()
        && let Ok(bshape) = grid.block_shape(&only.block)
        && only.within.is_full(&bshape)
        && only.within.dims.iter().all(|d| d.keep)
    {
        let bytes = chunk(state, source, version, only.block.clone()).await?;
        return Ok(ArrayData::new(
            structure.data_type.clone(),
            out_shape,
            bytes,
        ));
    }
    let blocks: Vec<Vec<usize>> = plan.iter().map(|r| r.block.clone()).collect();
    let fetched: Vec<(Vec<usize>, Bytes)> = stream::iter(blocks)
        .map(|b| async move {
            let bytes = chunk(state, source, version, b.clone()).await?;
            Ok::<_, ApiError>((b, bytes))
        })
        .buffered(FETCH_CONCURRENCY)
        .try_collect()
        .await?;
    let sel = sel.clone();
    let out = tokio::task::spawn_blocking(move || {
        assemble(&grid, &sel, itemsize, |block: &[usize]| {
            fetched
                .iter()
                .find(|(b, _)| b.as_slice() == block)
                .map(|(_, bytes)| bytes.clone())
                .ok_or_else(|| ApiError::internal(format!("block {block:?} was not fetched")))
        })
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(ArrayData::new(structure.data_type.clone(), out_shape, out))
}

/// Partition `i` of the table stored in `source`: with `columns`, at least those (formats that
/// store columns apart, Parquet above all, decode only them). Formats parsed whole are read
/// through the chunk cache, kept as Arrow IPC, so a file is parsed once for all the column
/// requests that follow.
pub async fn read_partition(
    state: &AppState,
    source: &DataSource,
    version: u64,
    i: usize,
    columns: Option<&[String]>,
) -> Result<RecordBatch, ApiError> {
    if !adapters::parsed_whole(&source.mimetype) {
        return match columns {
            Some(c) => state.dispatcher.read_partition_columns(source, i, c).await,
            None => state.dispatcher.read_partition(source, i).await,
        };
    }
    let key = ChunkKey {
        source: source_id(source),
        data_version: version,
        block: vec![i],
    };
    let dispatcher = state.dispatcher.clone();
    let src = source.clone();
    let load: Loader = Box::pin(async move {
        let batch = dispatcher.read_partition(&src, i).await?;
        let ipc = tokio::task::spawn_blocking(move || {
            tessera_common::serializers::table::to_arrow_file(&[batch])
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
        Ok(Bytes::from(ipc))
    });
    let bytes = state.cache.get_or_load(key, load).await?;
    let mut reader = arrow_ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None)
        .map_err(|e| ApiError::internal(format!("a cached partition is unreadable: {e}")))?;
    match reader.next() {
        Some(batch) => batch.map_err(|e| ApiError::internal(e.to_string())),
        None => Err(ApiError::internal("a cached partition holds no batch")),
    }
}
