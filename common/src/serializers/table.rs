//! Table encoders over Arrow record batches (one schema, one batch per partition): Arrow IPC
//! file and Parquet keep every column and the schema metadata (pandas' included); CSV, JSON,
//! JSON-seq, XLSX and HTML render the data columns the way pandas does for Tiled, without the
//! index columns.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType as ArrowType, Schema, TimeUnit};

use super::text::{
    to_datetime, write_csv_field, write_html_escaped, write_json_f64, write_json_str, write_np_f32,
    write_py_f64, write_ymd_hms,
};
use super::{HTML, SerializeError, XLSX};

/// `data:application/vnd.apache.arrow.file;base64,` + the IPC-encapsulated schema message
/// (what pyarrow's `Schema.serialize()` gives; Tiled's `structure.arrow_schema`).
pub fn arrow_schema_data_uri(schema: &Schema) -> Result<String, SerializeError> {
    use arrow_ipc::writer::{DictionaryTracker, IpcDataGenerator, IpcWriteOptions, write_message};
    use base64::Engine;
    let options = IpcWriteOptions::default();
    let mut tracker = DictionaryTracker::new(false);
    let encoded = IpcDataGenerator::default().schema_to_bytes_with_dictionary_tracker(
        schema,
        &mut tracker,
        &options,
    );
    let mut buf = Vec::new();
    write_message(&mut buf, encoded, &options).map_err(SerializeError::encode)?;
    Ok(format!(
        "data:application/vnd.apache.arrow.file;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(buf)
    ))
}

fn schema_of(batches: &[RecordBatch]) -> Result<Arc<Schema>, SerializeError> {
    batches
        .first()
        .map(|b| b.schema())
        .ok_or_else(|| SerializeError::encode("a table needs at least one partition"))
}

/// The Arrow IPC **file** format (what the Tiled client opens with `pyarrow.ipc.open_file`),
/// one record batch per partition, schema metadata kept.
pub fn to_arrow_file(batches: &[RecordBatch]) -> Result<Vec<u8>, SerializeError> {
    let schema = schema_of(batches)?;
    let capacity: usize = batches.iter().map(|b| b.get_array_memory_size()).sum();
    let mut w =
        arrow_ipc::writer::FileWriter::try_new(Vec::with_capacity(capacity + 4096), &schema)
            .map_err(SerializeError::encode)?;
    for b in batches {
        w.write(b).map_err(SerializeError::encode)?;
    }
    w.finish().map_err(SerializeError::encode)?;
    w.into_inner().map_err(SerializeError::encode)
}

/// Parquet has no second-resolution timestamps: like pyarrow, store them as milliseconds.
fn seconds_to_millis(batch: &RecordBatch) -> Result<RecordBatch, SerializeError> {
    use arrow_schema::Field;
    let schema = batch.schema();
    if !schema
        .fields()
        .iter()
        .any(|f| matches!(f.data_type(), ArrowType::Timestamp(TimeUnit::Second, _)))
    {
        return Ok(batch.clone());
    }
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (f, col) in schema.fields().iter().zip(batch.columns()) {
        match f.data_type() {
            ArrowType::Timestamp(TimeUnit::Second, tz) => {
                let ms: arrow_array::TimestampMillisecondArray = col
                    .as_primitive::<TimestampSecondType>()
                    .unary(|s| s.saturating_mul(1000));
                let ms = ms.with_timezone_opt(tz.clone());
                fields.push(
                    Field::new(f.name(), ms.data_type().clone(), f.is_nullable())
                        .with_metadata(f.metadata().clone()),
                );
                columns.push(Arc::new(ms) as ArrayRef);
            }
            _ => {
                fields.push(f.as_ref().clone());
                columns.push(col.clone());
            }
        }
    }
    let schema = Schema::new_with_metadata(fields, schema.metadata().clone());
    RecordBatch::try_new(Arc::new(schema), columns).map_err(SerializeError::encode)
}

/// Parquet, one row group per partition, schema metadata kept.
pub fn to_parquet(batches: &[RecordBatch]) -> Result<Vec<u8>, SerializeError> {
    let batches = batches
        .iter()
        .map(seconds_to_millis)
        .collect::<Result<Vec<_>, _>>()?;
    let schema = schema_of(&batches)?;
    let mut out = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, schema, None)
        .map_err(SerializeError::encode)?;
    for b in &batches {
        w.write(b).map_err(SerializeError::encode)?;
    }
    w.close().map_err(SerializeError::encode)?;
    Ok(out)
}

