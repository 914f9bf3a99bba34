//! `/container/full`: a subtree as HDF5 (default) or as a JSON outline; a container of arrays
//! (an xarray dataset above all) as NetCDF; and for xarray datasets the table rendering
//! (variables broadcast over their dimensions, one row per point, dimensions as index columns)
//! in every table format.

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, TimestampNanosecondArray};
use arrow_schema::{DataType as ArrowType, Field, Schema, TimeUnit};
use axum::http::Method;
use axum::response::Response;
use serde_json::{Map, Value, json};
use tessera_common::array::{ArrayData, Scalar};
use tessera_common::serializers::hdf5::H5Node;
use tessera_common::serializers::netcdf::NcVariable;
use tessera_common::slicing::Selection;
use tessera_common::structure::{ArrayStructure, Structure, StructureFamily};

use super::Request;
use crate::catalog::query::Filter;
use crate::catalog::{Node, SearchRequest};
use crate::encode;
use crate::error::ApiError;
use crate::negotiate;
use crate::planner::{read_array, read_partition};
use crate::respond::{self, Payload, etag_of};
use crate::state::AppState;

/// Most children a container export walks per container.
const MAX_CHILDREN: usize = 10_000;

/// The children of `node` that pass `access` (the caller's access filter).
async fn children(
    state: &AppState,
    node: &Node,
    access: Option<&Filter>,
) -> Result<Vec<Arc<Node>>, ApiError> {
    let page = state
        .catalog
        .search(
            &node.path,
            &SearchRequest {
                limit: MAX_CHILDREN,
                filters: access.into_iter().cloned().collect(),
                ..Default::default()
            },
        )
        .await?;
    Ok(page.nodes)
}

/// The requested child names: `field=` or a JSON list body on POST.
fn fields(req: &Request) -> Result<Option<Vec<String>>, ApiError> {
    let mut f: Vec<String> = req
        .params
        .all("field")
        .iter()
        .map(|s| s.to_string())
        .collect();
    if req.method == Method::POST && !req.body.is_empty() {
        let body: Vec<String> = serde_json::from_slice(&req.body).map_err(|e| {
            ApiError::bad_request(format!(
                "the request body must be a JSON list of field names: {e}"
            ))
        })?;
        f.extend(body);
    }
    Ok((!f.is_empty()).then_some(f))
}

fn outline<'a>(
    state: &'a AppState,
    access: Option<&'a Filter>,
    node: &'a Node,
    only: Option<&'a [String]>,
) -> futures::future::BoxFuture<'a, Result<Value, ApiError>> {
    Box::pin(async move {
        let mut contents = Map::new();
        if node.family == StructureFamily::Container {
            for c in children(state, node, access).await? {
                if only.is_some_and(|o| !o.iter().any(|k| k == c.key())) {
                    continue;
                }
                contents.insert(c.key().to_string(), outline(state, access, &c, None).await?);
            }
        }
        Ok(json!({"contents": contents, "metadata": node.metadata}))
    })
}

async fn read_whole(
    state: &AppState,
    node: &Node,
    budget: &mut usize,
) -> Result<ArrayData, ApiError> {
    let (Some(Structure::Array(s)), Some(src)) = (&node.structure, &node.source) else {
        return Err(ApiError::internal("not an array"));
    };
    let bytes = s.shape.iter().product::<usize>() * s.data_type.itemsize();
    *budget = budget.checked_sub(bytes).ok_or_else(|| {
        ApiError::bad_request(format!(
            "Response would exceed the response size limit: '{}' alone holds {bytes} bytes. Export fewer fields.",
            node.path.join("/")
        ))
    })?;
    let id = tessera_common::jobs::SourceId::of(src);
    read_array(
        state,
        s,
        src,
        id,
        node.data_version,
        &Selection::full(&s.shape),
    )
    .await
}

