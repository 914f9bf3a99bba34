//! One catalog test suite run against every `Catalog` implementation, loaded with the demo
//! tree: lookups, paging, every query type, sorting, deep search and distinct must give the
//! same answers whichever backend holds the nodes.

#![allow(clippy::unwrap_used)] // test helpers: a failure here is a test failure

mod support;

use std::collections::HashMap;

use serde_json::json;
use support::PgSchema;
use tessera_api::catalog::memory::MemoryCatalog;
use tessera_api::catalog::postgres::PostgresCatalog;
use tessera_api::catalog::query::parse_filters;
use tessera_api::catalog::sqlite::SqliteCatalog;
use tessera_api::catalog::{
    Catalog, DataCommit, DistinctRequest, MetadataUpdate, NewNode, SearchRequest, SortKey,
};
use tessera_common::adapters::{DataSource, demo};
use tessera_common::structure::{Structure, StructureFamily};

fn p(s: &str) -> Vec<String> {
    s.split('/')
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

fn filters(pairs: &[(&str, &str)]) -> Vec<tessera_api::catalog::query::Filter> {
    let params: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (format!("filter[{k}"), v.to_string()))
        .collect();
    parse_filters(&params).unwrap()
}

async fn keys(cat: &dyn Catalog, parent: &str, req: SearchRequest) -> (Vec<String>, usize) {
    let page = cat.search(&p(parent), &req).await.unwrap();
    (
        page.nodes.iter().map(|n| n.key().to_string()).collect(),
        page.count,
    )
}

fn all() -> SearchRequest {
    SearchRequest {
        limit: 100,
        ..Default::default()
    }
}

