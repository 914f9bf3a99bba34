//! Chunk grids (Tiled-style per-dimension chunk lengths) and the planner that maps a selection to the native chunks it touches.
use crate::slicing::{DimRange, Selection};
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkGrid {
    chunks: Vec<Vec<usize>>,
}
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error("{0}")]
    Invalid(String),
}
pub struct ChunkRead {
    pub block: Vec<usize>,
    pub within: Selection,
    pub out_offset: Vec<usize>,
}
impl ChunkGrid {
    pub fn new(shape: &[usize], chunks: Vec<Vec<usize>>) -> Result<Self, ChunkError> {
        if shape.len() != chunks.len() {
            return Err(ChunkError::Invalid("chunks rank".into()));
        }
        for (c, &n) in chunks.iter().zip(shape) {
            if c.iter().sum::<usize>() != n {
                return Err(ChunkError::Invalid("chunk sum".into()));
            }
        }
        Ok(ChunkGrid { chunks })
    }
    pub fn chunks(&self) -> &[Vec<usize>] {
        &self.chunks
    }
    pub fn shape(&self) -> Vec<usize> {
        self.chunks.iter().map(|c| c.iter().sum()).collect()
    }
    pub fn grid_shape(&self) -> Vec<usize> {
        self.chunks.iter().map(|c| c.len()).collect()
    }
    pub fn block_origin(&self, block: &[usize]) -> Result<Vec<usize>, ChunkError> {
        if block.len() != self.chunks.len() {
            return Err(ChunkError::Invalid(format!(
                "block {block:?} needs {} indices",
                self.chunks.len()
            )));
        }
        block
            .iter()
            .zip(&self.chunks)
            .map(|(&b, c)| {
                if b < c.len() {
                    Ok(c[..b].iter().sum())
                } else {
                    Err(ChunkError::Invalid(format!("Block index {b} out of range")))
                }
            })
            .collect()
    }
    pub fn block_shape(&self, block: &[usize]) -> Result<Vec<usize>, ChunkError> {
        self.block_origin(block)?;
        Ok(block.iter().zip(&self.chunks).map(|(&b, c)| c[b]).collect())
    }
    pub fn plan(&self, sel: &Selection) -> Vec<ChunkRead> {
        // per dim: list of (block index, within DimRange, out offset)
        let mut per_dim: Vec<Vec<(usize, DimRange, usize)>> = vec![];
        for (d, c) in sel.dims.iter().zip(&self.chunks) {
            let mut v: Vec<(usize, DimRange, usize)> = vec![];
            let mut origins = vec![0usize];
            for x in c {
                origins.push(origins.last().copied().unwrap_or(0) + x);
            }
            for k in 0..d.len {
                let g = (d.start as isize + k as isize * d.step) as usize;
                let b = origins.partition_point(|&o| o <= g) - 1;
                let local = g - origins[b];
                if let Some(last) = v.last_mut()
                    && last.0 == b
                {
                    last.1.len += 1;
                    continue;
                }
                v.push((
                    b,
                    DimRange {
                        start: local,
                        step: d.step,
                        len: 1,
                        keep: d.keep,
                    },
                    k,
                ));
            }
            per_dim.push(v);
        }
        if per_dim.iter().any(|v| v.is_empty()) {
            return vec![];
        }
        let mut out = vec![];
        let mut idx = vec![0usize; per_dim.len()];
        loop {
            out.push(ChunkRead {
                block: idx
                    .iter()
                    .enumerate()
                    .map(|(k, &i)| per_dim[k][i].0)
                    .collect(),
                within: Selection {
                    dims: idx
                        .iter()
                        .enumerate()
                        .map(|(k, &i)| per_dim[k][i].1.clone())
                        .collect(),
                },
                out_offset: idx
                    .iter()
                    .enumerate()
                    .map(|(k, &i)| per_dim[k][i].2)
                    .collect(),
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
pub fn assemble<E, B: AsRef<[u8]>>(
    grid: &ChunkGrid,
    sel: &Selection,
    itemsize: usize,
    mut chunk: impl FnMut(&[usize]) -> Result<B, E>,
) -> Result<Vec<u8>, E> {
    let full: Vec<usize> = sel.dims.iter().map(|d| d.len).collect();
    let n: usize = full.iter().product();
    let mut out = vec![0u8; n * itemsize];
    let mut ostr = vec![itemsize; full.len()];
    for i in (0..full.len().saturating_sub(1)).rev() {
        ostr[i] = ostr[i + 1] * full[i + 1];
    }
    for r in grid.plan(sel) {
        let bshape = grid.block_shape(&r.block).unwrap_or_default();
        let b = chunk(&r.block)?;
        let part = crate::slicing::copy_selection(b.as_ref(), &bshape, itemsize, &r.within);
        let pshape: Vec<usize> = r.within.dims.iter().map(|d| d.len).collect();
        let cnt = pshape.iter().product::<usize>();
        let mut idx = vec![0usize; pshape.len()];
        for e in 0..cnt {
            let mut o = 0;
            for k in 0..idx.len() {
                o += (r.out_offset[k] + idx[k]) * ostr[k];
            }
            out[o..o + itemsize].copy_from_slice(&part[e * itemsize..(e + 1) * itemsize]);
            let mut k = idx.len();
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
pub fn auto_chunks(shape: &[usize], itemsize: usize, target: usize) -> Vec<Vec<usize>> {
    let total: usize = shape.iter().product::<usize>() * itemsize;
    if total <= target || shape.is_empty() {
        return shape.iter().map(|&n| vec![n]).collect();
    }
    let nd = shape.len() as f64;
    let side = ((target / itemsize) as f64).powf(1.0 / nd);
    let c = if shape.len() == 2 {
        4096
    } else {
        side.floor() as usize
    };
    shape
        .iter()
        .map(|&n| {
            let c = c.min(n).max(1);
            let mut v = vec![c; n / c];
            if n % c > 0 {
                v.push(n % c);
            }
            v
        })
        .collect()
}
