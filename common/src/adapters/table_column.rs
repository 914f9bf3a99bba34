//! A table column seen as a 1-D array (Tiled exposes `table/column` as an array node): one
//! chunk per partition, values converted from Arrow to the numpy type pandas would give.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType as ArrowType, TimeUnit};
use serde_json::{Map, Value};

use super::{Adapter, AdapterError, ArrayReader, DataSource, Management, TableReader};
use crate::array::{ArrayData, encode_unicode};
use crate::dtype::{BuiltinDType, DataType, Kind};
use crate::structure::{ArrayStructure, StructureFamily};

/// The mimetype of a column-of-a-table data source.
pub const MIMETYPE: &str = "application/x-tessera-table-column";

/// The data source of column `column` of the table stored in `table`, typed `dtype`.
pub fn column_source(table: &DataSource, column: &str, dtype: &DataType) -> DataSource {
    let mut parameters = Map::new();
    parameters.insert(
        "table".into(),
        serde_json::to_value(table).unwrap_or(Value::Null),
    );
    parameters.insert("column".into(), Value::String(column.into()));
    parameters.insert(
        "dtype".into(),
        serde_json::to_value(dtype).unwrap_or(Value::Null),
    );
    DataSource {
        structure_family: StructureFamily::Array,
        mimetype: MIMETYPE.to_string(),
        parameters,
        assets: Vec::new(),
        management: Management::Immutable,
    }
}

/// Opens a column data source.
pub fn open(source: &DataSource) -> Result<Adapter, AdapterError> {
    let bad = |what: &str| AdapterError::BadSource(format!("table column source has no {what}"));
    let table: DataSource = source
        .parameters
        .get("table")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .ok_or_else(|| bad("'table'"))?;
    let column = source
        .parameters
        .get("column")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("'column'"))?
        .to_string();
    let dtype: DataType = source
        .parameters
        .get("dtype")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .ok_or_else(|| bad("'dtype'"))?;
    let Adapter::Table(reader) = super::open(&table)? else {
        return Err(AdapterError::BadSource(
            "a table column's source is not a table".into(),
        ));
    };
    Ok(Adapter::Array(Arc::new(TableColumn {
        reader,
        column,
        dtype,
    })))
}

/// Computes the array structure of column `column`: its numpy type (strings are as wide as
/// the longest value, which needs one pass over the column) and one chunk per partition.
pub fn column_structure(
    reader: &dyn TableReader,
    npartitions: usize,
    column: &str,
) -> Result<Option<ArrayStructure>, AdapterError> {
    let mut lengths = Vec::with_capacity(npartitions);
    let mut dtype: Option<DataType> = None;
    let mut widest = 0usize;
    for i in 0..npartitions {
        let batch = reader.read_partition(i)?;
        let Some(col) = batch.column_by_name(column) else {
            return Ok(None);
        };
        let col = &decoded(col)?;
        lengths.push(col.len());
        if let Some(w) = max_chars(col) {
            widest = widest.max(w);
        }
        if dtype.is_none() {
            dtype = Some(numpy_type(col.data_type())?);
        }
    }
    let Some(mut dtype) = dtype else {
        return Ok(None);
    };
    if let DataType::Builtin(b) = &mut dtype
        && b.kind == Kind::Unicode
    {
        b.itemsize = 4 * widest.max(1);
    }
    let total = lengths.iter().sum();
    Ok(Some(ArrayStructure {
        data_type: dtype,
        chunks: vec![lengths],
        shape: vec![total],
        dims: None,
        resizable: false,
    }))
}

/// A dictionary-encoded column (a pandas categorical) as its values; others as they are.
fn decoded(col: &ArrayRef) -> Result<ArrayRef, AdapterError> {
    match col.data_type() {
        ArrowType::Dictionary(_, values) => arrow_cast::cast(col, values).map_err(|e| {
            AdapterError::BadSource(format!(
                "a categorical column cannot be decoded to its values ({e})"
            ))
        }),
        _ => Ok(col.clone()),
    }
}

