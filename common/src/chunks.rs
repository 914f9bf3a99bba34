//! Chunk grids (Tiled's per-dimension chunk lengths) and the planner that maps a selection to
//! the native chunks it touches, then assembles the result from the decoded chunks. Also
//! dask's "auto" chunking, which decides the chunks of the demo's arrays.

use crate::slicing::{DimRange, Selection, c_strides};

/// Tiled-style chunking: one list of chunk lengths per dimension (each sums to the length).
/// A 0-d array has no dimensions and exactly one chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkGrid {
    chunks: Vec<Vec<usize>>,
}

/// A chunk grid that does not fit its shape, or a block index outside the grid.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error("chunks describe {got} dimensions but the shape has {ndim}")]
    Rank { got: usize, ndim: usize },
    #[error("chunks of dimension {dim} sum to {sum} but its length is {len}")]
    Sum { dim: usize, sum: usize, len: usize },
    #[error("block {block:?} has {got} indices but the array has {ndim} dimensions")]
    BlockArity {
        block: Vec<usize>,
        got: usize,
        ndim: usize,
    },
    #[error(
        "Block index out of range: block {index} of dimension {dim}; valid blocks are 0 to {last}"
    )]
    BlockOutOfRange {
        dim: usize,
        index: usize,
        last: usize,
    },
}

/// One native chunk a selection needs: which block, which part of it (a full-rank selection
/// in block coordinates), and where its elements land in the output (full-rank offsets, before
/// integer-indexed dimensions are dropped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkRead {
    pub block: Vec<usize>,
    pub within: Selection,
    pub out_offset: Vec<usize>,
}

impl ChunkGrid {
    /// Checks `chunks` against `shape`.
    pub fn new(shape: &[usize], chunks: Vec<Vec<usize>>) -> Result<Self, ChunkError> {
        if chunks.len() != shape.len() {
            return Err(ChunkError::Rank {
                got: chunks.len(),
                ndim: shape.len(),
            });
        }
        for (dim, (c, &len)) in chunks.iter().zip(shape).enumerate() {
            let sum: usize = c.iter().sum();
            if sum != len {
                return Err(ChunkError::Sum { dim, sum, len });
            }
        }
        Ok(ChunkGrid { chunks })
    }

