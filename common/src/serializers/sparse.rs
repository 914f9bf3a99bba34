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

fn to_arrow(data: &ArrayData) -> Result<ArrayRef, SerializeError> {
    use crate::array::Scalar;
    let n = data.len();
    let first = if n > 0 {
        Some(data.scalar(0).map_err(SerializeError::encode)?)
    } else {
        None
    };
    let all = |f: &dyn Fn(Scalar) -> Option<f64>| -> Result<Vec<f64>, SerializeError> {
        (0..n)
            .map(|i| {
                let s = data.scalar(i).map_err(SerializeError::encode)?;
                f(s).ok_or_else(|| SerializeError::unsupported("sparse", "mixed value types"))
            })
            .collect()
    };
    Ok(match first {
        Some(Scalar::Int(_)) => Arc::new(Int64Array::from(
            (0..n)
                .map(|i| match data.scalar(i) {
                    Ok(Scalar::Int(v)) => Ok(v),
                    _ => Err(SerializeError::unsupported("sparse", "mixed value types")),
                })
                .collect::<Result<Vec<_>, _>>()?,
        )),
        _ => Arc::new(arrow_array::Float64Array::from(all(&|s| match s {
            Scalar::Float(f) => Some(f),
            Scalar::UInt(u) => Some(u as f64),
            Scalar::Bool(b) => Some(f64::from(u8::from(b))),
            _ => None,
        })?)),
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
        assert!(to_record_batch(&[vec![0]], &data).is_err());
    }
}
