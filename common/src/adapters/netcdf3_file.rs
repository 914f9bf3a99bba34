//! NetCDF-3 files (classic and 64-bit offset), read with the pure-Rust `netcdf3` crate: the
//! same xarray-dataset tree as a NetCDF-4 file gives (variables with their dimension names,
//! `xarray_coord` / `xarray_data_var` specs, `{"attrs": ...}` metadata). Fixed-size variables
//! are one block; record variables (along the unlimited dimension) one block per record.
//! Character variables become fixed-length byte strings over their other dimensions.
//! NetCDF-3 data sources carry the same mimetype as NetCDF-4 ones (read through HDF5); their
//! parameter tells them apart: `variable` here, `dataset` there.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use netcdf3::{DataSet, DataType as NcType, DataVector, FileReader};
use serde_json::{Map, Value, json};

use super::cf::{self, CfAttrs, CfDecode, Num};
use super::{Adapter, AdapterError, ArrayReader, DataSource};
use crate::array::ArrayData;
use crate::dtype::{BuiltinDType, DataType, Kind};
use crate::node::TreeNode;
use crate::structure::{ArrayStructure, Structure, StructureFamily};

/// The mimetype of NetCDF data sources, version 3 or 4.
pub const MIMETYPE: &str = "application/x-netcdf";

/// Attributes the readers keep for themselves, as xarray does (it moves them to `encoding`),
/// besides those of [`cf::ENCODING_ATTRIBUTES`].
const HIDDEN: [&str; 1] = ["coordinates"];

/// The first four bytes of a file.
fn magic(path: &Path) -> Option<[u8; 4]> {
    let mut m = [0u8; 4];
    std::fs::File::open(path).ok()?.read_exact(&mut m).ok()?;
    Some(m)
}

/// The tree of a NetCDF file of either version, told apart by its first bytes: NetCDF-3
/// (classic `CDF\x01`, 64-bit offset `CDF\x02`) here, NetCDF-4 through HDF5.
pub fn inspect_any(
    path: &Path,
    key: &str,
    skipped: &mut Vec<String>,
) -> Result<TreeNode, AdapterError> {
    match magic(path) {
        Some(m) if m == *b"CDF\x01" || m == *b"CDF\x02" => inspect(path, key, skipped),
        Some(m) if m == *b"CDF\x05" => Err(AdapterError::BadSource(format!(
            "{}: NetCDF-3 files with 64-bit data (CDF-5) are not served yet",
            super::shown(path)
        ))),
        #[cfg(feature = "hdf5")]
        _ => super::hdf5_file::inspect_netcdf(path, key, skipped),
        #[cfg(not(feature = "hdf5"))]
        _ => Err(AdapterError::BadSource(format!(
            "{}: this build of tessera has no HDF5 (NetCDF-4) support",
            super::shown(&path)
        ))),
    }
}

/// The largest NetCDF-3 header served: the `netcdf3` reader parses the header again from its
/// start for each kilobyte it loads, so its time grows with the square of the header's size.
const MAX_HEADER_BYTES: u64 = 1 << 20;

/// A NetCDF-3 header being walked: its bytes (the file's first [`MAX_HEADER_BYTES`] at most)
/// and the position reached.
struct Header<'a> {
    bytes: &'a [u8],
    at: usize,
    /// Where the header pads a name or value to a multiple of 4 with bytes other than zero
    /// (some writers pad with spaces or digits; the format says zeros, and the reader
    /// insists).
    dirty_padding: Vec<std::ops::Range<usize>>,
}