    /// Regular chunks of `chunk_shape` (the last chunk of each dimension may be shorter).
    pub fn regular(shape: &[usize], chunk_shape: &[usize]) -> Self {
        let chunks = shape
            .iter()
            .zip(chunk_shape)
            .map(|(&n, &c)| split(n, c))
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
                got: block.len(),
                ndim: self.chunks.len(),
            });
        }
        for (dim, (&b, c)) in block.iter().zip(&self.chunks).enumerate() {
            if b >= c.len().max(1) || (c.is_empty() && b > 0) {
                return Err(ChunkError::BlockOutOfRange {
                    dim,
                    index: b,
                    last: c.len().saturating_sub(1),
                });
            }
        }
        Ok(())
    }

    /// Where block `block` starts.
    pub fn block_origin(&self, block: &[usize]) -> Result<Vec<usize>, ChunkError> {
        self.check(block)?;
        Ok(block
            .iter()
            .zip(&self.chunks)
            .map(|(&b, c)| c[..b.min(c.len())].iter().sum())
            .collect())
    }

    /// The shape of block `block`.
    pub fn block_shape(&self, block: &[usize]) -> Result<Vec<usize>, ChunkError> {
        self.check(block)?;
        Ok(block
            .iter()
            .zip(&self.chunks)
            .map(|(&b, c)| c.get(b).copied().unwrap_or(0))
            .collect())
    }

    /// Every block `sel` touches (C order of block index), with the part of it selected.
    pub fn plan(&self, sel: &Selection) -> Vec<ChunkRead> {
        if sel.num_elements() == 0 {
            return Vec::new();
        }
        // Per dimension: runs of consecutive selected elements that fall in the same block.
        let mut per_dim: Vec<Vec<(usize, DimRange, usize)>> = Vec::with_capacity(sel.dims.len());
        for (d, lengths) in sel.dims.iter().zip(&self.chunks) {
            let mut origins = Vec::with_capacity(lengths.len() + 1);
            let mut acc = 0;
            origins.push(0);
            for len in lengths {
                acc += len;
                origins.push(acc);
            }
            let mut runs: Vec<(usize, DimRange, usize)> = Vec::new();
            for k in 0..d.len {
                let g = d.index(k);
                let b = origins.partition_point(|&o| o <= g).saturating_sub(1);
                match runs.last_mut() {
                    Some(last) if last.0 == b => last.1.len += 1,
                    _ => runs.push((
                        b,
                        DimRange {
                            start: g - origins[b],
                            step: d.step,
                            len: 1,
                            keep: d.keep,
                        },
                        k,
                    )),
                }
            }
            per_dim.push(runs);
        }
        let mut out = Vec::new();
        let mut idx = vec![0usize; per_dim.len()];
        loop {
            out.push(ChunkRead {
                block: idx.iter().zip(&per_dim).map(|(&i, r)| r[i].0).collect(),
                within: Selection {
                    dims: idx
                        .iter()
                        .zip(&per_dim)
                        .map(|(&i, r)| r[i].1.clone())
                        .collect(),
                },
                out_offset: idx.iter().zip(&per_dim).map(|(&i, r)| r[i].2).collect(),
            });
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

fn split(n: usize, c: usize) -> Vec<usize> {
    if n == 0 {
        return vec![0];
    }
    let c = c.clamp(1, n);
    let mut v = vec![c; n / c];
    if !n.is_multiple_of(c) {
        v.push(n % c);
    }
    v
}

/// Assembles the C-order result of `sel` from its chunks: `chunk(block)` returns the decoded
/// block (C order, of the block's shape). Rows of each chunk's part are copied into place.
pub fn assemble<E, B: AsRef<[u8]>>(
    grid: &ChunkGrid,
    sel: &Selection,
    itemsize: usize,
    mut chunk: impl FnMut(&[usize]) -> Result<B, E>,
) -> Result<Vec<u8>, E> {
    let full: Vec<usize> = sel.dims.iter().map(|d| d.len).collect();
    let n: usize = full.iter().product();
    let mut out = vec![0u8; n * itemsize];
    let nd = full.len();
    let out_strides = c_strides(&full, itemsize);
    for read in grid.plan(sel) {
        let Ok(bshape) = grid.block_shape(&read.block) else {
            continue;
        };
        let block = chunk(&read.block)?;
        let part = crate::slicing::copy_selection(block.as_ref(), &bshape, itemsize, &read.within);
        if nd == 0 {
            out.copy_from_slice(&part[..itemsize]);
            continue;
        }
        // The part is C-order of its own shape; copy it one innermost row at a time.
        let pshape: Vec<usize> = read.within.dims.iter().map(|d| d.len).collect();
        let row = pshape[nd - 1] * itemsize;
        let rows: usize = pshape[..nd - 1].iter().product();
        let mut idx = vec![0usize; nd - 1];
        for r in 0..rows {
            let mut o = read.out_offset[nd - 1] * out_strides[nd - 1];
            for k in 0..nd - 1 {
                o += (read.out_offset[k] + idx[k]) * out_strides[k];
            }
            out[o..o + row].copy_from_slice(&part[r * row..(r + 1) * row]);
            let mut k = nd - 1;
            while k > 0 {
                k -= 1;
                idx[k] += 1;
                if idx[k] < pshape[k] {
                    break;
                }
                idx[k] = 0;
            }
        }
    }
    Ok(out)
}

/// dask's `"auto"` chunks: the whole array if it fits in `target_bytes`, else a roughly
/// cubic chunk of at most `target_bytes` whose sides are rounded down to "nice" values.
pub fn auto_chunks(shape: &[usize], itemsize: usize, target_bytes: usize) -> Vec<Vec<usize>> {
    let total = shape.iter().product::<usize>().saturating_mul(itemsize);
    if total <= target_bytes || shape.is_empty() {
        return shape.iter().map(|&n| vec![n]).collect();
    }
    let target_elements = (target_bytes / itemsize.max(1)) as f64;
    let side = target_elements.powf(1.0 / shape.len() as f64);
    // dask rounds a side down to a power of two when that loses little (e.g. 11585 -> 8192
    // would lose half, so it keeps a multiple of a large power of two: 4096 for 2-D f8).
    let nice = |n: usize| -> usize {
        let s = side.floor() as usize;
        if s >= n {
            return n;
        }
        let p = 1usize << (usize::BITS - 1 - s.leading_zeros());
        if p >= 1024 { p.min(n) } else { s.min(n) }
    };
    shape.iter().map(|&n| split(n, nice(n))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slicing::{SliceSpec, copy_selection};
    use proptest::prelude::*;
    use std::str::FromStr;

    #[test]
    fn grids_are_validated() {
        assert!(ChunkGrid::new(&[10], vec![vec![5, 5]]).is_ok());
        assert!(matches!(
            ChunkGrid::new(&[10], vec![vec![5, 4]]),
            Err(ChunkError::Sum { .. })
        ));
        assert!(ChunkGrid::new(&[10, 2], vec![vec![10]]).is_err());
        let g = ChunkGrid::new(&[], vec![]).unwrap();
        assert_eq!(g.block_shape(&[]).unwrap(), Vec::<usize>::new());
    }

    #[test]
    fn block_geometry_and_errors() {
        let g = ChunkGrid::new(&[1000, 1000], vec![vec![250; 4], vec![100; 10]]).unwrap();
        assert_eq!(g.block_origin(&[1, 3]).unwrap(), vec![250, 300]);
        assert_eq!(g.block_shape(&[3, 9]).unwrap(), vec![250, 100]);
        let err = g.block_origin(&[4, 0]).unwrap_err().to_string();
        assert!(err.contains("Block index out of range"), "{err}");
        assert!(g.block_origin(&[0]).is_err());
        assert_eq!(g.grid_shape(), vec![4, 10]);
    }

    #[test]
    fn plan_touches_only_needed_blocks() {
        let g = ChunkGrid::new(&[1000, 1000], vec![vec![250; 4], vec![100; 10]]).unwrap();
        let sel = SliceSpec::from_str("240:260,5")
            .unwrap()
            .resolve(&[1000, 1000])
            .unwrap();
        let plan = g.plan(&sel);
        let blocks: Vec<_> = plan.iter().map(|r| r.block.clone()).collect();
        assert_eq!(blocks, vec![vec![0, 0], vec![1, 0]]);
        assert_eq!(plan[1].out_offset, vec![10, 0]);
    }

    #[test]
    fn auto_chunks_match_dask_for_the_demo() {
        let mib128 = 128 * 1024 * 1024;
        assert_eq!(
            auto_chunks(&[10_000, 10_000], 8, mib128),
            vec![vec![4096, 4096, 1808]; 2]
        );
        assert_eq!(auto_chunks(&[50; 5], 8, mib128), vec![vec![27, 23]; 5]);
        assert_eq!(auto_chunks(&[300, 300], 8, mib128), vec![vec![300]; 2]);
        assert_eq!(ChunkGrid::regular(&[10], &[4]).chunks(), &[vec![4, 4, 2]]);
    }

    fn arb_grid() -> impl Strategy<Value = (Vec<usize>, Vec<Vec<usize>>)> {
        proptest::collection::vec(proptest::collection::vec(1usize..4, 1..4), 1..4).prop_map(
            |chunks| {
                let shape = chunks.iter().map(|c| c.iter().sum()).collect();
                (shape, chunks)
            },
        )
    }

    proptest! {
        #[test]
        fn assemble_equals_slicing_the_whole(
            (shape, chunks) in arb_grid(),
            parts in proptest::collection::vec((proptest::option::of(-8i64..8), proptest::option::of(-8i64..8), prop_oneof![-3i64..0, 1i64..4], any::<bool>()), 3),
        ) {
            let grid = ChunkGrid::new(&shape, chunks).unwrap();
            let spec = SliceSpec(parts.iter().zip(&shape).map(|(&(a, b, s, index), &n)| {
                if index {
                    crate::slicing::DimSelector::Index(a.unwrap_or(0).rem_euclid(n as i64))
                } else {
                    crate::slicing::DimSelector::Range { start: a, stop: b, step: Some(s) }
                }
            }).collect());
            let sel = spec.resolve(&shape).unwrap();
            let total: usize = shape.iter().product();
            let whole: Vec<u8> = (0..total).flat_map(|i| (i as u16).to_le_bytes()).collect();
            let want = copy_selection(&whole, &shape, 2, &sel);
            let got = assemble(&grid, &sel, 2, |block: &[usize]| -> Result<Vec<u8>, ()> {
                let origin = grid.block_origin(block).unwrap();
                let bshape = grid.block_shape(block).unwrap();
                let bsel = Selection { dims: origin.iter().zip(&bshape).map(|(&o, &l)| DimRange { start: o, step: 1, len: l, keep: true }).collect() };
                Ok(copy_selection(&whole, &shape, 2, &bsel))
            }).unwrap();
            prop_assert_eq!(got, want);
        }
    }
}
