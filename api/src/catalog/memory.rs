//! A catalog held in memory, loaded once from a static tree (the demo). Search filters run
//! over the children in insertion order; fine for trees of thousands of nodes, which is what
//! it is for. Large catalogs live in SQLite or PostgreSQL.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use serde_json::Value;
use tessera_common::adapters::DataSource;
use tessera_common::node::TreeNode;
use tessera_common::structure::StructureFamily;

use super::query::{Candidate, Filter, compare, lookup};
use super::{Catalog, DistinctRequest, Node, SearchPage, SearchRequest, SortKey};
use crate::error::ApiError;

/// Computes the current data version and data source of a node that changes over time.
pub type LiveSource = Box<dyn Fn(std::time::Duration) -> (u64, DataSource) + Send + Sync>;

/// An immutable tree in memory, with optional live nodes (the demo's `dynamic`).
pub struct MemoryCatalog {
    nodes: HashMap<Vec<String>, Arc<Node>>,
    children: HashMap<Vec<String>, Vec<String>>,
    live: HashMap<Vec<String>, LiveSource>,
    started: Instant,
}

impl MemoryCatalog {
    /// Loads `root` and everything below it.
    pub fn from_tree(root: TreeNode) -> Self {
        let mut cat = MemoryCatalog {
            nodes: HashMap::new(),
            children: HashMap::new(),
            live: HashMap::new(),
            started: Instant::now(),
        };
        cat.insert(Vec::new(), root);
        cat
    }

    /// Makes the node at `path` compute its data source from the time since start.
    pub fn set_live(&mut self, path: &[&str], source: LiveSource) {
        self.live
            .insert(path.iter().map(|s| s.to_string()).collect(), source);
    }

    fn insert(&mut self, path: Vec<String>, t: TreeNode) {
        let keys: Vec<String> = t.children.iter().map(|c| c.key.clone()).collect();
        let child_count = (t.family == StructureFamily::Container).then_some(keys.len() as u64);
        self.children.insert(path.clone(), keys);
        for child in t.children {
            let mut p = path.clone();
            p.push(child.key.clone());
            self.insert(p, child);
        }
        let node = Node {
            path: path.clone(),
            family: t.family,
            metadata: t.metadata,
            specs: t.specs,
            structure: t.structure,
            source: t.source,
            data_version: 0,
            inline_contents: t.inline_contents,
            access_tags: Vec::new(),
            child_count,
        };
        self.nodes.insert(path, Arc::new(node));
    }

    fn node(&self, path: &[String]) -> Option<Arc<Node>> {
        let node = self.nodes.get(path)?;
        match self.live.get(path) {
            Some(live) => {
                let (version, source) = live(self.started.elapsed());
                let mut n = Node::clone(node);
                n.data_version = version;
                n.source = Some(source);
                Some(Arc::new(n))
            }
            None => Some(node.clone()),
        }
    }

    /// Children (or descendants to `depth`, depth-first in insertion order) of `parent`.
    fn candidates(&self, parent: &[String], deep: Option<usize>) -> Vec<Arc<Node>> {
        let mut out = Vec::new();
        let depth = deep.unwrap_or(1);
        self.walk(parent, depth, &mut out);
        out
    }

    fn walk(&self, parent: &[String], depth: usize, out: &mut Vec<Arc<Node>>) {
        if depth == 0 {
            return;
        }
        for key in self.children.get(parent).into_iter().flatten() {
            let mut p = parent.to_vec();
            p.push(key.clone());
            if let Some(n) = self.node(&p) {
                out.push(n);
            }
            self.walk(&p, depth - 1, out);
        }
    }

    fn matching(
        &self,
        parent: &[String],
        filters: &[Filter],
        deep: Option<usize>,
    ) -> Result<Vec<Arc<Node>>, ApiError> {
        match self.nodes.get(parent) {
            Some(n) if n.family == StructureFamily::Container => {}
            Some(n) => {
                return Err(ApiError::not_found(format!(
                    "'{}' is a {}, not a container: it has no children to search",
                    parent.join("/"),
                    n.family.as_str()
                )));
            }
            None => return Err(ApiError::no_such_entry(parent)),
        }
        Ok(self
            .candidates(parent, deep)
            .into_iter()
            .filter(|n| {
                let specs = n.spec_names();
                let c = Candidate {
                    key: n.key(),
                    metadata: &n.metadata,
                    family: n.family,
                    specs: &specs,
                    access_tags: &n.access_tags,
                };
                filters.iter().all(|f| f.matches(&c))
            })
            .collect())
    }
}

