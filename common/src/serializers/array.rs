//! Array encoders: raw bytes, nested JSON lists (as orjson prints them for Tiled), CSV rows
//! (as `numpy.savetxt(fmt="%s")` writes them), PNG (auto-scaled 8-bit, as Tiled renders
//! images), TIFF of the raw values, and an HTML page showing the PNG or a table of values.

use bytes::Bytes;

use super::text::{
    write_csv_field, write_html_escaped, write_iso_datetime, write_json_f32, write_json_f64,
    write_json_str, write_np_f32, write_numpy_datetime, write_numpy_timedelta, write_py_bytes_repr,
    write_py_f64,
};
use super::{CSV, HTML, PNG, SerializeError, TIFF};
use crate::array::{ArrayData, Scalar, decode};
use crate::dtype::{BuiltinDType, DataType, Kind};

/// The CSV spellings clients ask for (all give the same CSV).
pub const CSV_ALIASES: [&str; 5] = [
    CSV,
    "text/x-comma-separated-values",
    "text/comma-separated-values",
    "text/plain",
    "application/vnd.ms-excel",
];

/// Encodes an array as `media` (JSON, PNG, TIFF, HTML or a CSV spelling; raw bytes are
/// [`to_octet_stream`]).
pub fn encode(data: &ArrayData, media: &str) -> Result<Vec<u8>, SerializeError> {
    match media {
        super::JSON => to_json(data),
        PNG => to_png(data),
        TIFF => to_tiff(data),
        HTML => to_html(data),
        m if CSV_ALIASES.contains(&m) => to_csv(data),
        other => Err(SerializeError::Unsupported {
            media_type: other.to_string(),
            reason: "arrays cannot be encoded in this format".to_string(),
        }),
    }
}

/// The wire layout is already C order in the declared dtype: the bytes go out as they are.
pub fn to_octet_stream(a: &ArrayData) -> Bytes {
    a.bytes.clone()
}

/// Checks that the buffer holds every element, so that the encoders can slice it freely.
fn check_len(a: &ArrayData) -> Result<(usize, usize), SerializeError> {
    let (n, size) = (a.len(), a.dtype.itemsize());
    let need = n
        .checked_mul(size)
        .ok_or_else(|| SerializeError::encode("array size overflows"))?;
    if a.bytes.len() < need {
        return Err(SerializeError::encode(format!(
            "array of shape {:?} needs {need} bytes but has {}",
            a.shape,
            a.bytes.len()
        )));
    }
    Ok((n, size))
}

fn arr<const N: usize>(raw: &[u8], swap: bool) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&raw[..N]);
    if swap {
        a.reverse();
    }
    a
}

/// Element kinds with a direct (allocation-free) text path; everything else is decoded.
#[derive(Clone, Copy)]
enum Fast {
    F64(bool),
    F32(bool),
    Int(usize, bool),
    UInt(usize, bool),
    Bool,
    Other,
}

fn classify(dtype: &DataType) -> Fast {
    match dtype.builtin() {
        Some(b) => {
            let swap = b.is_byte_swapped();
            match (b.kind, b.itemsize) {
                (Kind::Float, 8) => Fast::F64(swap),
                (Kind::Float, 4) => Fast::F32(swap),
                (Kind::Int, 1 | 2 | 4 | 8) => Fast::Int(b.itemsize, swap),
                (Kind::UInt, 1 | 2 | 4 | 8) => Fast::UInt(b.itemsize, swap),
                (Kind::Bool, 1) => Fast::Bool,
                _ => Fast::Other,
            }
        }
        None => Fast::Other,
    }
}

fn read_int(raw: &[u8], size: usize, swap: bool) -> i64 {
    match size {
        1 => i64::from(raw[0] as i8),
        2 => i64::from(i16::from_ne_bytes(arr(raw, swap))),
        4 => i64::from(i32::from_ne_bytes(arr(raw, swap))),
        _ => i64::from_ne_bytes(arr(raw, swap)),
    }
}

fn read_uint(raw: &[u8], size: usize, swap: bool) -> u64 {
    match size {
        1 => u64::from(raw[0]),
        2 => u64::from(u16::from_ne_bytes(arr(raw, swap))),
        4 => u64::from(u32::from_ne_bytes(arr(raw, swap))),
        _ => u64::from_ne_bytes(arr(raw, swap)),
    }
}

fn write_int(out: &mut Vec<u8>, v: impl itoa_like::Int) {
    v.push_to(out);
}

/// Integer printing without `format!` (this is the hot path of integer arrays).
mod itoa_like {
    /// Integers that can append their decimal text.
    pub trait Int {
        fn push_to(self, out: &mut Vec<u8>);
    }
    impl Int for u64 {
        fn push_to(self, out: &mut Vec<u8>) {
            let mut buf = [0u8; 20];
            let mut i = buf.len();
            let mut v = self;
            loop {
                i -= 1;
                buf[i] = b'0' + (v % 10) as u8;
                v /= 10;
                if v == 0 {
                    break;
                }
            }
            out.extend_from_slice(&buf[i..]);
        }
    }
    impl Int for i64 {
        fn push_to(self, out: &mut Vec<u8>) {
            if self < 0 {
                out.push(b'-');
            }
            self.unsigned_abs().push_to(out);
        }
    }
}