impl Header<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(if self.bytes.len() as u64 == MAX_HEADER_BYTES {
                format!("its header is larger than {MAX_HEADER_BYTES} bytes")
            } else {
                "its header ends early".into()
            });
        };
        let b = &self.bytes[self.at..end];
        self.at = end;
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// `n` bytes padded to a multiple of 4.
    fn skip_padded(&mut self, n: u64) -> Result<(), String> {
        let padded = usize::try_from(n.next_multiple_of(4)).map_err(|_| "a value is too large")?;
        let start = self.at;
        let b = self.take(padded)?;
        // `n <= padded`, so the conversion holds.
        let pad = n as usize..padded;
        if b[pad.clone()].iter().any(|&x| x != 0) {
            self.dirty_padding.push(start + pad.start..start + pad.end);
        }
        Ok(())
    }

    fn name(&mut self) -> Result<(), String> {
        let len = self.u32()?;
        self.skip_padded(u64::from(len))
    }

    /// The length of a list with `tag` (dimensions, attributes or variables); 0 when absent.
    fn list(&mut self, tag: u32) -> Result<u32, String> {
        match (self.u32()?, self.u32()?) {
            (0, 0) => Ok(0),
            (t, n) if t == tag => Ok(n),
            (t, _) => Err(format!("list tag {t:#x} where {tag:#x} was expected")),
        }
    }

    /// Walks the whole header of a file of `size` bytes: the number of records, and whether
    /// any variable has them. Every variable's data (one record's, for record variables)
    /// must fit in the file: the reader computes offsets from these sizes unchecked.
    fn walk(&mut self, size: u64) -> Result<(u32, bool), String> {
        let offset_size = match self.take(4)? {
            b"CDF\x01" => 4,
            b"CDF\x02" => 8,
            _ => return Err("no CDF-1 or CDF-2 magic".into()),
        };
        let numrecs = self.u32()?;
        let mut dims = Vec::new();
        for _ in 0..self.list(0x0A)? {
            self.name()?;
            dims.push(self.u32()?);
        }
        self.attributes()?;
        let mut records = false;
        for _ in 0..self.list(0x0B)? {
            self.name()?;
            let mut elements = 1u64;
            for i in 0..self.u32()? {
                let dim = self.u32()?;
                let len = *dims.get(dim as usize).ok_or(format!(
                    "a variable has dimension {dim}, which does not exist"
                ))?;
                // The unlimited dimension has length 0 in the list.
                if i == 0 && len == 0 {
                    records = true;
                } else {
                    elements = elements.saturating_mul(len.into());
                }
            }
            self.attributes()?;
            let itemsize = type_size(self.u32()?)?;
            self.u32()?; // the padded size, which the reader computes again
            let begin = match self.take(offset_size)? {
                &[a, b, c, d] => i64::from(i32::from_be_bytes([a, b, c, d])),
                b => i64::from_be_bytes(b.try_into().map_err(|_| "a short offset")?),
            };
            if !u64::try_from(begin).is_ok_and(|b| b <= size)
                || elements.saturating_mul(itemsize) > size
            {
                return Err("a variable's data does not fit in the file".into());
            }
        }
        Ok((numrecs, records))
    }

    fn attributes(&mut self) -> Result<(), String> {
        for _ in 0..self.list(0x0C)? {
            self.name()?;
            let size = type_size(self.u32()?)?;
            let n = self.u32()?;
            self.skip_padded(u64::from(n) * size)?;
        }
        Ok(())
    }
}

/// The size of a value of a NetCDF-3 type.
fn type_size(t: u32) -> Result<u64, String> {
    Ok(match t {
        1 | 2 => 1,
        3 => 2,
        4 | 5 => 4,
        6 => 8,
        t => return Err(format!("type {t} is not a NetCDF-3 type")),
    })
}

/// Walks the header of a NetCDF-3 file (classic or 64-bit offset) and checks that every list
/// it declares is there: the `netcdf3` reader allocates each list at its declared length
/// before reading it, so one damaged count would make it allocate without bound. Also checks
/// that the records it declares could fit in the file (each is at least a byte). Returns the
/// header with its padding zeroed when the file pads with other bytes.
fn check_header(path: &Path) -> Result<Option<Vec<u8>>, AdapterError> {
    let bad = |why: String| {
        AdapterError::BadSource(format!(
            "{}: not a readable NetCDF-3 file ({why})",
            path.display()
        ))
    };
    let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let size = file.metadata().map_err(|e| bad(e.to_string()))?.len();
    let mut bytes = Vec::new();
    file.take(MAX_HEADER_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| bad(e.to_string()))?;
    let mut h = Header {
        bytes: &bytes,
        at: 0,
        dirty_padding: Vec::new(),
    };
    let (numrecs, records) = h.walk(size).map_err(bad)?;
    // 0xFFFFFFFF: records are being written; the reader counts them from the file's size.
    if records && numrecs != u32::MAX && u64::from(numrecs) > size {
        return Err(bad(format!(
            "it declares {numrecs} records in {size} bytes"
        )));
    }
    if h.dirty_padding.is_empty() {
        return Ok(None);
    }
    let (end, dirty) = (h.at, std::mem::take(&mut h.dirty_padding));
    bytes.truncate(end);
    for r in dirty {
        bytes[r].fill(0);
    }
    Ok(Some(bytes))
}

