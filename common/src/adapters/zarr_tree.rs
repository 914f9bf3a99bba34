//! The layout of a Zarr store (v2 or v3) on disk, read from its JSON metadata alone: groups
//! become containers, arrays become array nodes read by [`super::zarr`] (through zarrs, with
//! every codec it supports: blosc, zstd, gzip, sharding, transpose). Consolidated metadata
//! (v2 `.zmetadata`, v3 `consolidated_metadata`) is used when present, so a large store is
//! described with one file read.

use std::path::Path;

use serde_json::{Map, Value};

use super::{AdapterError, Asset, DataSource, Management, zarr};
use crate::dtype::{BuiltinDType, DataType, Kind};
use crate::node::TreeNode;
use crate::structure::{ArrayStructure, Structure, StructureFamily};

/// Whether `dir` is the root of a Zarr store (an array or a group, v2 or v3).
pub fn is_store(dir: &Path) -> bool {
    ["zarr.json", ".zarray", ".zgroup"]
        .iter()
        .any(|f| dir.join(f).is_file())
}

/// Metadata documents of a store: from its consolidated metadata, or read file by file.
struct Docs<'a> {
    root: &'a Path,
    consolidated: Option<Map<String, Value>>,
}

impl Docs<'_> {
    fn get(&self, rel: &str) -> Result<Option<Value>, AdapterError> {
        if let Some(c) = &self.consolidated {
            return Ok(c.get(rel).cloned());
        }
        let path = self.root.join(rel);
        if !path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read(&path).map_err(|e| {
            AdapterError::BadSource(format!("{}: cannot be read ({e})", path.display()))
        })?;
        serde_json::from_slice(&text).map(Some).map_err(|e| {
            AdapterError::BadSource(format!("{}: is not valid JSON ({e})", path.display()))
        })
    }

    /// The names of the members of the group at `rel` ("" for the root).
    fn members(&self, rel: &str) -> Vec<String> {
        let mut names: Vec<String> = match &self.consolidated {
            Some(c) => {
                let prefix = if rel.is_empty() {
                    String::new()
                } else {
                    format!("{rel}/")
                };
                c.keys()
                    .filter_map(|k| k.strip_prefix(&prefix))
                    .filter_map(|k| k.split('/').next())
                    .filter(|n| !n.starts_with('.') && *n != "zarr.json")
                    .map(str::to_string)
                    .collect()
            }
            None => std::fs::read_dir(self.root.join(rel))
                .map(|it| {
                    it.filter_map(Result::ok)
                        .filter(|e| e.path().is_dir())
                        .filter_map(|e| e.file_name().into_string().ok())
                        .filter(|n| !n.starts_with('.'))
                        .collect()
                })
                .unwrap_or_default(),
        };
        names.sort();
        names.dedup();
        names
    }
}

fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_string()
    } else {
        format!("{rel}/{name}")
    }
}

/// The tree of the store at `root`, keyed `key`. Members that cannot be served are listed in
/// `skipped` with the reason.
pub fn inspect(
    root: &Path,
    key: &str,
    skipped: &mut Vec<String>,
) -> Result<TreeNode, AdapterError> {
    let plain = Docs {
        root,
        consolidated: None,
    };
    let consolidated = if let Some(Value::Object(mut m)) = plain.get(".zmetadata")? {
        match m.remove("metadata") {
            Some(Value::Object(c)) => Some(c),
            _ => None,
        }
    } else if let Some(doc) = plain.get("zarr.json")? {
        doc.pointer("/consolidated_metadata/metadata")
            .and_then(Value::as_object)
            .map(|c| {
                // v3 consolidates whole documents by member path; index them like files.
                c.iter()
                    .map(|(k, v)| (format!("{k}/zarr.json"), v.clone()))
                    .collect()
            })
    } else {
        None
    };
    let docs = Docs { root, consolidated };
    match node(&docs, &plain, "", key, skipped)? {
        Some(n) => Ok(n),
        None => Err(AdapterError::BadSource(format!(
            "{}: not a Zarr store (no zarr.json, .zarray or .zgroup)",
            root.display()
        ))),
    }
}

