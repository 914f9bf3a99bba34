//! Writes: node creation, metadata replacement and patches with revisions, deletes, and array
//! data. Data is written first, to a location nothing points at yet; the catalog then makes it
//! visible in one transaction that bumps the node's data version. A crash in between leaves
//! the node as it was (an unreferenced location is all that remains).

use std::sync::Arc;

use axum::http::{StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};
use tessera_common::adapters::{
    Asset, DataSource, Management, awkward_store, limits, parquet_table, sparse_store, zarr,
};
use tessera_common::chunks::ChunkGrid;
use tessera_common::dtype::{DataType, Kind};
use tessera_common::structure::{
    ArrayStructure, AwkwardStructure, SparseStructure, Spec, Structure, StructureFamily,
    TableStructure,
};

use super::Request;
use crate::catalog::{DataCommit, MetadataUpdate, NewNode, Node, read_only};
use crate::error::ApiError;
use crate::resource::links;
use crate::respond;
use crate::state::AppState;
use crate::storage::Storage;

const MAX_SPECS: usize = 20;

/// Logs which step of a write request `req` has reached (`storing` its data, `committing`
/// it to the catalog, `committed`, `removing` what it replaced): what an operator reads
/// after a crash, and what the crash tests wait for before they kill.
fn phase(req: &Request, path: &[String], phase: &str) {
    tracing::debug!(
        target: "tessera::write",
        request_id = %req.id,
        node = %path.join("/"),
        phase,
        "write"
    );
}

fn storage(state: &AppState) -> Result<&Arc<Storage>, ApiError> {
    state.storage.as_ref().ok_or_else(read_only)
}

pub(super) fn json_body(req: &Request) -> Result<Map<String, Value>, ApiError> {
    parse_json_body(&req.body)
}

/// Decodes a JSON document body (`POST`/`PUT`/`PATCH /metadata`, `/register`) into its object.
pub fn parse_json_body(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::unprocessable(
            "the request body must be a JSON object",
        )),
        Err(e) => Err(ApiError::bad_request(format!(
            "the request body is not valid JSON: {e}"
        ))),
    }
}

pub(super) async fn json_response(req: &Request, doc: &Value) -> Result<Response, ApiError> {
    respond::document(&req.headers, doc).await
}

/// The key (`id`, a new UUID when absent) and family of a node to create.
pub(super) fn key_and_family(
    body: &Map<String, Value>,
) -> Result<(String, StructureFamily), ApiError> {
    let key = match body.get("id") {
        None | Some(Value::Null) => uuid::Uuid::new_v4().to_string(),
        Some(Value::String(s)) if s.is_empty() => uuid::Uuid::new_v4().to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(ApiError::unprocessable("'id' must be a string")),
    };
    check_key(&key)?;
    let family = body
        .get("structure_family")
        .and_then(Value::as_str)
        .and_then(StructureFamily::parse)
        .ok_or_else(|| {
            ApiError::unprocessable(
                "'structure_family' must be one of array, awkward, container, ragged, sparse, table",
            )
        })?;
    Ok((key, family))
}

/// Validates a new key: not empty, no `/`, not `.` or `..`.
pub(super) fn check_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key == "." || key == ".." || key.contains('/') {
        return Err(ApiError::unprocessable(format!(
            "invalid key {key:?}: a key cannot be empty, '.' or '..', or contain '/'"
        )));
    }
    Ok(())
}

pub(super) fn parse_metadata(v: Option<&Value>) -> Result<Option<Map<String, Value>>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m.clone())),
        Some(_) => Err(ApiError::unprocessable("'metadata' must be a JSON object")),
    }
}

fn check_specs(specs: &[Spec]) -> Result<(), ApiError> {
    if specs.len() > MAX_SPECS {
        return Err(ApiError::unprocessable(format!(
            "{} specs given; at most {MAX_SPECS} are allowed",
            specs.len()
        )));
    }
    for (i, s) in specs.iter().enumerate() {
        if specs[..i].contains(s) {
            return Err(ApiError::unprocessable(format!(
                "spec {:?} is given twice",
                s.name
            )));
        }
    }
    Ok(())
}

pub(super) fn parse_specs(v: Option<&Value>) -> Result<Option<Vec<Spec>>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let specs: Vec<Spec> = serde_json::from_value(v.clone()).map_err(|e| {
                ApiError::unprocessable(format!(
                    "'specs' must be a list of {{\"name\": ..., \"version\": ...}}: {e}"
                ))
            })?;
            check_specs(&specs)?;
            Ok(Some(specs))
        }
    }
}

pub(super) fn parse_tags(v: Option<&Value>) -> Result<Option<Vec<String>>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|_| ApiError::unprocessable("'access_tags' must be a list of strings")),
    }
}

/// `POST /metadata/{parent}`: creates a container, or an array with its (empty) storage.
pub async fn create(
    state: &AppState,
    req: &Request,
    parent: &[String],
) -> Result<Response, ApiError> {
    let storage = storage(state)?;
    state.check_access(req, parent).await?;
    let body = json_body(req)?;
    let (mut node, sources) = parse_new_node(&body)?;
    node.access_tags = state.new_node_tags(req, parse_tags(body.get("access_tags"))?)?;
    let family = node.family;
    // A taken key is a conflict whatever else the request holds (the catalog checks again,
    // atomically, when it inserts).
    let mut target = parent.to_vec();
    target.push(node.key.clone());
    if state.catalog.get(&target).await?.is_some() {
        return Err(crate::catalog::key_exists(&target));
    }
    let data = new_data_structure(family, &sources)?;
    let mut location = None;
    if let Some((structure, mimetype, ext)) = data {
        let uri = storage.new_location(ext);
        // Data first: an array's empty Zarr exists before the catalog can point at it (the
        // other families write one object per part later; nothing exists until then).
        if let Structure::Array(s) = &structure {
            zarr::create(&uri, s).await?;
        }
        node.data = Some((
            structure,
            DataSource {
                structure_family: family,
                mimetype: mimetype.into(),
                parameters: Map::new(),
                assets: vec![Asset {
                    data_uri: uri.clone(),
                    is_directory: true,
                    parameter: Some("data_uri".into()),
                    num: None,
                }],
                management: Management::Writable,
            },
        ));
        location = Some(uri);
    }
    let created = match state.catalog.create(parent, node).await {
        Ok(n) => n,
        Err(e) => {
            if let Some(uri) = location {
                storage.remove_later(uri);
            }
            return Err(e);
        }
    };
    created_response(req, &created).await
}

