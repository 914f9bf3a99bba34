//! Tiled's `slice=` syntax, parsed and resolved against a shape with numpy's semantics
//! (negative indices, clamped bounds, negative steps, integer indices that drop a dimension,
//! `...`), and the copy of a selection out of a C-order buffer.

use std::str::FromStr;

/// One entry of a slice: an integer index, a `start:stop:step` range, or `...`.
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

impl DimSelector {
    /// `:` — the whole dimension.
    pub fn full() -> Self {
        DimSelector::Range {
            start: None,
            stop: None,
            step: None,
        }
    }
}

/// A parsed slice: one selector per leading dimension; missing trailing ones mean `:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceSpec(pub Vec<DimSelector>);

/// One dimension of a resolved selection: elements `start, start+step, ...` (`len` of them).
/// `keep` is false for integer indices, whose dimension is dropped from the result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DimRange {
    pub start: usize,
    pub step: isize,
    pub len: usize,
    pub keep: bool,
}

impl DimRange {
    /// The index of the `k`-th selected element.
    pub fn index(&self, k: usize) -> usize {
        (self.start as isize + k as isize * self.step) as usize
    }
}

/// A selection resolved against a shape: one [`DimRange`] per dimension of the array.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    pub dims: Vec<DimRange>,
}

/// Why a slice could not be parsed or applied.
#[derive(Debug, thiserror::Error)]
pub enum SliceError {
    #[error("could not parse slice {text:?}: entry {entry} ({part:?}) {reason}")]
    Parse {
        text: String,
        entry: usize,
        part: String,
        reason: &'static str,
    },
    #[error("slice has {got} entries but the array has {ndim} dimensions")]
    TooManyDims { got: usize, ndim: usize },
    #[error("index {index} is out of bounds for dimension {dim} with size {size}")]
    OutOfBounds { index: i64, dim: usize, size: usize },
    #[error("slice entry {0} has step 0; steps must be non-zero")]
    ZeroStep(usize),
    #[error("a slice can contain at most one '...'")]
    TwoEllipses,
}

fn parse_int(text: &str, entry: usize, part: &str, piece: &str) -> Result<Option<i64>, SliceError> {
    if piece.is_empty() {
        return Ok(None);
    }
    let bad = |reason| SliceError::Parse {
        text: text.to_string(),
        entry,
        part: part.to_string(),
        reason,
    };
    let digits = piece.strip_prefix('-').unwrap_or(piece);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("is not an integer or start:stop:step"));
    }
    piece
        .parse()
        .map(Some)
        .map_err(|_| bad("holds an integer too large to be an index"))
}

impl FromStr for SliceSpec {
    type Err = SliceError;

    fn from_str(text: &str) -> Result<Self, SliceError> {
        if text.is_empty() {
            return Ok(SliceSpec::all());
        }
        let mut out = Vec::new();
        for (entry, part) in text.split(',').enumerate() {
            if part == "..." {
                if out.contains(&DimSelector::Ellipsis) {
                    return Err(SliceError::TwoEllipses);
                }
                out.push(DimSelector::Ellipsis);
                continue;
            }
            let pieces: Vec<&str> = part.split(':').collect();
            let int = |p: &str| parse_int(text, entry, part, p);
            let selector = match pieces.as_slice() {
                [one] => match int(one)? {
                    Some(i) => DimSelector::Index(i),
                    None => {
                        return Err(SliceError::Parse {
                            text: text.to_string(),
                            entry,
                            part: part.to_string(),
                            reason: "is empty",
                        });
                    }
                },
                [start, stop] => DimSelector::Range {
                    start: int(start)?,
                    stop: int(stop)?,
                    step: None,
                },
                [start, stop, step] => DimSelector::Range {
                    start: int(start)?,
                    stop: int(stop)?,
                    step: int(step)?,
                },
                _ => {
                    return Err(SliceError::Parse {
                        text: text.to_string(),
                        entry,
                        part: part.to_string(),
                        reason: "has more than two ':'",
                    });
                }
            };
            out.push(selector);
        }
        Ok(SliceSpec(out))
    }
}

