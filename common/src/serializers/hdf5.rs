//! HDF5 export of a subtree: containers become groups, arrays and table columns datasets,
//! metadata attributes (strings and numbers as themselves, anything nested as JSON text).
//! Needs the `hdf5` crate feature (the system libhdf5); without it, export is refused.

use arrow_array::RecordBatch;
use serde_json::{Map, Value};

use super::SerializeError;
use crate::array::ArrayData;

/// A subtree to export.
pub enum H5Node {
    Group {
        attrs: Map<String, Value>,
        children: Vec<(String, H5Node)>,
    },
    Array {
        data: ArrayData,
        attrs: Map<String, Value>,
    },
    Table {
        batches: Vec<RecordBatch>,
        index_columns: Vec<String>,
        attrs: Map<String, Value>,
    },
}

/// The subtree as the bytes of an HDF5 file.
#[cfg(feature = "hdf5")]
pub fn to_hdf5(node: &H5Node) -> Result<Vec<u8>, SerializeError> {
    imp::to_hdf5(node)
}

/// The subtree as the bytes of an HDF5 file.
#[cfg(not(feature = "hdf5"))]
pub fn to_hdf5(_node: &H5Node) -> Result<Vec<u8>, SerializeError> {
    Err(SerializeError::unsupported(
        "application/x-hdf5",
        "this build of tessera has no HDF5 support",
    ))
}

#[cfg(feature = "hdf5")]
mod imp {
    use std::sync::atomic::{AtomicU64, Ordering};

    use hdf5::types::VarLenUnicode;
    use serde_json::{Map, Value};

    use super::{H5Node, SerializeError};
    use crate::adapters::table_column::{arrow_to_array, numpy_type};
    use crate::array::{ArrayData, Scalar};
    use crate::dtype::Kind;

    fn e(err: impl std::fmt::Display) -> SerializeError {
        SerializeError::encode(err)
    }

    fn unicode(s: &str) -> Result<VarLenUnicode, SerializeError> {
        s.parse::<VarLenUnicode>().map_err(e)
    }

    fn write_attrs(loc: &hdf5::Location, attrs: &Map<String, Value>) -> Result<(), SerializeError> {
        for (k, v) in attrs {
            match v {
                Value::Bool(b) => loc
                    .new_attr::<bool>()
                    .create(k.as_str())
                    .and_then(|a| a.write_scalar(b)),
                Value::Number(n) if n.is_i64() => loc
                    .new_attr::<i64>()
                    .create(k.as_str())
                    .and_then(|a| a.write_scalar(&n.as_i64().unwrap_or_default())),
                Value::Number(n) => loc
                    .new_attr::<f64>()
                    .create(k.as_str())
                    .and_then(|a| a.write_scalar(&n.as_f64().unwrap_or(f64::NAN))),
                Value::String(s) => {
                    let u = unicode(s)?;
                    loc.new_attr::<VarLenUnicode>()
                        .create(k.as_str())
                        .and_then(|a| a.write_scalar(&u))
                }
                Value::Null => continue,
                nested => {
                    // HDF5 attributes have no maps or mixed lists: keep them as JSON text.
                    let u = unicode(&nested.to_string())?;
                    loc.new_attr::<VarLenUnicode>()
                        .create(k.as_str())
                        .and_then(|a| a.write_scalar(&u))
                }
            }
            .map_err(e)?;
        }
        Ok(())
    }

    fn typed<T: hdf5::H5Type + Copy>(
        a: &ArrayData,
        pick: impl Fn(Scalar) -> Option<T>,
    ) -> Result<Vec<T>, SerializeError> {
        (0..a.len())
            .map(|i| {
                let s = a.scalar(i).map_err(e)?;
                pick(s).ok_or_else(|| e("unexpected element type"))
            })
            .collect()
    }