/// The node a `POST /metadata` body asks for (key, family, metadata, specs, access tags; no
/// data yet) and its data sources, checked.
pub fn parse_new_node(body: &Map<String, Value>) -> Result<(NewNode, Vec<Value>), ApiError> {
    let (key, family) = key_and_family(body)?;
    let metadata = parse_metadata(body.get("metadata"))?.unwrap_or_default();
    let specs = parse_specs(body.get("specs"))?.unwrap_or_default();
    let access_tags = parse_tags(body.get("access_tags"))?.unwrap_or_default();
    let sources = match body.get("data_sources") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return Err(ApiError::unprocessable("'data_sources' must be a list")),
    };
    let node = NewNode {
        key,
        family,
        metadata,
        specs,
        access_tags,
        data: None,
        children: Vec::new(),
    };
    Ok((node, sources))
}

/// The checked structure of a new node of `family` from its data sources, with the mimetype
/// and file extension of its storage (`None` for a container).
pub fn new_data_structure(
    family: StructureFamily,
    sources: &[Value],
) -> Result<Option<(Structure, &'static str, &'static str)>, ApiError> {
    Ok(match family {
        StructureFamily::Container => {
            if !sources.is_empty() {
                return Err(ApiError::unprocessable("a container has no data sources"));
            }
            None
        }
        StructureFamily::Array => {
            let structure = single_source_structure::<ArrayStructure>(sources, "an array")?;
            zarr::validate(&structure).map_err(|e| ApiError::unprocessable(e.to_string()))?;
            check_dtype(&structure.data_type)?;
            check_declared_grid(
                "the array",
                &structure.shape,
                &structure.chunks,
                &structure.data_type,
            )?;
            Some((Structure::Array(structure), zarr::MIMETYPE, "zarr"))
        }
        StructureFamily::Table => {
            let structure = single_source_structure::<TableStructure>(sources, "a table")?;
            parquet_table::schema(&structure)
                .map_err(|e| ApiError::unprocessable(e.to_string()))?;
            if structure.npartitions == 0 {
                return Err(ApiError::unprocessable(
                    "a table needs at least one partition",
                ));
            }
            if structure.npartitions > MAX_PARTITIONS {
                return Err(ApiError::unprocessable(format!(
                    "a table may have at most {MAX_PARTITIONS} partitions; {} declared",
                    structure.npartitions
                )));
            }
            Some((
                Structure::Table(structure),
                parquet_table::MIMETYPE,
                "parquet",
            ))
        }
        StructureFamily::Sparse => {
            let structure = single_source_structure::<SparseStructure>(sources, "a sparse array")?;
            ChunkGrid::new(&structure.shape, structure.chunks.clone())?;
            check_dtype(&structure.data_type)?;
            check_declared_grid(
                "the sparse array",
                &structure.shape,
                &structure.chunks,
                &structure.data_type,
            )?;
            if structure.layout != "COO" {
                return Err(ApiError::unprocessable(format!(
                    "sparse layout {:?} is not supported; COO is",
                    structure.layout
                )));
            }
            Some((
                Structure::Sparse(structure),
                sparse_store::MIMETYPE,
                "sparse",
            ))
        }
        StructureFamily::Awkward => {
            let structure =
                single_source_structure::<AwkwardStructure>(sources, "an awkward array")?;
            if !structure.form.is_object() {
                return Err(ApiError::unprocessable(
                    "the awkward form must be a JSON object",
                ));
            }
            Some((
                Structure::Awkward(structure),
                awkward_store::MIMETYPE,
                "awkward",
            ))
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "writing {} nodes is not supported yet; containers, arrays, sparse and awkward \
                 arrays and tables are",
                other.as_str()
            )));
        }
    })
}

/// The answer to a node creation (`POST /metadata`, `POST /register`).
pub(super) async fn created_response(req: &Request, created: &Node) -> Result<Response, ApiError> {
    let doc = json!({
        "id": created.key(),
        "links": links(created, &req.base),
        "data_sources": created_sources(created),
        "access_tags": created.access_tags,
    });
    json_response(req, &doc).await
}

/// The structure of the one data source a non-container is created with.
fn single_source_structure<T: serde::de::DeserializeOwned>(
    sources: &[Value],
    what: &str,
) -> Result<T, ApiError> {
    let [source] = sources else {
        return Err(ApiError::unprocessable(format!(
            "{what} needs exactly one data source; {} given",
            sources.len()
        )));
    };
    if source
        .get("assets")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        return Err(ApiError::unprocessable(
            "data sources with assets are registered, not created: use /register",
        ));
    }
    let structure = source
        .get("structure")
        .cloned()
        .ok_or_else(|| ApiError::unprocessable("the data source has no structure"))?;
    serde_json::from_value(structure)
        .map_err(|e| ApiError::unprocessable(format!("the structure of {what} is invalid: {e}")))
}

/// Partitions a table may be created with (each is a file, listed in every full read).
const MAX_PARTITIONS: usize = 1 << 20;
/// Refuses a declared array whose grid the server could not hold or list, by the caps files
/// are held to (`adapters::limits`): too many dimensions, more bytes than 64 bits count (a
/// product that would wrap), too many chunks per axis or in all, or chunks too large to
/// decode at once.
fn check_declared_grid(
    what: &str,
    shape: &[usize],
    chunks: &[Vec<usize>],
    dtype: &DataType,
) -> Result<(), ApiError> {
    let chunk_shape: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(axis, &n)| {
            chunks
                .get(axis)
                .and_then(|c| c.first().copied())
                .filter(|&c| c > 0)
                .unwrap_or(n.max(1))
        })
        .collect();
    limits::chunk_lists(shape, &chunk_shape, dtype.itemsize())
        .map(|_| ())
        .map_err(|e| ApiError::unprocessable(format!("{what}: {e}")))
}