/// A NetCDF-3 file read with its header replaced (the same length, padding zeroed).
struct PatchedHeader {
    header: Vec<u8>,
    file: std::fs::File,
    /// The file's length, read once (the reader seeks for every variable).
    len: u64,
    at: u64,
}

impl Read for PatchedHeader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = match usize::try_from(self.at) {
            Ok(at) if at < self.header.len() => {
                let n = buf.len().min(self.header.len() - at);
                buf[..n].copy_from_slice(&self.header[at..at + n]);
                n
            }
            _ => self.file.read_at(buf, self.at)?,
        };
        self.at += n as u64;
        Ok(n)
    }
}

impl std::io::Seek for PatchedHeader {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        use std::io::SeekFrom;
        let to = match pos {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.at.checked_add_signed(d),
        };
        self.at = to.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "a seek before the start")
        })?;
        Ok(self.at)
    }
}

fn open_reader(path: &Path) -> Result<FileReader, AdapterError> {
    let bad = |e: netcdf3::ReadError| {
        AdapterError::BadSource(format!(
            "{}: not a readable NetCDF-3 file ({e:?})",
            super::shown(path)
        ))
    };
    match check_header(path)? {
        None => FileReader::open(path).map_err(bad),
        Some(header) => {
            let file = std::fs::File::open(path).map_err(|e| bad(e.into()))?;
            let len = file.metadata().map_err(|e| bad(e.into()))?.len();
            let patched = PatchedHeader {
                header,
                file,
                len,
                at: 0,
            };
            FileReader::open_seek_read(&path.to_string_lossy(), Box::new(patched)).map_err(bad)
        }
    }
}

/// How a variable is served: its element type and shape (a character variable loses its last
/// dimension into the string length).
fn served_type(ds: &DataSet, var: &str) -> Option<(DataType, Vec<usize>, Vec<String>)> {
    let v = ds.get_var(var)?;
    let mut dims: Vec<String> = v.dim_names();
    let mut shape: Vec<usize> = v.get_dims().iter().map(|d| d.size()).collect();
    let b = |kind, size| DataType::Builtin(BuiltinDType::new(kind, size));
    let dtype = match v.data_type() {
        NcType::I8 => b(Kind::Int, 1),
        NcType::I16 => b(Kind::Int, 2),
        NcType::I32 => b(Kind::Int, 4),
        NcType::F32 => b(Kind::Float, 4),
        NcType::F64 => b(Kind::Float, 8),
        NcType::U8 => {
            let len = match shape.pop() {
                Some(n) => {
                    dims.pop();
                    n
                }
                None => 1,
            };
            b(Kind::Bytes, len.max(1))
        }
    };
    Some((dtype, shape, dims))
}

fn attr_json(a: &netcdf3::Attribute) -> Value {
    fn list<T: Copy + Into<Value>>(v: &[T]) -> Value {
        match v {
            [one] => (*one).into(),
            many => Value::Array(many.iter().map(|x| (*x).into()).collect()),
        }
    }
    match a.data_type() {
        NcType::U8 => a.get_as_string().map(Value::from).unwrap_or(Value::Null),
        NcType::I8 => a.get_i8().map(list).unwrap_or(Value::Null),
        NcType::I16 => a.get_i16().map(list).unwrap_or(Value::Null),
        NcType::I32 => a.get_i32().map(list).unwrap_or(Value::Null),
        NcType::F32 => a
            .get_f32()
            .map(|v| list(&v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>()))
            .unwrap_or(Value::Null),
        NcType::F64 => a.get_f64().map(list).unwrap_or(Value::Null),
    }
}