    fn write_array(
        g: &hdf5::Group,
        name: &str,
        a: &ArrayData,
        attrs: &Map<String, Value>,
    ) -> Result<(), SerializeError> {
        let shape = a.shape.clone();
        let b = a.dtype.builtin().ok_or_else(|| {
            SerializeError::unsupported(
                "application/x-hdf5",
                format!(
                    "'{name}' has a structured data type, which HDF5 export does not support yet"
                ),
            )
        })?;
        macro_rules! ds {
            ($t:ty, $vals:expr) => {{
                let vals: Vec<$t> = $vals;
                let ds = g
                    .new_dataset::<$t>()
                    .shape(shape.clone())
                    .create(name)
                    .map_err(e)?;
                ds.write_raw(&vals).map_err(e)?;
                ds
            }};
        }
        let ds = match b.kind {
            Kind::Float => ds!(
                f64,
                typed(a, |s| match s {
                    Scalar::Float(f) => Some(f),
                    _ => None,
                })?
            ),
            Kind::Int | Kind::TimeDelta | Kind::DateTime => ds!(
                i64,
                typed(a, |s| match s {
                    Scalar::Int(v) | Scalar::DateTime(v, _) | Scalar::TimeDelta(v, _) => Some(v),
                    _ => None,
                })?
            ),
            Kind::UInt => ds!(
                u64,
                typed(a, |s| match s {
                    Scalar::UInt(v) => Some(v),
                    _ => None,
                })?
            ),
            Kind::Bool => ds!(
                bool,
                typed(a, |s| match s {
                    Scalar::Bool(v) => Some(v),
                    _ => None,
                })?
            ),
            Kind::Unicode | Kind::Bytes => {
                let strings = (0..a.len())
                    .map(|i| match a.scalar(i).map_err(e)? {
                        Scalar::Str(s) => unicode(&s),
                        Scalar::Bytes(b) => unicode(&String::from_utf8_lossy(&b)),
                        _ => Err(e("unexpected element type")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                ds!(VarLenUnicode, strings)
            }
            _ => {
                return Err(SerializeError::unsupported(
                    "application/x-hdf5",
                    format!(
                        "'{name}' holds {} values, which HDF5 export does not support",
                        b.numpy_str()
                    ),
                ));
            }
        };
        if let Some(units) = &b.dt_units {
            let u = unicode(units)?;
            ds.new_attr::<VarLenUnicode>()
                .create("units")
                .and_then(|at| at.write_scalar(&u))
                .map_err(e)?;
        }
        write_attrs(&ds, attrs)
    }

    fn write_node(parent: &hdf5::Group, name: &str, node: &H5Node) -> Result<(), SerializeError> {
        match node {
            H5Node::Group { attrs, children } => {
                let g = parent.create_group(name).map_err(e)?;
                write_attrs(&g, attrs)?;
                for (k, child) in children {
                    write_node(&g, k, child)?;
                }
                Ok(())
            }
            H5Node::Array { data, attrs } => write_array(parent, name, data, attrs),
            H5Node::Table {
                batches,
                index_columns,
                attrs,
            } => {
                let g = parent.create_group(name).map_err(e)?;
                write_attrs(&g, attrs)?;
                let Some(first) = batches.first() else {
                    return Ok(());
                };
                for (c, field) in first.schema().fields().iter().enumerate() {
                    if index_columns.contains(field.name()) {
                        continue;
                    }
                    let mut dtype = numpy_type(field.data_type()).map_err(e)?;
                    if let crate::dtype::DataType::Builtin(b) = &mut dtype
                        && b.kind == Kind::Unicode
                    {
                        b.itemsize = 4 * 1024;
                    }
                    let parts = batches
                        .iter()
                        .map(|b| arrow_to_array(b.column(c), &dtype))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(e)?;
                    let mut bytes = Vec::new();
                    let mut n = 0;
                    for p in &parts {
                        bytes.extend_from_slice(&p.bytes);
                        n += p.len();
                    }
                    let column = ArrayData::new(dtype, vec![n], bytes);
                    write_array(&g, field.name(), &column, &Map::new())?;
                }
                Ok(())
            }
        }
    }

    /// Writes to a private temporary file (libhdf5 writes files) and returns its bytes.
    pub fn to_hdf5(node: &H5Node) -> Result<Vec<u8>, SerializeError> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "tessera-export-{}-{}.h5",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let file = hdf5::File::create(&path).map_err(e)?;
            match node {
                H5Node::Group { attrs, children } => {
                    write_attrs(&file, attrs)?;
                    for (k, child) in children {
                        write_node(&file, k, child)?;
                    }
                }
                other => write_node(&file, "data", other)?,
            }
            file.close().map_err(e)?;
            std::fs::read(&path).map_err(e)
        })();
        let _ = std::fs::remove_file(&path);
        result
    }
}

#[cfg(all(test, feature = "hdf5"))]
mod tests {
    use super::*;
    use crate::array::encode_unicode;
    use crate::dtype::DataType;
    use serde_json::json;

    #[test]
    fn groups_arrays_and_attributes_read_back() {
        let mut s = Vec::new();
        encode_unicode("1/137", 5, &mut s);
        let md = json!({"numbers": "constants", "precision": 5, "nested": {"a": 1}});
        let tree = H5Node::Group {
            attrs: md.as_object().unwrap().clone(),
            children: vec![
                (
                    "pi".into(),
                    H5Node::Array {
                        data: ArrayData::from_f64(vec![], &[3.25]),
                        attrs: Map::new(),
                    },
                ),
                (
                    "fsc".into(),
                    H5Node::Array {
                        data: ArrayData::new(DataType::unicode(5), vec![], s),
                        attrs: Map::new(),
                    },
                ),
                (
                    "img".into(),
                    H5Node::Array {
                        data: ArrayData::from_i64(vec![2, 2], &[1, 2, 3, 4]),
                        attrs: Map::new(),
                    },
                ),
            ],
        };
        let bytes = to_hdf5(&tree).unwrap();
        assert_eq!(&bytes[..8], b"\x89HDF\r\n\x1a\n");
        let path = std::env::temp_dir().join(format!("tessera-h5-test-{}.h5", std::process::id()));
        std::fs::write(&path, &bytes).unwrap();
        let f = hdf5::File::open(&path).unwrap();
        let img = f.dataset("img").unwrap();
        assert_eq!(img.shape(), vec![2, 2]);
        assert_eq!(img.read_raw::<i64>().unwrap(), vec![1, 2, 3, 4]);
        let p: i64 = f.attr("precision").unwrap().read_scalar().unwrap();
        assert_eq!(p, 5);
        std::fs::remove_file(&path).unwrap();
    }
}
