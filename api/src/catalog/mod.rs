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
