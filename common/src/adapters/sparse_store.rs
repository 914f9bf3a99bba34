//! Sparse (COO) arrays written through the API: one Parquet file per block under the array's
//! location (`block-<i>.<j>.parquet`), with columns `dim0..dim<n-1>` (coordinates relative to
//! the block) and `data`. A block never written holds no points.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_schema::DataType as ArrowType;

use super::parquet_table::{get_parquet, put_parquet};
use super::table_column::arrow_to_array;
use super::{Adapter, AdapterError, DataSource, SparseBlock, SparseReader};
use crate::array::ArrayData;
use crate::chunks::ChunkGrid;
use crate::structure::SparseStructure;

/// The mimetype of sparse arrays kept as Parquet blocks (Tiled's name for the same layout).
pub const MIMETYPE: &str = "application/x-parquet;structure=sparse";

fn block_name(block: &[usize]) -> String {
    let parts: Vec<String> = block.iter().map(usize::to_string).collect();
    format!("block-{}.parquet", parts.join("."))
}

/// Checks a block's points (columns `dim0..`, `data`) against the block's shape and returns
/// them as a batch of exactly those columns.
pub fn check_block(
    batch: &RecordBatch,
    s: &SparseStructure,
    block_shape: &[usize],
) -> Result<RecordBatch, AdapterError> {
    let bad = |m: String| AdapterError::BadSource(m);
    let mut keep = Vec::new();
    for (d, &extent) in block_shape.iter().enumerate() {
        let name = format!("dim{d}");
        let i = batch
            .schema()
            .index_of(&name)
            .map_err(|_| bad(format!("the points have no column {name}")))?;
        let col = arrow_cast::cast(batch.column(i), &ArrowType::Int64)
            .map_err(|e| bad(format!("column {name} is not integers: {e}")))?;
        let ints = col.as_primitive::<Int64Type>();
        if let Some(v) = ints
            .iter()
            .flatten()
            .find(|&v| v < 0 || v as usize >= extent)
        {
            return Err(bad(format!(
                "coordinate {v} in {name} is outside the block (extent {extent})"
            )));
        }
        keep.push(i);
    }
    let data = batch
        .schema()
        .index_of("data")
        .map_err(|_| bad("the points have no column data".into()))?;
    arrow_to_array(batch.column(data), &s.data_type)
        .map_err(|e| bad(format!("column data does not hold {:?}: {e}", s.data_type)))?;
    keep.push(data);
    batch.project(&keep).map_err(|e| bad(e.to_string()))
}

/// Stores one block's points.
pub async fn write_block(
    uri: &str,
    block: &[usize],
    batch: RecordBatch,
) -> Result<(), AdapterError> {
    put_parquet(uri, &block_name(block), &[batch]).await
}

struct SparseBlocks {
    uri: String,
    structure: SparseStructure,
    grid: ChunkGrid,
    handle: tokio::runtime::Handle,
}

impl SparseReader for SparseBlocks {
    fn read_block(&self, block: &[usize]) -> Result<SparseBlock, AdapterError> {
        self.grid
            .block_shape(block)
            .map_err(|e| AdapterError::BlockOutOfRange {
                block: block.to_vec(),
                reason: e.to_string(),
            })?;
        let ndim = self.structure.shape.len();
        let batches = self
            .handle
            .block_on(get_parquet(&self.uri, &block_name(block)))?
            .unwrap_or_default();
        let mut coords = vec![Vec::new(); ndim];
        let mut bytes = Vec::new();
        let mut n = 0;
        for b in &batches {
            for (d, c) in coords.iter_mut().enumerate() {
                let col = b
                    .column_by_name(&format!("dim{d}"))
                    .ok_or_else(|| AdapterError::Read(format!("block {block:?} lacks dim{d}")))?;
                let col = arrow_cast::cast(col, &ArrowType::Int64)
                    .map_err(|e| AdapterError::Read(e.to_string()))?;
                c.extend(
                    col.as_primitive::<Int64Type>()
                        .iter()
                        .map(|v| v.unwrap_or(0)),
                );
            }
            let data = b
                .column_by_name("data")
                .ok_or_else(|| AdapterError::Read(format!("block {block:?} lacks data")))?;
            let a = arrow_to_array(data, &self.structure.data_type)?;
            n += a.shape.iter().product::<usize>();
            bytes.extend_from_slice(&a.bytes);
        }
        Ok(SparseBlock {
            coords,
            data: ArrayData::new(self.structure.data_type.clone(), vec![n], bytes),
        })
    }
}

/// Opens a sparse data source (its first asset is the array's location).
pub fn open(source: &DataSource) -> Result<Adapter, AdapterError> {
    let structure: SparseStructure = super::structure_of(source)?;
    let grid = ChunkGrid::new(&structure.shape, structure.chunks.clone())
        .map_err(|e| AdapterError::BadSource(e.to_string()))?;
    Ok(Adapter::Sparse(Arc::new(SparseBlocks {
        uri: super::first_asset(source)?,
        structure,
        grid,
        handle: super::runtime()?,
    })))
}