fn max_chars(col: &ArrayRef) -> Option<usize> {
    match col.data_type() {
        ArrowType::Utf8 => Some(
            col.as_string::<i32>()
                .iter()
                .map(|s| s.map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0),
        ),
        ArrowType::LargeUtf8 => Some(
            col.as_string::<i64>()
                .iter()
                .map(|s| s.map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0),
        ),
        _ => None,
    }
}

fn unit_str(u: &TimeUnit) -> &'static str {
    match u {
        TimeUnit::Second => "[s]",
        TimeUnit::Millisecond => "[ms]",
        TimeUnit::Microsecond => "[us]",
        TimeUnit::Nanosecond => "[ns]",
    }
}

/// The numpy type pandas gives an Arrow column.
pub fn numpy_type(t: &ArrowType) -> Result<DataType, AdapterError> {
    let b = |kind, size| DataType::Builtin(BuiltinDType::new(kind, size));
    Ok(match t {
        ArrowType::Boolean => b(Kind::Bool, 1),
        ArrowType::Int8 => b(Kind::Int, 1),
        ArrowType::Int16 => b(Kind::Int, 2),
        ArrowType::Int32 => b(Kind::Int, 4),
        ArrowType::Int64 => b(Kind::Int, 8),
        ArrowType::UInt8 => b(Kind::UInt, 1),
        ArrowType::UInt16 => b(Kind::UInt, 2),
        ArrowType::UInt32 => b(Kind::UInt, 4),
        ArrowType::UInt64 => b(Kind::UInt, 8),
        ArrowType::Float32 => b(Kind::Float, 4),
        ArrowType::Float64 => b(Kind::Float, 8),
        ArrowType::Utf8 | ArrowType::LargeUtf8 => b(Kind::Unicode, 4),
        ArrowType::Timestamp(u, _) => DataType::datetime(unit_str(u)),
        ArrowType::Date32 => DataType::datetime("[D]"),
        ArrowType::Date64 => DataType::datetime("[ms]"),
        other => {
            return Err(AdapterError::BadSource(format!(
                "columns of Arrow type {other} cannot be read as arrays; read the table instead"
            )));
        }
    })
}

