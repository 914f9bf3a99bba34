//! Array-like data routes: `/array/full` and `/array/block` (dense and sparse arrays),
//! `/awkward/buffers` and `/awkward/full`, `/ragged/full`.

use std::str::FromStr;

use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;
use tessera_common::adapters::DataSource;
use tessera_common::array::ArrayData;
use tessera_common::chunks::ChunkGrid;
use tessera_common::serializers::hdf5::H5Node;
use tessera_common::serializers::netcdf::NcVariable;
use tessera_common::slicing::{DimRange, Selection, SliceSpec};
use tessera_common::structure::{Structure, StructureFamily};

use super::Request;
use crate::catalog::Node;
use crate::encode;
use crate::error::ApiError;
use crate::negotiate;
use crate::planner::{self, read_array};
use crate::respond::{self, Payload, etag_of};
use crate::state::AppState;
use tessera_common::jobs::SourceId;

fn wrong_family(node: &Node, route: &str, accepted: &str) -> ApiError {
    ApiError::not_found(format!(
        "No such entry. '{}' is a {}; {route} serves {accepted}.",
        node.path.join("/"),
        node.family.as_str()
    ))
}

fn source_of(node: &Node) -> Result<&DataSource, ApiError> {
    node.source
        .as_ref()
        .ok_or_else(|| ApiError::not_found(format!("'{}' holds no data", node.path.join("/"))))
}

/// `expected_shape` check: the client reshapes the bytes to it, so a mismatch is refused.
fn check_expected_shape(req: &Request, shape: &[usize]) -> Result<(), ApiError> {
    let Some(raw) = req.params.get("expected_shape") else {
        return Ok(());
    };
    let expected: Vec<usize> = if raw == "scalar" || raw.is_empty() {
        Vec::new()
    } else {
        raw.split(',')
            .map(|s| s.trim().parse())
            .collect::<Result<_, _>>()
            .map_err(|_| {
                ApiError::unprocessable(format!(
                    "expected_shape must be 'scalar' or comma-separated integers, got {raw:?}"
                ))
            })?
    };
    if expected != shape {
        let tuple = |s: &[usize]| match s {
            [one] => format!("({one},)"),
            _ => format!(
                "({})",
                s.iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        return Err(ApiError::unprocessable(format!(
            "The expected shape {} does not match the actual shape {} that would result from the requested block and slice.",
            tuple(&expected),
            tuple(shape)
        )));
    }
    Ok(())
}

/// Refuses a response of `bytes` over the response limit (Tiled's words and status).
pub(super) fn check_bytes(state: &AppState, bytes: usize) -> Result<(), ApiError> {
    let limit = state.config.response_bytesize_limit;
    if bytes > limit {
        crate::metrics::REFUSED
            .with_label_values(&["response"])
            .inc();
        return Err(ApiError::bad_request(format!(
            "Response would exceed {limit}. Use slicing ('?slice=...') to request smaller chunks."
        )));
    }
    Ok(())
}

/// The `slice` grammar Tiled validates against (without numpy's `...`, which we also accept).
fn tiled_slice_pattern() -> &'static regex::Regex {
    static PATTERN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| {
        regex::Regex::new(r"^(?:(?:-?\d+)?:){0,2}(?:-?\d+)?(?:,(?:(?:-?\d+)?:){0,2}(?:-?\d+)?)*$")
            .unwrap_or_else(|_| regex::Regex::new("$^").unwrap_or_else(|_| unreachable!()))
    })
}

fn parse_slice(req: &Request) -> Result<SliceSpec, ApiError> {
    match req.params.get("slice") {
        None | Some("") => Ok(SliceSpec::all()),
        Some(s) => SliceSpec::from_str(s).map_err(|e| {
            // Text outside Tiled's slice grammar is a 422 validation error (as Tiled's own
            // pattern check gives); text inside it that still makes no sense is a 400.
            if tiled_slice_pattern().is_match(s) {
                ApiError::bad_request(e.to_string())
            } else {
                ApiError::invalid_param("slice", "string_pattern_mismatch", Some(s), e.to_string())
            }
        }),
    }
}

/// Shifts a selection made within block `origin`'s coordinates into whole-array coordinates.
fn offset_selection(sel: &Selection, origin: &[usize]) -> Selection {
    Selection {
        dims: sel
            .dims
            .iter()
            .zip(origin)
            .map(|(d, o)| DimRange {
                start: d.start + o,
                ..d.clone()
            })
            .collect(),
    }
}

