//! The cluster catalog in PostgreSQL: a deadpool pool of tokio-postgres connections, every
//! Tiled query type compiled to SQL that the schema's indexes serve (JSONB containment on the
//! GIN index, the generated tsvector for full text, expression indexes on hot keys), one round
//! trip per lookup and per page, and counts that never scan a large container.

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde_json::{Map, Value};
use tessera_common::adapters::{DataSource, Management};
use tessera_common::node::TreeNode;
use tessera_common::structure::{Spec, StructureFamily};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use super::query::{CmpOp, Filter};
use super::{
    Catalog, DataCommit, DistinctRequest, NewNode, Node, Revision, SearchPage, SearchRequest,
    SortKey, Updater, migrate, node_from_parts, tally_rows,
};
use crate::error::ApiError;

/// Filtered counts are exact up to this many matches; beyond it the planner's estimate is
/// given (never less than the exact lower bound), so a count never scans a huge container.
pub const EXACT_COUNT_LIMIT: i64 = 10_000;

/// A catalog in one PostgreSQL database (and schema, through `search_path`).
pub struct PostgresCatalog {
    pool: Pool,
    /// Filtered counts in containers with more children than this start from a block
    /// sample (see [`sample_count`]) when the planner expects more than
    /// `sample_when_estimated` matches.
    sample_above: i64,
    sample_when_estimated: i64,
}

/// The planner's match estimate above which a large container's count is sampled.
pub const SAMPLE_WHEN_ESTIMATED: i64 = 1_000;

/// Containers larger than this have their filtered counts estimated from a block sample
/// first, so a filter matching most of a huge container costs a sample, not a full bitmap.
pub const SAMPLE_ABOVE: i64 = 100_000;

/// Heap pages a count sample reads (about 32 MB).
const SAMPLE_PAGES: f64 = 4000.0;

fn db_err(e: impl std::error::Error + 'static) -> ApiError {
    // tokio-postgres says only "db error" at the top; the server's message is the source.
    let mut text = e.to_string();
    if lost_connection(&e) {
        return unreachable_catalog(&text);
    }
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(db) = s.downcast_ref::<tokio_postgres::error::DbError>()
            && *db.code() == tokio_postgres::error::SqlState::QUERY_CANCELED
        {
            return super::statement_timed_out(None);
        }
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    ApiError::internal(format!("catalog database: {text}"))
}

/// The advisory-lock key of the data of the node at `path` (a hash: two paths that meet only
/// wait for each other).
fn path_lock_key(path: &[String]) -> i64 {
    let digest = blake3::hash(format!("tessera-data-lock\0{}", path.join("\0")).as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest.as_bytes()[..8]);
    i64::from_le_bytes(b)
}

/// An advisory lock held by a pooled connection; dropping it unlocks and returns the
/// connection, or closes the connection if the unlock fails (which releases the lock too).
struct AdvisoryLock {
    client: Option<deadpool_postgres::Object>,
    key: i64,
}

impl Drop for AdvisoryLock {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let key = self.key;
        tokio::spawn(async move {
            if let Err(e) = client
                .execute("SELECT pg_advisory_unlock($1)", &[&key])
                .await
            {
                tracing::warn!("an advisory lock was not released (closing its connection): {e}");
                drop(deadpool_postgres::Object::take(client));
            }
        });
    }
}

/// Whether `e` says the database cannot be reached (refused, timed out, connection closed),
/// as opposed to a statement it refused.
fn lost_connection(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if err.is::<std::io::Error>() {
            return true;
        }
        if let Some(pg) = err.downcast_ref::<tokio_postgres::Error>()
            && pg.is_closed()
        {
            return true;
        }
        if let Some(pool) = err.downcast_ref::<deadpool_postgres::PoolError>()
            && matches!(pool, deadpool_postgres::PoolError::Timeout(_))
        {
            return true;
        }
        next = err.source();
    }
    false
}

/// 503 for a catalog database that cannot be reached: every node answers this until it is
/// back, then recovers by itself (the pool opens new connections).
fn unreachable_catalog(cause: &str) -> ApiError {
    crate::metrics::REFUSED
        .with_label_values(&["catalog_unreachable"])
        .inc();
    ApiError::unavailable(
        format!("the catalog database (PostgreSQL) cannot be reached; try again ({cause})"),
        5,
    )
}

