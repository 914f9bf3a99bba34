//! HDF5 files (and NeXus, which is HDF5 with conventions): groups are containers, datasets are
//! arrays, attributes are metadata. A dataset's blocks follow its native chunks, so a request
//! for one frame of a chunked detector stack reads (and decompresses) only that frame's chunks;
//! every filter the linked libhdf5 knows (gzip, shuffle, lzf, szip, ...) is applied by libhdf5.
//!
//! The data source of a dataset names the file (its first asset) and the dataset's path inside
//! it (`parameters.dataset`), as Tiled's does, so nodes registered by the Tiled client read too.

use std::path::Path;
use std::sync::Arc;

use hdf5::types::{FixedAscii, FixedUnicode, IntSize, TypeDescriptor, VarLenAscii, VarLenUnicode};
use hdf5::{Hyperslab, Selection, SliceOrIndex};
use serde_json::{Map, Value, json};

use super::cf::{self, CfAttrs, CfDecode, Num};
use super::hdf5_links;
use super::limits::{self, Walk};
use super::{Adapter, AdapterError, ArrayReader, DataSource};
use crate::array::{ArrayData, encode_unicode};
use crate::chunks::ChunkGrid;
use crate::dtype::{BuiltinDType, DataType, Kind};
use crate::node::TreeNode;
use crate::structure::{ArrayStructure, Spec, Structure, StructureFamily};

/// The mimetype of HDF5 data sources.
pub const MIMETYPE: &str = "application/x-hdf5";

/// Blocks of contiguous (unchunked) datasets are cut along the first axis to about this size.
const CONTIGUOUS_BLOCK_BYTES: usize = 8 << 20;

/// A file that cannot be read is a problem with the data, reported as such (a 4xx, naming the
/// file), not as a server fault the client would retry.
fn read_err(path: &Path, what: &str, e: impl std::fmt::Display) -> AdapterError {
    AdapterError::BadSource(format!("{}: {what}: {e}", super::shown(path)))
}

/// A read by file offset that failed: the file ending early (shortened since it was opened,
/// or its index lies) is the file's fault, anything else the storage's.
fn io_err(path: &Path, what: &str, e: std::io::Error) -> AdapterError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        return corrupt(
            path,
            what,
            "the file ends before the data its index points at",
        );
    }
    AdapterError::Read(format!("{}: {what}: {e}", super::shown(path)))
}

/// Data that does not decode (a damaged chunk, an index that points past the file).
fn corrupt(path: &Path, what: &str, e: impl std::fmt::Display) -> AdapterError {
    AdapterError::Corrupt(format!("{}: {what}: {e}", super::shown(path)))
}

/// Refuses a dataset whose bytes may live in another file: external storage (libhdf5 resolves
/// its relative names against the server's working directory, so where it reads cannot be
/// checked from here) and virtual datasets (a source named in the same file may still be
/// reached through an external link, which libhdf5 would follow).
fn storage_in_file(ds: &hdf5::Dataset) -> Result<(), String> {
    let dcpl = ds.dcpl().map_err(|e| e.to_string())?;
    let external = dcpl.get_external().map_err(|e| e.to_string())?;
    if let Some(f) = external.first() {
        return Err(format!(
            "its data is stored in another file ({:?}); HDF5 external storage is not served",
            f.name
        ));
    }
    if dcpl.layout() == hdf5::dataset::Layout::Virtual {
        return Err(
            "it is a virtual dataset, which reads other datasets and files; virtual \
                    datasets are not served"
                .into(),
        );
    }
    Ok(())
}

/// Most elements of an attribute, or of a variable-length string dataset, read whole while
/// describing a file.
const MAX_DESCRIBED_ELEMENTS: usize = 1 << 20;

/// Opens an HDF5 file for reading, with an error that names the file and the reason.
pub fn open_file(path: &Path) -> Result<hdf5::File, AdapterError> {
    if !path.is_file() {
        return Err(AdapterError::BadSource(format!(
            "{}: no such file",
            super::shown(path)
        )));
    }
    hdf5::File::open(path).map_err(|e| {
        AdapterError::BadSource(format!(
            "{}: not a readable HDF5 file ({e})",
            super::shown(path)
        ))
    })
}

/// How the elements of a dataset are read into our bytes.
#[derive(Clone, Copy, Debug)]
enum ReadAs {
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F32,
    F64,
    Bool,
    /// Fixed-width byte strings of this width (`|S<n>`).
    Fixed(usize, bool),
    /// Variable-length strings, served as `<U<chars>`.
    VarLen(bool),
    /// Compound (structured) elements, served as their stored bytes: read from the file
    /// without libhdf5's type conversion (see [`compound`]).
    Raw,
}

/// A compound type as a structured data type: its members in file order, each a number, a
/// boolean or a fixed-width byte string, packed (Tiled's structured types have no offsets).
/// Padding between members or after the last one is dropped on reading (see [`Repack`]).
fn compound(c: &hdf5::types::CompoundType) -> Result<DataType, String> {
    let mut fields = c.fields.clone();
    fields.sort_by_key(|f| f.offset);
    let mut out = Vec::new();
    let mut itemsize = 0;
    for f in &fields {
        let (dtype, _) =
            data_type(&f.ty, None).map_err(|e| format!("compound member {:?}: {e}", f.name))?;
        if matches!(
            f.ty,
            TypeDescriptor::VarLenAscii | TypeDescriptor::VarLenUnicode
        ) {
            return Err(format!(
                "compound member {:?} is a variable-length string, which is not served",
                f.name
            ));
        }
        itemsize += dtype.itemsize();
        out.push(crate::dtype::Field::scalar(&f.name, dtype));
    }
    Ok(DataType::Structured(crate::dtype::StructDType {
        itemsize,
        fields: out,
    }))
}

/// How a compound type with padding is stored: the stored element size and each member's
/// (offset, size), in offset order. Reading copies the members together.
#[derive(Clone, Debug, PartialEq)]
struct Repack {
    stored: usize,
    members: Vec<(usize, usize)>,
}

impl Repack {
    /// The repacking a dataset of `td` needs; `None` when it is stored packed already.
    fn of(td: &TypeDescriptor) -> Option<Repack> {
        let TypeDescriptor::Compound(c) = td else {
            return None;
        };
        let mut members: Vec<(usize, usize)> =
            c.fields.iter().map(|f| (f.offset, f.ty.size())).collect();
        members.sort_unstable();
        let packed: usize = members.iter().map(|(_, n)| n).sum();
        let contiguous = members
            .iter()
            .scan(0, |at, &(off, n)| {
                let ok = off == *at;
                *at += n;
                Some(ok)
            })
            .all(|ok| ok);
        (!(contiguous && packed == c.size)).then_some(Repack {
            stored: c.size,
            members,
        })
    }

    /// Stored elements (`stored` bytes each) as packed ones.
    fn apply(&self, bytes: &[u8]) -> Vec<u8> {
        let packed: usize = self.members.iter().map(|(_, n)| n).sum();
        let mut out = Vec::with_capacity(bytes.len() / self.stored.max(1) * packed);
        for element in bytes.chunks_exact(self.stored) {
            for &(off, n) in &self.members {
                out.extend_from_slice(&element[off..off + n]);
            }
        }
        out
    }
}

/// The data type a dataset is served as, and how to read it. `dataset` is needed only for
/// variable-length strings, whose width is the longest value.
fn data_type(
    td: &TypeDescriptor,
    dataset: Option<&hdf5::Dataset>,
) -> Result<(DataType, ReadAs), String> {
    use TypeDescriptor as T;
    let b = |kind, size| DataType::Builtin(BuiltinDType::new(kind, size));
    let int = |size: IntSize, signed: bool| {
        let (n, r) = match (size, signed) {
            (IntSize::U1, true) => (1, ReadAs::I8),
            (IntSize::U2, true) => (2, ReadAs::I16),
            (IntSize::U4, true) => (4, ReadAs::I32),
            (IntSize::U8, true) => (8, ReadAs::I64),
            (IntSize::U1, false) => (1, ReadAs::U8),
            (IntSize::U2, false) => (2, ReadAs::U16),
            (IntSize::U4, false) => (4, ReadAs::U32),
            (IntSize::U8, false) => (8, ReadAs::U64),
        };
        (b(if signed { Kind::Int } else { Kind::UInt }, n), r)
    };
    Ok(match td {
        T::Integer(s) => int(*s, true),
        T::Unsigned(s) => int(*s, false),
        T::Float(s) => match *s as usize {
            4 => (b(Kind::Float, 4), ReadAs::F32),
            8 => (b(Kind::Float, 8), ReadAs::F64),
            n => return Err(format!("{n}-byte floats are not supported")),
        },
        T::Boolean => (b(Kind::Bool, 1), ReadAs::Bool),
        T::Enum(e) if is_bool_enum(e) => (b(Kind::Bool, 1), ReadAs::Bool),
        T::Enum(e) => int(e.size, e.signed),
        T::FixedAscii(n) | T::FixedUnicode(n) => (
            b(Kind::Bytes, *n),
            ReadAs::Fixed(*n, matches!(td, T::FixedUnicode(_))),
        ),
        T::VarLenAscii | T::VarLenUnicode => {
            let unicode = matches!(td, T::VarLenUnicode);
            let chars = match dataset {
                Some(ds) if ds.size() > MAX_DESCRIBED_ELEMENTS => {
                    return Err(format!(
                        "{} variable-length strings; datasets of more than \
                         {MAX_DESCRIBED_ELEMENTS} are not served",
                        ds.size()
                    ));
                }
                Some(ds) => read_strings(ds, &Selection::All, ReadAs::VarLen(unicode))
                    .map_err(|e| e.to_string())?
                    .iter()
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
                    .max(1),
                None => 1,
            };
            (DataType::unicode(chars), ReadAs::VarLen(unicode))
        }
        T::Compound(c) => match complex_size(c) {
            // h5py's complex numbers: read as stored, which is numpy's layout.
            Some(n) => (b(Kind::Complex, n), ReadAs::Raw),
            None => (compound(c)?, ReadAs::Raw),
        },
        other => return Err(format!("datasets of HDF5 type {other} are not served")),
    })
}