/// Refuses data types numpy could not have produced (an `i3`, a zero-sized type).
fn check_dtype(dtype: &DataType) -> Result<(), ApiError> {
    if dtype.itemsize() == 0 {
        return Err(ApiError::unprocessable("the data type has no size"));
    }
    if let DataType::Builtin(b) = dtype {
        let sizes: &[usize] = match b.kind {
            Kind::Bool => &[1],
            Kind::Int | Kind::UInt => &[1, 2, 4, 8],
            Kind::Float => &[2, 4, 8, 16],
            Kind::Complex => &[8, 16, 32],
            Kind::TimeDelta | Kind::DateTime => &[8],
            _ => return Ok(()),
        };
        if !sizes.contains(&b.itemsize) {
            return Err(ApiError::unprocessable(format!(
                "no {:?} data type has an itemsize of {} bytes (allowed: {sizes:?})",
                b.kind, b.itemsize
            )));
        }
    }
    Ok(())
}

fn created_sources(node: &Node) -> Value {
    match (&node.source, &node.structure) {
        (Some(src), Some(s)) => json!([{
            "id": null,
            "structure_family": node.family.as_str(),
            "structure": s.to_json(),
            "mimetype": src.mimetype,
            "parameters": src.parameters.iter()
                .filter(|(k, _)| k.as_str() != "structure")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Map<_, _>>(),
            "properties": {},
            "assets": src.assets,
            "management": src.management,
        }]),
        _ => json!([]),
    }
}

fn drop_revision(req: &Request) -> Result<bool, ApiError> {
    req.params.bool("drop_revision", false)
}

fn update_response(node: &Node) -> Value {
    json!({
        "id": node.key(),
        "metadata": node.metadata,
        "specs": node.specs,
        "access_tags": node.access_tags,
    })
}

/// `PUT /metadata/{path}`: replaces metadata, specs and access tags (`null` keeps each).
pub async fn replace_metadata(
    state: &AppState,
    req: &Request,
    path: &[String],
) -> Result<Response, ApiError> {
    storage(state)?;
    state.check_access(req, path).await?;
    let body = json_body(req)?;
    let metadata = parse_metadata(body.get("metadata"))?;
    let specs = parse_specs(body.get("specs"))?;
    let tags = parse_tags(body.get("access_tags"))?;
    let node = state
        .catalog
        .update_metadata(
            path,
            state.guard_tags(
                req,
                Box::new(move |n| {
                    Ok(MetadataUpdate {
                        metadata: metadata.unwrap_or_else(|| n.metadata.clone()),
                        specs: specs.unwrap_or_else(|| n.specs.clone()),
                        access_tags: tags.unwrap_or_else(|| n.access_tags.clone()),
                    })
                }),
            ),
            drop_revision(req)?,
        )
        .await?;
    json_response(req, &update_response(&node)).await
}

const JSON_PATCH: &str = "application/json-patch+json";
const MERGE_PATCH: &str = "application/merge-patch+json";

/// The most a JSON Patch may grow a field to (in JSON bytes, roughly): each `copy` can double
/// a document, so a small body could otherwise build one without bound.
const MAX_PATCHED_BYTES: usize = 16 << 20;

/// The deepest nesting a patched field may have: what a JSON body can carry, and so what the
/// catalogs read back (serde_json refuses documents nested 128 levels or more). `move` and
/// `copy` can nest a document into itself deeper than any body could.
const MAX_PATCHED_DEPTH: usize = 120;

/// About the size of `v` written as JSON.
fn json_size(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) | Value::Number(_) => 8,
        Value::String(s) => s.len() + 2,
        Value::Array(a) => a.iter().map(|x| json_size(x) + 1).sum::<usize>() + 2,
        Value::Object(m) => {
            m.iter()
                .map(|(k, x)| k.len() + 4 + json_size(x))
                .sum::<usize>()
                + 2
        }
    }
}

