//! Tiled's `slice=` syntax: parsing, resolution against a shape with numpy's semantics
//! (negative indices, clamped bounds, negative steps, integer indices that drop a dimension,
//! `...`), and the fast copy of a selection out of a C-order buffer.

use std::str::FromStr;

/// One entry of a slice: an integer index, a `start:stop:step` range, or `...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DimSelector {
    /// A single position; negative counts from the end. Drops the dimension.
    Index(i64),
    /// Python's `start:stop:step`; a missing part takes numpy's default.
    Range {
        start: Option<i64>,
        stop: Option<i64>,
        step: Option<i64>,
    },
    /// `...`: as many whole dimensions as the other entries leave over.
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
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct DimRange {
    pub start: usize,
    pub step: isize,
    pub len: usize,
    pub keep: bool,
}

impl DimRange {
    /// The array index of the `k`-th selected element (`k < len`).
    pub fn index(&self, k: usize) -> usize {
        (self.start as isize + k as isize * self.step) as usize
    }
}

/// A selection resolved against a shape: one [`DimRange`] per dimension of the array.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Selection {
    pub dims: Vec<DimRange>,
}

/// Why a slice could not be parsed or applied to an array.
#[derive(Debug, thiserror::Error)]
pub enum SliceError {
    #[error("could not parse slice '{text}': {reason} in entry {entry}")]
    Parse {
        text: String,
        entry: usize,
        reason: String,
    },
    #[error(
        "slice '{text}' has an empty entry (entry {entry}); write ':' to take a whole dimension"
    )]
    EmptyEntry { text: String, entry: usize },
    #[error("slice{} has more than one '...'; at most one is allowed", quoted(.text))]
    MultipleEllipses { text: Option<String> },
    #[error("slice{} has step 0 in {position}; steps must be non-zero", quoted(.text))]
    ZeroStep {
        text: Option<String>,
        position: String,
    },
    #[error(
        "slice has {} but the array has {}",
        counted(*.got, "entry", "entries"),
        counted(*.ndim, "dimension", "dimensions")
    )]
    TooManyDims { got: usize, ndim: usize },
    #[error("index {index} is out of bounds for dimension {dim} with size {size}")]
    OutOfBounds { index: i64, dim: usize, size: usize },
}

/// ` 'text'` when the slice's text is known (parsed), nothing for a slice built in code.
fn quoted(text: &Option<String>) -> String {
    text.as_ref().map(|t| format!(" '{t}'")).unwrap_or_default()
}

fn counted(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Parses one optional integer of an entry (`""` is `None`). Only `-?[0-9]+` is accepted,
/// as Tiled's own validation pattern does (no `+`, no spaces, no `_`).
fn parse_int(text: &str, entry: usize, piece: &str) -> Result<Option<i64>, SliceError> {
    if piece.is_empty() {
        return Ok(None);
    }
    let bad = |reason: String| SliceError::Parse {
        text: text.to_string(),
        entry,
        reason,
    };
    let digits = piece.strip_prefix('-').unwrap_or(piece);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("expected an integer or start:stop:step".into()));
    }
    piece.parse().map(Some).map_err(|_| {
        bad(format!(
            "integer {piece} is outside the 64-bit range ({} to {})",
            i64::MIN,
            i64::MAX
        ))
    })
}

impl FromStr for SliceSpec {
    type Err = SliceError;

    /// Parses Tiled's `slice=` text; `""` selects everything.
    fn from_str(text: &str) -> Result<Self, SliceError> {
        if text.is_empty() {
            return Ok(SliceSpec::all());
        }
        let mut out = Vec::new();
        let mut seen_ellipsis = false;
        for (entry, part) in text.split(',').enumerate() {
            if part.is_empty() {
                return Err(SliceError::EmptyEntry {
                    text: text.to_string(),
                    entry,
                });
            }
            if part == "..." {
                if seen_ellipsis {
                    return Err(SliceError::MultipleEllipses {
                        text: Some(text.to_string()),
                    });
                }
                seen_ellipsis = true;
                out.push(DimSelector::Ellipsis);
                continue;
            }
            if part.contains(char::is_whitespace) {
                return Err(SliceError::Parse {
                    text: text.to_string(),
                    entry,
                    reason: "whitespace is not allowed".into(),
                });
            }
            let mut pieces = part.split(':');
            let first = pieces.next().unwrap_or_default();
            let rest: Vec<&str> = pieces.collect();
            let selector = match rest.as_slice() {
                // `part` is non-empty, so a lone piece always holds an integer or is invalid.
                [] => match parse_int(text, entry, first)? {
                    Some(i) => DimSelector::Index(i),
                    None => DimSelector::full(),
                },
                [stop] => DimSelector::Range {
                    start: parse_int(text, entry, first)?,
                    stop: parse_int(text, entry, stop)?,
                    step: None,
                },
                [stop, step] => DimSelector::Range {
                    start: parse_int(text, entry, first)?,
                    stop: parse_int(text, entry, stop)?,
                    step: parse_int(text, entry, step)?,
                },
                more => {
                    return Err(SliceError::Parse {
                        text: text.to_string(),
                        entry,
                        reason: format!(
                            "expected at most two ':' (start:stop:step) but found {}",
                            more.len()
                        ),
                    });
                }
            };
            if let DimSelector::Range { step: Some(0), .. } = selector {
                // Before any `...` an entry's position is its dimension; after it, it is not.
                let position = if seen_ellipsis {
                    format!("entry {entry}")
                } else {
                    format!("dimension {entry}")
                };
                return Err(SliceError::ZeroStep {
                    text: Some(text.to_string()),
                    position,
                });
            }
            out.push(selector);
        }
        Ok(SliceSpec(out))
    }
}