/// The size of a complex number stored as h5py stores one (a compound of two floats of one
/// size named `r` and `i`, in that order, without padding); `None` for other compounds.
fn complex_size(c: &hdf5::types::CompoundType) -> Option<usize> {
    let [re, im] = c.fields.as_slice() else {
        return None;
    };
    let half = match (&re.ty, &im.ty) {
        (TypeDescriptor::Float(a), TypeDescriptor::Float(b)) if a == b => re.ty.size(),
        _ => return None,
    };
    let named = re.name == "r" && im.name == "i";
    (named && re.offset == 0 && im.offset == half && c.size == 2 * half).then_some(2 * half)
}

fn is_bool_enum(e: &hdf5::types::EnumType) -> bool {
    e.members.len() == 2
        && e.members
            .iter()
            .all(|m| m.name.eq_ignore_ascii_case("true") || m.name.eq_ignore_ascii_case("false"))
}

fn read_strings(
    ds: &hdf5::Dataset,
    sel: &Selection,
    how: ReadAs,
) -> Result<Vec<String>, hdf5::Error> {
    let r = ds.as_reader();
    macro_rules! fixed {
        ($t:ident, $n:literal) => {
            r.read_slice::<$t<$n>, _, ndarray::IxDyn>(sel)?
                .iter()
                .map(|s| s.as_str().to_string())
                .collect()
        };
    }
    // libhdf5 converts between fixed string widths: read through the narrowest buffer type
    // that holds the stored width.
    macro_rules! fixed_any {
        ($t:ident, $width:expr) => {
            match $width {
                0..=16 => fixed!($t, 16),
                17..=64 => fixed!($t, 64),
                65..=256 => fixed!($t, 256),
                257..=1024 => fixed!($t, 1024),
                _ => fixed!($t, 4096),
            }
        };
    }
    Ok(match how {
        ReadAs::VarLen(true) => r
            .read_slice::<VarLenUnicode, _, ndarray::IxDyn>(sel)?
            .iter()
            .map(|s| s.as_str().to_string())
            .collect(),
        ReadAs::VarLen(false) => r
            .read_slice::<VarLenAscii, _, ndarray::IxDyn>(sel)?
            .iter()
            .map(|s| s.as_str().to_string())
            .collect(),
        ReadAs::Fixed(n, true) => fixed_any!(FixedUnicode, n),
        ReadAs::Fixed(n, _) => fixed_any!(FixedAscii, n),
        _ => Vec::new(),
    })
}

/// A data type as numpy writes it, for messages.
fn describe(dt: &DataType) -> String {
    dt.builtin()
        .map(|b| b.numpy_str())
        .unwrap_or_else(|| "structured".into())
}

/// The structure of a dataset: its native chunks (regular, the last one per axis clipped), or
/// slabs of about [`CONTIGUOUS_BLOCK_BYTES`] along the first axis when it is not chunked.
fn array_structure(ds: &hdf5::Dataset) -> Result<ArrayStructure, String> {
    let td = ds
        .dtype()
        .and_then(|t| t.to_descriptor())
        .map_err(|e| e.to_string())?;
    storage_in_file(ds)?;
    let shape = ds.shape();
    let (data_type, _) = data_type(&td, Some(ds))?;
    if limits::checked_bytes(&shape, data_type.itemsize()).is_none() {
        return Err(format!(
            "its shape {shape:?} holds more than 2^64 bytes; it is not served"
        ));
    }
    let block: Vec<usize> = match ds.chunk() {
        Some(c) if c.len() == shape.len() => c,
        _ => {
            // Cannot overflow: the whole array's size fits in 64 bits (checked above).
            let row: usize = shape.iter().skip(1).product::<usize>() * data_type.itemsize();
            let rows = (CONTIGUOUS_BLOCK_BYTES / row.max(1)).max(1);
            shape
                .iter()
                .enumerate()
                .map(|(i, &n)| if i == 0 { rows.min(n) } else { n })
                .collect()
        }
    };
    let chunks =
        limits::chunk_lists(&shape, &block, data_type.itemsize()).map_err(|e| e.to_string())?;
    Ok(ArrayStructure {
        data_type,
        chunks,
        shape,
        dims: None,
        resizable: false,
    })
}

/// An attribute's value as JSON (`None` for types that have no JSON form).
fn attr_value(attr: &hdf5::Attribute) -> Option<Value> {
    if attr.size() > MAX_DESCRIBED_ELEMENTS {
        return None;
    }
    let td = attr.dtype().ok()?.to_descriptor().ok()?;
    let scalar = attr.is_scalar();
    let shape = attr.shape();
    let values: Vec<Value> = match &td {
        TypeDescriptor::Integer(_) => attr
            .read_raw::<i64>()
            .ok()?
            .into_iter()
            .map(Value::from)
            .collect(),
        TypeDescriptor::Unsigned(_) => attr
            .read_raw::<u64>()
            .ok()?
            .into_iter()
            .map(Value::from)
            .collect(),
        TypeDescriptor::Enum(e) if !is_bool_enum(e) => attr
            .read_raw::<i64>()
            .ok()?
            .into_iter()
            .map(Value::from)
            .collect(),
        TypeDescriptor::Float(_) => attr
            .read_raw::<f64>()
            .ok()?
            .into_iter()
            .map(|v| serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
            .collect(),
        TypeDescriptor::Boolean | TypeDescriptor::Enum(_) => attr
            .read_raw::<bool>()
            .ok()?
            .into_iter()
            .map(Value::from)
            .collect(),
        TypeDescriptor::VarLenUnicode => strings(attr.read_raw::<VarLenUnicode>().ok()?),
        TypeDescriptor::VarLenAscii => strings(attr.read_raw::<VarLenAscii>().ok()?),
        TypeDescriptor::FixedUnicode(_) => strings(attr.read_raw::<FixedUnicode<4096>>().ok()?),
        TypeDescriptor::FixedAscii(_) => strings(attr.read_raw::<FixedAscii<4096>>().ok()?),
        _ => return None,
    };
    if scalar {
        return values.into_iter().next();
    }
    Some(nest(&values, &shape))
}

fn strings<S: AsRef<str>>(v: Vec<S>) -> Vec<Value> {
    v.iter().map(|s| Value::from(s.as_ref())).collect()
}

/// Flat C-order values as nested JSON lists of `shape`.
fn nest(values: &[Value], shape: &[usize]) -> Value {
    match shape {
        [] | [_] => Value::Array(values.to_vec()),
        [_, rest @ ..] => {
            let step = rest.iter().product::<usize>().max(1);
            Value::Array(values.chunks(step).map(|c| nest(c, rest)).collect())
        }
    }
}

/// The attributes of an object as metadata.
fn attributes(loc: &hdf5::Location) -> Map<String, Value> {
    let mut m = Map::new();
    for name in loc.attr_names().unwrap_or_default() {
        if let Some(v) = loc.attr(&name).ok().as_ref().and_then(attr_value) {
            m.insert(name, v);
        }
    }
    m
}

/// NeXus classes (`NX_class`) become specs, so clients can search and dispatch on them.
fn specs_of(metadata: &Map<String, Value>) -> Vec<Spec> {
    match metadata.get("NX_class") {
        Some(Value::String(s)) if !s.is_empty() => vec![Spec::named(s)],
        _ => Vec::new(),
    }
}

/// The data source of dataset `dataset` (an absolute path inside the file) of file `uri`.
pub fn data_source(uri: &str, dataset: &str) -> DataSource {
    super::file_part_source(
        StructureFamily::Array,
        MIMETYPE,
        uri,
        ("dataset", json!(dataset)),
    )
}

/// The tree of an HDF5 file: a container keyed `key` mirroring its groups, with its datasets
/// as arrays. Datasets of types that cannot be served are skipped with a log line in `skipped`.
pub fn inspect(
    path: &Path,
    key: &str,
    skipped: &mut Vec<String>,
) -> Result<TreeNode, AdapterError> {
    let file = open_file(path)?;
    let uri = super::file_uri(path);
    let root = file
        .as_group()
        .map_err(|e| read_err(path, "opening the root group", e))?;
    let mut ancestors = Vec::new();
    let mut walk = Walk::default();
    let at = Place {
        file: &file,
        path,
        uri: &uri,
    };
    group_node(&root, key, "", &at, &mut ancestors, &mut walk, skipped)
}

/// The file a walk describes: the open file (links are resolved from its root), its path
/// (for messages and the directory external links may lead into) and URI (for data sources).
struct Place<'a> {
    file: &'a hdf5::File,
    path: &'a Path,
    uri: &'a str,
}

/// The mimetype of NetCDF files (NetCDF-4, which is HDF5 underneath).
pub const NETCDF_MIMETYPE: &str = super::netcdf3_file::MIMETYPE;

/// Attributes the NetCDF library keeps for itself (xarray hides them too).
const NETCDF_INTERNAL: [&str; 9] = [
    "_Netcdf4Coordinates",
    "_Netcdf4Dimid",
    "_NCProperties",
    "CLASS",
    "NAME",
    "DIMENSION_LIST",
    "REFERENCE_LIST",
    "_FillValue",
    "coordinates",
];

