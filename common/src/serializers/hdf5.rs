//! HDF5 export of a subtree, laid out as Tiled's h5py export does: containers become groups,
//! arrays datasets of their own type, tables groups with one dataset per column, metadata
//! attributes (strings, numbers, flat lists as themselves, anything nested as JSON text).
//! Needs the `hdf5` crate feature (the system libhdf5); without it, export is refused.

use arrow_array::RecordBatch;
use serde_json::{Map, Value};

use super::SerializeError;
use crate::array::ArrayData;

/// A subtree to export.
pub enum H5Node {
    /// A container: a group with attributes and named children.
    Group {
        attrs: Map<String, Value>,
        children: Vec<(String, H5Node)>,
    },
    /// An array: one dataset.
    Array {
        data: ArrayData,
        attrs: Map<String, Value>,
    },
    /// A table (partitions of one schema): a group of column datasets, index columns left out.
    Table {
        batches: Vec<RecordBatch>,
        index_columns: Vec<String>,
        attrs: Map<String, Value>,
    },
}

/// The subtree as the bytes of an HDF5 file. A group at the top fills the file's root; a
/// table at the top puts its columns at the root (as Tiled's table export does); an array
/// at the top becomes the dataset `data`.
#[cfg(feature = "hdf5")]
pub fn to_hdf5(node: &H5Node) -> Result<Vec<u8>, SerializeError> {
    imp::to_hdf5(node)
}

/// Without the `hdf5` feature there is no HDF5 export: always `Unsupported`.
#[cfg(not(feature = "hdf5"))]
pub fn to_hdf5(_node: &H5Node) -> Result<Vec<u8>, SerializeError> {
    Err(SerializeError::unsupported(
        super::HDF5,
        "this build has no HDF5 support",
    ))
}

#[cfg(feature = "hdf5")]
mod imp {
    use std::str::FromStr;
    use std::sync::atomic::{AtomicU64, Ordering};

    use hdf5::types::{FixedAscii, FixedUnicode, TypeDescriptor, VarLenUnicode};
    use serde_json::{Map, Value};

    use super::{H5Node, SerializeError};
    use crate::adapters::table_column::{arrow_to_array, numpy_type};
    use crate::array::{ArrayData, Scalar};
    use crate::dtype::{DataType, Kind};
    use crate::serializers::HDF5;

    fn e(err: impl std::fmt::Display) -> SerializeError {
        SerializeError::encode(err)
    }

    fn unicode(s: &str) -> Result<VarLenUnicode, SerializeError> {
        VarLenUnicode::from_str(s).map_err(|err| {
            SerializeError::unsupported(HDF5, format!("text {s:?} cannot be stored: {err}"))
        })
    }

