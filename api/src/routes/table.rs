//! Table routes: `/table/partition` (one partition, optionally some columns) and
//! `/table/full` (all partitions concatenated), GET with `column=` or POST with a JSON list.

use arrow_array::RecordBatch;
use axum::http::Method;
use axum::response::Response;

use super::Request;
use crate::catalog::Node;
use crate::encode;
use crate::error::ApiError;
use crate::negotiate;
use crate::planner::{self, read_partition};
use crate::respond::{self, etag_of};
use crate::state::AppState;
use tessera_common::jobs::{SourceId, TableExport, Work};
use tessera_common::serializers;
use tessera_common::structure::{Structure, TableStructure};

fn table<'a>(node: &'a Node, route: &str) -> Result<&'a TableStructure, ApiError> {
    match &node.structure {
        Some(Structure::Table(t)) => Ok(t),
        _ => Err(ApiError::not_found(format!(
            "No such entry. '{}' is a {}; {route} serves table.",
            node.path.join("/"),
            node.family.as_str()
        ))),
    }
}

/// The requested columns: `column=` (or `field=`), or a JSON list body on POST.
fn columns(req: &Request, structure: &TableStructure) -> Result<Option<Vec<String>>, ApiError> {
    let column = req.params.all("column");
    // `field` is the spelling Tiled's documentation gives for both routes (Tiled 0.2.20's
    // /table/full ignores it and answers every column; tessera follows the documentation).
    let field = req.params.all("field");
    if !column.is_empty() && !field.is_empty() {
        return Err(ApiError::bad_request(
            "give columns with 'column' or the deprecated 'field', not both",
        ));
    }
    let mut wanted: Vec<String> = column
        .iter()
        .chain(field.iter())
        .map(|s| s.to_string())
        .collect();
    if req.method == Method::POST && !req.body.is_empty() {
        let body: Vec<String> = serde_json::from_slice(&req.body).map_err(|e| {
            ApiError::bad_request(format!(
                "the request body must be a JSON list of column names: {e}"
            ))
        })?;
        wanted.extend(body);
    }
    if wanted.is_empty() {
        return Ok(None);
    }
    if let Some(bad) = wanted.iter().find(|c| !structure.columns.contains(c)) {
        return Err(ApiError::bad_request(format!(
            "No such field {bad:?}. The columns are {:?}.",
            structure.columns
        )));
    }
    Ok(Some(wanted))
}

/// Keeps the requested columns (plus index columns, which Arrow output carries and text
/// encoders drop).
fn project(
    batch: RecordBatch,
    columns: &Option<Vec<String>>,
    index: &[String],
) -> Result<RecordBatch, ApiError> {
    serializers::table::project(batch, columns.as_deref(), index)
        .map_err(|e| ApiError::internal(e.to_string()))
}

async fn send(
    state: &AppState,
    req: &Request,
    node: &Node,
    partitions: Vec<usize>,
    cols: Option<Vec<String>>,
) -> Result<Response, ApiError> {
    let media = negotiate::choose(
        node.family,
        &node.spec_names(),
        req.params.get("format"),
        req.accept(),
    )?;
    let source = node
        .source
        .as_ref()
        .ok_or_else(|| ApiError::not_found("this table holds no data"))?;
    let etag = etag_of(&[
        &SourceId::of(source).short(),
        &node.data_version.to_le_bytes(),
        format!("{partitions:?}{cols:?}{:?}", req.accept()).as_bytes(),
        media.as_bytes(),
    ]);
    let header = !negotiate::csv_header_absent(req.params.get("format"), req.accept());
    let produce = async {
        if planner::exports_on_workers(state, media) {
            let work = Work::ExportTable(TableExport {
                partitions: partitions.clone(),
                columns: cols.clone(),
                media: media.to_string(),
                csv_header: header,
                limit: state.config.response_bytesize_limit as u64,
            });
            return planner::job_result(state, source, node.data_version, work).await;
        }
        let index = state.dispatcher.index_columns(source).await?;
        let mut batches = Vec::with_capacity(partitions.len());
        let mut bytes = 0usize;
        // With a column list, only those columns (and the index) are decoded.
        let wanted: Option<Vec<String>> = cols
            .as_ref()
            .map(|c| c.iter().chain(&index).cloned().collect());
        for p in &partitions {
            let batch =
                read_partition(state, source, node.data_version, *p, wanted.as_deref()).await?;
            let b = project(batch, &cols, &index)?;
            let size = b.get_array_memory_size();
            bytes += size;
            if bytes > state.config.response_bytesize_limit {
                return Err(ApiError::bad_request(format!(
                    "Response would exceed {}. Request fewer partitions or columns.",
                    state.config.response_bytesize_limit
                )));
            }
            // The batches and their encoding live at once.
            req.reserve(state, 2 * size as u64, "this table").await?;
            batches.push(b);
        }
        encode::table_with_options(batches, index, media, header).await
    };
    let filename = req.params.get("filename").map(str::to_string);
    respond::cached(&req.headers, &state.encoded, etag, media, filename, produce).await
}

pub async fn partition(
    state: &AppState,
    req: &Request,
    path: &[String],
) -> Result<Response, ApiError> {
    let node = state.node_for(req, path).await?;
    let structure = table(&node, "/table/partition")?;
    let Some(raw) = req.params.get("partition") else {
        return Err(ApiError::invalid_param(
            "partition",
            "missing",
            None,
            "Field required",
        ));
    };
    if raw.starts_with('-') && raw[1..].parse::<u64>().is_ok() {
        return Err(ApiError::bad_request(format!(
            "Partition out of range: partitions are numbered from 0, got {raw}"
        )));
    }
    let p: usize = raw.parse().map_err(|_| {
        ApiError::invalid_param(
            "partition",
            "int_parsing",
            Some(raw),
            format!("partition must be a non-negative integer, got {raw:?}"),
        )
    })?;
    if p >= structure.npartitions {
        return Err(ApiError::bad_request(format!(
            "Partition out of range: this table has {} partition(s), numbered 0 to {}",
            structure.npartitions,
            structure.npartitions.saturating_sub(1)
        )));
    }
    let cols = columns(req, structure)?;
    send(state, req, &node, vec![p], cols).await
}

pub async fn full(state: &AppState, req: &Request, path: &[String]) -> Result<Response, ApiError> {
    let node = state.node_for(req, path).await?;
    if node.family == tessera_common::structure::StructureFamily::Container {
        // `node/full` and `table/full` of a container behave like `container/full`.
        return super::container::full(state, req, path).await;
    }
    let structure = table(&node, "/table/full")?;
    let cols = columns(req, structure)?;
    crate::planner::check_budget(
        state,
        "this table",
        structure.npartitions as u128,
        0,
        "read it partition by partition with /table/partition",
    )?;
    send(
        state,
        req,
        &node,
        (0..structure.npartitions).collect(),
        cols,
    )
    .await
}