/// A variable's or file's attributes as xarray shows them: without the library's own, and
/// one-element arrays (how NetCDF stores every number) as plain values.
fn public_attributes(loc: &hdf5::Location) -> Map<String, Value> {
    let mut m = attributes(loc);
    m.retain(|k, _| {
        !NETCDF_INTERNAL.contains(&k.as_str()) && !cf::ENCODING_ATTRIBUTES.contains(&k.as_str())
    });
    for v in m.values_mut() {
        if let Value::Array(a) = v
            && a.len() == 1
        {
            *v = a.remove(0);
        }
    }
    m
}

fn int_attr(loc: &hdf5::Location, name: &str) -> Option<Vec<i64>> {
    loc.attr(name).ok()?.read_raw::<i64>().ok()
}

fn string_attr(loc: &hdf5::Location, name: &str) -> Option<String> {
    match loc.attr(name).ok().as_ref().and_then(attr_value)? {
        Value::String(s) => Some(s),
        _ => None,
    }
}

/// What decoding a NetCDF-4 variable takes, from its attributes (see [`cf`]).
fn cf_attrs(ds: &hdf5::Dataset) -> CfAttrs {
    use hdf5::types::FloatSize;
    let nums = |name: &str| -> Vec<Num> {
        // As many values as an attribute shown in metadata may hold, at most.
        let Some(a) = ds
            .attr(name)
            .ok()
            .filter(|a| a.size() <= MAX_DESCRIBED_ELEMENTS)
        else {
            return Vec::new();
        };
        match a.dtype().and_then(|t| t.to_descriptor()) {
            Ok(TypeDescriptor::Float(FloatSize::U4)) => a
                .read_raw::<f32>()
                .map(|v| v.into_iter().map(Num::F32).collect())
                .unwrap_or_default(),
            Ok(TypeDescriptor::Float(_)) => a
                .read_raw::<f64>()
                .map(|v| v.into_iter().map(Num::F64).collect())
                .unwrap_or_default(),
            Ok(TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_)) => a
                .read_raw::<i64>()
                .map(|v| v.into_iter().map(Num::Int).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    };
    CfAttrs {
        fill_value: nums("_FillValue"),
        missing_value: nums("missing_value"),
        scale_factor: nums("scale_factor").first().copied(),
        add_offset: nums("add_offset").first().copied(),
        unsigned: string_attr(ds, "_Unsigned").map(|s| s.eq_ignore_ascii_case("true")),
        units: string_attr(ds, "units"),
        calendar: string_attr(ds, "calendar"),
    }
}

/// How a NetCDF-4 variable is served beside how it is stored, as xarray reads it: a character
/// array's last dimension joins its characters into strings, and numbers are decoded (see
/// [`cf`]).
#[derive(Clone, Debug, Default)]
struct NcView {
    /// A character array (`|S1` with at least one dimension), served as `|S<last>`.
    chars: bool,
    decode: Option<CfDecode>,
}

impl NcView {
    fn of(ds: &hdf5::Dataset, stored: &ArrayStructure) -> NcView {
        let is_char = matches!(&stored.data_type, DataType::Builtin(b) if b.kind == Kind::Bytes && b.itemsize == 1);
        let chars = is_char && stored.shape.last().is_some_and(|&n| n > 0);
        let decode = match chars {
            true => None,
            false => CfDecode::new(&stored.data_type, &cf_attrs(ds)),
        };
        NcView { chars, decode }
    }

    /// The served structure of a variable stored as `s`.
    fn served(&self, mut s: ArrayStructure) -> ArrayStructure {
        if self.chars
            && let Some(n) = s.shape.pop()
        {
            s.chunks.pop();
            if let Some(d) = s.dims.as_mut() {
                d.pop();
            }
            s.data_type = DataType::Builtin(BuiltinDType::new(Kind::Bytes, n));
        }
        if let Some(d) = &self.decode {
            s.data_type = d.served();
        }
        s
    }

    /// The stored structure behind a served one (a node's, which a client may have declared).
    fn stored(&self, mut s: ArrayStructure) -> ArrayStructure {
        if self.chars {
            let n = s.data_type.itemsize();
            s.shape.push(n);
            s.chunks.push(vec![n]);
            s.dims = None;
            s.data_type = DataType::Builtin(BuiltinDType::new(Kind::Bytes, 1));
        }
        if let Some(d) = &self.decode {
            s.data_type = d.stored();
        }
        s
    }

    /// The reader of served blocks over one of stored blocks.
    fn wrap(self, inner: Arc<dyn ArrayReader>, served: &ArrayStructure) -> Arc<dyn ArrayReader> {
        match (self.chars, self.decode) {
            (true, _) => Arc::new(JoinedChars {
                inner,
                dtype: served.data_type.clone(),
            }),
            (false, Some(decode)) => Arc::new(cf::Decoded { inner, decode }),
            (false, None) => inner,
        }
    }
}

/// A character array's blocks with their last axis (whole in every block) read as strings.
struct JoinedChars {
    inner: Arc<dyn ArrayReader>,
    dtype: DataType,
}

impl ArrayReader for JoinedChars {
    fn read_block(&self, block: &[usize]) -> Result<ArrayData, AdapterError> {
        let mut at = block.to_vec();
        at.push(0);
        let mut data = self.inner.read_block(&at)?;
        data.shape.pop();
        data.dtype = self.dtype.clone();
        Ok(data)
    }
}

/// A NetCDF-4 file as an xarray dataset: a container with the `xarray_dataset` spec whose
/// children are its variables with their dimension names, specs `xarray_data_var` or
/// `xarray_coord`, and `{"attrs": ...}` metadata, as the Tiled client reads them back with
/// `.read()` into an `xarray.Dataset`. Dimensions without a variable are not children.
/// NetCDF-3 files are not HDF5: `netcdf3_file` reads them.
pub fn inspect_netcdf(
    path: &Path,
    key: &str,
    skipped: &mut Vec<String>,
) -> Result<TreeNode, AdapterError> {
    let file = open_file(path).map_err(|e| {
        AdapterError::BadSource(format!("{e}; it is neither NetCDF-4 (HDF5) nor NetCDF-3"))
    })?;
    let uri = super::file_uri(path);
    let err = |e: hdf5::Error| read_err(path, "reading its variables", e);
    let root = file.as_group().map_err(err)?;
    let mut datasets = Vec::new();
    for name in root.member_names().map_err(err)? {
        // NetCDF writes variables as datasets of the file itself: a link (which libhdf5 would
        // follow, perhaps into another file) is not one.
        if hdf5_links::link(&root, &name) != Ok(hdf5_links::Link::Hard) {
            skipped.push(format!(
                "{}: {name}: a link, not a NetCDF variable; not followed",
                super::shown(path)
            ));
            continue;
        }
        match root.loc_type_by_name(&name) {
            Ok(hdf5::LocationType::Dataset) => {
                datasets.push((name.clone(), root.dataset(&name).map_err(err)?))
            }
            Ok(hdf5::LocationType::Group) => {
                skipped.push(format!(
                    "{}: group {name}: NetCDF groups are not served yet",
                    super::shown(path)
                ));
            }
            _ => {}
        }
    }
    // Dimension ids -> names, from the dimension scales.
    let mut dim_names = std::collections::BTreeMap::new();
    for (name, ds) in &datasets {
        if string_attr(ds, "CLASS").as_deref() == Some("DIMENSION_SCALE")
            && let Some(id) = int_attr(ds, "_Netcdf4Dimid").and_then(|v| v.first().copied())
        {
            dim_names.insert(id, name.clone());
        }
    }
    // Coordinates: the variables that are dimensions, and those named in `coordinates`.
    let mut coords: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    for (name, ds) in &datasets {
        if string_attr(ds, "CLASS").as_deref() == Some("DIMENSION_SCALE") {
            coords.insert(name.clone());
        }
        if let Some(c) = string_attr(ds, "coordinates") {
            coords.extend(c.split_whitespace().map(str::to_string));
        }
    }
    let mut node = TreeNode::container(key, json!({"attrs": public_attributes(&root)}), Vec::new());
    node.specs = vec![Spec::named("xarray_dataset")];
    for (name, ds) in &datasets {
        // A dimension without a variable of its own.
        if string_attr(ds, "NAME")
            .is_some_and(|n| n.starts_with("This is a netCDF dimension but not a netCDF variable"))
        {
            continue;
        }
        let mut s = match array_structure(ds) {
            Ok(s) => s,
            Err(why) => {
                skipped.push(format!("{}: variable {name}: {why}", super::shown(path)));
                continue;
            }
        };
        let dims: Option<Vec<String>> = match int_attr(ds, "_Netcdf4Coordinates") {
            Some(ids) => ids.iter().map(|id| dim_names.get(id).cloned()).collect(),
            None if coords.contains(name) && s.shape.len() == 1 => Some(vec![name.clone()]),
            None => None,
        };
        s.dims = Some(
            dims.filter(|d| d.len() == s.shape.len())
                .unwrap_or_else(|| (0..s.shape.len()).map(|i| format!("dim_{i}")).collect()),
        );
        let view = NcView::of(ds, &s);
        let s = view.served(s);
        let mut attrs = public_attributes(ds);
        if let Some(d) = &view.decode {
            attrs.retain(|k, _| !d.consumed().contains(&k.as_str()));
        }
        let spec = if coords.contains(name) {
            "xarray_coord"
        } else {
            "xarray_data_var"
        };
        let mut source = data_source(&uri, &format!("/{name}"));
        source.mimetype = NETCDF_MIMETYPE.into();
        node.children.push(
            TreeNode::data(name, Structure::Array(s), source)
                .with_metadata(json!({"attrs": attrs}))
                .with_specs(&[spec]),
        );
    }
    node.inline_contents = true;
    Ok(node)
}

fn group_node(
    g: &hdf5::Group,
    key: &str,
    at: &str,
    place: &Place,
    ancestors: &mut Vec<(u64, hdf5::LocationToken)>,
    walk: &mut Walk,
    skipped: &mut Vec<String>,
) -> Result<TreeNode, AdapterError> {
    let path = place.path;
    let err = |e: hdf5::Error| read_err(path, "reading its layout", e);
    walk.enter(ancestors.len())
        .map_err(|e| AdapterError::Limit(format!("{}: {e}", super::shown(path))))?;
    let info = g.loc_info().map_err(err)?;
    ancestors.push((info.fileno, info.token));
    let metadata = attributes(g);
    let mut node = TreeNode::container(key, Value::Object(metadata.clone()), Vec::new());
    node.specs = specs_of(&metadata);
    // Link types first: soft and external links are resolved here, one link at a time (see
    // `hdf5_links`), never by libhdf5.
    let mut links = Vec::new();
    g.iter_visit_default(|name, link| {
        links.push((name.to_string(), link.link_type));
        Ok(())
    })
    .map_err(err)?;
    links.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, link_type) in links {
        let child_at = format!("{at}/{name}");
        // The child's file (when a link leads elsewhere) and its path there.
        let resolved = match link_type {
            hdf5::LinkType::Hard => None,
            _ => match hdf5_links::resolve(place.file, place.path, &child_at) {
                Ok(r) => Some(r),
                Err(why) => {
                    skipped.push(format!("{child_at}: {why}"));
                    continue;
                }
            },
        };
        let (holder, object) = match &resolved {
            Some(r) => (r.file.as_group().map_err(err)?, r.object.clone()),
            None => (g.clone(), name.clone()),
        };
        let Ok(kind) = holder.loc_type_by_name(&object) else {
            skipped.push(format!("{child_at}: the link cannot be resolved"));
            continue;
        };
        match kind {
            hdf5::LocationType::Group => {
                let child = holder.group(&object).map_err(err)?;
                let ci = child.loc_info().map_err(err)?;
                if ancestors.contains(&(ci.fileno, ci.token)) {
                    skipped.push(format!("{child_at}: links back to one of its parents"));
                    continue;
                }
                node.children.push(group_node(
                    &child, &name, &child_at, place, ancestors, walk, skipped,
                )?);
            }
            hdf5::LocationType::Dataset => {
                let ds = holder.dataset(&object).map_err(err)?;
                walk.enter(ancestors.len())
                    .map_err(|e| AdapterError::Limit(format!("{}: {e}", super::shown(path))))?;
                match array_structure(&ds) {
                    Ok(s) => {
                        let metadata = attributes(&ds);
                        // The data source names the served file and the path in it; reading
                        // follows the same links again.
                        let mut child = TreeNode::data(
                            &name,
                            Structure::Array(s),
                            data_source(place.uri, &child_at),
                        );
                        child.specs = specs_of(&metadata);
                        child.metadata = metadata;
                        node.children.push(child);
                    }
                    Err(why) => skipped.push(format!("{child_at}: {why}")),
                }
            }
            _ => {}
        }
    }
    ancestors.pop();
    Ok(node)
}

