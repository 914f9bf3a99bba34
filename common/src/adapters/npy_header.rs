//! The header of a `.npy` file, read as `np.load` reads it: format versions 1.0 (2-byte
//! header length), 2.0 (4-byte) and 3.0 (utf-8 text), the header dictionary as a Python
//! literal (any key order, either quote, with or without a trailing comma, numpy-on-Python-2
//! longs such as `3L`), simple and structured element types, and Fortran order.

use std::io::Read;

use crate::dtype::{BuiltinDType, DataType, Field, StructDType};

/// Headers longer than this are refused (numpy's own limit is 10 000 bytes by default).
const MAX_HEADER_BYTES: usize = 1 << 20;

/// What a `.npy` header says about the data that follows it.
#[derive(Debug, PartialEq)]
pub struct NpyHeader {
    /// The element type served: a structured type without its padding.
    pub dtype: DataType,
    /// Bytes per element in the file (more than `dtype`'s when a structured type is padded,
    /// as an aligned C struct is).
    pub stored_itemsize: usize,
    /// For a padded structured type: where each served field's bytes sit in a stored
    /// element (offset, length), in order.
    pub fields_at: Option<Vec<(usize, usize)>>,
    pub shape: Vec<usize>,
    /// The data is stored first axis fastest (`fortran_order: True`).
    pub fortran_order: bool,
    /// Where the data starts in the file.
    pub offset: u64,
}

/// Reads the header at the start of `r`; errors say what is wrong, for a user.
pub fn read(r: &mut impl Read) -> Result<NpyHeader, String> {
    let mut pre = [0u8; 8];
    r.read_exact(&mut pre)
        .map_err(|_| "not a .npy file (too short)".to_string())?;
    if &pre[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (no NUMPY magic)".into());
    }
    let (major, minor) = (pre[6], pre[7]);
    let (len, start) = match major {
        1 => {
            let mut n = [0u8; 2];
            r.read_exact(&mut n)
                .map_err(|_| "the .npy header is truncated".to_string())?;
            (u16::from_le_bytes(n) as usize, 10u64)
        }
        2 | 3 => {
            let mut n = [0u8; 4];
            r.read_exact(&mut n)
                .map_err(|_| "the .npy header is truncated".to_string())?;
            (u32::from_le_bytes(n) as usize, 12u64)
        }
        _ => {
            return Err(format!(
                ".npy format version {major}.{minor} is not supported"
            ));
        }
    };
    if len > MAX_HEADER_BYTES {
        return Err(format!("the .npy header is implausibly long ({len} bytes)"));
    }
    let mut raw = vec![0u8; len];
    r.read_exact(&mut raw)
        .map_err(|_| "the .npy header is truncated".to_string())?;
    // Versions 1 and 2 are latin-1 text, version 3 utf-8.
    let text: String = if major == 3 {
        String::from_utf8(raw).map_err(|_| "the .npy 3.0 header is not utf-8".to_string())?
    } else {
        raw.iter().map(|&b| b as char).collect()
    };
    let mut header = parse_dict(&text)?;
    header.offset = start + len as u64;
    Ok(header)
}