/// Walks the array in C order, writing `[`/`]`/`,` around the elements as numpy's `tolist`
/// nests them; `elem` writes one element from its raw bytes.
fn write_nested(
    out: &mut Vec<u8>,
    a: &ArrayData,
    mut elem: impl FnMut(&mut Vec<u8>, &[u8]) -> Result<(), SerializeError>,
) -> Result<(), SerializeError> {
    let (n, size) = check_len(a)?;
    let bytes = &a.bytes[..];
    let shape = &a.shape;
    let nd = shape.len();
    if nd == 0 {
        return elem(out, &bytes[..size]);
    }
    if n == 0 {
        // Empty arrays: nested empty lists down to the first zero-length dimension.
        let depth = shape.iter().position(|&d| d == 0).unwrap_or(0) + 1;
        out.extend(std::iter::repeat_n(b'[', depth));
        out.extend(std::iter::repeat_n(b']', depth));
        return Ok(());
    }
    let inner = shape[nd - 1];
    let outer = &shape[..nd - 1];
    let mut idx = vec![0usize; nd - 1];
    out.extend(std::iter::repeat_n(b'[', nd - 1));
    for r in 0..n / inner {
        out.push(b'[');
        let row = &bytes[r * inner * size..(r + 1) * inner * size];
        for j in 0..inner {
            if j > 0 {
                out.push(b',');
            }
            elem(out, &row[j * size..(j + 1) * size])?;
        }
        out.push(b']');
        // Advance the outer index; close the lists that wrapped and reopen the next ones.
        let mut k = nd - 1;
        while k > 0 {
            k -= 1;
            idx[k] += 1;
            if idx[k] < outer[k] {
                out.push(b',');
                out.extend(std::iter::repeat_n(b'[', nd - 2 - k));
                break;
            }
            idx[k] = 0;
            out.push(b']');
        }
    }
    Ok(())
}

/// One value as orjson writes it for Tiled. `top` is false inside records, where numpy's
/// `tolist` has already turned float32 into Python floats (printed with float64 digits).
fn json_value(
    out: &mut Vec<u8>,
    dtype: &DataType,
    raw: &[u8],
    top: bool,
    buf: &mut ryu::Buffer,
) -> Result<(), SerializeError> {
    match (classify(dtype), dtype) {
        (Fast::F64(swap), _) => write_json_f64(out, f64::from_ne_bytes(arr(raw, swap)), buf),
        (Fast::F32(swap), _) => {
            let v = f32::from_ne_bytes(arr(raw, swap));
            if top {
                write_json_f32(out, v, buf)
            } else {
                write_json_f64(out, f64::from(v), buf)
            }
        }
        (Fast::Int(size, swap), _) => write_int(out, read_int(raw, size, swap)),
        (Fast::UInt(size, swap), _) => write_int(out, read_uint(raw, size, swap)),
        (Fast::Bool, _) => out.extend_from_slice(if raw[0] != 0 { b"true" } else { b"false" }),
        (Fast::Other, DataType::Structured(s)) => {
            out.push(b'[');
            let mut offset = 0;
            for (i, f) in s.fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let size = f.dtype.itemsize();
                let shape = f.shape.clone().unwrap_or_default();
                let count: usize = shape.iter().product();
                let end = offset + size * count;
                let field = raw.get(offset..end).ok_or_else(|| {
                    SerializeError::encode(format!("field {} runs past the record", f.name))
                })?;
                let sub = ArrayData::new(f.dtype.clone(), shape, field.to_vec());
                write_nested(out, &sub, |o, r| json_value(o, &f.dtype, r, false, buf))?;
                offset = end;
            }
            out.push(b']');
        }
        (Fast::Other, DataType::Builtin(b)) => json_other(out, b, dtype, raw, buf)?,
    }
    Ok(())
}

fn json_other(
    out: &mut Vec<u8>,
    b: &BuiltinDType,
    dtype: &DataType,
    raw: &[u8],
    buf: &mut ryu::Buffer,
) -> Result<(), SerializeError> {
    let units = b.dt_units.as_deref().unwrap_or("");
    match decode(dtype, raw).map_err(|e| SerializeError::unsupported(super::JSON, e.0))? {
        Scalar::DateTime(v, _) => {
            if !write_iso_datetime_quoted(out, v, units) {
                out.extend_from_slice(b"null");
            }
        }
        // Tiled fails here (Python timedelta is not JSON); the count in the declared unit
        // is what a client can use.
        Scalar::TimeDelta(v, _) => write_int(out, v),
        Scalar::Complex(re, im) => {
            out.push(b'[');
            write_json_f64(out, re, buf);
            out.push(b',');
            write_json_f64(out, im, buf);
            out.push(b']');
        }
        Scalar::Str(s) => write_json_str(out, &s),
        Scalar::Bytes(bytes) => {
            // Tiled's JSON encoder turns `bytes` into data URIs.
            use base64::Engine;
            out.extend_from_slice(b"\"data:application/octet-stream;base64,");
            out.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(bytes)
                    .as_bytes(),
            );
            out.push(b'"');
        }
        Scalar::Bool(v) => out.extend_from_slice(if v { b"true" } else { b"false" }),
        Scalar::Int(v) => write_int(out, v),
        Scalar::UInt(v) => write_int(out, v),
        Scalar::Float(v) => write_json_f64(out, v, buf),
        Scalar::Record(_) | Scalar::List(_) => {
            return Err(SerializeError::encode("unexpected nested value"));
        }
    }
    Ok(())
}

