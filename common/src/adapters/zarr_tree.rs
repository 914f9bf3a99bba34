//! The layout of a Zarr store (v2 or v3) on disk, read from its JSON metadata alone: groups
//! become containers, arrays become array nodes read by [`super::zarr`] (through zarrs, with
//! every codec it supports: blosc, zstd, gzip, sharding, transpose). Consolidated metadata
//! (v2 `.zmetadata`, v3 `consolidated_metadata`) is used when present, so a large store is
//! described with one file read.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::limits::{self, Walk};
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
    /// `root` with symlinks resolved: every document and array read lies under it.
    real_root: PathBuf,
    consolidated: Option<Map<String, Value>>,
}

/// Whether one part of a member path may be followed: not empty, `.` or `..` (a consolidated
/// key such as `/a/.zarray` or `../x/.zarray` must neither recurse on the store itself nor
/// leave it), and not hidden.
fn member_name_ok(name: &str) -> bool {
    !name.is_empty() && name != ".." && !name.starts_with('.') && !name.contains('\\')
}

impl Docs<'_> {
    /// `rel` under the store, refused when a symlink leads it out of the store.
    fn inside(&self, rel: &str) -> Result<PathBuf, AdapterError> {
        let path = self.root.join(rel);
        match path.canonicalize() {
            Ok(real) if !real.starts_with(&self.real_root) => Err(AdapterError::Outside(format!(
                "{}: {rel} is a symlink that leads out of the store",
                super::shown(self.root)
            ))),
            _ => Ok(path),
        }
    }

    fn get(&self, rel: &str) -> Result<Option<Value>, AdapterError> {
        if let Some(c) = &self.consolidated {
            return Ok(c.get(rel).cloned());
        }
        let path = self.inside(rel)?;
        if !path.is_file() {
            return Ok(None);
        }
        // Metadata documents are small; a huge one is not a Zarr document.
        let len = path.metadata().map_or(0, |m| m.len());
        if len > limits::MAX_METADATA_BYTES {
            return Err(AdapterError::Limit(format!(
                "{}: {len} bytes of metadata; at most {} are read",
                super::shown(&path),
                limits::MAX_METADATA_BYTES
            )));
        }
        let text = std::fs::read(&path).map_err(|e| {
            AdapterError::BadSource(format!("{}: cannot be read ({e})", super::shown(&path)))
        })?;
        serde_json::from_slice(&text).map(Some).map_err(|e| {
            AdapterError::BadSource(format!("{}: is not valid JSON ({e})", super::shown(&path)))
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
                    .filter(|n| member_name_ok(n) && *n != "zarr.json")
                    .map(str::to_string)
                    .collect()
            }
            None => std::fs::read_dir(self.root.join(rel))
                .map(|it| {
                    it.filter_map(Result::ok)
                        .filter(|e| e.path().is_dir())
                        .filter_map(|e| e.file_name().into_string().ok())
                        .filter(|n| member_name_ok(n))
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
    let real_root = root.canonicalize().map_err(|e| {
        AdapterError::BadSource(format!("{}: cannot be resolved ({e})", super::shown(root)))
    })?;
    let plain = Docs {
        root,
        real_root: real_root.clone(),
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
    let docs = Docs {
        root,
        real_root,
        consolidated,
    };
    match node(&docs, &plain, "", key, &mut Walk::default(), skipped)? {
        Some(n) => Ok(n),
        None => Err(AdapterError::BadSource(format!(
            "{}: not a Zarr store (no zarr.json, .zarray or .zgroup)",
            super::shown(root)
        ))),
    }
}

fn node(
    docs: &Docs,
    plain: &Docs,
    rel: &str,
    key: &str,
    walk: &mut Walk,
    skipped: &mut Vec<String>,
) -> Result<Option<TreeNode>, AdapterError> {
    let depth = if rel.is_empty() {
        0
    } else {
        rel.split('/').count()
    };
    walk.enter(depth)
        .map_err(|e| AdapterError::Limit(format!("{}: {e}", super::shown(docs.root))))?;
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
            // Where Tiled puts a group's metadata (zarr-python's `GroupMetadata.to_dict()`):
            // the attributes under `attributes`, beside the format and node type. The
            // consolidated metadata zarr-python adds there is left out (it is the children's).
            let format = if doc.is_null() { 2 } else { 3 };
            let metadata = serde_json::json!({
                "attributes": attrs,
                "zarr_format": format,
                "node_type": "group",
            });
            let mut n = TreeNode::container(key, metadata, Vec::new());
            for m in docs.members(rel) {
                if let Some(child) = node(docs, plain, &join(rel, &m), &m, walk, skipped)? {
                    n.children.push(child);
                }
            }
            Ok(Some(n))
        }
        "array" => match array_structure(&doc, &attrs).and_then(|s| {
            // The array's chunks are read under its directory: it must be in the store.
            docs.inside(rel)?;
            Ok(s)
        }) {
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
            // A lone array that cannot be served is the store's error, not a part left out.
            Err(why) if rel.is_empty() => Err(why),
            Err(why) => {
                skipped.push(format!("{}: {why}", super::shown(&at)));
                Ok(None)
            }
        },
        other => Err(AdapterError::BadSource(format!(
            "{}: unknown Zarr node type {other:?}",
            super::shown(&at)
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
pub fn array_structure(
    doc: &Value,
    attrs: &Map<String, Value>,
) -> Result<ArrayStructure, AdapterError> {
    let (data_type, shape, chunk, dims) =
        array_parts(doc, attrs).map_err(AdapterError::BadSource)?;
    let chunks = limits::chunk_lists(&shape, &chunk, data_type.itemsize())?;
    Ok(ArrayStructure {
        data_type,
        chunks,
        dims: dims.filter(|d| d.len() == shape.len()),
        shape,
        resizable: false,
    })
}

/// What the metadata document of an array says: type, shape, (inner) chunk shape, dims.
type ArrayParts = (DataType, Vec<usize>, Vec<usize>, Option<Vec<String>>);

fn array_parts(doc: &Value, attrs: &Map<String, Value>) -> Result<ArrayParts, String> {
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
    Ok((data_type, shape, chunk, dims))
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

    fn store(name: &str, files: &[(&str, &str)]) -> std::path::PathBuf {
        let dir = std::env::temp_dir()
            .join(format!("tessera-zarr-tree-{}", std::process::id()))
            .join(name);
        let _ = std::fs::remove_dir_all(&dir);
        for (rel, text) in files {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        dir
    }

    #[test]
    fn huge_or_overflowing_shapes_are_refused_not_allocated() {
        let unit = store(
            "unit.zarr",
            &[(
                "zarr.json",
                r#"{"zarr_format": 3, "node_type": "array", "shape": [1000000000000],
                    "data_type": "uint8", "chunk_grid": {"name": "regular",
                    "configuration": {"chunk_shape": [1]}}, "codecs": [{"name": "bytes"}]}"#,
            )],
        );
        let e = inspect(&unit, "unit", &mut Vec::new()).unwrap_err();
        assert!(matches!(e, AdapterError::Limit(_)), "{e}");
        let wrap = store(
            "wrap.zarr",
            &[(
                ".zarray",
                r#"{"zarr_format": 2, "shape": [4611686018427387904, 4611686018427387904],
                    "chunks": [4611686018427387904, 4611686018427387904], "dtype": "<f8",
                    "compressor": null, "fill_value": 0, "order": "C", "filters": null}"#,
            )],
        );
        let e = inspect(&wrap, "wrap", &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("2^64"), "{e}");
    }

    #[test]
    fn a_slash_prefixed_consolidated_key_does_not_recurse() {
        let dir = store(
            "slash.zarr",
            &[
                (".zgroup", r#"{"zarr_format": 2}"#),
                (
                    ".zmetadata",
                    r#"{"zarr_consolidated_format": 1, "metadata": {
                        "/.zgroup": {"zarr_format": 2}, "//.zgroup": {"zarr_format": 2},
                        "../.zgroup": {"zarr_format": 2}, "a/.zgroup": {"zarr_format": 2}}}"#,
                ),
            ],
        );
        let t = inspect(&dir, "slash", &mut Vec::new()).unwrap();
        let keys: Vec<&str> = t.children.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["a"]);
    }

    #[test]
    fn deep_groups_stop_at_the_depth_cap() {
        let mut files = vec![(String::new(), r#"{"zarr_format": 2}"#)];
        let mut rel = String::new();
        for _ in 0..(limits::MAX_GROUP_DEPTH + 5) {
            rel.push_str("g/");
            files.push((rel.clone(), r#"{"zarr_format": 2}"#));
        }
        let files: Vec<(String, &str)> = files
            .into_iter()
            .map(|(r, t)| (format!("{r}.zgroup"), t))
            .collect();
        let refs: Vec<(&str, &str)> = files.iter().map(|(r, t)| (r.as_str(), *t)).collect();
        let dir = store("deep.zarr", &refs);
        let e = inspect(&dir, "deep", &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("nested"), "{e}");
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