/// Opens dataset `dataset` of the file at `path`, following its links as [`hdf5_links`]
/// allows: the dataset, and the file that holds it with its path (where the raw-chunk reads
/// go).
fn open_dataset(
    path: &Path,
    dataset: &str,
) -> Result<(hdf5::Dataset, std::path::PathBuf), AdapterError> {
    let file = open_file(path)?;
    let r = hdf5_links::resolve(&file, path, dataset).map_err(|e| {
        let e = format!("{}: dataset {dataset}: {e}", super::shown(path));
        match e.contains("outside the directory") {
            true => AdapterError::Outside(e),
            false => AdapterError::BadSource(e),
        }
    })?;
    let ds = r.file.dataset(&r.object).map_err(|e| {
        AdapterError::BadSource(format!(
            "{}: no dataset {dataset:?} ({e})",
            super::shown(path)
        ))
    })?;
    Ok((ds, r.path))
}

/// The structure of dataset `dataset` in the file at `path` (for registration).
pub fn dataset_structure(path: &Path, dataset: &str) -> Result<ArrayStructure, AdapterError> {
    let (ds, _) = open_dataset(path, dataset)?;
    array_structure(&ds)
        .map_err(|e| AdapterError::BadSource(format!("{}: {e}", super::shown(path))))
}

/// Reads blocks of one dataset, each a hyperslab of the declared chunk grid (the native chunks
/// when tessera inferred the structure).
struct DatasetReader {
    path: std::path::PathBuf,
    dataset: hdf5::Dataset,
    read_as: ReadAs,
    structure: ArrayStructure,
    grid: ChunkGrid,
    /// Where each stored chunk is, when blocks are the native chunks and their filters are
    /// ones decoded here (see [`RawChunks`]).
    raw: Option<RawChunks>,
    /// For a compound type stored with padding: how to pack what is read.
    repack: Option<Repack>,
    /// The file, open once for the reads that bypass libhdf5.
    file: std::fs::File,
    /// Where a contiguous dataset's data starts in the file (asked of libhdf5 once).
    contiguous_at: Option<u64>,
    /// The file's length when opened: no read from the chunk index may pass it.
    file_len: u64,
    /// For gzip chunks libhdf5 inflates (off the raw path): their index, to measure each
    /// stream before libhdf5 inflates it without a bound.
    deflated: Option<DeflatedChunks>,
}

/// The stored chunks of a dataset whose outermost filter is gzip, read by libhdf5. libhdf5
/// grows its buffer until a deflate stream ends, so a crafted chunk of a megabyte could take a
/// gigabyte: each chunk a block needs is inflated into nothing first, stopping past its size.
struct DeflatedChunks {
    chunk: Vec<usize>,
    /// The bytes one chunk holds as stored.
    full: u64,
    /// The gzip filter's bit in each chunk's filter mask (set when it was skipped).
    bit: u32,
    /// (file address, stored size, filter mask) of each allocated chunk, by its origin.
    index: std::collections::HashMap<Vec<u64>, (u64, u64, u32)>,
}

impl DeflatedChunks {
    fn new(ds: &hdf5::Dataset) -> Option<DeflatedChunks> {
        let filters = ds.filters();
        if !matches!(filters.last(), Some(hdf5::filters::Filter::Deflate(_))) {
            return None;
        }
        let chunk = ds.chunk()?;
        let item = ds.dtype().ok()?.size() as u64;
        let full = chunk
            .iter()
            .try_fold(item, |n, &c| n.checked_mul(c as u64))?;
        let n = ds.num_chunks()?;
        let mut index = std::collections::HashMap::with_capacity(n);
        for i in 0..n {
            let info = ds.chunk_info(i)?;
            index.insert(info.offset, (info.addr, info.size, info.filter_mask));
        }
        Some(DeflatedChunks {
            chunk,
            full,
            bit: 1 << (filters.len() - 1),
            index,
        })
    }

    /// Measures the chunks the block at `start` with `shape` needs.
    fn check(
        &self,
        file: &std::fs::File,
        file_len: u64,
        path: &Path,
        start: &[usize],
        shape: &[usize],
    ) -> Result<(), AdapterError> {
        use std::os::unix::fs::FileExt;
        if start.len() != self.chunk.len() || shape.contains(&0) {
            return Ok(());
        }
        // The chunk-grid range of the block along each axis.
        let ranges: Vec<(usize, usize)> = start
            .iter()
            .zip(shape)
            .zip(&self.chunk)
            .map(|((&s, &n), &c)| (s / c.max(1), (s + n - 1) / c.max(1)))
            .collect();
        let mut at: Vec<usize> = ranges.iter().map(|r| r.0).collect();
        loop {
            let origin: Vec<u64> = at
                .iter()
                .zip(&self.chunk)
                .map(|(&i, &c)| (i * c) as u64)
                .collect();
            if let Some(&(addr, size, mask)) = self.index.get(&origin)
                && mask & self.bit == 0
            {
                if size > self.full.saturating_mul(2).saturating_add(1 << 20)
                    || addr.checked_add(size).is_none_or(|end| end > file_len)
                {
                    return Err(corrupt(
                        path,
                        "reading a chunk",
                        format!("the chunk index says {size} bytes at offset {addr}"),
                    ));
                }
                let mut data = vec![0u8; size as usize];
                file.read_exact_at(&mut data, addr)
                    .map_err(|e| io_err(path, "reading a chunk", e))?;
                super::codec_bounds::check("zlib", &data, self.full)
                    .map_err(|e| corrupt(path, "inflating a chunk", e))?;
            }
            // The next chunk of the block, last axis fastest.
            let mut axis = at.len();
            loop {
                if axis == 0 {
                    return Ok(());
                }
                axis -= 1;
                if at[axis] < ranges[axis].1 {
                    at[axis] += 1;
                    break;
                }
                at[axis] = ranges[axis].0;
            }
        }
    }
}

/// The stored chunks of a dataset whose filters are gzip, shuffle, bitshuffle (LZ4 or zstd),
/// zstd, LZ4 or bzip2, read straight from the file and decoded in Rust (no filter plugin needed). libhdf5 serialises every call behind one lock; this way the
/// decoding of many chunks runs on every core at once.
struct RawChunks {
    /// The native chunk shape.
    chunk: Vec<usize>,
    /// The pipeline, in the order it was applied when writing.
    filters: Vec<hdf5::filters::Filter>,
    /// (file address, stored size, filter mask) of each allocated chunk, by its origin.
    index: std::collections::HashMap<Vec<u64>, (u64, u64, u32)>,
    itemsize: usize,
}