/// Resolves `start:stop:step` against a dimension of length `n` as Python's `slice.indices`
/// does. i128 keeps every i64 bound and its sum with `n` exact.
fn resolve_range(
    start: Option<i64>,
    stop: Option<i64>,
    step: Option<i64>,
    n: usize,
    dim: usize,
) -> Result<DimRange, SliceError> {
    let step = i128::from(step.unwrap_or(1));
    if step == 0 {
        return Err(SliceError::ZeroStep {
            text: None,
            position: format!("dimension {dim}"),
        });
    }
    let n = n as i128;
    // Bounds are clamped to [lower, upper]; a backwards walk may stop "before" index 0 (-1).
    let (lower, upper) = if step < 0 { (-1, n - 1) } else { (0, n) };
    let clamp = |v: Option<i64>, default: i128| match v.map(i128::from) {
        None => default,
        Some(v) if v < 0 => (v + n).max(lower),
        Some(v) => v.min(upper),
    };
    let (first, last) = if step < 0 {
        (clamp(start, upper), clamp(stop, lower))
    } else {
        (clamp(start, lower), clamp(stop, upper))
    };
    let len = if step > 0 && last > first {
        (last - first - 1) / step + 1
    } else if step < 0 && first > last {
        (first - last - 1) / -step + 1
    } else {
        0
    };
    // Canonical form: empty selections start at 0 and single elements have step 1, so equal
    // selections compare equal and a huge step never has to fit an isize.
    Ok(DimRange {
        start: if len == 0 { 0 } else { first as usize },
        // len > 1 implies |step| < n, which always fits.
        step: if len > 1 {
            isize::try_from(step).unwrap_or(isize::MAX)
        } else {
            1
        },
        len: len as usize,
        keep: true,
    })
}

impl SliceSpec {
    /// Everything (the empty slice).
    pub fn all() -> Self {
        SliceSpec(Vec::new())
    }