async fn suite(cat: &dyn Catalog) {
    // Lookups.
    let img = cat
        .get(&p("nested/images/medium_image"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(img.family.as_str(), "array");
    assert_eq!(img.path, p("nested/images/medium_image"));
    assert!(img.structure.is_some() && img.source.is_some());
    assert!(cat.get(&p("nested/nope")).await.unwrap().is_none());
    let ds = cat
        .get(&p("structured_data/xarray_dataset"))
        .await
        .unwrap()
        .unwrap();
    assert!(ds.inline_contents);

    // Paging and counts.
    let (k, count) = keys(
        cat,
        "",
        SearchRequest {
            offset: 2,
            limit: 3,
            ..all()
        },
    )
    .await;
    assert_eq!((k, count), (p("tables/structured_data/flat_array"), 8));
    let (k, count) = keys(cat, "", SearchRequest { limit: 0, ..all() }).await;
    assert!(k.is_empty());
    assert_eq!(count, 8);

    // Every query type.
    // (container, filter parameters after "filter[", expected keys in order)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "tables",
            vec![
                ("eq][condition][key]", "color"),
                ("eq][condition][value]", "\"red\""),
            ],
            "short_table/wide_table",
        ),
        (
            "",
            vec![
                ("noteq][condition][key]", "animal"),
                ("noteq][condition][value]", "\"cat\""),
            ],
            "",
        ),
        (
            "nested",
            vec![
                ("noteq][condition][key]", "animal"),
                ("noteq][condition][value]", "\"cat\""),
            ],
            "cubes",
        ),
        (
            "",
            vec![
                ("comparison][condition][operator]", "gt"),
                ("comparison][condition][key]", "precision"),
                ("comparison][condition][value]", "3"),
            ],
            "scalars",
        ),
        (
            "tables",
            vec![
                ("in][condition][key]", "color"),
                ("in][condition][value]", "[\"green\", \"blue\"]"),
            ],
            "long_table",
        ),
        (
            "tables",
            vec![
                ("notin][condition][key]", "color"),
                ("notin][condition][value]", "[\"green\"]"),
            ],
            "short_table/wide_table",
        ),
        (
            "",
            vec![
                ("contains][condition][key]", "color"),
                ("contains][condition][value]", "\"reen\""),
            ],
            "",
        ),
        (
            "",
            vec![
                ("keypresent][condition][key]", "precision"),
                ("keypresent][condition][exists]", "true"),
            ],
            "scalars",
        ),
        (
            "tables",
            vec![
                ("regex][condition][key]", "color"),
                ("regex][condition][pattern]", "^RE"),
                ("regex][condition][case_sensitive]", "false"),
            ],
            "short_table/wide_table",
        ),
        (
            "tables",
            vec![
                ("like][condition][key]", "color"),
                ("like][condition][pattern]", "\"gr%\""),
            ],
            "long_table",
        ),
        (
            "nested",
            vec![("fulltext][condition][text]", "dog")],
            "cubes",
        ),
        (
            "structured_data",
            vec![
                ("specs][condition][include]", "[\"xarray_dataset\"]"),
                ("specs][condition][exclude]", "[]"),
            ],
            "xarray_dataset",
        ),
        (
            "nested",
            vec![("structure_family][condition][value]", "sparse")],
            "sparse_image",
        ),
        ("", vec![("lookup][condition][key]", "tables")], "tables"),
        (
            "",
            vec![("keys_filter][condition][keys]", "[\"tables\", \"nested\"]")],
            "nested/tables",
        ),
        (
            "tables",
            vec![
                ("eq][condition][key]", "animal"),
                ("eq][condition][key]", "color"),
                ("eq][condition][value]", "\"dog\""),
                ("eq][condition][value]", "\"green\""),
            ],
            "long_table",
        ),
    ];
    for (parent, f, want) in cases {
        let req = SearchRequest {
            filters: filters(&f),
            ..all()
        };
        let (got, count) = keys(cat, parent, req).await;
        assert_eq!(got, p(want), "{parent} {f:?}");
        assert_eq!(count, got.len());
    }

    // Sorting: descending reverses the ascending order, ties included.
    let req = SearchRequest {
        sort: vec![SortKey::Metadata {
            key: "color".into(),
            descending: true,
        }],
        ..all()
    };
    assert_eq!(
        keys(cat, "tables", req).await.0,
        p("wide_table/short_table/long_table")
    );
    let req = SearchRequest {
        sort: vec![SortKey::Default { descending: true }],
        limit: 2,
        ..all()
    };
    assert_eq!(keys(cat, "", req).await.0, p("dynamic/high_entropy"));

    // Deep search walks the tree depth first and reports true paths.
    let page = cat
        .search(
            &[],
            &SearchRequest {
                deep: Some(64),
                limit: 3,
                ..all()
            },
        )
        .await
        .unwrap();
    let paths: Vec<String> = page.nodes.iter().map(|n| n.path.join("/")).collect();
    assert_eq!(paths, ["scalars", "scalars/pi", "scalars/e_arr"]);
    assert!(page.count > 30);

    // Distinct with counts, most frequent first.
    let d = cat
        .distinct(
            &p("tables"),
            &[],
            &DistinctRequest {
                metadata: vec!["color".into()],
                counts: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        d["metadata"]["color"],
        json!([{"value": "red", "count": 2}, {"value": "green", "count": 1}])
    );

    // A search below an array is a 404.
    let err = cat.search(&p("flat_array"), &all()).await.unwrap_err();
    assert_eq!(err.status.as_u16(), 404);
}

#[tokio::test]
async fn memory_catalog_passes_the_suite() {
    suite(&MemoryCatalog::from_tree(demo::tree().unwrap())).await;
}

#[tokio::test]
async fn sqlite_catalog_passes_the_suite() {
    let cat = SqliteCatalog::open(":memory:").unwrap();
    cat.load_tree(demo::tree().unwrap()).unwrap();
    suite(&cat).await;
}

#[tokio::test]
async fn sqlite_catalog_persists_in_its_file() {
    let path = std::env::temp_dir().join(format!("tessera-cat-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    {
        let cat = SqliteCatalog::open(path.to_str().unwrap()).unwrap();
        cat.load_tree(demo::tree().unwrap()).unwrap();
    }
    let reopened = SqliteCatalog::open(path.to_str().unwrap()).unwrap();
    let n = reopened
        .get(&p("tables/long_table"))
        .await
        .unwrap()
        .unwrap();
    let mut md = HashMap::new();
    md.insert("color", n.metadata["color"].clone());
    assert_eq!(md["color"], "green");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

#[tokio::test]
async fn postgres_catalog_passes_the_suite() {
    let schema = PgSchema::create("catalog").await;
    let cat = PostgresCatalog::connect(&schema.config(), 4).await.unwrap();
    cat.load_tree(demo::tree().unwrap()).await.unwrap();
    suite(&cat).await;
}

fn new_node(key: &str, family: &str, metadata: serde_json::Value) -> NewNode {
    NewNode {
        key: key.into(),
        family: StructureFamily::parse(family).unwrap(),
        metadata: metadata.as_object().unwrap().clone(),
        specs: Vec::new(),
        access_tags: Vec::new(),
        data: None,
        children: Vec::new(),
    }
}

fn array_data(uri: &str, shape: u64) -> (Structure, DataSource) {
    let structure = Structure::from_json(
        StructureFamily::Array,
        json!({"data_type": {"endianness": "little", "kind": "f", "itemsize": 8, "dt_units": null},
               "chunks": [[shape]], "shape": [shape], "dims": null, "resizable": false}),
    )
    .unwrap();
    let source: DataSource = serde_json::from_value(json!({
        "structure_family": "array", "mimetype": "application/x-zarr", "parameters": {},
        "management": "writable",
        "assets": [{"data_uri": uri, "is_directory": true, "parameter": "data_uri", "num": null}],
    }))
    .unwrap();
    (structure, source)
}

/// Every write a catalog supports, and what each leaves behind.
async fn writes(cat: &dyn Catalog) {
    let root_count = cat.search(&[], &all()).await.unwrap().count;
    let w = cat
        .create(&[], new_node("w", "container", json!({"beamline": "x1"})))
        .await
        .unwrap();
    assert_eq!(w.path, p("w"));
    assert_eq!(cat.search(&[], &all()).await.unwrap().count, root_count + 1);
    let again = cat.create(&[], new_node("w", "container", json!({}))).await;
    assert_eq!(again.unwrap_err().status.as_u16(), 409);
    let missing = cat
        .create(&p("nope"), new_node("x", "container", json!({})))
        .await;
    assert_eq!(missing.unwrap_err().status.as_u16(), 404);

    let mut arr = new_node("a", "array", json!({"scan_id": 7}));
    arr.data = Some(array_data("file://localhost/data/one", 4));
    let a = cat.create(&p("w"), arr).await.unwrap();
    assert_eq!(
        a.structure.as_ref().unwrap().family(),
        StructureFamily::Array
    );
    assert_eq!(
        a.source.as_ref().unwrap().assets[0].data_uri,
        "file://localhost/data/one"
    );
    let inside = cat
        .create(&p("w/a"), new_node("x", "container", json!({})))
        .await;
    assert_eq!(inside.unwrap_err().status.as_u16(), 405);
    let found = cat
        .search(
            &p("w"),
            &SearchRequest {
                filters: filters(&[
                    ("eq][condition][key]", "scan_id"),
                    ("eq][condition][value]", "7"),
                ]),
                ..all()
            },
        )
        .await
        .unwrap();
    assert_eq!(found.count, 1);

    // Metadata updates keep the old version as a revision unless told not to.
    let updated = cat
        .update_metadata(
            &p("w/a"),
            Box::new(|n| {
                let mut metadata = n.metadata.clone();
                metadata.insert("scan_id".into(), json!(8));
                Ok(MetadataUpdate {
                    metadata,
                    specs: n.specs.clone(),
                    access_tags: n.access_tags.clone(),
                })
            }),
            false,
        )
        .await
        .unwrap();
    assert_eq!(updated.metadata["scan_id"], 8);
    let (revs, count) = cat.revisions(&p("w/a"), 0, 10).await.unwrap();
    assert_eq!((count, revs[0].number), (1, 1));
    assert_eq!(revs[0].metadata["scan_id"], 7);
    let failing = cat
        .update_metadata(
            &p("w/a"),
            Box::new(|_| Err(tessera_api::error::ApiError::bad_request("patch failed"))),
            false,
        )
        .await;
    assert_eq!(failing.unwrap_err().status.as_u16(), 400);
    let unchanged = cat.get(&p("w/a")).await.unwrap().unwrap();
    assert_eq!(
        unchanged.metadata["scan_id"], 8,
        "a failed update changes nothing"
    );
    assert_eq!(cat.revisions(&p("w/a"), 0, 10).await.unwrap().1, 1);
    cat.delete_revision(&p("w/a"), 1).await.unwrap();
    let err = cat.delete_revision(&p("w/a"), 1).await.unwrap_err();
    assert_eq!(err.status.as_u16(), 404);

    // A data write becomes visible in one step: new location, new structure, new version.
    let (grown, _) = array_data("unused", 6);
    let committed = cat
        .commit_data(
            &p("w/a"),
            DataCommit {
                structure: Some(grown.clone()),
                data_uri: Some("file://localhost/data/two".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(committed.data_version, a.data_version + 1);
    assert_eq!(committed.structure, Some(grown));
    assert_eq!(
        committed.source.as_ref().unwrap().assets[0].data_uri,
        "file://localhost/data/two"
    );

    // Deletes: a non-empty container needs recursive; the removed data sources come back.
    let err = cat.delete(&p("w"), false, false).await.unwrap_err();
    assert_eq!(err.status.as_u16(), 409);
    let err = cat.delete(&p("w"), true, true).await.unwrap_err();
    assert_eq!(
        err.status.as_u16(),
        409,
        "managed data needs external_only=false"
    );
    assert!(cat.get(&p("w/a")).await.unwrap().is_some());
    let removed = cat.delete(&p("w"), true, false).await.unwrap();
    assert_eq!(removed.len(), 1);
    assert!(cat.get(&p("w/a")).await.unwrap().is_none());
    assert!(cat.get(&p("w")).await.unwrap().is_none());
    assert_eq!(cat.search(&[], &all()).await.unwrap().count, root_count);
    assert_eq!(
        cat.delete(&[], true, false)
            .await
            .unwrap_err()
            .status
            .as_u16(),
        405
    );
}

#[tokio::test]
async fn sqlite_catalog_writes() {
    let cat = SqliteCatalog::open(":memory:").unwrap();
    cat.load_tree(demo::tree().unwrap()).unwrap();
    writes(&cat).await;
}

#[tokio::test]
async fn postgres_catalog_writes() {
    let schema = PgSchema::create("writes").await;
    let cat = PostgresCatalog::connect(&schema.config(), 4).await.unwrap();
    cat.load_tree(demo::tree().unwrap()).await.unwrap();
    writes(&cat).await;
}

#[tokio::test]
async fn memory_catalog_is_read_only() {
    let cat = MemoryCatalog::from_tree(demo::tree().unwrap());
    let err = cat
        .create(&[], new_node("w", "container", json!({})))
        .await
        .unwrap_err();
    assert_eq!(err.status.as_u16(), 405);
}

#[tokio::test]
async fn distinct_agrees_across_catalogs() {
    let memory = MemoryCatalog::from_tree(demo::tree().unwrap());
    let sqlite = SqliteCatalog::open(":memory:").unwrap();
    sqlite.load_tree(demo::tree().unwrap()).unwrap();
    let schema = PgSchema::create("distinct").await;
    let pg = PostgresCatalog::connect(&schema.config(), 2).await.unwrap();
    pg.load_tree(demo::tree().unwrap()).await.unwrap();
    let req = DistinctRequest {
        metadata: vec!["color".into(), "animal".into()],
        structure_families: true,
        specs: true,
        counts: true,
    };
    for parent in ["", "nested", "tables", "structured_data"] {
        let want = memory.distinct(&p(parent), &[], &req).await.unwrap();
        for (name, cat) in [("sqlite", &sqlite as &dyn Catalog), ("postgres", &pg)] {
            let got = cat.distinct(&p(parent), &[], &req).await.unwrap();
            assert_eq!(got, want, "{name} in '{parent}'");
        }
    }
}

#[tokio::test]
async fn faceted_distinct_counts_follow_every_write() {
    let schema = PgSchema::create("facets").await;
    let pg = PostgresCatalog::connect(&schema.config(), 2).await.unwrap();
    pg.load_tree(demo::tree().unwrap()).await.unwrap();
    let req = DistinctRequest {
        metadata: vec!["color".into(), "animal".into(), "plan.name".into()],
        structure_families: false,
        specs: false,
        counts: true,
    };
    // The answer grouping gives, before any facet exists.
    let before = pg.distinct(&p(""), &[], &req).await.unwrap();
    pg.facet_key("color").await.unwrap();
    pg.facet_key("plan.name").await.unwrap();
    assert_eq!(
        pg.distinct(&p(""), &[], &req).await.unwrap(),
        before,
        "backfilled counts equal grouping"
    );

    // Inserts, a metadata change and deletes keep the kept counts equal to what SQLite's
    // grouping answers after the same writes.
    let memory = SqliteCatalog::open(":memory:").unwrap();
    memory.load_tree(demo::tree().unwrap()).unwrap();
    for (i, (color, plan)) in [
        ("red", "count"),
        ("blue", "scan"),
        ("red", "scan"),
        ("teal", "scan"),
    ]
    .iter()
    .enumerate()
    {
        let md = serde_json::json!({"color": color, "plan": {"name": plan}});
        let node = new_node(&format!("new{i}"), "container", md);
        pg.create(&p(""), node.clone()).await.unwrap();
        memory.create(&p(""), node).await.unwrap();
    }
    assert_eq!(
        pg.distinct(&p(""), &[], &req).await.unwrap(),
        memory.distinct(&p(""), &[], &req).await.unwrap()
    );
    for cat in [&pg as &dyn Catalog, &memory] {
        let update: tessera_api::catalog::Updater = Box::new(|n| {
            let mut metadata = n.metadata.clone();
            metadata.insert("color".into(), serde_json::json!("blue"));
            metadata.remove("plan");
            Ok(tessera_api::catalog::MetadataUpdate {
                metadata,
                specs: n.specs.clone(),
                access_tags: n.access_tags.clone(),
            })
        });
        cat.update_metadata(&p("new3"), update, false)
            .await
            .unwrap();
        cat.delete(&p("new0"), true, false).await.unwrap();
    }
    let got = pg.distinct(&p(""), &[], &req).await.unwrap();
    assert_eq!(got, memory.distinct(&p(""), &[], &req).await.unwrap());
    // The faceted answer came from the kept counts: make them disagree and see it.
    let sql = schema.connect().await;
    let kept = sql
        .execute(
            "UPDATE facet_counts SET count = count + 1000 WHERE key = 'color' \
             AND value = '\"red\"' AND parent = (SELECT id FROM nodes WHERE parent IS NULL)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(kept, 1, "the root's red children are counted once");
    let tampered = pg.distinct(&p(""), &[], &req).await.unwrap();
    assert_ne!(tampered["metadata"]["color"], got["metadata"]["color"]);
    assert_eq!(tampered["metadata"]["animal"], got["metadata"]["animal"]);
    assert!(
        !got["metadata"]["color"].to_string().contains("teal"),
        "a value no child has any more is gone: {got}"
    );
}

#[tokio::test]
async fn replace_all_swaps_taken_keys_and_their_subtrees() {
    let sqlite = SqliteCatalog::open(":memory:").unwrap();
    sqlite.load_tree(demo::tree().unwrap()).unwrap();
    let schema = PgSchema::create("replace_all").await;
    let pg = PostgresCatalog::connect(&schema.config(), 2).await.unwrap();
    pg.load_tree(demo::tree().unwrap()).await.unwrap();
    for (name, cat) in [("sqlite", &sqlite as &dyn Catalog), ("postgres", &pg)] {
        cat.create(
            &p(""),
            new_node("b", "container", serde_json::json!({"first": true})),
        )
        .await
        .unwrap();
        cat.create(
            &p("b"),
            new_node("inner", "container", serde_json::json!({})),
        )
        .await
        .unwrap();
        let nodes = ["a", "b", "c"]
            .iter()
            .map(|k| new_node(k, "container", serde_json::json!({"batch": k})))
            .collect();
        assert_eq!(cat.replace_all(&p(""), nodes).await.unwrap(), 3, "{name}");
        let b = cat.get(&p("b")).await.unwrap().unwrap();
        assert_eq!(
            b.metadata.get("first"),
            None,
            "{name}: the old node is gone"
        );
        assert_eq!(b.metadata["batch"], serde_json::json!("b"), "{name}");
        assert!(
            cat.get(&p("b/inner")).await.unwrap().is_none(),
            "{name}: and its subtree with it"
        );
        assert_eq!(
            cat.get(&p("c")).await.unwrap().unwrap().metadata["batch"],
            serde_json::json!("c"),
            "{name}"
        );
        let err = cat
            .replace_all(
                &p("a/nope"),
                vec![new_node("x", "container", serde_json::json!({}))],
            )
            .await
            .unwrap_err();
        assert_eq!(err.status, 404, "{name}");
    }
    // The refused call's transaction is rolled back by its connection task: let the pool
    // close before the schema is dropped, or the drop waits on its locks and gives up.
    drop(pg);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
}

/// Data locks of a PostgreSQL catalog hold across catalogs (nodes) sharing it: one holder at a
/// time, `try_lock_data` does not wait, and dropping the guard releases the lock.
#[tokio::test]
async fn postgres_data_locks_hold_across_nodes() {
    let schema = PgSchema::create("locks").await;
    let a = PostgresCatalog::connect(&schema.config(), 2).await.unwrap();
    let b = PostgresCatalog::connect(&schema.config(), 2).await.unwrap();
    let path = vec!["tables".to_string(), "log".to_string()];
    let held = a.try_lock_data(&path).await.unwrap().expect("a free lock");
    assert!(b.try_lock_data(&path).await.unwrap().is_none());
    let other = vec!["tables".to_string(), "other".to_string()];
    assert!(b.try_lock_data(&other).await.unwrap().is_some());
    // b waits for a's guard.
    let waiting = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let _guard = b.lock_data(&path).await.unwrap();
        started.elapsed()
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    drop(held);
    let waited = waiting.await.unwrap();
    assert!(
        waited >= std::time::Duration::from_millis(250),
        "{waited:?}"
    );
}