/// Converts an Arrow column to a C-order array of `dtype` (nulls become NaN for floats, 0 or
/// empty otherwise).
pub fn arrow_to_array(col: &ArrayRef, dtype: &DataType) -> Result<ArrayData, AdapterError> {
    if matches!(col.data_type(), ArrowType::Dictionary(..)) {
        return arrow_to_array(&decoded(col)?, dtype);
    }
    let n = col.len();
    let mut out = Vec::with_capacity(n * dtype.itemsize());
    macro_rules! prim {
        ($t:ty) => {{
            let a = col.as_primitive::<$t>();
            for i in 0..n {
                let v = if a.is_null(i) {
                    Default::default()
                } else {
                    a.value(i)
                };
                out.extend_from_slice(&v.to_le_bytes());
            }
        }};
    }
    macro_rules! float {
        ($t:ty, $nan:expr) => {{
            let a = col.as_primitive::<$t>();
            for i in 0..n {
                let v = if a.is_null(i) { $nan } else { a.value(i) };
                out.extend_from_slice(&v.to_le_bytes());
            }
        }};
    }
    match col.data_type() {
        ArrowType::Boolean => {
            let a = col.as_boolean();
            out.extend((0..n).map(|i| u8::from(a.is_valid(i) && a.value(i))));
        }
        ArrowType::Int8 => prim!(Int8Type),
        ArrowType::Int16 => prim!(Int16Type),
        ArrowType::Int32 => prim!(Int32Type),
        ArrowType::Int64 => prim!(Int64Type),
        ArrowType::UInt8 => prim!(UInt8Type),
        ArrowType::UInt16 => prim!(UInt16Type),
        ArrowType::UInt32 => prim!(UInt32Type),
        ArrowType::UInt64 => prim!(UInt64Type),
        ArrowType::Float32 => float!(Float32Type, f32::NAN),
        ArrowType::Float64 => float!(Float64Type, f64::NAN),
        ArrowType::Utf8 | ArrowType::LargeUtf8 => {
            let chars = dtype.itemsize() / 4;
            let strings: Vec<Option<&str>> = match col.data_type() {
                ArrowType::Utf8 => col.as_string::<i32>().iter().collect(),
                _ => col.as_string::<i64>().iter().collect(),
            };
            for s in strings {
                encode_unicode(s.unwrap_or(""), chars, &mut out);
            }
        }
        ArrowType::Timestamp(..) | ArrowType::Date64 => {
            let a = raw_i64_values(col)?;
            for v in a {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        ArrowType::Date32 => {
            let a = col.as_primitive::<arrow_array::types::Date32Type>();
            for i in 0..n {
                out.extend_from_slice(&i64::from(a.value(i)).to_le_bytes());
            }
        }
        other => {
            return Err(AdapterError::BadSource(format!(
                "columns of Arrow type {other} cannot be read as arrays; read the table instead"
            )));
        }
    }
    Ok(ArrayData::new(dtype.clone(), vec![n], out))
}

/// The raw 64-bit values of a timestamp or date64 column (NaT, numpy's i64::MIN, for nulls).
fn raw_i64_values(col: &ArrayRef) -> Result<Vec<i64>, AdapterError> {
    let data = col.to_data();
    let values: &[i64] = data
        .buffers()
        .first()
        .map(|b| b.typed_data::<i64>())
        .unwrap_or(&[]);
    let offset = data.offset();
    values
        .get(offset..offset + col.len())
        .map(|v| {
            v.iter()
                .enumerate()
                .map(|(i, x)| if col.is_null(i) { i64::MIN } else { *x })
                .collect()
        })
        .ok_or_else(|| AdapterError::Read("timestamp column is shorter than its length".into()))
}

struct TableColumn {
    reader: Arc<dyn TableReader>,
    column: String,
    dtype: DataType,
}

impl ArrayReader for TableColumn {
    fn read_block(&self, block: &[usize]) -> Result<ArrayData, AdapterError> {
        let [i] = block else {
            return Err(AdapterError::BlockOutOfRange {
                block: block.to_vec(),
                reason: "a table column is 1-D: give one block index".into(),
            });
        };
        let batch = self.reader.read_partition(*i)?;
        let col = batch.column_by_name(&self.column).ok_or_else(|| {
            AdapterError::Read(format!("partition {i} has no column {}", self.column))
        })?;
        arrow_to_array(col, &self.dtype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{LargeStringArray, TimestampSecondArray};

    #[test]
    fn strings_become_fixed_width_unicode() {
        let col: ArrayRef = Arc::new(LargeStringArray::from(vec!["abc", "de"]));
        let dt = DataType::unicode(3);
        let a = arrow_to_array(&col, &dt).unwrap();
        assert_eq!(a.bytes.len(), 2 * 12);
        assert_eq!(a.scalar(1).unwrap(), crate::array::Scalar::Str("de".into()));
        assert_eq!(max_chars(&col), Some(3));
    }

    #[test]
    fn timestamps_keep_their_unit() {
        let col: ArrayRef = Arc::new(TimestampSecondArray::from(vec![86_400, 0]));
        let dt = numpy_type(col.data_type()).unwrap();
        assert_eq!(dt.builtin().unwrap().numpy_str(), "<M8[s]");
        let a = arrow_to_array(&col, &dt).unwrap();
        assert_eq!(
            a.scalar(0).unwrap(),
            crate::array::Scalar::DateTime(86_400, "[s]".into())
        );
    }
}