    /// Applies the slice to an array of `shape` with numpy's semantics.
    pub fn resolve(&self, shape: &[usize]) -> Result<Selection, SliceError> {
        let ellipses = self
            .0
            .iter()
            .filter(|d| matches!(d, DimSelector::Ellipsis))
            .count();
        if ellipses > 1 {
            return Err(SliceError::MultipleEllipses { text: None });
        }
        let given = self.0.len() - ellipses;
        if given > shape.len() {
            return Err(SliceError::TooManyDims {
                got: given,
                ndim: shape.len(),
            });
        }
        let full = DimSelector::full();
        let mut selectors: Vec<&DimSelector> = Vec::with_capacity(shape.len());
        for d in &self.0 {
            match d {
                DimSelector::Ellipsis => {
                    selectors.extend(std::iter::repeat_n(&full, shape.len() - given));
                }
                other => selectors.push(other),
            }
        }
        selectors.resize(shape.len(), &full);
        let dims = selectors
            .iter()
            .zip(shape)
            .enumerate()
            .map(|(dim, (sel, &n))| match sel {
                DimSelector::Index(i) => {
                    let j = if *i < 0 {
                        i128::from(*i) + n as i128
                    } else {
                        i128::from(*i)
                    };
                    if j < 0 || j >= n as i128 {
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
                // Ellipses were expanded above.
                DimSelector::Ellipsis => resolve_range(None, None, None, n, dim),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Selection { dims })
    }
}

impl Selection {
    /// Everything of `shape`, every dimension kept.
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

    /// The shape of the result (integer-indexed dimensions removed).
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
            && self.dims.iter().zip(shape).all(|(d, &n)| {
                d.keep && d.len == n && (d.start == 0 || n == 0) && (d.step == 1 || n <= 1)
            })
    }
}

/// Element strides of a C-order array, times `itemsize` (pass 1 for element units).
pub fn c_strides(shape: &[usize], itemsize: usize) -> Vec<usize> {
    let mut strides = vec![itemsize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    strides
}

/// One axis of a strided copy, in elements: how many, and the source and destination strides.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Axis {
    pub len: usize,
    pub src: isize,
    pub dst: isize,
}

/// Simplifies a strided copy: drops length-1 axes and merges neighbours that are contiguous
/// with each other on both sides (so trailing whole dimensions become one long run). The
/// result has at least one axis; the innermost always has `dst == 1` when the destination is
/// C-order of the lengths.
pub(crate) fn merge_axes(axes: &[Axis]) -> Vec<Axis> {
    let mut out: Vec<Axis> = Vec::with_capacity(axes.len().max(1));
    for &a in axes.iter().filter(|a| a.len != 1) {
        match out.last_mut() {
            Some(prev)
                if prev.src == a.src * a.len as isize && prev.dst == a.dst * a.len as isize =>
            {
                prev.len *= a.len;
                prev.src = a.src;
                prev.dst = a.dst;
            }
            _ => out.push(a),
        }
    }
    if out.is_empty() {
        out.push(Axis {
            len: 1,
            src: 1,
            dst: 1,
        });
    }
    out
}

/// Calls `line(src_offset, dst_offset)` (in elements) for every innermost line of a merged
/// copy. Offsets move by additions only; a multiplication happens only when an axis wraps.
pub(crate) fn for_each_line(
    axes: &[Axis],
    src_base: isize,
    dst_base: isize,
    mut line: impl FnMut(isize, isize),
) {
    let outer = &axes[..axes.len().saturating_sub(1)];
    if outer.iter().any(|a| a.len == 0) {
        return;
    }
    let mut idx = vec![0usize; outer.len()];
    let (mut s, mut d) = (src_base, dst_base);
    loop {
        line(s, d);
        // Odometer over the outer axes, innermost fastest.
        let mut k = outer.len();
        loop {
            if k == 0 {
                return;
            }
            k -= 1;
            idx[k] += 1;
            s += outer[k].src;
            d += outer[k].dst;
            if idx[k] < outer[k].len {
                break;
            }
            idx[k] = 0;
            s -= outer[k].src * outer[k].len as isize;
            d -= outer[k].dst * outer[k].len as isize;
        }
    }
}

/// Copies `dst.len() / size` elements of `size` bytes from `src`, starting at element `start`
/// and moving `stride` elements each time (negative walks backwards), into contiguous `dst`.
/// Inlined so that each call site with a constant `size` gets fixed-size copies.
#[inline(always)]
fn gather_fixed(src: &[u8], start: usize, stride: isize, dst: &mut [u8], size: usize) {
    let len = dst.len() / size;
    if len == 0 {
        return;
    }
    let step = stride.unsigned_abs() * size;
    if stride == -1 {
        // A reversed run: walk its exact chunks from the back (no per-element arithmetic).
        let lo = (start + 1 - len) * size;
        let run = &src[lo..(start + 1) * size];
        for (d, s) in dst.chunks_exact_mut(size).zip(run.chunks_exact(size).rev()) {
            d.copy_from_slice(s);
        }
    } else if stride > 0 {
        let mut at = start * size;
        for d in dst.chunks_exact_mut(size) {
            d.copy_from_slice(&src[at..at + size]);
            // Wrapping: the position after the last element may lie past the buffer.
            at = at.wrapping_add(step);
        }
    } else {
        let mut at = start * size;
        for d in dst.chunks_exact_mut(size) {
            d.copy_from_slice(&src[at..at + size]);
            // Wrapping: the position after the last element may lie before index 0.
            at = at.wrapping_sub(step);
        }
    }
}

/// Strided gather with the common item sizes specialised.
pub(crate) fn gather(src: &[u8], start: usize, stride: isize, dst: &mut [u8], itemsize: usize) {
    match itemsize {
        1 => gather_fixed(src, start, stride, dst, 1),
        2 => gather_fixed(src, start, stride, dst, 2),
        4 => gather_fixed(src, start, stride, dst, 4),
        8 => gather_fixed(src, start, stride, dst, 8),
        16 => gather_fixed(src, start, stride, dst, 16),
        n => gather_fixed(src, start, stride, dst, n),
    }
}

/// Checks that `sel` has `shape`'s rank and stays inside it; a mismatch is a bug in the
/// caller (selections come from [`SliceSpec::resolve`] against the same shape).
pub(crate) fn assert_selection_fits(shape: &[usize], sel: &Selection) {
    assert_eq!(
        sel.dims.len(),
        shape.len(),
        "selection of rank {} applied to an array of rank {}",
        sel.dims.len(),
        shape.len()
    );
    for (k, (d, &n)) in sel.dims.iter().zip(shape).enumerate() {
        if d.len > 0 {
            let last = d.start as i128 + (d.len as i128 - 1) * d.step as i128;
            assert!(
                d.start < n && (0..n as i128).contains(&last),
                "selection {d:?} does not fit dimension {k} of size {n}"
            );
        }
    }
}

/// The merged copy plan of `sel` over a C-order source of `shape`, into a C-order
/// destination of the selection's full-rank lengths, and the source's starting element.
fn selection_axes(shape: &[usize], sel: &Selection) -> (Vec<Axis>, isize) {
    let src_strides = c_strides(shape, 1);
    let lens: Vec<usize> = sel.dims.iter().map(|d| d.len).collect();
    let dst_strides = c_strides(&lens, 1);
    let mut base = 0isize;
    let axes: Vec<Axis> = sel
        .dims
        .iter()
        .zip(src_strides.iter().zip(&dst_strides))
        .map(|(d, (&ss, &ds))| {
            base += (d.start * ss) as isize;
            Axis {
                len: d.len,
                src: d.step * ss as isize,
                dst: ds as isize,
            }
        })
        .collect();
    (merge_axes(&axes), base)
}

/// Copies the selected elements of a C-order buffer (element size `itemsize` bytes) into a
/// new C-order buffer of `sel.out_shape()`.
///
/// # Panics
/// If `sel` does not have `shape`'s rank or reaches outside it, or `src` is shorter than
/// `shape` × `itemsize` bytes.
pub fn copy_selection(src: &[u8], shape: &[usize], itemsize: usize, sel: &Selection) -> Vec<u8> {
    assert_selection_fits(shape, sel);
    let n = sel.num_elements();
    let needed = shape.iter().product::<usize>() * itemsize;
    assert!(
        src.len() >= needed || n == 0,
        "buffer of {} bytes is too small for shape {shape:?} of {itemsize}-byte items",
        src.len()
    );
    let mut out = Vec::with_capacity(n * itemsize);
    if n == 0 || itemsize == 0 {
        return out;
    }
    let (axes, base) = selection_axes(shape, sel);
    let inner = axes[axes.len() - 1];
    let run = inner.len * itemsize;
    for_each_line(&axes, base, 0, |s, _| {
        let s = s as usize;
        if inner.src == 1 {
            out.extend_from_slice(&src[s * itemsize..s * itemsize + run]);
        } else {
            let at = out.len();
            out.resize(at + run, 0);
            gather(src, s, inner.src, &mut out[at..], itemsize);
        }
    });
    out
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

    fn err(s: &str, shape: &[usize]) -> String {
        resolve(s, shape).unwrap_err().to_string()
    }

    fn range(start: Option<i64>, stop: Option<i64>, step: Option<i64>) -> DimSelector {
        DimSelector::Range { start, stop, step }
    }

    #[test]
    fn parses_every_form() {
        let s =
            SliceSpec::from_str("1,-2,5:10,5:10:2,:7,3:,:,::2,3::-1,:-7:3,-9:-1:-2,...").unwrap();
        assert_eq!(
            s.0,
            vec![
                DimSelector::Index(1),
                DimSelector::Index(-2),
                range(Some(5), Some(10), None),
                range(Some(5), Some(10), Some(2)),
                range(None, Some(7), None),
                range(Some(3), None, None),
                range(None, None, None),
                range(None, None, Some(2)),
                range(Some(3), None, Some(-1)),
                range(None, Some(-7), Some(3)),
                range(Some(-9), Some(-1), Some(-2)),
                DimSelector::Ellipsis,
            ]
        );
        assert_eq!(
            SliceSpec::from_str("::").unwrap().0,
            vec![DimSelector::full()]
        );
        assert_eq!(
            SliceSpec::from_str("-0").unwrap().0,
            vec![DimSelector::Index(0)]
        );
        assert_eq!(SliceSpec::from_str("").unwrap(), SliceSpec::all());
        assert_eq!(
            SliceSpec::from_str("-9223372036854775808:9223372036854775807")
                .unwrap()
                .0,
            vec![range(Some(i64::MIN), Some(i64::MAX), None)]
        );
    }

    #[test]
    fn malformed_slices_say_what_is_wrong() {
        let parse = |s: &str| SliceSpec::from_str(s).unwrap_err().to_string();
        assert_eq!(
            parse("a"),
            "could not parse slice 'a': expected an integer or start:stop:step in entry 0"
        );
        assert_eq!(
            parse("1:2:0"),
            "slice '1:2:0' has step 0 in dimension 0; steps must be non-zero"
        );
        assert_eq!(
            parse("...,::0"),
            "slice '...,::0' has step 0 in entry 1; steps must be non-zero"
        );
        assert!(parse("::,").starts_with("slice '::,' has an empty entry (entry 1)"));
        assert!(parse("1,,2").contains("empty entry (entry 1)"));
        assert!(parse(",").contains("empty entry (entry 0)"));
        assert!(parse("1:2:3:4").contains("at most two ':'"));
        assert!(parse("1:2:3:4").ends_with("in entry 0"));
        assert!(parse("0,1.5").ends_with("expected an integer or start:stop:step in entry 1"));
        for bad in ["--1", "+1", "-", "1-", "..", "....", "0x10", "1e3", "１"] {
            assert!(parse(bad).starts_with("could not parse slice"), "{bad}");
        }
        assert!(parse("1, 2").contains("whitespace is not allowed in entry 1"));
        for huge in [
            "99999999999999999999999",
            "9223372036854775808",
            "-9223372036854775809",
            "0:99999999999999999999999",
            "::-99999999999999999999999",
        ] {
            let e = parse(huge);
            assert!(e.contains("outside the 64-bit range"), "{huge}: {e}");
        }
        assert_eq!(
            parse("...,0,..."),
            "slice '...,0,...' has more than one '...'; at most one is allowed"
        );
    }

    #[test]
    fn resolution_errors_say_what_is_wrong() {
        assert_eq!(
            err("0:1,0:1,0:1", &[5, 5]),
            "slice has 3 entries but the array has 2 dimensions"
        );
        assert_eq!(
            err("0", &[]),
            "slice has 1 entry but the array has 0 dimensions"
        );
        assert_eq!(
            err("7", &[5]),
            "index 7 is out of bounds for dimension 0 with size 5"
        );
        assert_eq!(
            err("0,-6", &[5, 5]),
            "index -6 is out of bounds for dimension 1 with size 5"
        );
        assert_eq!(
            err("...,5", &[9, 9, 5]),
            "index 5 is out of bounds for dimension 2 with size 5"
        );
        assert!(err(&i64::MIN.to_string(), &[5]).contains("out of bounds"));
        assert!(err(&i64::MAX.to_string(), &[5]).contains("out of bounds"));
        assert!(matches!(
            resolve("0,0,0", &[2, 2]),
            Err(SliceError::TooManyDims { got: 3, ndim: 2 })
        ));
        // Built in code, a zero step or two ellipses are still caught at resolution.
        let zero = SliceSpec(vec![DimSelector::full(), range(None, None, Some(0))]);
        assert_eq!(
            zero.resolve(&[3, 3]).unwrap_err().to_string(),
            "slice has step 0 in dimension 1; steps must be non-zero"
        );
        let two = SliceSpec(vec![DimSelector::Ellipsis, DimSelector::Ellipsis]);
        assert!(matches!(
            two.resolve(&[3]),
            Err(SliceError::MultipleEllipses { text: None })
        ));
    }

    #[test]
    fn numpy_semantics() {
        // The client's reversed full read: stop below -len means "run past index 0".
        let s = resolve("49:-51:-1", &[50]).unwrap();
        assert_eq!(indices(&s.dims[0]), (0..50).rev().collect::<Vec<_>>());
        assert_eq!(indices(&resolve("::-2", &[5]).unwrap().dims[0]), [4, 2, 0]);
        assert_eq!(indices(&resolve("::-2", &[6]).unwrap().dims[0]), [5, 3, 1]);
        assert_eq!(indices(&resolve("-3:", &[5]).unwrap().dims[0]), [2, 3, 4]);
        assert_eq!(indices(&resolve("-100:2", &[5]).unwrap().dims[0]), [0, 1]);
        assert_eq!(
            indices(&resolve("2:9:3", &[10]).unwrap().dims[0]),
            [2, 5, 8]
        );
        assert_eq!(
            indices(&resolve("8:1:-3", &[10]).unwrap().dims[0]),
            [8, 5, 2]
        );
        assert_eq!(
            indices(&resolve("100::-1", &[3]).unwrap().dims[0]),
            [2, 1, 0]
        );
        assert_eq!(
            indices(&resolve(":-100:-1", &[3]).unwrap().dims[0]),
            [2, 1, 0]
        );
        // Clamping and empty results (Tiled answers `100:200` with `[]`).
        assert_eq!(resolve("100:200", &[50]).unwrap().dims[0].len, 0);
        assert_eq!(
            resolve("100:200,0:5", &[50, 50]).unwrap().out_shape(),
            vec![0, 5]
        );
        assert_eq!(resolve("3:1", &[5]).unwrap().dims[0].len, 0);
        assert_eq!(resolve("1:3:-1", &[5]).unwrap().dims[0].len, 0);
        assert_eq!(resolve("0:0", &[5]).unwrap().num_elements(), 0);
        assert_eq!(resolve("::-1", &[0]).unwrap().dims[0].len, 0);
        // Huge bounds and steps clamp instead of overflowing.
        let huge = resolve(
            "-9223372036854775808:9223372036854775807:9223372036854775807",
            &[5],
        );
        assert_eq!(indices(&huge.unwrap().dims[0]), [0]);
        let back = resolve("9223372036854775807::-9223372036854775808", &[5]).unwrap();
        assert_eq!(indices(&back.dims[0]), [4]);
        // Integer indices drop their dimension.
        let dropped = resolve("2,1:3", &[4, 5]).unwrap();
        assert_eq!(dropped.out_shape(), vec![2]);
        assert_eq!(
            dropped.dims[0],
            DimRange {
                start: 2,
                step: 1,
                len: 1,
                keep: false
            }
        );
        assert_eq!(resolve("-1", &[4]).unwrap().dims[0].start, 3);
        assert_eq!(
            resolve("1,2", &[3, 4]).unwrap().out_shape(),
            Vec::<usize>::new()
        );
        assert!(resolve("4", &[4]).is_err());
        assert!(resolve("-5", &[4]).is_err());
        assert!(resolve("0", &[0]).is_err());
        // Trailing dimensions are taken whole; `...` fills the middle.
        assert_eq!(resolve("1", &[3, 4, 5]).unwrap().out_shape(), vec![4, 5]);
        assert_eq!(
            resolve("...,0", &[3, 4, 5]).unwrap().out_shape(),
            vec![3, 4]
        );
        assert_eq!(resolve("0,...,0", &[3, 4, 5]).unwrap().out_shape(), vec![4]);
        assert_eq!(
            resolve("0,...,1:3,0", &[3, 4, 5]).unwrap().out_shape(),
            vec![2]
        );
        assert_eq!(resolve("...", &[3, 4]).unwrap(), Selection::full(&[3, 4]));
        // 0-d: only "" (and "...", which expands to nothing) apply.
        assert_eq!(resolve("", &[]).unwrap(), Selection { dims: vec![] });
        assert_eq!(resolve("...", &[]).unwrap().num_elements(), 1);
        assert!(resolve(":", &[]).is_err());
    }

    #[test]
    fn selection_helpers() {
        let full = Selection::full(&[3, 4]);
        assert!(full.is_full(&[3, 4]));
        assert!(!full.is_full(&[3, 5]));
        assert!(resolve("0:3,:", &[3, 4]).unwrap().is_full(&[3, 4]));
        assert!(!resolve("::-1", &[3, 4]).unwrap().is_full(&[3, 4]));
        assert!(!resolve("0", &[1, 4]).unwrap().is_full(&[1, 4]));
        assert!(resolve("::-1", &[1, 4]).unwrap().is_full(&[1, 4]));
        assert!(Selection::full(&[]).is_full(&[]));
        assert_eq!(Selection::full(&[]).num_elements(), 1);
        assert_eq!(Selection::full(&[3, 0]).num_elements(), 0);
        assert_eq!(resolve("1:3,::2", &[5, 5]).unwrap().num_elements(), 6);
    }

    #[test]
    fn copies_strided_and_reversed_selections() {
        let shape = [3, 4];
        let src: Vec<u8> = (0..12).collect();
        let copy = |s: &str| copy_selection(&src, &shape, 1, &resolve(s, &shape).unwrap());
        assert_eq!(copy("::2,::-1"), [3, 2, 1, 0, 11, 10, 9, 8]);
        assert_eq!(copy("::-1,::-1"), (0..12).rev().collect::<Vec<u8>>());
        assert_eq!(copy("1"), [4, 5, 6, 7]);
        assert_eq!(copy(":,2"), [2, 6, 10]);
        assert_eq!(copy("-1,-1"), [11]);
        assert_eq!(copy(""), src);
        assert!(copy("0:0").is_empty());
        // Multi-byte items move whole.
        let wide: Vec<u8> = (0..24).collect();
        let sel = resolve("::-2", &[12]).unwrap();
        assert_eq!(
            copy_selection(&wide, &[12], 2, &sel),
            [22, 23, 18, 19, 14, 15, 10, 11, 6, 7, 2, 3]
        );
        // 0-d arrays hold one element.
        assert_eq!(
            copy_selection(&[9, 8, 7, 6], &[], 4, &Selection::full(&[])),
            [9, 8, 7, 6]
        );
    }

    #[test]
    fn axes_merge_into_long_runs() {
        let sel = resolve("2:4", &[5, 6, 7]).unwrap();
        let (axes, base) = selection_axes(&[5, 6, 7], &sel);
        assert_eq!(axes.len(), 1, "{axes:?}");
        assert_eq!((axes[0].len, axes[0].src, base), (2 * 6 * 7, 1, 2 * 42));
        let sel = resolve("::-1,::-1", &[5, 6]).unwrap();
        let (axes, base) = selection_axes(&[5, 6], &sel);
        assert_eq!((axes.len(), axes[0].src, base), (1, -1, 29));
        let sel = resolve(":,1:3", &[5, 6]).unwrap();
        assert_eq!(selection_axes(&[5, 6], &sel).0.len(), 2);
    }

    #[test]
    #[should_panic(expected = "does not fit dimension 0")]
    fn a_selection_outside_the_shape_is_a_bug() {
        let sel = resolve("0:5", &[5]).unwrap();
        copy_selection(&[0; 4], &[4], 1, &sel);
    }

    /// Python's slice semantics written as a filter over `range(n)`, independently of
    /// `resolve_range`'s arithmetic: clamp the bounds, then keep the indices on the stride.
    fn reference_indices(start: Option<i64>, stop: Option<i64>, step: i64, n: usize) -> Vec<usize> {
        let n = n as i128;
        let norm = |v: i64| {
            let v = i128::from(v);
            if v < 0 { v + n } else { v }
        };
        let step = i128::from(step);
        if step > 0 {
            let lo = start.map_or(0, norm).clamp(0, n);
            let hi = stop.map_or(n, norm).clamp(0, n);
            (0..n)
                .filter(|&i| i >= lo && i < hi && (i - lo) % step == 0)
                .map(|i| i as usize)
                .collect()
        } else {
            let hi = start.map_or(n - 1, norm).clamp(-1, n - 1);
            let lo = stop.map_or(-1, |v| norm(v).clamp(-1, n - 1));
            (0..n)
                .rev()
                .filter(|&i| i <= hi && i > lo && (hi - i) % -step == 0)
                .map(|i| i as usize)
                .collect()
        }
    }

    /// Per-dimension indices of a spec on `shape` by the reference rules, with the kept flag;
    /// `None` where numpy raises.
    fn reference_resolve(spec: &[DimSelector], shape: &[usize]) -> Option<Vec<(Vec<usize>, bool)>> {
        let given = spec.iter().filter(|d| **d != DimSelector::Ellipsis).count();
        if given > shape.len() {
            return None;
        }
        let mut expanded = Vec::new();
        for d in spec {
            if *d == DimSelector::Ellipsis {
                expanded.extend(vec![DimSelector::full(); shape.len() - given]);
            } else {
                expanded.push(d.clone());
            }
        }
        expanded.resize(shape.len(), DimSelector::full());
        expanded
            .iter()
            .zip(shape)
            .map(|(d, &n)| match *d {
                DimSelector::Index(i) => {
                    let j = if i < 0 {
                        i128::from(i) + n as i128
                    } else {
                        i128::from(i)
                    };
                    (0..n as i128)
                        .contains(&j)
                        .then(|| (vec![j as usize], false))
                }
                DimSelector::Range { start, stop, step } => match step.unwrap_or(1) {
                    0 => None,
                    s => Some((reference_indices(start, stop, s, n), true)),
                },
                DimSelector::Ellipsis => None,
            })
            .collect()
    }

    /// Every element of the cartesian product of `per_dim`, in C order, gathered one by one.
    fn naive_gather(
        src: &[u8],
        shape: &[usize],
        itemsize: usize,
        per_dim: &[Vec<usize>],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let total: usize = per_dim.iter().map(Vec::len).product();
        for flat in 0..total {
            let mut rest = flat;
            let mut offset = 0;
            let mut stride = 1;
            for (k, idx) in per_dim.iter().enumerate().rev() {
                offset += idx[rest % idx.len()] * stride;
                rest /= idx.len();
                stride *= shape[k];
            }
            out.extend_from_slice(&src[offset * itemsize..(offset + 1) * itemsize]);
        }
        out
    }

    /// Distinct bytes for every element, so a misplaced element is always noticed.
    fn numbered(elements: usize, itemsize: usize) -> Vec<u8> {
        (0..elements * itemsize)
            .map(|b| ((b / itemsize) * 31 + b % itemsize * 7) as u8)
            .collect()
    }

    fn arb_bound() -> impl Strategy<Value = Option<i64>> {
        prop_oneof![
            6 => proptest::option::of(-9i64..9),
            1 => prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(-1_000_000), Just(1_000_000)]
                .prop_map(Some),
        ]
    }

    fn arb_selector() -> impl Strategy<Value = DimSelector> {
        prop_oneof![
            2 => (-8i64..8).prop_map(DimSelector::Index),
            6 => (
                arb_bound(),
                arb_bound(),
                prop_oneof![
                    4 => proptest::option::of(prop_oneof![-4i64..0, 1i64..5]),
                    1 => prop_oneof![Just(Some(i64::MIN)), Just(Some(i64::MAX)), Just(Some(0))],
                ],
            )
                .prop_map(|(start, stop, step)| DimSelector::Range { start, stop, step }),
            1 => Just(DimSelector::Ellipsis),
        ]
    }

    fn to_text(spec: &[DimSelector]) -> String {
        let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        spec.iter()
            .map(|d| match *d {
                DimSelector::Index(i) => i.to_string(),
                DimSelector::Range {
                    start,
                    stop,
                    step: None,
                } => {
                    format!("{}:{}", opt(start), opt(stop))
                }
                DimSelector::Range { start, stop, step } => {
                    format!("{}:{}:{}", opt(start), opt(stop), opt(step))
                }
                DimSelector::Ellipsis => "...".into(),
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    proptest! {
        #[test]
        fn ranges_match_python(
            start in arb_bound(), stop in arb_bound(),
            step in prop_oneof![-4i64..0, 1i64..5, Just(i64::MIN), Just(i64::MAX)],
            n in 0usize..10,
        ) {
            let d = resolve_range(start, stop, Some(step), n, 0).unwrap();
            prop_assert_eq!(indices(&d), reference_indices(start, stop, step, n));
        }

        #[test]
        fn text_round_trips(spec in proptest::collection::vec(arb_selector(), 0..5)) {
            let text = to_text(&spec);
            let ellipses = spec.iter().filter(|d| **d == DimSelector::Ellipsis).count();
            let zero_step = spec.iter().any(|d| matches!(d, DimSelector::Range { step: Some(0), .. }));
            let parsed = SliceSpec::from_str(&text);
            if ellipses > 1 || zero_step {
                prop_assert!(parsed.is_err(), "{} parsed", text);
            } else {
                prop_assert_eq!(parsed.unwrap().0, spec);
            }
        }

        #[test]
        fn arbitrary_text_never_panics(text in "[-0-9:,. a]{0,12}") {
            if let Ok(spec) = SliceSpec::from_str(&text) {
                let _ = spec.resolve(&[3, 4, 5]);
            }
        }

        #[test]
        fn copy_matches_naive_gather(
            shape in proptest::collection::vec(0usize..6, 0..5),
            spec in proptest::collection::vec(arb_selector(), 0..5),
            itemsize in prop_oneof![Just(1usize), Just(2), Just(3), Just(8)],
        ) {
            let spec = SliceSpec(spec);
            let reference = reference_resolve(&spec.0, &shape);
            let resolved = spec.resolve(&shape);
            let ellipses = spec.0.iter().filter(|d| **d == DimSelector::Ellipsis).count();
            if ellipses > 1 {
                prop_assert!(resolved.is_err());
                return Ok(());
            }
            let (reference, sel) = match (reference, resolved) {
                (Some(r), Ok(sel)) => (r, sel),
                (None, Err(_)) => return Ok(()),
                (r, s) => {
                    return Err(TestCaseError::fail(format!("reference {r:?} but resolve {s:?}")));
                }
            };
            let want_shape: Vec<usize> = reference.iter().filter(|r| r.1).map(|r| r.0.len()).collect();
            prop_assert_eq!(sel.out_shape(), want_shape);
            let src = numbered(shape.iter().product(), itemsize);
            let per_dim: Vec<Vec<usize>> = reference.into_iter().map(|r| r.0).collect();
            let got = copy_selection(&src, &shape, itemsize, &sel);
            prop_assert_eq!(got.len(), sel.num_elements() * itemsize);
            prop_assert_eq!(got, naive_gather(&src, &shape, itemsize, &per_dim));
        }
    }
}