fn node(
    docs: &Docs,
    plain: &Docs,
    rel: &str,
    key: &str,
    skipped: &mut Vec<String>,
) -> Result<Option<TreeNode>, AdapterError> {
    let name = |f: &str| join(rel, f);
    // The root's own documents are never in the consolidated map.
    let source = if rel.is_empty() { plain } else { docs };
    let (kind, doc, attrs) = if let Some(doc) = source.get(&name("zarr.json"))? {
        let kind = doc["node_type"].as_str().unwrap_or("").to_string();
        let attrs = doc["attributes"].as_object().cloned().unwrap_or_default();
        (kind, doc, attrs)
    } else if let Some(doc) = source.get(&name(".zarray"))? {
        let attrs = attrs_v2(source, rel)?;
        ("array".to_string(), doc, attrs)
    } else if source.get(&name(".zgroup"))?.is_some() {
        ("group".to_string(), Value::Null, attrs_v2(source, rel)?)
    } else {
        return Ok(None);
    };
    let at = docs.root.join(rel);
    match kind.as_str() {
        "group" => {
            let mut n = TreeNode::container(key, Value::Object(attrs), Vec::new());
            for m in docs.members(rel) {
                if let Some(child) = node(docs, plain, &join(rel, &m), &m, skipped)? {
                    n.children.push(child);
                }
            }
            Ok(Some(n))
        }
        "array" => match array_structure(&doc, &attrs) {
            Ok(s) => {
                let source = DataSource {
                    structure_family: StructureFamily::Array,
                    mimetype: zarr::MIMETYPE.into(),
                    parameters: Map::new(),
                    assets: vec![Asset {
                        data_uri: super::file_uri(&at),
                        is_directory: true,
                        parameter: Some("data_uri".into()),
                        num: None,
                    }],
                    management: Management::External,
                };
                Ok(Some(
                    TreeNode::data(key, Structure::Array(s), source)
                        .with_metadata(Value::Object(attrs)),
                ))
            }
            Err(why) => {
                skipped.push(format!("{}: {why}", at.display()));
                Ok(None)
            }
        },
        other => Err(AdapterError::BadSource(format!(
            "{}: unknown Zarr node type {other:?}",
            at.display()
        ))),
    }
}

fn attrs_v2(docs: &Docs, rel: &str) -> Result<Map<String, Value>, AdapterError> {
    Ok(match docs.get(&join(rel, ".zattrs"))? {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    })
}

fn usizes(v: &Value) -> Option<Vec<usize>> {
    v.as_array()?
        .iter()
        .map(|x| x.as_u64().map(|n| n as usize))
        .collect()
}

