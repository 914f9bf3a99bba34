//! Chunk grids (Tiled's per-dimension chunk lengths), the planner that maps a selection to
//! the native chunks it touches, and the assembly of a selection from decoded chunks. Also
//! dask's "auto" chunking, which decides the chunks of the demo's arrays.

use crate::slicing::{
    Axis, DimRange, Selection, assert_selection_fits, c_strides, for_each_line, gather, merge_axes,
};

/// Tiled-style chunking: one list of chunk lengths per dimension (each sums to the length).
/// A 0-d array has no dimensions and exactly one chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkGrid {
    chunks: Vec<Vec<usize>>,
}

/// A chunk grid that does not fit its shape, a block index outside the grid, or a decoded
/// chunk of the wrong size.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error("chunks describe {got} dimensions but the shape {shape:?} has {}", shape.len())]
    Rank { got: usize, shape: Vec<usize> },
    #[error("chunks of dimension {dim} sum to {sum} but its length is {len}")]
    Sum { dim: usize, sum: u128, len: usize },
    #[error(
        "chunk {position} of dimension {dim} has length 0; only a dimension of length 0 may \
         have an empty chunk (as its only chunk), and this one has length {len}"
    )]
    EmptyChunk {
        dim: usize,
        position: usize,
        len: usize,
    },
    #[error(
        "block {block:?} has {} but the array has {}; give one block index per dimension",
        counted(block.len(), "index", "indices"),
        counted(*ndim, "dimension", "dimensions")
    )]
    BlockArity { block: Vec<usize>, ndim: usize },
    #[error("block index {index} is out of range for dimension {dim}: {}", valid_blocks(*blocks))]
    BlockOutOfRange {
        dim: usize,
        index: usize,
        blocks: usize,
    },
    #[error(
        "chunk {block:?} decoded to {got} bytes but its shape {shape:?} needs {expected} bytes"
    )]
    ChunkSize {
        block: Vec<usize>,
        shape: Vec<usize>,
        got: usize,
        expected: usize,
    },
}

fn counted(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn valid_blocks(blocks: usize) -> String {
    match blocks {
        0 => "it has no blocks".to_string(),
        n => format!("valid indices are 0 to {}", n - 1),
    }
}

/// One native chunk a selection needs: which block, which part of it (a full-rank selection
/// in block coordinates), and where its elements land in the output (full-rank offsets, before
/// integer-indexed dimensions are dropped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkRead {
    /// The block's index in the grid.
    pub block: Vec<usize>,
    /// The selected part of the block, in block coordinates (full rank).
    pub within: Selection,
    /// Where that part's first element lands in the output, per array dimension.
    pub out_offset: Vec<usize>,
}

/// `origins[b]` is where block `b` starts; the last entry is the dimension's length.
fn origins(lengths: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(lengths.len() + 1);
    let mut acc = 0;
    out.push(0);
    for len in lengths {
        acc += len;
        out.push(acc);
    }
    out
}

/// The selected elements of one dimension grouped by the block they fall in, in ascending
/// block order: `(block, part within the block, position of its first element in the
/// selection)`.
fn dim_runs(d: &DimRange, lengths: &[usize]) -> Vec<(usize, DimRange, usize)> {
    let origins = origins(lengths);
    let stride = d.step.unsigned_abs();
    let mut runs = Vec::new();
    let mut k = 0;
    while k < d.len {
        let g = d.index(k);
        // The last block starting at or before g (origins[0] == 0 <= g).
        let b = origins.partition_point(|&o| o <= g) - 1;
        // Jump straight to the first element past this block instead of walking them.
        let in_block = if d.step > 0 {
            (origins[b + 1] - g).div_ceil(stride)
        } else {
            (g - origins[b]) / stride + 1
        };
        let len = in_block.min(d.len - k);
        runs.push((
            b,
            DimRange {
                start: g - origins[b],
                step: if len > 1 { d.step } else { 1 },
                len,
                keep: d.keep,
            },
            k,
        ));
        k += len;
    }
    // A backwards selection meets the blocks in descending order.
    if d.step < 0 {
        runs.reverse();
    }
    runs
}

/// What a selection costs to read: the blocks it touches and the elements they hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Touched {
    pub chunks: u128,
    pub elements: u128,
}

