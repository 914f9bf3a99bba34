//! Adapters turn a stored data source into structures, one native chunk at a time. A data
//! source (what the catalog records: a mimetype, parameters and assets) is opened into an
//! [`Adapter`], whose readers decode only the chunk, partition or buffers a request needs.

pub mod awkward_store;
pub mod cf;
pub mod codec_bounds;
pub mod demo;
#[cfg(feature = "hdf5")]
pub mod hdf5_file;
#[cfg(feature = "hdf5")]
pub mod hdf5_links;
pub mod image_stack;
pub mod limits;
pub mod netcdf3_file;
pub mod npy_header;
pub mod parquet_table;
pub mod sparse_store;
pub mod table_column;
pub mod table_files;
pub mod xlsx;
pub mod zarr;
pub mod zarr_tree;

use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::RecordBatch;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::array::ArrayData;
use crate::structure::StructureFamily;

/// How the catalog describes where a node's data lives (Tiled's `DataSource`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataSource {
    pub structure_family: StructureFamily,
    pub mimetype: String,
    #[serde(default)]
    pub parameters: Map<String, Value>,
    #[serde(default)]
    pub assets: Vec<Asset>,
    pub management: Management,
}

/// A file or directory a data source reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Asset {
    pub data_uri: String,
    pub is_directory: bool,
    pub parameter: Option<String>,
    pub num: Option<i64>,
}

/// Who owns the bytes behind a data source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Management {
    External,
    Immutable,
    Locked,
    Writable,
}

/// One block of a COO sparse array: coordinates (one vector per dimension, relative to the
/// block) and the values at them.
#[derive(Clone, Debug, PartialEq)]
pub struct SparseBlock {
    pub coords: Vec<Vec<i64>>,
    pub data: ArrayData,
}

/// Reads native chunks of an N-d array.
pub trait ArrayReader: Send + Sync {
    /// Decodes block `block` (an index into the chunk grid) as a C-order array of the block's shape.
    fn read_block(&self, block: &[usize]) -> Result<ArrayData, AdapterError>;
}

/// Reads blocks of a COO sparse array.
pub trait SparseReader: Send + Sync {
    /// The stored elements of block `block`, coordinates relative to the block origin.
    fn read_block(&self, block: &[usize]) -> Result<SparseBlock, AdapterError>;
}

/// Reads partitions of a table.
pub trait TableReader: Send + Sync {
    /// Partition `i` (all columns, including any index column), as one record batch.
    fn read_partition(&self, i: usize) -> Result<RecordBatch, AdapterError>;
    /// Only the named columns of partition `i` (formats that store columns apart decode only
    /// those); unknown names are left out.
    fn read_columns(&self, i: usize, columns: &[String]) -> Result<RecordBatch, AdapterError> {
        let b = self.read_partition(i)?;
        let schema = b.schema();
        let idx: Vec<usize> = columns
            .iter()
            .filter_map(|c| schema.index_of(c).ok())
            .collect();
        b.project(&idx)
            .map_err(|e| AdapterError::Read(e.to_string()))
    }
    /// Names of the columns that hold the (pandas) index rather than data.
    fn index_columns(&self) -> Vec<String>;
}

/// Reads the named buffers of an awkward array.
pub trait AwkwardReader: Send + Sync {
    /// Buffers `<form_key>-<role>` for every requested form key (all when `form_keys` is empty).
    fn read_buffers(&self, form_keys: &[String]) -> Result<Vec<(String, Bytes)>, AdapterError>;
}

/// Reads a ragged array: its values flattened and the nested offsets.
pub trait RaggedReader: Send + Sync {
    /// The whole array as (offsets per variable dimension, from the outside in; flat values).
    fn read(&self) -> Result<(Vec<Vec<i64>>, ArrayData), AdapterError>;
}

/// An opened data source.
#[derive(Clone)]
pub enum Adapter {
    Array(Arc<dyn ArrayReader>),
    Sparse(Arc<dyn SparseReader>),
    Table(Arc<dyn TableReader>),
    Awkward(Arc<dyn AwkwardReader>),
    Ragged(Arc<dyn RaggedReader>),
}