fn h5_tree<'a>(
    state: &'a AppState,
    access: Option<&'a Filter>,
    node: &'a Node,
    only: Option<&'a [String]>,
    budget: &'a mut usize,
) -> futures::future::BoxFuture<'a, Result<H5Node, ApiError>> {
    Box::pin(async move {
        let attrs = node.metadata.clone();
        match node.family {
            StructureFamily::Container => {
                let mut kids = Vec::new();
                for c in children(state, node, access).await? {
                    if only.is_some_and(|o| !o.iter().any(|k| k == c.key())) {
                        continue;
                    }
                    if matches!(
                        c.family,
                        StructureFamily::Container
                            | StructureFamily::Array
                            | StructureFamily::Table
                    ) {
                        kids.push((
                            c.key().to_string(),
                            h5_tree(state, access, &c, None, budget).await?,
                        ));
                    }
                }
                Ok(H5Node::Group {
                    attrs,
                    children: kids,
                })
            }
            StructureFamily::Array => Ok(H5Node::Array {
                data: read_whole(state, node, budget).await?,
                attrs,
            }),
            StructureFamily::Table => {
                let (Some(Structure::Table(t)), Some(src)) = (&node.structure, &node.source) else {
                    return Err(ApiError::internal("table without structure"));
                };
                let mut batches = Vec::new();
                for p in 0..t.npartitions {
                    let b = read_partition(state, src, node.data_version, p, None).await?;
                    *budget = budget
                        .checked_sub(b.get_array_memory_size())
                        .ok_or_else(|| {
                            ApiError::bad_request("Response would exceed the response size limit")
                        })?;
                    batches.push(b);
                }
                let index = state.dispatcher.index_columns(src).await?;
                Ok(H5Node::Table {
                    batches,
                    index_columns: index,
                    attrs,
                })
            }
            other => Err(ApiError::not_acceptable(format!(
                "{} nodes cannot be exported to HDF5",
                other.as_str()
            ))),
        }
    })
}

/// The names of an array's dimensions: its own (xarray variables carry them), else `dim_0`,
/// `dim_1`... as xarray names unnamed ones.
pub(super) fn dim_names(s: &ArrayStructure) -> Vec<String> {
    match &s.dims {
        Some(d) if d.len() == s.shape.len() => d.clone(),
        _ => (0..s.shape.len()).map(|i| format!("dim_{i}")).collect(),
    }
}

/// A node's metadata as file attributes: xarray's nodes keep theirs under `attrs`; any other
/// node's metadata is its attributes.
pub(super) fn variable_attrs(node: &Node) -> Map<String, Value> {
    let xarray = node.spec_names().iter().any(|s| s.starts_with("xarray_"));
    match node.metadata.get("attrs").and_then(Value::as_object) {
        Some(attrs) if xarray => attrs.clone(),
        _ => node.metadata.clone(),
    }
}

/// The container's arrays as NetCDF variables. NetCDF-3 has no groups and no tables: any
/// other child is refused by name (unless `field=` leaves it out). Arrays without dimension
/// names get their own (`{key}_dim_0`...), so arrays of unrelated shapes do not clash.
/// Also answers the coordinates no variable names (for the file's `coordinates`).
async fn netcdf_variables(
    state: &AppState,
    access: Option<&Filter>,
    node: &Node,
    only: Option<&[String]>,
) -> Result<(Vec<NcVariable>, Option<String>), ApiError> {
    let mut budget = state.config.response_bytesize_limit;
    let mut vars = Vec::new();
    let mut aux_coords: Vec<(String, Vec<String>)> = Vec::new();
    for c in children(state, node, access).await? {
        if only.is_some_and(|o| !o.iter().any(|k| k == c.key())) {
            continue;
        }
        let Some(Structure::Array(s)) = &c.structure else {
            return Err(ApiError::not_acceptable(format!(
                "NetCDF holds arrays only, and '{}' is a {}: choose arrays with field=, or export as {}",
                c.key(),
                c.family.as_str(),
                negotiate::HDF5
            )));
        };
        let dims = match &s.dims {
            Some(_) => dim_names(s),
            None => (0..s.shape.len())
                .map(|i| format!("{}_dim_{i}", c.key()))
                .collect(),
        };
        if c.spec_names().iter().any(|s| s == "xarray_coord") && !dims.iter().any(|d| d == c.key())
        {
            aux_coords.push((c.key().to_string(), dims.clone()));
        }
        vars.push(NcVariable {
            name: c.key().to_string(),
            dims,
            data: read_whole(state, &c, &mut budget).await?,
            attrs: variable_attrs(&c),
        });
    }
    // Coordinates that are not dimensions are named, as CF says, in the `coordinates`
    // attribute of each variable spanning their dimensions (in the file's, if none does).
    let mut placed = vec![false; aux_coords.len()];
    for v in vars.iter_mut() {
        let names: Vec<&str> = aux_coords
            .iter()
            .enumerate()
            .filter(|(_, (name, dims))| *name != v.name && dims.iter().all(|d| v.dims.contains(d)))
            .map(|(i, (name, _))| {
                placed[i] = true;
                name.as_str()
            })
            .collect();
        if !names.is_empty() && !aux_coords.iter().any(|(n, _)| *n == v.name) {
            v.attrs.insert("coordinates".into(), names.join(" ").into());
        }
    }
    let rest: Vec<&str> = aux_coords
        .iter()
        .zip(&placed)
        .filter(|(_, p)| !**p)
        .map(|((n, _), _)| n.as_str())
        .collect();
    Ok((vars, (!rest.is_empty()).then(|| rest.join(" "))))
}

