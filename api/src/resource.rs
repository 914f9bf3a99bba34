//! Node resources as the client reads them: `{id, attributes, links, meta}` with the attribute
//! keys in Tiled's order, family links with their `{0}` / `{index}` templates, and the
//! `fields` / `select_metadata` / `omit_links` options of metadata and search requests.

use serde_json::{Map, Value, json};
use tessera_common::adapters::{parquet_table, sparse_store, zarr};
use tessera_common::structure::StructureFamily;

use crate::catalog::Node;
use crate::error::ApiError;
use crate::params::Params;

/// Attribute names that `fields=` may select.
pub const FIELDS: [&str; 8] = [
    "metadata",
    "structure_family",
    "structure",
    "count",
    "sorting",
    "specs",
    "data_sources",
    "access_tags",
];

/// Options that shape each resource.
#[derive(Clone, Debug)]
pub struct View {
    /// `None` = every attribute.
    pub fields: Option<Vec<String>>,
    pub omit_links: bool,
    /// A dotted path whose value replaces `metadata` as `{"selected": ...}`.
    pub select_metadata: Option<String>,
    pub include_data_sources: bool,
}

impl View {
    /// Reads `fields`, `omit_links`, `select_metadata` and `include_data_sources`.
    pub fn from_params(p: &Params) -> Result<Self, ApiError> {
        let fields = if p.has("fields") {
            let mut f = Vec::new();
            for v in p.all("fields") {
                if v.is_empty() {
                    continue;
                }
                if !FIELDS.contains(&v) {
                    return Err(ApiError::unprocessable(format!(
                        "unknown field {v:?}; fields may be {}",
                        FIELDS.join(", ")
                    )));
                }
                f.push(v.to_string());
            }
            Some(f)
        } else {
            None
        };
        let select_metadata = p.get("select_metadata").map(str::to_string);
        if let Some(s) = &select_metadata {
            let ok = !s.is_empty()
                && s.split('.').all(|part| {
                    !part.is_empty() && part.chars().all(|c| c.is_alphanumeric() || c == '_')
                });
            if !ok {
                return Err(ApiError::bad_request(format!(
                    "select_metadata {s:?} is not supported: tessera accepts dotted key paths such as 'sample.name'"
                )));
            }
        }
        Ok(View {
            fields,
            omit_links: p.bool("omit_links", false)?,
            select_metadata,
            include_data_sources: p.bool("include_data_sources", false)?,
        })
    }

    fn wants(&self, field: &str) -> bool {
        self.fields
            .as_ref()
            .is_none_or(|f| f.iter().any(|x| x == field))
    }

    /// Whether a container's child count is needed.
    pub fn wants_count(&self) -> bool {
        self.wants("structure") || self.wants("count")
    }
}

