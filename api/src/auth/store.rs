//! Where principals, their identities, sessions and API keys live: Tiled's `database`
//! section, an SQLite file (or memory) for one node, PostgreSQL for a cluster, so that a
//! session or key made on one node is good on every node at once. The statements are
//! written once, with `$n` parameters, for both.

use std::sync::{Arc, Mutex};

use deadpool_postgres::Pool;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use crate::error::ApiError;

/// A value of a parameter or a column: the tables hold only integers and text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Val {
    Null,
    Int(i64),
    Text(String),
}

impl Val {
    pub fn int(&self) -> Option<i64> {
        match self {
            Val::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn text(&self) -> Option<&str> {
        match self {
            Val::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The text, or `""` for a missing value.
    pub fn str(&self) -> &str {
        self.text().unwrap_or("")
    }
}

impl From<&str> for Val {
    fn from(s: &str) -> Val {
        Val::Text(s.to_string())
    }
}

impl From<String> for Val {
    fn from(s: String) -> Val {
        Val::Text(s)
    }
}

impl From<i64> for Val {
    fn from(i: i64) -> Val {
        Val::Int(i)
    }
}

impl<T: Into<Val>> From<Option<T>> for Val {
    fn from(v: Option<T>) -> Val {
        v.map_or(Val::Null, Into::into)
    }
}

impl ToSql for Val {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Val::Null => Ok(IsNull::Yes),
            Val::Int(i) => i.to_sql(ty, out),
            Val::Text(s) => s.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        <i64 as ToSql>::accepts(ty) || <String as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

/// The tables, created when `init_if_not_exists` allows. Tables a later version adds are
/// created in an existing database too (each statement is `IF NOT EXISTS`).
const SCHEMA: [&str; 11] = [
    "CREATE TABLE IF NOT EXISTS auth_principals (
        uuid TEXT PRIMARY KEY, kind TEXT NOT NULL, role TEXT NOT NULL,
        created BIGINT NOT NULL, latest_activity BIGINT)",
    "CREATE TABLE IF NOT EXISTS auth_identities (
        provider TEXT NOT NULL, id TEXT NOT NULL, principal TEXT NOT NULL,
        latest_login BIGINT NOT NULL, PRIMARY KEY (provider, id))",
    "CREATE TABLE IF NOT EXISTS auth_sessions (
        uuid TEXT PRIMARY KEY, principal TEXT NOT NULL, expires BIGINT NOT NULL,
        revoked BIGINT NOT NULL DEFAULT 0, refreshes BIGINT NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS auth_api_keys (
        hash TEXT PRIMARY KEY, first_eight TEXT NOT NULL, principal TEXT NOT NULL,
        scopes TEXT NOT NULL, expires BIGINT, note TEXT, latest_activity BIGINT,
        access_tags TEXT)",
    "CREATE INDEX IF NOT EXISTS auth_identities_principal ON auth_identities (principal)",
    "CREATE INDEX IF NOT EXISTS auth_sessions_principal ON auth_sessions (principal)",
    "CREATE INDEX IF NOT EXISTS auth_api_keys_principal ON auth_api_keys (principal)",
    // Logins under way at an external provider: `hash` is the SHA-256 of the device code
    // (device flow) or of the state (browser flow); `session` is set once approved.
    "CREATE TABLE IF NOT EXISTS auth_pending (
        hash TEXT PRIMARY KEY, provider TEXT NOT NULL, user_code TEXT, state TEXT NOT NULL,
        nonce TEXT NOT NULL, verifier TEXT NOT NULL, redirect_uri TEXT NOT NULL,
        client_state TEXT, expires BIGINT NOT NULL, session TEXT, identity TEXT)",
    "CREATE UNIQUE INDEX IF NOT EXISTS auth_pending_user_code ON auth_pending (user_code)",
    // Users of a `tessera.authenticators:DatabaseAuthenticator`, with argon2id hashes.
    "CREATE TABLE IF NOT EXISTS auth_users (
        provider TEXT NOT NULL, username TEXT NOT NULL, hash TEXT NOT NULL,
        created BIGINT NOT NULL, changed BIGINT NOT NULL, PRIMARY KEY (provider, username))",
    "CREATE INDEX IF NOT EXISTS auth_pending_expires ON auth_pending (expires)",
];

/// The authentication database.
#[derive(Clone)]
pub enum Db {
    Sqlite(Arc<Mutex<rusqlite::Connection>>),
    Postgres(Pool),
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Db::Sqlite(_) => f.write_str("Db::Sqlite"),
            Db::Postgres(_) => f.write_str("Db::Postgres"),
        }
    }
}

/// A start-up failure, with what the database said.
fn failed(e: ApiError) -> anyhow::Error {
    anyhow::anyhow!("{}", e.detail)
}

fn db_err(e: impl std::fmt::Display) -> ApiError {
    tracing::error!("authentication database: {e}");
    ApiError::unavailable(
        "the authentication database cannot be reached: retry later".to_string(),
        5,
    )
}