/// The structure of an array from its v2 `.zarray` or v3 `zarr.json`. Blocks are the
/// array's chunks; with sharding, the inner chunks (zarrs decodes just those).
pub fn array_structure(doc: &Value, attrs: &Map<String, Value>) -> Result<ArrayStructure, String> {
    let shape = usizes(&doc["shape"]).ok_or("the array metadata has no shape")?;
    let (data_type, chunk, dims) = if doc["zarr_format"] == 3 {
        let dt = doc["data_type"]
            .as_str()
            .ok_or("data types other than the core named ones are not served")?;
        let mut chunk = usizes(&doc["chunk_grid"]["configuration"]["chunk_shape"])
            .ok_or("only regular chunk grids are served")?;
        if let Some(inner) = doc["codecs"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == "sharding_indexed"))
            .and_then(|c| usizes(&c["configuration"]["chunk_shape"]))
        {
            chunk = inner;
        }
        let dims = doc["dimension_names"].as_array().and_then(|d| {
            d.iter()
                .map(|x| x.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
        });
        (v3_type(dt)?, chunk, dims)
    } else {
        let dt = doc["dtype"]
            .as_str()
            .ok_or("structured (record) Zarr v2 types are not served")?;
        let chunk = usizes(&doc["chunks"]).ok_or("the array metadata has no chunks")?;
        // xarray records dimension names in an attribute.
        let dims = attrs
            .get("_ARRAY_DIMENSIONS")
            .and_then(Value::as_array)
            .and_then(|d| {
                d.iter()
                    .map(|x| x.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
            });
        (v2_type(dt)?, chunk, dims)
    };
    if chunk.len() != shape.len() {
        return Err("the chunk shape and the array shape differ in length".into());
    }
    for (axis, (&n, &c)) in shape.iter().zip(&chunk).enumerate() {
        let blocks = n.div_ceil(c.max(1));
        if blocks > super::MAX_BLOCKS_PER_AXIS {
            return Err(format!(
                "{blocks} chunks along axis {axis} (shape {shape:?}, chunks {chunk:?}); at most {} \
                 are served",
                super::MAX_BLOCKS_PER_AXIS
            ));
        }
    }
    let chunks = shape
        .iter()
        .zip(&chunk)
        .map(|(&n, &c)| super::regular_chunks(n, c))
        .collect();
    Ok(ArrayStructure {
        data_type,
        chunks,
        dims: dims.filter(|d| d.len() == shape.len()),
        shape,
        resizable: false,
    })
}

fn numeric(kind: Kind, size: usize) -> Result<DataType, String> {
    let ok = match kind {
        Kind::Bool => size == 1,
        Kind::Int | Kind::UInt => matches!(size, 1 | 2 | 4 | 8),
        Kind::Float => matches!(size, 2 | 4 | 8),
        Kind::Complex => matches!(size, 8 | 16),
        _ => false,
    };
    if ok {
        // zarrs hands elements over in native (little-endian) order whatever was stored.
        Ok(DataType::Builtin(BuiltinDType::new(kind, size)))
    } else {
        Err(format!(
            "Zarr arrays of {}{size} elements are not served",
            kind.code()
        ))
    }
}

fn v3_type(name: &str) -> Result<DataType, String> {
    let (kind, bits) = if name == "bool" {
        (Kind::Bool, "8")
    } else if let Some(b) = name.strip_prefix("uint") {
        (Kind::UInt, b)
    } else if let Some(b) = name.strip_prefix("int") {
        (Kind::Int, b)
    } else if let Some(b) = name.strip_prefix("float") {
        (Kind::Float, b)
    } else if let Some(b) = name.strip_prefix("complex") {
        (Kind::Complex, b)
    } else {
        return Err(format!("Zarr arrays of type {name:?} are not served"));
    };
    let bits: usize = bits
        .parse()
        .map_err(|_| format!("Zarr arrays of type {name:?} are not served"))?;
    numeric(kind, bits / 8)
}

fn v2_type(s: &str) -> Result<DataType, String> {
    let b = BuiltinDType::parse_numpy(s)
        .ok_or_else(|| format!("Zarr arrays of dtype {s:?} are not served"))?;
    numeric(b.kind, b.itemsize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_map_from_both_versions() {
        assert_eq!(v3_type("uint16").unwrap().itemsize(), 2);
        assert_eq!(v3_type("complex128").unwrap().itemsize(), 16);
        assert!(v3_type("string").is_err());
        let be = v2_type(">f8").unwrap();
        assert_eq!(be.builtin().unwrap().numpy_str(), "<f8");
        assert_eq!(v2_type("|b1").unwrap().builtin().unwrap().kind, Kind::Bool);
        assert!(v2_type("<U5").is_err());
    }

    #[test]
    fn sharded_arrays_are_read_by_inner_chunk() {
        let doc = serde_json::json!({
            "zarr_format": 3, "node_type": "array", "shape": [10, 4], "data_type": "int32",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [10, 4]}},
            "codecs": [{"name": "sharding_indexed", "configuration": {"chunk_shape": [3, 4]}}],
            "dimension_names": ["t", "x"],
        });
        let s = array_structure(&doc, &Map::new()).unwrap();
        assert_eq!(s.chunks, vec![vec![3, 3, 3, 1], vec![4]]);
        assert_eq!(s.dims, Some(vec!["t".to_string(), "x".to_string()]));
    }
}
