//! The catalog: the tree of nodes (keys, families, metadata, specs, structures, data sources,
//! data versions) and search over it. `Catalog` is the seam: the demo and tests use the
//! in-memory [`memory::MemoryCatalog`]; SQLite (embedded) and PostgreSQL (cluster) implement
//! the same trait.

pub mod memory;
pub mod metered;
pub mod migrate;
pub mod postgres;
pub mod query;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tessera_common::adapters::{self, DataSource};
use tessera_common::structure::{Spec, Structure, StructureFamily};

use crate::error::ApiError;
use query::Filter;

/// A catalog statement stopped at its deadline: the search asked too much of the catalog,
/// or the catalog is overloaded.
pub fn statement_timed_out(timeout: Option<std::time::Duration>) -> ApiError {
    crate::metrics::REFUSED
        .with_label_values(&["statement_timeout"])
        .inc();
    ApiError::unavailable(
        format!(
            "the catalog query took longer than {} (statement_timeout) and was stopped: \
             narrow the search (more filters, a smaller page) or retry later",
            timeout.map_or("its deadline".to_string(), |t| format!(
                "{} s",
                t.as_secs_f64()
            ))
        ),
        5,
    )
}

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
    /// Count the children of each node of the page under these filters (the caller's access
    /// filter) into its `child_count`, in the page's own query; `None`: the count the
    /// catalog keeps. Only given to catalogs whose
    /// [`counts_children_under_filters`](Catalog::counts_children_under_filters) is true.
    pub child_filters: Option<Vec<Filter>>,
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
    // Data is read with the structure the node declares (what it was written or registered
    // with), so readers need no metadata read and a changed structure opens a new reader.
    let source = match (source, &structure) {
        (Some(src), Some(Structure::Array(s))) => Some(adapters::with_structure(&src, s)),
        (Some(src), Some(Structure::Table(s))) => Some(adapters::with_structure(&src, s)),
        (Some(src), Some(Structure::Sparse(s))) => Some(adapters::with_structure(&src, s)),
        (src, _) => src,
    };
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

/// The `/distinct` answer for nodes already in memory (the in-memory catalog; the SQL catalogs
/// group in SQL and must agree with it).
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

/// A node to create inside a container.
#[derive(Clone, Debug)]
pub struct NewNode {
    pub key: String,
    pub family: StructureFamily,
    pub metadata: Map<String, Value>,
    pub specs: Vec<Spec>,
    pub access_tags: Vec<String>,
    /// Everything but containers: the structure and where the data lives.
    pub data: Option<(Structure, DataSource)>,
    /// A registered file's inner tree (an HDF5 file's groups and datasets), created in the
    /// same transaction as the node itself.
    pub children: Vec<tessera_common::node::TreeNode>,
}

/// A node's new metadata, specs and access tags (all three, as they will be stored).
#[derive(Clone, Debug)]
pub struct MetadataUpdate {
    pub metadata: Map<String, Value>,
    pub specs: Vec<Spec>,
    pub access_tags: Vec<String>,
}

/// Computes the update from the node as it is inside the writing transaction, so concurrent
/// patches apply one after the other instead of overwriting each other.
pub type Updater = Box<dyn FnOnce(&Node) -> Result<MetadataUpdate, ApiError> + Send>;

/// A node's metadata and specs before one of its updates.
#[derive(Clone, Debug)]
pub struct Revision {
    pub number: i64,
    pub metadata: Map<String, Value>,
    pub specs: Vec<Spec>,
    pub access_tags: Vec<String>,
    /// RFC 3339.
    pub time_updated: String,
}

/// A completed data write, recorded in one transaction that bumps the data version.
#[derive(Clone, Debug, Default)]
pub struct DataCommit {
    /// The new structure, when the write changed it (an array grown by a patch).
    pub structure: Option<Structure>,
    /// The new location of the data, when the write went to a fresh one.
    pub data_uri: Option<String>,
}

/// 405 for creating below a node that is not a container.
pub(crate) fn not_a_container(path: &[String], family: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "'{}' is a {family}, not a container: nodes cannot be created inside it",
            path.join("/")
        ),
    )
}

/// 409 for a key that is already taken (the detail is the path, as Tiled gives it).
pub fn key_exists(path: &[String]) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::CONFLICT,
        format!("/{}", path.join("/")),
    )
}

/// 409 for deleting a container that still has children without `recursive`.
pub(crate) fn not_empty(path: &[String], children: i64) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::CONFLICT,
        format!(
            "Cannot delete a node that is not empty: '{}' has {children} children. \
             Use recursive=true to delete it and everything below it.",
            path.join("/")
        ),
    )
}

/// 409 for deleting managed data while the client asked for external data only.
pub(crate) fn internally_managed(path: &[String]) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::CONFLICT,
        format!(
            "Some items in this tree are internally managed: deleting '{}' would delete their \
             data. Pass external_only=False to delete them.",
            path.join("/")
        ),
    )
}

/// 405 for deleting the root.
pub(crate) fn cannot_delete_root() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "the root container cannot be deleted",
    )
}

/// The stored name of a data source's management mode.
pub(crate) fn management_name(source: &DataSource) -> String {
    serde_json::to_value(source.management)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "immutable".into())
}

/// The answer of catalogs that cannot be written (the demo tree).
pub fn read_only() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "this catalog is read-only: serve a writable one (tessera serve catalog --write DIR)",
    )
}

