//! NetCDF export: named variables over named dimensions, written as a NetCDF-3 file in the
//! 64-bit offset format. That is what Tiled's export gives (xarray writing through SciPy), and
//! scipy, netCDF4-python and xarray read it with any engine.
//!
//! NetCDF-3 has six types. Other numpy types are mapped with the conventions xarray decodes
//! back to the original type:
//! - unsigned integers: the signed type of the same width, with `_Unsigned = "true"`;
//! - booleans: bytes, with `dtype = "bool"`;
//! - 64-bit integers: 32-bit when every value fits (as xarray does), refused otherwise;
//! - datetimes and timedeltas: integer counts of the coarsest CF unit that holds every value
//!   exactly, with CF `units` (and `calendar` for datetimes);
//! - text: character arrays over an extra `string{N}` dimension (`_Encoding = "utf-8"` for
//!   unicode).
//!
//! Complex and structured types have no NetCDF-3 form and are refused with a message.

use std::cell::RefCell;
use std::io::{Cursor, Seek, SeekFrom, Write};
use std::rc::Rc;

use netcdf3::{DataSet, DataType as NcType, FileWriter, Version};
use serde_json::{Map, Value};

use super::{NETCDF, SerializeError};
use crate::array::{ArrayData, Scalar};
use crate::dtype::{BuiltinDType, DataType, Endianness, Kind};

/// One variable to export.
pub struct NcVariable {
    pub name: String,
    /// One name per axis of `data`.
    pub dims: Vec<String>,
    pub data: ArrayData,
    /// Attributes: strings, numbers and lists of them as themselves, anything else as JSON text.
    pub attrs: Map<String, Value>,
}

/// Attributes the HDF5 form of a NetCDF-4 file carries for its own bookkeeping; they mean
/// nothing in a NetCDF-3 file.
fn is_bookkeeping(name: &str) -> bool {
    name.starts_with("_Netcdf4")
        || matches!(
            name,
            "_NCProperties" | "DIMENSION_LIST" | "REFERENCE_LIST" | "CLASS" | "NAME"
        )
}

/// The variables as the bytes of a NetCDF-3 (64-bit offset) file with global attributes `attrs`.
pub fn to_netcdf(
    attrs: &Map<String, Value>,
    vars: &[NcVariable],
) -> Result<Vec<u8>, SerializeError> {
    let encoded: Vec<Encoded> = vars.iter().map(encode).collect::<Result<_, _>>()?;

    let mut ds = DataSet::new();
    let mut dims: Vec<(String, usize)> = Vec::new();
    for (var, enc) in vars.iter().zip(&encoded) {
        for (name, &len) in enc.dims.iter().zip(&enc.shape) {
            match dims.iter().find(|(d, _)| d == name) {
                Some((_, seen)) if *seen != len => {
                    return Err(unsupported(format!(
                        "dimension '{name}' is {seen} long elsewhere but {len} long in variable '{}'",
                        var.name
                    )));
                }
                Some(_) => {}
                None => {
                    if len == 0 {
                        return Err(unsupported(format!(
                            "variable '{}' is empty along '{name}'; NetCDF-3 has no zero-length fixed dimensions",
                            var.name
                        )));
                    }
                    ds.add_fixed_dim(name, len)
                        .map_err(|e| unsupported(format!("dimension '{name}': {e:?}")))?;
                    dims.push((name.clone(), len));
                }
            }
        }
    }
    for (var, enc) in vars.iter().zip(&encoded) {
        let name = var.name.as_str();
        ds.add_var(name, &enc.dims, enc.values.nc_type())
            .map_err(|e| unsupported(format!("variable '{name}': {e:?}")))?;
        let overridden = |k: &str| enc.attrs.iter().any(|(n, _)| n == k);
        for (k, v) in &var.attrs {
            if is_bookkeeping(k) || overridden(k) {
                continue;
            }
            let attr = if k == "_FillValue" || k == "missing_value" {
                // These must have the variable's own type.
                fill_value(v, &enc.values, name)?
            } else {
                attr_of(v)
            };
            if let Some(a) = attr {
                add_var_attr(&mut ds, name, k, a)?;
            }
        }
        for (k, a) in &enc.attrs {
            add_var_attr(&mut ds, name, k, a.clone())?;
        }
    }
    for (k, v) in attrs {
        if is_bookkeeping(k) {
            continue;
        }
        if let Some(a) = attr_of(v) {
            add_global_attr(&mut ds, k, a)?;
        }
    }

    let buffer = SharedBuffer::default();
    {
        let out = std::io::BufWriter::with_capacity(1 << 20, buffer.clone());
        let mut w = FileWriter::open_seek_write("export.nc", Box::new(out)).map_err(nc_err)?;
        w.set_def(&ds, Version::Offset64Bit, 0).map_err(nc_err)?;
        for (var, enc) in vars.iter().zip(&encoded) {
            let n = var.name.as_str();
            match &enc.values {
                Values::I8(v) => w.write_var_i8(n, v),
                Values::Char(v) => w.write_var_u8(n, v),
                Values::I16(v) => w.write_var_i16(n, v),
                Values::I32(v) => w.write_var_i32(n, v),
                Values::F32(v) => w.write_var_f32(n, v),
                Values::F64(v) => w.write_var_f64(n, v),
            }
            .map_err(nc_err)?;
        }
        w.close().map_err(nc_err)?;
    }
    Ok(buffer.into_bytes())
}

