//! A catalog that measures another: each operation is timed into
//! `tessera_catalog_query_seconds{op}` and traced as a span of its own. Every node's catalog
//! is wrapped in it, whatever the backend. (The pool's use is read when metrics are scraped.)

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use serde_json::Value;
use tessera_common::adapters::DataSource;
use tracing::Instrument;

use super::query::Filter;
use super::{
    Catalog, DataCommit, DataLock, DistinctRequest, NewNode, Node, PoolStatus, Revision,
    SearchPage, SearchRequest, Updater,
};
use crate::error::ApiError;
use crate::metrics;

/// `inner`, measured.
pub struct Metered(pub Arc<dyn Catalog>);

impl Metered {
    /// Runs `op`'s future inside its span and times it.
    async fn timed<T>(&self, op: &'static str, f: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let out = f
            .instrument(tracing::info_span!(
                "catalog",
                otel.name = op,
                otel.kind = "client"
            ))
            .await;
        metrics::CATALOG_SECONDS
            .with_label_values(&[op])
            .observe(started.elapsed().as_secs_f64());
        out
    }
}

#[async_trait]
impl Catalog for Metered {
    async fn get(&self, path: &[String]) -> Result<Option<Arc<Node>>, ApiError> {
        self.timed("get", self.0.get(path)).await
    }

    fn counts_children_under_filters(&self) -> bool {
        self.0.counts_children_under_filters()
    }

    async fn search(&self, parent: &[String], req: &SearchRequest) -> Result<SearchPage, ApiError> {
        self.timed("search", self.0.search(parent, req)).await
    }

    async fn distinct(
        &self,
        parent: &[String],
        filters: &[Filter],
        req: &DistinctRequest,
    ) -> Result<Value, ApiError> {
        self.timed("distinct", self.0.distinct(parent, filters, req))
            .await
    }

    async fn create(&self, parent: &[String], node: NewNode) -> Result<Arc<Node>, ApiError> {
        self.timed("create", self.0.create(parent, node)).await
    }

    async fn replace_all(&self, parent: &[String], nodes: Vec<NewNode>) -> Result<usize, ApiError> {
        self.timed("replace_all", self.0.replace_all(parent, nodes))
            .await
    }

    async fn update_metadata(
        &self,
        path: &[String],
        update: Updater,
        drop_revision: bool,
    ) -> Result<Arc<Node>, ApiError> {
        self.timed(
            "update_metadata",
            self.0.update_metadata(path, update, drop_revision),
        )
        .await
    }

    async fn revisions(
        &self,
        path: &[String],
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Revision>, usize), ApiError> {
        self.timed("revisions", self.0.revisions(path, offset, limit))
            .await
    }

    async fn delete_revision(&self, path: &[String], number: i64) -> Result<(), ApiError> {
        self.timed("delete_revision", self.0.delete_revision(path, number))
            .await
    }

    async fn delete(
        &self,
        path: &[String],
        recursive: bool,
        external_only: bool,
    ) -> Result<Vec<DataSource>, ApiError> {
        self.timed("delete", self.0.delete(path, recursive, external_only))
            .await
    }

    async fn data_uris(&self, prefix: &str) -> Result<Vec<String>, ApiError> {
        self.timed("data_uris", self.0.data_uris(prefix)).await
    }

    async fn commit_data(
        &self,
        path: &[String],
        commit: DataCommit,
    ) -> Result<Arc<Node>, ApiError> {
        self.timed("commit_data", self.0.commit_data(path, commit))
            .await
    }

    async fn lock_data(&self, path: &[String]) -> Result<DataLock, ApiError> {
        self.timed("lock_data", self.0.lock_data(path)).await
    }

    async fn try_lock_data(&self, path: &[String]) -> Result<Option<DataLock>, ApiError> {
        self.0.try_lock_data(path).await
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        self.0.pool_status()
    }
}