/// Resolves one range against a dimension of length `n`, as Python's `slice.indices` does.
fn resolve_range(
    start: Option<i64>,
    stop: Option<i64>,
    step: Option<i64>,
    n: usize,
    entry: usize,
) -> Result<DimRange, SliceError> {
    let step = step.unwrap_or(1);
    if step == 0 {
        return Err(SliceError::ZeroStep(entry));
    }
    let n = n as i128;
    let (step, start, stop) = (step as i128, start.map(i128::from), stop.map(i128::from));
    let (lower, upper) = if step < 0 { (-1, n - 1) } else { (0, n) };
    let clamp = |v: Option<i128>, default: i128| match v {
        None => default,
        Some(v) if v < 0 => (v + n).max(lower),
        Some(v) => v.min(upper),
    };
    let start = clamp(start, if step < 0 { upper } else { lower });
    let stop = clamp(stop, if step < 0 { lower } else { upper });
    let len = if step > 0 && stop > start {
        (stop - start + step - 1) / step
    } else if step < 0 && start > stop {
        (start - stop - step - 1) / -step
    } else {
        0
    };
    Ok(DimRange {
        start: if len == 0 { 0 } else { start as usize },
        step: step as isize,
        len: len as usize,
        keep: true,
    })
}

impl SliceSpec {
    /// Everything.
    pub fn all() -> Self {
        SliceSpec(Vec::new())
    }

    /// Applies the slice to an array of `shape`.
    pub fn resolve(&self, shape: &[usize]) -> Result<Selection, SliceError> {
        let given = self
            .0
            .iter()
            .filter(|d| !matches!(d, DimSelector::Ellipsis))
            .count();
        if given > shape.len() {
            return Err(SliceError::TooManyDims {
                got: given,
                ndim: shape.len(),
            });
        }
        let mut selectors: Vec<DimSelector> = Vec::with_capacity(shape.len());
        for d in &self.0 {
            match d {
                DimSelector::Ellipsis => {
                    selectors.extend(std::iter::repeat_n(
                        DimSelector::full(),
                        shape.len() - given,
                    ));
                }
                other => selectors.push(other.clone()),
            }
        }
        selectors.resize(shape.len(), DimSelector::full());
        let dims = selectors
            .iter()
            .zip(shape)
            .enumerate()
            .map(|(dim, (sel, &n))| match sel {
                DimSelector::Index(i) => {
                    let j = if *i < 0 { *i + n as i64 } else { *i };
                    if j < 0 || j >= n as i64 {
                        return Err(SliceError::OutOfBounds {
                            index: *i,
                            dim,
                            size: n,
                        });
                    }
                    Ok(DimRange {
                        start: j as usize,
                        step: 1,
                        len: 1,
                        keep: false,
                    })
                }
                DimSelector::Range { start, stop, step } => {
                    resolve_range(*start, *stop, *step, n, dim)
                }
                DimSelector::Ellipsis => Ok(Selection::full(&[n]).dims[0].clone()),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Selection { dims })
    }
}

impl Selection {
    /// Everything of `shape`.
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

    /// The shape of the result (dropped dimensions removed).
    pub fn out_shape(&self) -> Vec<usize> {
        self.dims.iter().filter(|d| d.keep).map(|d| d.len).collect()
    }

    /// Number of selected elements.
    pub fn num_elements(&self) -> usize {
        self.dims.iter().map(|d| d.len).product()
    }