impl RawChunks {
    /// The raw-chunk reader of `ds`, if its layout allows one: chunked, little-endian
    /// numbers, filters decoded here only, and blocks equal to the native chunks.
    fn new(
        ds: &hdf5::Dataset,
        read_as: ReadAs,
        s: &ArrayStructure,
        itemsize: usize,
    ) -> Option<RawChunks> {
        use hdf5::filters::Filter;
        if matches!(
            read_as,
            ReadAs::Bool | ReadAs::Fixed(..) | ReadAs::VarLen(_)
        ) {
            return None;
        }
        let chunk = ds.chunk()?;
        // Checked against the caps before the lists are made (a registering client may have
        // declared other chunks than the file's).
        let native = limits::chunk_lists(&s.shape, &chunk, itemsize).ok()?;
        if native != s.chunks {
            return None;
        }
        // Compound types have no order of their own (h5py writes members in this
        // machine's order); numbers must be stored little-endian.
        let order = ds.dtype().ok()?.byte_order();
        let little = order == hdf5::datatype::ByteOrder::LittleEndian;
        if !(little
            || matches!(read_as, ReadAs::Raw) && order != hdf5::datatype::ByteOrder::BigEndian)
        {
            return None;
        }
        let filters = ds.filters();
        if !filters.iter().all(|f| match f {
            Filter::Deflate(_) | Filter::Shuffle => true,
            // Bitshuffle with LZ4 (what Eiger detectors write) or zstd, of this element size.
            Filter::User(BITSHUFFLE, cd) => {
                matches!(cd.get(4), Some(&BITSHUFFLE_LZ4 | &BITSHUFFLE_ZSTD))
                    && cd.get(2).map(|&e| e as usize) == Some(itemsize)
            }
            // hdf5plugin's zstd, LZ4 and bzip2 filters.
            Filter::User(ZSTD | LZ4 | BZIP2, _) => true,
            _ => false,
        }) {
            return None;
        }
        let n = ds.num_chunks()?;
        let mut index = std::collections::HashMap::with_capacity(n);
        for i in 0..n {
            let info = ds.chunk_info(i)?;
            index.insert(
                info.offset.clone(),
                (info.addr, info.size, info.filter_mask),
            );
        }
        Some(RawChunks {
            chunk,
            filters,
            index,
            itemsize,
        })
    }

    /// The block at `start` with `shape` (clipped at the edges), or `None` when its chunk was
    /// never written (libhdf5 then supplies the fill value).
    fn read(
        &self,
        file: &std::fs::File,
        file_len: u64,
        path: &Path,
        start: &[usize],
        shape: &[usize],
    ) -> Result<Option<Vec<u8>>, AdapterError> {
        use hdf5::filters::Filter;
        use std::os::unix::fs::FileExt;
        let key: Vec<u64> = start.iter().map(|&x| x as u64).collect();
        let Some(&(addr, size, mask)) = self.index.get(&key) else {
            return Ok(None);
        };
        let full: usize = self.chunk.iter().product::<usize>() * self.itemsize;
        // A stored chunk is never much larger than its data; a bigger size is a damaged file.
        if size > (full as u64) * 2 + (1 << 20) {
            return Err(corrupt(
                path,
                "reading a chunk",
                format!("the chunk index says {size} bytes for a {full}-byte chunk"),
            ));
        }
        if addr.checked_add(size).is_none_or(|end| end > file_len) {
            return Err(corrupt(
                path,
                "reading a chunk",
                format!(
                    "the chunk index places {size} bytes at offset {addr}, past the end of \
                     the {file_len}-byte file"
                ),
            ));
        }
        let mut data = vec![0u8; size as usize];
        file.read_exact_at(&mut data, addr)
            .map_err(|e| io_err(path, "reading a chunk", e))?;
        for (i, f) in self.filters.iter().enumerate().rev() {
            if mask & (1 << i) != 0 {
                continue;
            }
            data = match f {
                Filter::Deflate(_) => {
                    inflate(&data, full).map_err(|e| corrupt(path, "inflating a chunk", e))?
                }
                Filter::Shuffle => unshuffle(&data, self.itemsize),
                Filter::User(BITSHUFFLE, cd) => {
                    let zstd = cd.get(4) == Some(&BITSHUFFLE_ZSTD);
                    bitshuffle(&data, self.itemsize, full, zstd)
                        .map_err(|e| corrupt(path, "decoding a bitshuffle chunk", e))?
                }
                Filter::User(ZSTD, _) => zstd_chunk(&data, full)
                    .map_err(|e| corrupt(path, "decoding a zstd chunk", e))?,
                Filter::User(LZ4, _) => {
                    lz4_chunk(&data, full).map_err(|e| corrupt(path, "decoding an LZ4 chunk", e))?
                }
                Filter::User(BZIP2, _) => bzip2_chunk(&data, full)
                    .map_err(|e| corrupt(path, "decoding a bzip2 chunk", e))?,
                _ => return Ok(None),
            };
        }
        if data.len() > full {
            return Err(corrupt(
                path,
                "decoding a chunk",
                format!("it decodes to more than the {full} bytes its shape holds"),
            ));
        }
        if data.len() != full {
            return Err(corrupt(
                path,
                "decoding a chunk",
                format!("{} bytes where the chunk holds {full}", data.len()),
            ));
        }
        Ok(Some(crop(data, &self.chunk, shape, self.itemsize)))
    }
}

/// Inflates a gzip-filtered (zlib) chunk of `full` bytes. One call into a buffer one byte
/// larger than the chunk, so a damaged stream cannot inflate without bound; a longer result
/// is returned for the caller's length check to report.
pub fn inflate(data: &[u8], full: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(full + 1);
    let status = flate2::Decompress::new(true)
        .decompress_vec(data, &mut out, flate2::FlushDecompress::Finish)
        .map_err(|e| e.to_string())?;
    if status != flate2::Status::StreamEnd && out.len() <= full {
        return Err("the stream ends early".into());
    }
    Ok(out)
}

/// Undoes HDF5's shuffle filter: byte `b` of every element was stored in plane `b`.
pub fn unshuffle(data: &[u8], itemsize: usize) -> Vec<u8> {
    if itemsize <= 1 {
        return data.to_vec();
    }
    let n = data.len() / itemsize;
    let mut out = vec![0u8; data.len()];
    // Element by element, reading each plane forward (cache-friendly for both buffers). The
    // common widths zip the planes, which leaves no bounds check in the loop.
    let plane = |b: usize| &data[b * n..(b + 1) * n];
    let whole = &mut out[..n * itemsize];
    match itemsize {
        2 => {
            for ((e, a), b) in whole.chunks_exact_mut(2).zip(plane(0)).zip(plane(1)) {
                e.copy_from_slice(&[*a, *b]);
            }
        }
        4 => {
            let (p0, p1, p2, p3) = (plane(0), plane(1), plane(2), plane(3));
            for (i, e) in whole.chunks_exact_mut(4).enumerate().take(n) {
                e.copy_from_slice(&[p0[i], p1[i], p2[i], p3[i]]);
            }
        }
        _ => {
            let planes: Vec<&[u8]> = (0..itemsize).map(plane).collect();
            for (i, element) in whole.chunks_exact_mut(itemsize).enumerate() {
                for (b, byte) in element.iter_mut().enumerate() {
                    *byte = planes[b][i];
                }
            }
        }
    }
    // Bytes past the last whole element are stored as they are.
    out[n * itemsize..].copy_from_slice(&data[n * itemsize..]);
    out
}

/// The HDF5 filter id of bitshuffle (registered by the bitshuffle project, used by hdf5plugin
/// and by DECTRIS Eiger files).
const BITSHUFFLE: std::os::raw::c_int = 32008;

/// Bitshuffle's compression codes (its fifth filter parameter).
const BITSHUFFLE_LZ4: std::os::raw::c_uint = 2;
const BITSHUFFLE_ZSTD: std::os::raw::c_uint = 3;

/// The HDF5 filter ids of hdf5plugin's zstd and LZ4 filters.
const ZSTD: std::os::raw::c_int = 32015;
const LZ4: std::os::raw::c_int = 32004;
/// The bzip2 filter (PyTables', which hdf5plugin ships).
const BZIP2: std::os::raw::c_int = 307;

/// A chunk of the bzip2 filter: one bzip2 stream of the whole chunk, decoded into at most one
/// byte more than the chunk holds (the caller's length check reports a longer one).
pub fn bzip2_chunk(data: &[u8], full: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(full + 1);
    let status = bzip2::Decompress::new(false)
        .decompress_vec(data, &mut out)
        .map_err(|e| e.to_string())?;
    match status {
        bzip2::Status::StreamEnd => Ok(out),
        _ if out.len() > full => Ok(out),
        _ => Err(format!(
            "the stream ends after {} of {full} bytes",
            out.len()
        )),
    }
}

/// A chunk of the zstd filter: one zstd frame of the whole chunk, decoded into at most one
/// byte more than the chunk holds (the caller's length check reports a longer one).
pub fn zstd_chunk(data: &[u8], full: usize) -> Result<Vec<u8>, String> {
    zstd::bulk::decompress(data, full + 1).map_err(|e| e.to_string())
}