fn write_iso_datetime_quoted(out: &mut Vec<u8>, v: i64, units: &str) -> bool {
    let mark = out.len();
    out.push(b'"');
    if write_iso_datetime(out, v, units) {
        out.push(b'"');
        true
    } else {
        out.truncate(mark);
        false
    }
}

/// Nested JSON lists (a bare value for 0-d arrays) with orjson's number formatting; NaN and
/// infinities as `null`, datetimes as ISO strings (NaT as `null`), complex values as
/// `[real, imag]`, records as lists, bytes as data URIs, timedeltas as integer counts.
pub fn to_json(a: &ArrayData) -> Result<Vec<u8>, SerializeError> {
    let mut out = Vec::with_capacity(a.len().saturating_mul(20).saturating_add(16));
    let mut buf = ryu::Buffer::new();
    let dtype = &a.dtype;
    match classify(dtype) {
        // The common case gets a monomorphic loop.
        Fast::F64(swap) => write_nested(&mut out, a, |o, r| {
            write_json_f64(o, f64::from_ne_bytes(arr(r, swap)), &mut buf);
            Ok(())
        })?,
        _ => write_nested(&mut out, a, |o, r| json_value(o, dtype, r, true, &mut buf))?,
    }
    Ok(out)
}

/// One value as numpy's `str` prints it (what `savetxt(fmt="%s")` writes); records become
/// their fields separated by commas, as `savetxt` writes structured rows.
fn text_value(
    out: &mut Vec<u8>,
    dtype: &DataType,
    raw: &[u8],
    quote: bool,
    buf: &mut ryu::Buffer,
) -> Result<(), SerializeError> {
    match (classify(dtype), dtype) {
        (Fast::F64(swap), _) => write_py_f64(out, f64::from_ne_bytes(arr(raw, swap)), buf),
        (Fast::F32(swap), _) => write_np_f32(out, f32::from_ne_bytes(arr(raw, swap)), buf),
        (Fast::Int(size, swap), _) => write_int(out, read_int(raw, size, swap)),
        (Fast::UInt(size, swap), _) => write_int(out, read_uint(raw, size, swap)),
        (Fast::Bool, _) => out.extend_from_slice(if raw[0] != 0 { b"True" } else { b"False" }),
        (Fast::Other, DataType::Structured(s)) => {
            let mut offset = 0;
            for (i, f) in s.fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let size = f.dtype.itemsize();
                let count: usize = f.shape.as_deref().unwrap_or(&[]).iter().product();
                let end = offset + size * count;
                let field = raw.get(offset..end).ok_or_else(|| {
                    SerializeError::encode(format!("field {} runs past the record", f.name))
                })?;
                if f.shape.is_some() {
                    // numpy prints a sub-array as `[a b c]`.
                    out.push(b'[');
                    for k in 0..count {
                        if k > 0 {
                            out.push(b' ');
                        }
                        let item = &field[k * size..(k + 1) * size];
                        text_value(out, &f.dtype, item, quote, buf)?;
                    }
                    out.push(b']');
                } else {
                    text_value(out, &f.dtype, field, quote, buf)?;
                }
                offset = end;
            }
        }
        (Fast::Other, DataType::Builtin(b)) => {
            let units = b.dt_units.as_deref().unwrap_or("");
            let scalar = decode(dtype, raw).map_err(|e| SerializeError::unsupported(CSV, e.0))?;
            match scalar {
                Scalar::DateTime(v, _) => write_numpy_datetime(out, v, units),
                Scalar::TimeDelta(v, _) => write_numpy_timedelta(out, v, units),
                Scalar::Complex(re, im) => {
                    // savetxt's complex format: ` (re+imj)`, with `+-` folded to `-`.
                    out.extend_from_slice(b" (");
                    let single = b.itemsize == 8;
                    let part = |o: &mut Vec<u8>, v: f64, buf: &mut ryu::Buffer| {
                        if single {
                            write_np_f32(o, v as f32, buf)
                        } else {
                            write_py_f64(o, v, buf)
                        }
                    };
                    part(out, re, buf);
                    if !im.is_sign_negative() || im.is_nan() {
                        out.push(b'+');
                    }
                    part(out, im, buf);
                    out.extend_from_slice(b"j)");
                }
                Scalar::Str(s) if quote => write_csv_field(out, s.as_bytes()),
                Scalar::Str(s) => out.extend_from_slice(s.as_bytes()),
                Scalar::Bytes(bytes) => {
                    let mut repr = Vec::with_capacity(bytes.len() + 3);
                    write_py_bytes_repr(&mut repr, &bytes);
                    if quote {
                        write_csv_field(out, &repr)
                    } else {
                        out.extend_from_slice(&repr)
                    }
                }
                Scalar::Bool(v) => out.extend_from_slice(if v { b"True" } else { b"False" }),
                Scalar::Int(v) => write_int(out, v),
                Scalar::UInt(v) => write_int(out, v),
                Scalar::Float(v) => write_py_f64(out, v, buf),
                Scalar::Record(_) | Scalar::List(_) => {
                    return Err(SerializeError::encode("unexpected nested value"));
                }
            }
        }
    }
    Ok(())
}