fn attrs_json<'a>(attrs: impl IntoIterator<Item = &'a netcdf3::Attribute>) -> Map<String, Value> {
    attrs
        .into_iter()
        .filter(|a| !HIDDEN.contains(&a.name()) && !cf::ENCODING_ATTRIBUTES.contains(&a.name()))
        .map(|a| (a.name().to_string(), attr_json(a)))
        .collect()
}

/// What decoding a variable takes, from its attributes (see [`cf`]).
fn cf_attrs(v: &netcdf3::Variable) -> CfAttrs {
    let nums = |name: &str| -> Vec<Num> {
        let Some(a) = v.get_attrs().into_iter().find(|a| a.name() == name) else {
            return Vec::new();
        };
        match a.data_type() {
            NcType::I8 => a
                .get_i8()
                .map(|x| x.iter().map(|&n| Num::Int(n.into())).collect()),
            NcType::I16 => a
                .get_i16()
                .map(|x| x.iter().map(|&n| Num::Int(n.into())).collect()),
            NcType::I32 => a
                .get_i32()
                .map(|x| x.iter().map(|&n| Num::Int(n.into())).collect()),
            NcType::F32 => a
                .get_f32()
                .map(|x| x.iter().map(|&n| Num::F32(n)).collect()),
            NcType::F64 => a
                .get_f64()
                .map(|x| x.iter().map(|&n| Num::F64(n)).collect()),
            NcType::U8 => None,
        }
        .unwrap_or_default()
    };
    CfAttrs {
        fill_value: nums("_FillValue"),
        missing_value: nums("missing_value"),
        scale_factor: nums("scale_factor").first().copied(),
        add_offset: nums("add_offset").first().copied(),
        unsigned: v
            .get_attr_as_string("_Unsigned")
            .map(|s| s.eq_ignore_ascii_case("true")),
        units: v.get_attr_as_string("units"),
        calendar: v.get_attr_as_string("calendar"),
    }
}

fn data_source(uri: &str, var: &str) -> DataSource {
    super::file_part_source(
        StructureFamily::Array,
        MIMETYPE,
        uri,
        ("variable", json!(var)),
    )
}

/// The chunking of a variable: one block, or one record per block along the unlimited
/// dimension; checked first against what the file can hold (a header may promise any number
/// of records of any size) and against the caps of [`super::limits`].
fn chunks_of(
    path: &Path,
    shape: &[usize],
    itemsize: usize,
    record: bool,
) -> Result<Vec<Vec<usize>>, AdapterError> {
    let file_len = std::fs::metadata(path).map_or(0, |m| m.len());
    match super::limits::checked_bytes(shape, itemsize) {
        Some(bytes) if bytes <= file_len => {}
        _ => {
            return Err(AdapterError::Corrupt(format!(
                "{}: its header gives a variable of shape {shape:?} ({itemsize}-byte values), \
                 more than the {file_len}-byte file holds",
                super::shown(path)
            )));
        }
    }
    let chunk: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(i, &n)| if i == 0 && record { 1 } else { n })
        .collect();
    super::limits::chunk_lists(shape, &chunk, itemsize)
}