fn sort_nodes(nodes: &mut [Arc<Node>], sort: &[SortKey]) {
    // Later keys are tie-breakers, so apply them first (each sort is stable); descending
    // reverses the ascending order, as Tiled's in-memory tree does.
    for key in sort.iter().rev() {
        match key {
            SortKey::Default { descending } => {
                if *descending {
                    nodes.reverse();
                }
            }
            SortKey::Metadata { key, descending } => {
                nodes.sort_by(|a, b| {
                    let (va, vb) = (lookup(&a.metadata, key), lookup(&b.metadata, key));
                    match (va, vb) {
                        (Some(x), Some(y)) => compare(x, y).unwrap_or(std::cmp::Ordering::Equal),
                        (Some(_), None) => std::cmp::Ordering::Less,
                        (None, Some(_)) => std::cmp::Ordering::Greater,
                        (None, None) => std::cmp::Ordering::Equal,
                    }
                });
                if *descending {
                    nodes.reverse();
                }
            }
        }
    }
}

#[async_trait]
impl Catalog for MemoryCatalog {
    async fn get(&self, path: &[String]) -> Result<Option<Arc<Node>>, ApiError> {
        Ok(self.node(path))
    }

    async fn search(&self, parent: &[String], req: &SearchRequest) -> Result<SearchPage, ApiError> {
        let mut nodes = self.matching(parent, &req.filters, req.deep)?;
        sort_nodes(&mut nodes, &req.sort);
        let count = nodes.len();
        let nodes = nodes.into_iter().skip(req.offset).take(req.limit).collect();
        Ok(SearchPage {
            nodes,
            count,
            cursor: None,
        })
    }

    async fn distinct(
        &self,
        parent: &[String],
        filters: &[Filter],
        req: &DistinctRequest,
    ) -> Result<Value, ApiError> {
        let nodes = self.matching(parent, filters, None)?;
        Ok(super::distinct_of(&nodes, req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_common::adapters::demo;

    fn p(s: &str) -> Vec<String> {
        s.split('/')
            .filter(|x| !x.is_empty())
            .map(String::from)
            .collect()
    }

    fn demo_catalog() -> MemoryCatalog {
        MemoryCatalog::from_tree(demo::tree().unwrap())
    }

    fn keys(page: &SearchPage) -> Vec<&str> {
        page.nodes.iter().map(|n| n.key()).collect()
    }

    fn all() -> SearchRequest {
        SearchRequest {
            limit: 100,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn descending_sort_reverses_ties_like_tiled() {
        let cat = demo_catalog();
        let req = SearchRequest {
            sort: vec![SortKey::Metadata {
                key: "color".into(),
                descending: true,
            }],
            ..all()
        };
        let page = cat.search(&p("tables"), &req).await.unwrap();
        assert_eq!(keys(&page), ["wide_table", "short_table", "long_table"]);
    }

    #[tokio::test]
    async fn paging_counts_all_matches() {
        let cat = demo_catalog();
        let req = SearchRequest {
            offset: 2,
            limit: 3,
            ..all()
        };
        let page = cat.search(&[], &req).await.unwrap();
        assert_eq!(page.count, 8);
        assert_eq!(keys(&page), ["tables", "structured_data", "flat_array"]);
    }

    #[tokio::test]
    async fn deep_search_walks_depth_first() {
        let cat = demo_catalog();
        let req = SearchRequest {
            deep: Some(64),
            limit: 3,
            ..all()
        };
        let page = cat.search(&[], &req).await.unwrap();
        assert_eq!(keys(&page), ["scalars", "pi", "e_arr"]);
        assert!(page.count > 30);
    }

    #[tokio::test]
    async fn search_on_an_array_is_404() {
        let cat = demo_catalog();
        let err = cat.search(&p("flat_array"), &all()).await.unwrap_err();
        assert_eq!(err.status.as_u16(), 404);
    }

    #[tokio::test]
    async fn distinct_counts_first_seen_then_by_frequency() {
        let cat = demo_catalog();
        let req = DistinctRequest {
            metadata: vec!["color".into()],
            counts: true,
            ..Default::default()
        };
        let v = cat.distinct(&p("tables"), &[], &req).await.unwrap();
        assert_eq!(
            v["metadata"]["color"],
            serde_json::json!([{"value": "red", "count": 2}, {"value": "green", "count": 1}])
        );
        assert_eq!(v["specs"], Value::Null);
    }

    #[tokio::test]
    async fn live_nodes_change_version_and_source() {
        let mut cat = demo_catalog();
        cat.set_live(&["dynamic"], Box::new(|_| (7, demo::dynamic_source(7))));
        let n = cat.get(&p("dynamic")).await.unwrap().unwrap();
        assert_eq!(n.data_version, 7);
        assert_eq!(
            n.source.as_ref().unwrap().parameters["fill"],
            Value::from(7)
        );
    }
}
