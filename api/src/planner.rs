//! The read planner: maps a selection of an array to the native chunks it touches, fetches
//! each through the chunk cache (decoding misses through the dispatcher), and assembles the
//! result. A request for exactly one whole chunk is answered with the cached bytes as they are.
//! Table partitions of formats parsed whole (CSV, Excel) go through the chunk cache too.

use arrow_array::RecordBatch;
use axum::http::StatusCode;
use bytes::Bytes;
use futures::{StreamExt, stream};
use tessera_common::adapters::{self, DataSource};
use tessera_common::array::ArrayData;
use tessera_common::chunks::{Assembler, ChunkGrid};
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

/// Refuses a read that would touch more chunks, or decode more bytes, than one request may.
/// `chunks` and `decoded_bytes` are what the read costs, whatever part of it is kept.
pub fn check_budget(
    state: &AppState,
    what: &str,
    chunks: u128,
    decoded_bytes: u128,
    hint: &str,
) -> Result<(), ApiError> {
    let max_chunks = state.config.max_chunks_per_request;
    let max_bytes = state.config.max_decoded_bytes_per_request;
    if chunks > max_chunks as u128 {
        crate::metrics::REFUSED.with_label_values(&["chunks"]).inc();
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{what} touches {chunks} chunks; one request may touch at most {max_chunks} \
                 (max_chunks_per_request): {hint}"
            ),
        ));
    }
    if decoded_bytes > max_bytes as u128 {
        crate::metrics::REFUSED
            .with_label_values(&["decoded"])
            .inc();
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{what} touches {chunks} chunks holding {decoded_bytes} bytes; one request may \
                 decode at most {max_bytes} bytes (max_decoded_bytes_per_request): {hint}"
            ),
        ));
    }
    Ok(())
}

/// Chunks this large are copied into place on the blocking pool rather than on the runtime.
const COPY_INLINE_MAX: usize = 256 << 10;

/// Reads `sel` of the array stored in `source`, within the request's budgets. Chunks are
/// copied into the result as they arrive and dropped, so a request holds its result and at
/// most [`FETCH_CONCURRENCY`] chunks, never all the chunks it touches.
pub async fn read_array(
    state: &AppState,
    structure: &ArrayStructure,
    source: &DataSource,
    version: u64,
    sel: &Selection,
) -> Result<ArrayData, ApiError> {
    let grid = ChunkGrid::new(&structure.shape, structure.chunks.clone())?;
    let itemsize = structure.data_type.itemsize();
    let touched = grid.touched(sel);
    check_budget(
        state,
        "this selection",
        touched.chunks,
        touched.elements.saturating_mul(itemsize as u128),
        "ask for fewer elements along the chunked dimensions (a smaller slice), or read \
         the native chunks one by one with /array/block",
    )?;
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
    let mut out = Assembler::new(grid, sel, itemsize);
    let mut arrivals = stream::iter(plan)
        .map(|read| async move {
            let bytes = chunk(state, source, version, read.block.clone()).await?;
            Ok::<_, ApiError>((read, bytes))
        })
        .buffer_unordered(FETCH_CONCURRENCY);
    while let Some(arrived) = arrivals.next().await {
        let (read, bytes) = arrived?;
        if bytes.len() <= COPY_INLINE_MAX {
            out.place(&read, &bytes)?;
        } else {
            out = tokio::task::spawn_blocking(move || {
                out.place(&read, &bytes)?;
                Ok::<_, ApiError>(out)
            })
            .await
            .map_err(|e| ApiError::internal(e.to_string()))??;
        }
    }
    Ok(ArrayData::new(
        structure.data_type.clone(),
        out_shape,
        Bytes::from(out.finish()),
    ))
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
