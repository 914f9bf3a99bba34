//! In-memory N-d arrays as the server moves them around: a C-order, packed byte buffer in the
//! exact byte order and item size of its declared [`DataType`], plus typed element access for
//! the text and image encoders.

use bytes::Bytes;

use crate::dtype::{BuiltinDType, DataType, Kind};

/// A C-order N-d array whose bytes are laid out exactly as its `dtype` declares.
#[derive(Clone, Debug, PartialEq)]
pub struct ArrayData {
    pub dtype: DataType,
    pub shape: Vec<usize>,
    pub bytes: Bytes,
}

/// One element, decoded into a form the text encoders can print.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Complex(f64, f64),
    /// datetime64 / timedelta64: the raw count and the numpy unit string such as `"[s]"`.
    DateTime(i64, String),
    TimeDelta(i64, String),
    Bytes(Vec<u8>),
    Str(String),
    Record(Vec<(String, Scalar)>),
    /// A sub-array field of a record, flattened in C order.
    List(Vec<Scalar>),
}

/// An element type the encoders cannot handle.
#[derive(Debug, thiserror::Error)]
#[error("unsupported data type {0}")]
pub struct UnsupportedDType(pub String);

impl ArrayData {
    /// Wraps raw bytes; the caller guarantees `bytes.len() == prod(shape) * itemsize`.
    pub fn new(dtype: DataType, shape: Vec<usize>, bytes: impl Into<Bytes>) -> Self {
        ArrayData {
            dtype,
            shape,
            bytes: bytes.into(),
        }
    }

    /// A little-endian float64 array.
    pub fn from_f64(shape: Vec<usize>, values: &[f64]) -> Self {
        let mut b = Vec::with_capacity(values.len() * 8);
        for v in values {
            b.extend_from_slice(&v.to_le_bytes());
        }
        ArrayData::new(DataType::f8(), shape, b)
    }

    /// A little-endian int64 array.
    pub fn from_i64(shape: Vec<usize>, values: &[i64]) -> Self {
        let mut b = Vec::with_capacity(values.len() * 8);
        for v in values {
            b.extend_from_slice(&v.to_le_bytes());
        }
        ArrayData::new(DataType::i8(), shape, b)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the array holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// The `i`-th element in C order, decoded.
    pub fn scalar(&self, i: usize) -> Result<Scalar, UnsupportedDType> {
        let size = self.dtype.itemsize();
        let raw = self
            .bytes
            .get(i * size..(i + 1) * size)
            .ok_or_else(|| UnsupportedDType(format!("element {i} is past the end of the data")))?;
        decode(&self.dtype, raw)
    }

    /// All elements as f64, for numeric kinds (bool, int, uint, float); the image encoders use it.
    pub fn to_f64_vec(&self) -> Result<Vec<f64>, UnsupportedDType> {
        let b = self.dtype.builtin().ok_or_else(|| {
            UnsupportedDType("structured data cannot be shown as numbers".to_string())
        })?;
        if !matches!(b.kind, Kind::Bool | Kind::Int | Kind::UInt | Kind::Float) {
            return Err(UnsupportedDType(b.numpy_str()));
        }
        if b.kind == Kind::Float && b.itemsize == 8 && !b.is_byte_swapped() {
            // The common case, without decoding element by element.
            return Ok(self
                .bytes
                .chunks_exact(8)
                .map(|c| f64::from_ne_bytes(fixed(c, false)))
                .collect());
        }
        let size = b.itemsize;
        self.bytes
            .chunks_exact(size)
            .map(|raw| match decode_builtin(b, raw)? {
                Scalar::Bool(v) => Ok(f64::from(u8::from(v))),
                Scalar::Int(v) => Ok(v as f64),
                Scalar::UInt(v) => Ok(v as f64),
                Scalar::Float(v) => Ok(v),
                _ => Err(UnsupportedDType(b.numpy_str())),
            })
            .collect()
    }
}

fn fixed<const N: usize>(raw: &[u8], swap: bool) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&raw[..N]);
    if swap {
        a.reverse();
    }
    a
}

