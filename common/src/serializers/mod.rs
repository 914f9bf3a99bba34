//! Encoders from in-memory structures to the media types Tiled serves.
#[derive(Debug, thiserror::Error)]
pub enum SerializeError {
    #[error("{media_type}: {reason}")]
    Unsupported { media_type: String, reason: String },
    #[error("encode failed: {0}")]
    Encode(String),
}
fn uns(m: &str) -> SerializeError {
    SerializeError::Unsupported {
        media_type: m.into(),
        reason: "not yet".into(),
    }
}
pub mod array {
    use super::*;
    use crate::array::{ArrayData, Scalar, py_float_repr};
    use bytes::Bytes;
    pub fn to_octet_stream(a: &ArrayData) -> Bytes {
        a.bytes.clone()
    }
    fn sc(s: Scalar) -> serde_json::Value {
        match s {
            Scalar::Float(f) => serde_json::json!(f),
            Scalar::Int(i) => serde_json::json!(i),
            Scalar::UInt(i) => serde_json::json!(i),
            Scalar::Bool(b) => serde_json::json!(b),
            Scalar::Str(s) => serde_json::json!(s),
            Scalar::Complex(r, i) => serde_json::json!([r, i]),
            Scalar::Record(f) => {
                serde_json::Value::Array(f.into_iter().map(|(_, v)| sc(v)).collect())
            }
            other => serde_json::json!(format!("{other:?}")),
        }
    }
    fn nest(
        a: &ArrayData,
        dim: usize,
        off: &mut usize,
    ) -> Result<serde_json::Value, SerializeError> {
        if dim == a.shape.len() {
            let v = a
                .scalar(*off)
                .map_err(|e| SerializeError::Encode(e.to_string()))?;
            *off += 1;
            return Ok(sc(v));
        }
        (0..a.shape[dim])
            .map(|_| nest(a, dim + 1, off))
            .collect::<Result<Vec<_>, _>>()
            .map(serde_json::Value::Array)
    }
    pub fn to_json(a: &ArrayData) -> Result<Vec<u8>, SerializeError> {
        let mut o = 0;
        serde_json::to_vec(&nest(a, 0, &mut o)?).map_err(|e| SerializeError::Encode(e.to_string()))
    }
    pub fn to_csv(a: &ArrayData) -> Result<Vec<u8>, SerializeError> {
        if a.shape.len() > 2 {
            return Err(uns("text/csv"));
        }
        let cols = if a.shape.len() == 2 { a.shape[1] } else { 1 };
        let mut s = String::new();
        for i in 0..a.len() {
            let v = a
                .scalar(i)
                .map_err(|e| SerializeError::Encode(e.to_string()))?;
            s.push_str(&match v {
                Scalar::Float(f) => py_float_repr(f),
                other => sc(other).to_string(),
            });
            s.push(if (i + 1) % cols == 0 { '\n' } else { ',' });
        }
        Ok(s.into_bytes())
    }
    pub fn to_png(_a: &ArrayData) -> Result<Vec<u8>, SerializeError> {
        Err(uns("image/png"))
    }
    pub fn to_tiff(_a: &ArrayData) -> Result<Vec<u8>, SerializeError> {
        Err(uns("image/tiff"))
    }
    pub fn to_html(_a: &ArrayData) -> Result<Vec<u8>, SerializeError> {
        Err(uns("text/html"))
    }
}
pub mod table {
    use super::*;
    use arrow_array::RecordBatch;
    pub fn arrow_schema_data_uri(schema: &arrow_schema::Schema) -> Result<String, SerializeError> {
        use base64::Engine;
        let generator = arrow_ipc::writer::IpcDataGenerator::default();
        let mut tracker = arrow_ipc::writer::DictionaryTracker::new(false);
        let enc = generator.schema_to_bytes_with_dictionary_tracker(
            schema,
            &mut tracker,
            &arrow_ipc::writer::IpcWriteOptions::default(),
        );
        let mut buf = Vec::new();
        arrow_ipc::writer::write_message(
            &mut buf,
            enc,
            &arrow_ipc::writer::IpcWriteOptions::default(),
        )
        .map_err(|e| SerializeError::Encode(e.to_string()))?;
        Ok(format!(
            "data:application/vnd.apache.arrow.file;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(buf)
        ))
    }
    pub fn to_arrow_file(b: &[RecordBatch]) -> Result<Vec<u8>, SerializeError> {
        let schema = b
            .first()
            .map(|x| x.schema())
            .ok_or_else(|| SerializeError::Encode("no batches".into()))?;
        let mut w = arrow_ipc::writer::FileWriter::try_new(Vec::new(), &schema)
            .map_err(|e| SerializeError::Encode(e.to_string()))?;
        for x in b {
            w.write(x)
                .map_err(|e| SerializeError::Encode(e.to_string()))?;
        }
        w.into_inner()
            .map_err(|e| SerializeError::Encode(e.to_string()))
    }
    pub fn to_parquet(_b: &[RecordBatch]) -> Result<Vec<u8>, SerializeError> {
        Err(uns("parquet"))
    }
    pub fn to_csv(_b: &[RecordBatch], _i: &[String]) -> Result<Vec<u8>, SerializeError> {
        Err(uns("csv"))
    }
    pub fn to_json(_b: &[RecordBatch], _i: &[String]) -> Result<Vec<u8>, SerializeError> {
        Err(uns("json"))
    }
    pub fn to_json_seq(_b: &[RecordBatch], _i: &[String]) -> Result<Vec<u8>, SerializeError> {
        Err(uns("json-seq"))
    }
    pub fn to_xlsx(_b: &[RecordBatch], _i: &[String]) -> Result<Vec<u8>, SerializeError> {
        Err(uns("xlsx"))
    }
    pub fn to_html(_b: &[RecordBatch], _i: &[String]) -> Result<Vec<u8>, SerializeError> {
        Err(uns("html"))
    }
}
pub mod sparse {
    use super::*;
    use crate::array::ArrayData;
    use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
    use std::sync::Arc;
    pub fn to_record_batch(
        coords: &[Vec<i64>],
        data: &ArrayData,
    ) -> Result<RecordBatch, SerializeError> {
        let mut cols: Vec<(String, ArrayRef)> = coords
            .iter()
            .enumerate()
            .map(|(i, c)| {
                (
                    format!("dim{i}"),
                    Arc::new(Int64Array::from(c.clone())) as ArrayRef,
                )
            })
            .collect();
        let vals: Vec<f64> = data
            .to_f64_vec()
            .map_err(|e| SerializeError::Encode(e.to_string()))?;
        cols.push(("data".into(), Arc::new(Float64Array::from(vals))));
        RecordBatch::try_from_iter_with_nullable(cols.into_iter().map(|(n, a)| (n, a, true)))
            .map_err(|e| SerializeError::Encode(e.to_string()))
    }
    pub fn to_hdf5(_c: &[Vec<i64>], _d: &ArrayData) -> Result<Vec<u8>, SerializeError> {
        Err(uns("hdf5"))
    }
}
pub mod zip {
    use super::*;
    use std::io::Write;
    pub fn zip_stored(entries: &[(String, &[u8])]) -> Result<Vec<u8>, SerializeError> {
        let mut w = ::zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = ::zip::write::SimpleFileOptions::default()
            .compression_method(::zip::CompressionMethod::Stored);
        for (n, b) in entries {
            w.start_file(n.as_str(), opts)
                .map_err(|e| SerializeError::Encode(e.to_string()))?;
            w.write_all(b)
                .map_err(|e| SerializeError::Encode(e.to_string()))?;
        }
        Ok(w.finish()
            .map_err(|e| SerializeError::Encode(e.to_string()))?
            .into_inner())
    }
}
pub mod hdf5 {
    use super::*;
    use crate::array::ArrayData;
    use arrow_array::RecordBatch;
    pub enum H5Node {
        Group {
            attrs: serde_json::Map<String, serde_json::Value>,
            children: Vec<(String, H5Node)>,
        },
        Array {
            data: ArrayData,
            attrs: serde_json::Map<String, serde_json::Value>,
        },
        Table {
            batches: Vec<RecordBatch>,
            index_columns: Vec<String>,
            attrs: serde_json::Map<String, serde_json::Value>,
        },
    }
    pub fn to_hdf5(_n: &H5Node) -> Result<Vec<u8>, SerializeError> {
        Err(uns("application/x-hdf5"))
    }
}
