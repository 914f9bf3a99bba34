//! Excel workbooks (`.xlsx`): a container with one table per sheet, keyed by sheet name. The
//! first row names the columns; the column types follow what pandas' `read_excel` gives:
//! whole numbers as int64 (float64 when a cell is empty), other numbers float64, booleans,
//! dates and times as datetime64[us] (as pandas 3 reads them), anything else as strings.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow_schema::{DataType as ArrowType, Field, Schema, TimeUnit};
use calamine::{Data, Reader};
use serde_json::{Value, json};

use super::{Adapter, AdapterError, DataSource, TableReader};
use crate::node::TreeNode;
use crate::serializers::table::arrow_schema_data_uri;
use crate::structure::{Structure, StructureFamily, TableStructure};

/// The mimetype of Excel workbooks.
pub const MIMETYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

fn bad(path: &Path, why: impl std::fmt::Display) -> AdapterError {
    AdapterError::BadSource(format!("{}: {why}", path.display()))
}

fn workbook(
    path: &Path,
) -> Result<calamine::Sheets<std::io::BufReader<std::fs::File>>, AdapterError> {
    calamine::open_workbook_auto(path)
        .map_err(|e| bad(path, format!("not a readable workbook ({e})")))
}

/// Excel's day count (1900 system) as microseconds since 1970. Excel keeps milliseconds at
/// best, so the value is rounded to them, dropping the float noise of the day fraction.
fn excel_micros(days: f64) -> i64 {
    ((days - 25_569.0) * 86_400.0 * 1e3).round() as i64 * 1000
}

fn column(cells: &[&Data]) -> (ArrowType, ArrayRef) {
    let present: Vec<&Data> = cells
        .iter()
        .copied()
        .filter(|c| !matches!(c, Data::Empty))
        .collect();
    let missing = present.len() < cells.len();
    let number = |c: &Data| match c {
        Data::Int(i) => Some(*i as f64),
        Data::Float(f) => Some(*f),
        _ => None,
    };
    if !present.is_empty() && present.iter().all(|c| number(c).is_some()) {
        let whole = present
            .iter()
            .all(|c| number(c).is_some_and(|v| v.fract() == 0.0 && v.abs() < 9.0e15));
        if whole && !missing {
            let v: Int64Array = cells.iter().map(|c| number(c).map(|x| x as i64)).collect();
            return (ArrowType::Int64, Arc::new(v));
        }
        let v: Float64Array = cells.iter().map(|c| number(c)).collect();
        return (ArrowType::Float64, Arc::new(v));
    }
    if present.is_empty() {
        let v: Float64Array = cells.iter().map(|_| None).collect();
        return (ArrowType::Float64, Arc::new(v));
    }
    if !missing && present.iter().all(|c| matches!(c, Data::Bool(_))) {
        let v: BooleanArray = cells
            .iter()
            .map(|c| match c {
                Data::Bool(b) => Some(*b),
                _ => None,
            })
            .collect();
        return (ArrowType::Boolean, Arc::new(v));
    }
    if present.iter().all(|c| matches!(c, Data::DateTime(_))) {
        let v: TimestampMicrosecondArray = cells
            .iter()
            .map(|c| match c {
                Data::DateTime(d) => Some(excel_micros(d.as_f64())),
                _ => None,
            })
            .collect();
        return (
            ArrowType::Timestamp(TimeUnit::Microsecond, None),
            Arc::new(v),
        );
    }
    let v: StringArray = cells
        .iter()
        .map(|c| match c {
            Data::Empty => None,
            Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => Some(s.clone()),
            Data::Float(f) => Some(crate::array::py_float_repr(*f)),
            Data::Int(i) => Some(i.to_string()),
            Data::Bool(b) => Some(if *b { "True" } else { "False" }.to_string()),
            Data::DateTime(d) => Some(d.as_f64().to_string()),
            Data::Error(e) => Some(format!("{e:?}")),
        })
        .collect();
    (ArrowType::Utf8, Arc::new(v))
}

/// Sheet `name` of the workbook at `path` as one record batch.
pub fn read_sheet(path: &Path, name: &str) -> Result<RecordBatch, AdapterError> {
    let mut wb = workbook(path)?;
    let range = wb
        .worksheet_range(name)
        .map_err(|e| bad(path, format!("sheet {name:?} cannot be read ({e})")))?;
    let mut rows = range.rows();
    let header: Vec<String> = match rows.next() {
        Some(h) => h
            .iter()
            .enumerate()
            .map(|(i, c)| match c {
                Data::Empty => format!("Unnamed: {i}"),
                Data::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        None => return Err(bad(path, format!("sheet {name:?} is empty"))),
    };
    let body: Vec<&[Data]> = rows.collect();
    let mut fields = Vec::new();
    let mut arrays = Vec::new();
    for (j, h) in header.iter().enumerate() {
        let cells: Vec<&Data> = body
            .iter()
            .map(|r| r.get(j).unwrap_or(&Data::Empty))
            .collect();
        let (t, a) = column(&cells);
        fields.push(Field::new(h, t, true));
        arrays.push(a);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| {
        bad(
            path,
            format!("sheet {name:?} cannot be read as a table ({e})"),
        )
    })
}

/// A workbook as a container with one table per sheet (empty sheets are left out and
/// listed in `skipped`).
pub fn inspect(
    path: &Path,
    key: &str,
    skipped: &mut Vec<String>,
) -> Result<TreeNode, AdapterError> {
    let names = workbook(path)?.sheet_names();
    let mut node = TreeNode::container(key, json!({}), Vec::new());
    for name in names {
        let batch = match read_sheet(path, &name) {
            Ok(b) => b,
            Err(e) => {
                skipped.push(e.to_string());
                continue;
            }
        };
        let schema = batch.schema();
        let structure = TableStructure {
            arrow_schema: arrow_schema_data_uri(&schema)
                .map_err(|e| AdapterError::Read(e.to_string()))?,
            npartitions: 1,
            columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
            resizable: false,
        };
        node.children.push(TreeNode::data(
            &name,
            Structure::Table(structure),
            data_source(path, &name),
        ));
    }
    Ok(node)
}

/// The data source of sheet `sheet` of the workbook at `path`.
pub fn data_source(path: &Path, sheet: &str) -> DataSource {
    super::file_part_source(
        StructureFamily::Table,
        MIMETYPE,
        &super::file_uri(path),
        ("sheet", json!(sheet)),
    )
}

struct Sheet {
    path: PathBuf,
    name: String,
}

impl TableReader for Sheet {
    fn read_partition(&self, i: usize) -> Result<RecordBatch, AdapterError> {
        if i != 0 {
            return Err(AdapterError::PartitionOutOfRange(i));
        }
        read_sheet(&self.path, &self.name)
    }

    fn index_columns(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Opens one sheet of a workbook.
pub fn open(source: &DataSource) -> Result<Adapter, AdapterError> {
    let path = super::asset_files(source)?.remove(0);
    let name = match source.parameters.get("sheet") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(bad(&path, "the data source names no sheet")),
    };
    Ok(Adapter::Table(Arc::new(Sheet { path, name })))
}
