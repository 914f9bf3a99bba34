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
use tessera_api::catalog::{Catalog, DistinctRequest, SearchRequest, SortKey};
use tessera_common::adapters::demo;

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
