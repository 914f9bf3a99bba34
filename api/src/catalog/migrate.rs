//! Numbered SQL migrations of the catalog (PostgreSQL and SQLite), applied in order and
//! recorded in `schema_migrations`. PostgreSQL runs them under an advisory lock so several API
//! nodes can start at once; SQLite under an immediate write transaction.

/// One migration: its number, name and SQL for each backend.
struct Migration {
    version: i32,
    name: &'static str,
    postgres: &'static str,
    sqlite: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "catalog",
        postgres: include_str!("../../../migrations/postgres/0001_catalog.sql"),
        sqlite: include_str!("../../../migrations/sqlite/0001_catalog.sql"),
    },
    Migration {
        version: 2,
        name: "child_count",
        postgres: include_str!("../../../migrations/postgres/0002_child_count.sql"),
        sqlite: include_str!("../../../migrations/sqlite/0002_child_count.sql"),
    },
    Migration {
        version: 3,
        name: "facets",
        postgres: include_str!("../../../migrations/postgres/0003_facets.sql"),
        sqlite: include_str!("../../../migrations/sqlite/0003_facets.sql"),
    },
];

/// The advisory lock that serialises migrations across API nodes ("tessera" in ASCII).
const LOCK_KEY: i64 = 0x0074_6573_7365_7261;

/// Why migrating failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the catalog is at migration {found}, newer than this tessera knows ({known})")]
    TooNew { found: i32, known: i32 },
}

fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// The migrations a catalog at version `found` still needs; refuses a newer catalog.
fn pending(found: i32) -> Result<impl Iterator<Item = &'static Migration>, MigrateError> {
    if found > latest() {
        return Err(MigrateError::TooNew {
            found,
            known: latest(),
        });
    }
    Ok(MIGRATIONS.iter().filter(move |m| m.version > found))
}

/// Applies the missing migrations to a PostgreSQL catalog; returns the versions applied.
pub async fn migrate_postgres(
    client: &mut tokio_postgres::Client,
) -> Result<Vec<i32>, MigrateError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await?;
    let result = apply_postgres(client).await;
    // Unlock even when a migration failed, so other nodes report their own error.
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await?;
    result
}

async fn apply_postgres(client: &mut tokio_postgres::Client) -> Result<Vec<i32>, MigrateError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    INTEGER PRIMARY KEY,
                 name       TEXT NOT NULL,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await?;
    let found: Option<i32> = client
        .query_one("SELECT max(version) FROM schema_migrations", &[])
        .await?
        .get(0);
    let found = found.unwrap_or(0);
    let mut applied = Vec::new();
    for m in pending(found)? {
        let tx = client.transaction().await?;
        tx.batch_execute(m.postgres).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&m.version, &m.name],
        )
        .await?;
        tx.commit().await?;
        applied.push(m.version);
    }
    Ok(applied)
}

/// Applies the missing migrations to an SQLite catalog; returns the versions applied.
pub fn migrate_sqlite(conn: &mut rusqlite::Connection) -> Result<Vec<i32>, MigrateError> {
    // IMMEDIATE takes the write lock now, so two processes cannot both apply a migration.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             name       TEXT NOT NULL,
             applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))",
    )?;
    let found: i32 = tx.query_row(
        "SELECT coalesce(max(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    let mut applied = Vec::new();
    for m in pending(found)? {
        tx.execute_batch(m.sqlite)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES (?1, ?2)",
            rusqlite::params![m.version, m.name],
        )?;
        applied.push(m.version);
    }
    tx.commit()?;
    Ok(applied)
}
