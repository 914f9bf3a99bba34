//! Tables in files tessera did not write: Parquet (row groups are partitions, so a partition
//! read decodes one row group, and a column request decodes only that column) and CSV (one
//! partition per file, column types inferred as pandas' `read_csv` infers them).
//!
//! The data source lists the files as assets (`data_uris`, numbered), as Tiled's does; a
//! Parquet source that tessera described has `partitions = "row_groups"`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType as ArrowType, Field, Schema, SchemaRef};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use serde_json::{Map, Value, json};

use super::{Adapter, AdapterError, DataSource, TableReader};
use crate::serializers::table::arrow_schema_data_uri;
use crate::structure::{StructureFamily, TableStructure};

/// The mimetype of CSV data sources.
pub const CSV_MIMETYPE: &str = "text/csv";

fn bad(path: &Path, why: impl std::fmt::Display) -> AdapterError {
    AdapterError::BadSource(format!("{}: {why}", super::shown(path)))
}

/// An external data source reading `paths` as one table.
pub fn data_source(
    mimetype: &str,
    paths: &[PathBuf],
    parameters: Map<String, Value>,
) -> DataSource {
    let uris = paths.iter().map(|p| super::file_uri(p));
    super::external_source(StructureFamily::Table, mimetype, parameters, uris, true)
}

fn table_structure(schema: &Schema, npartitions: usize) -> Result<TableStructure, AdapterError> {
    let index = super::parquet_table::index_columns(schema);
    Ok(TableStructure {
        arrow_schema: arrow_schema_data_uri(schema)
            .map_err(|e| AdapterError::Read(e.to_string()))?,
        npartitions,
        columns: schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| !index.contains(n))
            .collect(),
        resizable: false,
    })
}

// ---------------------------------------------------------------------------------------------
// Parquet

fn parquet_builder(
    path: &Path,
) -> Result<ParquetRecordBatchReaderBuilder<std::fs::File>, AdapterError> {
    let f = std::fs::File::open(path).map_err(|e| bad(path, format!("cannot be opened ({e})")))?;
    ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| bad(path, format!("not a readable Parquet file ({e})")))
}

/// The structure and data source of the Parquet files `paths` read as one table whose
/// partitions are their row groups.
pub fn inspect_parquet(paths: &[PathBuf]) -> Result<(TableStructure, DataSource), AdapterError> {
    let mut schema: Option<SchemaRef> = None;
    let mut groups = 0;
    for p in paths {
        let b = parquet_builder(p)?;
        let s = b.schema().clone();
        match &schema {
            Some(first) if first.fields() != s.fields() => {
                return Err(bad(p, "its columns differ from the first file's"));
            }
            Some(_) => {}
            None => schema = Some(s),
        }
        groups += b.metadata().num_row_groups().max(1);
    }
    let schema = schema.ok_or_else(|| AdapterError::BadSource("no Parquet files".into()))?;
    let mut params = Map::new();
    params.insert("partitions".into(), json!("row_groups"));
    Ok((
        table_structure(&schema, groups)?,
        data_source(super::parquet_table::MIMETYPE, paths, params),
    ))
}

struct ParquetFiles {
    /// Each file's footer (schema, row groups), read once.
    footers: Vec<ArrowReaderMetadata>,
    files: Vec<PathBuf>,
    /// (file, row group, rows of the file before it) of each partition; no row group for a
    /// whole-file partition.
    partitions: Vec<(usize, Option<usize>, usize)>,
    schema: SchemaRef,
}

/// The schema metadata of a partition that starts `offset` rows into a file: pandas' range
/// index description (which pyarrow rebuilds the index from) is moved to the partition's
/// rows, so the partitions of one file concatenate into the file's index.
fn shift_range_index(schema: &Schema, offset: usize, rows: usize) -> Schema {
    let Some(meta) = schema
        .metadata()
        .get("pandas")
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
    else {
        return schema.clone();
    };
    let mut meta = meta;
    let mut changed = false;
    if let Some(cols) = meta["index_columns"].as_array_mut() {
        // Written without its index (`index=False`): readers number the rows from 0, so
        // give each partition the numbers of its rows in the file.
        if cols.is_empty() {
            cols.push(json!({"kind": "range", "name": null, "start": 0, "stop": 0, "step": 1}));
        }
        for c in cols.iter_mut() {
            if c["kind"] == "range" {
                let start = c["start"].as_i64().unwrap_or(0);
                let step = c["step"].as_i64().unwrap_or(1);
                c["start"] = json!(start + step * offset as i64);
                c["stop"] = json!(start + step * (offset + rows) as i64);
                changed = true;
            }
        }
    }
    if !changed {
        return schema.clone();
    }
    let mut md = schema.metadata().clone();
    md.insert("pandas".to_string(), meta.to_string());
    schema.clone().with_metadata(md)
}