/// Decodes one element of `dtype` from exactly `itemsize` bytes.
pub fn decode(dtype: &DataType, raw: &[u8]) -> Result<Scalar, UnsupportedDType> {
    match dtype {
        DataType::Builtin(b) => decode_builtin(b, raw),
        DataType::Structured(s) => {
            let mut offset = 0;
            let mut out = Vec::with_capacity(s.fields.len());
            for f in &s.fields {
                let size = f.dtype.itemsize();
                let count: usize = f.shape.as_deref().unwrap_or(&[]).iter().product();
                let take = |o: usize| {
                    raw.get(o..o + size).ok_or_else(|| {
                        UnsupportedDType(format!("field {} runs past the record", f.name))
                    })
                };
                let value = if f.shape.is_some() {
                    let items = (0..count)
                        .map(|k| decode(&f.dtype, take(offset + k * size)?))
                        .collect::<Result<Vec<_>, _>>()?;
                    Scalar::List(items)
                } else {
                    decode(&f.dtype, take(offset)?)?
                };
                offset += size * count.max(1);
                out.push((f.name.clone(), value));
            }
            Ok(Scalar::Record(out))
        }
    }
}

/// An IEEE half-precision float (numpy's float16), exactly, as a double.
fn half_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let fraction = f64::from(bits & 0x3ff);
    sign * match exponent {
        0 => fraction * 2f64.powi(-24),
        31 if fraction == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + fraction / 1024.0) * 2f64.powi(e - 15),
    }
}

fn decode_builtin(b: &BuiltinDType, raw: &[u8]) -> Result<Scalar, UnsupportedDType> {
    let swap = b.is_byte_swapped();
    let unsupported = || UnsupportedDType(b.numpy_str());
    Ok(match (b.kind, b.itemsize) {
        (Kind::Bool, 1) => Scalar::Bool(raw[0] != 0),
        (Kind::Int, 1) => Scalar::Int(i64::from(raw[0] as i8)),
        (Kind::Int, 2) => Scalar::Int(i64::from(i16::from_ne_bytes(fixed(raw, swap)))),
        (Kind::Int, 4) => Scalar::Int(i64::from(i32::from_ne_bytes(fixed(raw, swap)))),
        (Kind::Int, 8) => Scalar::Int(i64::from_ne_bytes(fixed(raw, swap))),
        (Kind::UInt, 1) => Scalar::UInt(u64::from(raw[0])),
        (Kind::UInt, 2) => Scalar::UInt(u64::from(u16::from_ne_bytes(fixed(raw, swap)))),
        (Kind::UInt, 4) => Scalar::UInt(u64::from(u32::from_ne_bytes(fixed(raw, swap)))),
        (Kind::UInt, 8) => Scalar::UInt(u64::from_ne_bytes(fixed(raw, swap))),
        (Kind::Float, 2) => Scalar::Float(half_to_f64(u16::from_ne_bytes(fixed(raw, swap)))),
        (Kind::Float, 4) => Scalar::Float(f64::from(f32::from_ne_bytes(fixed(raw, swap)))),
        (Kind::Float, 8) => Scalar::Float(f64::from_ne_bytes(fixed(raw, swap))),
        (Kind::Complex, 8) => Scalar::Complex(
            f64::from(f32::from_ne_bytes(fixed(&raw[..4], swap))),
            f64::from(f32::from_ne_bytes(fixed(&raw[4..8], swap))),
        ),
        (Kind::Complex, 16) => Scalar::Complex(
            f64::from_ne_bytes(fixed(&raw[..8], swap)),
            f64::from_ne_bytes(fixed(&raw[8..16], swap)),
        ),
        (Kind::DateTime, 8) => Scalar::DateTime(
            i64::from_ne_bytes(fixed(raw, swap)),
            b.dt_units.clone().unwrap_or_default(),
        ),
        (Kind::TimeDelta, 8) => Scalar::TimeDelta(
            i64::from_ne_bytes(fixed(raw, swap)),
            b.dt_units.clone().unwrap_or_default(),
        ),
        (Kind::Bytes, _) => {
            let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
            Scalar::Bytes(raw[..end].to_vec())
        }
        (Kind::Unicode, _) => {
            let mut s = String::new();
            for cp in raw.chunks_exact(4) {
                let v = u32::from_ne_bytes(fixed(cp, swap));
                if v == 0 {
                    break;
                }
                s.push(char::from_u32(v).ok_or_else(unsupported)?);
            }
            Scalar::Str(s)
        }
        _ => return Err(unsupported()),
    })
}

/// Encodes `s` as numpy fixed-width UCS-4 little-endian of `chars` characters (truncating).
pub fn encode_unicode(s: &str, chars: usize, out: &mut Vec<u8>) {
    let mut n = 0;
    for c in s.chars().take(chars) {
        out.extend_from_slice(&(c as u32).to_le_bytes());
        n += 1;
    }
    out.resize(out.len() + 4 * (chars - n), 0);
}