/// A Python literal as numpy writes them in headers.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Str(String),
    Bool(bool),
    Int(u64),
    /// A tuple or a list (numpy writes lists of tuples for structured types).
    Seq(Vec<Literal>),
    Dict(Vec<(Literal, Literal)>),
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        while self.at < self.s.len() && self.s[self.at].is_ascii_whitespace() {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_space();
        self.s.get(self.at).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("expected {:?} at byte {}", c as char, self.at))
        }
    }

    /// Items up to `close`, separated by commas, a trailing comma allowed.
    fn items(
        &mut self,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Result<(), String>,
    ) -> Result<bool, String> {
        let mut trailing_comma = false;
        loop {
            if self.peek() == Some(close) {
                self.at += 1;
                return Ok(trailing_comma);
            }
            item(self)?;
            trailing_comma = false;
            match self.peek() {
                Some(b',') => {
                    self.at += 1;
                    trailing_comma = true;
                }
                Some(c) if c == close => {}
                _ => {
                    return Err(format!(
                        "expected ',' or {:?} at byte {}",
                        close as char, self.at
                    ));
                }
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Literal, String> {
        if depth > 32 {
            return Err("nested too deeply".into());
        }
        match self.peek() {
            Some(q @ (b'\'' | b'"')) => {
                self.at += 1;
                let begin = self.at;
                while self.at < self.s.len() && self.s[self.at] != q {
                    if self.s[self.at] == b'\\' {
                        return Err("escapes in strings are not supported".into());
                    }
                    self.at += 1;
                }
                if self.at == self.s.len() {
                    return Err("a string is not closed".into());
                }
                let text = String::from_utf8_lossy(&self.s[begin..self.at]).into_owned();
                self.at += 1;
                Ok(Literal::Str(text))
            }
            Some(open @ (b'(' | b'[')) => {
                self.at += 1;
                let close = if open == b'(' { b')' } else { b']' };
                let mut out = Vec::new();
                self.items(close, |p| {
                    out.push(p.value(depth + 1)?);
                    Ok(())
                })?;
                Ok(Literal::Seq(out))
            }
            Some(b'{') => {
                self.at += 1;
                let mut out = Vec::new();
                self.items(b'}', |p| {
                    let k = p.value(depth + 1)?;
                    p.expect(b':')?;
                    out.push((k, p.value(depth + 1)?));
                    Ok(())
                })?;
                Ok(Literal::Dict(out))
            }
            Some(c) if c.is_ascii_digit() => {
                let begin = self.at;
                while self.at < self.s.len() && self.s[self.at].is_ascii_digit() {
                    self.at += 1;
                }
                let digits = std::str::from_utf8(&self.s[begin..self.at]).unwrap_or("");
                let n = digits
                    .parse()
                    .map_err(|_| format!("the number {digits} is too large"))?;
                // numpy on Python 2 wrote the shape's numbers as longs: `(3L, 4L)`.
                if matches!(self.s.get(self.at), Some(b'L' | b'l')) {
                    self.at += 1;
                }
                Ok(Literal::Int(n))
            }
            Some(_) => {
                for (word, v) in [("True", true), ("False", false)] {
                    if self.s[self.at..].starts_with(word.as_bytes()) {
                        self.at += word.len();
                        return Ok(Literal::Bool(v));
                    }
                }
                Err(format!("unexpected text at byte {}", self.at))
            }
            None => Err("the header ends early".into()),
        }
    }
}

fn parse_dict(text: &str) -> Result<NpyHeader, String> {
    let bad = |why: String| format!("the .npy header is not readable ({why})");
    let mut p = Parser {
        s: text.as_bytes(),
        at: 0,
    };
    let Literal::Dict(entries) = p.value(0).map_err(bad)? else {
        return Err(bad("it is not a dictionary".into()));
    };
    if p.peek().is_some() {
        return Err(bad(format!(
            "unexpected text after the dictionary at byte {}",
            p.at
        )));
    }
    let get = |key: &str| {
        entries
            .iter()
            .find(|(k, _)| *k == Literal::Str(key.into()))
            .map(|(_, v)| v)
    };
    let descr = get("descr").ok_or_else(|| bad("no 'descr'".into()))?;
    let stored = descr_type(descr)?;
    let fortran_order = match get("fortran_order") {
        Some(Literal::Bool(b)) => *b,
        _ => return Err(bad("no 'fortran_order' True or False".into())),
    };
    let shape = match get("shape") {
        Some(Literal::Seq(dims)) => dims
            .iter()
            .map(|d| match d {
                Literal::Int(n) => {
                    usize::try_from(*n).map_err(|_| bad("a dimension is too large".into()))
                }
                _ => Err(bad("the shape is not a tuple of integers".into())),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(bad("no 'shape' tuple".into())),
    };
    Ok(NpyHeader {
        dtype: stored.dtype,
        stored_itemsize: stored.itemsize,
        fields_at: stored.fields_at,
        shape,
        fortran_order,
        offset: 0,
    })
}

/// An element type as stored, and as served.
struct Stored {
    /// Served: without padding fields.
    dtype: DataType,
    /// Bytes per stored element.
    itemsize: usize,
    /// Where the served fields sit in a stored element, when padding lies between them.
    fields_at: Option<Vec<(usize, usize)>>,
}

/// Copies the served fields of each stored element of `src` next to each other.
pub fn pack(src: &[u8], stored_itemsize: usize, fields_at: &[(usize, usize)]) -> Vec<u8> {
    let packed: usize = fields_at.iter().map(|&(_, n)| n).sum();
    let mut out = Vec::with_capacity(src.len() / stored_itemsize.max(1) * packed);
    for item in src.chunks_exact(stored_itemsize.max(1)) {
        for &(at, n) in fields_at {
            out.extend_from_slice(&item[at..at + n]);
        }
    }
    out
}

/// The element type a `descr` gives: a type string, or a list of `(name, type[, shape])`
/// in which unnamed `|V<n>` entries are padding.
fn descr_type(descr: &Literal) -> Result<Stored, String> {
    match descr {
        Literal::Str(s) if s.trim_start_matches(['<', '>', '|', '=']).starts_with('O') => {
            Err(format!(
                "the .npy file holds Python objects (element type {s:?}), which only unpickling reads; they are not served"
            ))
        }
        Literal::Str(s) => {
            let b = BuiltinDType::parse_numpy(s)
                .ok_or_else(|| format!(".npy element type {s:?} is not served"))?;
            Ok(Stored {
                itemsize: b.itemsize,
                dtype: DataType::Builtin(b),
                fields_at: None,
            })
        }
        Literal::Seq(fields) => {
            let mut out = Vec::with_capacity(fields.len());
            let mut at = Vec::with_capacity(fields.len());
            let mut itemsize = 0usize;
            let mut padded = false;
            for f in fields {
                let Literal::Seq(parts) = f else {
                    return Err("a field of the .npy structured type is not a tuple".into());
                };
                let (name, dtype, shape) = match parts.as_slice() {
                    [Literal::Str(n), t] => (n, t, None),
                    [Literal::Str(n), t, Literal::Seq(s)] => (n, t, Some(s)),
                    _ => {
                        return Err(
                            "a field of the .npy structured type has a title or an odd layout, which is not served"
                                .into(),
                        );
                    }
                };
                let inner = descr_type(dtype)?;
                let shape = shape
                    .map(|s| {
                        s.iter()
                            .map(|d| match d {
                                Literal::Int(n) => usize::try_from(*n).map_err(|_| ()),
                                _ => Err(()),
                            })
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(|_| format!("field {name:?} has a bad shape"))
                    })
                    .transpose()?;
                let count = shape.as_ref().map_or(Some(1usize), |s| {
                    s.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
                });
                let stored = count
                    .and_then(|c| c.checked_mul(inner.itemsize))
                    .ok_or_else(|| format!("field {name:?} is too large"))?;
                let is_padding = name.is_empty()
                    && matches!(&inner.dtype, DataType::Builtin(b) if b.kind == crate::dtype::Kind::Void);
                if is_padding {
                    padded = true;
                } else {
                    if inner.fields_at.is_some() {
                        return Err(format!(
                            "field {name:?} is a padded structure inside a structure, which is not served"
                        ));
                    }
                    at.push((itemsize, stored));
                    out.push(Field {
                        name: name.clone(),
                        dtype: inner.dtype,
                        shape,
                    });
                }
                itemsize = itemsize
                    .checked_add(stored)
                    .ok_or_else(|| format!("field {name:?} is too large"))?;
            }
            if out.is_empty() {
                return Err(".npy structured type without fields".into());
            }
            let served: usize = at.iter().map(|&(_, n)| n).sum();
            if served == 0 {
                return Err(".npy structured type whose fields hold no bytes".into());
            }
            Ok(Stored {
                dtype: DataType::Structured(StructDType {
                    itemsize: served,
                    fields: out,
                }),
                itemsize,
                fields_at: padded.then_some(at),
            })
        }
        _ => Err("the .npy 'descr' is neither a type string nor a list of fields".into()),
    }
}

/// Reorders the elements of a Fortran-order array of `shape` into C order.
pub fn fortran_to_c(src: &[u8], shape: &[usize], itemsize: usize) -> Vec<u8> {
    let total: usize = shape.iter().product();
    if shape.len() < 2 || total == 0 {
        return src.to_vec();
    }
    let mut strides = Vec::with_capacity(shape.len());
    let mut acc = itemsize;
    for &d in shape {
        strides.push(acc);
        acc *= d;
    }
    let mut out = Vec::with_capacity(total * itemsize);
    let mut index = vec![0usize; shape.len()];
    let mut at = 0usize;
    for _ in 0..total {
        out.extend_from_slice(&src[at..at + itemsize]);
        // Next element in C order: the last axis moves fastest.
        for d in (0..shape.len()).rev() {
            index[d] += 1;
            at += strides[d];
            if index[d] < shape[d] {
                break;
            }
            at -= strides[d] * shape[d];
            index[d] = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::Kind;

    fn dict(text: &str) -> Result<NpyHeader, String> {
        parse_dict(text)
    }

    #[test]
    fn header_layouts_numpy_accepts() {
        let f8 = DataType::Builtin(BuiltinDType::new(Kind::Float, 8));
        for text in [
            "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }          \n",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (3L, 4L), }\n",
            "{\"shape\": (3, 4), \"fortran_order\": False, \"descr\": \"<f8\"}",
            "{'descr':'<f8','fortran_order':False,'shape':(3,4)}",
        ] {
            let h = dict(text).unwrap();
            assert_eq!(
                (h.dtype.clone(), h.shape.clone()),
                (f8.clone(), vec![3, 4]),
                "{text}"
            );
        }
        let h = dict("{'descr': '>c8', 'fortran_order': True, 'shape': (), }").unwrap();
        assert!(h.fortran_order && h.shape.is_empty());
        let h = dict("{'descr': [('énergie', '<f8'), ('n', '<i4', (2,))], 'fortran_order': False, 'shape': (4,), }").unwrap();
        let DataType::Structured(s) = h.dtype else {
            panic!("structured")
        };
        assert_eq!(s.itemsize, 16);
        assert_eq!(s.fields[0].name, "énergie");
        assert_eq!(s.fields[1].shape, Some(vec![2]));
        // An aligned C struct: padding is dropped from what is served, and packed away.
        let h = dict("{'descr': [('flag', '|u1'), ('', '|V7'), ('e', '<f8'), ('', '|V2')], 'fortran_order': False, 'shape': (2,), }").unwrap();
        assert_eq!((h.dtype.itemsize(), h.stored_itemsize), (9, 18));
        let at = h.fields_at.unwrap();
        assert_eq!(at, vec![(0, 1), (8, 8)]);
        let stored: Vec<u8> = (0..36).collect();
        let packed = pack(&stored, 18, &at);
        assert_eq!(&packed[..9], &[0, 8, 9, 10, 11, 12, 13, 14, 15]);
        assert_eq!(packed.len(), 18);
    }

    #[test]
    fn bad_headers_say_why() {
        for (text, why) in [
            ("{'descr': '<f8', 'shape': (3,)}", "fortran_order"),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 'a')}",
                "shape",
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999999,)}",
                "too large",
            ),
            (
                "{'descr': 'O', 'fortran_order': False, 'shape': (3,)}",
                "not served",
            ),
            (
                "{'descr': [('', '|V3')], 'fortran_order': False, 'shape': (3,)}",
                "without fields",
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (3,)} x",
                "after",
            ),
            ("{'descr': '<f8', 'fortran_order': Fals", "unexpected"),
            (&"[".repeat(100), "deeply"),
            (
                "{'descr': [('a', '<f8', (0,))], 'fortran_order': False, 'shape': (3,)}",
                "no bytes",
            ),
        ] {
            let err = dict(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn versions_and_lengths() {
        let mut file = b"\x93NUMPY\x02\x00".to_vec();
        let text = b"{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }\n";
        file.extend((text.len() as u32).to_le_bytes());
        file.extend(text);
        let h = read(&mut file.as_slice()).unwrap();
        assert_eq!(h.offset, 12 + text.len() as u64);
        file[6] = 4;
        assert!(
            read(&mut file.as_slice())
                .unwrap_err()
                .contains("version 4.0")
        );
        file[6] = 3;
        file[12] = 0xff;
        assert!(read(&mut file.as_slice()).unwrap_err().contains("utf-8"));
    }

    #[test]
    fn fortran_order_is_reordered() {
        // A 2x3 array [[0,1,2],[3,4,5]] stored first axis fastest.
        let f: Vec<u8> = [0u8, 3, 1, 4, 2, 5].to_vec();
        assert_eq!(fortran_to_c(&f, &[2, 3], 1), vec![0, 1, 2, 3, 4, 5]);
        // 2x2x2: C value at (i,j,k) = 4i+2j+k, F offset i + 2j + 4k.
        let mut f = vec![0u8; 8];
        for i in 0..2 {
            for j in 0..2 {
                for k in 0..2 {
                    f[i + 2 * j + 4 * k] = (4 * i + 2 * j + k) as u8;
                }
            }
        }
        assert_eq!(fortran_to_c(&f, &[2, 2, 2], 1), (0..8).collect::<Vec<u8>>());
    }
}