/// Blocks of one dimension that `d` touches, and their total length. A unit step is two
/// binary searches; other steps walk block by block (never element by element).
fn dim_touched(d: &DimRange, lengths: &[usize]) -> (u128, u128) {
    if d.len == 0 {
        return (0, 0);
    }
    let origins = origins(lengths);
    let block_of = |g: usize| origins.partition_point(|&o| o <= g) - 1;
    let (lo, hi) = {
        let (a, b) = (d.index(0), d.index(d.len - 1));
        (a.min(b), a.max(b))
    };
    let (first, last) = (block_of(lo), block_of(hi));
    if d.step.unsigned_abs() == 1 {
        let elements = (origins[last + 1] - origins[first]) as u128;
        return ((last - first + 1) as u128, elements);
    }
    let stride = d.step.unsigned_abs();
    let (mut chunks, mut elements) = (0u128, 0u128);
    let mut g = lo;
    loop {
        let b = block_of(g);
        chunks += 1;
        elements += lengths[b] as u128;
        // The first selected element at or past the next block's origin.
        let next = origins[b + 1];
        if next > hi {
            break;
        }
        g = lo + (next - lo).div_ceil(stride) * stride;
        if g > hi {
            break;
        }
    }
    (chunks, elements)
}

impl ChunkGrid {
    /// Checks `chunks` against `shape`: same rank, each dimension's chunks sum to its length,
    /// and no empty chunks except `[0]` (or `[]`) for a dimension of length 0.
    pub fn new(shape: &[usize], chunks: Vec<Vec<usize>>) -> Result<Self, ChunkError> {
        if chunks.len() != shape.len() {
            return Err(ChunkError::Rank {
                got: chunks.len(),
                shape: shape.to_vec(),
            });
        }
        for (dim, (c, &len)) in chunks.iter().zip(shape).enumerate() {
            // u128 so that a hostile chunk list cannot overflow the sum.
            let sum: u128 = c.iter().map(|&x| x as u128).sum();
            if sum != len as u128 {
                return Err(ChunkError::Sum { dim, sum, len });
            }
            let empty_allowed = len == 0 && c.len() <= 1;
            if let Some(position) = c.iter().position(|&x| x == 0)
                && !empty_allowed
            {
                return Err(ChunkError::EmptyChunk { dim, position, len });
            }
        }
        Ok(ChunkGrid { chunks })
    }

    /// Regular chunks of `chunk_shape`, the last of each dimension possibly shorter (dask's
    /// layout: 10000 by 4096 is `[4096, 4096, 1808]`, a length of 0 is `[0]`). A chunk length
    /// of 0, or a missing one, takes the whole dimension.
    pub fn regular(shape: &[usize], chunk_shape: &[usize]) -> Self {
        let chunks = shape
            .iter()
            .enumerate()
            .map(|(k, &n)| split(n, chunk_shape.get(k).copied().unwrap_or(0)))
            .collect();
        ChunkGrid { chunks }
    }

    /// The chunk lengths per dimension.
    pub fn chunks(&self) -> &[Vec<usize>] {
        &self.chunks
    }

    /// The array's shape.
    pub fn shape(&self) -> Vec<usize> {
        self.chunks.iter().map(|c| c.iter().sum()).collect()
    }

    /// Number of blocks per dimension.
    pub fn grid_shape(&self) -> Vec<usize> {
        self.chunks.iter().map(Vec::len).collect()
    }

    fn check(&self, block: &[usize]) -> Result<(), ChunkError> {
        if block.len() != self.chunks.len() {
            return Err(ChunkError::BlockArity {
                block: block.to_vec(),
                ndim: self.chunks.len(),
            });
        }
        for (dim, (&index, c)) in block.iter().zip(&self.chunks).enumerate() {
            if index >= c.len() {
                return Err(ChunkError::BlockOutOfRange {
                    dim,
                    index,
                    blocks: c.len(),
                });
            }
        }
        Ok(())
    }

    /// Where block `block` starts in the array.
    pub fn block_origin(&self, block: &[usize]) -> Result<Vec<usize>, ChunkError> {
        self.check(block)?;
        Ok(block
            .iter()
            .zip(&self.chunks)
            .map(|(&b, c)| c[..b].iter().sum())
            .collect())
    }