impl Db {
    /// Opens `uri` (as the catalog's: an SQLite path or `sqlite:///...`, `:memory:`, or
    /// `postgresql://...`); creates the tables when `init`, else requires them.
    pub async fn open(uri: &str, init: bool) -> anyhow::Result<Db> {
        let db =
            match crate::config_file::CatalogDatabase::parse(uri).map_err(anyhow::Error::msg)? {
                crate::config_file::CatalogDatabase::Sqlite(path) => {
                    let conn = rusqlite::Connection::open(&path)?;
                    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000;")?;
                    Db::Sqlite(Arc::new(Mutex::new(conn)))
                }
                crate::config_file::CatalogDatabase::Postgres(uri) => {
                    Db::Postgres(crate::catalog::postgres::pool(&uri, 8, None).map_err(failed)?)
                }
            };
        let present = db
            .rows(
                match db {
                    Db::Sqlite(_) => {
                        "SELECT count(*) FROM sqlite_master WHERE name = 'auth_api_keys'"
                    }
                    Db::Postgres(_) => {
                        "SELECT count(*)::BIGINT FROM information_schema.tables \
                         WHERE table_name = 'auth_api_keys' AND table_schema = current_schema()"
                    }
                },
                vec![],
            )
            .await
            .map_err(failed)?
            .first()
            .and_then(|r| r[0].int())
            .unwrap_or(0)
            > 0;
        if !present && !init {
            anyhow::bail!(
                "the authentication database has no tables: set database.init_if_not_exists: true"
            );
        }
        for statement in SCHEMA {
            db.exec(statement, vec![]).await.map_err(failed)?;
        }
        Ok(db)
    }

    /// Runs `sql` with `params`; the number of rows changed.
    pub async fn exec(&self, sql: &str, params: Vec<Val>) -> Result<u64, ApiError> {
        match self {
            Db::Sqlite(conn) => {
                on_sqlite(conn, sql, params, |stmt, params| {
                    stmt.execute(rusqlite::params_from_iter(params))
                        .map(|n| n as u64)
                })
                .await
            }
            Db::Postgres(pool) => {
                let client = pool.get().await.map_err(db_err)?;
                client
                    .execute(sql, &pg_params(&params))
                    .await
                    .map_err(db_err)
            }
        }
    }

    /// The rows `sql` selects.
    pub async fn rows(&self, sql: &str, params: Vec<Val>) -> Result<Vec<Vec<Val>>, ApiError> {
        match self {
            Db::Sqlite(conn) => {
                on_sqlite(conn, sql, params, |stmt, params| {
                    use rusqlite::types::ValueRef;
                    let width = stmt.column_count();
                    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
                    let mut out = Vec::new();
                    while let Some(row) = rows.next()? {
                        let vals = (0..width)
                            .map(|i| {
                                Ok(match row.get_ref(i)? {
                                    ValueRef::Integer(n) => Val::Int(n),
                                    ValueRef::Text(t) => {
                                        Val::Text(String::from_utf8_lossy(t).into())
                                    }
                                    _ => Val::Null,
                                })
                            })
                            .collect::<rusqlite::Result<Vec<Val>>>()?;
                        out.push(vals);
                    }
                    Ok(out)
                })
                .await
            }
            Db::Postgres(pool) => {
                let client = pool.get().await.map_err(db_err)?;
                let stmt = client.prepare_cached(sql).await.map_err(db_err)?;
                let rows = client
                    .query(&stmt, &pg_params(&params))
                    .await
                    .map_err(db_err)?;
                rows.iter()
                    .map(|row| {
                        (0..row.len())
                            .map(|i| {
                                Ok(if *row.columns()[i].type_() == Type::INT8 {
                                    row.try_get::<_, Option<i64>>(i).map_err(db_err)?.into()
                                } else {
                                    row.try_get::<_, Option<String>>(i).map_err(db_err)?.into()
                                })
                            })
                            .collect()
                    })
                    .collect()
            }
        }
    }
}

/// Runs `run` on the prepared `sql` (its `$n` as SQLite's `?n`) and `params`, on the blocking
/// pool.
async fn on_sqlite<T: Send + 'static>(
    conn: &Arc<Mutex<rusqlite::Connection>>,
    sql: &str,
    params: Vec<Val>,
    run: impl FnOnce(
        &mut rusqlite::CachedStatement<'_>,
        Vec<rusqlite::types::Value>,
    ) -> rusqlite::Result<T>
    + Send
    + 'static,
) -> Result<T, ApiError> {
    let (conn, sql) = (conn.clone(), sql.replace('$', "?"));
    tokio::task::spawn_blocking(move || {
        let conn = conn.lock().map_err(db_err)?;
        let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
        run(&mut stmt, params.iter().map(sqlite_val).collect()).map_err(db_err)
    })
    .await
    .map_err(db_err)?
}

fn pg_params(params: &[Val]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

fn sqlite_val(v: &Val) -> rusqlite::types::Value {
    match v {
        Val::Null => rusqlite::types::Value::Null,
        Val::Int(i) => rusqlite::types::Value::Integer(*i),
        Val::Text(s) => rusqlite::types::Value::Text(s.clone()),
    }
}