fn unsupported(reason: impl Into<String>) -> SerializeError {
    SerializeError::unsupported(NETCDF, reason)
}

fn nc_err(e: netcdf3::WriteError) -> SerializeError {
    SerializeError::encode(format!("NetCDF writer: {e:?}"))
}

/// A growable in-memory file the NetCDF writer (which owns its output) writes into.
#[derive(Clone, Default)]
struct SharedBuffer(Rc<RefCell<Cursor<Vec<u8>>>>);

impl SharedBuffer {
    fn into_bytes(self) -> Vec<u8> {
        match Rc::try_unwrap(self.0) {
            Ok(cell) => cell.into_inner().into_inner(),
            Err(shared) => shared.borrow().get_ref().clone(),
        }
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Seek for SharedBuffer {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.0.borrow_mut().seek(pos)
    }
}

/// A variable's values, or an attribute's, in one of NetCDF-3's types (text is characters).
#[derive(Clone)]
enum Values {
    I8(Vec<i8>),
    Char(Vec<u8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl Values {
    /// Text, as NetCDF-3 stores it: characters.
    fn text(s: impl Into<String>) -> Values {
        Values::Char(s.into().into_bytes())
    }

    fn nc_type(&self) -> NcType {
        match self {
            Values::I8(_) => NcType::I8,
            Values::Char(_) => NcType::U8,
            Values::I16(_) => NcType::I16,
            Values::I32(_) => NcType::I32,
            Values::F32(_) => NcType::F32,
            Values::F64(_) => NcType::F64,
        }
    }
}

/// A variable ready to write: its values, its dimensions and shape (with the `string{N}`
/// dimension of text), and the attributes its encoding adds.
struct Encoded {
    values: Values,
    dims: Vec<String>,
    shape: Vec<usize>,
    attrs: Vec<(String, Values)>,
}

fn encode(var: &NcVariable) -> Result<Encoded, SerializeError> {
    let name = &var.name;
    if var.dims.len() != var.data.shape.len() {
        return Err(unsupported(format!(
            "variable '{name}' has {} axes but {} dimension names",
            var.data.shape.len(),
            var.dims.len()
        )));
    }
    let DataType::Builtin(b) = &var.data.dtype else {
        return Err(unsupported(format!(
            "variable '{name}' has a structured type; NetCDF-3 has none (export as HDF5)"
        )));
    };
    let mut enc = Encoded {
        values: Values::I8(Vec::new()),
        dims: var.dims.clone(),
        shape: var.data.shape.clone(),
        attrs: Vec::new(),
    };
    let unsigned = || ("_Unsigned".to_string(), Values::text("true"));
    let bytes = &var.data.bytes;
    enc.values = match (b.kind, b.itemsize) {
        (Kind::Bool, 1) => {
            enc.attrs.push(("dtype".into(), Values::text("bool")));
            Values::I8(bytes.iter().map(|&v| i8::from(v != 0)).collect())
        }
        (Kind::Int, 1) => Values::I8(bytes.iter().map(|&v| v as i8).collect()),
        (Kind::UInt, 1) => {
            enc.attrs.push(unsigned());
            Values::I8(bytes.iter().map(|&v| v as i8).collect())
        }
        (Kind::Int, 2) => Values::I16(words::<2>(b, bytes).map(i16::from_le_bytes).collect()),
        (Kind::UInt, 2) => {
            enc.attrs.push(unsigned());
            Values::I16(words::<2>(b, bytes).map(i16::from_le_bytes).collect())
        }
        (Kind::Int, 4) => Values::I32(words::<4>(b, bytes).map(i32::from_le_bytes).collect()),
        (Kind::UInt, 4) => {
            enc.attrs.push(unsigned());
            Values::I32(words::<4>(b, bytes).map(i32::from_le_bytes).collect())
        }
        (Kind::Int, 8) => Values::I32(
            words::<8>(b, bytes)
                .map(|w| i32::try_from(i64::from_le_bytes(w)))
                .collect::<Result<_, _>>()
                .map_err(|_| too_wide(name, "int64"))?,
        ),
        (Kind::UInt, 8) => {
            enc.attrs.push(unsigned());
            Values::I32(
                words::<8>(b, bytes)
                    .map(|w| u32::try_from(u64::from_le_bytes(w)).map(|v| v as i32))
                    .collect::<Result<_, _>>()
                    .map_err(|_| too_wide(name, "uint64"))?,
            )
        }
        (Kind::Float, 2) | (Kind::Float, 4) => Values::F32(
            var.data
                .to_f64_vec()
                .map_err(|e| unsupported(format!("variable '{name}': {e}")))?
                .into_iter()
                .map(|v| v as f32)
                .collect(),
        ),
        (Kind::Float, 8) => Values::F64(words::<8>(b, bytes).map(f64::from_le_bytes).collect()),
        (Kind::DateTime | Kind::TimeDelta, 8) => {
            let counts: Vec<i64> = words::<8>(b, bytes).map(i64::from_le_bytes).collect();
            let (values, units) = time_counts(name, b, &counts)?;
            let units = if b.kind == Kind::DateTime {
                enc.attrs
                    .push(("calendar".into(), Values::text("proleptic_gregorian")));
                format!("{units} since 1970-01-01")
            } else {
                units.to_string()
            };
            enc.attrs.push(("units".into(), Values::text(units)));
            values
        }
        (Kind::Unicode | Kind::Bytes, _) => {
            let texts: Vec<Vec<u8>> = (0..var.data.len())
                .map(|i| match var.data.scalar(i) {
                    Ok(Scalar::Str(s)) => Ok(s.into_bytes()),
                    Ok(Scalar::Bytes(v)) => Ok(v),
                    _ => Err(unsupported(format!("variable '{name}': unreadable text"))),
                })
                .collect::<Result<_, _>>()?;
            let width = texts.iter().map(Vec::len).max().unwrap_or(0).max(1);
            let mut chars = Vec::with_capacity(texts.len() * width);
            for t in &texts {
                chars.extend_from_slice(t);
                chars.resize(chars.len() + width - t.len(), 0);
            }
            enc.dims.push(format!("string{width}"));
            enc.shape.push(width);
            if b.kind == Kind::Unicode {
                enc.attrs.push(("_Encoding".into(), Values::text("utf-8")));
            }
            Values::Char(chars)
        }
        _ => {
            return Err(unsupported(format!(
                "variable '{name}' is {}; NetCDF-3 has no such type (export as HDF5)",
                b.numpy_str()
            )));
        }
    };
    Ok(enc)
}

fn too_wide(name: &str, ty: &str) -> SerializeError {
    unsupported(format!(
        "variable '{name}' holds {ty} values beyond NetCDF-3's 32-bit integers (export as HDF5)"
    ))
}

/// The elements of a builtin array as little-endian `N`-byte words.
fn words<'a, const N: usize>(
    b: &BuiltinDType,
    bytes: &'a [u8],
) -> impl Iterator<Item = [u8; N]> + 'a {
    let swap = b.endianness == Endianness::Big;
    bytes.chunks_exact(N).map(move |c| {
        let mut w = [0u8; N];
        w.copy_from_slice(c);
        if swap {
            w.reverse();
        }
        w
    })
}

/// CF time units, coarsest first, with their length in nanoseconds.
const CF_UNITS: [(&str, i128); 7] = [
    ("days", 86_400_000_000_000),
    ("hours", 3_600_000_000_000),
    ("minutes", 60_000_000_000),
    ("seconds", 1_000_000_000),
    ("milliseconds", 1_000_000),
    ("microseconds", 1_000),
    ("nanoseconds", 1),
];

/// Time counts re-expressed in the coarsest CF unit that holds each one exactly: 32-bit when
/// they fit, doubles when exact, refused otherwise.
fn time_counts(
    name: &str,
    b: &BuiltinDType,
    counts: &[i64],
) -> Result<(Values, &'static str), SerializeError> {
    let unit = b.dt_units.as_deref().unwrap_or("");
    let ns: i128 = match unit.trim_matches(|c| c == '[' || c == ']') {
        "D" => 86_400_000_000_000,
        "h" => 3_600_000_000_000,
        "m" => 60_000_000_000,
        "s" => 1_000_000_000,
        "ms" => 1_000_000,
        "us" => 1_000,
        "ns" => 1,
        other => {
            return Err(unsupported(format!(
                "variable '{name}' counts time in '{other}', which has no CF unit"
            )));
        }
    };
    if counts.contains(&i64::MIN) {
        return Err(unsupported(format!(
            "variable '{name}' holds NaT, which NetCDF-3 export does not encode"
        )));
    }
    let (cf, per) = CF_UNITS
        .iter()
        .copied()
        .find(|(_, per)| counts.iter().all(|&c| (c as i128 * ns) % per == 0))
        .unwrap_or(("nanoseconds", 1));
    let scaled: Vec<i128> = counts.iter().map(|&c| c as i128 * ns / per).collect();
    if let Ok(v) = scaled
        .iter()
        .map(|&c| i32::try_from(c))
        .collect::<Result<Vec<_>, _>>()
    {
        return Ok((Values::I32(v), cf));
    }
    const EXACT: i128 = 1 << 53;
    if scaled.iter().all(|c| c.abs() <= EXACT) {
        return Ok((Values::F64(scaled.iter().map(|&c| c as f64).collect()), cf));
    }
    Err(unsupported(format!(
        "variable '{name}' holds times NetCDF-3 cannot store exactly (export as HDF5)"
    )))
}

/// A JSON metadata value as an attribute; `None` for nulls and empty lists.
fn attr_of(v: &Value) -> Option<Values> {
    let ints = |a: &[Value]| -> Option<Vec<i32>> {
        a.iter()
            .map(|x| x.as_i64().and_then(|i| i32::try_from(i).ok()))
            .collect()
    };
    Some(match v {
        Value::Null => return None,
        Value::String(s) => Values::text(s.clone()),
        Value::Bool(b) => Values::I8(vec![i8::from(*b)]),
        Value::Number(_) => match ints(std::slice::from_ref(v)) {
            Some(i) => Values::I32(i),
            None => Values::F64(vec![v.as_f64()?]),
        },
        Value::Array(a) if a.is_empty() => return None,
        Value::Array(a) if a.iter().all(Value::is_number) => match ints(a) {
            Some(i) => Values::I32(i),
            None => Values::F64(a.iter().filter_map(Value::as_f64).collect()),
        },
        other => Values::text(other.to_string()),
    })
}

/// `_FillValue` and `missing_value`, which must have the variable's own type.
fn fill_value(v: &Value, values: &Values, var: &str) -> Result<Option<Values>, SerializeError> {
    let Some(x) = v.as_f64().or_else(|| match v {
        // NaN reaches the catalog as text.
        Value::String(s) if s.eq_ignore_ascii_case("nan") => Some(f64::NAN),
        _ => None,
    }) else {
        return Ok(None);
    };
    let fits = |lo: f64, hi: f64| {
        (x.fract() == 0.0 && x >= lo && x <= hi)
            .then_some(())
            .ok_or_else(|| {
                unsupported(format!(
                    "variable '{var}': its fill value {x} does not fit the variable's type"
                ))
            })
    };
    Ok(Some(match values {
        Values::I8(_) => {
            fits(-128.0, 255.0)?;
            Values::I8(vec![x as i64 as i8])
        }
        Values::Char(_) => return Ok(None),
        Values::I16(_) => {
            fits(-32768.0, 65535.0)?;
            Values::I16(vec![x as i64 as i16])
        }
        Values::I32(_) => {
            fits(i32::MIN as f64, u32::MAX as f64)?;
            Values::I32(vec![x as i64 as i32])
        }
        Values::F32(_) => Values::F32(vec![x as f32]),
        Values::F64(_) => Values::F64(vec![x]),
    }))
}

fn attr_err(owner: &str, k: &str, e: netcdf3::InvalidDataSet) -> SerializeError {
    unsupported(format!("attribute '{k}' of {owner}: {e:?}"))
}

fn add_var_attr(ds: &mut DataSet, var: &str, k: &str, a: Values) -> Result<(), SerializeError> {
    match a {
        Values::Char(v) => ds.add_var_attr_u8(var, k, v),
        Values::I8(v) => ds.add_var_attr_i8(var, k, v),
        Values::I16(v) => ds.add_var_attr_i16(var, k, v),
        Values::I32(v) => ds.add_var_attr_i32(var, k, v),
        Values::F32(v) => ds.add_var_attr_f32(var, k, v),
        Values::F64(v) => ds.add_var_attr_f64(var, k, v),
    }
    .map_err(|e| attr_err(&format!("variable '{var}'"), k, e))
}

fn add_global_attr(ds: &mut DataSet, k: &str, a: Values) -> Result<(), SerializeError> {
    match a {
        Values::Char(v) => ds.add_global_attr_u8(k, v),
        Values::I8(v) => ds.add_global_attr_i8(k, v),
        Values::I16(v) => ds.add_global_attr_i16(k, v),
        Values::I32(v) => ds.add_global_attr_i32(k, v),
        Values::F32(v) => ds.add_global_attr_f32(k, v),
        Values::F64(v) => ds.add_global_attr_f64(k, v),
    }
    .map_err(|e| attr_err("the file", k, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn var(name: &str, dims: &[&str], data: ArrayData, attrs: Value) -> NcVariable {
        NcVariable {
            name: name.into(),
            dims: dims.iter().map(|d| d.to_string()).collect(),
            data,
            attrs: attrs.as_object().cloned().unwrap_or_default(),
        }
    }

    fn read(bytes: Vec<u8>) -> netcdf3::FileReader {
        netcdf3::FileReader::open_seek_read("t.nc", Box::new(Cursor::new(bytes)))
            .expect("the export reads back")
    }

    #[test]
    fn variables_dimensions_and_attributes_read_back() {
        let t = ArrayData::from_f64(vec![2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let x = ArrayData::from_i64(vec![3], &[10, 20, 30]);
        let bytes = to_netcdf(
            json!({"title": "scan", "station": 17, "flags": [1, 2]})
                .as_object()
                .unwrap(),
            &[
                var("t", &["y", "x"], t, json!({"units": "K", "_FillValue": -1})),
                var(
                    "x",
                    &["x"],
                    x,
                    json!({"nested": {"a": 1}, "_Netcdf4Dimid": 0}),
                ),
            ],
        )
        .unwrap();
        let mut r = read(bytes);
        let ds = r.data_set();
        assert_eq!(ds.dim_size("y"), Some(2));
        assert_eq!(ds.dim_size("x"), Some(3));
        assert_eq!(
            ds.get_global_attr_as_string("title").as_deref(),
            Some("scan")
        );
        assert_eq!(ds.get_global_attr_i32("station"), Some(&[17][..]));
        assert_eq!(ds.get_global_attr_i32("flags"), Some(&[1, 2][..]));
        assert_eq!(ds.get_var_attr_f64("t", "_FillValue"), Some(&[-1.0][..]));
        assert_eq!(
            ds.get_var_attr_as_string("x", "nested").as_deref(),
            Some(r#"{"a":1}"#)
        );
        assert!(ds.get_var_attr("x", "_Netcdf4Dimid").is_none());
        assert_eq!(ds.var_data_type("x"), Some(NcType::I32));
        assert_eq!(
            r.read_var_f64("t").unwrap(),
            vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
        );
        assert_eq!(r.read_var_i32("x").unwrap(), vec![10, 20, 30]);
    }

    #[test]
    fn unsigned_integers_keep_their_bits_and_say_so() {
        let mut raw = Vec::new();
        for v in [0u16, 40000, 65535] {
            raw.extend_from_slice(&v.to_le_bytes());
        }
        let u = ArrayData::new(
            DataType::Builtin(BuiltinDType::new(Kind::UInt, 2)),
            vec![3],
            raw,
        );
        let mut r = read(to_netcdf(&Map::new(), &[var("u", &["n"], u, json!({}))]).unwrap());
        assert_eq!(
            r.data_set()
                .get_var_attr_as_string("u", "_Unsigned")
                .as_deref(),
            Some("true")
        );
        let back: Vec<u16> = r
            .read_var_i16("u")
            .unwrap()
            .into_iter()
            .map(|v| v as u16)
            .collect();
        assert_eq!(back, vec![0, 40000, 65535]);
    }

    #[test]
    fn int64_beyond_32_bits_is_refused_by_name() {
        let big = ArrayData::from_i64(vec![2], &[1, 1 << 40]);
        let err = to_netcdf(&Map::new(), &[var("counts", &["n"], big, json!({}))]).unwrap_err();
        assert!(
            matches!(&err, SerializeError::Unsupported { reason, .. } if reason.contains("'counts'"))
        );
    }

    #[test]
    fn datetimes_become_the_coarsest_exact_cf_unit() {
        let day = 86_400i64;
        let mut raw = Vec::new();
        for v in [0, day, 3 * day] {
            raw.extend_from_slice(&v.to_le_bytes());
        }
        let t = ArrayData::new(
            DataType::Builtin(BuiltinDType::time(Kind::DateTime, "[s]")),
            vec![3],
            raw,
        );
        let mut r = read(
            to_netcdf(
                &Map::new(),
                &[var("time", &["time"], t, json!({"units": "ignored"}))],
            )
            .unwrap(),
        );
        assert_eq!(
            r.data_set()
                .get_var_attr_as_string("time", "units")
                .as_deref(),
            Some("days since 1970-01-01")
        );
        assert_eq!(r.read_var_i32("time").unwrap(), vec![0, 1, 3]);
    }

    #[test]
    fn text_gets_a_string_dimension() {
        let mut raw = Vec::new();
        for s in ["ab", "c"] {
            crate::array::encode_unicode(s, 2, &mut raw);
        }
        let t = ArrayData::new(DataType::unicode(2), vec![2], raw);
        let mut r = read(to_netcdf(&Map::new(), &[var("names", &["n"], t, json!({}))]).unwrap());
        assert_eq!(r.data_set().dim_size("string2"), Some(2));
        assert_eq!(r.read_var_u8("names").unwrap(), b"abc\0".to_vec());
    }

    #[test]
    fn conflicting_dimension_lengths_are_refused() {
        let a = ArrayData::from_f64(vec![2], &[1.0, 2.0]);
        let b = ArrayData::from_f64(vec![3], &[1.0, 2.0, 3.0]);
        let err = to_netcdf(
            &Map::new(),
            &[
                var("a", &["n"], a, json!({})),
                var("b", &["n"], b, json!({})),
            ],
        )
        .unwrap_err();
        assert!(err.to_string().contains("dimension 'n'"), "{err}");
    }
}
