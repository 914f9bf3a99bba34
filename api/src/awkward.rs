//! Awkward-form rendering: awkward arrays to JSON by walking their form over the named
//! buffers, and ragged arrays (nested offsets over flat values) to JSON, to Awkward buffers,
//! and sliced along their first dimension.

use serde_json::{Value, json};
use tessera_common::array::ArrayData;
use tessera_common::slicing::{DimSelector, SliceSpec};

use crate::error::ApiError;

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::unprocessable(msg.into())
}

fn buffer<'a>(buffers: &'a [(String, bytes::Bytes)], name: &str) -> Result<&'a [u8], ApiError> {
    buffers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, b)| &b[..])
        .ok_or_else(|| bad(format!("awkward buffer {name} is missing")))
}

fn i64_at(b: &[u8], i: usize) -> Result<i64, ApiError> {
    b.get(i * 8..i * 8 + 8)
        .and_then(|s| s.try_into().ok())
        .map(i64::from_le_bytes)
        .ok_or_else(|| bad(format!("awkward buffer too short for element {i}")))
}

fn node_value(
    form: &Value,
    buffers: &[(String, bytes::Bytes)],
    i: usize,
) -> Result<Value, ApiError> {
    let key = form["form_key"].as_str().unwrap_or("");
    match form["class"].as_str() {
        Some("NumpyArray") => {
            let b = buffer(buffers, &format!("{key}-data"))?;
            let at = |size: usize| {
                b.get(i * size..(i + 1) * size)
                    .ok_or_else(|| bad(format!("awkward buffer {key}-data too short")))
            };
            Ok(match form["primitive"].as_str() {
                Some("float64") => json!(f64::from_le_bytes(
                    at(8)?.try_into().map_err(|_| bad("bad float64"))?
                )),
                Some("int64") => json!(i64::from_le_bytes(
                    at(8)?.try_into().map_err(|_| bad("bad int64"))?
                )),
                Some("int32") => json!(i32::from_le_bytes(
                    at(4)?.try_into().map_err(|_| bad("bad int32"))?
                )),
                Some("bool") => json!(at(1)?[0] != 0),
                other => return Err(bad(format!("awkward primitive {other:?} is not supported"))),
            })
        }
        Some("ListOffsetArray") => {
            let off = buffer(buffers, &format!("{key}-offsets"))?;
            let (start, stop) = (i64_at(off, i)?, i64_at(off, i + 1)?);
            (start..stop)
                .map(|j| node_value(&form["content"], buffers, j as usize))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        Some("RecordArray") => {
            let fields = form["fields"].as_array().cloned().unwrap_or_default();
            let contents = form["contents"].as_array().cloned().unwrap_or_default();
            let mut m = serde_json::Map::new();
            for (f, c) in fields.iter().zip(&contents) {
                m.insert(
                    f.as_str().unwrap_or("").to_string(),
                    node_value(c, buffers, i)?,
                );
            }
            Ok(Value::Object(m))
        }
        other => Err(bad(format!(
            "awkward form class {other:?} is not supported"
        ))),
    }
}

/// The awkward array as JSON (a list of `length` entries).
pub fn to_json(
    form: &Value,
    length: usize,
    buffers: &[(String, bytes::Bytes)],
) -> Result<Value, ApiError> {
    (0..length)
        .map(|i| node_value(form, buffers, i))
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

/// An Awkward form, its named buffers, and the top-level length.
pub type AwkwardBuffers = (Value, Vec<(String, Vec<u8>)>, usize);

/// A ragged array: offsets per variable dimension (outside in) over flat values.
pub struct Ragged {
    pub offsets: Vec<Vec<i64>>,
    pub values: ArrayData,
}

impl Ragged {
    fn rows(&self) -> usize {
        self.offsets
            .first()
            .map_or(self.values.len(), |o| o.len().saturating_sub(1))
    }

    fn level(&self, depth: usize, i: usize) -> Result<Value, ApiError> {
        match self.offsets.get(depth) {
            None => {
                let v = self.values.scalar(i).map_err(|e| bad(e.to_string()))?;
                Ok(match v {
                    tessera_common::array::Scalar::Float(f) => json!(f),
                    tessera_common::array::Scalar::Int(x) => json!(x),
                    tessera_common::array::Scalar::UInt(x) => json!(x),
                    tessera_common::array::Scalar::Bool(x) => json!(x),
                    other => json!(format!("{other:?}")),
                })
            }
            Some(off) => {
                let start = *off.get(i).ok_or_else(|| bad("ragged offsets too short"))?;
                let stop = *off
                    .get(i + 1)
                    .ok_or_else(|| bad("ragged offsets too short"))?;
                (start..stop)
                    .map(|j| self.level(depth + 1, j as usize))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Value::Array)
            }
        }
    }

    /// Nested lists.
    pub fn to_json(&self) -> Result<Value, ApiError> {
        (0..self.rows())
            .map(|i| self.level(0, i))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array)
    }

    /// The canonical Awkward form (nested `ListOffsetArray`s around a `NumpyArray`), the
    /// buffers it names, and the top-level length.
    pub fn to_buffers(&self) -> Result<AwkwardBuffers, ApiError> {
        let primitive = match self.values.dtype.builtin().map(|b| (b.kind, b.itemsize)) {
            Some((tessera_common::dtype::Kind::Float, 8)) => "float64",
            Some((tessera_common::dtype::Kind::Int, 8)) => "int64",
            _ => return Err(bad("only float64 and int64 ragged arrays are supported")),
        };
        let depth = self.offsets.len();
        let mut form = json!({"class": "NumpyArray", "primitive": primitive, "inner_shape": [],
                              "parameters": {}, "form_key": format!("node{depth}")});
        for d in (0..depth).rev() {
            form = json!({"class": "ListOffsetArray", "offsets": "i64", "content": form,
                          "parameters": {}, "form_key": format!("node{d}")});
        }
        let mut buffers = Vec::new();
        for (d, off) in self.offsets.iter().enumerate() {
            buffers.push((
                format!("node{d}-offsets"),
                off.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ));
        }
        buffers.push((format!("node{depth}-data"), self.values.bytes.to_vec()));
        Ok((form, buffers, self.rows()))
    }

    /// Selects rows (first dimension only) with a start:stop:step range or keeps one row.
    pub fn slice(self, spec: &SliceSpec) -> Result<Ragged, ApiError> {
        let entries: Vec<&DimSelector> = spec
            .0
            .iter()
            .filter(|d| !matches!(d, DimSelector::Ellipsis))
            .collect();
        if entries.len() > 1 {
            return Err(bad(
                "ragged arrays can only be sliced along their first dimension",
            ));
        }
        let Some(first) = entries.first() else {
            return Ok(self);
        };
        let sel = SliceSpec(vec![(*first).clone()]).resolve(&[self.rows()])?;
        let d = &sel.dims[0];
        let rows: Vec<usize> = (0..d.len)
            .map(|k| (d.start as isize + k as isize * d.step) as usize)
            .collect();
        // Rebuild every offsets level for the chosen rows, then gather the values.
        let mut offsets: Vec<Vec<i64>> = Vec::new();
        let mut ranges: Vec<(usize, usize)> = rows.iter().map(|&r| (r, r + 1)).collect();
        for off in &self.offsets {
            let mut new = vec![0i64];
            let mut next = Vec::new();
            for &(a, b) in &ranges {
                for i in a..b {
                    let (s, e) = (off[i] as usize, off[i + 1] as usize);
                    let last = *new.last().unwrap_or(&0);
                    new.push(last + (e - s) as i64);
                    next.push((s, e));
                }
            }
            offsets.push(new);
            ranges = next;
        }
        let itemsize = self.values.dtype.itemsize();
        let mut values = Vec::new();
        let mut n = 0;
        for (a, b) in ranges {
            values.extend_from_slice(&self.values.bytes[a * itemsize..b * itemsize]);
            n += b - a;
        }
        if !d.keep && !offsets.is_empty() {
            // An integer index drops the first dimension: the row's own lists remain.
            offsets.remove(0);
        }
        Ok(Ragged {
            offsets,
            values: ArrayData::new(self.values.dtype.clone(), vec![n], values),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn demo() -> Ragged {
        Ragged {
            offsets: vec![vec![0, 2, 3, 3, 5], vec![0, 3, 3, 4, 8, 9]],
            values: ArrayData::from_f64(vec![9], &[1.1, 2.2, 3.3, 4.4, 5.5, 6.6, 7.7, 8.8, 9.9]),
        }
    }

    #[test]
    fn ragged_json_nests_by_offsets() {
        assert_eq!(
            demo().to_json().unwrap(),
            json!([
                [[1.1, 2.2, 3.3], []],
                [[4.4]],
                [],
                [[5.5, 6.6, 7.7, 8.8], [9.9]]
            ])
        );
    }

    #[test]
    fn ragged_row_slices_rebuild_offsets() {
        let s = demo()
            .slice(&SliceSpec::from_str("1:4:2").unwrap())
            .unwrap();
        assert_eq!(
            s.to_json().unwrap(),
            json!([[[4.4]], [[5.5, 6.6, 7.7, 8.8], [9.9]]])
        );
        assert!(
            demo()
                .slice(&SliceSpec::from_str("0:1,0:1").unwrap())
                .is_err()
        );
    }

    #[test]
    fn ragged_buffers_follow_the_canonical_form() {
        let (form, buffers, len) = demo().to_buffers().unwrap();
        assert_eq!(len, 4);
        assert_eq!(form["content"]["content"]["form_key"], "node2");
        let names: Vec<_> = buffers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["node0-offsets", "node1-offsets", "node2-data"]);
        assert_eq!(buffers[0].1.len(), 40);
    }

    #[test]
    fn awkward_json_walks_records_and_lists() {
        let i64s = |v: &[i64]| {
            bytes::Bytes::from(v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
        };
        let f64s = |v: &[f64]| {
            bytes::Bytes::from(v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
        };
        let form = json!({"class": "ListOffsetArray", "offsets": "i64", "form_key": "node0",
            "content": {"class": "RecordArray", "fields": ["x", "y"], "form_key": "node1",
                "contents": [
                    {"class": "NumpyArray", "primitive": "float64", "form_key": "node2"},
                    {"class": "ListOffsetArray", "offsets": "i64", "form_key": "node3",
                     "content": {"class": "NumpyArray", "primitive": "int64", "form_key": "node4"}}]}});
        let buffers = vec![
            ("node0-offsets".to_string(), i64s(&[0, 2, 2, 3])),
            ("node2-data".to_string(), f64s(&[1.1, 2.2, 3.3])),
            ("node3-offsets".to_string(), i64s(&[0, 1, 3, 6])),
            ("node4-data".to_string(), i64s(&[1, 1, 2, 1, 2, 3])),
        ];
        assert_eq!(
            to_json(&form, 3, &buffers).unwrap(),
            json!([[{"x": 1.1, "y": [1]}, {"x": 2.2, "y": [1, 2]}], [], [{"x": 3.3, "y": [1, 2, 3]}]])
        );
    }
}