fn dims_of(node: &Node) -> Option<(Vec<String>, Vec<usize>)> {
    match &node.structure {
        Some(Structure::Array(s)) => Some((s.dims.clone()?, s.shape.clone())),
        _ => None,
    }
}

fn column_from(
    data: &ArrayData,
    index_of: &dyn Fn(usize) -> usize,
    rows: usize,
) -> Result<ArrayRef, ApiError> {
    let value = |i: usize| {
        data.scalar(index_of(i))
            .map_err(|e| ApiError::internal(e.to_string()))
    };
    Ok(
        match data
            .scalar(0)
            .map_err(|e| ApiError::internal(e.to_string()))?
        {
            Scalar::Float(_) => Arc::new(Float64Array::from(
                (0..rows)
                    .map(|i| match value(i)? {
                        Scalar::Float(f) => Ok(f),
                        _ => Ok(f64::NAN),
                    })
                    .collect::<Result<Vec<_>, ApiError>>()?,
            )),
            Scalar::Int(_) | Scalar::UInt(_) | Scalar::Bool(_) => Arc::new(Int64Array::from(
                (0..rows)
                    .map(|i| match value(i)? {
                        Scalar::Int(v) => Ok(v),
                        Scalar::UInt(v) => Ok(v as i64),
                        Scalar::Bool(v) => Ok(i64::from(v)),
                        _ => Ok(0),
                    })
                    .collect::<Result<Vec<_>, ApiError>>()?,
            )),
            Scalar::DateTime(_, unit) if unit == "[ns]" => {
                Arc::new(TimestampNanosecondArray::from(
                    (0..rows)
                        .map(|i| match value(i)? {
                            Scalar::DateTime(v, _) => Ok(v),
                            _ => Ok(0),
                        })
                        .collect::<Result<Vec<_>, ApiError>>()?,
                ))
            }
            other => {
                return Err(ApiError::not_acceptable(format!(
                    "variables of this type ({other:?}) cannot be rendered as a table"
                )));
            }
        },
    )
}