/// The block's selection in whole-array coordinates, with `slice` applied inside the block.
fn block_selection(
    req: &Request,
    shape: &[usize],
    chunks: &[Vec<usize>],
) -> Result<Selection, ApiError> {
    let block = req
        .params
        .usize_list("block")?
        .ok_or_else(|| ApiError::invalid_param("block", "missing", None, "Field required"))?;
    let grid = ChunkGrid::new(shape, chunks.to_vec())?;
    let origin = grid.block_origin(&block)?;
    let bshape = grid.block_shape(&block)?;
    // Within a block, a slice that does not fit is a parameter error (422), as in Tiled.
    let within = parse_slice(req)?
        .resolve(&bshape)
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    Ok(offset_selection(&within, &origin))
}

async fn send_array(
    state: &AppState,
    req: &Request,
    node: &Node,
    sel: Selection,
) -> Result<Response, ApiError> {
    let source = source_of(node)?;
    let Some(Structure::Array(structure)) = &node.structure else {
        return Err(wrong_family(node, "this route", "arrays"));
    };
    let out_shape = sel.out_shape();
    check_expected_shape(req, &out_shape)?;
    let media = negotiate::choose(
        node.family,
        &node.spec_names(),
        req.params.get("format"),
        req.accept(),
    )?;
    let bytes = sel
        .num_elements()
        .saturating_mul(structure.data_type.itemsize());
    check_bytes(state, bytes)?;
    // The ETag names the data version, the selection and the format, so it is known before
    // any data is read: a revalidation costs nothing.
    let id = SourceId::of(source);
    let etag = etag_of(&[
        &id.short(),
        &node.data_version.to_le_bytes(),
        format!("{sel:?}").as_bytes(),
        media.as_bytes(),
    ]);
    // File formats carry the node's metadata as attributes: the ETag covers it too.
    let is_file = media == negotiate::HDF5 || negotiate::is_netcdf(media);
    let etag = if is_file {
        etag_of(&[
            etag.as_bytes(),
            Value::Object(node.metadata.clone()).to_string().as_bytes(),
        ])
    } else {
        etag
    };
    let filename = req.params.get("filename").map(str::to_string);
    let produce = async {
        // The assembled selection and its encoding (or compressed copy) live at once.
        req.reserve(state, 2 * bytes as u64, "this response")
            .await?;
        if planner::encodes_on_workers(state, media) {
            let version = node.data_version;
            return planner::encode_array(state, structure, source, id, version, &sel, media).await;
        }
        let data = read_array(state, structure, source, id, node.data_version, &sel).await?;
        if media == negotiate::HDF5 {
            let attrs = node.metadata.clone();
            return encode::hdf5(H5Node::Array { data, attrs }).await;
        }
        if negotiate::is_netcdf(media) {
            let dims: Vec<String> = super::container::dim_names(structure)
                .into_iter()
                .zip(&sel.dims)
                .filter(|(_, d)| d.keep)
                .map(|(name, _)| name)
                .collect();
            let name = match node.key() {
                "" => "data".to_string(),
                k => k.to_string(),
            };
            let var = NcVariable {
                name,
                dims,
                data,
                attrs: super::container::variable_attrs(node),
            };
            return encode::netcdf(Default::default(), vec![var]).await;
        }
        encode::array(data, media).await
    };
    if media == negotiate::OCTET {
        // Raw bytes come straight from the chunk cache: no second copy in the encoded cache.
        if let Some(r) = respond::not_modified(&req.headers, &etag) {
            return Ok(r);
        }
        let body = produce.await?;
        return Ok(respond::send(
            &req.headers,
            Payload {
                body,
                media_type: media.to_string(),
                etag: Some(etag),
                filename,
                typesize: Some(structure.data_type.itemsize()),
            },
        )
        .await);
    }
    respond::cached(&req.headers, &state.encoded, etag, media, filename, produce).await
}