fn encode_path(path: &[String]) -> String {
    path.iter()
        .map(|s| percent_encoding::utf8_percent_encode(s, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// Characters escaped inside one path segment of the links we emit.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'?')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// The family links of a node under API base `base` (`http://host/api/v1`).
pub fn links(node: &Node, base: &str) -> Value {
    let p = encode_path(&node.path);
    let ndim = |chunks: usize| {
        (0..chunks)
            .map(|i| format!("{{{i}}}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    use tessera_common::structure::Structure;
    match (&node.family, &node.structure) {
        (StructureFamily::Container, _) => json!({
            "self": format!("{base}/metadata/{p}"),
            "search": format!("{base}/search/{p}"),
            "full": format!("{base}/container/full/{p}"),
            "search_deep": format!("{base}/search-deep/{p}"),
        }),
        (StructureFamily::Array, Some(Structure::Array(s))) => json!({
            "self": format!("{base}/metadata/{p}"),
            "full": format!("{base}/array/full/{p}"),
            "block": format!("{base}/array/block/{p}?block={}", ndim(s.shape.len())),
        }),
        (StructureFamily::Sparse, Some(Structure::Sparse(s))) => json!({
            "self": format!("{base}/metadata/{p}"),
            "full": format!("{base}/array/full/{p}"),
            "block": format!("{base}/array/block/{p}?block={}", ndim(s.shape.len())),
        }),
        (StructureFamily::Table, _) => json!({
            "self": format!("{base}/metadata/{p}"),
            "full": format!("{base}/table/full/{p}"),
            "partition": format!("{base}/table/partition/{p}?partition={{index}}"),
        }),
        (StructureFamily::Awkward, _) => json!({
            "self": format!("{base}/metadata/{p}"),
            "buffers": format!("{base}/awkward/buffers/{p}"),
            "full": format!("{base}/awkward/full/{p}"),
        }),
        (StructureFamily::Ragged, _) => json!({
            "self": format!("{base}/metadata/{p}"),
            "full": format!("{base}/ragged/full/{p}"),
            "block": format!("{base}/ragged/block/{p}?block={{0}}"),
        }),
        _ => json!({"self": format!("{base}/metadata/{p}")}),
    }
}

/// Builds one resource. `count` is the child count of a container; `contents` the inlined
/// children (already built) when the container inlines them.
pub fn resource(
    node: &Node,
    base: &str,
    view: &View,
    count: Option<usize>,
    contents: Option<Map<String, Value>>,
) -> Value {
    let ancestors: Vec<&String> = node
        .path
        .iter()
        .take(node.path.len().saturating_sub(1))
        .collect();
    let is_container = node.family == StructureFamily::Container;
    let metadata = match &view.select_metadata {
        Some(sel) => json!({"selected": crate::catalog::query::lookup(&node.metadata, sel)}),
        None => Value::Object(node.metadata.clone()),
    };
    let structure = if is_container {
        json!({"contents": contents.map(Value::Object), "count": count})
    } else {
        node.structure
            .as_ref()
            .map(|s| s.to_json())
            .unwrap_or(Value::Null)
    };
    // The read path's own copy of the structure is not a parameter of the stored source.
    let public_parameters = |src: &tessera_common::adapters::DataSource| {
        let mut p = src.parameters.clone();
        if [
            zarr::MIMETYPE,
            parquet_table::MIMETYPE,
            sparse_store::MIMETYPE,
        ]
        .contains(&src.mimetype.as_str())
        {
            p.remove("structure");
        }
        p
    };
    // Sources internal to tessera (generated demo data, table columns) are not data
    // sources a client could use: like Tiled's in-memory trees, report none.
    let public_source = node
        .source
        .as_ref()
        .filter(|s| !s.mimetype.starts_with("application/x-tessera-"));
    let data_sources = if view.include_data_sources {
        match (public_source, &node.structure) {
            (Some(src), Some(s)) => json!([{
                "id": null,
                "structure_family": node.family.as_str(),
                "structure": s.to_json(),
                "mimetype": src.mimetype,
                "parameters": public_parameters(src),
                "properties": {},
                "assets": src.assets,
                "management": src.management,
            }]),
            (None, Some(_)) => Value::Null,
            _ => json!([]),
        }
    } else {
        Value::Null
    };
    let pick = |field: &str, v: Value| if view.wants(field) { v } else { Value::Null };
    // Tiled names a container's family unless the client asked for ids only (`fields=`).
    let ids_only = view.fields.as_ref().is_some_and(|f| f.is_empty());
    let family = if view.wants("structure_family") || (is_container && !ids_only) {
        Value::from(node.family.as_str())
    } else {
        Value::Null
    };
    let sorting = if is_container {
        json!([{"key": "_", "direction": 1}])
    } else {
        Value::Null
    };
    let attributes = json!({
        "ancestors": ancestors,
        "structure_family": family,
        "specs": pick("specs", serde_json::to_value(&node.specs).unwrap_or(Value::Null)),
        "metadata": pick("metadata", metadata),
        "structure": pick("structure", structure),
        // Sorted, as Tiled lists a catalog node's tags; null for nodes without (as the demo
        // tree's, whose nodes carry none).
        "access_tags": if node.access_tags.is_empty() {
            Value::Null
        } else {
            let mut tags = node.access_tags.clone();
            tags.sort();
            pick("access_tags", json!(tags))
        },
        "sorting": pick("sorting", sorting),
        "data_sources": data_sources,
    });
    let links = if view.omit_links {
        Value::Null
    } else if view.fields.as_ref().is_some_and(|f| f.is_empty()) {
        json!({"self": format!("{base}/metadata/{}", encode_path(&node.path))})
    } else {
        links(node, base)
    };
    json!({"id": node.key(), "attributes": attributes, "links": links, "meta": null})
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_common::dtype::DataType;
    use tessera_common::structure::{ArrayStructure, Structure};

    fn array_node(path: &[&str]) -> Node {
        Node {
            path: path.iter().map(|s| s.to_string()).collect(),
            family: StructureFamily::Array,
            metadata: Map::new(),
            specs: vec![],
            structure: Some(Structure::Array(ArrayStructure {
                data_type: DataType::f8(),
                chunks: vec![vec![2], vec![3]],
                shape: vec![2, 3],
                dims: None,
                resizable: false,
            })),
            source: None,
            data_version: 0,
            inline_contents: false,
            access_tags: vec![],
            child_count: None,
        }
    }

    fn all() -> View {
        View {
            fields: None,
            omit_links: false,
            select_metadata: None,
            include_data_sources: false,
        }
    }

    #[test]
    fn array_links_have_one_placeholder_per_dimension() {
        let r = resource(
            &array_node(&["a", "b c"]),
            "http://h/api/v1",
            &all(),
            None,
            None,
        );
        assert_eq!(
            r["links"]["block"],
            "http://h/api/v1/array/block/a/b%20c?block={0},{1}"
        );
        assert_eq!(r["attributes"]["ancestors"], json!(["a"]));
        assert_eq!(r["id"], "b c");
    }

    #[test]
    fn empty_fields_keep_only_ancestors_and_self_link() {
        let view = View {
            fields: Some(vec![]),
            ..all()
        };
        let r = resource(&array_node(&["x"]), "http://h/api/v1", &view, None, None);
        assert_eq!(r["attributes"]["structure"], Value::Null);
        assert_eq!(r["attributes"]["metadata"], Value::Null);
        assert_eq!(r["links"], json!({"self": "http://h/api/v1/metadata/x"}));
    }

    #[test]
    fn select_metadata_rejects_expressions_we_do_not_evaluate() {
        let p = Params::parse(Some("select_metadata=a%5B0%5D"));
        assert_eq!(View::from_params(&p).unwrap_err().status.as_u16(), 400);
        let p = Params::parse(Some("select_metadata=sample.name"));
        assert!(View::from_params(&p).is_ok());
    }
}