impl ParquetFiles {
    fn read(&self, i: usize, columns: Option<&[String]>) -> Result<RecordBatch, AdapterError> {
        let &(f, group, offset) = self
            .partitions
            .get(i)
            .ok_or(AdapterError::PartitionOutOfRange(i))?;
        let path = &self.files[f];
        // The footer was read once, at open; a partition read opens the file and decodes.
        let file =
            std::fs::File::open(path).map_err(|e| bad(path, format!("cannot be opened ({e})")))?;
        let mut b =
            ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.footers[f].clone());
        let schema = b.schema().clone();
        if let Some(g) = group {
            b = b.with_row_groups(vec![g]);
        }
        let mut out_schema = schema.clone();
        if let Some(cols) = columns {
            let roots: Vec<usize> = cols
                .iter()
                .filter_map(|c| schema.index_of(c).ok())
                .collect();
            let mask = ProjectionMask::roots(b.parquet_schema(), roots.iter().copied());
            b = b.with_projection(mask);
            out_schema = Arc::new(
                schema
                    .project(&roots)
                    .map_err(|e| AdapterError::Read(e.to_string()))?,
            );
        }
        let reader = b
            .build()
            .map_err(|e| bad(path, format!("cannot be decoded ({e})")))?;
        let batches = reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(path, format!("cannot be decoded ({e})")))?;
        let batch = arrow_select::concat::concat_batches(&out_schema, &batches)
            .map_err(|e| AdapterError::Read(e.to_string()))?;
        // Keep the file's schema metadata (pandas' index description) on what we serve.
        let out_schema = Arc::new(shift_range_index(&out_schema, offset, batch.num_rows()));
        RecordBatch::try_new(out_schema, batch.columns().to_vec())
            .map_err(|e| AdapterError::Read(e.to_string()))
    }
}

impl TableReader for ParquetFiles {
    fn read_partition(&self, i: usize) -> Result<RecordBatch, AdapterError> {
        self.read(i, None)
    }

    fn read_columns(&self, i: usize, columns: &[String]) -> Result<RecordBatch, AdapterError> {
        self.read(i, Some(columns))
    }

    fn index_columns(&self) -> Vec<String> {
        super::parquet_table::index_columns(&self.schema)
    }
}

