//! Array encoders: raw bytes, nested JSON lists, CSV rows, PNG (auto-scaled 8-bit, as Tiled
//! renders images), TIFF of the raw values, and an HTML page showing the PNG.

use std::io::Write;

use bytes::Bytes;

use super::SerializeError;
use super::text::{csv_field, html_escape, iso_datetime};
use crate::array::{ArrayData, Scalar, py_float_repr};
use crate::dtype::Kind;

const JSON: &str = "application/json";
const CSV: &str = "text/csv";
const PNG: &str = "image/png";
const TIFF: &str = "image/tiff";

/// The wire layout is already C order in the declared dtype: the bytes go out as they are.
pub fn to_octet_stream(a: &ArrayData) -> Bytes {
    a.bytes.clone()
}

fn write_f64(out: &mut Vec<u8>, v: f64, buf: &mut ryu::Buffer) {
    if v.is_finite() {
        out.extend_from_slice(buf.format_finite(v).as_bytes());
    } else {
        // orjson (Tiled's encoder) writes NaN and infinities as null.
        out.extend_from_slice(b"null");
    }
}

fn write_scalar_json(out: &mut Vec<u8>, s: &Scalar, buf: &mut ryu::Buffer) {
    let json_str = |out: &mut Vec<u8>, s: &str| {
        // serde_json escapes strings correctly; writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    };
    match s {
        Scalar::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Scalar::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Scalar::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        Scalar::Float(f) => write_f64(out, *f, buf),
        Scalar::Complex(re, im) => {
            out.push(b'[');
            write_f64(out, *re, buf);
            out.push(b',');
            write_f64(out, *im, buf);
            out.push(b']');
        }
        Scalar::DateTime(v, units) => match iso_datetime(*v, units) {
            Some(t) => json_str(out, &t),
            None => out.extend_from_slice(b"null"),
        },
        Scalar::TimeDelta(v, _) => {
            let _ = write!(out, "{v}");
        }
        Scalar::Bytes(b) => json_str(out, &String::from_utf8_lossy(b)),
        Scalar::Str(s) => json_str(out, s),
        Scalar::Record(fields) => {
            out.push(b'[');
            for (i, (_, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar_json(out, v, buf);
            }
            out.push(b']');
        }
        Scalar::List(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar_json(out, v, buf);
            }
            out.push(b']');
        }
    }
}

/// Nested JSON lists (a bare value for 0-d arrays); complex values as `[real, imag]`,
/// datetimes as ISO strings, records as lists.
pub fn to_json(a: &ArrayData) -> Result<Vec<u8>, SerializeError> {
    let n = a.len();
    let mut out = Vec::with_capacity(n * 20 + 16);
    let mut buf = ryu::Buffer::new();
    let shape = &a.shape;
    let nd = shape.len();
    if nd == 0 {
        let s = a.scalar(0).map_err(SerializeError::encode)?;
        write_scalar_json(&mut out, &s, &mut buf);
        return Ok(out);
    }
    if shape.contains(&0) {
        // Empty arrays: nested empty lists down to the first zero-length dimension.
        let depth = shape.iter().position(|&d| d == 0).unwrap_or(0);
        let mut s = String::new();
        for _ in 0..=depth {
            s.push('[');
        }
        for _ in 0..=depth {
            s.push(']');
        }
        return Ok(s.into_bytes());
    }
    let fast_f64 = a
        .dtype
        .builtin()
        .is_some_and(|b| b.kind == Kind::Float && b.itemsize == 8 && !b.is_byte_swapped());
    // counters[k] counts elements written in dimension k of the current run.
    let mut counters = vec![0usize; nd];
    out.extend(std::iter::repeat_n(b'[', nd));
    for i in 0..n {
        if fast_f64 {
            let raw: [u8; 8] = a.bytes[i * 8..i * 8 + 8]
                .try_into()
                .map_err(SerializeError::encode)?;
            write_f64(&mut out, f64::from_le_bytes(raw), &mut buf);
        } else {
            let s = a.scalar(i).map_err(SerializeError::encode)?;
            write_scalar_json(&mut out, &s, &mut buf);
        }
        // Close and reopen lists as the innermost index wraps.
        let mut k = nd;
        loop {
            k -= 1;
            counters[k] += 1;
            if counters[k] < shape[k] {
                out.push(b',');
                out.extend(std::iter::repeat_n(b'[', nd - k - 1));
                break;
            }
            counters[k] = 0;
            out.push(b']');
            if k == 0 {
                break;
            }
        }
    }
    Ok(out)
}

fn scalar_text(s: &Scalar) -> String {
    match s {
        Scalar::Bool(b) => if *b { "True" } else { "False" }.to_string(),
        Scalar::Int(i) => i.to_string(),
        Scalar::UInt(u) => u.to_string(),
        Scalar::Float(f) => py_float_repr(*f),
        Scalar::Complex(re, im) => {
            let sign = if *im < 0.0 || (*im == 0.0 && im.is_sign_negative()) {
                "-"
            } else {
                "+"
            };
            format!("({}{sign}{}j)", py_float_repr(*re), py_float_repr(im.abs()))
        }
        Scalar::DateTime(v, u) => iso_datetime(*v, u).unwrap_or_else(|| "NaT".to_string()),
        Scalar::TimeDelta(v, u) => format!("{v} {}", u.trim_matches(['[', ']'])),
        Scalar::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Scalar::Str(s) => s.clone(),
        Scalar::Record(fields) => {
            let inner: Vec<String> = fields.iter().map(|(_, v)| scalar_text(v)).collect();
            format!("({})", inner.join(", "))
        }
        Scalar::List(items) => {
            let inner: Vec<String> = items.iter().map(scalar_text).collect();
            format!("[{}]", inner.join(" "))
        }
    }
}

/// Comma-separated rows without a header (one value per line for 0-d and 1-D arrays), as
/// `numpy.savetxt(fmt="%s")` writes them; at most 2-D.
pub fn to_csv(a: &ArrayData) -> Result<Vec<u8>, SerializeError> {
    if a.ndim() > 2 {
        return Err(SerializeError::unsupported(
            CSV,
            format!(
                "CSV holds at most 2 dimensions; this array has {}. Slice it first.",
                a.ndim()
            ),
        ));
    }
    let cols = if a.ndim() == 2 { a.shape[1] } else { 1 };
    let mut s = String::with_capacity(a.len() * 20);
    for i in 0..a.len() {
        let v = a.scalar(i).map_err(SerializeError::encode)?;
        csv_field(&scalar_text(&v), &mut s);
        s.push(if cols == 0 || (i + 1) % cols == 0 {
            '\n'
        } else {
            ','
        });
    }
    Ok(s.into_bytes())
}

/// Linear-interpolated percentile of sorted values (numpy's default method).
fn percentile(sorted: &[f32], q: f32) -> f32 {
    let n = sorted.len();
    if n == 0 {
        return 0.0;
    }
    let pos = q / 100.0 * (n - 1) as f32;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    let frac = pos - lo as f32;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

/// 8-bit pixels scaled from the 1st to the 99th percentile, and the PNG color type.
fn prepare_pixels(a: &ArrayData) -> Result<(Vec<u8>, u32, u32, png::ColorType), SerializeError> {
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
                    "images are 2-D (grayscale) or 3-D with 3 or 4 channels; this array has shape {other:?}"
                ),
            ));
        }
    };
    let values: Vec<f32> = a
        .to_f64_vec()
        .map_err(|e| SerializeError::unsupported(PNG, e.to_string()))?
        .into_iter()
        .map(|v| v as f32)
        .collect();
    let mut sorted: Vec<f32> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    sorted.sort_by(|x, y| x.total_cmp(y));
    let (low, high) = (percentile(&sorted, 1.0), percentile(&sorted, 99.0));
    let span = high - low;
    let pixels = values
        .iter()
        .map(|v| {
            let scaled = if span > 0.0 {
                ((v - low) / span).clamp(0.0, 1.0)
            } else {
                0.0
            };
            // skimage's img_as_ubyte: round half to even of x * 255.
            (scaled * 255.0).round_ties_even() as u8
        })
        .collect();
    let (w, h) = (
        u32::try_from(w).map_err(SerializeError::encode)?,
        u32::try_from(h).map_err(SerializeError::encode)?,
    );
    Ok((pixels, w, h, color))
}

