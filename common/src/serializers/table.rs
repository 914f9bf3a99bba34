//! Table encoders over Arrow record batches: Arrow IPC file and Parquet keep the schema (and
//! its pandas metadata); CSV, JSON, JSON-seq, XLSX and HTML render the data columns the way
//! pandas does for Tiled, without the index columns.

use std::sync::Arc;

use arrow_array::{Array, RecordBatch};
use arrow_schema::Schema;

use super::SerializeError;
use super::text::{csv_field, html_escape, is_midnight, iso_datetime, pandas_datetime};
use crate::adapters::table_column::{arrow_to_array, numpy_type};
use crate::array::{ArrayData, Scalar, py_float_repr};
use crate::dtype::{DataType, Kind};

/// `data:application/vnd.apache.arrow.file;base64,` + the IPC-encapsulated schema message.
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

/// The Arrow IPC **file** format (what the Tiled client opens with `pyarrow.ipc.open_file`).
pub fn to_arrow_file(batches: &[RecordBatch]) -> Result<Vec<u8>, SerializeError> {
    let schema = schema_of(batches)?;
    let mut w = arrow_ipc::writer::FileWriter::try_new(Vec::new(), &schema)
        .map_err(SerializeError::encode)?;
    for b in batches {
        w.write(b).map_err(SerializeError::encode)?;
    }
    w.finish().map_err(SerializeError::encode)?;
    w.into_inner().map_err(SerializeError::encode)
}

