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

use super::limits::{MAX_SHEET_CELLS, MAX_UNZIPPED_BYTES};
use super::{Adapter, AdapterError, DataSource, TableReader};
use crate::node::TreeNode;
use crate::serializers::table::arrow_schema_data_uri;
use crate::structure::{Structure, StructureFamily, TableStructure};

/// The mimetype of Excel workbooks.
pub const MIMETYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

fn bad(path: &Path, why: impl std::fmt::Display) -> AdapterError {
    AdapterError::BadSource(format!("{}: {why}", super::shown(path)))
}

fn workbook(
    path: &Path,
) -> Result<calamine::Sheets<std::io::BufReader<std::fs::File>>, AdapterError> {
    check_package(path)?;
    calamine::open_workbook_auto(path)
        .map_err(|e| bad(path, format!("not a readable workbook ({e})")))
}

/// Checks a workbook's zip package before the spreadsheet reader sees it, which trusts it:
/// the unzipped parts must fit [`MAX_UNZIPPED_BYTES`] (a zip bomb does not), the shared
/// strings table may not declare more strings than its bytes can hold (the reader reserves
/// room for all of them), and each sheet's used range may not pass [`MAX_SHEET_CELLS`] (the
/// reader makes a dense grid of it: two cells at A1 and XFD1048576 are 17 billion).
fn check_package(path: &Path) -> Result<(), AdapterError> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| bad(path, format!("cannot be opened ({e})")))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(f))
        .map_err(|e| bad(path, format!("not a readable workbook ({e})")))?;
    let limit = |why: String| AdapterError::Limit(format!("{}: {why}", super::shown(path)));
    let corrupt = |e: &dyn std::fmt::Display| {
        AdapterError::Corrupt(format!(
            "{}: a part cannot be unzipped ({e})",
            super::shown(path)
        ))
    };
    let mut total: u64 = 0;
    for i in 0..zip.len() {
        let part = zip.by_index_raw(i).map_err(|e| corrupt(&e))?;
        total = total.saturating_add(part.size());
    }
    if total > MAX_UNZIPPED_BYTES {
        return Err(limit(format!(
            "its parts unzip to {total} bytes; at most {MAX_UNZIPPED_BYTES} are read"
        )));
    }
    for i in 0..zip.len() {
        let mut part = zip.by_index(i).map_err(|e| corrupt(&e))?;
        let name = part.name().map_err(|e| corrupt(&e))?.to_string();
        let declared = part.size();
        let is_sheet = name.starts_with("xl/worksheets/") && name.ends_with(".xml");
        if !(is_sheet || name == "xl/sharedStrings.xml") {
            continue;
        }
        // Never more than the part declares (plus one byte, to see a lie), whatever it holds.
        let mut scan = CellScan::default();
        let mut reader = (&mut part).take(declared.min(MAX_UNZIPPED_BYTES) + 1);
        let mut buf = vec![0u8; 1 << 16];
        let mut carry: Vec<u8> = Vec::new();
        let mut read: u64 = 0;
        let mut head: Vec<u8> = Vec::new();
        loop {
            let n = reader.read(&mut buf).map_err(|e| corrupt(&e))?;
            if n == 0 {
                break;
            }
            read += n as u64;
            if head.len() < 4096 {
                head.extend_from_slice(&buf[..n.min(4096 - head.len())]);
            }
            if is_sheet {
                carry.extend_from_slice(&buf[..n]);
                let keep = scan.feed(&carry);
                carry.drain(..carry.len() - keep);
            }
        }
        if read > declared {
            return Err(corrupt(&format!(
                "{name} unzips to more than the {declared} bytes it declares"
            )));
        }
        if is_sheet {
            let cells = scan.cells();
            if cells > MAX_SHEET_CELLS {
                return Err(limit(format!(
                    "{name} spans {cells} cells; sheets of at most {MAX_SHEET_CELLS} are read"
                )));
            }
        } else if let Some(count) = declared_count(&head)
            && count > declared / 4
        {
            return Err(corrupt(&format!(
                "{name} declares {count} strings in {declared} bytes"
            )));
        }
    }
    Ok(())
}

