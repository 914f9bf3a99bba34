//! Shared state of an API node: the configuration and the seams (catalog, chunk cache,
//! dispatcher) as trait objects, chosen by configuration.

use std::sync::Arc;

use tessera_common::adapters::table_column;
use tessera_common::structure::{Structure, StructureFamily};

use crate::auth::policy::Visible;
use crate::auth::scopes::{self, Scopes};
use crate::cache::{ChunkCache, EncodedCache};
use crate::catalog::query::Filter;
use crate::catalog::{Catalog, Node, Updater};
use crate::config::Config;
use crate::dispatch::Dispatcher;
use crate::error::ApiError;
use crate::routes::Request;

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
    /// Readiness: what the node depends on, and whether it is draining.
    pub health: crate::health::Health,
}

impl AppState {
    /// The access policy, when one applies.
    pub fn policy(&self) -> Option<&crate::auth::policy::TagPolicy> {
        self.config.auth.as_ref()?.settings.policy.as_deref()
    }

    /// The node at `path` as `req`'s caller may reach it: under an access policy every
    /// container on the way must be visible to the caller (else 404, as for a missing node),
    /// and the node must give the scopes the route needs (else 403 when the caller may see
    /// it, 404 when not). Checked before anything is read, cached chunks included.
    pub async fn node_for(&self, req: &Request, path: &[String]) -> Result<Arc<Node>, ApiError> {
        let Some(policy) = self.policy() else {
            return self.node(path).await;
        };
        let caller = &req.caller;
        let root = policy.allowed(caller, policy.top_level());
        let hidden = || ApiError::no_such_entry(path);
        let readable = self.visible_tags(req, true, scopes::READ_METADATA);
        let seen = |n: &Node| {
            readable
                .as_ref()
                .is_none_or(|tags| n.access_tags.iter().any(|t| tags.contains(t)))
        };
        for i in 1..path.len() {
            match self.catalog.get(&path[..i]).await? {
                Some(n) if seen(&n) => {}
                _ => return Err(hidden()),
            }
        }
        let node = self.node(path).await?;
        if !path.is_empty() && !seen(&node) {
            return Err(hidden());
        }
        let allowed = if path.is_empty() {
            root
        } else {
            policy.allowed(caller, &node.access_tags)
        };
        // The root is always shown (its listing is what the caller may see, maybe nothing).
        if path.is_empty() && req.need == scopes::READ_METADATA {
            return Ok(node);
        }
        if !allowed.covers(req.need) {
            if allowed.covers(scopes::READ_METADATA) {
                return Err(ApiError::new(
                    axum::http::StatusCode::FORBIDDEN,
                    format!(
                        "Not enough permissions to perform this action on this node. Requires \
                         scopes {}. Principal has scopes {} on this node.",
                        req.need.display(),
                        allowed.display()
                    ),
                ));
            }
            return Err(hidden());
        }
        Ok(node)
    }

    /// [`node_for`](Self::node_for)'s check alone, for routes that reach the node through
    /// the catalog themselves (nothing to do without a policy).
    pub async fn check_access(&self, req: &Request, path: &[String]) -> Result<(), ApiError> {
        if self.policy().is_some() {
            self.node_for(req, path).await?;
        }
        Ok(())
    }

    /// The access tags of a node `req` creates from the asked ones (`None`: none asked):
    /// under a policy, as the policy allows; without one, as asked.
    pub fn new_node_tags(
        &self,
        req: &Request,
        asked: Option<Vec<String>>,
    ) -> Result<Vec<String>, ApiError> {
        match self.policy() {
            Some(policy) => policy.init_tags(&req.caller, asked),
            None => Ok(asked.unwrap_or_default()),
        }
    }

    /// `update` with its access tags checked by the policy against the node's current ones
    /// (unchanged tags pass; see [`TagPolicy::modify_tags`](crate::auth::policy::TagPolicy)).
    pub fn guard_tags(&self, req: &Request, update: Updater) -> Updater {
        let Some(policy) = self
            .config
            .auth
            .as_ref()
            .and_then(|a| a.settings.policy.clone())
        else {
            return update;
        };
        let caller = req.caller.clone();
        Box::new(move |n| {
            let mut u = update(n)?;
            u.access_tags = policy.modify_tags(&caller, &n.access_tags, u.access_tags)?;
            Ok(u)
        })
    }

    /// The filter that keeps a listing of the container at `parent` to the children
    /// `req`'s caller may see (`None`: no policy, or an admin). A root the caller may not read
    /// lists nothing.
    pub fn listing_filter(&self, req: &Request, parent: &[String]) -> Option<Filter> {
        self.visibility(req, parent.is_empty(), scopes::READ_METADATA)
    }

    /// The filter of what `req`'s caller may see inside a container other than the root
    /// (the children counted for a child container).
    pub fn child_filter(&self, req: &Request) -> Option<Filter> {
        self.visibility(req, false, scopes::READ_METADATA)
    }

    /// The filter of the children a container export includes (those the caller may read
    /// the data of).
    pub fn export_filter(&self, req: &Request) -> Option<Filter> {
        self.visibility(req, false, scopes::READ_DATA)
    }

    /// The children visible to `req`'s caller for `need`; with `root`, the children of the
    /// root, which a caller who may not read the root does not see.
    fn visibility(&self, req: &Request, root: bool, need: Scopes) -> Option<Filter> {
        self.visible_tags(req, root, need)
            .map(|tags| Filter::AccessTags { tags })
    }

    /// The tags that make a node visible to `req`'s caller for `need` (`None`: every node);
    /// with `root`, inside the root, which a caller who may not read it sees nothing of.
    /// Reads are worked out once per request.
    fn visible_tags(&self, req: &Request, root: bool, need: Scopes) -> Option<Vec<String>> {
        let policy = self.policy()?;
        if root
            && !policy
                .allowed(&req.caller, policy.top_level())
                .covers(scopes::READ_METADATA)
        {
            return Some(Vec::new());
        }
        let visible = if need == scopes::READ_METADATA {
            req.visible
                .get_or_init(|| policy.visible(&req.caller, need))
                .clone()
        } else {
            policy.visible(&req.caller, need)
        };
        match visible {
            Visible::All => None,
            Visible::Tags(tags) => Some(tags),
        }
    }

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