/// Comma-separated rows without a header (one value per line for 0-d and 1-D arrays), as
/// `numpy.savetxt(fmt="%s", delimiter=",")` writes them; at most 2-D. Strings holding commas,
/// quotes or line breaks are quoted (numpy would write them bare).
pub fn to_csv(a: &ArrayData) -> Result<Vec<u8>, SerializeError> {
    if a.ndim() > 2 {
        return Err(SerializeError::unsupported(
            CSV,
            format!(
                "CSV only supports arrays of at most 2 dimensions; this one has {}. \
                 Slice it first.",
                a.ndim()
            ),
        ));
    }
    let (n, size) = check_len(a)?;
    let cols = if a.ndim() == 2 { a.shape[1] } else { 1 };
    let mut out = Vec::with_capacity(n.saturating_mul(20));
    let mut buf = ryu::Buffer::new();
    let bytes = &a.bytes[..];
    let fast_f64 = match classify(&a.dtype) {
        Fast::F64(swap) => Some(swap),
        _ => None,
    };
    for i in 0..n {
        let raw = &bytes[i * size..(i + 1) * size];
        match fast_f64 {
            Some(swap) => write_py_f64(&mut out, f64::from_ne_bytes(arr(raw, swap)), &mut buf),
            None => text_value(&mut out, &a.dtype, raw, true, &mut buf)?,
        }
        out.push(if (i + 1) % cols == 0 { b'\n' } else { b',' });
    }
    Ok(out)
}

/// The value at fraction `q` of the sorted order with numpy's default linear interpolation,
/// found by selection (O(n)) rather than a full sort.
fn percentile(values: &mut [f32], q: f32) -> f32 {
    let n = values.len();
    if n == 0 {
        return 0.0;
    }
    let pos = q * (n - 1) as f32;
    let lo = (pos.floor() as usize).min(n - 1);
    let frac = pos - lo as f32;
    let (_, &mut low, rest) = values.select_nth_unstable_by(lo, f32::total_cmp);
    let high = rest.iter().copied().min_by(f32::total_cmp).unwrap_or(low);
    low + (high - low) * frac
}

/// 8-bit pixels scaled between the 1st and 99th percentiles (Tiled's auto-scaling), and the
/// image geometry.
fn prepare_pixels(a: &ArrayData) -> Result<(Vec<u8>, u32, u32, png::ColorType), SerializeError> {
    // Tiled applies numpy.atleast_2d, so 0-d and 1-D arrays are one-row images.
    let (h, w, color) = match a.shape.as_slice() {
        [] => (1, 1, png::ColorType::Grayscale),
        [n] => (1, *n, png::ColorType::Grayscale),
        [h, w] => (*h, *w, png::ColorType::Grayscale),
        [h, w, 3] => (*h, *w, png::ColorType::Rgb),
        [h, w, 4] => (*h, *w, png::ColorType::Rgba),
        other => {
            return Err(SerializeError::unsupported(
                PNG,
                format!(
                    "images are 2-D (grayscale) or 3-D with 3 or 4 channels in the last \
                     dimension; this array has shape {other:?}"
                ),
            ));
        }
    };
    if h == 0 || w == 0 {
        return Err(SerializeError::unsupported(PNG, "the array is empty"));
    }
    check_len(a)?;
    let values: Vec<f32> = a
        .to_f64_vec()
        .map_err(|e| {
            SerializeError::unsupported(PNG, format!("only numeric arrays are images: {e}"))
        })?
        .into_iter()
        .map(|v| v as f32)
        .collect();
    let mut finite: Vec<f32> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    let low = percentile(&mut finite, 0.01);
    let high = percentile(&mut finite, 0.99);
    let span = high - low;
    let pixels = values
        .iter()
        .map(|v| {
            let scaled = if span > 0.0 {
                ((v - low) / span).clamp(0.0, 1.0)
            } else {
                0.0
            };
            // skimage's img_as_ubyte: rint (half to even) of x * 255.
            (scaled * 255.0).round_ties_even() as u8
        })
        .collect();
    let too_big = |_| SerializeError::unsupported(PNG, "the image is too large for PNG");
    Ok((
        pixels,
        u32::try_from(w).map_err(too_big)?,
        u32::try_from(h).map_err(too_big)?,
        color,
    ))
}

/// An 8-bit PNG auto-scaled between the 1st and 99th percentiles (grayscale for 0-2-D,
/// RGB/RGBA for `(h, w, 3|4)`), as Tiled renders arrays.
pub fn to_png(a: &ArrayData) -> Result<Vec<u8>, SerializeError> {
    let (pixels, w, h, color) = prepare_pixels(a)?;
    let mut out = Vec::with_capacity(pixels.len() / 2 + 1024);
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(color);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    let mut writer = enc.write_header().map_err(SerializeError::encode)?;
    writer
        .write_image_data(&pixels)
        .map_err(SerializeError::encode)?;
    writer.finish().map_err(SerializeError::encode)?;
    Ok(out)
}