/// The largest `uniqueCount` or `count` the start of a shared strings table declares.
fn declared_count(head: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(head);
    ["uniqueCount=\"", " count=\""]
        .iter()
        .filter_map(|attr| {
            let at = text.find(attr)? + attr.len();
            let digits: String = text[at..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            Some(digits.parse::<u64>().unwrap_or(u64::MAX))
        })
        .max()
}

/// The bounding box of the cell references (`r="B7"`) of a sheet's XML, fed in pieces.
#[derive(Debug, Default)]
struct CellScan {
    rows: Option<(u64, u64)>,
    cols: Option<(u64, u64)>,
}

impl CellScan {
    /// Scans `text` for references; returns how many bytes at its end may hold one that is
    /// cut off (to be scanned again with the next piece).
    fn feed(&mut self, text: &[u8]) -> usize {
        const TAIL: usize = 32;
        let mut i = 0;
        while let Some(at) = text[i..].windows(3).position(|w| w == b"r=\"") {
            let start = i + at;
            let value = start + 3;
            let Some(end) = text[value..].iter().position(|&b| b == b'"') else {
                return text.len() - start;
            };
            let preceded = start > 0 && text[start - 1].is_ascii_whitespace();
            if preceded {
                self.add(&text[value..value + end]);
            }
            i = value + end;
        }
        TAIL.min(text.len()).min(text.len() - i)
    }

    fn add(&mut self, r: &[u8]) {
        let letters = r.iter().take_while(|b| b.is_ascii_uppercase()).count();
        let digits = &r[letters..];
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) || digits.len() > 12 {
            return;
        }
        let row: u64 = digits.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0'));
        widen(&mut self.rows, row);
        if letters > 0 && letters <= 4 {
            let col = r[..letters]
                .iter()
                .fold(0u64, |n, c| n * 26 + u64::from(c - b'A' + 1));
            widen(&mut self.cols, col);
        }
    }

    /// The cells of the dense grid spanning every reference.
    fn cells(&self) -> u64 {
        let span = |r: Option<(u64, u64)>| r.map_or(1, |(lo, hi)| hi - lo + 1);
        span(self.rows).saturating_mul(span(self.cols))
    }
}

fn widen(range: &mut Option<(u64, u64)>, v: u64) {
    *range = Some(match *range {
        None => (v, v),
        Some((lo, hi)) => (lo.min(v), hi.max(v)),
    });
}

/// An Excel date cell as openpyxl (which pandas' `read_excel` calls) reads it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum ExcelDate {
    /// A time of day alone (a day count in [0, 1)), in milliseconds since midnight.
    TimeOfDay(i64),
    /// Microseconds since 1970.
    DateTime(i64),
}

/// Excel's day count as openpyxl converts it: the day fraction is rounded to milliseconds
/// (Excel keeps no more; the rest is float noise). In the 1900 date system days before
/// 1900-03-01 move one day on, because Excel counts a 29 February 1900 that never was; the
/// 1904 system (old Mac workbooks) counts from 1904-01-01.
fn excel_date(days: f64, is_1904: bool) -> ExcelDate {
    let day = days.floor();
    let ms = ((days - day) * 86_400_000.0).round_ties_even() as i64;
    if (0.0..1.0).contains(&days) && ms < 86_400_000 {
        return ExcelDate::TimeOfDay(ms);
    }
    let mut day = day as i64;
    if !is_1904 && days > 0.0 && days < 60.0 {
        day += 1;
    }
    // Day 0 is 1899-12-30 (or 1904-01-01); 1970-01-01 is day 25 569 (or 24 107).
    let unix_day = if is_1904 { 24_107 } else { 25_569 };
    // Saturating: a damaged cell of 1e300 days must not overflow.
    let micros = day
        .saturating_sub(unix_day)
        .saturating_mul(86_400_000)
        .saturating_add(ms)
        .saturating_mul(1000);
    ExcelDate::DateTime(micros)
}