/// An 8-bit PNG auto-scaled between the 1st and 99th percentiles (grayscale, RGB or RGBA).
pub fn to_png(a: &ArrayData) -> Result<Vec<u8>, SerializeError> {
    let (pixels, w, h, color) = prepare_pixels(a)?;
    if w == 0 || h == 0 {
        return Err(SerializeError::unsupported(PNG, "the array is empty"));
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(color);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Fast);
        let mut writer = enc.write_header().map_err(SerializeError::encode)?;
        writer
            .write_image_data(&pixels)
            .map_err(SerializeError::encode)?;
        writer.finish().map_err(SerializeError::encode)?;
    }
    Ok(out)
}

/// A TIFF of the raw values: one page per leading index for 3-D arrays.
pub fn to_tiff(a: &ArrayData) -> Result<Vec<u8>, SerializeError> {
    use tiff::encoder::{TiffEncoder, colortype};
    let (pages, h, w) = match a.shape.as_slice() {
        [] => (1, 1, 1),
        [n] => (1, 1, *n),
        [h, w] => (1, *h, *w),
        [p, h, w] => (*p, *h, *w),
        other => {
            return Err(SerializeError::unsupported(
                TIFF,
                format!("TIFF export takes 1-D to 3-D arrays; this one has shape {other:?}"),
            ));
        }
    };
    let b = a.dtype.builtin().ok_or_else(|| {
        SerializeError::unsupported(TIFF, "structured arrays cannot be written as TIFF")
    })?;
    let (wu, hu) = (
        u32::try_from(w).map_err(SerializeError::encode)?,
        u32::try_from(h).map_err(SerializeError::encode)?,
    );
    let n = h * w;
    let mut cursor = std::io::Cursor::new(Vec::new());
    let mut enc = TiffEncoder::new(&mut cursor).map_err(SerializeError::encode)?;
    let swap = b.is_byte_swapped();
    macro_rules! pages {
        ($t:ty, $ct:ty) => {{
            const S: usize = std::mem::size_of::<$t>();
            for p in 0..pages {
                let vals: Vec<$t> = a.bytes[p * n * S..(p + 1) * n * S]
                    .chunks_exact(S)
                    .map(|c| {
                        let mut arr = [0u8; S];
                        arr.copy_from_slice(c);
                        if swap {
                            arr.reverse();
                        }
                        <$t>::from_ne_bytes(arr)
                    })
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

/// An HTML page showing the array: the PNG rendering when there is one, else its CSV text
/// in a `<pre>` block (Tiled answers 500 here; this is what it meant to do).
pub fn to_html(a: &ArrayData) -> Result<Vec<u8>, SerializeError> {
    use base64::Engine;
    if let Ok(png) = to_png(a) {
        let b64 = base64::engine::general_purpose::STANDARD.encode(png);
        return Ok(
            format!("<html><body><img src=\"data:image/png;base64,{b64}\"/></body></html>")
                .into_bytes(),
        );
    }
    match to_csv(a) {
        Ok(csv) => Ok(format!(
            "<html><body><pre>{}</pre></body></html>",
            html_escape(&String::from_utf8_lossy(&csv))
        )
        .into_bytes()),
        Err(_) => Err(SerializeError::unsupported(
            "text/html",
            "only arrays of at most 2 dimensions (or images) can be shown as HTML",
        )),
    }
}

/// The media types this module encodes, for callers that check before encoding.
pub const MEDIA_TYPES: [&str; 5] = [JSON, CSV, PNG, TIFF, "text/html"];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::array::encode_unicode;
    use crate::dtype::DataType;

    #[test]
    fn json_nests_by_shape() {
        let a = ArrayData::from_f64(vec![2, 3], &[0.5, 1.0, 2.25, -3.0, 1e-7, f64::NAN]);
        assert_eq!(
            String::from_utf8(to_json(&a).unwrap()).unwrap(),
            "[[0.5,1.0,2.25],[-3.0,1e-7,null]]"
        );
        let scalar = ArrayData::from_f64(vec![], &[3.25]);
        assert_eq!(to_json(&scalar).unwrap(), b"3.25");
        let empty = ArrayData::from_f64(vec![2, 0], &[]);
        assert_eq!(to_json(&empty).unwrap(), b"[[]]");
        let cube = ArrayData::from_i64(vec![2, 1, 2], &[1, 2, 3, 4]);
        assert_eq!(to_json(&cube).unwrap(), b"[[[1,2]],[[3,4]]]");
    }

    #[test]
    fn json_of_strings_complex_and_datetimes() {
        let mut b = Vec::new();
        encode_unicode("1/137", 5, &mut b);
        let s = ArrayData::new(DataType::unicode(5), vec![], b);
        assert_eq!(to_json(&s).unwrap(), b"\"1/137\"");
        let mut c = Vec::new();
        for v in [1.5f64, -2.0] {
            c.extend_from_slice(&v.to_le_bytes());
        }
        let z = ArrayData::new(DataType::c16(), vec![1], c);
        assert_eq!(to_json(&z).unwrap(), b"[[1.5,-2.0]]");
        let mut t = ArrayData::from_i64(vec![1], &[1_409_961_600_000_000_000]);
        t.dtype = DataType::datetime("[ns]");
        assert_eq!(to_json(&t).unwrap(), b"[\"2014-09-06T00:00:00\"]");
    }

    #[test]
    fn csv_rows_and_dimension_limit() {
        let a = ArrayData::from_f64(vec![2, 2], &[0.1, 2.0, 1e-5, 4.0]);
        assert_eq!(to_csv(&a).unwrap(), b"0.1,2.0\n1e-05,4.0\n");
        let v = ArrayData::from_i64(vec![3], &[1, 2, 3]);
        assert_eq!(to_csv(&v).unwrap(), b"1\n2\n3\n");
        let cube = ArrayData::from_f64(vec![1, 1, 1], &[1.0]);
        assert!(matches!(
            to_csv(&cube),
            Err(SerializeError::Unsupported { .. })
        ));
    }

    #[test]
    fn png_scales_between_percentiles() {
        let values: Vec<f64> = (0..100).map(f64::from).collect();
        let a = ArrayData::from_f64(vec![10, 10], &values);
        let png = to_png(&a).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (10, 10));
        assert_eq!(info.color_type, png::ColorType::Grayscale);
        assert_eq!(buf[0], 0);
        assert_eq!(buf[99], 255);
        assert!(buf[50] > 100 && buf[50] < 150);
        assert!(to_png(&ArrayData::from_f64(vec![2, 2, 2, 2], &[0.0; 16])).is_err());
    }

    #[test]
    fn tiff_round_trips_values() {
        let a = ArrayData::from_f64(vec![2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.5]);
        let bytes = to_tiff(&a).unwrap();
        let mut dec = tiff::decoder::Decoder::new(std::io::Cursor::new(bytes)).unwrap();
        assert_eq!(dec.dimensions().unwrap(), (3, 2));
        match dec.read_image().unwrap() {
            tiff::decoder::DecodingResult::F64(v) => {
                assert_eq!(v, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.5])
            }
            _ => panic!("expected f64 pixels"),
        }
    }

    #[test]
    fn html_embeds_the_png_or_falls_back_to_text() {
        let a = ArrayData::from_f64(vec![2, 2], &[0.0, 1.0, 2.0, 3.0]);
        let html = String::from_utf8(to_html(&a).unwrap()).unwrap();
        assert!(html.starts_with("<html><body><img src=\"data:image/png;base64,"));
        let mut b = Vec::new();
        encode_unicode("<a>", 3, &mut b);
        let s = ArrayData::new(DataType::unicode(3), vec![1], b);
        let html = String::from_utf8(to_html(&s).unwrap()).unwrap();
        assert!(html.contains("&lt;a&gt;"));
    }
}