/// Why an adapter could not deliver data.
#[derive(Debug, thiserror::Error, Serialize, Deserialize)]
pub enum AdapterError {
    #[error("no adapter for data sources of type '{0}'")]
    UnknownMimetype(String),
    #[error("data source is invalid: {0}")]
    BadSource(String),
    #[error("block {block:?} is out of range: {reason}")]
    BlockOutOfRange { block: Vec<usize>, reason: String },
    #[error("partition {0} is out of range")]
    PartitionOutOfRange(usize),
    /// The storage failed (an I/O error, a missing runtime): not the file's fault.
    #[error("could not read the data: {0}")]
    Read(String),
    /// The file's content is damaged or does not decode (a bad compressed stream, a chunk
    /// shorter or longer than its shape, a header that contradicts itself).
    #[error("the file's content is corrupt: {0}")]
    Corrupt(String),
    /// The file asks for more than tessera serves (see [`limits`]).
    #[error("the file is too large to serve: {0}")]
    Limit(String),
    /// The file points outside the directories tessera serves (an external link, external
    /// storage, a virtual dataset or a symlink).
    #[error("the file refers outside the served directories: {0}")]
    Outside(String),
}

/// The path, relative to `/`, of a local `file://localhost/...` or `file:///...` location (the
/// stores use object_store's local file system rooted at `/`).
pub fn local_path(uri: &str) -> Result<String, AdapterError> {
    let local = uri
        .strip_prefix("file://localhost/")
        .or_else(|| uri.strip_prefix("file:///"))
        .ok_or_else(|| {
            AdapterError::BadSource(format!(
                "unsupported storage location '{uri}': only file:// locations are configured"
            ))
        })?;
    let decoded = percent_encoding::percent_decode_str(local).decode_utf8_lossy();
    Ok(decoded.trim_end_matches('/').to_string())
}

/// How a message names a file: from the Zarr store that holds it (`scan.zarr/frames`), or by
/// its name (`scan.h5`), never by the path where the server keeps it (a client sees the node's
/// path in the tree, not the server's directories).
pub fn shown(path: &std::path::Path) -> String {
    use std::path::Path;
    // The outermost of the stores that hold `path` (the path itself may be a file in one).
    let mut store = None;
    for dir in path.ancestors() {
        if dir.is_dir() && zarr_tree::is_store(dir) {
            store = Some(dir);
        } else if dir != path {
            break;
        }
    }
    let shown = match store.and_then(Path::parent) {
        Some(parent) => path.strip_prefix(parent).unwrap_or(path),
        None => path.file_name().map_or(path, Path::new),
    };
    shown.display().to_string()
}

/// [`shown`] for a location: a `file://` one as a file, a bucket's by its last segment (the
/// bucket and its endpoint are the server's business).
pub fn shown_uri(uri: &str) -> String {
    match local_path(uri) {
        Ok(p) => shown(std::path::Path::new(&format!("/{p}"))),
        Err(_) => uri
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(uri)
            .to_string(),
    }
}

/// The data source of one part (`parameter` names it, e.g. a dataset or a sheet) of the single
/// file at `uri`, which tessera reads but does not own.
pub fn file_part_source(
    family: StructureFamily,
    mimetype: &str,
    uri: &str,
    parameter: (&str, Value),
) -> DataSource {
    let mut parameters = Map::new();
    parameters.insert(parameter.0.into(), parameter.1);
    external_source(family, mimetype, parameters, [uri.to_string()], false)
}

