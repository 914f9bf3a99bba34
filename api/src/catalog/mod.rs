//! The catalog: the tree of nodes (keys, families, metadata, specs, structures, data sources,
//! data versions) and search over it. `Catalog` is the seam: the demo and tests use the
//! in-memory [`memory::MemoryCatalog`]; SQLite (embedded) and PostgreSQL (cluster) implement
//! the same trait.

pub mod memory;
pub mod migrate;
pub mod postgres;
pub mod query;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tessera_common::adapters::DataSource;
use tessera_common::structure::{Spec, Structure, StructureFamily};

use crate::error::ApiError;
use query::Filter;

/// One node as the catalog knows it.
#[derive(Clone, Debug)]
pub struct Node {
    /// Full path from the root; empty for the root.
    pub path: Vec<String>,
    pub family: StructureFamily,
    pub metadata: Map<String, Value>,
    pub specs: Vec<Spec>,
    /// `None` for containers.
    pub structure: Option<Structure>,
    /// Where the data lives; `None` for containers.
    pub source: Option<DataSource>,
    /// Changes on every write, so chunk cache keys and ETags never go stale.
    pub data_version: u64,
    /// Containers only: whether metadata responses inline the children.
    pub inline_contents: bool,
    pub access_tags: Vec<String>,
    /// Containers: the number of children, when the catalog keeps it (saves a count query
    /// per container in a listing).
    pub child_count: Option<u64>,
}

impl Node {
    /// The last path segment ("" for the root).
    pub fn key(&self) -> &str {
        self.path.last().map(String::as_str).unwrap_or("")
    }

    /// Spec names, for filtering.
    pub fn spec_names(&self) -> Vec<String> {
        self.specs.iter().map(|s| s.name.clone()).collect()
    }
}

/// How to order search results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SortKey {
    /// The container's natural order (`_` or empty).
    Default { descending: bool },
    /// A dotted metadata key.
    Metadata { key: String, descending: bool },
}

/// A search inside one container (direct children, or all descendants for search-deep).
#[derive(Clone, Debug, Default)]
pub struct SearchRequest {
    pub filters: Vec<Filter>,
    pub sort: Vec<SortKey>,
    pub offset: usize,
    pub limit: usize,
    /// `Some(depth)` searches descendants down to `depth` levels instead of children.
    pub deep: Option<usize>,
    /// Keyset pagination: the [`SearchPage::cursor`] of the previous page. A catalog that can
    /// resume after it (default order only) does so instead of skipping `offset` rows; one
    /// that cannot uses `offset`, which always describes the same page.
    pub after: Option<i64>,
}

/// One page of results and the total count of matches.
#[derive(Clone, Debug)]
pub struct SearchPage {
    pub nodes: Vec<Arc<Node>>,
    /// Exact, or the planner's estimate for filtered searches with very many matches.
    pub count: usize,
    /// Where the next page starts, for catalogs with keyset pagination.
    pub cursor: Option<i64>,
}

impl SearchRequest {
    /// Whether the results are in the container's natural (id) order, where keyset pagination
    /// applies; `Some(descending)` if so.
    pub fn natural_order(&self) -> Option<bool> {
        match self.sort.as_slice() {
            [] => Some(false),
            [SortKey::Default { descending }] => Some(*descending),
            _ => None,
        }
    }
}

/// Which distinct values to gather.
#[derive(Clone, Debug, Default)]
pub struct DistinctRequest {
    pub metadata: Vec<String>,
    pub structure_families: bool,
    pub specs: bool,
    pub counts: bool,
}

/// Counts values in first-seen order, then orders by count, most frequent first (stable).
fn tally(values: impl Iterator<Item = Value>, counts: bool) -> Value {
    let mut seen: Vec<(Value, i64)> = Vec::new();
    for v in values {
        match seen.iter_mut().find(|(x, _)| *x == v) {
            Some((_, n)) => *n += 1,
            None => seen.push((v, 1)),
        }
    }
    seen.sort_by_key(|s| std::cmp::Reverse(s.1));
    tally_rows(seen, counts)
}