    /// Whether this selects all of `shape`, in order, keeping every dimension.
    pub fn is_full(&self, shape: &[usize]) -> bool {
        self.dims.len() == shape.len()
            && self
                .dims
                .iter()
                .zip(shape)
                .all(|(d, &n)| d.keep && d.start == 0 && d.len == n && (d.step == 1 || n <= 1))
    }
}

/// Byte strides of a C-order array.
pub fn c_strides(shape: &[usize], itemsize: usize) -> Vec<usize> {
    let mut strides = vec![itemsize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    strides
}

/// Copies the selected elements of the C-order buffer `src` (of `shape`, `itemsize`-byte
/// elements) into a new C-order buffer. Contiguous runs along the innermost dimension are
/// copied with one memcpy each.
pub fn copy_selection(src: &[u8], shape: &[usize], itemsize: usize, sel: &Selection) -> Vec<u8> {
    let n = sel.num_elements();
    let mut out = Vec::with_capacity(n * itemsize);
    if n == 0 {
        return out;
    }
    let nd = shape.len();
    if nd == 0 {
        out.extend_from_slice(&src[..itemsize]);
        return out;
    }
    let strides = c_strides(shape, itemsize);
    let inner = &sel.dims[nd - 1];
    let run = inner.step == 1;
    let mut idx = vec![0usize; nd - 1];
    loop {
        let base: usize = (0..nd - 1)
            .map(|k| sel.dims[k].index(idx[k]) * strides[k])
            .sum();
        if run {
            let from = base + inner.start * itemsize;
            out.extend_from_slice(&src[from..from + inner.len * itemsize]);
        } else {
            for j in 0..inner.len {
                let from = base + inner.index(j) * itemsize;
                out.extend_from_slice(&src[from..from + itemsize]);
            }
        }
        // Advance the outer indices like an odometer.
        let mut k = nd - 1;
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn resolve(s: &str, shape: &[usize]) -> Result<Selection, SliceError> {
        SliceSpec::from_str(s)?.resolve(shape)
    }

    fn indices(d: &DimRange) -> Vec<usize> {
        (0..d.len).map(|k| d.index(k)).collect()
    }

    #[test]
    fn parses_every_form() {
        let s = SliceSpec::from_str("1,-2:,:3,::2,1:9:-1,:").unwrap();
        assert_eq!(s.0[0], DimSelector::Index(1));
        assert_eq!(
            s.0[3],
            DimSelector::Range {
                start: None,
                stop: None,
                step: Some(2)
            }
        );
        assert_eq!(SliceSpec::from_str("").unwrap(), SliceSpec::all());
        assert_eq!(
            SliceSpec::from_str("...,0").unwrap().0[0],
            DimSelector::Ellipsis
        );
    }

    #[test]
    fn malformed_slices_say_what_is_wrong() {
        for bad in [
            "a",
            "1:2:3:4",
            "::,",
            "1,,2",
            "1.5",
            "--1",
            "99999999999999999999999",
        ] {
            let err = SliceSpec::from_str(bad).unwrap_err().to_string();
            assert!(err.contains("could not parse slice"), "{bad}: {err}");
        }
        assert!(SliceSpec::from_str("...,...").is_err());
        let zero = resolve("1:2:0", &[5]).unwrap_err();
        assert!(zero.to_string().contains("step 0"));
    }

    #[test]
    fn numpy_semantics() {
        // Negative step over the whole axis, as the client sends reversed reads.
        let s = resolve("49:-51:-1", &[50]).unwrap();
        assert_eq!(indices(&s.dims[0]), (0..50).rev().collect::<Vec<_>>());
        assert_eq!(indices(&resolve("::-2", &[5]).unwrap().dims[0]), [4, 2, 0]);
        assert_eq!(indices(&resolve("-3:", &[5]).unwrap().dims[0]), [2, 3, 4]);
        assert_eq!(resolve("100:200", &[50]).unwrap().dims[0].len, 0);
        assert_eq!(resolve("3:1", &[5]).unwrap().dims[0].len, 0);
        let dropped = resolve("2,1:3", &[4, 5]).unwrap();
        assert_eq!(dropped.out_shape(), vec![2]);
        assert_eq!(resolve("-1", &[4]).unwrap().dims[0].start, 3);
        assert!(resolve("4", &[4]).is_err());
        assert!(resolve("-5", &[4]).is_err());
        assert!(matches!(
            resolve("0,0,0", &[2, 2]),
            Err(SliceError::TooManyDims { got: 3, ndim: 2 })
        ));
        let e = resolve("...,0", &[3, 4, 5]).unwrap();
        assert_eq!(e.out_shape(), vec![3, 4]);
        assert_eq!(resolve("", &[]).unwrap().out_shape(), Vec::<usize>::new());
        assert!(resolve("0", &[]).is_err());
    }

    #[test]
    fn copies_strided_and_reversed_selections() {
        let shape = [3, 4];
        let src: Vec<u8> = (0..12).collect();
        let sel = resolve("::2,::-1", &shape).unwrap();
        assert_eq!(
            copy_selection(&src, &shape, 1, &sel),
            [3, 2, 1, 0, 11, 10, 9, 8]
        );
        let sel = resolve("1", &shape).unwrap();
        assert_eq!(copy_selection(&src, &shape, 1, &sel), [4, 5, 6, 7]);
        let sel = resolve("0:0", &shape).unwrap();
        assert!(copy_selection(&src, &shape, 1, &sel).is_empty());
    }

    /// Python's `slice.indices` followed by `range`, written independently of the code above.
    fn reference_indices(start: Option<i64>, stop: Option<i64>, step: i64, n: i64) -> Vec<usize> {
        let adjust = |v: i64, lo: i64, hi: i64| {
            if v < 0 { (v + n).max(lo) } else { v.min(hi) }
        };
        let (s, e) = if step > 0 {
            (
                start.map_or(0, |v| adjust(v, 0, n)),
                stop.map_or(n, |v| adjust(v, 0, n)),
            )
        } else {
            (
                start.map_or(n - 1, |v| adjust(v, -1, n - 1)),
                stop.map_or(-1, |v| adjust(v, -1, n - 1)),
            )
        };
        let mut out = Vec::new();
        let mut i = s;
        while (step > 0 && i < e) || (step < 0 && i > e) {
            out.push(i as usize);
            i += step;
        }
        out
    }

    fn arb_range() -> impl Strategy<Value = (Option<i64>, Option<i64>, i64)> {
        (
            proptest::option::of(-12i64..12),
            proptest::option::of(-12i64..12),
            prop_oneof![-4i64..0, 1i64..5],
        )
    }

    proptest! {
        #[test]
        fn ranges_match_python((start, stop, step) in arb_range(), n in 0usize..10) {
            let d = resolve_range(start, stop, Some(step), n, 0).unwrap();
            prop_assert_eq!(indices(&d), reference_indices(start, stop, step, n as i64));
        }

        #[test]
        fn copy_matches_naive_gather(
            shape in proptest::collection::vec(1usize..6, 1..4),
            ranges in proptest::collection::vec(arb_range(), 3),
        ) {
            let spec = SliceSpec(ranges.iter().take(shape.len())
                .map(|&(start, stop, step)| DimSelector::Range { start, stop, step: Some(step) })
                .collect());
            let sel = spec.resolve(&shape).unwrap();
            let total: usize = shape.iter().product();
            let src: Vec<u8> = (0..total).map(|i| i as u8).collect();
            let got = copy_selection(&src, &shape, 1, &sel);
            // Naive: every combination of per-dimension reference indices, in C order.
            let per_dim: Vec<Vec<usize>> = ranges.iter().zip(&shape)
                .map(|(&(a, b, s), &n)| reference_indices(a, b, s, n as i64)).collect();
            let strides = c_strides(&shape, 1);
            let mut want = vec![0usize];
            for (k, idx) in per_dim.iter().enumerate() {
                let stride = strides[k];
                want = want.iter().flat_map(|base| idx.iter().map(move |i| base + i * stride)).collect();
            }
            let want: Vec<u8> = if per_dim.iter().any(|d| d.is_empty()) { vec![] } else { want.iter().map(|&o| src[o]).collect() };
            prop_assert_eq!(got, want);
        }
    }
}