/// A TIFF of the raw values (no scaling): 0-2-D arrays as one page, 3-D and 4-D arrays as
/// one page per index of the leading dimensions (Tiled, via tifffile, accepts up to 4-D).
pub fn to_tiff(a: &ArrayData) -> Result<Vec<u8>, SerializeError> {
    use tiff::encoder::{TiffEncoder, colortype};
    if a.ndim() > 4 {
        return Err(SerializeError::unsupported(
            TIFF,
            format!(
                "TIFF holds arrays of at most 4 dimensions; this one has {}",
                a.ndim()
            ),
        ));
    }
    let (h, w) = match a.shape.as_slice() {
        [] => (1, 1),
        [n] => (1, *n),
        [.., h, w] => (*h, *w),
    };
    let pages: usize = a.shape.iter().rev().skip(2).product();
    if h == 0 || w == 0 {
        return Err(SerializeError::unsupported(TIFF, "the array is empty"));
    }
    let b = a.dtype.builtin().ok_or_else(|| {
        SerializeError::unsupported(TIFF, "structured arrays cannot be written as TIFF")
    })?;
    check_len(a)?;
    let too_big = |_| SerializeError::unsupported(TIFF, "the image is too large for TIFF");
    let (wu, hu) = (
        u32::try_from(w).map_err(too_big)?,
        u32::try_from(h).map_err(too_big)?,
    );
    let n = h * w;
    let mut cursor = std::io::Cursor::new(Vec::with_capacity(a.bytes.len() + 4096));
    let mut enc = TiffEncoder::new(&mut cursor).map_err(SerializeError::encode)?;
    let swap = b.is_byte_swapped();
    macro_rules! pages {
        ($t:ty, $ct:ty) => {{
            const S: usize = std::mem::size_of::<$t>();
            for p in 0..pages {
                let vals: Vec<$t> = a.bytes[p * n * S..(p + 1) * n * S]
                    .chunks_exact(S)
                    .map(|c| <$t>::from_ne_bytes(arr(c, swap)))
                    .collect();
                enc.write_image::<$ct>(wu, hu, &vals)
                    .map_err(SerializeError::encode)?;
            }
        }};
    }
    match (b.kind, b.itemsize) {
        (Kind::Float, 8) => pages!(f64, colortype::Gray64Float),
        (Kind::Float, 4) => pages!(f32, colortype::Gray32Float),
        (Kind::UInt, 1) | (Kind::Bool, 1) => pages!(u8, colortype::Gray8),
        (Kind::UInt, 2) => pages!(u16, colortype::Gray16),
        (Kind::UInt, 4) => pages!(u32, colortype::Gray32),
        (Kind::UInt, 8) => pages!(u64, colortype::Gray64),
        (Kind::Int, 1) => pages!(i8, colortype::GrayI8),
        (Kind::Int, 2) => pages!(i16, colortype::GrayI16),
        (Kind::Int, 4) => pages!(i32, colortype::GrayI32),
        (Kind::Int, 8) => pages!(i64, colortype::GrayI64),
        _ => {
            return Err(SerializeError::unsupported(
                TIFF,
                format!("{} values cannot be written as TIFF", b.numpy_str()),
            ));
        }
    }
    Ok(cursor.into_inner())
}