/// How many arrays and objects deep `v` nests.
fn json_depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(json_depth).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(json_depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Applies one field's patch in the body's dialect.
fn apply(dialect: &str, field: &str, current: Value, patch: &Value) -> Result<Value, ApiError> {
    let mut doc = current;
    if dialect == JSON_PATCH {
        let ops: json_patch::Patch = serde_json::from_value(patch.clone())
            .map_err(|e| ApiError::unprocessable(format!("'{field}' is not a JSON Patch: {e}")))?;
        // One operation at a time, so a copy that would grow the field too much is refused
        // before it is made (the field is a copy: a failed patch leaves the node as it was).
        let mut size = json_size(&doc);
        for (i, op) in ops.iter().enumerate() {
            if let json_patch::PatchOperation::Copy(c) = op {
                size += doc.pointer(c.from.as_str()).map_or(0, json_size);
                if size > MAX_PATCHED_BYTES {
                    return Err(ApiError::unprocessable(format!(
                        "the JSON Patch of '{field}' would grow it past {MAX_PATCHED_BYTES} \
                         bytes (operation {i} copies {})",
                        c.from
                    )));
                }
            }
            json_patch::patch(&mut doc, std::slice::from_ref(op)).map_err(|e| {
                ApiError::unprocessable(format!(
                    "the JSON Patch of '{field}' cannot be applied: operation {i} failed at \
                     path '{}': {}",
                    e.path, e.kind
                ))
            })?;
        }
    } else if field == "metadata" {
        json_patch::merge(&mut doc, patch);
    } else {
        // Merge patches replace the specs and access tag lists whole.
        doc = patch.clone();
    }
    let depth = json_depth(&doc);
    if depth > MAX_PATCHED_DEPTH {
        return Err(ApiError::unprocessable(format!(
            "the patched '{field}' would nest {depth} levels deep; at most \
             {MAX_PATCHED_DEPTH} are allowed"
        )));
    }
    Ok(doc)
}

/// A checked `PATCH /metadata` body: its dialect and the patch of each field (`None` keeps
/// the field as it is).
pub struct MetadataPatch {
    dialect: String,
    metadata: Option<Value>,
    specs: Option<Value>,
    access_tags: Option<Value>,
}

impl MetadataPatch {
    /// Reads the dialect (`content-type`, JSON Patch by default) and the field patches.
    pub fn parse(body: &Map<String, Value>) -> Result<Self, ApiError> {
        let dialect = body
            .get("content-type")
            .and_then(Value::as_str)
            .unwrap_or(JSON_PATCH)
            .to_string();
        if dialect != JSON_PATCH && dialect != MERGE_PATCH {
            return Err(ApiError::not_acceptable(format!(
                "valid content types: {JSON_PATCH}, {MERGE_PATCH}"
            )));
        }
        let field = |k: &str| body.get(k).filter(|v| !v.is_null()).cloned();
        Ok(MetadataPatch {
            dialect,
            metadata: field("metadata"),
            specs: field("specs"),
            access_tags: field("access_tags"),
        })
    }

    /// A node's metadata, specs and access tags after the patch.
    pub fn apply(
        &self,
        metadata: &Map<String, Value>,
        specs: &[Spec],
        access_tags: &[String],
    ) -> Result<MetadataUpdate, ApiError> {
        let dialect = self.dialect.as_str();
        let metadata = match &self.metadata {
            Some(p) => match apply(dialect, "metadata", Value::Object(metadata.clone()), p)? {
                Value::Object(m) => m,
                _ => {
                    return Err(ApiError::unprocessable(
                        "the patched metadata is not a JSON object",
                    ));
                }
            },
            None => metadata.clone(),
        };
        let specs = match &self.specs {
            Some(p) => {
                let current = serde_json::to_value(specs).unwrap_or(json!([]));
                parse_specs(Some(&apply(dialect, "specs", current, p)?))?.unwrap_or_default()
            }
            None => specs.to_vec(),
        };
        let access_tags = match &self.access_tags {
            Some(p) => {
                let mut sorted = access_tags.to_vec();
                sorted.sort();
                parse_tags(Some(&apply(dialect, "access_tags", json!(sorted), p)?))?
                    .unwrap_or_default()
            }
            None => access_tags.to_vec(),
        };
        Ok(MetadataUpdate {
            metadata,
            specs,
            access_tags,
        })
    }
}

/// `PATCH /metadata/{path}`: a JSON Patch or Merge Patch of metadata, specs and access tags.
pub async fn patch_metadata(
    state: &AppState,
    req: &Request,
    path: &[String],
) -> Result<Response, ApiError> {
    storage(state)?;
    state.check_access(req, path).await?;
    let patch = MetadataPatch::parse(&json_body(req)?)?;
    let node = state
        .catalog
        .update_metadata(
            path,
            state.guard_tags(
                req,
                Box::new(move |n| patch.apply(&n.metadata, &n.specs, &n.access_tags)),
            ),
            drop_revision(req)?,
        )
        .await?;
    json_response(req, &update_response(&node)).await
}

/// `DELETE /metadata/{path}?recursive=..&external_only=..`.
pub async fn delete(
    state: &AppState,
    req: &Request,
    path: &[String],
) -> Result<Response, ApiError> {
    let storage = storage(state)?;
    state.check_access(req, path).await?;
    let recursive = req.params.bool("recursive", false)?;
    let external_only = req.params.bool("external_only", true)?;
    phase(req, path, "committing");
    let removed = state.catalog.delete(path, recursive, external_only).await?;
    phase(req, path, "removing");
    // The catalog no longer points at the data: remove what tessera wrote.
    for source in removed {
        if source.management == Management::Writable {
            for asset in source.assets {
                storage.remove_later(asset.data_uri);
            }
        }
    }
    json_response(req, &Value::Null).await
}

/// `GET /revisions/{path}`: a page of revisions, oldest first.
pub async fn revisions(
    state: &AppState,
    req: &Request,
    path: &[String],
) -> Result<Response, ApiError> {
    state.check_access(req, path).await?;
    let (offset, limit) = super::node::page(state, &req.params, "page[offset]")?;
    let (revs, count) = state.catalog.revisions(path, offset, limit).await?;
    let encoded: Vec<String> = path
        .iter()
        .map(|s| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        })
        .collect();
    let base = format!("{}/revisions/{}", req.base, encoded.join("/"));
    let page = |o: usize| format!("{base}?page[offset]={o}&page[limit]={limit}");
    let data: Vec<Value> = revs
        .iter()
        .map(|r| {
            json!({
                "revision_number": r.number,
                "attributes": {
                    "metadata": r.metadata,
                    "specs": r.specs,
                    "access_tags": r.access_tags,
                    "time_updated": r.time_updated,
                },
            })
        })
        .collect();
    let next = (offset + limit < count && limit > 0).then(|| page(offset + limit));
    let doc = json!({
        "data": data,
        "error": null,
        "links": {"self": page(offset), "first": page(0), "next": next},
        "meta": {"count": count},
    });
    json_response(req, &doc).await
}

/// `DELETE /revisions/{path}?number=N`.
pub async fn delete_revision(
    state: &AppState,
    req: &Request,
    path: &[String],
) -> Result<Response, ApiError> {
    storage(state)?;
    state.check_access(req, path).await?;
    let raw = req
        .params
        .get("number")
        .ok_or_else(|| ApiError::invalid_param("number", "missing", None, "Field required"))?;
    let number: i64 = raw.parse().map_err(|_| {
        ApiError::invalid_param(
            "number",
            "int_parsing",
            Some(raw),
            "Input should be a valid integer",
        )
    })?;
    state.catalog.delete_revision(path, number).await?;
    json_response(req, &Value::Null).await
}

/// Where a written node's data lives, if tessera wrote it with the store of `mimetype`
/// (405 for anything else: external files, the demo, another family).
fn writable_location(node: &Node, mimetype: &str, what: &str) -> Result<String, ApiError> {
    let not_writable = || {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "'{}' is not {what} that can be written",
                node.path.join("/")
            ),
        )
    };
    let src = node
        .source
        .as_ref()
        .filter(|s| s.management == Management::Writable && s.mimetype == mimetype)
        .ok_or_else(not_writable)?;
    tessera_common::adapters::first_asset(src).map_err(|e| ApiError::internal(e.to_string()))
}

/// The writable array at `path`: its structure and current location.
fn writable_array(node: &Node) -> Result<(ArrayStructure, String), ApiError> {
    let uri = writable_location(node, zarr::MIMETYPE, "an array")?;
    match &node.structure {
        Some(Structure::Array(s)) => Ok((s.clone(), uri)),
        _ => Err(ApiError::internal(
            "a Zarr data source without an array structure",
        )),
    }
}

