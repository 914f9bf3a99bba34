//! Catalog migrations against a real PostgreSQL (127.0.0.1:5432, database `test`, one fresh
//! schema per test, dropped afterwards) and a real SQLite file.

#![allow(clippy::unwrap_used)] // test helpers: a failure here is a test failure

mod support;

use support::PgSchema;
use tessera_api::catalog::migrate::{migrate_postgres, migrate_sqlite};

const TABLES: [&str; 6] = [
    "nodes",
    "node_closure",
    "data_sources",
    "assets",
    "data_source_assets",
    "revisions",
];

#[tokio::test]
async fn postgres_migrates_once_under_concurrent_starts() {
    let schema = PgSchema::create("migrate").await;
    let config = schema.config();
    let admin = schema.connect().await;

    // Three API nodes starting at once: the advisory lock lets exactly one apply each step.
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let config = config.clone();
        tasks.push(tokio::spawn(async move {
            let (mut c, conn) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            migrate_postgres(&mut c).await.unwrap()
        }));
    }
    let mut applied = Vec::new();
    for t in tasks {
        applied.extend(t.await.unwrap());
    }
    applied.sort();
    assert_eq!(
        applied,
        vec![1, 2, 3],
        "each migration is applied exactly once"
    );

    for table in TABLES {
        let n: i64 = admin
            .query_one(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2",
                &[&schema.name, &table],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 1, "table {table}");
    }
    // The schema really works: a root and a child, and the metadata index is usable.
    admin
        .batch_execute(
            "INSERT INTO nodes (parent, key, structure_family) VALUES (NULL, '', 'container');
             INSERT INTO nodes (parent, key, structure_family, metadata)
                 SELECT id, 'scan1', 'array', '{\"color\": \"red\"}' FROM nodes WHERE parent IS NULL;",
        )
        .await
        .unwrap();
    let hits: i64 = admin
        .query_one(
            "SELECT count(*) FROM nodes WHERE metadata @> '{\"color\": \"red\"}' AND metadata_text @@ 'red'::tsquery",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(hits, 1);
    let duplicate = admin
        .batch_execute(
            "INSERT INTO nodes (parent, key, structure_family) SELECT id, 'scan1', 'array' FROM nodes WHERE parent IS NULL",
        )
        .await;
    assert!(duplicate.is_err(), "a key is unique within its container");

    // The child counts follow inserts and deletes, including cascades.
    let count = || async {
        admin
            .query_one("SELECT child_count FROM nodes WHERE parent IS NULL", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    assert_eq!(count().await, 1);
    admin
        .batch_execute(
            "INSERT INTO nodes (parent, key, structure_family) SELECT id, 'scan2', 'container' FROM nodes WHERE parent IS NULL;
             INSERT INTO nodes (parent, key, structure_family) SELECT id, 'inner', 'array' FROM nodes WHERE key = 'scan2';",
        )
        .await
        .unwrap();
    assert_eq!(count().await, 2);
    admin
        .batch_execute("DELETE FROM nodes WHERE key IN ('scan1', 'scan2')")
        .await
        .unwrap();
    assert_eq!(count().await, 0);

    let mut again = schema.connect().await;
    assert!(migrate_postgres(&mut again).await.unwrap().is_empty());
}

#[test]
fn sqlite_migrates_once_and_enforces_the_tree() {
    let dir = std::env::temp_dir().join(format!("tessera-migrate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("catalog.db");
    let _ = std::fs::remove_file(&path);
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(migrate_sqlite(&mut conn).unwrap(), vec![1, 2, 3]);
    let mut other = rusqlite::Connection::open(&path).unwrap();
    assert!(migrate_sqlite(&mut other).unwrap().is_empty());
    for table in TABLES {
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "table {table}");
    }
    conn.execute_batch(
        "INSERT INTO nodes (parent, key, structure_family) VALUES (NULL, '', 'container');",
    )
    .unwrap();
    let second_root = conn.execute_batch(
        "INSERT INTO nodes (parent, key, structure_family) VALUES (NULL, '', 'container');",
    );
    assert!(second_root.is_err(), "there is one root");
    let bad_json = conn.execute_batch(
        "INSERT INTO nodes (parent, key, structure_family, metadata) VALUES (1, 'x', 'array', '{oops');",
    );
    assert!(bad_json.is_err(), "metadata must be JSON");
    drop((conn, other));
    std::fs::remove_dir_all(&dir).unwrap();
}
