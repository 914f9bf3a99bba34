//! COO sparse arrays as tables: columns `dim0..dim{n-1}` (coordinates) and `data`, which the
//! table encoders then render; and as HDF5 (`coords` and `data` datasets).

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch};
use arrow_schema::{Field, Schema};

use super::SerializeError;
use crate::array::ArrayData;

/// A record batch of the points: `dim0`, `dim1`, ... then `data`.
pub fn to_record_batch(
    coords: &[Vec<i64>],
    data: &ArrayData,
) -> Result<RecordBatch, SerializeError> {
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (i, c) in coords.iter().enumerate() {
        if c.len() != data.len() {
            return Err(SerializeError::encode(format!(
                "dimension {i} has {} coordinates for {} values",
                c.len(),
                data.len()
            )));
        }
        fields.push(Field::new(
            format!("dim{i}"),
            arrow_schema::DataType::Int64,
            true,
        ));
        columns.push(Arc::new(Int64Array::from(c.clone())));
    }
    let values = to_arrow(data)?;
    fields.push(Field::new("data", values.data_type().clone(), true));
    columns.push(values);
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(SerializeError::encode)
}

/// The values as an Arrow column of the same numeric type (pandas keeps the dtype).
fn to_arrow(data: &ArrayData) -> Result<ArrayRef, SerializeError> {
    use crate::array::Scalar;
    use crate::dtype::Kind;
    use arrow_array::{
        BooleanArray, Float32Array, Float64Array, Int8Array, Int16Array, Int32Array, UInt8Array,
        UInt16Array, UInt32Array, UInt64Array,
    };
    let b = data.dtype.builtin().ok_or_else(|| {
        SerializeError::unsupported(
            super::ARROW_FILE,
            "sparse arrays of structured values cannot be written as tables",
        )
    })?;
    let n = data.len();
    let scalars = (0..n)
        .map(|i| data.scalar(i))
        .collect::<Result<Vec<_>, _>>()
        .map_err(SerializeError::encode)?;
    // `scalar` decodes by kind and size, so each arm sees only its own variant.
    macro_rules! col {
        ($arr:ty, $variant:ident, $t:ty) => {
            Arc::new(<$arr>::from(
                scalars
                    .iter()
                    .map(|s| match s {
                        Scalar::$variant(v) => *v as $t,
                        _ => <$t>::default(),
                    })
                    .collect::<Vec<$t>>(),
            )) as ArrayRef
        };
    }
    Ok(match (b.kind, b.itemsize) {
        (Kind::Bool, 1) => Arc::new(BooleanArray::from(
            scalars
                .iter()
                .map(|s| matches!(s, Scalar::Bool(true)))
                .collect::<Vec<_>>(),
        )),
        (Kind::Int, 1) => col!(Int8Array, Int, i8),
        (Kind::Int, 2) => col!(Int16Array, Int, i16),
        (Kind::Int, 4) => col!(Int32Array, Int, i32),
        (Kind::Int, 8) => col!(Int64Array, Int, i64),
        (Kind::UInt, 1) => col!(UInt8Array, UInt, u8),
        (Kind::UInt, 2) => col!(UInt16Array, UInt, u16),
        (Kind::UInt, 4) => col!(UInt32Array, UInt, u32),
        (Kind::UInt, 8) => col!(UInt64Array, UInt, u64),
        (Kind::Float, 4) => col!(Float32Array, Float, f32),
        (Kind::Float, 8) => col!(Float64Array, Float, f64),
        _ => {
            return Err(SerializeError::unsupported(
                super::ARROW_FILE,
                format!(
                    "sparse values of type {} cannot be written as tables",
                    b.numpy_str()
                ),
            ));
        }
    })
}