    /// One attribute as h5py would store the JSON value; `None` for values HDF5 has no
    /// type for, which go in as JSON text.
    fn write_attr(loc: &hdf5::Location, k: &str, v: &Value) -> hdf5::Result<Option<()>> {
        let all = |f: fn(&Value) -> bool| matches!(v, Value::Array(a) if !a.is_empty() && a.iter().all(f));
        match v {
            Value::Bool(b) => loc.new_attr::<bool>().create(k)?.write_scalar(b)?,
            Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => loc.new_attr::<i64>().create(k)?.write_scalar(&i)?,
                (None, Some(f)) => loc.new_attr::<f64>().create(k)?.write_scalar(&f)?,
                _ => return Ok(None),
            },
            Value::String(s) => match VarLenUnicode::from_str(s) {
                Ok(u) => loc
                    .new_attr::<VarLenUnicode>()
                    .create(k)?
                    .write_scalar(&u)?,
                Err(_) => return Ok(None),
            },
            Value::Array(a) if all(|x| x.as_i64().is_some()) => {
                let vals: Vec<i64> = a.iter().filter_map(Value::as_i64).collect();
                loc.new_attr::<i64>()
                    .shape(vals.len())
                    .create(k)?
                    .write_raw(&vals)?
            }
            Value::Array(a) if all(Value::is_number) => {
                let vals: Vec<f64> = a.iter().filter_map(Value::as_f64).collect();
                loc.new_attr::<f64>()
                    .shape(vals.len())
                    .create(k)?
                    .write_raw(&vals)?
            }
            Value::Array(a) if all(Value::is_string) => {
                let vals: Vec<VarLenUnicode> = a
                    .iter()
                    .filter_map(|x| x.as_str().and_then(|s| VarLenUnicode::from_str(s).ok()))
                    .collect();
                if vals.len() != a.len() {
                    return Ok(None);
                }
                loc.new_attr::<VarLenUnicode>()
                    .shape(vals.len())
                    .create(k)?
                    .write_raw(&vals)?
            }
            _ => return Ok(None),
        }
        Ok(Some(()))
    }

    /// Refuses a name libhdf5 cannot store, before libhdf5 fails on it: it takes C strings
    /// and no empty names, and a group member's name is a link, not a path.
    fn check_name(what: &str, name: &str, link: bool) -> Result<(), SerializeError> {
        let path_like = link && (name == "." || name.contains('/'));
        if name.is_empty() || name.contains('\0') || path_like {
            return Err(SerializeError::unsupported(
                HDF5,
                format!(
                    "{what} {name:?} cannot be an HDF5 name (empty, '.', or holding '/' or a \
                     NUL character); ask for another format"
                ),
            ));
        }
        Ok(())
    }

    fn write_attrs(loc: &hdf5::Location, attrs: &Map<String, Value>) -> Result<(), SerializeError> {
        for (k, v) in attrs {
            check_name("the metadata key", k, false)?;
            // h5py cannot store None either; leaving the key out keeps the rest readable.
            if v.is_null() {
                continue;
            }
            if write_attr(loc, k, v).map_err(e)?.is_none() {
                // HDF5 attributes have no maps or mixed lists: keep them as JSON text.
                let u = unicode(&v.to_string())?;
                loc.new_attr::<VarLenUnicode>()
                    .create(k.as_str())
                    .and_then(|a| a.write_scalar(&u))
                    .map_err(e)?;
            }
        }
        Ok(())
    }

    fn arr<const N: usize>(raw: &[u8], swap: bool) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&raw[..N]);
        if swap {
            a.reverse();
        }
        a
    }

    /// Fixed-length strings (UTF-8, or ASCII when every value is) as wide as the longest
    /// value in bytes. The in-memory type needs a compile-time width, so values are staged in
    /// the next size up and HDF5 narrows them to the file type.
    fn write_fixed_strings(
        g: &hdf5::Group,
        name: &str,
        shape: &[usize],
        values: &[String],
    ) -> Result<hdf5::Dataset, SerializeError> {
        let width = values.iter().map(String::len).max().unwrap_or(0).max(1);
        let ascii = values.iter().all(|s| s.is_ascii());
        let file_type = if ascii {
            TypeDescriptor::FixedAscii(width)
        } else {
            TypeDescriptor::FixedUnicode(width)
        };
        let ds = g
            .new_dataset_builder()
            .empty_as(&file_type)
            .shape(shape.to_vec())
            .create(name)
            .map_err(e)?;
        macro_rules! staged {
            ($($n:literal),*) => {
                $(
                    if width <= $n {
                        if ascii {
                            let v = values
                                .iter()
                                .map(|s| FixedAscii::<$n>::from_ascii(s.as_bytes()))
                                .collect::<Result<Vec<_>, _>>()
                                .map_err(e)?;
                            ds.write_raw(&v).map_err(e)?;
                        } else {
                            let v = values
                                .iter()
                                .map(|s| FixedUnicode::<$n>::from_str(s))
                                .collect::<Result<Vec<_>, _>>()
                                .map_err(e)?;
                            ds.write_raw(&v).map_err(e)?;
                        }
                        return Ok(ds);
                    }
                )*
            };
        }
        staged!(8, 32, 128, 512, 2048, 8192, 32768);
        Err(SerializeError::unsupported(
            HDF5,
            format!("'{name}' holds strings longer than 32768 bytes"),
        ))
    }

    fn write_array(
        g: &hdf5::Group,
        name: &str,
        a: &ArrayData,
        attrs: &Map<String, Value>,
    ) -> Result<(), SerializeError> {
        let b = a.dtype.builtin().ok_or_else(|| {
            SerializeError::unsupported(
                HDF5,
                format!("'{name}' has a structured data type, which HDF5 export does not support"),
            )
        })?;
        let (n, size) = (a.len(), b.itemsize);
        if a.bytes.len() < n * size {
            return Err(e(format!("'{name}' has fewer bytes than its shape needs")));
        }
        let swap = b.is_byte_swapped();
        let raw = &a.bytes[..n * size];
        macro_rules! ds {
            ($t:ty) => {{
                const S: usize = std::mem::size_of::<$t>();
                let vals: Vec<$t> = raw
                    .chunks_exact(S)
                    .map(|c| <$t>::from_ne_bytes(arr(c, swap)))
                    .collect();
                let ds = g
                    .new_dataset::<$t>()
                    .shape(a.shape.clone())
                    .create(name)
                    .map_err(e)?;
                ds.write_raw(&vals).map_err(e)?;
                ds
            }};
        }
        let ds = match (b.kind, size) {
            (Kind::Float, 8) => ds!(f64),
            (Kind::Float, 4) => ds!(f32),
            (Kind::Int, 1) => ds!(i8),
            (Kind::Int, 2) => ds!(i16),
            (Kind::Int, 4) => ds!(i32),
            // Times are stored as their int64 counts, with the unit as an attribute.
            (Kind::Int | Kind::DateTime | Kind::TimeDelta, 8) => ds!(i64),
            (Kind::UInt, 1) => ds!(u8),
            (Kind::UInt, 2) => ds!(u16),
            (Kind::UInt, 4) => ds!(u32),
            (Kind::UInt, 8) => ds!(u64),
            (Kind::Bool, 1) => {
                let vals: Vec<bool> = raw.iter().map(|&v| v != 0).collect();
                let ds = g
                    .new_dataset::<bool>()
                    .shape(a.shape.clone())
                    .create(name)
                    .map_err(e)?;
                ds.write_raw(&vals).map_err(e)?;
                ds
            }
            (Kind::Unicode | Kind::Bytes, _) => {
                let strings = (0..n)
                    .map(|i| match a.scalar(i).map_err(e)? {
                        Scalar::Str(s) => Ok(s),
                        Scalar::Bytes(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
                        _ => Err(e("unexpected element type")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                write_fixed_strings(g, name, &a.shape, &strings)?
            }
            _ => {
                return Err(SerializeError::unsupported(
                    HDF5,
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

    /// One dataset per data column in `g`, partitions concatenated.
    fn write_columns(
        g: &hdf5::Group,
        batches: &[arrow_array::RecordBatch],
        index_columns: &[String],
    ) -> Result<(), SerializeError> {
        let Some(first) = batches.first() else {
            return Ok(());
        };
        for (c, field) in first.schema().fields().iter().enumerate() {
            if index_columns.contains(field.name()) {
                continue;
            }
            check_name("the column", field.name(), true)?;
            let mut dtype = numpy_type(field.data_type()).map_err(|err| {
                SerializeError::unsupported(HDF5, format!("column '{}': {err}", field.name()))
            })?;
            if let DataType::Builtin(b) = &mut dtype
                && b.kind == Kind::Unicode
            {
                // Wide enough for the longest value, so nothing is cut.
                let widest = batches
                    .iter()
                    .map(|b| {
                        let col = b.column(c);
                        use arrow_array::cast::AsArray;
                        let lens: Vec<usize> = match col.data_type() {
                            arrow_schema::DataType::Utf8 => col
                                .as_string::<i32>()
                                .iter()
                                .map(|s| s.map_or(0, |s| s.chars().count()))
                                .collect(),
                            _ => col
                                .as_string::<i64>()
                                .iter()
                                .map(|s| s.map_or(0, |s| s.chars().count()))
                                .collect(),
                        };
                        lens.into_iter().max().unwrap_or(0)
                    })
                    .max()
                    .unwrap_or(0);
                b.itemsize = 4 * widest.max(1);
            }
            let mut bytes = Vec::new();
            let mut n = 0;
            for b in batches {
                let part = arrow_to_array(b.column(c), &dtype).map_err(e)?;
                bytes.extend_from_slice(&part.bytes);
                n += part.len();
            }
            let column = ArrayData::new(dtype, vec![n], bytes);
            write_array(g, field.name(), &column, &Map::new())?;
        }
        Ok(())
    }

    fn write_node(parent: &hdf5::Group, name: &str, node: &H5Node) -> Result<(), SerializeError> {
        check_name("the key", name, true)?;
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
                write_columns(&g, batches, index_columns)
            }
        }
    }

    /// Removes the temporary file however the export ends.
    struct TempFile(std::path::PathBuf);

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// Writes to a private temporary file (libhdf5 writes files) and returns its bytes.
    pub fn to_hdf5(node: &H5Node) -> Result<Vec<u8>, SerializeError> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let tmp = TempFile(std::env::temp_dir().join(format!(
            "tessera-export-{}-{}.h5",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        )));
        let file = hdf5::File::create(&tmp.0).map_err(e)?;
        match node {
            H5Node::Group { attrs, children } => {
                write_attrs(&file, attrs)?;
                for (k, child) in children {
                    write_node(&file, k, child)?;
                }
            }
            H5Node::Table {
                batches,
                index_columns,
                attrs,
            } => {
                write_attrs(&file, attrs)?;
                write_columns(&file, batches, index_columns)?;
            }
            array @ H5Node::Array { .. } => write_node(&file, "data", array)?,
        }
        file.close().map_err(e)?;
        std::fs::read(&tmp.0).map_err(e)
    }
}

#[cfg(test)]
#[cfg(feature = "hdf5")]
mod tests {
    use super::*;
    use crate::array::encode_unicode;
    use crate::dtype::{BuiltinDType, DataType, Field, Kind, StructDType};
    use hdf5::types::{FixedAscii, FixedUnicode, TypeDescriptor, VarLenUnicode};
    use serde_json::json;
    use std::sync::Arc;

    /// Writes the bytes to a file of the test's own and opens it with libhdf5.
    fn open(bytes: &[u8], tag: &str) -> (hdf5::File, std::path::PathBuf) {
        assert_eq!(&bytes[..8], b"\x89HDF\r\n\x1a\n");
        let path = std::env::temp_dir().join(format!("tessera-h5-{tag}-{}.h5", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        (hdf5::File::open(&path).unwrap(), path)
    }

    fn md(v: serde_json::Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn groups_arrays_and_attributes_read_back() {
        let mut s = Vec::new();
        encode_unicode("1/137", 5, &mut s);
        let mut e_arr = Vec::new();
        for v in ["héllo", "a"] {
            encode_unicode(v, 5, &mut e_arr);
        }
        let f4: Vec<u8> = [0.5f32, 1.5].iter().flat_map(|v| v.to_le_bytes()).collect();
        let tree = H5Node::Group {
            attrs: md(json!({
                "numbers": "constants", "precision": 5, "ratio": 0.5, "ok": true,
                "nested": {"a": 1}, "ints": [1, 2], "names": ["x", "y"], "none": null
            })),
            children: vec![
                (
                    "pi".into(),
                    H5Node::Array {
                        data: ArrayData::from_f64(vec![], &[2.5]),
                        attrs: md(json!({"unit": "rad"})),
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
                    "e_arr".into(),
                    H5Node::Array {
                        data: ArrayData::new(DataType::unicode(5), vec![2], e_arr),
                        attrs: Map::new(),
                    },
                ),
                (
                    "nested".into(),
                    H5Node::Group {
                        attrs: md(json!({"animal": "dog"})),
                        children: vec![(
                            "img".into(),
                            H5Node::Array {
                                data: ArrayData::new(DataType::f4(), vec![1, 2], f4),
                                attrs: Map::new(),
                            },
                        )],
                    },
                ),
            ],
        };
        let (f, path) = open(&to_hdf5(&tree).unwrap(), "tree");
        let pi = f.dataset("pi").unwrap();
        assert_eq!(pi.read_scalar::<f64>().unwrap(), 2.5);
        let unit: VarLenUnicode = pi.attr("unit").unwrap().read_scalar().unwrap();
        assert_eq!(unit.as_str(), "rad");
        // Unicode arrays are fixed-length strings as wide as their longest value in bytes.
        let fsc = f.dataset("fsc").unwrap();
        assert_eq!(
            fsc.dtype().unwrap().to_descriptor().unwrap(),
            TypeDescriptor::FixedAscii(5)
        );
        assert_eq!(
            fsc.read_scalar::<FixedAscii<5>>().unwrap().as_str(),
            "1/137"
        );
        let e = f.dataset("e_arr").unwrap();
        assert_eq!(
            e.dtype().unwrap().to_descriptor().unwrap(),
            TypeDescriptor::FixedUnicode(6)
        );
        let e: Vec<FixedUnicode<6>> = e.read_raw().unwrap();
        assert_eq!(e[0].as_str(), "héllo");
        assert_eq!(e[1].as_str(), "a");
        let img = f.dataset("nested/img").unwrap();
        assert_eq!(img.shape(), vec![1, 2]);
        assert_eq!(
            img.dtype().unwrap().to_descriptor().unwrap(),
            TypeDescriptor::Float(hdf5::types::FloatSize::U4)
        );
        assert_eq!(img.read_raw::<f32>().unwrap(), vec![0.5, 1.5]);
        let animal: VarLenUnicode = f
            .group("nested")
            .unwrap()
            .attr("animal")
            .unwrap()
            .read_scalar()
            .unwrap();
        assert_eq!(animal.as_str(), "dog");
        assert_eq!(
            f.attr("precision").unwrap().read_scalar::<i64>().unwrap(),
            5
        );
        assert_eq!(f.attr("ratio").unwrap().read_scalar::<f64>().unwrap(), 0.5);
        assert!(f.attr("ok").unwrap().read_scalar::<bool>().unwrap());
        assert_eq!(
            f.attr("ints").unwrap().read_raw::<i64>().unwrap(),
            vec![1, 2]
        );
        let names: Vec<VarLenUnicode> = f.attr("names").unwrap().read_raw().unwrap();
        assert_eq!(names[1].as_str(), "y");
        let nested: VarLenUnicode = f.attr("nested").unwrap().read_scalar().unwrap();
        assert_eq!(nested.as_str(), r#"{"a":1}"#);
        assert!(f.attr("none").is_err());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn tables_are_column_datasets_without_the_index() {
        use arrow_array::{ArrayRef, Float64Array, Int64Array, StringArray, TimestampSecondArray};
        let b = RecordBatch::try_from_iter([
            ("A", Arc::new(Int64Array::from(vec![5, 9])) as ArrayRef),
            (
                "B",
                Arc::new(Float64Array::from(vec![0.5, 1.5])) as ArrayRef,
            ),
            (
                "C",
                Arc::new(StringArray::from(vec!["yyy", "a much longer value"])) as ArrayRef,
            ),
            (
                "D",
                Arc::new(TimestampSecondArray::from(vec![1_735_689_600, 0])) as ArrayRef,
            ),
            ("index", Arc::new(Int64Array::from(vec![0, 1])) as ArrayRef),
        ])
        .unwrap();
        let table = |batches: Vec<RecordBatch>| H5Node::Table {
            batches,
            index_columns: vec!["index".into()],
            attrs: md(json!({"color": "red"})),
        };
        // At the top, the columns fill the root (Tiled's table export).
        let (f, path) = open(
            &to_hdf5(&table(vec![b.slice(0, 1), b.slice(1, 1)])).unwrap(),
            "table",
        );
        let mut names = f.member_names().unwrap();
        names.sort();
        assert_eq!(names, ["A", "B", "C", "D"]);
        assert_eq!(
            f.dataset("A").unwrap().read_raw::<i64>().unwrap(),
            vec![5, 9]
        );
        assert_eq!(
            f.dataset("B").unwrap().read_raw::<f64>().unwrap(),
            vec![0.5, 1.5]
        );
        let c: Vec<FixedAscii<19>> = f.dataset("C").unwrap().read_raw().unwrap();
        assert_eq!(c[1].as_str(), "a much longer value");
        let d = f.dataset("D").unwrap();
        assert_eq!(d.read_raw::<i64>().unwrap(), vec![1_735_689_600, 0]);
        let units: VarLenUnicode = d.attr("units").unwrap().read_scalar().unwrap();
        assert_eq!(units.as_str(), "[s]");
        let color: VarLenUnicode = f.attr("color").unwrap().read_scalar().unwrap();
        assert_eq!(color.as_str(), "red");
        std::fs::remove_file(&path).unwrap();
        // Inside a container, a table is a group.
        let tree = H5Node::Group {
            attrs: Map::new(),
            children: vec![("short_table".into(), table(vec![b]))],
        };
        let (f, path) = open(&to_hdf5(&tree).unwrap(), "nested-table");
        assert_eq!(
            f.dataset("short_table/B")
                .unwrap()
                .read_raw::<f64>()
                .unwrap(),
            vec![0.5, 1.5]
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn sparse_points_are_coords_and_data() {
        let data = ArrayData::from_f64(vec![2], &[0.5, 0.25]);
        let bytes = crate::serializers::sparse::to_hdf5(&[vec![0, 3], vec![1, 2]], &data).unwrap();
        let (f, path) = open(&bytes, "sparse");
        let coords = f.dataset("coords").unwrap();
        assert_eq!(coords.shape(), vec![2, 2]);
        assert_eq!(coords.read_raw::<i64>().unwrap(), vec![0, 3, 1, 2]);
        assert_eq!(
            f.dataset("data").unwrap().read_raw::<f64>().unwrap(),
            vec![0.5, 0.25]
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn structured_and_complex_arrays_are_refused() {
        let rec = DataType::Structured(StructDType {
            itemsize: 4,
            fields: vec![Field {
                name: "a".into(),
                dtype: DataType::i4(),
                shape: None,
            }],
        });
        for data in [
            ArrayData::new(rec, vec![1], vec![0u8; 4]),
            ArrayData::new(DataType::c16(), vec![1], vec![0u8; 16]),
            ArrayData::new(
                DataType::Builtin(BuiltinDType::new(Kind::Float, 2)),
                vec![1],
                vec![0u8; 2],
            ),
        ] {
            let tree = H5Node::Group {
                attrs: Map::new(),
                children: vec![(
                    "x".into(),
                    H5Node::Array {
                        data,
                        attrs: Map::new(),
                    },
                )],
            };
            assert!(matches!(
                to_hdf5(&tree),
                Err(SerializeError::Unsupported { .. })
            ));
        }
    }

    /// Names libhdf5 cannot take are a 406 before libhdf5 sees them, not its error (a 500).
    #[test]
    fn names_hdf5_cannot_hold_are_refused() {
        let array = || H5Node::Array {
            data: ArrayData::new(DataType::f8(), vec![1], vec![0u8; 8]),
            attrs: Map::new(),
        };
        let mut trees = vec![];
        for key in ["", "a\0b"] {
            trees.push(H5Node::Group {
                attrs: md(json!({ key: 1 })),
                children: vec![],
            });
        }
        for key in ["", ".", "a/b", "a\0b"] {
            trees.push(H5Node::Group {
                attrs: Map::new(),
                children: vec![(key.into(), array())],
            });
        }
        for tree in trees {
            match to_hdf5(&tree) {
                Err(SerializeError::Unsupported { reason, .. }) => {
                    assert!(reason.contains("cannot be an HDF5 name"), "{reason}")
                }
                other => panic!("{other:?}"),
            }
        }
        // Attribute names may hold '/' and '.'.
        let fine = H5Node::Group {
            attrs: md(json!({"a/b": 1, ".": 2})),
            children: vec![("x".into(), array())],
        };
        assert!(to_hdf5(&fine).is_ok());
    }
}