/// The data source of files at `uris` that tessera reads but does not own: one `data_uri`,
/// or (`numbered`) a `data_uris` list in order, as Tiled names sequences and table parts.
pub fn external_source(
    family: StructureFamily,
    mimetype: &str,
    parameters: Map<String, Value>,
    uris: impl IntoIterator<Item = String>,
    numbered: bool,
) -> DataSource {
    DataSource {
        structure_family: family,
        mimetype: mimetype.into(),
        parameters,
        assets: uris
            .into_iter()
            .enumerate()
            .map(|(i, data_uri)| Asset {
                data_uri,
                is_directory: false,
                parameter: Some(if numbered { "data_uris" } else { "data_uri" }.into()),
                num: numbered.then_some(i as i64),
            })
            .collect(),
        management: Management::External,
    }
}

/// A `file://localhost/...` URI for an absolute local path.
pub fn file_uri(path: &std::path::Path) -> String {
    const PATH: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'?')
        .add(b'<')
        .add(b'>')
        .add(b'`')
        .add(b'{')
        .add(b'}');
    let p = path.to_string_lossy();
    format!(
        "file://localhost/{}",
        percent_encoding::utf8_percent_encode(p.trim_start_matches('/'), PATH)
    )
}

/// `n` elements cut into blocks of `c` (the last one shorter); `[0]` for an empty axis.
pub fn regular_chunks(n: usize, c: usize) -> Vec<usize> {
    if n == 0 {
        return vec![0];
    }
    let c = c.max(1);
    let mut v = vec![c; n / c];
    if !n.is_multiple_of(c) {
        v.push(n % c);
    }
    v
}

/// Puts native-order (little-endian) elements into the byte order `dtype` declares.
pub fn to_declared_order(dtype: &crate::dtype::DataType, bytes: &mut [u8]) {
    if let Some(b) = dtype.builtin()
        && b.is_byte_swapped()
    {
        // Complex numbers swap each of their two halves.
        let unit = if b.kind == crate::dtype::Kind::Complex {
            b.itemsize / 2
        } else {
            b.itemsize
        };
        if unit > 1 {
            for v in bytes.chunks_exact_mut(unit) {
                v.reverse();
            }
        }
    }
}

/// The origin and shape of block `block` of `grid`, or why there is no such block.
pub fn block_region(
    grid: &crate::chunks::ChunkGrid,
    block: &[usize],
) -> Result<(Vec<usize>, Vec<usize>), AdapterError> {
    let out_of_range = |e: crate::chunks::ChunkError| AdapterError::BlockOutOfRange {
        block: block.to_vec(),
        reason: e.to_string(),
    };
    Ok((
        grid.block_origin(block).map_err(out_of_range)?,
        grid.block_shape(block).map_err(out_of_range)?,
    ))
}

/// The files of a data source, in `num` order.
pub fn asset_files(source: &DataSource) -> Result<Vec<PathBuf>, AdapterError> {
    let mut assets: Vec<&Asset> = source.assets.iter().collect();
    assets.sort_by_key(|a| a.num.unwrap_or(0));
    let files = assets
        .iter()
        .map(|a| Ok(PathBuf::from(format!("/{}", local_path(&a.data_uri)?))))
        .collect::<Result<Vec<_>, AdapterError>>()?;
    if files.is_empty() {
        return Err(AdapterError::BadSource(format!(
            "a {} data source needs at least one file",
            source.mimetype
        )));
    }
    Ok(files)
}

/// The location of a written data source (its first asset).
pub fn first_asset(source: &DataSource) -> Result<String, AdapterError> {
    source
        .assets
        .first()
        .map(|a| a.data_uri.clone())
        .ok_or_else(|| {
            AdapterError::BadSource(format!("a {} data source needs an asset", source.mimetype))
        })
}

/// The data source as the read path opens it: with the node's structure in its parameters
/// (so readers need no metadata read, and a changed structure opens a new reader).
pub fn with_structure<T: Serialize>(source: &DataSource, structure: &T) -> DataSource {
    let mut s = source.clone();
    if let Ok(v) = serde_json::to_value(structure) {
        s.parameters.insert("structure".into(), v);
    }
    s
}