/// Whether a date cell counts days in the 1904 system (calamine keeps the flag private, but
/// compares it).
fn is_1904(d: &calamine::ExcelDateTime) -> bool {
    *d == calamine::ExcelDateTime::new(d.as_f64(), calamine::ExcelDateTimeType::DateTime, true)
}

/// A time of day as Python's `str(datetime.time)` writes it (what pandas 3 makes of a column
/// of times): `HH:MM:SS`, with `.ffffff` when there are fractions of a second.
fn time_of_day_str(ms: i64) -> String {
    let (s, frac) = (ms / 1000, ms % 1000);
    let hms = format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
    if frac == 0 {
        hms
    } else {
        format!("{hms}.{:06}", frac * 1000)
    }
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
    let dates: Vec<Option<ExcelDate>> = cells
        .iter()
        .map(|c| match c {
            Data::DateTime(d) if !d.is_duration() => Some(excel_date(d.as_f64(), is_1904(d))),
            _ => None,
        })
        .collect();
    if present
        .iter()
        .all(|c| matches!(c, Data::DateTime(d) if !d.is_duration()))
    {
        if dates
            .iter()
            .flatten()
            .all(|d| matches!(d, ExcelDate::DateTime(_)))
        {
            let v: TimestampMicrosecondArray = dates
                .iter()
                .map(|d| match d {
                    Some(ExcelDate::DateTime(us)) => Some(*us),
                    _ => None,
                })
                .collect();
            return (
                ArrowType::Timestamp(TimeUnit::Microsecond, None),
                Arc::new(v),
            );
        }
        if dates
            .iter()
            .flatten()
            .all(|d| matches!(d, ExcelDate::TimeOfDay(_)))
        {
            // openpyxl gives datetime.time objects; pandas 3 makes them strings.
            let v: StringArray = dates
                .iter()
                .map(|d| match d {
                    Some(ExcelDate::TimeOfDay(ms)) => Some(time_of_day_str(*ms)),
                    _ => None,
                })
                .collect();
            return (ArrowType::Utf8, Arc::new(v));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_convert_as_openpyxl_converts_them() {
        use ExcelDate::{DateTime, TimeOfDay};
        // Expected values from openpyxl.utils.datetime.from_excel.
        assert_eq!(
            excel_date(45658.41666809028, false),
            DateTime(1_735_725_600_123_000)
        );
        assert_eq!(excel_date(15.25, false), DateTime(-2_207_757_600_000_000));
        assert_eq!(excel_date(60.0, false), DateTime(-2_203_977_600_000_000));
        assert_eq!(excel_date(59.0, false), DateTime(-2_203_977_600_000_000));
        assert_eq!(excel_date(25568.0, false), DateTime(-86_400_000_000));
        assert_eq!(excel_date(0.5, false), TimeOfDay(43_200_000));
        assert_eq!(excel_date(0.99999999, false), TimeOfDay(86_399_999));
        assert_eq!(excel_date(44_196.5, true), DateTime(1_735_732_800_000_000));
        assert_eq!(excel_date(0.5, true), TimeOfDay(43_200_000));
        assert_eq!(time_of_day_str(86_399_999), "23:59:59.999000");
        assert_eq!(time_of_day_str(3_600_000), "01:00:00");
        // Damaged cells do not overflow.
        assert_eq!(excel_date(1e300, false), DateTime(i64::MAX));
        assert!(matches!(excel_date(f64::NAN, false), DateTime(_)));
        assert_eq!(excel_date(-1e300, true), DateTime(i64::MIN));
    }

    #[test]
    fn cell_references_give_the_sheets_dense_size() {
        let mut scan = CellScan::default();
        let xml = br#"<row r="1"><c r="A1"><v>1</v></c></row><row r="1048576"><c r="XFD1048576">"#;
        // Fed in two pieces cut inside a reference.
        let (a, b) = xml.split_at(60);
        let keep = scan.feed(a);
        let mut rest = a[a.len() - keep..].to_vec();
        rest.extend_from_slice(b);
        scan.feed(&rest);
        assert_eq!(scan.cells(), 1_048_576 * 16_384);
        assert_eq!(
            declared_count(br#"<sst count="1" uniqueCount="99">"#),
            Some(99)
        );
    }
}