    /// The shape of block `block`.
    pub fn block_shape(&self, block: &[usize]) -> Result<Vec<usize>, ChunkError> {
        self.check(block)?;
        Ok(block.iter().zip(&self.chunks).map(|(&b, c)| c[b]).collect())
    }

    /// How many blocks `sel` touches and how many elements they hold in all: what reading it
    /// costs in chunks and decoded bytes, however few elements it keeps. Counted without
    /// listing the blocks, so a hostile selection cannot make this allocate; saturates.
    ///
    /// # Panics
    /// If `sel` was not resolved against this grid's shape.
    pub fn touched(&self, sel: &Selection) -> Touched {
        assert_selection_fits(&self.shape(), sel);
        if sel.num_elements() == 0 {
            return Touched::default();
        }
        let (mut chunks, mut elements) = (1u128, 1u128);
        for (d, lengths) in sel.dims.iter().zip(&self.chunks) {
            let (c, e) = dim_touched(d, lengths);
            chunks = chunks.saturating_mul(c);
            elements = elements.saturating_mul(e);
        }
        Touched { chunks, elements }
    }

    /// Every block `sel` touches, in C order of block index, with the part of it selected.
    /// An empty selection touches none.
    ///
    /// # Panics
    /// If `sel` was not resolved against this grid's shape.
    pub fn plan(&self, sel: &Selection) -> Vec<ChunkRead> {
        assert_selection_fits(&self.shape(), sel);
        if sel.num_elements() == 0 {
            return Vec::new();
        }
        let per_dim: Vec<Vec<(usize, DimRange, usize)>> = sel
            .dims
            .iter()
            .zip(&self.chunks)
            .map(|(d, lengths)| dim_runs(d, lengths))
            .collect();
        let count: usize = per_dim.iter().map(Vec::len).product();
        let mut out = Vec::with_capacity(count);
        let mut idx = vec![0usize; per_dim.len()];
        loop {
            let runs = idx.iter().zip(&per_dim).map(|(&i, r)| &r[i]);
            out.push(ChunkRead {
                block: runs.clone().map(|r| r.0).collect(),
                within: Selection {
                    dims: runs.clone().map(|r| r.1.clone()).collect(),
                },
                out_offset: runs.map(|r| r.2).collect(),
            });
            // Odometer, last dimension fastest: C order of block index.
            let mut k = per_dim.len();
            loop {
                if k == 0 {
                    return out;
                }
                k -= 1;
                idx[k] += 1;
                if idx[k] < per_dim[k].len() {
                    break;
                }
                idx[k] = 0;
            }
        }
    }
}

/// `n` in chunks of `c` (0 meaning all of it), the remainder last; a length of 0 is `[0]`.
fn split(n: usize, c: usize) -> Vec<usize> {
    if n == 0 {
        return vec![0];
    }
    let c = if c == 0 { n } else { c.min(n) };
    let mut v = vec![c; n / c];
    if !n.is_multiple_of(c) {
        v.push(n % c);
    }
    v
}

/// Copies `len` elements between two strided positions (strides in elements).
fn copy_strided(
    src: &[u8],
    (mut s, s_stride): (isize, isize),
    dst: &mut [u8],
    (mut d, d_stride): (isize, isize),
    len: usize,
    itemsize: usize,
) {
    for _ in 0..len {
        let (from, to) = (s as usize * itemsize, d as usize * itemsize);
        dst[to..to + itemsize].copy_from_slice(&src[from..from + itemsize]);
        s += s_stride;
        d += d_stride;
    }
}

/// Assembles the C-order result of `sel` from its chunks: `chunk(block)` returns the decoded
/// block (C order, of the block's shape), and each read's part is copied straight into place.
/// Negative steps come out in selection order. Chunks are requested in plan order; a chunk
/// of the wrong byte length is a [`ChunkError::ChunkSize`].
///
/// # Panics
/// If `sel` was not resolved against this grid's shape.
pub fn assemble<E, B>(
    grid: &ChunkGrid,
    sel: &Selection,
    itemsize: usize,
    mut chunk: impl FnMut(&[usize]) -> Result<B, E>,
) -> Result<Vec<u8>, E>
where
    B: AsRef<[u8]>,
    E: From<ChunkError>,
{
    let mut out = Assembler::new(grid.clone(), sel, itemsize);
    if out.is_empty() {
        return Ok(out.finish());
    }
    for read in &grid.plan(sel) {
        let data = chunk(&read.block)?;
        out.place(read, data.as_ref())?;
    }
    Ok(out.finish())
}