/// The structure [`with_structure`] put in a data source's parameters.
pub fn structure_of<T: serde::de::DeserializeOwned>(
    source: &DataSource,
) -> Result<T, AdapterError> {
    let v = source.parameters.get("structure").cloned().ok_or_else(|| {
        AdapterError::BadSource(format!(
            "the {} data source has no structure",
            source.mimetype
        ))
    })?;
    serde_json::from_value(v).map_err(|e| AdapterError::BadSource(e.to_string()))
}

/// The async runtime the store readers block on (they run on the blocking pool).
pub fn runtime() -> Result<tokio::runtime::Handle, AdapterError> {
    tokio::runtime::Handle::try_current()
        .map_err(|_| AdapterError::Read("store reads need the async runtime".into()))
}

/// Whether the tables of a mimetype are parsed whole whatever columns are asked for (text,
/// workbooks), so that a partition is better read once and projected than read per column.
pub fn parsed_whole(mimetype: &str) -> bool {
    matches!(mimetype, table_files::CSV_MIMETYPE | xlsx::MIMETYPE)
}

/// Opens a data source with the adapter its mimetype names. Readers of files tessera does
/// not own are [`Guarded`]: a panic a crafted file provokes becomes a [`AdapterError::Corrupt`].
pub fn open(source: &DataSource) -> Result<Adapter, AdapterError> {
    let adapter = open_unguarded(source)?;
    if source.management != Management::External {
        return Ok(adapter);
    }
    Ok(match adapter {
        Adapter::Array(r) => Adapter::Array(Arc::new(Guarded(r))),
        Adapter::Table(r) => Adapter::Table(Arc::new(Guarded(r))),
        other => other,
    })
}

/// A reader of untrusted files whose panics are caught and reported as corrupt content, so
/// a bug a crafted file finds costs one 422, not the request's worker.
pub struct Guarded<R: ?Sized>(Arc<R>);

fn caught<T>(f: impl FnOnce() -> Result<T, AdapterError>) -> Result<T, AdapterError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(AdapterError::Corrupt(format!("reading it failed ({why})")))
    })
}

impl ArrayReader for Guarded<dyn ArrayReader> {
    fn read_block(&self, block: &[usize]) -> Result<ArrayData, AdapterError> {
        caught(|| self.0.read_block(block))
    }
}

impl TableReader for Guarded<dyn TableReader> {
    fn read_partition(&self, i: usize) -> Result<RecordBatch, AdapterError> {
        caught(|| self.0.read_partition(i))
    }
    fn read_columns(&self, i: usize, columns: &[String]) -> Result<RecordBatch, AdapterError> {
        caught(|| self.0.read_columns(i, columns))
    }
    fn index_columns(&self) -> Vec<String> {
        caught(|| Ok(self.0.index_columns())).unwrap_or_default()
    }
}

fn open_unguarded(source: &DataSource) -> Result<Adapter, AdapterError> {
    match source.mimetype.as_str() {
        demo::MIMETYPE => demo::open(source),
        table_column::MIMETYPE => table_column::open(source),
        zarr::MIMETYPE => zarr::open(source),
        parquet_table::MIMETYPE if source.management == Management::External => {
            table_files::open_parquet(source)
        }
        parquet_table::MIMETYPE => parquet_table::open(source),
        table_files::CSV_MIMETYPE => table_files::open_csv(source),
        xlsx::MIMETYPE => xlsx::open(source),
        image_stack::TIFF_MIMETYPE
        | image_stack::TIFF_SEQUENCE_MIMETYPE
        | image_stack::NPY_MIMETYPE
        | image_stack::NPY_SEQUENCE_MIMETYPE => image_stack::open(source),
        #[cfg(feature = "hdf5")]
        hdf5_file::MIMETYPE => hdf5_file::open(source),
        netcdf3_file::MIMETYPE => netcdf3_file::open_any(source),
        sparse_store::MIMETYPE => sparse_store::open(source),
        awkward_store::MIMETYPE => awkward_store::open(source),
        other => Err(AdapterError::UnknownMimetype(other.to_string())),
    }
}