/// The tree of a NetCDF-3 file: an `xarray_dataset` container keyed `key`.
pub fn inspect(
    path: &Path,
    key: &str,
    skipped: &mut Vec<String>,
) -> Result<TreeNode, AdapterError> {
    let reader = open_reader(path)?;
    let ds = reader.data_set();
    let uri = super::file_uri(path);
    let dim_names = ds.dim_names();
    let mut coords: Vec<String> = Vec::new();
    for v in ds.get_vars() {
        if v.num_dims() == 1
            && dim_names.iter().any(|d| d == v.name())
            && v.dim_names()[0] == v.name()
        {
            coords.push(v.name().to_string());
        }
        if let Some(c) = v.get_attr_as_string("coordinates") {
            coords.extend(c.split_whitespace().map(str::to_string));
        }
    }
    let mut node = TreeNode::container(
        key,
        json!({"attrs": attrs_json(ds.get_global_attrs())}),
        Vec::new(),
    );
    node.specs = vec![crate::structure::Spec::named("xarray_dataset")];
    let mut seen = std::collections::HashSet::new();
    for v in ds.get_vars() {
        let name = v.name();
        // A damaged header may name two variables alike; the reader finds only the first.
        if !seen.insert(name) {
            skipped.push(format!(
                "{}: variable {name}: named twice",
                super::shown(path)
            ));
            continue;
        }
        let Some((data_type, shape, dims)) = served_type(ds, name) else {
            skipped.push(format!(
                "{}: variable {name}: unreadable",
                super::shown(path)
            ));
            continue;
        };
        let stored_size = data_type.itemsize();
        let decode = CfDecode::new(&data_type, &cf_attrs(v));
        let data_type = decode.as_ref().map_or(data_type, CfDecode::served);
        let mut attrs = attrs_json(v.get_attrs());
        if let Some(d) = &decode {
            attrs.retain(|k, _| !d.consumed().contains(&k.as_str()));
        }
        // Record chunking as the reader will see it (by name, as `open` does).
        let record = ds.is_record_var(name).unwrap_or(false);
        let chunks = match chunks_of(path, &shape, stored_size, record) {
            Ok(c) => c,
            Err(e) => {
                skipped.push(format!("variable {name}: {e}"));
                continue;
            }
        };
        let structure = ArrayStructure {
            data_type,
            chunks,
            shape,
            dims: Some(dims),
            resizable: false,
        };
        let spec = if coords.iter().any(|c| c == name) {
            "xarray_coord"
        } else {
            "xarray_data_var"
        };
        node.children.push(
            TreeNode::data(name, Structure::Array(structure), data_source(&uri, name))
                .with_metadata(json!({"attrs": attrs}))
                .with_specs(&[spec]),
        );
    }
    node.inline_contents = true;
    Ok(node)
}

/// Reads one variable of a NetCDF-3 file.
struct VariableReader {
    path: PathBuf,
    var: String,
    record: bool,
    structure: ArrayStructure,
}

/// Opens a NetCDF data source: a NetCDF-3 variable here, a NetCDF-4 one through HDF5.
pub fn open_any(source: &DataSource) -> Result<Adapter, AdapterError> {
    if source.parameters.contains_key("variable") {
        return open(source);
    }
    #[cfg(feature = "hdf5")]
    return super::hdf5_file::open(source);
    #[cfg(not(feature = "hdf5"))]
    Err(AdapterError::BadSource(
        "this build of tessera has no HDF5 (NetCDF-4) support".into(),
    ))
}

/// Opens a NetCDF-3 variable data source.
pub fn open(source: &DataSource) -> Result<Adapter, AdapterError> {
    let uri = super::first_asset(source)?;
    let path = PathBuf::from(format!("/{}", super::local_path(&uri)?));
    let var = source
        .parameters
        .get("variable")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            AdapterError::BadSource(format!(
                "{}: the data source names no variable",
                super::shown(&path)
            ))
        })?
        .to_string();
    let reader = open_reader(&path)?;
    let ds = reader.data_set();
    let (stored, shape, dims) = served_type(ds, &var).ok_or_else(|| {
        AdapterError::BadSource(format!("{}: no variable {var:?}", super::shown(&path)))
    })?;
    let declared = super::structure_of::<ArrayStructure>(source).ok();
    // A node that declares the stored type where decoding changes it (registered before
    // tessera decoded NetCDF, or by a client that chose to) is served as it declares.
    let decode = ds
        .get_var(&var)
        .and_then(|v| CfDecode::new(&stored, &cf_attrs(v)))
        .filter(|d| {
            !(declared.as_ref().is_some_and(|s| s.data_type == stored) && d.served() != stored)
        });
    let data_type = decode.as_ref().map_or(stored.clone(), CfDecode::served);
    // A character variable along the records alone is one string (the records are its
    // characters): one block, read whole.
    let record = ds.is_record_var(&var).unwrap_or(false) && !shape.is_empty();
    let structure = match declared {
        Some(s) if s.shape == shape && s.data_type == data_type => s,
        Some(s) => {
            return Err(AdapterError::BadSource(format!(
                "{}: variable {var} is {:?} of shape {shape:?} but the node declares {:?} of shape {:?}",
                super::shown(&path),
                data_type,
                s.data_type,
                s.shape
            )));
        }
        None => ArrayStructure {
            chunks: chunks_of(&path, &shape, stored.itemsize(), record)?,
            data_type,
            shape,
            dims: Some(dims),
            resizable: false,
        },
    };
    // Whatever the node declares, the variable must fit in the file before it is read.
    chunks_of(&path, &structure.shape, stored.itemsize(), record)?;
    let reader = Arc::new(VariableReader {
        path,
        var,
        record,
        structure: ArrayStructure {
            data_type: stored,
            ..structure
        },
    });
    Ok(Adapter::Array(match decode {
        Some(decode) => Arc::new(cf::Decoded {
            inner: reader,
            decode,
        }),
        None => reader,
    }))
}

