//! Shared state of an API node: the configuration and the seams (catalog, chunk cache,
//! dispatcher) as trait objects, chosen by configuration.

use std::sync::Arc;

use tessera_common::adapters::table_column;
use tessera_common::structure::{Structure, StructureFamily};

use crate::cache::{ChunkCache, EncodedCache};
use crate::catalog::{Catalog, Node};
use crate::config::Config;
use crate::dispatch::Dispatcher;
use crate::error::ApiError;

/// Everything handlers share.
pub struct AppState {
    pub config: Config,
    pub catalog: Arc<dyn Catalog>,
    pub cache: Arc<ChunkCache>,
    pub dispatcher: Arc<dyn Dispatcher>,
    /// Encoded responses of this node, by ETag.
    pub encoded: EncodedCache,
    /// Limits on requests and bytes in flight.
    pub admission: crate::admission::Admission,
    /// Where written data goes; `None` for a read-only tree.
    pub storage: Option<Arc<crate::storage::Storage>>,
}

impl AppState {
    /// The node at `path`; a table's column is resolved as a 1-D array child of the table.
    pub async fn node(&self, path: &[String]) -> Result<Arc<Node>, ApiError> {
        if let Some(n) = self.catalog.get(path).await? {
            if let Some(e) = crate::directory::unreadable_error(n.family, &n.specs, &n.metadata) {
                return Err(e);
            }
            return Ok(n);
        }
        let Some((column, parent)) = path.split_last() else {
            return Err(ApiError::no_such_entry(path));
        };
        let Some(table) = self.catalog.get(parent).await? else {
            return Err(ApiError::no_such_entry(path));
        };
        let (Some(Structure::Table(ts)), Some(source)) = (&table.structure, &table.source) else {
            return Err(ApiError::no_such_entry(path));
        };
        if !ts.columns.contains(column) {
            return Err(ApiError::no_such_entry(path));
        }
        let structure = self
            .dispatcher
            .column_structure(source, ts.npartitions, column)
            .await?
            .ok_or_else(|| ApiError::no_such_entry(path))?;
        let column_source = table_column::column_source(source, column, &structure.data_type);
        Ok(Arc::new(Node {
            path: path.to_vec(),
            family: StructureFamily::Array,
            metadata: Default::default(),
            specs: Vec::new(),
            structure: Some(Structure::Array(structure)),
            source: Some(column_source),
            data_version: table.data_version,
            inline_contents: false,
            access_tags: table.access_tags.clone(),
            child_count: None,
        }))
    }
}