/// One cell, borrowed from its Arrow column.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Cell<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    F32(f32),
    F64(f64),
    Str(&'a str),
    /// A timestamp count in numpy units (`"[s]"`...).
    Time(i64, &'static str),
    /// A calendar date (Arrow date32/date64), which pandas keeps as `datetime.date`.
    Date(i64),
}

/// A column of one batch, downcast once.
enum Col<'a> {
    Bool(&'a arrow_array::BooleanArray),
    I8(&'a arrow_array::Int8Array),
    I16(&'a arrow_array::Int16Array),
    I32(&'a arrow_array::Int32Array),
    I64(&'a arrow_array::Int64Array),
    U8(&'a arrow_array::UInt8Array),
    U16(&'a arrow_array::UInt16Array),
    U32(&'a arrow_array::UInt32Array),
    U64(&'a arrow_array::UInt64Array),
    F32(&'a arrow_array::Float32Array),
    F64(&'a arrow_array::Float64Array),
    Str(&'a arrow_array::StringArray),
    LargeStr(&'a arrow_array::LargeStringArray),
    StrView(&'a arrow_array::StringViewArray),
    Ts(&'a dyn Array, TimeUnit),
    Date32(&'a arrow_array::Date32Array),
    Date64(&'a arrow_array::Date64Array),
    /// Categoricals: the keys resolved to value positions, then the values column.
    Dict(Vec<Option<usize>>, Box<Col<'a>>),
}

fn unit_str(u: TimeUnit) -> &'static str {
    match u {
        TimeUnit::Second => "[s]",
        TimeUnit::Millisecond => "[ms]",
        TimeUnit::Microsecond => "[us]",
        TimeUnit::Nanosecond => "[ns]",
    }
}

impl<'a> Col<'a> {
    fn new(a: &'a dyn Array, name: &str, media: &str) -> Result<Self, SerializeError> {
        Ok(match a.data_type() {
            ArrowType::Boolean => Col::Bool(a.as_boolean()),
            ArrowType::Int8 => Col::I8(a.as_primitive::<Int8Type>()),
            ArrowType::Int16 => Col::I16(a.as_primitive::<Int16Type>()),
            ArrowType::Int32 => Col::I32(a.as_primitive::<Int32Type>()),
            ArrowType::Int64 => Col::I64(a.as_primitive::<Int64Type>()),
            ArrowType::UInt8 => Col::U8(a.as_primitive::<UInt8Type>()),
            ArrowType::UInt16 => Col::U16(a.as_primitive::<UInt16Type>()),
            ArrowType::UInt32 => Col::U32(a.as_primitive::<UInt32Type>()),
            ArrowType::UInt64 => Col::U64(a.as_primitive::<UInt64Type>()),
            ArrowType::Float32 => Col::F32(a.as_primitive::<Float32Type>()),
            ArrowType::Float64 => Col::F64(a.as_primitive::<Float64Type>()),
            ArrowType::Utf8 => Col::Str(a.as_string::<i32>()),
            ArrowType::LargeUtf8 => Col::LargeStr(a.as_string::<i64>()),
            ArrowType::Utf8View => Col::StrView(a.as_string_view()),
            ArrowType::Timestamp(u, _) => Col::Ts(a, *u),
            ArrowType::Date32 => Col::Date32(a.as_primitive::<Date32Type>()),
            ArrowType::Date64 => Col::Date64(a.as_primitive::<Date64Type>()),
            ArrowType::Dictionary(..) => {
                let d = a.as_any_dictionary();
                let keys = d.normalized_keys();
                let positions = (0..a.len())
                    .map(|i| (!a.is_null(i)).then(|| keys.get(i).copied()).flatten())
                    .collect();
                Col::Dict(
                    positions,
                    Box::new(Col::new(d.values().as_ref(), name, media)?),
                )
            }
            other => {
                return Err(SerializeError::unsupported(
                    media,
                    format!(
                        "column '{name}' has Arrow type {other}, which this format cannot show"
                    ),
                ));
            }
        })
    }

    fn cell(&self, i: usize) -> Cell<'a> {
        macro_rules! prim {
            ($a:expr, $variant:ident, $conv:expr) => {
                if $a.is_null(i) {
                    Cell::Null
                } else {
                    Cell::$variant($conv($a.value(i)))
                }
            };
        }
        match self {
            Col::Bool(a) => prim!(a, Bool, |v| v),
            Col::I8(a) => prim!(a, Int, i64::from),
            Col::I16(a) => prim!(a, Int, i64::from),
            Col::I32(a) => prim!(a, Int, i64::from),
            Col::I64(a) => prim!(a, Int, |v| v),
            Col::U8(a) => prim!(a, UInt, u64::from),
            Col::U16(a) => prim!(a, UInt, u64::from),
            Col::U32(a) => prim!(a, UInt, u64::from),
            Col::U64(a) => prim!(a, UInt, |v| v),
            Col::F32(a) => prim!(a, F32, |v| v),
            Col::F64(a) => prim!(a, F64, |v| v),
            Col::Str(a) => prim!(a, Str, |v| v),
            Col::LargeStr(a) => prim!(a, Str, |v| v),
            Col::StrView(a) => prim!(a, Str, |v| v),
            Col::Ts(a, u) => {
                if a.is_null(i) {
                    return Cell::Null;
                }
                let v = match u {
                    TimeUnit::Second => a.as_primitive::<TimestampSecondType>().value(i),
                    TimeUnit::Millisecond => a.as_primitive::<TimestampMillisecondType>().value(i),
                    TimeUnit::Microsecond => a.as_primitive::<TimestampMicrosecondType>().value(i),
                    TimeUnit::Nanosecond => a.as_primitive::<TimestampNanosecondType>().value(i),
                };
                Cell::Time(v, unit_str(*u))
            }
            Col::Date32(a) => prim!(a, Date, i64::from),
            Col::Date64(a) => prim!(a, Date, |v: i64| v.div_euclid(86_400_000)),
            Col::Dict(keys, values) => match keys.get(i).copied().flatten() {
                Some(k) => values.cell(k),
                None => Cell::Null,
            },
        }
    }
}

/// How pandas prints a column as a whole (decided over every partition).
#[derive(Clone, Debug, Default)]
struct ColumnStyle {
    name: String,
    /// Integer (or boolean) columns with missing values become float (object) columns in
    /// pandas; their integers print as floats.
    ints_as_floats: bool,
    /// Datetime columns: date only when every value is at midnight ...
    date_only: bool,
    /// ... else this many fraction digits (0, 3, 6 or 9), the finest any value needs.
    fraction_digits: u8,
    /// The zone suffix of zone-aware timestamps (`+00:00`), which pandas prints.
    zone: Option<String>,
    /// Timestamp or date columns, whose missing values pandas' HTML shows as `NaT`.
    is_time: bool,
    /// HTML: pandas' per-column float formatting (see `html_floats`).
    html_floats: Option<Vec<String>>,
}

/// The data columns of a table (index columns dropped), per batch, with their styles.
struct Frame<'a> {
    styles: Vec<ColumnStyle>,
    /// `batches[b][c]`: column `c` of partition `b`.
    batches: Vec<Vec<Col<'a>>>,
    lens: Vec<usize>,
}

/// The `+HH:MM` suffix pandas prints for a zone-aware column; named zones other than UTC are
/// shown in UTC (the zone database is not part of this build).
fn zone_suffix(tz: &str) -> String {
    let t = tz.trim();
    if t.starts_with(['+', '-']) && t.len() == 6 {
        t.to_string()
    } else {
        "+00:00".to_string()
    }
}

impl<'a> Frame<'a> {
    fn new(
        batches: &'a [RecordBatch],
        index: &[String],
        media: &str,
    ) -> Result<Self, SerializeError> {
        let schema = schema_of(batches)?;
        let keep: Vec<usize> = (0..schema.fields().len())
            .filter(|&c| !index.contains(schema.field(c).name()))
            .collect();
        let mut cols = Vec::with_capacity(batches.len());
        for b in batches {
            if b.num_columns() != schema.fields().len() {
                return Err(SerializeError::encode("partitions have different schemas"));
            }
            cols.push(
                keep.iter()
                    .map(|&c| Col::new(b.column(c).as_ref(), schema.field(c).name(), media))
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
        let mut frame = Frame {
            styles: Vec::new(),
            batches: cols,
            lens: batches.iter().map(RecordBatch::num_rows).collect(),
        };
        for (k, &c) in keep.iter().enumerate() {
            let field = schema.field(c);
            let mut style = ColumnStyle {
                name: field.name().clone(),
                ..Default::default()
            };
            let mut any_null = false;
            let mut all_midnight = true;
            let mut finest = 0u8;
            frame.for_each(k, |cell| match cell {
                Cell::Null => any_null = true,
                Cell::Time(v, u) => {
                    if let Some(dt) = to_datetime(v, u) {
                        use chrono::Timelike;
                        if dt.time() != chrono::NaiveTime::MIN {
                            all_midnight = false;
                        }
                        let ns = dt.nanosecond();
                        let digits = if ns == 0 {
                            0
                        } else if ns % 1_000_000 == 0 {
                            3
                        } else if ns % 1000 == 0 {
                            6
                        } else {
                            9
                        };
                        finest = finest.max(digits);
                    }
                }
                _ => {}
            });
            let base = match field.data_type() {
                ArrowType::Dictionary(_, v) => v.as_ref(),
                t => t,
            };
            style.ints_as_floats = any_null && base.is_integer();
            style.is_time = matches!(
                base,
                ArrowType::Timestamp(..) | ArrowType::Date32 | ArrowType::Date64
            );
            if let ArrowType::Timestamp(_, tz) = base {
                style.zone = tz.as_deref().map(zone_suffix);
                style.date_only = all_midnight && style.zone.is_none();
                style.fraction_digits = finest;
            }
            frame.styles.push(style);
        }
        Ok(frame)
    }

    fn rows(&self) -> usize {
        self.lens.iter().sum()
    }

    /// Calls `f` on every cell of data column `k`, in row order.
    fn for_each(&self, k: usize, mut f: impl FnMut(Cell<'a>)) {
        for (cols, &n) in self.batches.iter().zip(&self.lens) {
            for i in 0..n {
                f(cols[k].cell(i));
            }
        }
    }

    /// Calls `f(row, column, cell)` row by row.
    fn for_each_row(
        &self,
        mut f: impl FnMut(usize, usize, Cell<'a>) -> Result<(), SerializeError>,
    ) -> Result<(), SerializeError> {
        let mut row = 0;
        for (cols, &n) in self.batches.iter().zip(&self.lens) {
            for i in 0..n {
                for (k, col) in cols.iter().enumerate() {
                    f(row, k, col.cell(i))?;
                }
                row += 1;
            }
        }
        Ok(())
    }
}

fn write_ymd(out: &mut Vec<u8>, days: i64) {
    use chrono::Datelike;
    use std::io::Write;
    match to_datetime(days, "[D]") {
        Some(d) => {
            let _ = write!(out, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day());
        }
        None => out.extend_from_slice(b"NaT"),
    }
}

/// pandas' text of a timestamp in a column of this style (`2025-01-01`,
/// `2025-01-02 12:00:00.500`, `2025-01-01 00:00:00+00:00`).
fn write_pandas_time(out: &mut Vec<u8>, v: i64, units: &str, style: &ColumnStyle) {
    use chrono::{Datelike, Timelike};
    use std::io::Write;
    let Some(dt) = to_datetime(v, units) else {
        return;
    };
    let _ = write!(out, "{:04}-{:02}-{:02}", dt.year(), dt.month(), dt.day());
    if style.date_only {
        return;
    }
    let _ = write!(
        out,
        " {:02}:{:02}:{:02}",
        dt.hour(),
        dt.minute(),
        dt.second()
    );
    let ns = dt.nanosecond();
    let _ = match style.fraction_digits {
        3 => write!(out, ".{:03}", ns / 1_000_000),
        6 => write!(out, ".{:06}", ns / 1000),
        9 => write!(out, ".{ns:09}"),
        _ => Ok(()),
    };
    if let Some(z) = &style.zone {
        out.extend_from_slice(z.as_bytes());
    }
}

/// pandas' `to_csv` text of one cell (missing values print as nothing).
fn csv_cell(out: &mut Vec<u8>, cell: Cell, style: &ColumnStyle, buf: &mut ryu::Buffer) {
    use std::io::Write;
    match cell {
        Cell::Null => {}
        Cell::Bool(b) => out.extend_from_slice(if b { b"True" } else { b"False" }),
        Cell::Int(v) if style.ints_as_floats => write_py_f64(out, v as f64, buf),
        Cell::UInt(v) if style.ints_as_floats => write_py_f64(out, v as f64, buf),
        Cell::Int(v) => {
            let _ = write!(out, "{v}");
        }
        Cell::UInt(v) => {
            let _ = write!(out, "{v}");
        }
        Cell::F64(v) if v.is_nan() => {}
        Cell::F32(v) if v.is_nan() => {}
        Cell::F64(v) => write_py_f64(out, v, buf),
        Cell::F32(v) => write_np_f32(out, v, buf),
        Cell::Str(s) => write_csv_field(out, s.as_bytes()),
        Cell::Time(v, u) => write_pandas_time(out, v, u, style),
        Cell::Date(d) => write_ymd(out, d),
    }
}

/// CSV with a header row and no index, values formatted as pandas' `to_csv` does.
pub fn to_csv(batches: &[RecordBatch], index: &[String]) -> Result<Vec<u8>, SerializeError> {
    to_csv_with_header(batches, index, true)
}

/// CSV as [`to_csv`], with the header row only when `header` (`text/csv;header=absent`).
pub fn to_csv_with_header(
    batches: &[RecordBatch],
    index: &[String],
    header: bool,
) -> Result<Vec<u8>, SerializeError> {
    let frame = Frame::new(batches, index, super::CSV)?;
    let ncols = frame.styles.len();
    let mut out = Vec::with_capacity(frame.rows() * ncols * 12 + 64);
    if header {
        for (i, s) in frame.styles.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_csv_field(&mut out, s.name.as_bytes());
        }
        out.push(b'\n');
    }
    let mut buf = ryu::Buffer::new();
    frame.for_each_row(|_, k, cell| {
        csv_cell(&mut out, cell, &frame.styles[k], &mut buf);
        out.push(if k + 1 == ncols { b'\n' } else { b',' });
        Ok(())
    })?;
    Ok(out)
}

/// Tiled's JSON rendering of one cell (pandas values made native, then orjson): floats with
/// float64 digits, NaN/NaT/None as `null`, timestamps via `Timestamp.isoformat()`.
fn json_cell(out: &mut Vec<u8>, cell: Cell, style: &ColumnStyle, buf: &mut ryu::Buffer) {
    use chrono::Timelike;
    use std::io::Write;
    match cell {
        Cell::Null => out.extend_from_slice(b"null"),
        Cell::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        Cell::Int(v) if style.ints_as_floats => write_json_f64(out, v as f64, buf),
        Cell::UInt(v) if style.ints_as_floats => write_json_f64(out, v as f64, buf),
        Cell::Int(v) => {
            let _ = write!(out, "{v}");
        }
        Cell::UInt(v) => {
            let _ = write!(out, "{v}");
        }
        Cell::F64(v) => write_json_f64(out, v, buf),
        Cell::F32(v) => write_json_f64(out, f64::from(v), buf),
        Cell::Str(s) => write_json_str(out, s),
        Cell::Time(v, u) => match to_datetime(v, u) {
            Some(dt) => {
                out.push(b'"');
                write_ymd_hms(out, &dt, 'T');
                let ns = dt.nanosecond();
                if ns % 1000 != 0 {
                    let _ = write!(out, ".{ns:09}");
                } else if ns != 0 {
                    let _ = write!(out, ".{:06}", ns / 1000);
                }
                if let Some(z) = &style.zone {
                    out.extend_from_slice(z.as_bytes());
                }
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        },
        Cell::Date(d) => {
            out.push(b'"');
            write_ymd(out, d);
            out.push(b'"');
        }
    }
}

/// Column-oriented JSON `{"A": [...], ...}` without the index (golden 122).
pub fn to_json(batches: &[RecordBatch], index: &[String]) -> Result<Vec<u8>, SerializeError> {
    let frame = Frame::new(batches, index, super::JSON)?;
    let mut out = Vec::with_capacity(frame.rows() * frame.styles.len() * 12 + 64);
    let mut buf = ryu::Buffer::new();
    out.push(b'{');
    for (k, style) in frame.styles.iter().enumerate() {
        if k > 0 {
            out.push(b',');
        }
        write_json_str(&mut out, &style.name);
        out.extend_from_slice(b":[");
        let mut first = true;
        frame.for_each(k, |cell| {
            if !first {
                out.push(b',');
            }
            first = false;
            json_cell(&mut out, cell, style, &mut buf);
        });
        out.push(b']');
    }
    out.push(b'}');
    Ok(out)
}

/// RFC 7464 JSON text sequence: `0x1E {row} \n` per row (golden 133); empty for no rows.
pub fn to_json_seq(batches: &[RecordBatch], index: &[String]) -> Result<Vec<u8>, SerializeError> {
    let frame = Frame::new(batches, index, super::JSON_SEQ)?;
    let ncols = frame.styles.len();
    let mut out = Vec::with_capacity(frame.rows() * (ncols * 16 + 4));
    let mut buf = ryu::Buffer::new();
    frame.for_each_row(|_, k, cell| {
        out.extend_from_slice(if k == 0 { b"\x1e{" } else { b"," });
        write_json_str(&mut out, &frame.styles[k].name);
        out.push(b':');
        json_cell(&mut out, cell, &frame.styles[k], &mut buf);
        if k + 1 == ncols {
            out.extend_from_slice(b"}\n");
        }
        Ok(())
    })?;
    Ok(out)
}

/// pandas' `_trim_zeros_float`: drop trailing zeros from every plain decimal as long as all
/// of them end in one, keeping one digit after the point.
fn trim_zeros(values: &mut [String]) {
    let is_decimal = |s: &str| {
        let t = s.trim_start_matches(['+', '-']);
        match t.split_once('.') {
            Some((i, f)) => {
                !i.is_empty()
                    && i.bytes().all(|c| c.is_ascii_digit())
                    && f.bytes().all(|c| c.is_ascii_digit())
            }
            None => false,
        }
    };
    loop {
        let mut numbers = values.iter().filter(|s| is_decimal(s)).peekable();
        if numbers.peek().is_none() || !numbers.all(|s| s.ends_with('0')) {
            break;
        }
        for s in values.iter_mut().filter(|s| is_decimal(s)) {
            s.pop();
        }
    }
    for s in values.iter_mut() {
        if is_decimal(s) && s.ends_with('.') {
            s.push('0');
        }
    }
}

/// Python's `'{:.6e}'` (`1.000000e-07`).
fn sci6(v: f64) -> String {
    let s = format!("{v:.6e}");
    match s.split_once('e') {
        Some((m, e)) => {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', e),
            };
            format!("{m}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

/// pandas' `to_html` float column formatting: 6 decimals with common trailing zeros trimmed,
/// switching the whole column to `%.6e` when a value would show as zero or is large and long.
fn html_floats(values: &[Option<f64>]) -> Vec<String> {
    let fmt_all = |f: &dyn Fn(f64) -> String| -> Vec<String> {
        let mut v: Vec<String> = values
            .iter()
            .map(|x| match x {
                None => "NaN".to_string(),
                Some(x) if x.is_nan() => "NaN".to_string(),
                Some(x) => f(*x),
            })
            .collect();
        trim_zeros(&mut v);
        v
    };
    let fixed = fmt_all(&|x| format!("{x:.6}"));
    let too_long = fixed.iter().map(String::len).max().unwrap_or(0) > 12;
    let finite = values.iter().flatten().filter(|x| x.is_finite());
    let large = finite.clone().any(|x| x.abs() > 1e6);
    let small = finite.clone().any(|x| x.abs() > 0.0 && x.abs() < 1e-6);
    if small || (too_long && large) {
        fmt_all(&sci6)
    } else {
        fixed
    }
}

/// An HTML table like pandas' `to_html(index=False)` (golden 132).
pub fn to_html(batches: &[RecordBatch], index: &[String]) -> Result<Vec<u8>, SerializeError> {
    use std::io::Write;
    let mut frame = Frame::new(batches, index, HTML)?;
    // Float columns are formatted as a whole, as pandas does.
    for k in 0..frame.styles.len() {
        let mut floats = Vec::new();
        let mut is_float = false;
        frame.for_each(k, |cell| match cell {
            Cell::F64(v) => {
                is_float = true;
                floats.push(Some(v));
            }
            Cell::F32(v) => {
                is_float = true;
                floats.push(Some(f64::from(v)));
            }
            Cell::Int(v) => floats.push(Some(v as f64)),
            Cell::UInt(v) => floats.push(Some(v as f64)),
            _ => floats.push(None),
        });
        if is_float || frame.styles[k].ints_as_floats {
            frame.styles[k].html_floats = Some(html_floats(&floats));
        }
    }
    let mut out = Vec::with_capacity(frame.rows() * frame.styles.len() * 24 + 256);
    out.extend_from_slice(
        b"<table border=\"1\" class=\"dataframe\">\n  <thead>\n    <tr style=\"text-align: right;\">\n",
    );
    for s in &frame.styles {
        out.extend_from_slice(b"      <th>");
        write_html_escaped(&mut out, s.name.as_bytes());
        out.extend_from_slice(b"</th>\n");
    }
    out.extend_from_slice(b"    </tr>\n  </thead>\n  <tbody>\n");
    let ncols = frame.styles.len();
    let mut text = Vec::new();
    frame.for_each_row(|row, k, cell| {
        if k == 0 {
            out.extend_from_slice(b"    <tr>\n");
        }
        let style = &frame.styles[k];
        text.clear();
        match (cell, &style.html_floats) {
            (Cell::F64(_) | Cell::F32(_) | Cell::Int(_) | Cell::UInt(_), Some(f))
            | (Cell::Null, Some(f)) => {
                text.extend_from_slice(f.get(row).map_or("NaN", String::as_str).as_bytes())
            }
            (Cell::Null, None) if style.is_time => text.extend_from_slice(b"NaT"),
            (Cell::Null, None) => text.extend_from_slice(b"None"),
            (Cell::Bool(b), _) => text.extend_from_slice(if b { b"True" } else { b"False" }),
            (Cell::Int(v), None) => {
                let _ = write!(text, "{v}");
            }
            (Cell::UInt(v), None) => {
                let _ = write!(text, "{v}");
            }
            (Cell::F64(v), None) => {
                let _ = write!(text, "{v:.6}");
            }
            (Cell::F32(v), None) => {
                let _ = write!(text, "{v:.6}");
            }
            (Cell::Str(s), _) => text.extend_from_slice(s.as_bytes()),
            (Cell::Time(v, u), _) => write_pandas_time(&mut text, v, u, style),
            (Cell::Date(d), _) => write_ymd(&mut text, d),
        }
        out.extend_from_slice(b"      <td>");
        write_html_escaped(&mut out, &text);
        out.extend_from_slice(b"</td>\n");
        if k + 1 == ncols {
            out.extend_from_slice(b"    </tr>\n");
        }
        Ok(())
    })?;
    out.extend_from_slice(b"  </tbody>\n</table>");
    Ok(out)
}

/// An Excel workbook with one sheet like pandas' `to_excel(index=False)`: a bold header row,
/// then the values (timestamps as Excel date-times, missing values as empty cells).
pub fn to_xlsx(batches: &[RecordBatch], index: &[String]) -> Result<Vec<u8>, SerializeError> {
    use rust_xlsxwriter::{ExcelDateTime, Format, FormatAlign, FormatBorder, Workbook};
    let frame = Frame::new(batches, index, XLSX)?;
    if frame.styles.len() > 16_384 {
        return Err(SerializeError::unsupported(
            XLSX,
            "Excel sheets hold at most 16384 columns",
        ));
    }
    if frame.rows() >= 1_048_576 {
        return Err(SerializeError::unsupported(
            XLSX,
            "Excel sheets hold at most 1048575 rows below the header",
        ));
    }
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    let header = Format::new()
        .set_bold()
        .set_border(FormatBorder::Thin)
        .set_align(FormatAlign::Center);
    let datetime = Format::new().set_num_format("yyyy-mm-dd hh:mm:ss");
    let date = Format::new().set_num_format("yyyy-mm-dd");
    for (k, s) in frame.styles.iter().enumerate() {
        sheet
            .write_string_with_format(0, k as u16, &s.name, &header)
            .map_err(SerializeError::encode)?;
    }
    let mut buf = ryu::Buffer::new();
    let mut text = Vec::new();
    frame.for_each_row(|row, k, cell| {
        let (r, c) = (row as u32 + 1, k as u16);
        let written = match cell {
            Cell::Null => return Ok(()),
            Cell::F64(v) if v.is_nan() => return Ok(()),
            Cell::F32(v) if v.is_nan() => return Ok(()),
            Cell::Bool(b) => sheet.write_boolean(r, c, b).map(|_| ()),
            Cell::Int(v) => sheet.write_number(r, c, v as f64).map(|_| ()),
            Cell::UInt(v) => sheet.write_number(r, c, v as f64).map(|_| ()),
            Cell::F64(v) => sheet.write_number(r, c, v).map(|_| ()),
            Cell::F32(v) => sheet.write_number(r, c, f64::from(v)).map(|_| ()),
            Cell::Str(s) => sheet.write_string(r, c, s).map(|_| ()),
            Cell::Time(v, u) => {
                let fmt = if frame.styles[k].date_only {
                    &date
                } else {
                    &datetime
                };
                match to_datetime(v, u)
                    .map(|d| ExcelDateTime::from_timestamp(d.and_utc().timestamp()))
                {
                    Some(Ok(dt)) => sheet.write_datetime_with_format(r, c, &dt, fmt).map(|_| ()),
                    None => return Ok(()),
                    // Outside Excel's calendar (before 1900): write the text instead.
                    Some(Err(_)) => {
                        text.clear();
                        csv_cell(&mut text, cell, &frame.styles[k], &mut buf);
                        sheet
                            .write_string(r, c, String::from_utf8_lossy(&text))
                            .map(|_| ())
                    }
                }
            }
            Cell::Date(d) => match ExcelDateTime::from_timestamp(d.saturating_mul(86_400)) {
                Ok(dt) => sheet
                    .write_datetime_with_format(r, c, &dt, &date)
                    .map(|_| ()),
                Err(_) => {
                    text.clear();
                    write_ymd(&mut text, d);
                    sheet
                        .write_string(r, c, String::from_utf8_lossy(&text))
                        .map(|_| ())
                }
            },
        };
        written.map_err(SerializeError::encode)
    })?;
    book.save_to_buffer().map_err(SerializeError::encode)
}

/// The CSV spellings clients ask for a table in (all give the same CSV).
pub use super::array::CSV_ALIASES;

/// Encodes table partitions (one schema) as `media`; `index` names the index columns (text
/// formats print them first, as pandas does), `csv_header` whether CSV has its header row.
pub fn encode(
    batches: Vec<RecordBatch>,
    index: Vec<String>,
    media: &str,
    csv_header: bool,
) -> Result<Vec<u8>, SerializeError> {
    match media {
        super::ARROW_FILE => to_arrow_file(&batches),
        super::PARQUET => to_parquet(&batches),
        super::JSON => to_json(&batches, &index),
        super::JSON_SEQ => to_json_seq(&batches, &index),
        super::XLSX => to_xlsx(&batches, &index),
        super::HTML => to_html(&batches, &index),
        super::HDF5 => super::hdf5::to_hdf5(&super::hdf5::H5Node::Table {
            batches,
            index_columns: index,
            attrs: Default::default(),
        }),
        m if CSV_ALIASES.contains(&m) => to_csv_with_header(&batches, &index, csv_header),
        other => Err(SerializeError::Unsupported {
            media_type: other.to_string(),
            reason: "tables cannot be encoded in this format".to_string(),
        }),
    }
}

/// Keeps the requested `columns` of a batch (all for `None`), in the order asked for, then
/// the index columns (which Arrow output carries and text encoders drop).
pub fn project(
    batch: RecordBatch,
    columns: Option<&[String]>,
    index: &[String],
) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let Some(cols) = columns else {
        return Ok(batch);
    };
    let schema = batch.schema();
    let mut keep = Vec::new();
    for name in cols.iter().chain(index) {
        if let Ok(i) = schema.index_of(name)
            && !keep.contains(&i)
        {
            keep.push(i);
        }
    }
    batch.project(&keep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{
        BooleanArray, Float32Array, Float64Array, Int64Array, LargeStringArray, StringArray,
        TimestampNanosecondArray, TimestampSecondArray, UInt8Array,
    };

    const GOLDEN_033_SCHEMA: &str = "/////xgFAAAQAAAAAAAKAA4ABgAFAAgACgAAAAABBAAQAAAAAAAKAAwAAAAEAAgACgAAALwDAAAEAAAAAQAAAAwAAAAIAAwABAAIAAgAAACUAwAABAAAAIQDAAB7ImluZGV4X2NvbHVtbnMiOiBbImluZGV4Il0sICJjb2x1bW5faW5kZXhlcyI6IFt7Im5hbWUiOiBudWxsLCAiZmllbGRfbmFtZSI6IG51bGwsICJwYW5kYXNfdHlwZSI6ICJ1bmljb2RlIiwgIm51bXB5X3R5cGUiOiAib2JqZWN0IiwgIm1ldGFkYXRhIjogeyJlbmNvZGluZyI6ICJVVEYtOCJ9fV0sICJjb2x1bW5zIjogW3sibmFtZSI6ICJBIiwgImZpZWxkX25hbWUiOiAiQSIsICJwYW5kYXNfdHlwZSI6ICJ1aW50OCIsICJudW1weV90eXBlIjogInVpbnQ4IiwgIm1ldGFkYXRhIjogbnVsbH0sIHsibmFtZSI6ICJCIiwgImZpZWxkX25hbWUiOiAiQiIsICJwYW5kYXNfdHlwZSI6ICJmbG9hdDY0IiwgIm51bXB5X3R5cGUiOiAiZmxvYXQ2NCIsICJtZXRhZGF0YSI6IG51bGx9LCB7Im5hbWUiOiAiQyIsICJmaWVsZF9uYW1lIjogIkMiLCAicGFuZGFzX3R5cGUiOiAib2JqZWN0IiwgIm51bXB5X3R5cGUiOiAic3RyaW5nIiwgIm1ldGFkYXRhIjogbnVsbH0sIHsibmFtZSI6ICJEIiwgImZpZWxkX25hbWUiOiAiRCIsICJwYW5kYXNfdHlwZSI6ICJkYXRldGltZSIsICJudW1weV90eXBlIjogImRhdGV0aW1lNjRbc10iLCAibWV0YWRhdGEiOiBudWxsfSwgeyJuYW1lIjogIkUiLCAiZmllbGRfbmFtZSI6ICJFIiwgInBhbmRhc190eXBlIjogImJvb2wiLCAibnVtcHlfdHlwZSI6ICJib29sIiwgIm1ldGFkYXRhIjogbnVsbH0sIHsibmFtZSI6ICJpbmRleCIsICJmaWVsZF9uYW1lIjogImluZGV4IiwgInBhbmRhc190eXBlIjogImludDY0IiwgIm51bXB5X3R5cGUiOiAiaW50NjQiLCAibWV0YWRhdGEiOiBudWxsfV0sICJhdHRyaWJ1dGVzIjoge30sICJjcmVhdG9yIjogeyJsaWJyYXJ5IjogInB5YXJyb3ciLCAidmVyc2lvbiI6ICIyNi4wLjEifSwgInBhbmRhc192ZXJzaW9uIjogIjIuMy4zIn0AAAAABgAAAHBhbmRhcwAABgAAAPwAAAC8AAAAkAAAAGgAAABAAAAABAAAACz///8AAAECEAAAACAAAAAEAAAAAAAAAAUAAABpbmRleAAAAAgADAAIAAcACAAAAAAAAAFAAAAAZP///wAAAQYQAAAAFAAAAAQAAAAAAAAAAQAAAEUAAAC4////iP///wAAAQoQAAAAFAAAAAQAAAAAAAAAAQAAAEQAAADc////rP///wAAARQQAAAAGAAAAAQAAAAAAAAAAQAAAEMAAAAEAAQABAAAANT///8AAAEDEAAAABgAAAAEAAAAAAAAAAEAAABCAAYACAAGAAYAAAAAAAIAEAAUAAgABgAHAAwAAAAQABAAAAAAAAECEAAAABgAAAAEAAAAAAAAAAEAAABBAAYACAAEAAYAAAAIAAAAAAAAAA==";

    fn golden_schema() -> Schema {
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(GOLDEN_033_SCHEMA)
            .unwrap();
        arrow_ipc::convert::try_schema_from_ipc_buffer(&raw).unwrap()
    }

    /// The first rows of the demo's short_table (goldens 121, 122, 132), in its real schema.
    fn short_table() -> Vec<RecordBatch> {
        let day0 = 1_735_689_600;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(UInt8Array::from(vec![5, 9, 3])),
            Arc::new(Float64Array::from(vec![
                0.053270493200422764,
                0.8720061204820203,
                0.5393129743894212,
            ])),
            Arc::new(LargeStringArray::from(vec!["yyy", "lll", "ddd"])),
            Arc::new(TimestampSecondArray::from(vec![
                day0,
                day0 + 86_400,
                day0 + 2 * 86_400,
            ])),
            Arc::new(BooleanArray::from(vec![false, true, false])),
            Arc::new(Int64Array::from(vec![0, 1, 2])),
        ];
        let schema = Arc::new(golden_schema());
        let batch = RecordBatch::try_new(schema, columns).unwrap();
        // Two partitions, as a partitioned table arrives.
        vec![batch.slice(0, 2), batch.slice(2, 1)]
    }

    fn idx() -> Vec<String> {
        vec!["index".to_string()]
    }

    #[test]
    fn golden_schema_describes_short_table() {
        let s = golden_schema();
        let names: Vec<_> = s.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["A", "B", "C", "D", "E", "index"]);
        assert!(s.metadata().contains_key("pandas"));
    }

    #[test]
    fn schema_data_uri_round_trips_like_pyarrow() {
        use base64::Engine;
        let schema = golden_schema();
        let uri = arrow_schema_data_uri(&schema).unwrap();
        let b64 = uri
            .strip_prefix("data:application/vnd.apache.arrow.file;base64,")
            .unwrap();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        // An encapsulated message: continuation marker, then the flatbuffer length.
        assert_eq!(&raw[..4], &[0xff; 4]);
        assert_eq!(raw.len() % 8, 0);
        let back = arrow_ipc::convert::try_schema_from_ipc_buffer(&raw).unwrap();
        assert_eq!(back, schema);
    }

    #[test]
    fn csv_matches_golden_121() {
        let csv = String::from_utf8(to_csv(&short_table(), &idx()).unwrap()).unwrap();
        assert_eq!(
            csv,
            "A,B,C,D,E\n\
             5,0.053270493200422764,yyy,2025-01-01,False\n\
             9,0.8720061204820203,lll,2025-01-02,True\n\
             3,0.5393129743894212,ddd,2025-01-03,False\n"
        );
        let bare = to_csv_with_header(&short_table(), &idx(), false).unwrap();
        assert!(bare.starts_with(b"5,0.05"));
    }

    #[test]
    fn json_matches_golden_122() {
        let json = String::from_utf8(to_json(&short_table(), &idx()).unwrap()).unwrap();
        assert_eq!(
            json,
            "{\"A\":[5,9,3],\"B\":[0.053270493200422764,0.8720061204820203,0.5393129743894212],\
             \"C\":[\"yyy\",\"lll\",\"ddd\"],\"D\":[\"2025-01-01T00:00:00\",\"2025-01-02T00:00:00\",\
             \"2025-01-03T00:00:00\"],\"E\":[false,true,false]}"
        );
    }

    #[test]
    fn json_seq_matches_golden_133() {
        let t = short_table();
        let only_a: Vec<RecordBatch> = t.iter().map(|b| b.project(&[0]).unwrap()).collect();
        assert_eq!(
            to_json_seq(&only_a, &[]).unwrap(),
            b"\x1e{\"A\":5}\n\x1e{\"A\":9}\n\x1e{\"A\":3}\n"
        );
        let empty = vec![t[0].slice(0, 0)];
        assert!(to_json_seq(&empty, &idx()).unwrap().is_empty());
    }

    #[test]
    fn html_matches_golden_132() {
        let html = String::from_utf8(to_html(&short_table(), &idx()).unwrap()).unwrap();
        let row = |a: &str, b: &str, c: &str, d: &str, e: &str| {
            format!(
                "    <tr>\n      <td>{a}</td>\n      <td>{b}</td>\n      <td>{c}</td>\n      \
                 <td>{d}</td>\n      <td>{e}</td>\n    </tr>\n"
            )
        };
        let expected = format!(
            "<table border=\"1\" class=\"dataframe\">\n  <thead>\n    <tr style=\"text-align: right;\">\n\
             \x20     <th>A</th>\n      <th>B</th>\n      <th>C</th>\n      <th>D</th>\n      <th>E</th>\n\
             \x20   </tr>\n  </thead>\n  <tbody>\n{}{}{}  </tbody>\n</table>",
            row("5", "0.053270", "yyy", "2025-01-01", "False"),
            row("9", "0.872006", "lll", "2025-01-02", "True"),
            row("3", "0.539313", "ddd", "2025-01-03", "False"),
        );
        assert_eq!(html, expected);
    }

    /// A frame whose pandas renderings were printed by pandas 2.3 (to_csv, to_html) and by
    /// tiled's JSON encoder.
    fn mixed() -> Vec<RecordBatch> {
        let day0 = 1_735_689_600i64;
        let ns = 1_000_000_000i64;
        let cols: Vec<(&str, ArrayRef)> = vec![
            (
                "a",
                Arc::new(Float64Array::from(vec![Some(0.5), Some(1.0), None])),
            ),
            ("b", Arc::new(Float32Array::from(vec![0.1, 1e16, 2.5]))),
            (
                "c",
                Arc::new(StringArray::from(vec![Some("x"), None, Some("a<b")])),
            ),
            (
                "d",
                Arc::new(TimestampNanosecondArray::from(vec![
                    Some((day0 + 1) * ns),
                    Some((day0 + 86_400 + 43_200) * ns + ns / 2),
                    None,
                ])),
            ),
            ("e", Arc::new(Float64Array::from(vec![1e-7, 1.0, 2.0]))),
            (
                "f",
                Arc::new(Float64Array::from(vec![123456789.125, 1.0, 2.0])),
            ),
            ("h", Arc::new(BooleanArray::from(vec![true, false, true]))),
            (
                "i",
                Arc::new(
                    TimestampSecondArray::from(vec![day0, day0 + 86_400, day0 + 2 * 86_400])
                        .with_timezone("UTC"),
                ),
            ),
        ];
        vec![RecordBatch::try_from_iter(cols).unwrap()]
    }

    #[test]
    fn csv_follows_pandas_for_missing_values_precision_and_zones() {
        let csv = String::from_utf8(to_csv(&mixed(), &[]).unwrap()).unwrap();
        assert_eq!(
            csv,
            "a,b,c,d,e,f,h,i\n\
             0.5,0.1,x,2025-01-01 00:00:01.000,1e-07,123456789.125,True,2025-01-01 00:00:00+00:00\n\
             1.0,1e+16,,2025-01-02 12:00:00.500,1.0,1.0,False,2025-01-02 00:00:00+00:00\n\
             ,2.5,a<b,,2.0,2.0,True,2025-01-03 00:00:00+00:00\n"
        );
    }

    #[test]
    fn json_follows_tiled_for_missing_values_and_float32() {
        let json = String::from_utf8(to_json(&mixed(), &[]).unwrap()).unwrap();
        assert_eq!(
            json,
            "{\"a\":[0.5,1.0,null],\"b\":[0.10000000149011612,1.0000000272564224e+16,2.5],\
             \"c\":[\"x\",null,\"a<b\"],\"d\":[\"2025-01-01T00:00:01\",\"2025-01-02T12:00:00.500000\",null],\
             \"e\":[1e-7,1.0,2.0],\"f\":[123456789.125,1.0,2.0],\"h\":[true,false,true],\
             \"i\":[\"2025-01-01T00:00:00+00:00\",\"2025-01-02T00:00:00+00:00\",\"2025-01-03T00:00:00+00:00\"]}"
        );
    }

    #[test]
    fn html_formats_float_columns_like_pandas() {
        let html = String::from_utf8(to_html(&mixed(), &[]).unwrap()).unwrap();
        let cells: Vec<&str> = html
            .split("<td>")
            .skip(1)
            .map(|s| s.split("</td>").next().unwrap())
            .collect();
        assert_eq!(
            cells,
            [
                "0.5",
                "1.000000e-01",
                "x",
                "2025-01-01 00:00:01.000",
                "1.000000e-07",
                "1.234568e+08",
                "True",
                "2025-01-01 00:00:00+00:00", //
                "1.0",
                "1.000000e+16",
                "None",
                "2025-01-02 12:00:00.500",
                "1.000000e+00",
                "1.000000e+00",
                "False",
                "2025-01-02 00:00:00+00:00", //
                "NaN",
                "2.500000e+00",
                "a&lt;b",
                "NaT",
                "2.000000e+00",
                "2.000000e+00",
                "True",
                "2025-01-03 00:00:00+00:00",
            ]
        );
        // More pandas cases: [0.25, 1e6+1] stays fixed; [1e-6, 1.0] too.
        assert_eq!(
            html_floats(&[Some(0.25), Some(1_000_001.0)]),
            ["0.25", "1000001.00"]
        );
        assert_eq!(
            html_floats(&[Some(1e-6), Some(1.0)]),
            ["0.000001", "1.000000"]
        );
        assert_eq!(
            html_floats(&[Some(0.1234565), Some(0.0)]),
            ["0.123456", "0.000000"]
        );
    }

    #[test]
    fn integer_columns_with_nulls_print_as_floats() {
        let b = RecordBatch::try_from_iter([(
            "g",
            Arc::new(Int64Array::from(vec![Some(1), None, Some(3)])) as ArrayRef,
        )])
        .unwrap();
        assert_eq!(
            to_csv(std::slice::from_ref(&b), &[]).unwrap(),
            b"g\n1.0\n\n3.0\n"
        );
        assert_eq!(to_json(&[b], &[]).unwrap(), b"{\"g\":[1.0,null,3.0]}");
    }

    #[test]
    fn dictionary_columns_render_their_values() {
        use arrow_array::DictionaryArray;
        use arrow_array::types::Int8Type;
        let d: DictionaryArray<Int8Type> = vec![Some("a"), None, Some("b"), Some("a")]
            .into_iter()
            .collect();
        let b = RecordBatch::try_from_iter([("cat", Arc::new(d) as ArrayRef)]).unwrap();
        assert_eq!(
            to_csv(std::slice::from_ref(&b), &[]).unwrap(),
            b"cat\na\n\nb\na\n"
        );
        assert_eq!(
            to_json(&[b], &[]).unwrap(),
            b"{\"cat\":[\"a\",null,\"b\",\"a\"]}"
        );
    }

    #[test]
    fn unsupported_column_types_are_refused() {
        let list = arrow_array::ListArray::from_iter_primitive::<Int64Type, _, _>(vec![Some(
            vec![Some(1)],
        )]);
        let b = RecordBatch::try_from_iter([("l", Arc::new(list) as ArrayRef)]).unwrap();
        assert!(matches!(
            to_csv(&[b], &[]),
            Err(SerializeError::Unsupported { .. })
        ));
        assert!(matches!(to_csv(&[], &[]), Err(SerializeError::Encode(_))));
    }

    #[test]
    fn arrow_file_reads_back_with_metadata() {
        let t = short_table();
        let arrow = to_arrow_file(&t).unwrap();
        assert_eq!(&arrow[..6], b"ARROW1");
        let reader =
            arrow_ipc::reader::FileReader::try_new(std::io::Cursor::new(arrow), None).unwrap();
        assert!(reader.schema().metadata().contains_key("pandas"));
        let batches: Vec<_> = reader.map(|b| b.unwrap()).collect();
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0], t[0]);
        assert_eq!(batches[1], t[1]);
    }

    #[test]
    fn parquet_reads_back_with_millisecond_timestamps() {
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let pq = to_parquet(&short_table()).unwrap();
        assert_eq!(&pq[..4], b"PAR1");
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(pq)).unwrap();
        assert!(builder.schema().metadata().contains_key("pandas"));
        let batches: Vec<_> = builder.build().unwrap().map(|b| b.unwrap()).collect();
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows, 3);
        let d = batches[0].column_by_name("D").unwrap();
        assert_eq!(
            d.data_type(),
            &ArrowType::Timestamp(TimeUnit::Millisecond, None)
        );
        let d = d.as_primitive::<TimestampMillisecondType>();
        assert_eq!(d.value(1), (1_735_689_600 + 86_400) * 1000);
        let b = batches[0]
            .column_by_name("B")
            .unwrap()
            .as_primitive::<Float64Type>();
        assert_eq!(b.value(0), 0.053270493200422764);
    }

    #[test]
    fn xlsx_holds_header_and_values() {
        use std::io::Read;
        let x = to_xlsx(&short_table(), &idx()).unwrap();
        let mut zip = ::zip::ZipArchive::new(std::io::Cursor::new(x)).unwrap();
        let mut sheet = String::new();
        zip.by_name("xl/worksheets/sheet1.xml")
            .unwrap()
            .read_to_string(&mut sheet)
            .unwrap();
        // Three data rows below the header, five columns (no index).
        assert!(sheet.contains("<dimension ref=\"A1:E4\"/>"), "{sheet}");
        assert!(sheet.contains("<v>0.053270493200422764</v>"));
        // 2025-01-01 is Excel serial day 45658.
        assert!(sheet.contains("<v>45658</v>"));
        let mut strings = String::new();
        zip.by_name("xl/sharedStrings.xml")
            .unwrap()
            .read_to_string(&mut strings)
            .unwrap();
        assert!(strings.contains("<t>yyy</t>") && strings.contains("<t>A</t>"));
        assert!(!strings.contains("<t>index</t>"));
    }
}