/// A chunk of the HDF5 LZ4 filter: the decoded size (big-endian u64) and the block size
/// (big-endian u32), then per block a big-endian u32 size and the block: LZ4 when smaller
/// than the block's bytes, stored as it is when not.
pub fn lz4_chunk(data: &[u8], full: usize) -> Result<Vec<u8>, String> {
    let mut blocks = Blocks::new(data, full)?;
    let block = blocks.block_bytes;
    if block == 0 {
        return Err("a block size of 0".into());
    }
    let mut out = vec![0u8; full];
    let mut done = 0;
    while done < full {
        let n = block.min(full - done);
        let src = blocks.next()?;
        let dst = &mut out[done..done + n];
        if src.len() == n {
            dst.copy_from_slice(src);
        } else {
            let got = lz4_flex::block::decompress_into(src, dst).map_err(|e| e.to_string())?;
            if got != n {
                return Err(format!("a block decoded to {got} bytes, not {n}"));
            }
        }
        done += n;
    }
    Ok(out)
}

/// A chunk written by the bitshuffle filter with LZ4.
pub fn bitshuffle_lz4(data: &[u8], itemsize: usize, full: usize) -> Result<Vec<u8>, String> {
    bitshuffle(data, itemsize, full, false)
}

/// A chunk written by the bitshuffle filter with LZ4 or (`zstd`) zstd: a 12-byte header (the
/// decoded size as a big-endian u64, the block size in bytes as a big-endian u32), then per
/// block of elements a big-endian u32 size and the compressed block of the bit-shuffled
/// elements; elements past the last multiple of 8 are stored as they are at the end.
pub fn bitshuffle(
    data: &[u8],
    itemsize: usize,
    full: usize,
    zstd: bool,
) -> Result<Vec<u8>, String> {
    let mut blocks = Blocks::new(data, full)?;
    let block_bytes = blocks.block_bytes;
    if itemsize == 0 || block_bytes == 0 || block_bytes % (itemsize * 8) != 0 {
        return Err(format!(
            "a block of {block_bytes} bytes for {itemsize}-byte elements"
        ));
    }
    let block = block_bytes / itemsize;
    let mut remaining = full / itemsize;
    let mut out = Vec::with_capacity(full);
    // No block holds more than the chunk: a damaged header cannot make this allocate more.
    let mut shuffled = vec![0u8; block_bytes.min(full)];
    while remaining >= 8 {
        let n = remaining.min(block) / 8 * 8;
        let src = blocks.next()?;
        let dst = &mut shuffled[..n * itemsize];
        let got = if zstd {
            zstd::bulk::decompress_to_buffer(src, dst).map_err(|e| e.to_string())?
        } else {
            lz4_flex::block::decompress_into(src, dst).map_err(|e| e.to_string())?
        };
        if got != dst.len() {
            return Err(format!("a block decoded to {got} bytes, not {}", dst.len()));
        }
        bit_unshuffle(dst, n, itemsize, &mut out);
        remaining -= n;
    }
    out.extend_from_slice(blocks.take(remaining * itemsize)?);
    Ok(out)
}

/// The layout bitshuffle and the HDF5 LZ4 filter share: the decoded size (big-endian u64,
/// checked against the chunk's), the block size in bytes (big-endian u32), then blocks, each
/// a big-endian u32 size and that many bytes. Every read is checked against the chunk's end.
struct Blocks<'a> {
    data: &'a [u8],
    at: usize,
    block_bytes: usize,
}

impl<'a> Blocks<'a> {
    fn new(data: &'a [u8], full: usize) -> Result<Self, String> {
        let mut b = Blocks {
            data,
            at: 0,
            block_bytes: 0,
        };
        let head = b.take(12)?;
        let total = u64::from_be_bytes(head[..8].try_into().map_err(|_| "a short header")?);
        if total != full as u64 {
            return Err(format!(
                "it holds {total} bytes where the chunk holds {full}"
            ));
        }
        b.block_bytes =
            u32::from_be_bytes(head[8..].try_into().map_err(|_| "a short header")?) as usize;
        Ok(b)
    }

    /// The next `n` bytes.
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.data.len());
        let piece = end
            .map(|e| &self.data[self.at..e])
            .ok_or_else(|| "the chunk ends early".to_string())?;
        self.at += n;
        Ok(piece)
    }

    /// The next size-prefixed block.
    fn next(&mut self) -> Result<&'a [u8], String> {
        let size = self.take(4)?;
        let size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]) as usize;
        self.take(size)
    }
}

/// Undoes bitshuffle's transpose of `n` elements (a multiple of 8): row `8 * j + k` of `src`
/// holds bit `k` of byte `j` of every element, eight elements to a byte, lowest bit first.
fn bit_unshuffle(src: &[u8], n: usize, itemsize: usize, out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + n * itemsize, 0);
    let dst = &mut out[start..];
    match itemsize {
        1 => return bit_unshuffle_sized::<1>(src, n, dst),
        2 => return bit_unshuffle_sized::<2>(src, n, dst),
        4 => return bit_unshuffle_sized::<4>(src, n, dst),
        8 => return bit_unshuffle_sized::<8>(src, n, dst),
        _ => {}
    }
    let row = n / 8;
    for j in 0..itemsize {
        for group in 0..row {
            // The eight rows' bytes for these eight elements: an 8x8 bit matrix (byte k is
            // row k, bit m column m) whose transpose holds byte j of each element.
            let mut x = 0u64;
            for k in 0..8 {
                x |= u64::from(src[(8 * j + k) * row + group]) << (8 * k);
            }
            for (m, byte) in transpose8(x).to_le_bytes().into_iter().enumerate() {
                dst[(8 * group + m) * itemsize + j] = byte;
            }
        }
    }
}

/// [`bit_unshuffle`] for elements of `E` bytes: the eight rows of each byte are read in step
/// and each group of eight elements is written whole, with no index computed at run time.
fn bit_unshuffle_sized<const E: usize>(src: &[u8], n: usize, dst: &mut [u8]) {
    let row = n / 8;
    for j in 0..E {
        let rows: [&[u8]; 8] = std::array::from_fn(|k| &src[(8 * j + k) * row..][..row]);
        for (g, group) in dst.chunks_exact_mut(8 * E).take(row).enumerate() {
            let x = u64::from_le_bytes(std::array::from_fn(|k| rows[k][g]));
            for (m, byte) in transpose8(x).to_le_bytes().into_iter().enumerate() {
                group[m * E + j] = byte;
            }
        }
    }
}

/// Transposes an 8x8 bit matrix held row by row in the bytes of `x` (bit `8 * row + col`),
/// by three rounds of swapping off-diagonal blocks (2x2, then 4x4, then 8x8).
fn transpose8(mut x: u64) -> u64 {
    let t = (x ^ (x >> 7)) & 0x00AA_00AA_00AA_00AA;
    x ^= t ^ (t << 7);
    let t = (x ^ (x >> 14)) & 0x0000_CCCC_0000_CCCC;
    x ^= t ^ (t << 14);
    let t = (x ^ (x >> 28)) & 0x0000_0000_F0F0_F0F0;
    x ^= t ^ (t << 28);
    x
}