/// Opens registered Parquet files.
pub fn open_parquet(source: &DataSource) -> Result<Adapter, AdapterError> {
    let files = super::asset_files(source)?;
    let by_group = source.parameters.get("partitions") == Some(&json!("row_groups"));
    let footers = files
        .iter()
        .map(|path| {
            let file = std::fs::File::open(path)
                .map_err(|e| bad(path, format!("cannot be opened ({e})")))?;
            ArrowReaderMetadata::load(&file, Default::default())
                .map_err(|e| bad(path, format!("not a readable Parquet file ({e})")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let schema = footers[0].schema().clone();
    let mut partitions = Vec::new();
    for (f, footer) in footers.iter().enumerate() {
        if by_group {
            let groups = footer.metadata().row_groups();
            if groups.is_empty() {
                partitions.push((f, None, 0));
            }
            let mut offset = 0;
            for (g, rg) in groups.iter().enumerate() {
                partitions.push((f, Some(g), offset));
                offset += usize::try_from(rg.num_rows()).unwrap_or(0);
            }
        } else {
            partitions.push((f, None, 0));
        }
    }
    Ok(Adapter::Table(Arc::new(ParquetFiles {
        files,
        footers,
        partitions,
        schema,
    })))
}

// ---------------------------------------------------------------------------------------------
// CSV

/// Strings pandas reads as missing values by default.
const NA: [&str; 17] = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a",
];

fn is_na(s: &str) -> bool {
    NA.contains(&s) || s == "nan" || s == "null"
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "True" | "TRUE" | "true" => Some(true),
        "False" | "FALSE" | "false" => Some(false),
        _ => None,
    }
}

/// One column's values, typed as pandas would type them: integers (floats if any is missing),
/// floats, booleans (with nulls for missing values), else strings.
fn column(values: &[Option<&str>]) -> (ArrowType, ArrayRef) {
    let present = || values.iter().flatten();
    let missing = values.iter().any(Option::is_none);
    let all_missing = values.iter().all(Option::is_none);
    if !all_missing && !missing && present().all(|s| s.trim().parse::<i64>().is_ok()) {
        let v: Int64Array = values
            .iter()
            .map(|s| s.and_then(|s| s.trim().parse().ok()))
            .collect();
        return (ArrowType::Int64, Arc::new(v));
    }
    if all_missing || present().all(|s| s.trim().parse::<f64>().is_ok()) {
        let v: Float64Array = values
            .iter()
            .map(|s| s.and_then(|s| s.trim().parse().ok()))
            .collect();
        return (ArrowType::Float64, Arc::new(v));
    }
    // pandas reads booleans with gaps as objects (True, NaN, False); pyarrow, and so Tiled,
    // serves them as booleans with nulls.
    if present().all(|s| parse_bool(s.trim()).is_some()) {
        let v: BooleanArray = values
            .iter()
            .map(|s| s.and_then(|s| parse_bool(s.trim())))
            .collect();
        return (ArrowType::Boolean, Arc::new(v));
    }
    let v: StringArray = values.iter().copied().collect();
    (ArrowType::Utf8, Arc::new(v))
}

/// Column names as pandas gives them: an empty name is `Unnamed: <i>`, and a repeated name
/// gets `.1`, `.2`, ... (skipping names already taken).
fn pandas_column_names(raw: &[String]) -> Vec<String> {
    let mut taken: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, name) in raw.iter().enumerate() {
        let base = if name.is_empty() {
            format!("Unnamed: {i}")
        } else {
            name.clone()
        };
        let mut candidate = base.clone();
        let mut n = 0;
        while taken.contains(&candidate) {
            n += 1;
            candidate = format!("{base}.{n}");
        }
        taken.insert(candidate.clone());
        out.push(candidate);
    }
    out
}

/// Reads a CSV file into one record batch (header on the first line, `sep` between fields),
/// with pandas' `read_csv` defaults: no delimiter sniffing, no comment lines.
pub fn read_csv(path: &Path, sep: u8) -> Result<RecordBatch, AdapterError> {
    use super::limits::MAX_TEXT_TABLE_BYTES;
    let len = std::fs::metadata(path)
        .map_err(|e| bad(path, format!("cannot be read ({e})")))?
        .len();
    if len > MAX_TEXT_TABLE_BYTES {
        return Err(AdapterError::Limit(format!(
            "{}: a CSV file of {len} bytes is read whole; at most {MAX_TEXT_TABLE_BYTES} are",
            super::shown(path)
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| bad(path, format!("cannot be read ({e})")))?;
    // pandas drops a UTF-8 byte order mark (Excel's "CSV UTF-8" writes one).
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    // Rows may be short (pandas pads them with missing values); line ends may be CRLF; blank
    // lines are skipped, as by pandas.
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(sep)
        .has_headers(true)
        .flexible(true)
        .from_reader(body);
    let raw_header: Vec<String> = reader
        .headers()
        .map_err(|e| bad(path, format!("not valid CSV ({e})")))?
        .iter()
        .map(str::to_string)
        .collect();
    if raw_header.is_empty() || raw_header.iter().all(String::is_empty) {
        return Err(bad(path, "the CSV file is empty: it has no header row"));
    }
    let header = pandas_column_names(&raw_header);
    let mut rows: Vec<csv::StringRecord> = Vec::new();
    // As pandas: when the first row has one field more than the header has names, the first
    // field of every row is the (unnamed) index.
    let mut implicit_index = false;
    for r in reader.records() {
        let r = r.map_err(|e| bad(path, format!("not valid CSV ({e})")))?;
        if rows.is_empty() {
            implicit_index = r.len() == header.len() + 1;
        }
        let width = header.len() + usize::from(implicit_index);
        if r.len() > width {
            let line = r.position().map_or(0, |p| p.line());
            return Err(bad(
                path,
                format!(
                    "line {line} has {} fields but the header has {} names{}",
                    r.len(),
                    header.len(),
                    if implicit_index { " and an index" } else { "" }
                ),
            ));
        }
        rows.push(r);
    }
    let skip = usize::from(implicit_index);
    let mut fields = Vec::with_capacity(header.len() + skip);
    let mut arrays = Vec::with_capacity(header.len() + skip);
    let typed = |j: usize| {
        let values: Vec<Option<&str>> = rows
            .iter()
            .map(|r| r.get(j).filter(|s| !is_na(s)))
            .collect();
        column(&values)
    };
    for (j, name) in header.iter().enumerate() {
        let (t, a) = typed(j + skip);
        fields.push(Field::new(name, t, true));
        arrays.push(a);
    }
    let mut metadata = std::collections::HashMap::new();
    if implicit_index {
        let (t, a) = typed(0);
        let (pandas_type, numpy_type) = match t {
            ArrowType::Int64 => ("int64", "int64"),
            ArrowType::Float64 => ("float64", "float64"),
            ArrowType::Boolean => ("bool", "bool"),
            _ => ("unicode", "object"),
        };
        // pandas' own description of an unnamed index column, which pyarrow (and so the
        // client) turns back into the index.
        let meta = json!({
            "index_columns": [IMPLICIT_INDEX],
            "column_indexes": [],
            "columns": [{"name": null, "field_name": IMPLICIT_INDEX,
                         "pandas_type": pandas_type, "numpy_type": numpy_type, "metadata": null}],
        });
        metadata.insert("pandas".to_string(), meta.to_string());
        fields.push(Field::new(IMPLICIT_INDEX, t, true));
        arrays.push(a);
    }
    RecordBatch::try_new(
        Arc::new(Schema::new_with_metadata(fields, metadata)),
        arrays,
    )
    .map_err(|e| bad(path, format!("cannot be read as a table ({e})")))
}

/// The column an unnamed index is kept in, as pyarrow names it.
const IMPLICIT_INDEX: &str = "__index_level_0__";

fn separator(params: &Map<String, Value>) -> Result<u8, AdapterError> {
    match params.get("sep").or_else(|| params.get("delimiter")) {
        None | Some(Value::Null) => Ok(b','),
        Some(Value::String(s)) if s.len() == 1 => Ok(s.as_bytes()[0]),
        Some(other) => Err(AdapterError::BadSource(format!(
            "CSV separator {other} is not supported: give one ASCII character"
        ))),
    }
}

/// The structure and data source of the CSV files `paths` read as one table (one partition
/// per file).
pub fn inspect_csv(
    paths: &[PathBuf],
    parameters: Map<String, Value>,
) -> Result<(TableStructure, DataSource), AdapterError> {
    let sep = separator(&parameters)?;
    let first = paths
        .first()
        .ok_or_else(|| AdapterError::BadSource("no CSV files".into()))?;
    let batch = read_csv(first, sep)?;
    Ok((
        table_structure(&batch.schema(), paths.len())?,
        data_source(CSV_MIMETYPE, paths, parameters),
    ))
}

struct CsvFiles {
    files: Vec<PathBuf>,
    sep: u8,
    /// The schema the node declares (a registering client's inference may differ from ours);
    /// columns are cast to it. Without index columns: those come from the file.
    schema: Option<SchemaRef>,
    /// The index columns the node declares (an unnamed first column, as pandas reads it).
    index: Vec<String>,
}

impl TableReader for CsvFiles {
    fn read_partition(&self, i: usize) -> Result<RecordBatch, AdapterError> {
        let path = self
            .files
            .get(i)
            .ok_or(AdapterError::PartitionOutOfRange(i))?;
        let batch = read_csv(path, self.sep)?;
        let Some(schema) = &self.schema else {
            return Ok(batch);
        };
        let mut columns = schema
            .fields()
            .iter()
            .map(|f| {
                let c = batch.column_by_name(f.name()).ok_or_else(|| {
                    bad(
                        path,
                        format!("has no column {:?}, which the node declares", f.name()),
                    )
                })?;
                arrow_cast::cast(c, f.data_type()).map_err(|e| {
                    bad(
                        path,
                        format!("column {:?} is not {} ({e})", f.name(), f.data_type()),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // The file's own (implicit) index, with pandas' description of it.
        let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
        let index = super::parquet_table::index_columns(&batch.schema());
        for name in &index {
            if let Ok(at) = batch.schema().index_of(name) {
                fields.push(batch.schema().fields()[at].clone());
                columns.push(batch.column(at).clone());
            }
        }
        let metadata = if index.is_empty() {
            schema.metadata().clone()
        } else {
            batch.schema().metadata().clone()
        };
        RecordBatch::try_new(
            Arc::new(Schema::new_with_metadata(fields, metadata)),
            columns,
        )
        .map_err(|e| bad(path, e))
    }

    fn index_columns(&self) -> Vec<String> {
        self.index.clone()
    }
}

/// Opens registered CSV files.
pub fn open_csv(source: &DataSource) -> Result<Adapter, AdapterError> {
    let declared = super::structure_of::<TableStructure>(source)
        .ok()
        .and_then(|s| super::parquet_table::schema(&s).ok());
    let index = declared
        .as_ref()
        .map(super::parquet_table::index_columns)
        .unwrap_or_default();
    let schema = declared.map(|s| {
        let fields: Vec<_> = s
            .fields()
            .iter()
            .filter(|f| !index.contains(f.name()))
            .cloned()
            .collect();
        Arc::new(Schema::new(fields))
    });
    Ok(Adapter::Table(Arc::new(CsvFiles {
        files: super::asset_files(source)?,
        sep: separator(&source.parameters)?,
        schema,
        index,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_columns_are_typed_as_pandas_types_them() {
        let (t, _) = column(&[Some("1"), Some(" 2")]);
        assert_eq!(t, ArrowType::Int64);
        let (t, a) = column(&[Some("1"), None]);
        assert_eq!(
            t,
            ArrowType::Float64,
            "a missing integer makes the column float"
        );
        assert_eq!(a.null_count(), 1);
        let (t, _) = column(&[Some("1.5"), Some("1e3"), Some("inf")]);
        assert_eq!(t, ArrowType::Float64);
        let (t, _) = column(&[Some("True"), Some("false")]);
        assert_eq!(t, ArrowType::Boolean);
        let (t, a) = column(&[Some("True"), None]);
        assert_eq!(t, ArrowType::Boolean);
        assert_eq!(a.null_count(), 1);
        let (t, _) = column(&[Some("2024-01-01"), Some("x")]);
        assert_eq!(t, ArrowType::Utf8);
        let (t, _) = column(&[None, None]);
        assert_eq!(t, ArrowType::Float64);
    }

    #[test]
    fn csv_files_are_read_with_pandas_defaults() {
        let dir = std::env::temp_dir().join(format!("tessera-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.csv");
        // A BOM, CRLF, a quoted separator, a blank line, a short row, repeated and empty names.
        std::fs::write(
            &path,
            b"\xEF\xBB\xBFx,x,,y\r\n1,\"a, b\",2,3\r\n\r\n4,c\r\n",
        )
        .unwrap();
        let batch = read_csv(&path, b',').unwrap();
        let names: Vec<_> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["x", "x.1", "Unnamed: 2", "y"]);
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.column(2).data_type(), &ArrowType::Float64);
        assert_eq!(batch.column(3).null_count(), 1);
        // One field more than names in the first row: the first field is the index.
        std::fs::write(&path, b"a,b\n1,2,3\n4,5\n").unwrap();
        let batch = read_csv(&path, b',').unwrap();
        let index = crate::adapters::parquet_table::index_columns(&batch.schema());
        assert_eq!(index, [IMPLICIT_INDEX]);
        assert_eq!(batch.num_columns(), 3);
        assert_eq!(batch.column(1).null_count(), 1);
        std::fs::write(&path, b"a,b\n1,2\n4,5,6\n").unwrap();
        let err = read_csv(&path, b',').unwrap_err().to_string();
        assert!(err.contains("line 3 has 3 fields"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