pub async fn full(state: &AppState, req: &Request, path: &[String]) -> Result<Response, ApiError> {
    let node = state.node_for(req, path).await?;
    match (&node.family, &node.structure) {
        (StructureFamily::Array, Some(Structure::Array(s))) => {
            let sel = parse_slice(req)?.resolve(&s.shape)?;
            send_array(state, req, &node, sel).await
        }
        (StructureFamily::Sparse, Some(Structure::Sparse(s))) => {
            let sel = parse_slice(req)?.resolve(&s.shape)?;
            send_sparse(state, req, &node, &s.chunks, &s.shape, sel).await
        }
        _ => Err(wrong_family(&node, "/array/full", "array, sparse")),
    }
}

pub async fn block(state: &AppState, req: &Request, path: &[String]) -> Result<Response, ApiError> {
    let node = state.node_for(req, path).await?;
    match (&node.family, &node.structure) {
        (StructureFamily::Array, Some(Structure::Array(s))) => {
            let sel = block_selection(req, &s.shape, &s.chunks)?;
            send_array(state, req, &node, sel).await
        }
        (StructureFamily::Sparse, Some(Structure::Sparse(s))) => {
            let sel = block_selection(req, &s.shape, &s.chunks)?;
            send_sparse(state, req, &node, &s.chunks, &s.shape, sel).await
        }
        _ => Err(wrong_family(&node, "/array/block", "array, sparse")),
    }
}