/// HDF5 with datasets `coords` (ndim x nnz, int64) and `data`.
pub fn to_hdf5(coords: &[Vec<i64>], data: &ArrayData) -> Result<Vec<u8>, SerializeError> {
    use super::hdf5::{H5Node, to_hdf5};
    let nnz = data.len();
    let flat: Vec<i64> = coords.iter().flatten().copied().collect();
    let coords = ArrayData::from_i64(vec![coords.len(), nnz], &flat);
    to_hdf5(&H5Node::Group {
        attrs: Default::default(),
        children: vec![
            (
                "coords".into(),
                H5Node::Array {
                    data: coords,
                    attrs: Default::default(),
                },
            ),
            (
                "data".into(),
                H5Node::Array {
                    data: data.clone(),
                    attrs: Default::default(),
                },
            ),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DataType;
    use crate::serializers::table;

    /// The demo's sparse_image points (golden 100).
    fn golden_points() -> (Vec<Vec<i64>>, ArrayData) {
        let coords = vec![
            vec![0, 1, 3, 4, 4, 5, 5, 6, 6, 8],
            vec![4, 2, 3, 8, 9, 0, 1, 3, 7, 9],
        ];
        let data = ArrayData::from_f64(
            vec![10],
            &[
                0.9537655846448119,
                0.9836484678266348,
                0.9947498177831647,
                0.9588629975735954,
                0.9542699534970882,
                0.9489668032987362,
                0.9816289467761168,
                0.9563257190636427,
                0.9201926474733444,
                0.9540192629956404,
            ],
        );
        (coords, data)
    }

    #[test]
    fn points_become_columns() {
        let data = ArrayData::from_f64(vec![2], &[0.5, 0.25]);
        let b = to_record_batch(&[vec![0, 3], vec![1, 2]], &data).unwrap();
        let names: Vec<_> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["dim0", "dim1", "data"]);
        assert_eq!(b.num_rows(), 2);
        assert!(matches!(
            to_record_batch(&[vec![0]], &data),
            Err(SerializeError::Encode(_))
        ));
    }

    #[test]
    fn json_matches_golden_100() {
        let (coords, data) = golden_points();
        let b = to_record_batch(&coords, &data).unwrap();
        let json = String::from_utf8(table::to_json(&[b], &[]).unwrap()).unwrap();
        assert_eq!(
            json,
            "{\"dim0\":[0,1,3,4,4,5,5,6,6,8],\"dim1\":[4,2,3,8,9,0,1,3,7,9],\"data\":[0.9537655846448119,0.9836484678266348,0.9947498177831647,0.9588629975735954,0.9542699534970882,0.9489668032987362,0.9816289467761168,0.9563257190636427,0.9201926474733444,0.9540192629956404]}"
        );
    }

    #[test]
    fn arrow_and_csv_of_points() {
        use arrow_array::cast::AsArray;
        use arrow_array::types::{Float64Type, Int64Type};
        let (coords, data) = golden_points();
        let b = to_record_batch(&coords, &data).unwrap();
        let arrow = table::to_arrow_file(std::slice::from_ref(&b)).unwrap();
        let mut reader =
            arrow_ipc::reader::FileReader::try_new(std::io::Cursor::new(arrow), None).unwrap();
        let back = reader.next().unwrap().unwrap();
        assert_eq!(back.column(1).as_primitive::<Int64Type>().value(3), 8);
        assert_eq!(
            back.column(2).as_primitive::<Float64Type>().value(9),
            0.9540192629956404
        );
        // The real server answers 500 for sparse CSV; pandas would print this.
        let csv = String::from_utf8(table::to_csv(&[b], &[]).unwrap()).unwrap();
        assert!(csv.starts_with("dim0,dim1,data\n0,4,0.9537655846448119\n1,2,0.98364"));
        assert_eq!(csv.lines().count(), 11);
    }

    #[test]
    fn value_types_are_kept() {
        let raw: Vec<u8> = [7i32, -1].iter().flat_map(|v| v.to_le_bytes()).collect();
        let b =
            to_record_batch(&[vec![0, 1]], &ArrayData::new(DataType::i4(), vec![2], raw)).unwrap();
        assert_eq!(b.column(1).data_type(), &arrow_schema::DataType::Int32);
        let be: DataType =
            serde_json::from_str(r#"{"endianness":"big","kind":"u","itemsize":2}"#).unwrap();
        let b = to_record_batch(&[vec![0]], &ArrayData::new(be, vec![1], vec![1, 2])).unwrap();
        let col = b
            .column(1)
            .as_any()
            .downcast_ref::<arrow_array::UInt16Array>();
        assert_eq!(col.unwrap().value(0), 258);
        let f: Vec<u8> = 0.5f32.to_le_bytes().to_vec();
        let b = to_record_batch(&[vec![3]], &ArrayData::new(DataType::f4(), vec![1], f)).unwrap();
        assert_eq!(b.column(1).data_type(), &arrow_schema::DataType::Float32);
        let z = ArrayData::new(DataType::c16(), vec![1], vec![0u8; 16]);
        assert!(matches!(
            to_record_batch(&[vec![0]], &z),
            Err(SerializeError::Unsupported { .. })
        ));
    }
}