/// The leading `shape` corner of a C-order `chunk`-shaped buffer (edge chunks are stored whole).
fn crop(data: Vec<u8>, chunk: &[usize], shape: &[usize], itemsize: usize) -> Vec<u8> {
    if chunk == shape {
        return data;
    }
    let nd = shape.len();
    let row = shape[nd - 1] * itemsize;
    let mut strides = vec![itemsize; nd];
    for d in (0..nd.saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * chunk[d + 1];
    }
    let rows: usize = shape[..nd - 1].iter().product();
    let mut out = Vec::with_capacity(rows * row);
    let mut idx = vec![0usize; nd.saturating_sub(1)];
    for _ in 0..rows {
        let off: usize = idx.iter().zip(&strides).map(|(i, s)| i * s).sum();
        out.extend_from_slice(&data[off..off + row]);
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

impl ArrayReader for DatasetReader {
    fn read_block(&self, block: &[usize]) -> Result<ArrayData, AdapterError> {
        let (start, shape) = super::block_region(&self.grid, block)?;
        if matches!(self.read_as, ReadAs::Raw)
            && self.raw.is_none()
            && let Some(bytes) = self.read_contiguous(&start, &shape)?
        {
            return Ok(ArrayData::new(
                self.structure.data_type.clone(),
                shape,
                self.packed(bytes),
            ));
        }
        if let Some(raw) = &self.raw
            && let Some(bytes) = raw.read(&self.file, self.file_len, &self.path, &start, &shape)?
        {
            let mut bytes = self.packed(bytes);
            super::to_declared_order(&self.structure.data_type, &mut bytes);
            return Ok(ArrayData::new(
                self.structure.data_type.clone(),
                shape,
                bytes,
            ));
        }
        if let Some(guard) = &self.deflated {
            guard.check(&self.file, self.file_len, &self.path, &start, &shape)?;
        }
        let sel = if shape.is_empty() {
            Selection::All
        } else {
            Selection::from(Hyperslab::from(
                start
                    .iter()
                    .zip(&shape)
                    .map(|(&s, &n)| SliceOrIndex::SliceCount {
                        start: s,
                        step: 1,
                        count: n,
                        block: 1,
                    })
                    .collect::<Vec<_>>(),
            ))
        };
        let mut bytes = self.read(&sel).map_err(|e| {
            // A filter libhdf5 would load as a plugin, which this server does not have.
            let plugins: Vec<String> = self
                .dataset
                .filters()
                .iter()
                .filter_map(|f| match f {
                    hdf5::filters::Filter::User(id, cd) => Some(format!("{id} {cd:?}")),
                    _ => None,
                })
                .collect();
            match plugins.is_empty() {
                true => corrupt(&self.path, "reading a block", e),
                false => read_err(
                    &self.path,
                    "reading a block",
                    format!(
                        "its compression filter ({}) is not one tessera decodes, and this \
                         server's HDF5 library has no plugin for it ({e})",
                        plugins.join(", ")
                    ),
                ),
            }
        })?;
        super::to_declared_order(&self.structure.data_type, &mut bytes);
        Ok(ArrayData::new(
            self.structure.data_type.clone(),
            shape,
            bytes,
        ))
    }
}

impl DatasetReader {
    fn read(&self, sel: &Selection) -> Result<Vec<u8>, hdf5::Error> {
        let r = self.dataset.as_reader();
        macro_rules! pod {
            ($t:ty) => {{
                let a = r.read_slice::<$t, _, ndarray::IxDyn>(sel)?;
                let (v, _) = a.into_raw_vec_and_offset();
                bytemuck::cast_slice::<$t, u8>(&v).to_vec()
            }};
        }
        Ok(match self.read_as {
            ReadAs::I8 => pod!(i8),
            ReadAs::I16 => pod!(i16),
            ReadAs::I32 => pod!(i32),
            ReadAs::I64 => pod!(i64),
            ReadAs::U8 => pod!(u8),
            ReadAs::U16 => pod!(u16),
            ReadAs::U32 => pod!(u32),
            ReadAs::U64 => pod!(u64),
            ReadAs::F32 => pod!(f32),
            ReadAs::F64 => pod!(f64),
            ReadAs::Bool => r
                .read_slice::<bool, _, ndarray::IxDyn>(sel)?
                .iter()
                .map(|&b| u8::from(b))
                .collect(),
            ReadAs::Fixed(n, _) => {
                let mut out = Vec::new();
                for s in read_strings(&self.dataset, sel, self.read_as)? {
                    let mut b = s.into_bytes();
                    b.resize(n, 0);
                    out.extend_from_slice(&b);
                }
                out
            }
            ReadAs::VarLen(..) => {
                let chars = match &self.structure.data_type {
                    DataType::Builtin(b) if b.kind == Kind::Unicode => b.itemsize / 4,
                    _ => 1,
                };
                let mut out = Vec::new();
                for s in read_strings(&self.dataset, sel, self.read_as)? {
                    encode_unicode(&s, chars, &mut out);
                }
                out
            }
            ReadAs::Raw => {
                return Err(hdf5::Error::from(
                    "compound datasets are served when stored contiguous, or chunked with \
                     gzip/shuffle and read by native chunk",
                ));
            }
        })
    }

    /// The size of an element as the file stores it (with a compound type's padding).
    fn stored_itemsize(&self) -> usize {
        self.repack
            .as_ref()
            .map_or(self.structure.data_type.itemsize(), |r| r.stored)
    }

    /// Bytes read from the file as the served (packed) type lays them out.
    fn packed(&self, bytes: Vec<u8>) -> Vec<u8> {
        match &self.repack {
            Some(r) => r.apply(&bytes),
            None => bytes,
        }
    }

    /// A block of a contiguous dataset, read from the file at the dataset's address: whole
    /// rows only (the blocks tessera gives contiguous datasets).
    fn read_contiguous(
        &self,
        start: &[usize],
        shape: &[usize],
    ) -> Result<Option<Vec<u8>>, AdapterError> {
        use std::os::unix::fs::FileExt;
        let Some(base) = self.contiguous_at else {
            return Ok(None);
        };
        let s = &self.structure.shape;
        if shape.iter().skip(1).ne(s.iter().skip(1)) || start.iter().skip(1).any(|&x| x != 0) {
            return Ok(None);
        }
        let item = self.stored_itemsize();
        let first = start.first().copied().unwrap_or(0) as u64;
        let too_large = || corrupt(&self.path, "reading a block", "its size overflows");
        let row = limits::checked_bytes(&s[1.min(s.len())..], item).ok_or_else(too_large)?;
        let len = limits::checked_bytes(shape, item).ok_or_else(too_large)?;
        let at = row
            .checked_mul(first)
            .and_then(|o| o.checked_add(base))
            .ok_or_else(too_large)?;
        if at.checked_add(len).is_none_or(|end| end > self.file_len) {
            return Err(corrupt(
                &self.path,
                "reading a block",
                format!(
                    "the dataset's {len} bytes at offset {at} run past the end of the \
                     {}-byte file",
                    self.file_len
                ),
            ));
        }
        let mut out = vec![0u8; len as usize];
        self.file
            .read_exact_at(&mut out, at)
            .map_err(|e| io_err(&self.path, "reading a block", e))?;
        Ok(Some(out))
    }
}

/// The dataset a data source names (`dataset`: a path, or its parts as a list).
pub fn dataset_parameter(parameters: &Map<String, Value>) -> Option<String> {
    match parameters.get("dataset") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(parts)) => Some(
            parts
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("/"),
        ),
        _ => None,
    }
}

/// Opens an HDF5 dataset data source. The structure it is served with is the node's (which a
/// registering client may have chosen); its element type must match the dataset's.
pub fn open(source: &DataSource) -> Result<Adapter, AdapterError> {
    let uri = super::first_asset(source)?;
    let path = std::path::PathBuf::from(format!("/{}", super::local_path(&uri)?));
    let dataset = dataset_parameter(&source.parameters).ok_or_else(|| {
        AdapterError::BadSource(format!(
            "{}: the data source names no dataset; only datasets are read as arrays",
            super::shown(&path)
        ))
    })?;
    // Raw reads go to the file that holds the dataset (another one, through an external link).
    let (ds, path) = open_dataset(&path, &dataset)?;
    storage_in_file(&ds)
        .map_err(|e| AdapterError::Outside(format!("{}: {dataset}: {e}", super::shown(&path))))?;
    let td = ds
        .dtype()
        .and_then(|t| t.to_descriptor())
        .map_err(|e| read_err(&path, "reading the dataset's type", e))?;
    // A NetCDF variable is served as xarray reads it: the node's structure is the served
    // one, the reader below reads what is stored. The file's own structure is described (which
    // reads every variable-length string) only when needed, and once.
    let served: Option<ArrayStructure> = super::structure_of(source).ok();
    let netcdf = source.mimetype == NETCDF_MIMETYPE;
    let native = match netcdf || served.is_none() {
        true => Some(
            array_structure(&ds)
                .map_err(|e| AdapterError::BadSource(format!("{}: {e}", super::shown(&path))))?,
        ),
        false => None,
    };
    let view = match (netcdf, &native) {
        (true, Some(native)) => {
            let view = NcView::of(&ds, native);
            let decoded = view.served(native.clone());
            match &served {
                // A node that declares the stored type and shape where decoding changes them
                // (registered before tessera decoded NetCDF, or by a client that chose to) is
                // served as it declares.
                Some(s)
                    if s.shape == native.shape
                        && s.data_type == native.data_type
                        && (decoded.shape != native.shape
                            || decoded.data_type != native.data_type) =>
                {
                    NcView::default()
                }
                _ => view,
            }
        }
        _ => NcView::default(),
    };
    let structure: ArrayStructure = match (&served, native) {
        (Some(s), _) => view.stored(s.clone()),
        // Described above whenever the node declares no structure.
        (None, native) => native.ok_or_else(|| {
            AdapterError::BadSource(format!("{}: {dataset}: no structure", super::shown(&path)))
        })?,
    };
    let served = served.unwrap_or_else(|| view.served(structure.clone()));
    let declared_size = structure.data_type.itemsize();
    let (native, read_as) = data_type(&td, None)
        .map_err(|e| AdapterError::BadSource(format!("{}: {dataset}: {e}", super::shown(&path))))?;
    let compatible = match read_as {
        ReadAs::VarLen(..) => matches!(
            &structure.data_type,
            DataType::Builtin(b) if b.kind == Kind::Unicode
        ),
        _ => native.itemsize() == declared_size,
    };
    if !compatible {
        return Err(AdapterError::BadSource(format!(
            "{}: dataset {dataset} holds {} values but the node declares {}",
            super::shown(&path),
            describe(&native),
            describe(&structure.data_type)
        )));
    }
    if ds.shape() != structure.shape {
        return Err(AdapterError::BadSource(format!(
            "{}: dataset {dataset} has shape {:?} but the node declares {:?}",
            super::shown(&path),
            ds.shape(),
            structure.shape
        )));
    }
    let grid = ChunkGrid::new(&structure.shape, structure.chunks.clone())
        .map_err(|e| AdapterError::BadSource(e.to_string()))?;
    let repack = Repack::of(&td);
    let stored = repack
        .as_ref()
        .map_or(structure.data_type.itemsize(), |r| r.stored);
    let raw = RawChunks::new(&ds, read_as, &structure, stored);
    let deflated = if raw.is_none() {
        DeflatedChunks::new(&ds)
    } else {
        None
    };
    let file = std::fs::File::open(&path).map_err(|e| read_err(&path, "opening it", e))?;
    let file_len = file
        .metadata()
        .map_err(|e| read_err(&path, "opening it", e))?
        .len();
    let contiguous_at = ds.offset();
    let reader = Arc::new(DatasetReader {
        file,
        contiguous_at,
        path,
        dataset: ds,
        read_as,
        structure,
        grid,
        deflated,
        raw,
        repack,
        file_len,
    });
    Ok(Adapter::Array(view.wrap(reader, &served)))
}

#[cfg(test)]
mod raw_tests {
    use super::*;