/// Formats a float the way Python's `repr` does (shortest round-trip digits; scientific
/// notation below 1e-4 and from 1e16), which is what pandas and numpy text output use.
pub fn py_float_repr(v: f64) -> String {
    if v.is_nan() {
        return "nan".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    // `{:e}` gives the shortest round-trip digits as d.ddde[-]x.
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (-4..16).contains(&exp) {
        let n = digits.len() as i32;
        let body = if exp >= 0 {
            let int_len = exp + 1;
            if n <= int_len {
                format!("{digits}{}.0", "0".repeat((int_len - n) as usize))
            } else {
                format!(
                    "{}.{}",
                    &digits[..int_len as usize],
                    &digits[int_len as usize..]
                )
            }
        } else {
            format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
        };
        format!("{sign}{body}")
    } else {
        let m = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{m}e{esign}{:02}", exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::{Field, StructDType};

    #[test]
    fn python_float_repr_matches_python() {
        assert_eq!(py_float_repr(3.25159), "3.25159");
        assert_eq!(py_float_repr(1.0), "1.0");
        assert_eq!(py_float_repr(100.0), "100.0");
        assert_eq!(py_float_repr(0.0001), "0.0001");
        assert_eq!(py_float_repr(0.00001), "1e-05");
        assert_eq!(py_float_repr(1.5e-7), "1.5e-07");
        assert_eq!(py_float_repr(1e16), "1e+16");
        assert_eq!(py_float_repr(123456789012345.6), "123456789012345.6");
        assert_eq!(py_float_repr(-2.5), "-2.5");
        assert_eq!(
            py_float_repr(0.0036887296654194435),
            "0.0036887296654194435"
        );
        assert_eq!(py_float_repr(f64::NAN), "nan");
    }

    #[test]
    fn decodes_unicode_and_bytes_with_padding() {
        let mut raw = Vec::new();
        encode_unicode("1/137", 5, &mut raw);
        let a = ArrayData::new(DataType::unicode(5), vec![], raw);
        assert_eq!(a.scalar(0).unwrap(), Scalar::Str("1/137".into()));
        let mut raw = Vec::new();
        encode_unicode("ab", 4, &mut raw);
        assert_eq!(raw.len(), 16);
        let a = ArrayData::new(DataType::unicode(4), vec![1], raw);
        assert_eq!(a.scalar(0).unwrap(), Scalar::Str("ab".into()));
    }

    #[test]
    fn decodes_big_endian_ints() {
        let dt: DataType =
            serde_json::from_str(r#"{"endianness":"big","kind":"i","itemsize":4}"#).unwrap();
        let a = ArrayData::new(dt, vec![2], vec![0, 0, 1, 0, 255, 255, 255, 254]);
        assert_eq!(a.scalar(0).unwrap(), Scalar::Int(256));
        assert_eq!(a.scalar(1).unwrap(), Scalar::Int(-2));
        assert!(a.scalar(2).is_err());
    }

    #[test]
    fn decodes_records() {
        let dt = DataType::Structured(StructDType {
            itemsize: 12,
            fields: vec![
                Field {
                    name: "a".into(),
                    dtype: DataType::i4(),
                    shape: None,
                },
                Field {
                    name: "b".into(),
                    dtype: DataType::f8(),
                    shape: None,
                },
            ],
        });
        let mut raw = 7i32.to_le_bytes().to_vec();
        raw.extend_from_slice(&2.5f64.to_le_bytes());
        let a = ArrayData::new(dt, vec![1], raw);
        assert_eq!(
            a.scalar(0).unwrap(),
            Scalar::Record(vec![
                ("a".into(), Scalar::Int(7)),
                ("b".into(), Scalar::Float(2.5))
            ])
        );
    }

    #[test]
    fn half_floats_decode_exactly() {
        // numpy: np.float16(x).view("u2") for 1.0, -2.5, 0.1, the smallest subnormal, inf.
        assert_eq!(half_to_f64(0x3c00), 1.0);
        assert_eq!(half_to_f64(0xc100), -2.5);
        assert_eq!(half_to_f64(0x2e66), 0.0999755859375);
        assert_eq!(half_to_f64(0x0001), 5.960464477539063e-8);
        assert_eq!(half_to_f64(0x7c00), f64::INFINITY);
        assert!(half_to_f64(0x7e00).is_nan());
    }

    #[test]
    fn numeric_arrays_convert_to_f64_and_strings_do_not() {
        let a = ArrayData::from_i64(vec![3], &[1, -2, 3]);
        assert_eq!(a.to_f64_vec().unwrap(), vec![1.0, -2.0, 3.0]);
        let s = ArrayData::new(DataType::unicode(1), vec![1], vec![65, 0, 0, 0]);
        assert!(s.to_f64_vec().is_err());
    }
}