/// The `/distinct` list for (value, count) groups already in order.
pub(crate) fn tally_rows(groups: Vec<(Value, i64)>, counts: bool) -> Value {
    Value::Array(
        groups
            .into_iter()
            .map(|(value, n)| {
                serde_json::json!({"value": value, "count": if counts { Value::from(n) } else { Value::Null }})
            })
            .collect(),
    )
}

/// ` ORDER BY ...` for a sort, with `metadata(key, "ASC" | "DESC")` giving the SQL of one
/// metadata key. Tiled's descending order is the exact reverse of the ascending one (ties
/// reversed too), so the tie-breaking id follows the last key's direction.
pub(crate) fn order_by_sql(sort: &[SortKey], metadata: impl Fn(&str, &str) -> String) -> String {
    let dir = |descending: bool| if descending { "DESC" } else { "ASC" };
    let mut parts = Vec::new();
    let mut last_desc = false;
    for key in sort {
        match key {
            SortKey::Default { descending } => {
                last_desc = *descending;
                parts.push(format!("n.id {}", dir(*descending)));
            }
            SortKey::Metadata { key, descending } => {
                last_desc = *descending;
                parts.push(metadata(key, dir(*descending)));
            }
        }
    }
    if !matches!(sort.last(), Some(SortKey::Default { .. })) {
        parts.push(format!("n.id {}", dir(last_desc)));
    }
    format!(" ORDER BY {}", parts.join(", "))
}

/// A node from its stored parts, as every SQL catalog reads them.
#[allow(clippy::too_many_arguments)] // one argument per stored column
pub(crate) fn node_from_parts(
    path: Vec<String>,
    family: StructureFamily,
    metadata: Map<String, Value>,
    specs: Vec<Spec>,
    structure: Option<Value>,
    source: Option<DataSource>,
    data_version: u64,
    access_tags: Vec<String>,
    child_count: u64,
) -> Node {
    let structure = structure.and_then(|v| Structure::from_json(family, v));
    let inline_contents = specs.iter().any(|s| s.name == "xarray_dataset");
    Node {
        path,
        family,
        metadata,
        specs,
        structure,
        source,
        data_version,
        inline_contents,
        access_tags,
        child_count: (family == StructureFamily::Container).then_some(child_count),
    }
}

/// The `/distinct` answer for the matching nodes, whichever catalog found them.
pub fn distinct_of(nodes: &[Arc<Node>], req: &DistinctRequest) -> Value {
    let mut metadata = Map::new();
    for key in &req.metadata {
        let values = nodes
            .iter()
            .filter_map(|n| query::lookup(&n.metadata, key).cloned());
        metadata.insert(key.clone(), tally(values, req.counts));
    }
    let families = req.structure_families.then(|| {
        tally(
            nodes.iter().map(|n| Value::from(n.family.as_str())),
            req.counts,
        )
    });
    let specs = req.specs.then(|| {
        tally(
            nodes
                .iter()
                .map(|n| Value::Array(n.spec_names().into_iter().map(Value::from).collect())),
            req.counts,
        )
    });
    serde_json::json!({
        "metadata": if req.metadata.is_empty() { Value::Null } else { Value::Object(metadata) },
        "structure_families": families.unwrap_or(Value::Null),
        "specs": specs.unwrap_or(Value::Null),
    })
}

/// The node store every API node shares.
#[async_trait]
pub trait Catalog: Send + Sync {
    /// The node at `path`, if any.
    async fn get(&self, path: &[String]) -> Result<Option<Arc<Node>>, ApiError>;

    /// A page of the children (or descendants) of the container at `parent` that match.
    async fn search(&self, parent: &[String], req: &SearchRequest) -> Result<SearchPage, ApiError>;

    /// Distinct metadata values, families and specs among the matching children.
    async fn distinct(
        &self,
        parent: &[String],
        filters: &[Filter],
        req: &DistinctRequest,
    ) -> Result<Value, ApiError>;
}