    /// A chunk as the HDF5 LZ4 filter writes it: blocks of `block` bytes, each LZ4 unless
    /// that is no smaller.
    fn lz4_filter_chunk(data: &[u8], block: usize) -> Vec<u8> {
        let mut out = (data.len() as u64).to_be_bytes().to_vec();
        out.extend((block as u32).to_be_bytes());
        for piece in data.chunks(block) {
            let packed = lz4_flex::block::compress(piece);
            let stored = if packed.len() < piece.len() {
                &packed[..]
            } else {
                piece
            };
            out.extend((stored.len() as u32).to_be_bytes());
            out.extend(stored);
        }
        out
    }

    #[test]
    fn lz4_and_zstd_filter_chunks_decode_and_damage_is_an_error() {
        let data: Vec<u8> = (0..10_000u32)
            .flat_map(|i| (i % 97).to_le_bytes())
            .collect();
        // Several blocks, the last one short; a random block is stored as it is.
        let mut noisy = data.clone();
        noisy[..1024]
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = (i * 7919 % 251) as u8);
        for d in [&data, &noisy] {
            let chunk = lz4_filter_chunk(d, 1024);
            assert_eq!(lz4_chunk(&chunk, d.len()).unwrap(), *d);
            assert!(lz4_chunk(&chunk[..chunk.len() - 3], d.len()).is_err());
            assert!(lz4_chunk(&chunk, d.len() + 1).is_err());
        }
        let z = zstd::bulk::compress(&data, 3).unwrap();
        assert_eq!(zstd_chunk(&z, data.len()).unwrap(), data);
        // More than the chunk holds is cut at one byte more (the caller reports it).
        assert_eq!(zstd_chunk(&z, data.len() - 10).map(|v| v.len()).ok(), None);
        assert!(zstd_chunk(&z[..z.len() / 2], data.len()).is_err());
    }

    #[test]
    fn links_are_followed_only_into_the_files_directory() {
        let dir = std::env::temp_dir().join(format!("tessera-h5-links-{}", std::process::id()));
        let served = dir.join("served");
        std::fs::create_dir_all(&served).unwrap();
        let other = dir.join("other.h5");
        hdf5::File::create(&other)
            .unwrap()
            .new_dataset::<u8>()
            .shape(4)
            .create("secret")
            .unwrap();
        let beside = served.join("data_000001.h5");
        {
            let f = hdf5::File::create(&beside).unwrap();
            let d = f.new_dataset::<u16>().shape(3).create("frames").unwrap();
            d.write(&[7u16, 8, 9]).unwrap();
            f.link_external("../other.h5", "/secret", "onwards")
                .unwrap();
        }
        let path = served.join("links.h5");
        {
            let f = hdf5::File::create(&path).unwrap();
            f.new_dataset::<u8>().shape(4).create("local").unwrap();
            f.link_external(other.to_str().unwrap(), "/secret", "ext")
                .unwrap();
            f.link_external("../other.h5", "/secret", "ext_relative")
                .unwrap();
            f.link_external("data_000001.h5", "/frames", "beside")
                .unwrap();
            f.link_external("data_000001.h5", "/onwards", "twice")
                .unwrap();
            f.link_soft("/ext", "soft").unwrap();
            f.link_soft("/beside", "soft_beside").unwrap();
            f.link_soft("/loop_b", "loop_a").unwrap();
            f.link_soft("/loop_a", "loop_b").unwrap();
            let g = f.create_group("g").unwrap();
            g.link_hard("/g", "self").unwrap();
            f.new_dataset::<u8>()
                .shape(4)
                .external(other.to_str().unwrap(), 0, 4)
                .create("stored_outside")
                .unwrap();
        }
        let mut skipped = Vec::new();
        let t = inspect(&path, "links", &mut skipped).unwrap();
        let keys: Vec<&str> = t.children.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["beside", "g", "local", "soft_beside"], "{skipped:?}");
        let said = skipped.join("\n");
        for why in [
            "/ext: it links to other.h5, outside the directory",
            "/ext_relative: it links to other.h5, outside the directory",
            "/soft: it links to other.h5, outside",
            "/twice: /twice: an external link in a linked file",
            "/loop_a: /loop_a passes through more than 16 links",
            "/g/self: links back",
            "/stored_outside: its data is stored in another file",
        ] {
            assert!(said.contains(why), "{why} not in {said}");
        }
        // The followed link reads from the file that holds the data.
        for key in ["/beside", "/soft_beside"] {
            let source = data_source(&super::super::file_uri(&path), key);
            let Ok(Adapter::Array(a)) = open(&source) else {
                panic!("{key} did not open")
            };
            assert_eq!(a.read_block(&[0]).unwrap().bytes[..], [7u8, 0, 8, 0, 9, 0]);
        }
        // Nor is a dataset named through a refused link, when opened directly.
        for key in ["/ext", "/soft", "/ext_relative"] {
            let source = data_source(&super::super::file_uri(&path), key);
            let Err(e) = open(&source) else {
                panic!("opened a dataset in another file")
            };
            assert!(matches!(e, AdapterError::Outside(_)), "{e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_chunk_index_pointing_past_the_file_is_corrupt_not_read() {
        let dir = std::env::temp_dir().join(format!("tessera-h5-raw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("short.bin");
        std::fs::write(&path, [0u8; 100]).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let mut index = std::collections::HashMap::new();
        index.insert(vec![0u64], (90u64, 64u64, 0u32));
        index.insert(vec![4u64], (u64::MAX - 8, 64u64, 0u32));
        let raw = RawChunks {
            chunk: vec![4],
            filters: vec![hdf5::filters::Filter::Deflate(4)],
            index,
            itemsize: 8,
        };
        for start in [0usize, 4] {
            let e = raw.read(&file, 100, &path, &[start], &[4]).unwrap_err();
            assert!(matches!(e, AdapterError::Corrupt(_)), "{e}");
            assert!(e.to_string().contains("past the end"), "{e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unshuffle_restores_elements() {
        let values: Vec<u16> = vec![0x0102, 0x0304, 0x0506];
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        // Shuffled: all first bytes, then all second bytes.
        let shuffled = vec![0x02, 0x04, 0x06, 0x01, 0x03, 0x05];
        assert_eq!(unshuffle(&shuffled, 2), bytes);
    }

    #[test]
    fn unshuffle_restores_every_width() {
        for itemsize in [2usize, 3, 4, 8] {
            let n = 7;
            // Seven elements and one trailing byte, which is stored as it is.
            let bytes: Vec<u8> = (0..(n * itemsize + 1) as u8).collect();
            let mut shuffled: Vec<u8> = (0..itemsize)
                .flat_map(|b| (0..n).map(move |i| (i * itemsize + b) as u8))
                .collect();
            shuffled.push((n * itemsize) as u8);
            assert_eq!(unshuffle(&shuffled, itemsize), bytes, "itemsize {itemsize}");
        }
    }

    #[test]
    fn repack_drops_a_compound_types_padding() {
        // u8 at 0, f64 at 8, i16 at 16, in 24 bytes (a C struct's alignment).
        let r = Repack {
            stored: 24,
            members: vec![(0, 1), (8, 8), (16, 2)],
        };
        let mut stored = vec![0xEEu8; 48];
        for (e, base) in [(0usize, 1u8), (24, 100)] {
            stored[e] = base;
            stored[e + 8..e + 16].copy_from_slice(&[base + 1; 8]);
            stored[e + 16..e + 18].copy_from_slice(&[base + 2; 2]);
        }
        let mut want = vec![1u8];
        want.extend([2u8; 8]);
        want.extend([3u8; 2]);
        want.push(100);
        want.extend([101u8; 8]);
        want.extend([102u8; 2]);
        assert_eq!(r.apply(&stored), want);
    }

    #[test]
    fn bit_unshuffle_inverts_bitshuffle() {
        for itemsize in [1usize, 2, 3, 4, 8] {
            bit_unshuffle_inverts_bitshuffle_of(itemsize);
        }
    }

    fn bit_unshuffle_inverts_bitshuffle_of(itemsize: usize) {
        let n = 16usize;
        let elements: Vec<u8> = (0..n * itemsize).map(|i| (i * 37 + 11) as u8).collect();
        // Bitshuffle by its definition: row 8j+k holds bit k of byte j of each element.
        let mut shuffled = vec![0u8; n * itemsize];
        for j in 0..itemsize {
            for k in 0..8 {
                for i in 0..n {
                    let bit = (elements[i * itemsize + j] >> k) & 1;
                    shuffled[(8 * j + k) * (n / 8) + i / 8] |= bit << (i % 8);
                }
            }
        }
        let mut out = vec![0xAA];
        bit_unshuffle(&shuffled, n, itemsize, &mut out);
        assert_eq!(out[0], 0xAA, "appends after what is there");
        assert_eq!(&out[1..], &elements[..]);
    }

    #[test]
    fn a_short_bitshuffle_chunk_is_an_error() {
        let mut data = (64u64).to_be_bytes().to_vec();
        data.extend(64u32.to_be_bytes());
        data.extend(100u32.to_be_bytes()); // a block size past the end
        assert!(
            bitshuffle_lz4(&data, 2, 64)
                .unwrap_err()
                .contains("ends early")
        );
        assert!(
            bitshuffle_lz4(&data, 2, 32)
                .unwrap_err()
                .contains("holds 64 bytes")
        );
    }

    #[test]
    fn crop_takes_the_leading_corner() {
        // A 3x4 chunk of bytes 0..12, cropped to 2x3.
        let data: Vec<u8> = (0..12).collect();
        assert_eq!(
            crop(data.clone(), &[3, 4], &[2, 3], 1),
            vec![0, 1, 2, 4, 5, 6]
        );
        assert_eq!(crop(data.clone(), &[3, 4], &[3, 4], 1), data);
    }
}
