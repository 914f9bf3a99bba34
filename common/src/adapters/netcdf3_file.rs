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

use super::{Adapter, AdapterError, ArrayReader, DataSource};
use crate::array::ArrayData;
use crate::dtype::{BuiltinDType, DataType, Kind};
use crate::node::TreeNode;
use crate::structure::{ArrayStructure, Structure, StructureFamily};

/// The mimetype of NetCDF data sources, version 3 or 4.
pub const MIMETYPE: &str = "application/x-netcdf";

/// Attributes the readers keep for themselves, as xarray does (it moves them to `encoding`).
const HIDDEN: [&str; 2] = ["_FillValue", "coordinates"];

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

fn open_reader(path: &Path) -> Result<FileReader, AdapterError> {
    FileReader::open(path).map_err(|e| {
        AdapterError::BadSource(format!(
            "{}: not a readable NetCDF-3 file ({e:?})",
            super::shown(path)
        ))
    })
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
        .filter(|a| !HIDDEN.contains(&a.name()))
        .map(|a| (a.name().to_string(), attr_json(a)))
        .collect()
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
    for v in ds.get_vars() {
        let name = v.name();
        let Some((data_type, shape, dims)) = served_type(ds, name) else {
            skipped.push(format!(
                "{}: variable {name}: unreadable",
                super::shown(path)
            ));
            continue;
        };
        let chunks = match chunks_of(path, &shape, data_type.itemsize(), v.is_record_var()) {
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
                .with_metadata(json!({"attrs": attrs_json(v.get_attrs())}))
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
    let (data_type, shape, dims) = served_type(ds, &var).ok_or_else(|| {
        AdapterError::BadSource(format!("{}: no variable {var:?}", super::shown(&path)))
    })?;
    let record = ds.is_record_var(&var).unwrap_or(false);
    let structure = match super::structure_of::<ArrayStructure>(source) {
        Ok(s) if s.shape == shape && s.data_type == data_type => s,
        Ok(s) => {
            return Err(AdapterError::BadSource(format!(
                "{}: variable {var} is {:?} of shape {shape:?} but the node declares {:?} of shape {:?}",
                super::shown(&path),
                data_type,
                s.data_type,
                s.shape
            )));
        }
        Err(_) => ArrayStructure {
            chunks: chunks_of(&path, &shape, data_type.itemsize(), record)?,
            data_type,
            shape,
            dims: Some(dims),
            resizable: false,
        },
    };
    // Whatever the node declares, the variable must fit in the file before it is read.
    chunks_of(
        &path,
        &structure.shape,
        structure.data_type.itemsize(),
        record,
    )?;
    Ok(Adapter::Array(Arc::new(VariableReader {
        path,
        var,
        record,
        structure,
    })))
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
        let mut reader = open_reader(&self.path)?;
        // The file is read whole by the decoder: what fails is its content (or its end).
        let read_err = |e: netcdf3::ReadError| {
            AdapterError::Corrupt(format!(
                "{}: variable {}: {e:?}",
                super::shown(&self.path),
                self.var
            ))
        };
        let (values, shape) = if self.record {
            let i = block[0];
            if i >= s.shape[0] {
                return Err(out_of_range("past the last record"));
            }
            let mut shape = vec![1];
            shape.extend_from_slice(&s.shape[1..]);
            (reader.read_record(&self.var, i).map_err(read_err)?, shape)
        } else {
            (
                reader.read_var(&self.var).map_err(read_err)?,
                s.shape.clone(),
            )
        };
        let bytes = le_bytes(values);
        let expected = shape.iter().product::<usize>() * s.data_type.itemsize();
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