/// The C-order result of a selection, built one chunk at a time in any order: each chunk's
/// part is copied into place as it arrives, so the chunk can be dropped at once.
pub struct Assembler {
    grid: ChunkGrid,
    out: Vec<u8>,
    out_strides: Vec<usize>,
    itemsize: usize,
}

impl Assembler {
    /// An output buffer for `sel` of `grid`'s array, zeroed.
    ///
    /// # Panics
    /// If `sel` was not resolved against the grid's shape.
    pub fn new(grid: ChunkGrid, sel: &Selection, itemsize: usize) -> Self {
        assert_selection_fits(&grid.shape(), sel);
        let lens: Vec<usize> = sel.dims.iter().map(|d| d.len).collect();
        let n: usize = lens.iter().product();
        Assembler {
            grid,
            out: vec![0u8; n * itemsize],
            out_strides: c_strides(&lens, 1),
            itemsize,
        }
    }

    /// Whether there is nothing to copy (no elements, or elements of no size).
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Copies `read`'s part of its decoded chunk `src` into place.
    pub fn place(&mut self, read: &ChunkRead, src: &[u8]) -> Result<(), ChunkError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let itemsize = self.itemsize;
        let bshape = self.grid.block_shape(&read.block)?;
        let expected = bshape.iter().product::<usize>() * itemsize;
        if src.len() != expected {
            return Err(ChunkError::ChunkSize {
                block: read.block.clone(),
                shape: bshape,
                got: src.len(),
                expected,
            });
        }
        let block_strides = c_strides(&bshape, 1);
        let (mut s_base, mut d_base) = (0isize, 0isize);
        let axes: Vec<Axis> = read
            .within
            .dims
            .iter()
            .zip(&read.out_offset)
            .zip(block_strides.iter().zip(&self.out_strides))
            .map(|((d, &o), (&bs, &os))| {
                s_base += (d.start * bs) as isize;
                d_base += (o * os) as isize;
                Axis {
                    len: d.len,
                    src: d.step * bs as isize,
                    dst: os as isize,
                }
            })
            .collect();
        let axes = merge_axes(&axes);
        let inner = axes[axes.len() - 1];
        let run = inner.len * itemsize;
        let out = &mut self.out;
        for_each_line(&axes, s_base, d_base, |s, d| {
            let (s, d) = (s as usize, d as usize);
            let dst = &mut out[d * itemsize..];
            match (inner.src, inner.dst) {
                (1, 1) => dst[..run].copy_from_slice(&src[s * itemsize..s * itemsize + run]),
                (stride, 1) => gather(src, s, stride, &mut dst[..run], itemsize),
                // The part's innermost kept axis is not the output's innermost (this chunk
                // holds a single column of a wider selection): scatter element by element.
                (s_stride, d_stride) => copy_strided(
                    src,
                    (s as isize, s_stride),
                    dst,
                    (0, d_stride),
                    inner.len,
                    itemsize,
                ),
            }
        });
        Ok(())
    }

    /// The assembled bytes.
    pub fn finish(self) -> Vec<u8> {
        self.out
    }
}