/// An HTML page: the PNG rendering for numeric images (2-D, or 3-D with 3 or 4 channels),
/// else a `<table>` of the values for arrays of at most 2 dimensions. Tiled answers 500 here;
/// this is what its HTML encoder sets out to do.
pub fn to_html(a: &ArrayData) -> Result<Vec<u8>, SerializeError> {
    use base64::Engine;
    let image_shape = matches!(a.shape.as_slice(), [_, _] | [_, _, 3 | 4]);
    if image_shape && let Ok(png) = to_png(a) {
        let mut out = Vec::with_capacity(png.len() * 4 / 3 + 80);
        out.extend_from_slice(b"<html><body><img src=\"data:image/png;base64,");
        out.extend_from_slice(
            base64::engine::general_purpose::STANDARD
                .encode(png)
                .as_bytes(),
        );
        out.extend_from_slice(b"\"/></body></html>");
        return Ok(out);
    }
    if a.ndim() > 2 {
        return Err(SerializeError::unsupported(
            HTML,
            format!(
                "HTML shows images and arrays of at most 2 dimensions; this one has shape {:?}",
                a.shape
            ),
        ));
    }
    let (n, size) = check_len(a)?;
    let cols = if a.ndim() == 2 { a.shape[1] } else { 1 };
    let mut out = Vec::with_capacity(n.saturating_mul(32) + 64);
    out.extend_from_slice(b"<html><body><table>\n");
    let mut buf = ryu::Buffer::new();
    let mut cell = Vec::new();
    for i in 0..n {
        if i % cols == 0 {
            out.extend_from_slice(b"<tr>");
        }
        cell.clear();
        text_value(
            &mut cell,
            &a.dtype,
            &a.bytes[i * size..(i + 1) * size],
            false,
            &mut buf,
        )?;
        out.extend_from_slice(b"<td>");
        write_html_escaped(&mut out, &cell);
        out.extend_from_slice(b"</td>");
        if (i + 1) % cols == 0 {
            out.extend_from_slice(b"</tr>\n");
        }
    }
    out.extend_from_slice(b"</table></body></html>");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::array::encode_unicode;
    use crate::dtype::{Field, StructDType};

    fn utf8(v: Vec<u8>) -> String {
        String::from_utf8(v).unwrap()
    }

    fn pets() -> ArrayData {
        // numpy dtype [('name','<U10'),('age','<i4'),('weight','<f4')], as in the demo.
        let dt = DataType::Structured(StructDType {
            itemsize: 48,
            fields: vec![
                Field::scalar("name", DataType::unicode(10)),
                Field::scalar("age", DataType::i4()),
                Field::scalar("weight", DataType::f4()),
            ],
        });
        let mut raw = Vec::new();
        for (name, age, weight) in [("Rex", 9, 81.0f32), ("Fido", 3, 0.1)] {
            encode_unicode(name, 10, &mut raw);
            raw.extend_from_slice(&i32::to_le_bytes(age));
            raw.extend_from_slice(&weight.to_le_bytes());
        }
        ArrayData::new(dt, vec![2], raw)
    }

    fn f32s(shape: Vec<usize>, v: &[f32]) -> ArrayData {
        let raw: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        ArrayData::new(DataType::f4(), shape, raw)
    }

    #[test]
    fn octet_stream_is_the_buffer() {
        let a = ArrayData::from_f64(vec![2], &[1.0, 2.0]);
        assert_eq!(to_octet_stream(&a), a.bytes);
    }

    #[test]
    fn json_nests_by_shape() {
        let a = ArrayData::from_f64(vec![2, 3], &[0.5, 1.0, 2.25, -3.0, 1e-7, f64::NAN]);
        assert_eq!(
            utf8(to_json(&a).unwrap()),
            "[[0.5,1.0,2.25],[-3.0,1e-7,null]]"
        );
        assert_eq!(
            to_json(&ArrayData::from_f64(vec![], &[2.75])).unwrap(),
            b"2.75"
        );
        assert_eq!(
            to_json(&ArrayData::from_f64(vec![2, 0], &[])).unwrap(),
            b"[[]]"
        );
        assert_eq!(
            to_json(&ArrayData::from_f64(vec![0, 2], &[])).unwrap(),
            b"[]"
        );
        let cube = ArrayData::from_i64(vec![2, 1, 2], &[1, 2, 3, 4]);
        assert_eq!(to_json(&cube).unwrap(), b"[[[1,2]],[[3,4]]]");
        let four = ArrayData::from_i64(vec![2, 2, 1, 2], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            to_json(&four).unwrap(),
            b"[[[[1,2]],[[3,4]]],[[[5,6]],[[7,8]]]]"
        );
    }

    #[test]
    fn json_matches_golden_tiny_image_prefix() {
        // The first values of golden 051 (tiny_image block as JSON).
        let a = ArrayData::from_f64(
            vec![1, 3],
            &[
                0.3698032912574729,
                0.1827148390008282,
                0.0036887296654194435,
            ],
        );
        assert_eq!(
            utf8(to_json(&a).unwrap()),
            "[[0.3698032912574729,0.1827148390008282,0.0036887296654194435]]"
        );
    }

    #[test]
    fn json_numbers_follow_orjson() {
        // orjson: float32 arrays keep float32 digits; positive exponents carry a '+'.
        let a = f32s(vec![4], &[0.1, 1e16, f32::NAN, 12345679.0]);
        assert_eq!(utf8(to_json(&a).unwrap()), "[0.1,1e+16,null,12345679.0]");
        let big = ArrayData::from_f64(vec![2], &[1e16, 1.5e300]);
        assert_eq!(utf8(to_json(&big).unwrap()), "[1e+16,1.5e+300]");
        let b = ArrayData::new(DataType::b1(), vec![2], vec![1, 0]);
        assert_eq!(to_json(&b).unwrap(), b"[true,false]");
        let u: DataType =
            serde_json::from_str(r#"{"endianness":"big","kind":"u","itemsize":2}"#).unwrap();
        let u = ArrayData::new(u, vec![2], vec![1, 0, 255, 255]);
        assert_eq!(to_json(&u).unwrap(), b"[256,65535]");
        let i = ArrayData::from_i64(vec![2], &[i64::MIN, -7]);
        assert_eq!(utf8(to_json(&i).unwrap()), "[-9223372036854775808,-7]");
    }

    #[test]
    fn json_of_strings_bytes_complex_times_and_records() {
        let mut b = Vec::new();
        encode_unicode("1/137", 5, &mut b);
        let s = ArrayData::new(DataType::unicode(5), vec![], b);
        assert_eq!(to_json(&s).unwrap(), b"\"1/137\"");
        let by = ArrayData::new(
            DataType::Builtin(BuiltinDType::new(Kind::Bytes, 2)),
            vec![2],
            b"abc\0".to_vec(),
        );
        assert_eq!(
            utf8(to_json(&by).unwrap()),
            "[\"data:application/octet-stream;base64,YWI=\",\"data:application/octet-stream;base64,Yw==\"]"
        );
        let c: Vec<u8> = [1.5f64, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let z = ArrayData::new(DataType::c16(), vec![1], c);
        assert_eq!(to_json(&z).unwrap(), b"[[1.5,-2.0]]");
        let mut t = ArrayData::from_i64(
            vec![2],
            &[1_409_961_600_000_000_000 + 123_456_789, i64::MIN],
        );
        t.dtype = DataType::datetime("[ns]");
        assert_eq!(
            utf8(to_json(&t).unwrap()),
            "[\"2014-09-06T00:00:00.123456\",null]"
        );
        let mut y = ArrayData::from_i64(vec![1], &[44]);
        y.dtype = DataType::datetime("[Y]");
        assert_eq!(utf8(to_json(&y).unwrap()), "[\"2014-01-01T00:00:00\"]");
        let mut d = ArrayData::from_i64(vec![2], &[1, 2]);
        d.dtype = DataType::Builtin(BuiltinDType::time(Kind::TimeDelta, "[s]"));
        assert_eq!(to_json(&d).unwrap(), b"[1,2]");
        // Golden 086 prints pets as lists; float32 fields go through Python floats.
        assert_eq!(
            utf8(to_json(&pets()).unwrap()),
            "[[\"Rex\",9,81.0],[\"Fido\",3,0.10000000149011612]]"
        );
    }

    #[test]
    fn json_of_sub_array_fields_nests_them() {
        let dt = DataType::Structured(StructDType {
            itemsize: 8,
            fields: vec![Field {
                name: "m".into(),
                dtype: DataType::i4(),
                shape: Some(vec![2]),
            }],
        });
        let raw: Vec<u8> = [1i32, 2].iter().flat_map(|v| v.to_le_bytes()).collect();
        let a = ArrayData::new(dt, vec![1], raw);
        assert_eq!(to_json(&a).unwrap(), b"[[[1,2]]]");
        assert_eq!(to_csv(&a).unwrap(), b"[1 2]\n");
    }

    #[test]
    fn json_refuses_short_buffers() {
        let a = ArrayData::new(DataType::f8(), vec![2], vec![0u8; 8]);
        assert!(matches!(to_json(&a), Err(SerializeError::Encode(_))));
        assert!(to_csv(&a).is_err());
    }

    #[test]
    fn csv_rows_and_dimension_limit() {
        // numpy.savetxt(fmt="%s", delimiter=",") output, computed with numpy 2.
        let a = ArrayData::from_f64(vec![2, 2], &[1e16, 1e-5, 0.1, 2.0]);
        assert_eq!(utf8(to_csv(&a).unwrap()), "1e+16,1e-05\n0.1,2.0\n");
        let v = ArrayData::from_i64(vec![3], &[1, -2, 3]);
        assert_eq!(to_csv(&v).unwrap(), b"1\n-2\n3\n");
        let f = f32s(
            vec![9],
            &[
                0.1,
                1e-7,
                f32::NAN,
                1e16,
                -0.0,
                1e15,
                123456.7,
                3e38,
                f32::INFINITY,
            ],
        );
        assert_eq!(
            utf8(to_csv(&f).unwrap()),
            "0.1\n1e-07\nnan\n1e+16\n-0.0\n1e+15\n123456.7\n3e+38\ninf\n"
        );
        let b = ArrayData::new(DataType::b1(), vec![1, 2], vec![1, 0]);
        assert_eq!(to_csv(&b).unwrap(), b"True,False\n");
        let cube = ArrayData::from_f64(vec![1, 1, 1], &[1.0]);
        match to_csv(&cube) {
            Err(SerializeError::Unsupported { media_type, reason }) => {
                assert_eq!(media_type, "text/csv");
                assert!(reason.contains("this one has 3"));
            }
            other => panic!("expected Unsupported, got {other:?}"),
        }
        assert_eq!(
            to_csv(&ArrayData::from_f64(vec![], &[2.5])).unwrap(),
            b"2.5\n"
        );
    }

    #[test]
    fn csv_of_records_strings_times_and_complex() {
        assert_eq!(utf8(to_csv(&pets()).unwrap()), "Rex,9,81.0\nFido,3,0.1\n");
        let mut s = Vec::new();
        encode_unicode("a,b", 3, &mut s);
        encode_unicode("c", 3, &mut s);
        let s = ArrayData::new(DataType::unicode(3), vec![2], s);
        assert_eq!(utf8(to_csv(&s).unwrap()), "\"a,b\"\nc\n");
        let by = ArrayData::new(
            DataType::Builtin(BuiltinDType::new(Kind::Bytes, 2)),
            vec![2],
            b"abc\0".to_vec(),
        );
        assert_eq!(utf8(to_csv(&by).unwrap()), "b'ab'\nb'c'\n");
        let mut t = ArrayData::from_i64(
            vec![2],
            &[1_409_961_600_000_000_000 + 123_456_789, i64::MIN],
        );
        t.dtype = DataType::datetime("[ns]");
        assert_eq!(
            utf8(to_csv(&t).unwrap()),
            "2014-09-06T00:00:00.123456789\nNaT\n"
        );
        let mut d = ArrayData::from_i64(vec![1], &[16_319]);
        d.dtype = DataType::datetime("[D]");
        assert_eq!(utf8(to_csv(&d).unwrap()), "2014-09-06\n");
        let mut td = ArrayData::from_i64(vec![2], &[1, 2]);
        td.dtype = DataType::Builtin(BuiltinDType::time(Kind::TimeDelta, "[s]"));
        assert_eq!(utf8(to_csv(&td).unwrap()), "1 seconds\n2 seconds\n");
        let c: Vec<u8> = [1.0f64, 2.0, 1.0, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let z = ArrayData::new(DataType::c16(), vec![1, 2], c);
        assert_eq!(utf8(to_csv(&z).unwrap()), " (1.0+2.0j), (1.0-2.0j)\n");
    }

    fn decode_png(bytes: Vec<u8>) -> (png::OutputInfo, Vec<u8>) {
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info, buf)
    }

    #[test]
    fn png_scales_between_percentiles_like_tiled() {
        // Expected pixels from tiled.serialization.array.save_to_buffer_PIL on
        // numpy.arange(100.0).reshape(10, 10) (1st percentile 0.99, 99th 98.01).
        let values: Vec<f64> = (0..100).map(f64::from).collect();
        let a = ArrayData::from_f64(vec![10, 10], &values);
        let (info, px) = decode_png(to_png(&a).unwrap());
        assert_eq!((info.width, info.height), (10, 10));
        assert_eq!(info.color_type, png::ColorType::Grayscale);
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        assert_eq!(&px[..4], &[0, 0, 3, 5]);
        assert_eq!(px[50], 129);
        assert_eq!(&px[97..], &[252, 255, 255]);
    }

    #[test]
    fn png_colour_and_shape_rules() {
        let rgb = ArrayData::from_i64(vec![1, 2, 3], &[0, 10, 20, 30, 40, 50]);
        let (info, px) = decode_png(to_png(&rgb).unwrap());
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!((info.width, info.height), (2, 1));
        assert_eq!(px.len(), 6);
        let rgba = ArrayData::from_f64(vec![1, 1, 4], &[0.0, 1.0, 2.0, 3.0]);
        assert_eq!(
            decode_png(to_png(&rgba).unwrap()).0.color_type,
            png::ColorType::Rgba
        );
        let flat = ArrayData::from_f64(vec![5], &[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(decode_png(to_png(&flat).unwrap()).0.height, 1);
        let constant = ArrayData::from_f64(vec![2, 2], &[7.0; 4]);
        assert_eq!(decode_png(to_png(&constant).unwrap()).1, vec![0; 4]);
        for bad in [
            ArrayData::from_f64(vec![2, 2, 2, 2], &[0.0; 16]),
            ArrayData::from_f64(vec![2, 2, 2], &[0.0; 8]),
            ArrayData::from_f64(vec![0, 2], &[]),
            ArrayData::new(DataType::unicode(1), vec![1, 1], vec![65, 0, 0, 0]),
        ] {
            assert!(
                matches!(to_png(&bad), Err(SerializeError::Unsupported { .. })),
                "{:?}",
                bad.shape
            );
        }
    }

    fn read_tiff_pages(bytes: Vec<u8>) -> Vec<((u32, u32), tiff::decoder::DecodingResult)> {
        let mut dec = tiff::decoder::Decoder::new(std::io::Cursor::new(bytes)).unwrap();
        let mut pages = Vec::new();
        loop {
            pages.push((dec.dimensions().unwrap(), dec.read_image().unwrap()));
            if !dec.more_images() {
                break;
            }
            dec.next_image().unwrap();
        }
        pages
    }

    #[test]
    fn tiff_round_trips_values() {
        use tiff::decoder::DecodingResult;
        let a = ArrayData::from_f64(vec![2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.5]);
        let pages = read_tiff_pages(to_tiff(&a).unwrap());
        assert_eq!(pages.len(), 1);
        assert_eq!(pages[0].0, (3, 2));
        match &pages[0].1 {
            DecodingResult::F64(v) => assert_eq!(v, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.5]),
            _ => panic!("expected f64 pixels"),
        }
        let ints: Vec<i64> = (0..24).collect();
        let mut four = ArrayData::from_i64(vec![2, 3, 2, 2], &ints);
        // As int16, big-endian, to check the byte-order handling too.
        let be: Vec<u8> = ints
            .iter()
            .flat_map(|v| (*v as i16).to_be_bytes())
            .collect();
        four.dtype =
            serde_json::from_str(r#"{"endianness":"big","kind":"i","itemsize":2}"#).unwrap();
        four.bytes = be.into();
        let pages = read_tiff_pages(to_tiff(&four).unwrap());
        assert_eq!(pages.len(), 6);
        match &pages[5].1 {
            DecodingResult::I16(v) => assert_eq!(v, &[20, 21, 22, 23]),
            _ => panic!("expected i16 pixels"),
        }
        assert!(to_tiff(&ArrayData::from_f64(vec![1; 5], &[0.0])).is_err());
        assert!(to_tiff(&ArrayData::new(DataType::c16(), vec![1], vec![0; 16])).is_err());
    }

    #[test]
    fn html_embeds_the_png_or_shows_a_table() {
        use base64::Engine;
        let a = ArrayData::from_f64(vec![2, 2], &[0.0, 1.0, 2.0, 3.0]);
        let html = utf8(to_html(&a).unwrap());
        let b64 = html
            .strip_prefix("<html><body><img src=\"data:image/png;base64,")
            .and_then(|s| s.strip_suffix("\"/></body></html>"))
            .unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(decode_png(png).0.width, 2);
        let mut b = Vec::new();
        encode_unicode("<a>", 3, &mut b);
        encode_unicode("b", 3, &mut b);
        let s = ArrayData::new(DataType::unicode(3), vec![1, 2], b);
        assert_eq!(
            utf8(to_html(&s).unwrap()),
            "<html><body><table>\n<tr><td>&lt;a&gt;</td><td>b</td></tr>\n</table></body></html>"
        );
        let v = ArrayData::from_i64(vec![2], &[1, 2]);
        assert_eq!(
            utf8(to_html(&v).unwrap()),
            "<html><body><table>\n<tr><td>1</td></tr>\n<tr><td>2</td></tr>\n</table></body></html>"
        );
        assert!(matches!(
            to_html(&ArrayData::from_f64(vec![1, 1, 2], &[0.0, 1.0])),
            Err(SerializeError::Unsupported { .. })
        ));
    }
}