fn check_octet_stream(req: &Request) -> Result<(), ApiError> {
    let ct = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream");
    if !ct.starts_with("application/octet-stream") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("array data must be sent as application/octet-stream, not {ct}"),
        ));
    }
    if req.params.get("persist") == Some("false") {
        return Err(ApiError::bad_request(
            "persist=false (streaming without storing) is not supported",
        ));
    }
    Ok(())
}

fn check_length(what: &str, got: usize, shape: &[usize], itemsize: usize) -> Result<(), ApiError> {
    let want = shape
        .iter()
        .try_fold(itemsize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| {
            ApiError::unprocessable(format!("{what} of shape {shape:?} is too large"))
        })?;
    if got != want {
        return Err(ApiError::bad_request(format!(
            "{what} of shape {shape:?} takes {want} bytes ({itemsize} per element); the body has {got}"
        )));
    }
    Ok(())
}

/// `PUT /array/full/{path}`: replaces the whole array. The new data goes to a new location,
/// which the catalog switches to once it is complete.
pub async fn put_array_full(
    state: &AppState,
    req: &Request,
    path: &[String],
) -> Result<Response, ApiError> {
    let storage = storage(state)?;
    let node = state.node_for(req, path).await?;
    if node.family == StructureFamily::Sparse {
        return put_sparse(state, req, &node, true).await;
    }
    check_octet_stream(req)?;
    let (s, old) = writable_array(&node)?;
    check_length("an array", req.body.len(), &s.shape, s.data_type.itemsize())?;
    let uri = storage.new_location("zarr");
    phase(req, path, "storing");
    let written = async {
        zarr::create(&uri, &s).await?;
        let origin = vec![0; s.shape.len()];
        zarr::write_region(&uri, &s, &origin, &s.shape, req.body.clone()).await
    }
    .await;
    if let Err(e) = written {
        storage.remove_later(uri);
        return Err(e.into());
    }
    let commit = DataCommit {
        structure: None,
        data_uri: Some(uri.clone()),
    };
    phase(req, path, "committing");
    if let Err(e) = state.catalog.commit_data(path, commit).await {
        storage.remove_later(uri);
        return Err(e);
    }
    phase(req, path, "removing");
    storage.remove_later(old);
    json_response(req, &Value::Null).await
}

/// `PUT /array/block/{path}?block=i,j`: writes one block in place (each chunk is replaced
/// atomically in the store), then bumps the data version.
pub async fn put_array_block(
    state: &AppState,
    req: &Request,
    path: &[String],
) -> Result<Response, ApiError> {
    storage(state)?;
    let node = state.node_for(req, path).await?;
    if node.family == StructureFamily::Sparse {
        return put_sparse(state, req, &node, false).await;
    }
    check_octet_stream(req)?;
    if req.params.has("slice") {
        return Err(ApiError::bad_request(
            "writing part of a block (slice=) is not supported; write whole blocks",
        ));
    }
    let (s, uri) = writable_array(&node)?;
    let block = req
        .params
        .usize_list("block")?
        .ok_or_else(|| ApiError::invalid_param("block", "missing", None, "Field required"))?;
    let grid = ChunkGrid::new(&s.shape, s.chunks.clone())?;
    let origin = grid.block_origin(&block)?;
    let shape = grid.block_shape(&block)?;
    check_length(
        &format!("block {block:?}"),
        req.body.len(),
        &shape,
        s.data_type.itemsize(),
    )?;
    phase(req, path, "storing");
    zarr::write_region(&uri, &s, &origin, &shape, req.body.clone()).await?;
    phase(req, path, "committing");
    state
        .catalog
        .commit_data(path, DataCommit::default())
        .await?;
    json_response(req, &Value::Null).await
}

/// Re-tiles an axis of `len` elements with the axis' first chunk size, as Zarr's regular
/// grid does when an array grows.
fn retile(old: &[usize], len: usize) -> Vec<usize> {
    let size = old
        .first()
        .copied()
        .filter(|&c| c > 0)
        .unwrap_or(len.max(1));
    let mut chunks = vec![size; len / size];
    if !len.is_multiple_of(size) {
        chunks.push(len % size);
    }
    chunks
}

/// `PATCH /array/full/{path}?offset=..&shape=..&extend=..`: places the body at `offset`,
/// growing the array (and its chunk grid) with `extend=true`. The new region's chunks are
/// written first; readers keep the old structure until the catalog records the new one.
pub async fn patch_array(
    state: &AppState,
    req: &Request,
    path: &[String],
) -> Result<Response, ApiError> {
    storage(state)?;
    check_octet_stream(req)?;
    let (s, uri) = writable_array(&*state.node_for(req, path).await?)?;
    let ndim = s.shape.len();
    let shape = req
        .params
        .usize_list("shape")?
        .ok_or_else(|| ApiError::invalid_param("shape", "missing", None, "Field required"))?;
    if shape.len() != ndim {
        return Err(ApiError::unprocessable(format!(
            "shape {shape:?} has {} dimensions; the array has {ndim}",
            shape.len()
        )));
    }
    let mut offset = req.params.usize_list("offset")?.unwrap_or_default();
    if offset.len() > ndim {
        return Err(ApiError::unprocessable(format!(
            "offset {offset:?} has more dimensions than the array ({ndim})"
        )));
    }
    offset.resize(ndim, 0);
    let extend = req.params.bool("extend", false)?;
    check_length("the patch", req.body.len(), &shape, s.data_type.itemsize())?;
    let end = offset
        .iter()
        .zip(&shape)
        .map(|(o, n)| o.checked_add(*n))
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| ApiError::unprocessable("offset + shape overflows"))?;
    let fits = end.iter().zip(&s.shape).all(|(e, n)| e <= n);
    let mut new = s.clone();
    if !fits {
        if !extend {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "the patch of shape {shape:?} at offset {offset:?} does not fit into the \
                     array of shape {:?}. Use ?extend=true to extend the array.",
                    s.shape
                ),
            ));
        }
        new.shape = s.shape.iter().zip(&end).map(|(n, e)| *n.max(e)).collect();
        // The grid is listed chunk by chunk: an offset far past the end must not make it
        // millions of entries long.
        check_declared_grid("the extended array", &new.shape, &s.chunks, &new.data_type)?;
        new.chunks = s
            .chunks
            .iter()
            .zip(&new.shape)
            .map(|(c, &n)| {
                if n == c.iter().sum::<usize>() {
                    c.clone()
                } else {
                    retile(c, n)
                }
            })
            .collect();
    }
    phase(req, path, "storing");
    zarr::write_region(&uri, &new, &offset, &shape, req.body.clone()).await?;
    let commit = DataCommit {
        structure: (new != s).then(|| Structure::Array(new.clone())),
        data_uri: None,
    };
    if commit.structure.is_some() {
        // Other Zarr readers see the new shape too.
        zarr::create(&uri, &new).await?;
    }
    phase(req, path, "committing");
    state.catalog.commit_data(path, commit).await?;
    json_response(req, &serde_json::to_value(&new).unwrap_or(Value::Null)).await
}