/// How long opening a connection to the catalog may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A SQL text under construction with its numbered parameters.
#[derive(Default)]
struct Sql {
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Sql {
    /// Adds a parameter and returns its placeholder (`$n`).
    fn arg(&mut self, v: impl ToSql + Sync + Send + 'static) -> String {
        self.params.push(Box::new(v));
        format!("${}", self.params.len())
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// A single-quoted SQL string literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `metadata -> 'a' -> 'b'` on table alias `alias` (none: the bare column).
fn json_at_on(alias: &str, key: &str) -> String {
    let mut e = if alias.is_empty() {
        String::from("metadata")
    } else {
        format!("{alias}.metadata")
    };
    for part in key.split('.') {
        e.push_str(" -> ");
        e.push_str(&literal(part));
    }
    e
}

/// `n.metadata -> 'a' -> 'b'` for the dotted key `a.b`. Keys are inlined as literals (not
/// parameters) so the planner can match expression indexes such as `(metadata -> 'time')`.
fn json_at(key: &str) -> String {
    json_at_on("n", key)
}

/// `{"a": {"b": value}}` for the dotted key `a.b`: the containment document for `@>`.
fn nested(key: &str, value: Value) -> Value {
    key.rsplit('.').fold(value, |inner, part| {
        let mut m = Map::new();
        m.insert(part.to_string(), inner);
        Value::Object(m)
    })
}

/// Lowercase alphanumeric words, as the full-text index splits them.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The SQL condition of one filter over table alias `n`.
fn compile(f: &Filter, q: &mut Sql) -> String {
    match f {
        Filter::Eq { key, value } => {
            // Containment uses the GIN index; for arrays and objects containment is weaker than
            // equality, so the exact comparison is added.
            let doc = q.arg(nested(key, value.clone()));
            if value.is_array() || value.is_object() {
                let v = q.arg(value.clone());
                format!("n.metadata @> {doc} AND {} = {v}", json_at(key))
            } else {
                format!("n.metadata @> {doc}")
            }
        }
        Filter::NotEq { key, value } => {
            // A missing key gives NULL, and NULL <> x is not true: such nodes do not match.
            let v = q.arg(value.clone());
            format!("{} <> {v}", json_at(key))
        }
        Filter::Comparison { op, key, value } => {
            let v = q.arg(value.clone());
            let op = match op {
                CmpOp::Lt => "<",
                CmpOp::Gt => ">",
                CmpOp::Le => "<=",
                CmpOp::Ge => ">=",
            };
            // Only values of the same JSON type compare (numbers numerically).
            let e = json_at(key);
            format!("jsonb_typeof({e}) = jsonb_typeof({v}) AND {e} {op} {v}")
        }
        Filter::Contains { key, value } => {
            let doc = q.arg(nested(key, Value::Array(vec![value.clone()])));
            format!(
                "n.metadata @> {doc} AND jsonb_typeof({}) = 'array'",
                json_at(key)
            )
        }
        Filter::In { key, values } => {
            if values.is_empty() {
                return "false".into();
            }
            let docs: Vec<String> = values
                .iter()
                .map(|v| format!("n.metadata @> {}", q.arg(nested(key, v.clone()))))
                .collect();
            docs.join(" OR ")
        }
        Filter::NotIn { key, values } => {
            if values.is_empty() {
                return "true".into();
            }
            // Nodes lacking the key do not match NotIn, as in Tiled.
            let list = q.arg(Value::Array(values.clone()));
            let e = json_at(key);
            format!(
                "{e} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements({list}) x WHERE x = {e})"
            )
        }
        Filter::KeyPresent { key, exists } => {
            format!(
                "{} IS {}NULL",
                json_at(key),
                if *exists { "NOT " } else { "" }
            )
        }
        Filter::Regex { key, pattern } => {
            let p = q.arg(pattern.as_str().to_string());
            let e = json_at(key);
            format!("jsonb_typeof({e}) = 'string' AND ({e} #>> '{{}}') ~ {p}")
        }
        Filter::Like { key, like, .. } => {
            let p = q.arg(like.clone());
            let e = json_at(key);
            format!("jsonb_typeof({e}) = 'string' AND ({e} #>> '{{}}') LIKE {p}")
        }
        Filter::FullText { text } => {
            let w = words(text);
            if w.is_empty() {
                return "false".into();
            }
            let p = q.arg(w.join(" | "));
            format!("n.metadata_text @@ to_tsquery('simple', {p})")
        }
        Filter::Lookup { key } => format!("n.key = {}", q.arg(key.clone())),
        Filter::KeysFilter { keys } => format!("n.key = ANY({})", q.arg(keys.clone())),
        Filter::Specs { include, exclude } => {
            let mut parts = vec!["true".to_string()];
            let spec = |name: &str| serde_json::json!([{ "name": name }]);
            for s in include {
                parts.push(format!("n.specs @> {}", q.arg(spec(s))));
            }
            for s in exclude {
                parts.push(format!("NOT n.specs @> {}", q.arg(spec(s))));
            }
            parts.join(" AND ")
        }
        Filter::StructureFamily { family } => {
            format!(
                "n.structure_family = {}",
                q.arg(family.as_str().to_string())
            )
        }
        Filter::AccessTags { tags } => format!("n.access_tags && {}", q.arg(tags.clone())),
        // Within a deep search (`c` is the search root's closure row of `n`).
        Filter::AccessPath { tags } => format!(
            "NOT EXISTS (SELECT 1 FROM node_closure a \
             JOIN node_closure r ON r.descendant = a.ancestor AND r.ancestor = c.ancestor \
             JOIN nodes m ON m.id = a.ancestor \
             WHERE a.descendant = n.id AND a.depth >= 1 AND r.depth >= 1 \
             AND NOT (m.access_tags && {}))",
            q.arg(tags.clone())
        ),
    }
}

/// The node columns read by [`read_node`]: the node, its first data source with its assets.
const NODE_COLUMNS: &str = "n.id, n.key, n.structure_family, n.metadata, n.specs, n.access_tags, \
     n.data_version, ds.structure, ds.source, n.child_count";

/// Joins each node `n` to its first data source (as the JSON `DataSource` the API uses).
const SOURCE_JOIN: &str = "LEFT JOIN LATERAL ( \
     SELECT d.structure, jsonb_build_object( \
        'structure_family', d.structure_family, 'mimetype', d.mimetype, \
        'parameters', d.parameters, 'management', d.management, \
        'assets', coalesce((SELECT jsonb_agg(jsonb_build_object('data_uri', a.data_uri, \
              'is_directory', a.is_directory, 'parameter', x.parameter, 'num', x.num) \
              ORDER BY x.num, a.id) \
           FROM data_source_assets x JOIN assets a ON a.id = x.asset_id \
           WHERE x.data_source_id = d.id), '[]'::jsonb)) AS source \
     FROM data_sources d WHERE d.node_id = n.id ORDER BY d.id LIMIT 1) ds ON true";

/// The id of the node at a path (`$1`, a text array), walking keys from the root in one query.
const WALK: &str = "WITH RECURSIVE walk (id, depth) AS ( \
       SELECT id, 0 FROM nodes WHERE parent IS NULL \
     UNION ALL \
       SELECT c.id, w.depth + 1 FROM walk w \
       JOIN nodes c ON c.parent = w.id AND c.key = ($1::text[])[w.depth + 1] \
       WHERE w.depth < cardinality($1::text[])) \
     SELECT id FROM walk WHERE depth = cardinality($1::text[])";

fn read_node(row: &Row, path: Vec<String>) -> Result<Node, ApiError> {
    let family: String = row.try_get(2).map_err(db_err)?;
    let metadata: Value = row.try_get(3).map_err(db_err)?;
    let specs: Value = row.try_get(4).map_err(db_err)?;
    let access_tags: Vec<String> = row.try_get(5).map_err(db_err)?;
    let data_version: i64 = row.try_get(6).map_err(db_err)?;
    let structure: Option<Value> = row.try_get(7).map_err(db_err)?;
    let source: Option<Value> = row.try_get(8).map_err(db_err)?;
    let child_count: i64 = row.try_get(9).map_err(db_err)?;
    let specs: Vec<Spec> = serde_json::from_value(specs).unwrap_or_default();
    let source: Option<DataSource> = source.and_then(|s| serde_json::from_value(s).ok());
    Ok(node_from_parts(
        path,
        StructureFamily::parse(&family).unwrap_or(StructureFamily::Container),
        match metadata {
            Value::Object(m) => m,
            _ => Map::new(),
        },
        specs,
        structure,
        source,
        data_version as u64,
        access_tags,
        child_count.max(0) as u64,
    ))
}

fn order_by(sort: &[SortKey]) -> String {
    super::order_by_sql(sort, |key, dir| {
        // Nodes without the key sort after the others (before them, reversed).
        let nulls = if dir == "DESC" { "FIRST" } else { "LAST" };
        format!("{} {dir} NULLS {nulls}", json_at(key))
    })
}

/// A connection pool for `uri` (`postgresql://user@host:port/db?options=-csearch_path%3Dschema`;
/// a `+driver` suffix on the scheme, as in Tiled's URIs, is accepted), with every statement
/// stopped after `statement_timeout` when given. Connects lazily.
pub fn pool(
    uri: &str,
    max_connections: usize,
    statement_timeout: Option<std::time::Duration>,
) -> Result<Pool, ApiError> {
    let uri = match uri.split_once("://") {
        Some((scheme, rest)) if scheme.starts_with("postgres") => {
            format!("postgresql://{rest}")
        }
        _ => uri.to_string(),
    };
    let mut config = tokio_postgres::Config::from_str(&uri)
        .map_err(|e| ApiError::bad_request(format!("bad PostgreSQL URI: {e}")))?;
    if let Some(t) = statement_timeout {
        let options = format!(
            "{} -c statement_timeout={}",
            config.get_options().unwrap_or(""),
            t.as_millis().max(1)
        );
        config.options(options.trim());
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    // A request waits for a free connection at most as long as a statement may run, and
    // for a new one at most CONNECT_TIMEOUT: an unreachable database is a quick 503.
    Pool::builder(manager)
        .max_size(max_connections.max(1))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(
            statement_timeout.unwrap_or(std::time::Duration::from_secs(30)),
        ))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .map_err(db_err)
}

impl PostgresCatalog {
    /// Connects to `uri` (`postgresql://user@host:port/db?options=-csearch_path%3Dschema`;
    /// a `+driver` suffix on the scheme, as in Tiled's URIs, is accepted) and applies any
    /// pending migrations under the advisory lock.
    pub async fn connect(uri: &str, max_connections: usize) -> Result<Self, ApiError> {
        Self::connect_with(uri, max_connections, None).await
    }

    /// As [`connect`](Self::connect), with every statement of the pool's sessions stopped
    /// after `statement_timeout` (PostgreSQL's own `statement_timeout`).
    pub async fn connect_with(
        uri: &str,
        max_connections: usize,
        statement_timeout: Option<std::time::Duration>,
    ) -> Result<Self, ApiError> {
        let pool = pool(uri, max_connections, statement_timeout)?;
        let mut client = pool.get().await.map_err(db_err)?;
        migrate::migrate_postgres(&mut client)
            .await
            .map_err(db_err)?;
        Ok(PostgresCatalog {
            pool,
            sample_above: SAMPLE_ABOVE,
            sample_when_estimated: SAMPLE_WHEN_ESTIMATED,
        })
    }

    /// Sets the container size above which filtered counts start from a block sample.
    pub fn with_sample_above(mut self, children: i64, estimated_matches: i64) -> Self {
        self.sample_above = children;
        self.sample_when_estimated = estimated_matches;
        self
    }

    /// Indexes a hot metadata key for Comparison filters and sorts inside containers: a
    /// B-tree on `(parent, metadata -> key, id)`, built without blocking writes, plus
    /// statistics on the key's JSON type so range estimates are right. Returns the index name.
    pub async fn index_key(&self, key: &str) -> Result<String, ApiError> {
        if key.is_empty() || key.split('.').any(str::is_empty) {
            return Err(ApiError::bad_request(format!("bad metadata key {key:?}")));
        }
        let slug: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let hash = xxhash_rust::xxh3::xxh3_64(key.as_bytes()) & 0xffff_ffff;
        let name = format!("nodes_md_{slug}_{hash:08x}");
        let expr = json_at_on("", key);
        let client = self.client().await?;
        client
            .batch_execute(&format!(
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON nodes (parent, ({expr}), id)"
            ))
            .await
            .map_err(db_err)?;
        client
            .batch_execute(&format!(
                "CREATE STATISTICS IF NOT EXISTS {name}_type ON (jsonb_typeof({expr})) FROM nodes; \
                 ANALYZE nodes"
            ))
            .await
            .map_err(db_err)?;
        Ok(name)
    }

    /// Keeps per-container counts of each value of the dotted metadata key `key` (see
    /// migration 3), so `distinct` on it reads one row per value. Existing nodes are counted
    /// under a lock that holds writes back for the time of one grouping pass over `nodes`.
    /// Returns how many (container, value) pairs were counted.
    pub async fn facet_key(&self, key: &str) -> Result<u64, ApiError> {
        if key.is_empty() || key.split('.').any(str::is_empty) {
            return Err(ApiError::bad_request(format!("bad metadata key {key:?}")));
        }
        let path: Vec<String> = key.split('.').map(str::to_string).collect();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_err)?;
        tx.batch_execute("LOCK TABLE nodes IN SHARE MODE")
            .await
            .map_err(db_err)?;
        let added = tx
            .execute(
                "INSERT INTO facet_keys (key, path) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&key, &path],
            )
            .await
            .map_err(db_err)?;
        let mut counted = 0;
        if added == 1 {
            counted = tx
                .execute(
                    "INSERT INTO facet_counts (parent, key, value, count, first_id) \
                     SELECT parent, $1, metadata #> $2, count(*), min(id) FROM nodes \
                     WHERE parent IS NOT NULL AND metadata #> $2 IS NOT NULL GROUP BY 1, 3",
                    &[&key, &path],
                )
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(counted)
    }

    /// The plans (`EXPLAIN` text) of a search's count and page queries (both page shapes),
    /// so tests and operators can see which indexes a query uses. With `indexes_only` the
    /// planner is told to avoid sequential scans: a plan that still has one cannot be served
    /// by any index, whatever the table's size.
    pub async fn explain(
        &self,
        parent: &[String],
        req: &SearchRequest,
        indexes_only: bool,
    ) -> Result<String, ApiError> {
        let mut client = self.client().await?;
        let (pid, _) = self.container_id(&client, parent).await?;
        let tx = client.transaction().await.map_err(db_err)?;
        if indexes_only {
            tx.batch_execute("SET LOCAL enable_seqscan = off")
                .await
                .map_err(db_err)?;
        }
        let (from, cq) = search_from(pid, &req.filters, req.deep, None);
        let count = format!("SELECT count(*) FROM (SELECT 1 {from} LIMIT {EXACT_COUNT_LIMIT}) s");
        let mut text = String::new();
        let queries = [
            (count, cq),
            page_sql(pid, req, false, None),
            page_sql(pid, req, true, None),
        ];
        for (sql, q) in queries {
            for row in tx
                .query(&format!("EXPLAIN {sql}"), &q.refs())
                .await
                .map_err(db_err)?
            {
                text.push_str(row.try_get(0).map_err(db_err)?);
                text.push('\n');
            }
        }
        tx.rollback().await.map_err(db_err)?;
        Ok(text)
    }

    /// The id of the node at `path` (404 when absent).
    async fn node_id(
        &self,
        client: &deadpool_postgres::Object,
        path: &[String],
    ) -> Result<i64, ApiError> {
        Ok(client
            .query_opt(WALK, &[&path.to_vec()])
            .await
            .map_err(db_err)?
            .ok_or_else(|| ApiError::no_such_entry(path))?
            .get(0))
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, ApiError> {
        self.pool.get().await.map_err(db_err)
    }

    /// Loads a static tree (as the root) into an empty catalog, in one transaction.
    pub async fn load_tree(&self, root: TreeNode) -> Result<(), ApiError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_err)?;
        insert_trees(&tx, None, Vec::new(), vec![root])
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    /// The id and family of the container at `parent` (404 when absent or not a container).
    async fn container_id(
        &self,
        client: &deadpool_postgres::Object,
        parent: &[String],
    ) -> Result<(i64, i64), ApiError> {
        let sql = format!(
            "SELECT n.id, n.structure_family, n.child_count FROM nodes n WHERE n.id = ({WALK})"
        );
        let row = client
            .query_opt(&sql, &[&parent.to_vec()])
            .await
            .map_err(db_err)?
            .ok_or_else(|| ApiError::no_such_entry(parent))?;
        let family: String = row.get(1);
        if family != "container" {
            return Err(ApiError::not_found(format!(
                "'{}' is a {family}, not a container: it has no children to search",
                parent.join("/")
            )));
        }
        Ok((row.get(0), row.get(2)))
    }
}

/// The FROM/WHERE part shared by a search's page and count, with its parameters.
///
/// `tagged_first`: the caller may see only nodes with these access tags, and they are rare
/// in the whole catalog. The nodes carrying them are then gathered first through the tags'
/// index and only those are checked for their parent, instead of intersecting the tags with
/// every child of a large container (a 100,000-row bitmap for each count and each page).
fn search_from(
    parent: i64,
    filters: &[Filter],
    deep: Option<usize>,
    tagged_first: Option<&[String]>,
) -> (String, Sql) {
    let mut q = Sql::default();
    let p = q.arg(parent);
    let mut sql = match (deep, tagged_first) {
        (None, Some(tags)) => {
            let t = q.arg(tags.to_vec());
            // OFFSET 0 keeps the planner from flattening the subquery back into one scan.
            format!(
                "FROM (SELECT * FROM nodes WHERE access_tags && {t} OFFSET 0) n \
                 WHERE n.parent = {p}"
            )
        }
        (Some(depth), _) => {
            let d = q.arg(depth.min(i32::MAX as usize) as i32);
            format!(
                "FROM nodes n JOIN node_closure c ON c.descendant = n.id \
                 WHERE c.ancestor = {p} AND c.depth BETWEEN 1 AND {d}"
            )
        }
        (None, None) => format!("FROM nodes n WHERE n.parent = {p}"),
    };
    for f in filters {
        let cond = compile(f, &mut q);
        sql.push_str(" AND (");
        sql.push_str(&cond);
        sql.push(')');
    }
    (sql, q)
}

/// The SQL of one page of a search and its parameters. The page is chosen on `nodes` alone
/// (keyset or offset), and only its rows are joined to their data sources.
///
/// `few_matches` says the filters match at most [`EXACT_COUNT_LIMIT`] nodes: they are then
/// gathered first through the filters' indexes and only those are sorted, instead of walking
/// the container in order hoping to meet matches (the planner's guess for rare words).
fn page_sql(
    pid: i64,
    req: &SearchRequest,
    few_matches: bool,
    tagged_first: Option<&[String]>,
) -> (String, Sql) {
    let (mut from, mut q) = search_from(pid, &req.filters, req.deep, tagged_first);
    let keyset = req.natural_order().zip(req.after);
    if let Some((descending, after)) = keyset {
        let a = q.arg(after);
        from.push_str(&format!(
            " AND n.id {} {a}",
            if descending { "<" } else { ">" }
        ));
    }
    let path_col = if req.deep.is_some() {
        ", (SELECT array_agg(a.key ORDER BY c2.depth DESC) FROM node_closure c2 \
           JOIN nodes a ON a.id = c2.ancestor \
           WHERE c2.descendant = n.id AND a.parent IS NOT NULL)"
    } else {
        ""
    };
    let limit = q.arg(req.limit.min(i64::MAX as usize) as i64);
    let skip = if keyset.is_some() { 0 } else { req.offset };
    let offset = q.arg(skip.min(i64::MAX as usize) as i64);
    let order = order_by(&req.sort);
    // Only ids are chosen under LIMIT/OFFSET (an index-only scan in the natural order), so
    // skipped rows cost an index entry each, not a heap row and a data-source join.
    let page = if few_matches {
        format!(
            "WITH m AS MATERIALIZED (SELECT n.id {from}) \
             SELECT n.id FROM m JOIN nodes n ON n.id = m.id{order} LIMIT {limit} OFFSET {offset}"
        )
    } else {
        format!("SELECT n.id {from}{order} LIMIT {limit} OFFSET {offset}")
    };
    // The children counted under the caller's filters, one index probe per node of the page.
    let columns = match &req.child_filters {
        None => NODE_COLUMNS.to_string(),
        Some(filters) => {
            let mut cond = String::new();
            for f in filters {
                cond.push_str(" AND (");
                cond.push_str(&compile(f, &mut q));
                cond.push(')');
            }
            NODE_COLUMNS.replace(
                "n.child_count",
                &format!("(SELECT count(*) FROM nodes n WHERE n.parent = p.id{cond})"),
            )
        }
    };
    let sql = format!(
        "SELECT {columns}{path_col} FROM ({page}) p JOIN nodes n ON n.id = p.id \
         {SOURCE_JOIN}{order}"
    );
    (sql, q)
}

/// The matches of `filters` among the children of container `pid`, estimated from a
/// repeatable block sample of about [`SAMPLE_PAGES`] pages: the matching fraction of the
/// sampled children times the kept child count. `None` when the sample holds too few children
/// to say.
async fn sample_count(
    client: &deadpool_postgres::Object,
    pid: i64,
    filters: &[Filter],
    child_count: i64,
) -> Result<Option<i64>, ApiError> {
    let pages: i32 = client
        .query_one(
            "SELECT relpages FROM pg_class WHERE oid = 'nodes'::regclass",
            &[],
        )
        .await
        .map_err(db_err)?
        .get(0);
    let percent = (SAMPLE_PAGES / f64::from(pages.max(1)) * 100.0).min(100.0) as f32;
    let mut q = Sql::default();
    let p = q.arg(pid);
    let pct = q.arg(percent);
    let conds: Vec<String> = filters
        .iter()
        .map(|f| format!("({})", compile(f, &mut q)))
        .collect();
    let sql = format!(
        "SELECT count(*) FILTER (WHERE {}), count(*) \
         FROM nodes n TABLESAMPLE SYSTEM ({pct}) REPEATABLE (7) WHERE n.parent = {p}",
        conds.join(" AND ")
    );
    let row = client.query_one(&sql, &q.refs()).await.map_err(db_err)?;
    let (matched, seen): (i64, i64) = (row.get(0), row.get(1));
    if seen < 200 {
        return Ok(None);
    }
    Ok(Some(
        (matched as f64 / seen as f64 * child_count as f64).round() as i64,
    ))
}

/// The planner's row estimate for `SELECT 1 {from}`.
async fn estimate(
    client: &deadpool_postgres::Object,
    from: &str,
    q: &Sql,
) -> Result<i64, ApiError> {
    let row = client
        .query_one(&format!("EXPLAIN (FORMAT JSON) SELECT 1 {from}"), &q.refs())
        .await
        .map_err(db_err)?;
    let plan: Value = row.try_get(0).map_err(db_err)?;
    Ok(plan[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(0.0) as i64)
}

#[async_trait]
impl Catalog for PostgresCatalog {
    fn pool_status(&self) -> Option<super::PoolStatus> {
        let s = self.pool.status();
        Some(super::PoolStatus {
            in_use: s.size.saturating_sub(s.available),
            idle: s.available,
            max: s.max_size,
        })
    }

    async fn get(&self, path: &[String]) -> Result<Option<Arc<Node>>, ApiError> {
        let client = self.client().await?;
        let sql = format!("SELECT {NODE_COLUMNS} FROM nodes n {SOURCE_JOIN} WHERE n.id = ({WALK})");
        let row = client
            .query_opt(&sql, &[&path.to_vec()])
            .await
            .map_err(db_err)?;
        row.map(|r| read_node(&r, path.to_vec()).map(Arc::new))
            .transpose()
    }

    fn counts_children_under_filters(&self) -> bool {
        true
    }

    async fn search(&self, parent: &[String], req: &SearchRequest) -> Result<SearchPage, ApiError> {
        let client = self.client().await?;
        let (pid, child_count) = self.container_id(&client, parent).await?;
        // Under an access policy that lets the caller see few nodes of a large catalog, those
        // nodes are found first (see `search_from`).
        let tags = req.filters.iter().find_map(|f| match f {
            Filter::AccessTags { tags } => Some(tags.as_slice()),
            _ => None,
        });
        let tagged_first = match tags {
            Some(tags) if req.deep.is_none() && child_count > EXACT_COUNT_LIMIT => {
                let mut tq = Sql::default();
                let t = tq.arg(tags.to_vec());
                let from = format!("FROM nodes n WHERE n.access_tags && {t}");
                (estimate(&client, &from, &tq).await? <= EXACT_COUNT_LIMIT).then_some(tags)
            }
            _ => None,
        };
        let (count_from, q) = search_from(pid, &req.filters, req.deep, tagged_first);
        let mut few_matches = false;
        // In a large container, the planner's estimate (cheap, and low for correlated
        // metadata) decides whether the filters look common enough to sample: rare matches
        // are counted exactly through their index, common ones are sampled instead of
        // building their whole bitmap.
        let sampled = if req.deep.is_none()
            && !req.filters.is_empty()
            && child_count > self.sample_above
            && estimate(&client, &count_from, &q).await? > self.sample_when_estimated
        {
            sample_count(&client, pid, &req.filters, child_count).await?
        } else {
            None
        };
        let count = if req.filters.is_empty() && req.deep.is_none() {
            child_count
        } else if let Some(n) = sampled.filter(|&n| n > 2 * EXACT_COUNT_LIMIT) {
            // Clearly above the exact limit: the sample's estimate stands.
            n
        } else {
            let bounded: i64 = client
                .query_one(
                    &format!(
                        "SELECT count(*) FROM (SELECT 1 {count_from} LIMIT {}) s",
                        EXACT_COUNT_LIMIT + 1
                    ),
                    &q.refs(),
                )
                .await
                .map_err(db_err)?
                .get(0);
            if bounded > EXACT_COUNT_LIMIT {
                match sampled {
                    Some(n) => n.max(bounded),
                    None => estimate(&client, &count_from, &q).await?.max(bounded),
                }
            } else {
                few_matches = !req.filters.is_empty();
                bounded
            }
        };
        let mut nodes = Vec::new();
        let mut cursor = None;
        if req.limit > 0 {
            let (sql, q) = page_sql(pid, req, few_matches, tagged_first);
            for row in client.query(&sql, &q.refs()).await.map_err(db_err)? {
                let path = if req.deep.is_some() {
                    row.try_get::<_, Option<Vec<String>>>(10)
                        .map_err(db_err)?
                        .unwrap_or_default()
                } else {
                    let mut p = parent.to_vec();
                    p.push(row.try_get(1).map_err(db_err)?);
                    p
                };
                if req.natural_order().is_some() {
                    cursor = Some(row.try_get(0).map_err(db_err)?);
                }
                nodes.push(Arc::new(read_node(&row, path)?));
            }
        }
        Ok(SearchPage {
            nodes,
            count: count.max(0) as usize,
            cursor,
        })
    }

    async fn distinct(
        &self,
        parent: &[String],
        filters: &[Filter],
        req: &DistinctRequest,
    ) -> Result<Value, ApiError> {
        let client = self.client().await?;
        let (pid, _) = self.container_id(&client, parent).await?;
        let (from, q) = search_from(pid, filters, None, None);
        // Each group: (value, count), most frequent first, ties in first-seen (id) order.
        let grouped = |expr: String| {
            format!(
                "SELECT v, count(*) FROM (SELECT {expr} AS v, n.id {from}) s \
                 WHERE v IS NOT NULL GROUP BY v ORDER BY count(*) DESC, min(id)"
            )
        };
        let mut metadata = Map::new();
        for key in &req.metadata {
            // A faceted key, with no filters: its counts are kept, one row per value.
            let kept = if filters.is_empty() {
                let rows = client
                    .query(
                        "SELECT c.value, c.count FROM facet_keys f \
                         LEFT JOIN facet_counts c ON c.key = f.key AND c.parent = $1 \
                         WHERE f.key = $2 ORDER BY c.count DESC, c.first_id",
                        &[&pid, key],
                    )
                    .await
                    .map_err(db_err)?;
                (!rows.is_empty()).then(|| {
                    rows.iter()
                        .filter_map(|r| {
                            Some((r.get::<_, Option<Value>>(0)?, r.get::<_, Option<i64>>(1)?))
                        })
                        .collect::<Vec<_>>()
                })
            } else {
                None
            };
            let groups = match kept {
                Some(g) => g,
                None => {
                    let rows = client
                        .query(&grouped(json_at(key)), &q.refs())
                        .await
                        .map_err(db_err)?;
                    pg_groups(&rows)?
                }
            };
            metadata.insert(key.clone(), tally_rows(groups, req.counts));
        }
        let mut families = Value::Null;
        if req.structure_families {
            let rows = client
                .query(&grouped("to_jsonb(n.structure_family)".into()), &q.refs())
                .await
                .map_err(db_err)?;
            families = tally_rows(pg_groups(&rows)?, req.counts);
        }
        let mut specs = Value::Null;
        if req.specs {
            let expr = "(SELECT coalesce(jsonb_agg(s -> 'name'), '[]'::jsonb) \
                        FROM jsonb_array_elements(n.specs) s)";
            let rows = client
                .query(&grouped(expr.into()), &q.refs())
                .await
                .map_err(db_err)?;
            specs = tally_rows(pg_groups(&rows)?, req.counts);
        }
        Ok(serde_json::json!({
            "metadata": if req.metadata.is_empty() { Value::Null } else { Value::Object(metadata) },
            "structure_families": families,
            "specs": specs,
        }))
    }

    async fn create(&self, parent: &[String], node: NewNode) -> Result<Arc<Node>, ApiError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_err)?;
        let row = tx
            .query_opt(
                &format!("SELECT n.id, n.structure_family FROM nodes n WHERE n.id = ({WALK})"),
                &[&parent.to_vec()],
            )
            .await
            .map_err(db_err)?
            .ok_or_else(|| ApiError::no_such_entry(parent))?;
        let (pid, family): (i64, String) = (row.get(0), row.get(1));
        if family != "container" {
            return Err(super::not_a_container(parent, &family));
        }
        let specs =
            serde_json::to_value(&node.specs).map_err(|e| ApiError::internal(e.to_string()))?;
        let inserted = tx
            .query_opt(
                "INSERT INTO nodes (parent, key, structure_family, metadata, specs, access_tags) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (parent, key) DO NOTHING RETURNING id",
                &[
                    &pid,
                    &node.key,
                    &node.family.as_str(),
                    &Value::Object(node.metadata.clone()),
                    &specs,
                    &node.access_tags,
                ],
            )
            .await
            .map_err(db_err)?;
        let mut path = parent.to_vec();
        path.push(node.key.clone());
        let Some(row) = inserted else {
            return Err(super::key_exists(&path));
        };
        let id: i64 = row.get(0);
        tx.execute(
            "INSERT INTO node_closure (ancestor, descendant, depth) \
             SELECT ancestor, $1::bigint, depth + 1 FROM node_closure WHERE descendant = $2 \
             UNION ALL SELECT $1::bigint, $1::bigint, 0",
            &[&id, &pid],
        )
        .await
        .map_err(db_err)?;
        if let Some((structure, source)) = &node.data {
            insert_source(&tx, id, structure, source)
                .await
                .map_err(db_err)?;
        }
        if !node.children.is_empty() {
            let ancestors: Vec<i64> = tx
                .query(
                    "SELECT ancestor FROM node_closure WHERE descendant = $1 ORDER BY depth DESC",
                    &[&id],
                )
                .await
                .map_err(db_err)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            insert_trees(&tx, Some(id), ancestors, node.children)
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        self.get(&path)
            .await?
            .ok_or_else(|| ApiError::internal("a created node vanished"))
    }

    async fn update_metadata(
        &self,
        path: &[String],
        update: Updater,
        drop_revision: bool,
    ) -> Result<Arc<Node>, ApiError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_err)?;
        let row = tx
            .query_opt(
                &format!(
                    "SELECT {NODE_COLUMNS} FROM nodes n {SOURCE_JOIN} WHERE n.id = ({WALK}) FOR UPDATE OF n"
                ),
                &[&path.to_vec()],
            )
            .await
            .map_err(db_err)?
            .ok_or_else(|| ApiError::no_such_entry(path))?;
        let id: i64 = row.get(0);
        let mut node = read_node(&row, path.to_vec())?;
        let new = update(&node)?;
        if !drop_revision {
            tx.execute(
                "INSERT INTO revisions (node_id, revision_number, metadata, specs, access_tags, time_updated) \
                 SELECT id, coalesce((SELECT max(revision_number) FROM revisions WHERE node_id = $1), 0) + 1, \
                        metadata, specs, access_tags, time_updated FROM nodes WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(db_err)?;
        }
        let specs =
            serde_json::to_value(&new.specs).map_err(|e| ApiError::internal(e.to_string()))?;
        tx.execute(
            "UPDATE nodes SET metadata = $2, specs = $3, access_tags = $4, time_updated = now() WHERE id = $1",
            &[&id, &Value::Object(new.metadata.clone()), &specs, &new.access_tags],
        )
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        node.inline_contents = new.specs.iter().any(|s| s.name == "xarray_dataset");
        node.metadata = new.metadata;
        node.specs = new.specs;
        node.access_tags = new.access_tags;
        Ok(Arc::new(node))
    }

    async fn revisions(
        &self,
        path: &[String],
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Revision>, usize), ApiError> {
        let client = self.client().await?;
        let id = self.node_id(&client, path).await?;
        let count: i64 = client
            .query_one("SELECT count(*) FROM revisions WHERE node_id = $1", &[&id])
            .await
            .map_err(db_err)?
            .get(0);
        let rows = client
            .query(
                "SELECT revision_number, metadata, specs, access_tags, to_json(time_updated) #>> '{}' \
                 FROM revisions WHERE node_id = $1 ORDER BY revision_number OFFSET $2 LIMIT $3",
                &[&id, &(offset.min(i64::MAX as usize) as i64), &(limit.min(i64::MAX as usize) as i64)],
            )
            .await
            .map_err(db_err)?;
        let mut out = Vec::new();
        for r in rows {
            let number: i32 = r.get(0);
            let metadata: Value = r.get(1);
            let specs: Value = r.get(2);
            out.push(Revision {
                number: i64::from(number),
                metadata: match metadata {
                    Value::Object(m) => m,
                    _ => Map::new(),
                },
                specs: serde_json::from_value(specs).unwrap_or_default(),
                access_tags: r.get(3),
                time_updated: r.get(4),
            });
        }
        Ok((out, count.max(0) as usize))
    }

    async fn data_uris(&self, prefix: &str) -> Result<Vec<String>, ApiError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT data_uri FROM assets WHERE left(data_uri, length($1)) = $1",
                &[&prefix],
            )
            .await
            .map_err(db_err)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn delete_revision(&self, path: &[String], number: i64) -> Result<(), ApiError> {
        let client = self.client().await?;
        let id = self.node_id(&client, path).await?;
        let n = client
            .execute(
                "DELETE FROM revisions WHERE node_id = $1 AND revision_number = $2",
                &[&id, &(number.clamp(0, i64::from(i32::MAX)) as i32)],
            )
            .await
            .map_err(db_err)?;
        if n == 0 {
            return Err(ApiError::not_found(format!(
                "'{}' has no revision {number}",
                path.join("/")
            )));
        }
        Ok(())
    }

    async fn delete(
        &self,
        path: &[String],
        recursive: bool,
        external_only: bool,
    ) -> Result<Vec<DataSource>, ApiError> {
        if path.is_empty() {
            return Err(super::cannot_delete_root());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_err)?;
        let row = tx
            .query_opt(
                &format!(
                    "SELECT n.id, n.child_count FROM nodes n WHERE n.id = ({WALK}) FOR UPDATE"
                ),
                &[&path.to_vec()],
            )
            .await
            .map_err(db_err)?
            .ok_or_else(|| ApiError::no_such_entry(path))?;
        let (id, children): (i64, i64) = (row.get(0), row.get(1));
        if children > 0 && !recursive {
            return Err(super::not_empty(path, children));
        }
        let sources = tx
            .query(
                &format!(
                    "SELECT ds.source FROM node_closure c JOIN nodes n ON n.id = c.descendant \
                     {SOURCE_JOIN} WHERE c.ancestor = $1 AND ds.source IS NOT NULL"
                ),
                &[&id],
            )
            .await
            .map_err(db_err)?
            .iter()
            .filter_map(|r| r.get::<_, Option<Value>>(0))
            .filter_map(|v| serde_json::from_value::<DataSource>(v).ok())
            .collect::<Vec<_>>();
        if external_only && sources.iter().any(|s| s.management != Management::External) {
            return Err(super::internally_managed(path));
        }
        // Assets used only by the deleted data sources go with them.
        let assets: Vec<i64> = tx
            .query(
                "SELECT x.asset_id FROM node_closure c JOIN data_sources d ON d.node_id = c.descendant \
                 JOIN data_source_assets x ON x.data_source_id = d.id WHERE c.ancestor = $1",
                &[&id],
            )
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        tx.execute(
            "DELETE FROM nodes WHERE id IN (SELECT descendant FROM node_closure WHERE ancestor = $1)",
            &[&id],
        )
        .await
        .map_err(db_err)?;
        tx.execute(
            "DELETE FROM assets a WHERE a.id = ANY($1) \
             AND NOT EXISTS (SELECT 1 FROM data_source_assets x WHERE x.asset_id = a.id)",
            &[&assets],
        )
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(sources)
    }

    async fn lock_data(&self, path: &[String]) -> Result<super::DataLock, ApiError> {
        // A session-level advisory lock on a key derived from the path, held by one pooled
        // connection for as long as the guard lives. Waiting is bounded by the statement
        // timeout; a node that dies drops its connection and the server releases the lock.
        let key = path_lock_key(path);
        let client = self.client().await?;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&key])
            .await
            .map_err(db_err)?;
        Ok(Box::new(AdvisoryLock {
            client: Some(client),
            key,
        }))
    }

    async fn try_lock_data(&self, path: &[String]) -> Result<Option<super::DataLock>, ApiError> {
        let key = path_lock_key(path);
        let client = self.client().await?;
        let row = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .await
            .map_err(db_err)?;
        let held: bool = row.get(0);
        Ok(held.then(|| {
            Box::new(AdvisoryLock {
                client: Some(client),
                key,
            }) as super::DataLock
        }))
    }

    async fn commit_data(
        &self,
        path: &[String],
        commit: DataCommit,
    ) -> Result<Arc<Node>, ApiError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_err)?;
        let id: i64 = tx
            .query_opt(
                &format!("SELECT n.id FROM nodes n WHERE n.id = ({WALK}) FOR UPDATE"),
                &[&path.to_vec()],
            )
            .await
            .map_err(db_err)?
            .ok_or_else(|| ApiError::no_such_entry(path))?
            .get(0);
        if let Some(structure) = &commit.structure {
            tx.execute(
                "UPDATE data_sources SET structure = $2 \
                 WHERE id = (SELECT min(id) FROM data_sources WHERE node_id = $1)",
                &[&id, &structure.to_json()],
            )
            .await
            .map_err(db_err)?;
        }
        if let Some(uri) = &commit.data_uri {
            tx.execute(
                "UPDATE assets SET data_uri = $2 WHERE id = ( \
                   SELECT x.asset_id FROM data_source_assets x \
                   WHERE x.data_source_id = (SELECT min(id) FROM data_sources WHERE node_id = $1) \
                   ORDER BY x.num NULLS FIRST, x.asset_id LIMIT 1)",
                &[&id, uri],
            )
            .await
            .map_err(db_err)?;
        }
        tx.execute(
            "UPDATE nodes SET data_version = data_version + 1, time_updated = now() WHERE id = $1",
            &[&id],
        )
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        drop(client);
        self.get(path)
            .await?
            .ok_or_else(|| ApiError::no_such_entry(path))
    }
}

