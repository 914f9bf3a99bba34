//! The read planner: maps a selection of an array to the native chunks it touches, fetches
//! each through the chunk cache (whose misses run as jobs, here or on workers), and assembles the
//! result. A request for exactly one whole chunk is answered with the cached bytes as they are.
//! Table partitions of formats parsed whole (CSV, Excel) go through the chunk cache too.

use std::sync::Arc;

use arrow_array::RecordBatch;
use axum::http::StatusCode;
use bytes::Bytes;
use futures::{StreamExt, stream};
use tessera_common::adapters::SparseBlock;
use tessera_common::adapters::{self, DataSource};
use tessera_common::array::ArrayData;
use tessera_common::chunks::{Assembler, ChunkGrid};
use tessera_common::jobs::{self, ChunkKey, Job, SourceId, Work};
use tessera_common::slicing::Selection;
use tessera_common::structure::ArrayStructure;

use crate::error::ApiError;
use crate::state::AppState;

/// Chunks fetched concurrently for one request.
const FETCH_CONCURRENCY: usize = 8;

/// One decoded chunk of `source` (whose identity is `id`), via the cache.
async fn chunk(
    state: &AppState,
    id: SourceId,
    source: &Arc<DataSource>,
    version: u64,
    block: Vec<usize>,
) -> Result<Bytes, ApiError> {
    let job = Job {
        source: source.clone(),
        data_version: version,
        work: Work::Block(block),
    };
    state.cache.get(ChunkKey::of(id, &job), job).await
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

/// Reads `sel` of the array stored in `source` (whose identity is `id`), within the
/// request's budgets. Chunks are
/// copied into the result as they arrive and dropped, so a request holds its result and at
/// most [`FETCH_CONCURRENCY`] chunks, never all the chunks it touches.
pub async fn read_array(
    state: &AppState,
    structure: &ArrayStructure,
    source: &DataSource,
    id: SourceId,
    version: u64,
    sel: &Selection,
) -> Result<ArrayData, ApiError> {
    let grid = selection_budget(state, structure, sel)?;
    let itemsize = structure.data_type.itemsize();
    let plan = grid.plan(sel);
    let out_shape = sel.out_shape();
    let source = &Arc::new(source.clone());
    // Fast path: one whole chunk, unsliced, goes out without a copy.
    if let [only] = plan.as_slice()
        && let Ok(bshape) = grid.block_shape(&only.block)
        && only.within.is_full(&bshape)
        && only.within.dims.iter().all(|d| d.keep)
    {
        let bytes = chunk(state, id, source, version, only.block.clone()).await?;
        return Ok(ArrayData::new(
            structure.data_type.clone(),
            out_shape,
            bytes,
        ));
    }
    let mut out = Assembler::new(grid, sel, itemsize);
    let mut arrivals = stream::iter(plan)
        .map(|read| async move {
            let bytes = chunk(state, id, source, version, read.block.clone()).await?;
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

/// The chunk grid of `structure`, once `sel` is known to fit the request's budgets.
fn selection_budget(
    state: &AppState,
    structure: &ArrayStructure,
    sel: &Selection,
) -> Result<ChunkGrid, ApiError> {
    let grid = ChunkGrid::new(&structure.shape, structure.chunks.clone())?;
    let touched = grid.touched(sel);
    check_budget(
        state,
        "this selection",
        touched.chunks,
        touched
            .elements
            .saturating_mul(structure.data_type.itemsize() as u128),
        "ask for fewer elements along the chunked dimensions (a smaller slice), or read \
         the native chunks one by one with /array/block",
    )?;
    Ok(grid)
}

/// Media types whose encoding of an array costs more than its decoding: with workers, the
/// whole selection goes to one as a job (decode, assemble, encode) and comes back encoded.
const ENCODED_BY_WORKERS: [&str; 2] = [crate::negotiate::PNG, crate::negotiate::TIFF];

/// Whether this node sends its decoding to workers (a cluster with NATS).
fn has_workers(state: &AppState) -> bool {
    state
        .config
        .cluster
        .as_ref()
        .is_some_and(|c| c.nats_url.is_some())
}

/// Whether an array selection as `media` is a job for the workers (see
/// [`ENCODED_BY_WORKERS`]); otherwise the node assembles and encodes it.
pub fn encodes_on_workers(state: &AppState, media: &str) -> bool {
    ENCODED_BY_WORKERS.contains(&media) && has_workers(state)
}

/// Table exports that cost more to encode than to read: with workers, one job reads the
/// partitions and encodes them.
const EXPORTED_BY_WORKERS: [&str; 3] = [
    crate::negotiate::PARQUET,
    crate::negotiate::XLSX,
    crate::negotiate::HDF5,
];

/// Whether a table export as `media` is a job for the workers (see [`EXPORTED_BY_WORKERS`]).
pub fn exports_on_workers(state: &AppState, media: &str) -> bool {
    EXPORTED_BY_WORKERS.contains(&media) && has_workers(state)
}

/// The result of `work` on `source` (at data version `version`) through the chunk cache: run
/// by a worker, kept in both tiers, coalesced across nodes.
pub async fn job_result(
    state: &AppState,
    source: &DataSource,
    version: u64,
    work: Work,
) -> Result<Bytes, ApiError> {
    let job = Job {
        source: Arc::new(source.clone()),
        data_version: version,
        work,
    };
    let key = ChunkKey::of(SourceId::of(source), &job);
    state.cache.get(key, job).await
}

/// An Arrow IPC file of one batch, as partition jobs leave them.
fn batch_of(bytes: Bytes) -> Result<RecordBatch, ApiError> {
    let mut reader = arrow_ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None)
        .map_err(|e| ApiError::internal(format!("a cached partition is unreadable: {e}")))?;
    match reader.next() {
        Some(batch) => batch.map_err(|e| ApiError::internal(e.to_string())),
        None => Err(ApiError::internal("a cached partition holds no batch")),
    }
}

/// One block of the sparse array stored in `source`: a worker's job in a cluster.
pub async fn read_sparse_block(
    state: &AppState,
    source: &DataSource,
    version: u64,
    block: &[usize],
) -> Result<SparseBlock, ApiError> {
    if !has_workers(state) {
        return state.dispatcher.read_sparse_block(source, block).await;
    }
    let bytes = job_result(state, source, version, Work::SparseBlock(block.to_vec())).await?;
    Ok(jobs::sparse_block_of(&bytes)?)
}

/// Awkward buffers by form key (all for none): a worker's job in a cluster.
pub async fn read_awkward_buffers(
    state: &AppState,
    source: &DataSource,
    version: u64,
    form_keys: &[String],
) -> Result<Vec<(String, Bytes)>, ApiError> {
    if !has_workers(state) {
        return state
            .dispatcher
            .read_awkward_buffers(source, form_keys)
            .await;
    }
    let bytes = job_result(state, source, version, Work::Awkward(form_keys.to_vec())).await?;
    Ok(jobs::named_buffers_of(&bytes)?)
}

/// The whole ragged array stored in `source`: a worker's job in a cluster.
pub async fn read_ragged(
    state: &AppState,
    source: &DataSource,
    version: u64,
) -> Result<(Vec<Vec<i64>>, ArrayData), ApiError> {
    if !has_workers(state) {
        return state.dispatcher.read_ragged(source).await;
    }
    let bytes = job_result(state, source, version, Work::Ragged).await?;
    Ok(jobs::ragged_of(&bytes)?)
}

/// `sel` of the array stored in `source`, encoded as `media` by a worker (within the
/// request's budgets), through the chunk cache: concurrent requests for one image wait for one
/// encode, cluster-wide.
pub async fn encode_array(
    state: &AppState,
    structure: &ArrayStructure,
    source: &DataSource,
    id: SourceId,
    version: u64,
    sel: &Selection,
    media: &str,
) -> Result<Bytes, ApiError> {
    selection_budget(state, structure, sel)?;
    // The worker plans the selection on the structure the source carries.
    let source = match source.parameters.contains_key("structure") {
        true => source.clone(),
        false => adapters::with_structure(source, structure),
    };
    let job = Job {
        source: Arc::new(source),
        data_version: version,
        work: Work::Encode {
            selection: sel.clone(),
            media: media.to_string(),
        },
    };
    state.cache.get(ChunkKey::of(id, &job), job).await
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
        // Columnar formats decode only the columns asked for: on this node, or as a job for
        // a worker in a cluster (whose result is then cached too).
        return match (columns, has_workers(state)) {
            (Some(c), false) => state.dispatcher.read_partition_columns(source, i, c).await,
            (None, false) => state.dispatcher.read_partition(source, i).await,
            (Some(c), true) => {
                let work = Work::Columns {
                    partition: i,
                    columns: c.to_vec(),
                };
                batch_of(job_result(state, source, version, work).await?)
            }
            (None, true) => batch_of(job_result(state, source, version, Work::Partition(i)).await?),
        };
    }
    batch_of(job_result(state, source, version, Work::Partition(i)).await?)
}