/// Sparse reads: the stored points of every block the selection touches, kept if selected,
/// with coordinates relative to the selection (dropped dims removed).
async fn send_sparse(
    state: &AppState,
    req: &Request,
    node: &Node,
    chunks: &[Vec<usize>],
    shape: &[usize],
    sel: Selection,
) -> Result<Response, ApiError> {
    let source = source_of(node)?;
    if sel.dims.iter().any(|d| d.step != 1) {
        return Err(ApiError::bad_request(
            "sparse arrays can only be sliced with step 1",
        ));
    }
    let media = negotiate::choose(
        node.family,
        &node.spec_names(),
        req.params.get("format"),
        req.accept(),
    )?;
    let grid = ChunkGrid::new(shape, chunks.to_vec())?;
    let touched = grid.touched(&sel);
    // A sparse block's size is known only once read; count the dense bound of its
    // coordinates as the budget's bytes would over-refuse, so only chunks are capped here
    // and the kept points are checked against the response limit as they accumulate.
    crate::planner::check_budget(
        state,
        "this selection",
        touched.chunks,
        0,
        "ask for a smaller slice, or read the blocks one by one with /array/block",
    )?;
    let kept: Vec<usize> = (0..sel.dims.len()).filter(|&i| sel.dims[i].keep).collect();
    let mut coords: Vec<Vec<i64>> = vec![Vec::new(); kept.len()];
    let mut values: Vec<u8> = Vec::new();
    let mut dtype = None;
    for read in grid.plan(&sel) {
        let origin = grid.block_origin(&read.block)?;
        let b = planner::read_sparse_block(state, source, node.data_version, &read.block).await?;
        let itemsize = b.data.dtype.itemsize();
        dtype = Some(b.data.dtype.clone());
        for i in 0..b.data.len() {
            let global: Vec<usize> = b
                .coords
                .iter()
                .zip(&origin)
                .map(|(c, o)| c[i] as usize + o)
                .collect();
            let inside = sel
                .dims
                .iter()
                .zip(&global)
                .all(|(d, g)| *g >= d.start && *g < d.start + d.len);
            if !inside {
                continue;
            }
            for (slot, &dim) in kept.iter().enumerate() {
                coords[slot].push((global[dim] - sel.dims[dim].start) as i64);
            }
            values.extend_from_slice(&b.data.bytes[i * itemsize..(i + 1) * itemsize]);
        }
        let points = values.len() / itemsize.max(1);
        check_bytes(state, values.len() + points * kept.len() * 8)?;
    }
    let dtype = dtype.unwrap_or_else(tessera_common::dtype::DataType::f8);
    let n = values.len() / dtype.itemsize().max(1);
    let data = ArrayData::new(dtype, vec![n], values);
    let body = encode::sparse(coords, data, media).await?;
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

fn awkward_node(node: &Node, route: &str) -> Result<(), ApiError> {
    if node.family != StructureFamily::Awkward {
        return Err(wrong_family(node, route, "awkward"));
    }
    Ok(())
}

pub async fn awkward_buffers(
    state: &AppState,
    req: &Request,
    path: &[String],
) -> Result<Response, ApiError> {
    let node = state.node_for(req, path).await?;
    awkward_node(&node, "/awkward/buffers")?;
    let form_keys: Vec<String> = if req.method == axum::http::Method::POST {
        serde_json::from_slice(&req.body).map_err(|e| {
            ApiError::bad_request(format!(
                "the request body must be a JSON list of form keys: {e}"
            ))
        })?
    } else {
        req.params
            .all("form_key")
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let version = node.data_version;
    let buffers =
        planner::read_awkward_buffers(state, source_of(&node)?, version, &form_keys).await?;
    check_bytes(state, buffers.iter().map(|(_, b)| b.len()).sum())?;
    let body = encode::zip(buffers).await?;
    Ok(respond::send(
        &req.headers,
        Payload {
            etag: Some(etag_of(&[&body])),
            body,
            media_type: negotiate::ZIP.to_string(),
            filename: None,
            typesize: None,
        },
    )
    .await)
}

pub async fn awkward_full(
    state: &AppState,
    req: &Request,
    path: &[String],
) -> Result<Response, ApiError> {
    let node = state.node_for(req, path).await?;
    awkward_node(&node, "/awkward/full")?;
    let Some(Structure::Awkward(s)) = &node.structure else {
        return Err(wrong_family(&node, "/awkward/full", "awkward"));
    };
    let media = negotiate::choose(
        node.family,
        &node.spec_names(),
        req.params.get("format"),
        req.accept(),
    )?;
    let version = node.data_version;
    let buffers = planner::read_awkward_buffers(state, source_of(&node)?, version, &[]).await?;
    check_bytes(state, buffers.iter().map(|(_, b)| b.len()).sum())?;
    let body = match media {
        negotiate::ZIP => encode::zip(buffers).await?,
        negotiate::JSON => {
            let (form, length) = (s.form.clone(), s.length);
            encode::on_blocking_pool(move || {
                let v = crate::awkward::to_json(&form, length, &buffers)?;
                serde_json::to_vec(&v)
                    .map(Bytes::from)
                    .map_err(|e| ApiError::internal(e.to_string()))
            })
            .await?
        }
        other => {
            return Err(ApiError::not_acceptable(format!(
                "awkward arrays are served as application/zip or application/json here; {other} is not implemented"
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

pub async fn ragged_full(
    state: &AppState,
    req: &Request,
    path: &[String],
) -> Result<Response, ApiError> {
    let node = state.node_for(req, path).await?;
    if node.family != StructureFamily::Ragged {
        return Err(wrong_family(&node, "/ragged/full", "ragged"));
    }
    let media = negotiate::choose(
        node.family,
        &node.spec_names(),
        req.params.get("format"),
        req.accept(),
    )?;
    let (offsets, values) =
        planner::read_ragged(state, source_of(&node)?, node.data_version).await?;
    let ragged = crate::awkward::Ragged { offsets, values };
    let ragged = match req.params.get("slice") {
        None | Some("") => ragged,
        Some(s) => ragged.slice(&SliceSpec::from_str(s)?)?,
    };
    check_bytes(
        state,
        ragged.values.bytes.len() + ragged.offsets.iter().map(|o| o.len() * 8).sum::<usize>(),
    )?;
    let body = match media {
        negotiate::JSON => {
            encode::on_blocking_pool(move || {
                serde_json::to_vec(&ragged.to_json()?)
                    .map(Bytes::from)
                    .map_err(|e| ApiError::internal(e.to_string()))
            })
            .await?
        }
        negotiate::ZIP => {
            let (form, buffers, length) = ragged.to_buffers()?;
            let mut entries: Vec<(String, Bytes)> = buffers
                .into_iter()
                .map(|(n, b)| (n, Bytes::from(b)))
                .collect();
            entries.push((
                "length".into(),
                Bytes::copy_from_slice(&(length as u64).to_be_bytes()),
            ));
            let form_json = serde_json::to_string(&Value::String(form.to_string()))
                .map_err(|e| ApiError::internal(e.to_string()))?;
            entries.push(("form".into(), Bytes::from(form_json)));
            encode::zip(entries).await?
        }
        other => {
            return Err(ApiError::not_acceptable(format!(
                "ragged arrays are served as application/json or application/zip; {other} is not implemented"
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