fn le_bytes(v: DataVector) -> Vec<u8> {
    match v {
        DataVector::I8(v) => v.into_iter().map(|x| x as u8).collect(),
        DataVector::U8(v) => v,
        DataVector::I16(v) => v.into_iter().flat_map(i16::to_le_bytes).collect(),
        DataVector::I32(v) => v.into_iter().flat_map(i32::to_le_bytes).collect(),
        DataVector::F32(v) => v.into_iter().flat_map(f32::to_le_bytes).collect(),
        DataVector::F64(v) => v.into_iter().flat_map(f64::to_le_bytes).collect(),
    }
}

impl ArrayReader for VariableReader {
    fn read_block(&self, block: &[usize]) -> Result<ArrayData, AdapterError> {
        let s = &self.structure;
        let out_of_range = |reason: &str| AdapterError::BlockOutOfRange {
            block: block.to_vec(),
            reason: reason.to_string(),
        };
        if block.len() != s.shape.len() {
            return Err(out_of_range("wrong number of indices"));
        }
        let first_free = usize::from(self.record);
        if block.iter().skip(first_free).any(|&b| b != 0) {
            return Err(out_of_range("the variable is one block along this axis"));
        }
        let mut shape = s.shape.clone();
        if self.record {
            let i = block[0];
            if i >= s.shape[0] {
                return Err(out_of_range("past the last record"));
            }
            shape[0] = 1;
        }
        // NetCDF-3 stores data uncompressed: a block larger than the file is a damaged header,
        // whose size the reader would allocate before finding the data missing.
        let expected = shape
            .iter()
            .try_fold(s.data_type.itemsize(), |n, &d| n.checked_mul(d));
        let file_size = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        let expected = match expected {
            Some(n) if n as u64 <= file_size => n,
            _ => {
                return Err(AdapterError::Read(format!(
                    "{}: variable {} of shape {:?} does not fit in the file's {file_size} bytes",
                    self.path.display(),
                    self.var,
                    shape
                )));
            }
        };
        let mut reader = open_reader(&self.path)?;
        // The file is read whole by the decoder: what fails is its content (or its end).
        let read_err = |e: netcdf3::ReadError| {
            AdapterError::Corrupt(format!(
                "{}: variable {}: {e:?}",
                super::shown(&self.path),
                self.var
            ))
        };
        let values = if self.record {
            reader.read_record(&self.var, block[0]).map_err(read_err)?
        } else {
            reader.read_var(&self.var).map_err(read_err)?
        };
        let bytes = le_bytes(values);
        if bytes.len() != expected {
            return Err(AdapterError::Corrupt(format!(
                "{}: variable {} gave {} bytes where {expected} were expected",
                super::shown(&self.path),
                self.var,
                bytes.len()
            )));
        }
        Ok(ArrayData::new(s.data_type.clone(), shape, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serializers::netcdf::{NcVariable, to_netcdf};

    #[test]
    fn a_header_that_declares_more_than_it_holds_is_refused_before_reading() {
        let dir = std::env::temp_dir().join(format!("tessera-nc3-lie-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lie.nc");
        // No dimensions, then 2^31 - 1 global attributes in a 28-byte file: the reader
        // would allocate them all (63 GB) before finding the first one missing.
        let mut bytes = b"CDF\x01".to_vec();
        for word in [0u32, 0, 0, 0x0C, 0x7FFF_FFFF, 1] {
            bytes.extend(word.to_be_bytes());
        }
        std::fs::write(&path, &bytes).unwrap();
        let err = inspect(&path, "x", &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("header ends early"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn packed_variables_decode_unless_the_node_declares_the_stored_type() {
        let dir = std::env::temp_dir().join(format!("tessera-nc3-cf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.nc");
        let raw = ArrayData::new(
            DataType::Builtin(BuiltinDType::new(Kind::Int, 2)),
            vec![3],
            [4i16, -2, 7]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<u8>>(),
        );
        let vars = [NcVariable {
            name: "p".into(),
            dims: vec!["x".into()],
            data: raw.clone(),
            attrs: json!({"scale_factor": 0.5, "units": "Pa"})
                .as_object()
                .unwrap()
                .clone(),
        }];
        std::fs::write(&path, to_netcdf(&Map::new(), &vars).unwrap()).unwrap();
        let node = inspect_any(&path, "p", &mut Vec::new()).unwrap();
        let p = &node.children[0];
        assert_eq!(p.metadata["attrs"], json!({"units": "Pa"}));
        let read = |source: &DataSource| match open_any(source).unwrap() {
            Adapter::Array(r) => r.read_block(&[0]).unwrap(),
            _ => panic!("an array reader"),
        };
        let source = p.source.clone().unwrap();
        assert_eq!(
            read(&source),
            ArrayData::from_f64(vec![3], &[2.0, -1.0, 3.5])
        );
        // Declared as stored: served as stored.
        let mut source = source;
        let stored = ArrayStructure {
            data_type: raw.dtype.clone(),
            chunks: vec![vec![3]],
            shape: vec![3],
            dims: Some(vec!["x".into()]),
            resizable: false,
        };
        source
            .parameters
            .insert("structure".into(), serde_json::to_value(&stored).unwrap());
        assert_eq!(read(&source), raw);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_exported_file_reads_back_as_a_dataset() {
        let dir = std::env::temp_dir().join(format!("tessera-nc3-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.nc");
        let t = ArrayData::from_f64(vec![2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let x = ArrayData::from_i64(vec![3], &[10, 20, 30]);
        let vars = [
            NcVariable {
                name: "t".into(),
                dims: vec!["y".into(), "x".into()],
                data: t.clone(),
                attrs: json!({"units": "K", "_FillValue": -1.0})
                    .as_object()
                    .unwrap()
                    .clone(),
            },
            NcVariable {
                name: "x".into(),
                dims: vec!["x".into()],
                data: x,
                attrs: Map::new(),
            },
        ];
        let globals = json!({"title": "scan"}).as_object().unwrap().clone();
        std::fs::write(&path, to_netcdf(&globals, &vars).unwrap()).unwrap();
        assert_eq!(magic(&path), Some(*b"CDF\x02"));

        // The version is told from the first bytes: this file is read here, not by HDF5.
        let node = inspect_any(&path, "scan", &mut Vec::new()).unwrap();
        assert_eq!(node.metadata["attrs"]["title"], "scan");
        let kids: Vec<_> = node
            .children
            .iter()
            .map(|c| (c.key.as_str(), c.specs[0].name.as_str()))
            .collect();
        assert_eq!(kids, [("t", "xarray_data_var"), ("x", "xarray_coord")]);
        let t_node = &node.children[0];
        // `_FillValue` is kept out of the attributes, as xarray keeps it.
        assert_eq!(t_node.metadata["attrs"], json!({"units": "K"}));
        let Some(Adapter::Array(r)) = t_node.source.as_ref().map(|s| open_any(s).unwrap()) else {
            panic!("an array reader");
        };
        assert_eq!(r.read_block(&[0, 0]).unwrap(), t);
        assert!(r.read_block(&[1, 0]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