/// The writable table at `path`: its structure and location.
async fn writable_table(
    state: &AppState,
    req: &Request,
    path: &[String],
) -> Result<(TableStructure, String), ApiError> {
    let node = state.node_for(req, path).await?;
    let uri = writable_location(&node, parquet_table::MIMETYPE, "a table")?;
    match &node.structure {
        Some(Structure::Table(s)) => Ok((s.clone(), uri)),
        _ => Err(ApiError::internal(
            "a Parquet data source without a table structure",
        )),
    }
}

/// The schema and record batches of an Arrow IPC file body.
async fn arrow_ipc_body(
    req: &Request,
    what: &str,
) -> Result<(arrow_schema::SchemaRef, Vec<arrow_array::RecordBatch>), ApiError> {
    let ct = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/vnd.apache.arrow.file") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("{what} must be sent as application/vnd.apache.arrow.file, not {ct:?}"),
        ));
    }
    let body = req.body.clone();
    crate::encode::on_blocking_pool(move || parse_arrow_ipc(body)).await
}

/// The most the compressed buffers of an uploaded Arrow IPC file may say they hold once
/// decompressed, in all: the reader allocates what each says before decompressing it.
const MAX_IPC_DECOMPRESSED_BYTES: u64 = 4 << 30;

/// Checks what arrow-ipc's file reader takes on trust: that every buffer of every record
/// batch and dictionary lies inside its message's body (the reader panics otherwise), and
/// that compressed buffers declare a bounded size.
fn check_arrow_ipc(body: &[u8]) -> Result<(), String> {
    let n = body.len();
    let trailer = body
        .get(n.saturating_sub(10)..)
        .filter(|t| t.len() == 10 && t[4..] == *b"ARROW1")
        .ok_or("no Arrow file footer")?;
    let footer_len = i32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let footer = usize::try_from(footer_len)
        .ok()
        .and_then(|len| body.get((n - 10).checked_sub(len)?..n - 10))
        .ok_or("the footer length is out of range")?;
    let footer = arrow_ipc::root_as_footer(footer).map_err(|e| format!("the footer: {e}"))?;
    let blocks = footer.recordBatches().into_iter().flatten();
    let mut decompressed = 0u64;
    for block in blocks.chain(footer.dictionaries().into_iter().flatten()) {
        let at = |v: i64| usize::try_from(v).ok();
        let meta_end = at(block.offset())
            .zip(at(block.metaDataLength().into()))
            .and_then(|(o, m)| Some((o, o.checked_add(m)?)));
        let body_len = at(block.bodyLength());
        let (Some((start, meta_end)), Some(body_len)) = (meta_end, body_len) else {
            return Err("a block has a negative offset or length".into());
        };
        let block_body = meta_end
            .checked_add(body_len)
            .and_then(|end| body.get(meta_end..end))
            .ok_or("a block lies outside the file")?;
        let meta = &body[start..meta_end];
        let prefix = if meta.starts_with(&[0xff; 4]) { 8 } else { 4 };
        let message = meta
            .get(prefix..)
            .map(arrow_ipc::root_as_message)
            .ok_or("a message is too short")?
            .map_err(|e| format!("a message: {e}"))?;
        let batch = message
            .header_as_record_batch()
            .or_else(|| message.header_as_dictionary_batch()?.data());
        let Some(batch) = batch else { continue };
        let compressed = batch.compression().is_some();
        for buf in batch.buffers().into_iter().flatten() {
            let data = at(buf.offset())
                .filter(|o| o % 8 == 0)
                .zip(at(buf.length()))
                .and_then(|(o, l)| block_body.get(o..o.checked_add(l)?))
                .ok_or("a buffer is not aligned to 8 bytes or lies outside its record batch")?;
            // A compressed buffer starts with its decompressed length (-1: not compressed).
            if compressed && let Some(head) = data.first_chunk::<8>() {
                decompressed += u64::try_from(i64::from_le_bytes(*head)).unwrap_or(0);
                if decompressed > MAX_IPC_DECOMPRESSED_BYTES {
                    return Err(format!(
                        "its compressed buffers hold more than {MAX_IPC_DECOMPRESSED_BYTES} bytes"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Decodes an uploaded Arrow IPC file (`PUT`/`PATCH` of table and sparse data).
pub fn parse_arrow_ipc(
    body: bytes::Bytes,
) -> Result<(arrow_schema::SchemaRef, Vec<arrow_array::RecordBatch>), ApiError> {
    check_arrow_ipc(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not an Arrow IPC file: {e}")))?;
    // arrow-ipc 60 still panics on some malformed files (misaligned or short offset buffers
    // reach its validation unchecked). Decoding touches nothing but `body`, so a panic is
    // contained here and answered as the bad body it is.
    let decode = || {
        let reader = arrow_ipc::reader::FileReader::try_new(std::io::Cursor::new(body), None)
            .map_err(|e| format!("the body is not an Arrow IPC file: {e}"))?;
        let schema = reader.schema();
        let batches = reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("the Arrow IPC body cannot be read: {e}"))?;
        Ok::<_, String>((schema, batches))
    };
    match std::panic::catch_unwind(decode) {
        Ok(decoded) => decoded.map_err(ApiError::bad_request),
        Err(_) => Err(ApiError::bad_request(
            "the Arrow IPC body cannot be read: its buffers do not match its schema",
        )),
    }
}

/// The record batches of an Arrow IPC file body, checked against the table's columns.
async fn arrow_body(
    req: &Request,
    s: &TableStructure,
) -> Result<Vec<arrow_array::RecordBatch>, ApiError> {
    let (got, batches) = arrow_ipc_body(req, "table data").await?;
    let s = s.clone();
    crate::encode::on_blocking_pool(move || table_batches(&got, batches, &s)).await
}

/// The record batches of an uploaded table (`got` is their schema), checked against the
/// table's columns and cast to its declared types.
pub fn table_batches(
    got: &arrow_schema::Schema,
    batches: Vec<arrow_array::RecordBatch>,
    s: &TableStructure,
) -> Result<Vec<arrow_array::RecordBatch>, ApiError> {
    let want = parquet_table::schema(s).map_err(|e| ApiError::internal(e.to_string()))?;
    // pandas' index travels as extra columns its metadata names; they are kept, not checked.
    let index = parquet_table::index_columns(got);
    let fields = |schema: &arrow_schema::Schema| -> Vec<(String, arrow_schema::DataType)> {
        schema
            .fields()
            .iter()
            .filter(|f| !index.contains(f.name()))
            .map(|f| (f.name().clone(), logical_type(f.data_type())))
            .collect()
    };
    if fields(got) != fields(&want) {
        let names = |schema: &arrow_schema::Schema| -> Vec<String> {
            schema
                .fields()
                .iter()
                .map(|f| format!("{}: {}", f.name(), f.data_type()))
                .collect()
        };
        return Err(ApiError::unprocessable(format!(
            "the data's columns {:?} do not match the table's {:?}",
            names(got),
            names(&want)
        )));
    }
    batches
        .into_iter()
        .map(|b| to_declared_types(b, &want))
        .collect()
}

/// Casts columns to the table's declared types where they differ only in representation
/// (`string` sent for a `large_string` column), so every partition reads back alike.
fn to_declared_types(
    batch: arrow_array::RecordBatch,
    want: &arrow_schema::Schema,
) -> Result<arrow_array::RecordBatch, ApiError> {
    let schema = batch.schema();
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (f, col) in schema.fields().iter().zip(batch.columns()) {
        match want.field_with_name(f.name()) {
            Ok(w) if w.data_type() != f.data_type() => {
                let cast = arrow_cast::cast(col, w.data_type()).map_err(|e| {
                    ApiError::unprocessable(format!("column {:?} cannot be stored: {e}", f.name()))
                })?;
                fields.push(f.as_ref().clone().with_data_type(w.data_type().clone()));
                columns.push(cast);
            }
            _ => {
                fields.push(f.as_ref().clone());
                columns.push(col.clone());
            }
        }
    }
    let metadata = declared_pandas_types(schema.metadata(), want.metadata());
    let schema = arrow_schema::Schema::new_with_metadata(fields, metadata);
    arrow_array::RecordBatch::try_new(Arc::new(schema), columns)
        .map_err(|e| ApiError::unprocessable(format!("the partition cannot be stored: {e}")))
}

/// The uploaded schema metadata, with the pandas types of the table's columns taken from the
/// table's declared schema: a partition sent as a plain pandas frame (`str` strings) reads
/// back with the table's dtypes (`string`), like its siblings, and its own index kept.
fn declared_pandas_types(
    sent: &arrow_schema::Metadata,
    declared: &arrow_schema::Metadata,
) -> arrow_schema::Metadata {
    let parse = |m: &arrow_schema::Metadata| {
        m.get("pandas")
            .and_then(|p| serde_json::from_str::<Value>(p).ok())
    };
    let (Some(mut pandas), Some(table)) = (parse(sent), parse(declared)) else {
        return sent.clone();
    };
    let index: Vec<Value> = pandas["index_columns"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let declared_columns = table["columns"].as_array().cloned().unwrap_or_default();
    if let Some(columns) = pandas["columns"].as_array_mut() {
        for c in columns {
            let name = c["field_name"].clone();
            if index.contains(&name) {
                continue;
            }
            if let Some(d) = declared_columns.iter().find(|d| d["field_name"] == name) {
                for k in ["pandas_type", "numpy_type", "metadata"] {
                    c[k] = d[k].clone();
                }
            }
        }
    }
    let mut out = sent.clone();
    out.insert("pandas", pandas.to_string());
    out
}

/// Arrow types that hold the same values (pandas gives `string` or `large_string` for the
/// same column depending on the route) compare equal.
fn logical_type(t: &arrow_schema::DataType) -> arrow_schema::DataType {
    use arrow_schema::DataType as T;
    match t {
        T::LargeUtf8 | T::Utf8View => T::Utf8,
        T::LargeBinary | T::BinaryView => T::Binary,
        other => other.clone(),
    }
}

fn partition_param(req: &Request, s: &TableStructure) -> Result<usize, ApiError> {
    let raw = req
        .params
        .get("partition")
        .ok_or_else(|| ApiError::invalid_param("partition", "missing", None, "Field required"))?;
    let i: usize = raw.parse().map_err(|_| {
        ApiError::invalid_param(
            "partition",
            "int_parsing",
            Some(raw),
            "Input should be a valid non-negative integer",
        )
    })?;
    if i >= s.npartitions {
        return Err(ApiError::unprocessable(format!(
            "partition {i} is out of range: the table has {} partitions",
            s.npartitions
        )));
    }
    Ok(i)
}

/// `PUT /table/full` (one partition) and `PUT /table/partition?partition=i`: replaces a
/// partition with one atomic put, then bumps the data version.
pub async fn put_table(
    state: &AppState,
    req: &Request,
    path: &[String],
    whole: bool,
) -> Result<Response, ApiError> {
    storage(state)?;
    let (s, uri) = writable_table(state, req, path).await?;
    let i = if whole {
        if s.npartitions != 1 {
            return Err(ApiError::bad_request(format!(
                "the table has {} partitions: write them one by one with /table/partition",
                s.npartitions
            )));
        }
        0
    } else {
        partition_param(req, &s)?
    };
    let batches = arrow_body(req, &s).await?;
    phase(req, path, "storing");
    parquet_table::write_partition(&uri, i, &batches).await?;
    phase(req, path, "committing");
    state
        .catalog
        .commit_data(path, DataCommit::default())
        .await?;
    json_response(req, &Value::Null).await
}

/// Refuses rows whose columns (pandas' index columns included, which `arrow_body` does not
/// check) differ from the partition's: one Parquet file holds one schema.
fn same_columns(
    stored: &arrow_schema::Schema,
    added: &arrow_schema::Schema,
) -> Result<(), ApiError> {
    let columns = |schema: &arrow_schema::Schema| -> Vec<String> {
        schema
            .fields()
            .iter()
            .map(|f| format!("{}: {}", f.name(), f.data_type()))
            .collect()
    };
    let (stored, added) = (columns(stored), columns(added));
    if stored != added {
        return Err(ApiError::unprocessable(format!(
            "the rows to append have the columns {added:?} but the partition holds {stored:?} \
             (index columns included): append rows with the same columns and index"
        )));
    }
    Ok(())
}

/// `PATCH /table/partition?partition=i`: appends rows to a partition.
pub async fn append_table(
    state: &AppState,
    req: &Request,
    path: &[String],
) -> Result<Response, ApiError> {
    storage(state)?;
    let (s, uri) = writable_table(state, req, path).await?;
    let i = partition_param(req, &s)?;
    let new = arrow_body(req, &s).await?;
    // A partition is read, extended and put back: appends to one table wait for each other,
    // on every node of the catalog.
    let _lock = state.catalog.lock_data(path).await?;
    let mut batches = parquet_table::read_partition(&uri, i)
        .await?
        .unwrap_or_default();
    if let (Some(old), Some(added)) = (batches.first(), new.first()) {
        same_columns(&old.schema(), &added.schema())?;
    }
    batches.extend(new);
    phase(req, path, "storing");
    parquet_table::write_partition(&uri, i, &batches).await?;
    phase(req, path, "committing");
    state
        .catalog
        .commit_data(path, DataCommit::default())
        .await?;
    json_response(req, &Value::Null).await
}

/// `PUT /array/full` (single-block arrays) and `PUT /array/block?block=..` of a sparse array:
/// the block's points as an Arrow IPC file (`dim0..`, `data`), stored with one atomic put.
async fn put_sparse(
    state: &AppState,
    req: &Request,
    node: &Node,
    whole: bool,
) -> Result<Response, ApiError> {
    let uri = writable_location(node, sparse_store::MIMETYPE, "a sparse array")?;
    let Some(Structure::Sparse(s)) = &node.structure else {
        return Err(ApiError::internal(
            "a sparse data source without a sparse structure",
        ));
    };
    let grid = ChunkGrid::new(&s.shape, s.chunks.clone())?;
    let block = if whole {
        if grid.grid_shape().iter().any(|&n| n > 1) {
            return Err(ApiError::bad_request(
                "the sparse array has several blocks: write them with /array/block",
            ));
        }
        vec![0; s.shape.len()]
    } else {
        req.params
            .usize_list("block")?
            .ok_or_else(|| ApiError::invalid_param("block", "missing", None, "Field required"))?
    };
    let shape = grid.block_shape(&block)?;
    let (schema, batches) = arrow_ipc_body(req, "sparse data").await?;
    let batch = arrow_select::concat::concat_batches(&schema, &batches)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let points = sparse_store::check_block(&batch, s, &shape)
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    phase(req, &node.path, "storing");
    sparse_store::write_block(&uri, &block, points).await?;
    phase(req, &node.path, "committing");
    state
        .catalog
        .commit_data(&node.path, DataCommit::default())
        .await?;
    json_response(req, &Value::Null).await
}

/// `PUT /awkward/full/{path}`: the zip of buffers, stored with one atomic put.
pub async fn put_awkward(
    state: &AppState,
    req: &Request,
    path: &[String],
) -> Result<Response, ApiError> {
    storage(state)?;
    let node = state.node_for(req, path).await?;
    let uri = writable_location(&node, awkward_store::MIMETYPE, "an awkward array")?;
    let limit = state.config.request_bytesize_limit as u64;
    phase(req, path, "storing");
    awkward_store::write(&uri, req.body.clone(), limit)
        .await
        .map_err(|e| match e {
            tessera_common::adapters::AdapterError::BadSource(m) => ApiError::bad_request(m),
            other => other.into(),
        })?;
    phase(req, path, "committing");
    state
        .catalog
        .commit_data(path, DataCommit::default())
        .await?;
    json_response(req, &Value::Null).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patched(ops: Value) -> Result<MetadataUpdate, ApiError> {
        let body = json!({"metadata": ops});
        let patch = MetadataPatch::parse(body.as_object().unwrap())?;
        let md = json!({"a": {"b": 1}});
        patch.apply(md.as_object().unwrap(), &[], &[])
    }

    #[test]
    fn copies_that_double_the_metadata_stop_at_the_size_limit() {
        // Each copy of the whole document to a new key doubles it: 2^40 times at the end.
        let ops: Vec<Value> = (0..40)
            .map(|i| json!({"op": "copy", "from": "", "path": format!("/c{i}")}))
            .collect();
        let err = patched(json!(ops)).unwrap_err();
        assert_eq!(err.status.as_u16(), 422);
        assert!(err.detail.contains("would grow it past"), "{}", err.detail);
        // A few copies are fine.
        assert!(patched(json!([{"op": "copy", "from": "/a", "path": "/c"}])).is_ok());
    }

    #[test]
    fn moves_that_nest_past_what_the_catalog_reads_back_are_refused() {
        let deep = (0..99).fold(json!([]), |v, _| json!([v]));
        let inner = format!("/y{}/-", "/0".repeat(99));
        let err = patched(json!([
            {"op": "add", "path": "/x", "value": deep},
            {"op": "add", "path": "/y", "value": deep},
            {"op": "move", "from": "/x", "path": inner},
        ]))
        .unwrap_err();
        assert!(err.detail.contains("levels deep"), "{}", err.detail);
    }

    #[test]
    fn an_arrow_file_that_is_not_one_is_a_400() {
        let err = parse_arrow_ipc(bytes::Bytes::from_static(b"ARROW1\0\0 not a file ARROW1"))
            .unwrap_err();
        assert_eq!(err.status.as_u16(), 400);
    }
}