/// Inserts a node's data source with its assets.
async fn insert_source(
    tx: &deadpool_postgres::Transaction<'_>,
    node_id: i64,
    structure: &tessera_common::structure::Structure,
    source: &DataSource,
) -> Result<(), tokio_postgres::Error> {
    let management = super::management_name(source);
    let ds: i64 = tx
        .query_one(
            "INSERT INTO data_sources (node_id, structure_family, structure, mimetype, parameters, management) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            &[
                &node_id,
                &source.structure_family.as_str(),
                &structure.to_json(),
                &source.mimetype,
                &Value::Object(source.parameters.clone()),
                &management,
            ],
        )
        .await?
        .get(0);
    for asset in &source.assets {
        let asset_id: i64 = tx
            .query_one(
                "INSERT INTO assets (data_uri, is_directory) VALUES ($1, $2) \
                 ON CONFLICT (data_uri) DO UPDATE SET is_directory = EXCLUDED.is_directory RETURNING id",
                &[&asset.data_uri, &asset.is_directory],
            )
            .await?
            .get(0);
        let num = asset.num.map(|n| n.clamp(0, i64::from(i32::MAX)) as i32);
        tx.execute(
            "INSERT INTO data_source_assets (data_source_id, asset_id, parameter, num) VALUES ($1, $2, $3, $4)",
            &[&ds, &asset_id, &asset.parameter, &num],
        )
        .await?;
    }
    Ok(())
}

