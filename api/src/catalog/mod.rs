//! The catalog: the tree of nodes (keys, families, metadata, specs, structures, data sources,
//! data versions) and search over it. `Catalog` is the seam: the demo and tests use the
//! in-memory [`memory::MemoryCatalog`]; SQLite (embedded) and PostgreSQL (cluster) implement
//! the same trait.

pub mod memory;
pub mod migrate;
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
}

/// One page of results and the total count of matches.
#[derive(Clone, Debug)]
pub struct SearchPage {
    pub nodes: Vec<Arc<Node>>,
    pub count: usize,
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
    let mut seen: Vec<(Value, usize)> = Vec::new();
    for v in values {
        match seen.iter_mut().find(|(x, _)| *x == v) {
            Some((_, n)) => *n += 1,
            None => seen.push((v, 1)),
        }
    }
    seen.sort_by_key(|s| std::cmp::Reverse(s.1));
    Value::Array(
        seen.into_iter()
            .map(|(value, n)| {
                serde_json::json!({"value": value, "count": if counts { Value::from(n) } else { Value::Null }})
            })
            .collect(),
    )
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