/// The xarray dataset's table: data variables and non-index coordinates broadcast over the
/// dataset's dimensions (C order), and the dimensions as index columns.
async fn dataset_table(
    state: &AppState,
    access: Option<&Filter>,
    node: &Node,
    only: Option<&[String]>,
) -> Result<(RecordBatch, Vec<String>), ApiError> {
    let vars = children(state, node, access).await?;
    let mut dims: Vec<(String, usize)> = Vec::new();
    for v in &vars {
        if let Some((names, shape)) = dims_of(v) {
            for (n, len) in names.into_iter().zip(shape) {
                if !dims.iter().any(|(d, _)| *d == n) {
                    dims.push((n, len));
                }
            }
        }
    }
    // Every column spans every row: the table is the product of the dimensions, whatever
    // the variables' own sizes, so it is checked before any column is built.
    let rows: usize = dims
        .iter()
        .fold(1usize, |acc, (_, n)| acc.saturating_mul(*n));
    let columns_at_most = vars.len() + dims.len();
    super::array::check_bytes(
        state,
        rows.saturating_mul(columns_at_most).saturating_mul(8),
    )?;
    let mut budget = state.config.response_bytesize_limit;
    // Maps a row number to the flat index of a variable spanning `vdims`.
    let indexer = |vdims: Vec<String>, vshape: Vec<usize>| {
        let dims = dims.clone();
        move |row: usize| {
            let mut rem = row;
            let mut coord = vec![0usize; dims.len()];
            for (k, (_, len)) in dims.iter().enumerate().rev() {
                coord[k] = rem % len;
                rem /= len;
            }
            let mut flat = 0;
            for (name, len) in vdims.iter().zip(&vshape) {
                let k = dims.iter().position(|(d, _)| d == name).unwrap_or(0);
                flat = flat * len + coord[k];
            }
            flat
        }
    };
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for v in &vars {
        let is_dim = dims.iter().any(|(d, _)| d == v.key());
        if is_dim || only.is_some_and(|o| !o.iter().any(|k| k == v.key())) {
            continue;
        }
        let Some((vdims, vshape)) = dims_of(v) else {
            continue;
        };
        let data = read_whole(state, v, &mut budget).await?;
        let col = column_from(&data, &indexer(vdims, vshape), rows)?;
        fields.push(Field::new(v.key(), col.data_type().clone(), true));
        columns.push(col);
    }
    let mut index = Vec::new();
    for (d, len) in &dims {
        let col: ArrayRef = match vars.iter().find(|v| v.key() == d) {
            Some(v) => {
                let data = read_whole(state, v, &mut budget).await?;
                column_from(&data, &indexer(vec![d.clone()], vec![*len]), rows)?
            }
            None => Arc::new(Int64Array::from_iter_values(
                (0..rows).map(|r| (indexer(vec![d.clone()], vec![*len]))(r) as i64),
            )),
        };
        let dt = match col.data_type() {
            ArrowType::Timestamp(_, _) => ArrowType::Timestamp(TimeUnit::Nanosecond, None),
            other => other.clone(),
        };
        fields.push(Field::new(d.as_str(), dt, true));
        columns.push(col);
        index.push(d.clone());
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((batch, index))
}

pub async fn full(state: &AppState, req: &Request, path: &[String]) -> Result<Response, ApiError> {
    let node = state.node_for(req, path).await?;
    if node.family != StructureFamily::Container {
        return Err(ApiError::not_found(format!(
            "No such entry. '{}' is a {}; /container/full serves container.",
            node.path.join("/"),
            node.family.as_str()
        )));
    }
    let specs = node.spec_names();
    let media = negotiate::choose(node.family, &specs, req.params.get("format"), req.accept())?;
    let only = fields(req)?;
    let access = state.export_filter(req);
    let access = access.as_ref();
    let is_dataset = specs.iter().any(|s| s == "xarray_dataset");
    let body = match media {
        negotiate::HDF5 => {
            let mut budget = state.config.response_bytesize_limit;
            let tree = h5_tree(state, access, &node, only.as_deref(), &mut budget).await?;
            encode::hdf5(tree).await?
        }
        m if negotiate::is_netcdf(m) => {
            let (vars, unplaced) = netcdf_variables(state, access, &node, only.as_deref()).await?;
            let mut attrs = variable_attrs(&node);
            if let Some(coords) = unplaced {
                attrs.insert("coordinates".into(), coords.into());
            }
            encode::netcdf(attrs, vars).await?
        }
        negotiate::JSON if is_dataset => {
            let (batch, index) = dataset_table(state, access, &node, only.as_deref()).await?;
            encode::table(vec![batch], index, media).await?
        }
        negotiate::JSON => {
            let v = outline(state, access, &node, only.as_deref()).await?;
            bytes::Bytes::from(
                serde_json::to_vec(&v).map_err(|e| ApiError::internal(e.to_string()))?,
            )
        }
        _ if is_dataset => {
            let (batch, index) = dataset_table(state, access, &node, only.as_deref()).await?;
            encode::table(vec![batch], index, media).await?
        }
        other => {
            return Err(ApiError::not_acceptable(format!(
                "containers are served as {}, {} or {}; {other} needs the xarray_dataset spec",
                negotiate::HDF5,
                negotiate::JSON,
                negotiate::NETCDF
            )));
        }
    };
    Ok(respond::send(
        &req.headers,
        Payload {
            etag: Some(etag_of(&[&body])),
            body,
            media_type: media.to_string(),
            filename: req.params.get("filename").map(str::to_string),
            typesize: None,
        },
    )
    .await)
}