/// Inserts static trees under `parent` (whose ancestors, itself last, are `ancestors`),
/// depth-first with an explicit stack.
async fn insert_trees(
    tx: &deadpool_postgres::Transaction<'_>,
    parent: Option<i64>,
    ancestors: Vec<i64>,
    trees: Vec<TreeNode>,
) -> Result<(), tokio_postgres::Error> {
    // Reversed, so the stack pops children in their natural order (ids follow it).
    let mut stack: Vec<(Option<i64>, Vec<i64>, TreeNode)> = trees
        .into_iter()
        .rev()
        .map(|t| (parent, ancestors.clone(), t))
        .collect();
    while let Some((parent, chain, mut t)) = stack.pop() {
        let children = std::mem::take(&mut t.children);
        let id = insert_tree_node(tx, parent, &chain, &t).await?;
        let mut chain = chain;
        chain.push(id);
        for child in children.into_iter().rev() {
            stack.push((Some(id), chain.clone(), child));
        }
    }
    Ok(())
}

/// Inserts one node of a static tree with its closure rows and data source; returns its id.
async fn insert_tree_node(
    tx: &deadpool_postgres::Transaction<'_>,
    parent: Option<i64>,
    ancestors: &[i64],
    t: &TreeNode,
) -> Result<i64, tokio_postgres::Error> {
    let specs = serde_json::to_value(&t.specs).unwrap_or(Value::Array(Vec::new()));
    let id: i64 = tx
        .query_one(
            "INSERT INTO nodes (parent, key, structure_family, metadata, specs) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[
                &parent,
                &t.key,
                &t.family.as_str(),
                &Value::Object(t.metadata.clone()),
                &specs,
            ],
        )
        .await?
        .get(0);
    // Itself at depth 0, then every ancestor at its distance.
    tx.execute(
        "INSERT INTO node_closure (ancestor, descendant, depth) \
         SELECT a, $1::bigint, (cardinality($2::bigint[]) - i + 1)::int \
         FROM unnest($2::bigint[]) WITH ORDINALITY AS u(a, i) \
         UNION ALL SELECT $1::bigint, $1::bigint, 0",
        &[&id, &ancestors.to_vec()],
    )
    .await?;
    if let (Some(structure), Some(src)) = (&t.structure, &t.source) {
        insert_source(tx, id, structure, src).await?;
    }
    Ok(id)
}

fn pg_groups(rows: &[Row]) -> Result<Vec<(Value, i64)>, ApiError> {
    rows.iter()
        .map(|r| Ok((r.try_get(0).map_err(db_err)?, r.try_get(1).map_err(db_err)?)))
        .collect()
}