/// The node store every API node shares.
#[async_trait]
pub trait Catalog: Send + Sync {
    /// The node at `path`, if any.
    async fn get(&self, path: &[String]) -> Result<Option<Arc<Node>>, ApiError>;

    /// A page of the children (or descendants) of the container at `parent` that match.
    /// Whether [`SearchRequest::child_filters`] is honoured.
    fn counts_children_under_filters(&self) -> bool {
        false
    }

    async fn search(&self, parent: &[String], req: &SearchRequest) -> Result<SearchPage, ApiError>;

    /// Distinct metadata values, families and specs among the matching children.
    async fn distinct(
        &self,
        parent: &[String],
        filters: &[Filter],
        req: &DistinctRequest,
    ) -> Result<Value, ApiError>;

    /// Creates a node inside the container at `parent` (409 if the key is taken).
    async fn create(&self, parent: &[String], node: NewNode) -> Result<Arc<Node>, ApiError> {
        let _ = (parent, node);
        Err(read_only())
    }

    /// Creates several nodes inside the container at `parent`, each replacing the node (and
    /// subtree) already under its key; returns how many were written. Catalogs that can do it
    /// in one transaction do, so a re-indexed file is never missing from the tree; the others
    /// delete, then create, one node at a time.
    async fn replace_all(&self, parent: &[String], nodes: Vec<NewNode>) -> Result<usize, ApiError> {
        let mut written = 0;
        for node in nodes {
            let mut path = parent.to_vec();
            path.push(node.key.clone());
            match self.delete(&path, true, false).await {
                Ok(_) => {}
                Err(e) if e.status == axum::http::StatusCode::NOT_FOUND => {}
                Err(e) => return Err(e),
            }
            self.create(parent, node).await?;
            written += 1;
        }
        Ok(written)
    }

    /// Replaces metadata, specs and access tags, keeping the old ones as a revision unless
    /// `drop_revision`.
    async fn update_metadata(
        &self,
        path: &[String],
        update: Updater,
        drop_revision: bool,
    ) -> Result<Arc<Node>, ApiError> {
        let _ = (path, update, drop_revision);
        Err(read_only())
    }

    /// A page of a node's revisions (oldest first) and their total count.
    async fn revisions(
        &self,
        path: &[String],
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Revision>, usize), ApiError> {
        let _ = (path, offset, limit);
        Err(read_only())
    }

    /// Deletes one revision (404 if there is none with that number).
    async fn delete_revision(&self, path: &[String], number: i64) -> Result<(), ApiError> {
        let _ = (path, number);
        Err(read_only())
    }

    /// Deletes a node (and, with `recursive`, everything below it; 409 for a non-empty
    /// container without it), in one transaction. With `external_only`, refuses (409) when
    /// the nodes hold data tessera manages. Returns the data sources removed, so their
    /// writable data can be deleted once the catalog no longer points at it.
    async fn delete(
        &self,
        path: &[String],
        recursive: bool,
        external_only: bool,
    ) -> Result<Vec<DataSource>, ApiError> {
        let _ = (path, recursive, external_only);
        Err(read_only())
    }

    /// Every data location (asset URI) that begins with `prefix`: what the storage sweeper
    /// must keep.
    async fn data_uris(&self, prefix: &str) -> Result<Vec<String>, ApiError> {
        let _ = prefix;
        Err(read_only())
    }

    /// Makes a completed data write visible: records `commit` and bumps the data version.
    async fn commit_data(
        &self,
        path: &[String],
        commit: DataCommit,
    ) -> Result<Arc<Node>, ApiError> {
        let _ = (path, commit);
        Err(read_only())
    }

    /// Held while the data of the node at `path` is read, changed and written back (a table
    /// append); released when dropped. Holders of one path wait for each other on every
    /// node that shares the catalog. This default serialises within the process: right for
    /// catalogs only this process writes (memory, SQLite).
    async fn lock_data(&self, path: &[String]) -> Result<DataLock, ApiError> {
        Ok(Box::new(process_lock(path).lock_owned().await))
    }

    /// The connection pool's use, for catalogs that pool connections.
    fn pool_status(&self) -> Option<PoolStatus> {
        None
    }

    /// [`Catalog::lock_data`] if no one holds it now, else `None` (for work one node at a
    /// time does, such as sweeping the storage).
    async fn try_lock_data(&self, path: &[String]) -> Result<Option<DataLock>, ApiError> {
        Ok(process_lock(path)
            .try_lock_owned()
            .ok()
            .map(|g| Box::new(g) as DataLock))
    }
}

/// How a catalog's connection pool is used.
#[derive(Clone, Copy, Debug)]
pub struct PoolStatus {
    pub in_use: usize,
    pub idle: usize,
    pub max: usize,
}

/// The in-process lock of the data at `path`.
fn process_lock(path: &[String]) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: std::sync::LazyLock<moka::sync::Cache<String, Arc<tokio::sync::Mutex<()>>>> =
        std::sync::LazyLock::new(|| moka::sync::Cache::new(10_000));
    LOCKS.get_with(path.join("/"), || Arc::new(tokio::sync::Mutex::new(())))
}

/// A lock on a node's data, released on drop (see [`Catalog::lock_data`]).
pub type DataLock = Box<dyn Send + Sync>;
