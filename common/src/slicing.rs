//! Tiled slice syntax (`slice=`) parsed and resolved with numpy semantics, and copying a selection out of a C-order buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DimSelector {
    Index(i64),
    Range {
        start: Option<i64>,
        stop: Option<i64>,
        step: Option<i64>,
    },
    Ellipsis,
}
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceSpec(pub Vec<DimSelector>);
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DimRange {
    pub start: usize,
    pub step: isize,
    pub len: usize,
    pub keep: bool,
}
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    pub dims: Vec<DimRange>,
}
#[derive(Debug, thiserror::Error)]
pub enum SliceError {
    #[error("could not parse slice {0:?}")]
    Parse(String),
    #[error("slice has {got} entries but the array has {ndim} dimensions")]
    TooManyDims { got: usize, ndim: usize },
    #[error("index {index} is out of bounds for dimension {dim} with size {size}")]
    OutOfBounds { index: i64, dim: usize, size: usize },
    #[error("step 0 in dimension {0}; steps must be non-zero")]
    ZeroStep(usize),
}
fn int(s: &str, all: &str) -> Result<Option<i64>, SliceError> {
    if s.is_empty() {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|_| SliceError::Parse(all.to_string()))
}
impl std::str::FromStr for SliceSpec {
    type Err = SliceError;
    fn from_str(s: &str) -> Result<Self, SliceError> {
        if s.is_empty() {
            return Ok(SliceSpec(vec![]));
        }
        let mut out = vec![];
        for part in s.split(',') {
            if part == "..." {
                out.push(DimSelector::Ellipsis);
                continue;
            }
            let pieces: Vec<&str> = part.split(':').collect();
            match pieces.len() {
                1 => out.push(DimSelector::Index(
                    int(part, s)?.ok_or_else(|| SliceError::Parse(s.into()))?,
                )),
                2 | 3 => out.push(DimSelector::Range {
                    start: int(pieces[0], s)?,
                    stop: int(pieces[1], s)?,
                    step: if pieces.len() == 3 {
                        int(pieces[2], s)?
                    } else {
                        None
                    },
                }),
                _ => return Err(SliceError::Parse(s.into())),
            }
        }
        Ok(SliceSpec(out))
    }
}
impl SliceSpec {
    pub fn all() -> Self {
        SliceSpec(vec![])
    }
    pub fn resolve(&self, shape: &[usize]) -> Result<Selection, SliceError> {
        let n_real = self
            .0
            .iter()
            .filter(|d| !matches!(d, DimSelector::Ellipsis))
            .count();
        if n_real > shape.len() {
            return Err(SliceError::TooManyDims {
                got: n_real,
                ndim: shape.len(),
            });
        }
        let mut sels: Vec<DimSelector> = vec![];
        for d in &self.0 {
            if matches!(d, DimSelector::Ellipsis) {
                for _ in 0..shape.len() - n_real {
                    sels.push(DimSelector::Range {
                        start: None,
                        stop: None,
                        step: None,
                    });
                }
            } else {
                sels.push(d.clone());
            }
        }
        while sels.len() < shape.len() {
            sels.push(DimSelector::Range {
                start: None,
                stop: None,
                step: None,
            });
        }
        let mut dims = vec![];
        for (i, (d, &n)) in sels.iter().zip(shape).enumerate() {
            let n_i = n as i64;
            match d {
                DimSelector::Index(x) => {
                    let x2 = if *x < 0 { x + n_i } else { *x };
                    if x2 < 0 || x2 >= n_i {
                        return Err(SliceError::OutOfBounds {
                            index: *x,
                            dim: i,
                            size: n,
                        });
                    }
                    dims.push(DimRange {
                        start: x2 as usize,
                        step: 1,
                        len: 1,
                        keep: false,
                    });
                }
                DimSelector::Range { start, stop, step } => {
                    let step = step.unwrap_or(1);
                    if step == 0 {
                        return Err(SliceError::ZeroStep(i));
                    }
                    let (lo, hi) = if step < 0 { (-1, n_i - 1) } else { (0, n_i) };
                    let norm = |v: Option<i64>, def: i64| -> i64 {
                        match v {
                            None => def,
                            Some(v) => {
                                let v = if v < 0 { v + n_i } else { v };
                                v.clamp(lo, hi)
                            }
                        }
                    };
                    let st = norm(*start, if step < 0 { hi } else { lo });
                    let sp = norm(*stop, if step < 0 { lo } else { hi });
                    let len = if step > 0 {
                        if sp > st {
                            (sp - st + step - 1) / step
                        } else {
                            0
                        }
                    } else if st > sp {
                        (st - sp + (-step) - 1) / (-step)
                    } else {
                        0
                    };
                    dims.push(DimRange {
                        start: if len == 0 { 0 } else { st as usize },
                        step: step as isize,
                        len: len as usize,
                        keep: true,
                    });
                }
                DimSelector::Ellipsis => {}
            }
        }
        Ok(Selection { dims })
    }
}
impl Selection {
    pub fn full(shape: &[usize]) -> Self {
        Selection {
            dims: shape
                .iter()
                .map(|&n| DimRange {
                    start: 0,
                    step: 1,
                    len: n,
                    keep: true,
                })
                .collect(),
        }
    }
    pub fn out_shape(&self) -> Vec<usize> {
        self.dims.iter().filter(|d| d.keep).map(|d| d.len).collect()
    }
    pub fn num_elements(&self) -> usize {
        self.dims.iter().map(|d| d.len).product()
    }
    pub fn is_full(&self, shape: &[usize]) -> bool {
        self.dims.len() == shape.len()
            && self
                .dims
                .iter()
                .zip(shape)
                .all(|(d, &n)| d.start == 0 && d.step == 1 && d.len == n)
    }
}
pub fn copy_selection(src: &[u8], shape: &[usize], itemsize: usize, sel: &Selection) -> Vec<u8> {
    let n = sel.num_elements();
    let mut out = Vec::with_capacity(n * itemsize);
    if n == 0 {
        return out;
    }
    let mut strides = vec![itemsize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    let mut idx = vec![0usize; shape.len()];
    loop {
        let mut off = 0isize;
        for (k, d) in sel.dims.iter().enumerate() {
            off += (d.start as isize + idx[k] as isize * d.step) * strides[k] as isize;
        }
        let o = off as usize;
        out.extend_from_slice(&src[o..o + itemsize]);
        let mut k = shape.len();
        loop {
            if k == 0 {
                return out;
            }
            k -= 1;
            idx[k] += 1;
            if idx[k] < sel.dims[k].len {
                break;
            }
            idx[k] = 0;
        }
    }
}