/// Parquet has no second-resolution timestamps: like pyarrow, store them as milliseconds.
fn seconds_to_millis(batch: &RecordBatch) -> Result<RecordBatch, SerializeError> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::TimestampSecondType;
    use arrow_schema::{DataType as T, Field, TimeUnit};
    let schema = batch.schema();
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (f, col) in schema.fields().iter().zip(batch.columns()) {
        match f.data_type() {
            T::Timestamp(TimeUnit::Second, tz) => {
                let ms: arrow_array::TimestampMillisecondArray = col
                    .as_primitive::<TimestampSecondType>()
                    .unary(|s| s.saturating_mul(1000));
                let ms = ms.with_timezone_opt(tz.clone());
                fields.push(Field::new(
                    f.name(),
                    ms.data_type().clone(),
                    f.is_nullable(),
                ));
                columns.push(Arc::new(ms) as arrow_array::ArrayRef);
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

/// Parquet, one row group per partition.
pub fn to_parquet(batches: &[RecordBatch]) -> Result<Vec<u8>, SerializeError> {
    let batches = batches
        .iter()
        .map(seconds_to_millis)
        .collect::<Result<Vec<_>, _>>()?;
    let batches = &batches[..];
    let schema = schema_of(batches)?;
    let mut out = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, schema, None)
        .map_err(SerializeError::encode)?;
    for b in batches {
        w.write(b).map_err(SerializeError::encode)?;
    }
    w.close().map_err(SerializeError::encode)?;
    Ok(out)
}

/// One data column decoded to numpy-typed values.
struct Column {
    name: String,
    values: Vec<ArrayData>,
    /// datetime columns at midnight everywhere print as dates (pandas' rule).
    date_only: bool,
}

impl Column {
    fn len(&self) -> usize {
        self.values.iter().map(ArrayData::len).sum()
    }

    fn get(&self, mut i: usize) -> Result<Scalar, SerializeError> {
        for part in &self.values {
            if i < part.len() {
                return part.scalar(i).map_err(SerializeError::encode);
            }
            i -= part.len();
        }
        Err(SerializeError::encode(
            "row index past the end of the column",
        ))
    }
}

/// The data columns (index columns dropped), each converted from Arrow to numpy types.
fn columns(batches: &[RecordBatch], index: &[String]) -> Result<Vec<Column>, SerializeError> {
    let schema = schema_of(batches)?;
    let mut out = Vec::new();
    for (c, field) in schema.fields().iter().enumerate() {
        if index.contains(field.name()) {
            continue;
        }
        let mut dtype = numpy_type(field.data_type())
            .map_err(|e| SerializeError::unsupported("table", e.to_string()))?;
        if let DataType::Builtin(b) = &mut dtype
            && b.kind == Kind::Unicode
        {
            let widest = batches
                .iter()
                .filter_map(|b| {
                    let col = b.column(c);
                    let strings: Vec<Option<&str>> = match col.data_type() {
                        arrow_schema::DataType::Utf8 => {
                            arrow_array::cast::AsArray::as_string::<i32>(col)
                                .iter()
                                .collect()
                        }
                        _ => arrow_array::cast::AsArray::as_string::<i64>(col)
                            .iter()
                            .collect(),
                    };
                    strings
                        .iter()
                        .map(|s| s.map_or(0, |s| s.chars().count()))
                        .max()
                })
                .max()
                .unwrap_or(1);
            b.itemsize = 4 * widest.max(1);
        }
        let values = batches
            .iter()
            .map(|b| arrow_to_array(b.column(c), &dtype))
            .collect::<Result<Vec<_>, _>>()
            .map_err(SerializeError::encode)?;
        let mut col = Column {
            name: field.name().clone(),
            values,
            date_only: false,
        };
        if let DataType::Builtin(b) = &dtype
            && b.kind == Kind::DateTime
        {
            let units = b.dt_units.clone().unwrap_or_default();
            let mut all = true;
            for i in 0..col.len() {
                if let Scalar::DateTime(v, _) = col.get(i)?
                    && !is_midnight(v, &units)
                {
                    all = false;
                    break;
                }
            }
            col.date_only = all;
        }
        out.push(col);
    }
    Ok(out)
}

fn rows(cols: &[Column]) -> usize {
    cols.first().map_or(0, Column::len)
}

/// pandas' text for one cell (CSV and HTML); `float` formats floats.
fn cell_text(s: &Scalar, date_only: bool, float: &dyn Fn(f64) -> String) -> String {
    match s {
        Scalar::Bool(b) => if *b { "True" } else { "False" }.to_string(),
        Scalar::Int(i) => i.to_string(),
        Scalar::UInt(u) => u.to_string(),
        Scalar::Float(f) if f.is_nan() => String::new(),
        Scalar::Float(f) => float(*f),
        Scalar::DateTime(v, u) => pandas_datetime(*v, u, date_only),
        Scalar::Str(s) => s.clone(),
        Scalar::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        other => format!("{other:?}"),
    }
}

fn json_cell(s: &Scalar) -> serde_json::Value {
    use serde_json::Value;
    match s {
        Scalar::Bool(b) => Value::Bool(*b),
        Scalar::Int(i) => Value::from(*i),
        Scalar::UInt(u) => Value::from(*u),
        Scalar::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Scalar::DateTime(v, u) => iso_datetime(*v, u).map_or(Value::Null, Value::String),
        Scalar::Str(s) => Value::String(s.clone()),
        Scalar::Bytes(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        other => Value::String(format!("{other:?}")),
    }
}

/// CSV with a header row and no index, values formatted as pandas' `to_csv` does.
pub fn to_csv(batches: &[RecordBatch], index: &[String]) -> Result<Vec<u8>, SerializeError> {
    let cols = columns(batches, index)?;
    let mut s = String::new();
    for (i, c) in cols.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        csv_field(&c.name, &mut s);
    }
    s.push('\n');
    for r in 0..rows(&cols) {
        for (i, c) in cols.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            csv_field(&cell_text(&c.get(r)?, c.date_only, &py_float_repr), &mut s);
        }
        s.push('\n');
    }
    Ok(s.into_bytes())
}

/// Column-oriented JSON `{"A": [...], ...}` without the index; NaN as null.
pub fn to_json(batches: &[RecordBatch], index: &[String]) -> Result<Vec<u8>, SerializeError> {
    let cols = columns(batches, index)?;
    let mut m = serde_json::Map::new();
    for c in &cols {
        let values = (0..c.len())
            .map(|r| c.get(r).map(|v| json_cell(&v)))
            .collect::<Result<Vec<_>, _>>()?;
        m.insert(c.name.clone(), serde_json::Value::Array(values));
    }
    serde_json::to_vec(&m).map_err(SerializeError::encode)
}

/// RFC 7464 JSON text sequence: `0x1E {row} \n` per row.
pub fn to_json_seq(batches: &[RecordBatch], index: &[String]) -> Result<Vec<u8>, SerializeError> {
    let cols = columns(batches, index)?;
    let mut out = Vec::new();
    for r in 0..rows(&cols) {
        let mut m = serde_json::Map::new();
        for c in &cols {
            m.insert(c.name.clone(), json_cell(&c.get(r)?));
        }
        out.push(0x1e);
        serde_json::to_writer(&mut out, &m).map_err(SerializeError::encode)?;
        out.push(b'\n');
    }
    Ok(out)
}

/// An HTML table like pandas' `to_html(index=False)` (floats to 6 decimals).
pub fn to_html(batches: &[RecordBatch], index: &[String]) -> Result<Vec<u8>, SerializeError> {
    let cols = columns(batches, index)?;
    let mut s = String::from(
        "<table border=\"1\" class=\"dataframe\">\n  <thead>\n    <tr style=\"text-align: right;\">\n",
    );
    for c in &cols {
        s.push_str(&format!("      <th>{}</th>\n", html_escape(&c.name)));
    }
    s.push_str("    </tr>\n  </thead>\n  <tbody>\n");
    let six = |f: f64| format!("{f:.6}");
    for r in 0..rows(&cols) {
        s.push_str("    <tr>\n");
        for c in &cols {
            let text = cell_text(&c.get(r)?, c.date_only, &six);
            s.push_str(&format!("      <td>{}</td>\n", html_escape(&text)));
        }
        s.push_str("    </tr>\n");
    }
    s.push_str("  </tbody>\n</table>");
    Ok(s.into_bytes())
}

/// An Excel workbook with one sheet: a header row, then the values (datetimes as Excel
/// dates).
pub fn to_xlsx(batches: &[RecordBatch], index: &[String]) -> Result<Vec<u8>, SerializeError> {
    use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
    let cols = columns(batches, index)?;
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    let date_format = Format::new().set_num_format("yyyy-mm-dd hh:mm:ss");
    for (ci, c) in cols.iter().enumerate() {
        let col = u16::try_from(ci).map_err(|_| {
            SerializeError::unsupported("xlsx", "Excel sheets hold at most 16384 columns")
        })?;
        sheet
            .write_string(0, col, &c.name)
            .map_err(SerializeError::encode)?;
        for r in 0..c.len() {
            let row = u32::try_from(r + 1).map_err(|_| {
                SerializeError::unsupported("xlsx", "Excel sheets hold at most 1048576 rows")
            })?;
            let result = match c.get(r)? {
                Scalar::Bool(b) => sheet.write_boolean(row, col, b).map(|_| ()),
                Scalar::Int(i) => sheet.write_number(row, col, i as f64).map(|_| ()),
                Scalar::UInt(u) => sheet.write_number(row, col, u as f64).map(|_| ()),
                Scalar::Float(f) if f.is_nan() => Ok(()),
                Scalar::Float(f) => sheet.write_number(row, col, f).map(|_| ()),
                Scalar::DateTime(v, u) => match iso_datetime(v, &u) {
                    Some(iso) => match ExcelDateTime::parse_from_str(&iso[..19.min(iso.len())]) {
                        Ok(dt) => sheet
                            .write_datetime_with_format(row, col, &dt, &date_format)
                            .map(|_| ()),
                        Err(_) => sheet.write_string(row, col, &iso).map(|_| ()),
                    },
                    None => Ok(()),
                },
                other => sheet
                    .write_string(row, col, cell_text(&other, false, &py_float_repr))
                    .map(|_| ()),
            };
            result.map_err(SerializeError::encode)?;
        }
    }
    book.save_to_buffer().map_err(SerializeError::encode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{
        ArrayRef, BooleanArray, Float64Array, Int64Array, LargeStringArray, TimestampSecondArray,
    };

    fn table() -> Vec<RecordBatch> {
        let cols: Vec<(&str, ArrayRef)> = vec![
            ("A", Arc::new(Int64Array::from(vec![5, 9]))),
            ("B", Arc::new(Float64Array::from(vec![0.5, f64::NAN]))),
            ("C", Arc::new(LargeStringArray::from(vec!["a,b", "yyy"]))),
            (
                "D",
                Arc::new(TimestampSecondArray::from(vec![
                    1_735_689_600,
                    1_735_776_000,
                ])),
            ),
            ("E", Arc::new(BooleanArray::from(vec![false, true]))),
            ("index", Arc::new(Int64Array::from(vec![0, 1]))),
        ];
        vec![RecordBatch::try_from_iter(cols).unwrap()]
    }

    fn idx() -> Vec<String> {
        vec!["index".to_string()]
    }

    #[test]
    fn csv_is_pandas_like_without_index() {
        let csv = String::from_utf8(to_csv(&table(), &idx()).unwrap()).unwrap();
        assert_eq!(
            csv,
            "A,B,C,D,E\n5,0.5,\"a,b\",2025-01-01,False\n9,,yyy,2025-01-02,True\n"
        );
    }

    #[test]
    fn json_is_column_oriented() {
        let v: serde_json::Value =
            serde_json::from_slice(&to_json(&table(), &idx()).unwrap()).unwrap();
        assert_eq!(v["A"], serde_json::json!([5, 9]));
        assert_eq!(v["B"], serde_json::json!([0.5, null]));
        assert_eq!(v["D"][0], "2025-01-01T00:00:00");
        assert!(v.get("index").is_none());
    }

    #[test]
    fn json_seq_has_record_separators() {
        let out = to_json_seq(&table(), &idx()).unwrap();
        assert_eq!(out[0], 0x1e);
        assert_eq!(out.iter().filter(|&&b| b == 0x1e).count(), 2);
    }

    #[test]
    fn arrow_and_parquet_read_back() {
        let t = table();
        let arrow = to_arrow_file(&t).unwrap();
        let reader =
            arrow_ipc::reader::FileReader::try_new(std::io::Cursor::new(arrow), None).unwrap();
        let batches: Vec<_> = reader.map(|b| b.unwrap()).collect();
        assert_eq!(batches[0].num_rows(), 2);
        assert_eq!(batches[0].num_columns(), 6);
        let pq = to_parquet(&t).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            bytes::Bytes::from(pq),
        )
        .unwrap()
        .build()
        .unwrap();
        let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rows, 2);
    }

    #[test]
    fn html_and_xlsx_render() {
        let html = String::from_utf8(to_html(&table(), &idx()).unwrap()).unwrap();
        assert!(html.contains("<th>A</th>") && html.contains("<td>0.500000</td>"));
        assert!(html.contains("a,b") && !html.contains("<th>index</th>"));
        let xlsx = to_xlsx(&table(), &idx()).unwrap();
        assert_eq!(&xlsx[..2], b"PK");
    }

    #[test]
    fn schema_data_uri_decodes_to_an_ipc_schema() {
        use base64::Engine;
        let t = table();
        let uri = arrow_schema_data_uri(&t[0].schema()).unwrap();
        let b64 = uri
            .strip_prefix("data:application/vnd.apache.arrow.file;base64,")
            .unwrap();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(&raw[..4], &[0xff, 0xff, 0xff, 0xff]);
    }
}