/// dask's `"auto"` chunks for `shape`: the whole array when it fits in `target_bytes`,
/// otherwise a roughly cubic chunk of at most `target_bytes`, as `dask.array.core.auto_chunks`
/// computes it without previous chunks (dimensions shorter than the ideal side are taken
/// whole and the side recomputed for the rest; the side is then truncated to an integer).
pub fn auto_chunks(shape: &[usize], itemsize: usize, target_bytes: usize) -> Vec<Vec<usize>> {
    if shape.contains(&0) || itemsize == 0 {
        return shape.iter().map(|&n| vec![n]).collect();
    }
    let mut side: Vec<Option<usize>> = vec![None; shape.len()];
    // The product of the sides already fixed, as dask's `largest_block`.
    let mut fixed = 1f64;
    loop {
        let autos: Vec<usize> = (0..shape.len()).filter(|&i| side[i].is_none()).collect();
        if autos.is_empty() {
            break;
        }
        // Same float operations in the same order as dask, so the roundings agree.
        let ideal = (target_bytes as f64 / itemsize as f64 / fixed).powf(1.0 / autos.len() as f64);
        let small: Vec<usize> = autos
            .iter()
            .copied()
            .filter(|&i| (shape[i] as f64) < ideal)
            .collect();
        if small.is_empty() {
            for i in autos {
                // dask's round_to: the ideal side truncated (never below 1), capped at the
                // dimension's length.
                side[i] = Some((ideal as usize).clamp(1, shape[i]));
            }
            break;
        }
        for i in small {
            side[i] = Some(shape[i]);
            fixed *= shape[i] as f64;
        }
    }
    shape
        .iter()
        .zip(side)
        .map(|(&n, c)| split(n, c.unwrap_or(n)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slicing::{DimSelector, SliceSpec, copy_selection};
    use proptest::prelude::*;
    use std::str::FromStr;

    const MIB128: usize = 128 * 1024 * 1024;

    fn sel(s: &str, shape: &[usize]) -> Selection {
        SliceSpec::from_str(s).unwrap().resolve(shape).unwrap()
    }

    /// A grid's blocks cut out of a whole C-order array (the "decoded chunks").
    fn block_of(grid: &ChunkGrid, whole: &[u8], itemsize: usize, block: &[usize]) -> Vec<u8> {
        let origin = grid.block_origin(block).unwrap();
        let bshape = grid.block_shape(block).unwrap();
        let part = Selection {
            dims: origin
                .iter()
                .zip(&bshape)
                .map(|(&start, &len)| DimRange {
                    start,
                    step: 1,
                    len,
                    keep: true,
                })
                .collect(),
        };
        copy_selection(whole, &grid.shape(), itemsize, &part)
    }

    #[test]
    fn grids_are_validated() {
        assert!(ChunkGrid::new(&[10], vec![vec![5, 5]]).is_ok());
        let e = ChunkGrid::new(&[10], vec![vec![5, 4]])
            .unwrap_err()
            .to_string();
        assert_eq!(e, "chunks of dimension 0 sum to 9 but its length is 10");
        let e = ChunkGrid::new(&[10, 2], vec![vec![10]])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "chunks describe 1 dimensions but the shape [10, 2] has 2"
        );
        let e = ChunkGrid::new(&[5], vec![vec![5, 0]])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("chunk 1 of dimension 0 has length 0"), "{e}");
        assert!(ChunkGrid::new(&[0], vec![vec![0, 0]]).is_err());
        assert!(ChunkGrid::new(&[usize::MAX], vec![vec![usize::MAX, 1]]).is_err());
        // Zero-length dimensions: `[0]` or `[]`.
        let g = ChunkGrid::new(&[0, 3], vec![vec![0], vec![3]]).unwrap();
        assert_eq!(g.grid_shape(), vec![1, 1]);
        assert_eq!(g.block_shape(&[0, 0]).unwrap(), vec![0, 3]);
        let g = ChunkGrid::new(&[0], vec![vec![]]).unwrap();
        assert_eq!(g.grid_shape(), vec![0]);
        assert_eq!(
            g.block_origin(&[0]).unwrap_err().to_string(),
            "block index 0 is out of range for dimension 0: it has no blocks"
        );
        // 0-d: no dimensions, one block.
        let g = ChunkGrid::new(&[], vec![]).unwrap();
        assert_eq!(g.block_shape(&[]).unwrap(), Vec::<usize>::new());
        assert_eq!(g.block_origin(&[]).unwrap(), Vec::<usize>::new());
        assert_eq!(g.plan(&Selection::full(&[])).len(), 1);
        assert!(g.block_shape(&[0]).is_err());
    }

    #[test]
    fn block_geometry_and_errors() {
        let g = ChunkGrid::new(&[1000, 1000], vec![vec![250; 4], vec![100; 10]]).unwrap();
        assert_eq!(g.block_origin(&[1, 3]).unwrap(), vec![250, 300]);
        assert_eq!(g.block_shape(&[3, 9]).unwrap(), vec![250, 100]);
        assert_eq!(g.grid_shape(), vec![4, 10]);
        assert_eq!(g.shape(), vec![1000, 1000]);
        assert_eq!(
            g.block_origin(&[4, 0]).unwrap_err().to_string(),
            "block index 4 is out of range for dimension 0: valid indices are 0 to 3"
        );
        assert_eq!(
            g.block_shape(&[0, 10]).unwrap_err().to_string(),
            "block index 10 is out of range for dimension 1: valid indices are 0 to 9"
        );
        assert_eq!(
            g.block_origin(&[0]).unwrap_err().to_string(),
            "block [0] has 1 index but the array has 2 dimensions; give one block index per \
             dimension"
        );
        assert!(g.block_shape(&[0, 0, 0]).is_err());
    }

    #[test]
    fn regular_grids() {
        assert_eq!(
            ChunkGrid::regular(&[10_000], &[4096]).chunks(),
            &[vec![4096, 4096, 1808]]
        );
        assert_eq!(ChunkGrid::regular(&[10], &[5]).chunks(), &[vec![5, 5]]);
        assert_eq!(ChunkGrid::regular(&[3], &[5]).chunks(), &[vec![3]]);
        assert_eq!(ChunkGrid::regular(&[0], &[5]).chunks(), &[vec![0]]);
        assert_eq!(
            ChunkGrid::regular(&[7, 4], &[0]).chunks(),
            &[vec![7], vec![4]]
        );
        assert_eq!(ChunkGrid::regular(&[], &[]).chunks(), &[] as &[Vec<usize>]);
        let g = ChunkGrid::regular(&[10, 3], &[4, 2]);
        assert_eq!(ChunkGrid::new(&[10, 3], g.chunks().to_vec()).unwrap(), g);
    }

    #[test]
    fn plan_touches_only_needed_blocks() {
        let shape = [1000, 1000];
        let g = ChunkGrid::new(&shape, vec![vec![250; 4], vec![100; 10]]).unwrap();
        let plan = g.plan(&sel("240:260,5", &shape));
        let blocks: Vec<_> = plan.iter().map(|r| r.block.clone()).collect();
        assert_eq!(blocks, vec![vec![0, 0], vec![1, 0]]);
        assert_eq!(plan[0].within, sel("240:250,5", &[250, 100]));
        assert_eq!(plan[1].within, sel("0:10,5", &[250, 100]));
        assert_eq!(plan[1].out_offset, vec![10, 0]);
        // A stride larger than a block skips the blocks it jumps over.
        let plan = g.plan(&sel("0,::350", &shape));
        let cols: Vec<_> = plan.iter().map(|r| r.block[1]).collect();
        assert_eq!(cols, vec![0, 3, 7]);
        assert_eq!(
            plan.iter().map(|r| r.out_offset[1]).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        // Backwards: blocks still come in C order, and offsets say where each part goes.
        let plan = g.plan(&sel("::-1,999", &shape));
        let rows: Vec<_> = plan.iter().map(|r| (r.block[0], r.out_offset[0])).collect();
        assert_eq!(rows, vec![(0, 750), (1, 500), (2, 250), (3, 0)]);
        assert_eq!(
            plan[3].within.dims[0],
            DimRange {
                start: 249,
                step: -1,
                len: 250,
                keep: true
            }
        );
        assert!(g.plan(&sel("5:5", &shape)).is_empty());
        // The whole array: every block, whole.
        let plan = g.plan(&Selection::full(&shape));
        assert_eq!(plan.len(), 40);
        assert!(
            plan.iter()
                .all(|r| r.within.is_full(&g.block_shape(&r.block).unwrap()))
        );
    }

    #[test]
    fn assemble_handles_reversal_columns_and_bad_chunks() {
        let shape = [6, 5];
        let g = ChunkGrid::new(&shape, vec![vec![2, 4], vec![3, 2]]).unwrap();
        let whole: Vec<u8> = (0..30).collect();
        let get = |b: &[usize]| -> Result<Vec<u8>, ChunkError> { Ok(block_of(&g, &whole, 1, b)) };
        for s in ["", "::-1,::-2", "1:5,2:4", "4", ":,3", "-1:0:-2,1:4", "2:2"] {
            let want = copy_selection(&whole, &shape, 1, &sel(s, &shape));
            assert_eq!(assemble(&g, &sel(s, &shape), 1, get).unwrap(), want, "{s}");
        }
        // A chunk of the wrong size is an error, not a panic; the closure's errors pass through.
        let short = assemble(
            &g,
            &Selection::full(&shape),
            1,
            |_| -> Result<Vec<u8>, ChunkError> { Ok(vec![0; 3]) },
        );
        assert_eq!(
            short.unwrap_err().to_string(),
            "chunk [0, 0] decoded to 3 bytes but its shape [2, 3] needs 6 bytes"
        );
        let failing = assemble(&g, &Selection::full(&shape), 1, |b| {
            Err::<Vec<u8>, _>(ChunkError::BlockArity {
                block: b.to_vec(),
                ndim: 9,
            })
        });
        assert!(matches!(
            failing,
            Err(ChunkError::BlockArity { ndim: 9, .. })
        ));
        // An empty selection asks for no chunks.
        let empty = assemble(
            &g,
            &sel("3:3", &shape),
            1,
            |_| -> Result<Vec<u8>, ChunkError> { panic!("no chunk should be read") },
        );
        assert!(empty.unwrap().is_empty());
        // 0-d.
        let g0 = ChunkGrid::new(&[], vec![]).unwrap();
        let got = assemble(
            &g0,
            &Selection::full(&[]),
            8,
            |b| -> Result<Vec<u8>, ChunkError> {
                assert!(b.is_empty());
                Ok(vec![7; 8])
            },
        );
        assert_eq!(got.unwrap(), vec![7; 8]);
    }

    #[test]
    fn auto_chunks_match_dask() {
        assert_eq!(
            auto_chunks(&[10_000, 10_000], 8, MIB128),
            vec![vec![4096, 4096, 1808]; 2]
        );
        assert_eq!(auto_chunks(&[50; 5], 8, MIB128), vec![vec![27, 23]; 5]);
        // Small arrays are one chunk.
        assert_eq!(auto_chunks(&[300, 300], 8, MIB128), vec![vec![300]; 2]);
        assert_eq!(
            auto_chunks(&[1, 10_000_000], 8, MIB128),
            vec![vec![1], vec![10_000_000]]
        );
        assert_eq!(auto_chunks(&[], 8, MIB128), Vec::<Vec<usize>>::new());
        assert_eq!(auto_chunks(&[0, 10], 8, MIB128), vec![vec![0], vec![10]]);
        // A short dimension is taken whole and the others share the rest: 16 MiB elements
        // over 4 rows leaves sqrt(4 Mi) = 2048 for the two others.
        assert_eq!(
            auto_chunks(&[4, 5000, 5000], 8, MIB128),
            vec![vec![4], vec![2048, 2048, 904], vec![2048, 2048, 904]]
        );
        // 1-D: 16 Mi elements per chunk.
        let one = auto_chunks(&[40_000_000], 8, MIB128);
        assert_eq!(one, vec![vec![16_777_216, 16_777_216, 6_445_568]]);
        // Items larger than the target still get one element per chunk.
        assert_eq!(auto_chunks(&[3], 100, 10), vec![vec![1, 1, 1]]);
    }

    fn arb_grid() -> impl Strategy<Value = (Vec<usize>, Vec<Vec<usize>>)> {
        proptest::collection::vec(
            prop_oneof![
                8 => proptest::collection::vec(1usize..5, 1..5),
                1 => Just(vec![0usize]),
            ],
            0..5,
        )
        .prop_map(|chunks| {
            let shape = chunks.iter().map(|c| c.iter().sum()).collect();
            (shape, chunks)
        })
    }

    fn arb_selector() -> impl Strategy<Value = DimSelector> {
        let bound = proptest::option::of(-12i64..12);
        prop_oneof![
            1 => (0i64..12).prop_map(DimSelector::Index),
            4 => (bound.clone(), bound, proptest::option::of(prop_oneof![-5i64..0, 1i64..6]))
                .prop_map(|(start, stop, step)| DimSelector::Range { start, stop, step }),
        ]
    }

    /// The blocks a selection touches, found by testing every selected index of every
    /// dimension against the block bounds (no run arithmetic).
    fn naive_blocks(grid: &ChunkGrid, sel: &Selection) -> Vec<Vec<usize>> {
        if sel.num_elements() == 0 {
            return Vec::new();
        }
        let per_dim: Vec<Vec<usize>> = sel
            .dims
            .iter()
            .zip(grid.chunks())
            .map(|(d, lengths)| {
                let mut hit = Vec::new();
                let mut origin = 0;
                for (b, &len) in lengths.iter().enumerate() {
                    if (0..d.len).any(|k| (origin..origin + len).contains(&d.index(k))) {
                        hit.push(b);
                    }
                    origin += len;
                }
                hit
            })
            .collect();
        let mut out: Vec<Vec<usize>> = vec![Vec::new()];
        for hits in per_dim {
            out = out
                .into_iter()
                .flat_map(|prefix| {
                    hits.iter().map(move |&h| {
                        let mut v = prefix.clone();
                        v.push(h);
                        v
                    })
                })
                .collect();
        }
        out
    }

    #[test]
    fn a_thin_slice_across_a_stack_costs_every_frame() {
        // 100,000 frames of 1000 x 1000, one chunk per frame: one pixel of each frame keeps
        // 100,000 elements but touches 10^11.
        let shape = [100_000, 1000, 1000];
        let grid = ChunkGrid::regular(&shape, &[1, 1000, 1000]);
        let t = grid.touched(&sel(":,0,0", &shape));
        assert_eq!(t.chunks, 100_000);
        assert_eq!(t.elements, 100_000_000_000);
        // Every tenth frame, backwards.
        let t = grid.touched(&sel("::-10,5,5", &shape));
        assert_eq!((t.chunks, t.elements), (10_000, 10_000_000_000));
        // One frame.
        let t = grid.touched(&sel("7", &shape));
        assert_eq!((t.chunks, t.elements), (1, 1_000_000));
    }

    proptest! {
        #[test]
        fn assemble_equals_slicing_the_whole(
            (shape, chunks) in arb_grid(),
            spec in proptest::collection::vec(arb_selector(), 0..5),
            itemsize in prop_oneof![Just(1usize), Just(3), Just(8)],
        ) {
            let grid = ChunkGrid::new(&shape, chunks).unwrap();
            // Out-of-range indices and extra entries are resolve's business, tested elsewhere.
            let mut spec = spec;
            spec.truncate(shape.len());
            let Ok(sel) = SliceSpec(spec).resolve(&shape) else { return Ok(()) };
            let whole: Vec<u8> = (0..shape.iter().product::<usize>() * itemsize)
                .map(|b| (b * 7 + b / itemsize) as u8)
                .collect();
            let want = copy_selection(&whole, &shape, itemsize, &sel);

            let plan = grid.plan(&sel);
            let blocks: Vec<Vec<usize>> = plan.iter().map(|r| r.block.clone()).collect();
            prop_assert_eq!(&blocks, &naive_blocks(&grid, &sel));
            let parts: usize = plan.iter().map(|r| r.within.num_elements()).sum();
            prop_assert_eq!(parts, sel.num_elements());

            let mut requested = Vec::new();
            let got = assemble(&grid, &sel, itemsize, |block| -> Result<Vec<u8>, ChunkError> {
                requested.push(block.to_vec());
                Ok(block_of(&grid, &whole, itemsize, block))
            }).unwrap();
            prop_assert_eq!(requested, blocks);
            prop_assert_eq!(&got, &want);

            // The cost counted without the plan is the plan's.
            let touched = grid.touched(&sel);
            prop_assert_eq!(touched.chunks, plan.len() as u128);
            let held: usize = plan
                .iter()
                .map(|r| grid.block_shape(&r.block).unwrap().iter().product::<usize>())
                .sum();
            prop_assert_eq!(touched.elements, held as u128);

            // Chunks placed in reverse order assemble the same result.
            let mut asm = Assembler::new(grid.clone(), &sel, itemsize);
            for r in plan.iter().rev() {
                asm.place(r, &block_of(&grid, &whole, itemsize, &r.block)).unwrap();
            }
            prop_assert_eq!(asm.finish(), want);
        }

        #[test]
        fn auto_chunks_fit_the_target(
            shape in proptest::collection::vec(1usize..3000, 1..5),
            itemsize in prop_oneof![Just(1usize), Just(8), Just(16)],
            target in 1usize..100_000_000,
        ) {
            let chunks = auto_chunks(&shape, itemsize, target);
            let grid = ChunkGrid::new(&shape, chunks.clone());
            prop_assert!(grid.is_ok());
            let biggest: usize = chunks.iter().map(|c| c[0]).product::<usize>() * itemsize;
            let fits = shape.iter().product::<usize>() * itemsize <= target;
            if fits {
                prop_assert!(chunks.iter().all(|c| c.len() == 1));
            } else {
                prop_assert!(biggest <= target || chunks.iter().all(|c| c[0] == 1));
            }
        }
    }
}
