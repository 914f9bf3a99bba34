//! The PostgreSQL catalog on a container with many children: the hot queries use indexes
//! (checked with EXPLAIN, after ANALYZE), keyset pages equal offset pages, and counts stay
//! exact up to the limit and are estimated, never below the truth's lower bound, beyond it.

#![allow(clippy::unwrap_used)] // test helpers: a failure here is a test failure

mod support;

use support::PgSchema;
use tessera_api::catalog::postgres::{EXACT_COUNT_LIMIT, PostgresCatalog};
use tessera_api::catalog::query::parse_filters;
use tessera_api::catalog::{Catalog, SearchRequest, SortKey};
use tessera_common::node::TreeNode;
use tessera_common::structure::StructureFamily;

const RUNS: i64 = 30_000;

fn filters(pairs: &[(&str, &str)]) -> Vec<tessera_api::catalog::query::Filter> {
    let params: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (format!("filter[{k}"), v.to_string()))
        .collect();
    parse_filters(&params).unwrap()
}

fn container(key: &str, children: Vec<TreeNode>) -> TreeNode {
    TreeNode {
        key: key.into(),
        family: StructureFamily::Container,
        metadata: Default::default(),
        specs: Vec::new(),
        structure: None,
        source: None,
        inline_contents: false,
        children,
    }
}

async fn loaded() -> (PgSchema, PostgresCatalog) {
    let schema = PgSchema::create("scale").await;
    let cat = PostgresCatalog::connect(&schema.config(), 2).await.unwrap();
    cat.load_tree(container("", vec![container("raw", vec![])]))
        .await
        .unwrap();
    let db = schema.connect().await;
    db.batch_execute(&format!(
        "INSERT INTO nodes (parent, key, structure_family, metadata, specs)
         SELECT r.id, 'scan_' || lpad(g::text, 6, '0'), 'container',
                jsonb_build_object('scan_id', g,
                    'plan_name', (ARRAY['count', 'scan', 'grid_scan', 'rel_scan'])[g % 4 + 1],
                    'time', 1.7e9 + g,
                    'note', 'note' || g,
                    'sample', jsonb_build_object('name', 'sample ' || (g % 100), 'kind', 'powder')),
                '[{{\"name\": \"BlueskyRun\", \"version\": \"1\"}}]'::jsonb
         FROM generate_series(1, {RUNS}) g, (SELECT id FROM nodes WHERE key = 'raw') r;
         INSERT INTO node_closure (ancestor, descendant, depth)
         SELECT n.id, n.id, 0 FROM nodes n WHERE n.key LIKE 'scan_%'
         UNION ALL SELECT n.parent, n.id, 1 FROM nodes n WHERE n.key LIKE 'scan_%'
         UNION ALL SELECT r.parent, n.id, 2 FROM nodes n JOIN nodes r ON r.id = n.parent
           WHERE n.key LIKE 'scan_%';
         ANALYZE nodes; ANALYZE node_closure;"
    ))
    .await
    .unwrap();
    (schema, cat)
}

fn raw() -> Vec<String> {
    vec!["raw".to_string()]
}

#[tokio::test]
async fn hot_queries_use_indexes() {
    let (_schema, cat) = loaded().await;
    let cases = [
        (
            "eq",
            filters(&[
                ("eq][condition][key]", "scan_id"),
                ("eq][condition][value]", "1234"),
            ]),
        ),
        (
            "fulltext",
            filters(&[("fulltext][condition][text]", "note1234")]),
        ),
        (
            "lookup",
            filters(&[("lookup][condition][key]", "scan_000042")]),
        ),
        (
            "in",
            filters(&[
                ("in][condition][key]", "scan_id"),
                ("in][condition][value]", "[5, 6]"),
            ]),
        ),
        (
            "contains",
            filters(&[
                ("contains][condition][key]", "tags"),
                ("contains][condition][value]", "\"hot\""),
            ]),
        ),
        (
            "keys_filter",
            filters(&[("keys_filter][condition][keys]", "[\"scan_000001\"]")]),
        ),
        ("listing", Vec::new()),
    ];
    for (name, f) in cases {
        let req = SearchRequest {
            filters: f,
            limit: 100,
            ..Default::default()
        };
        let plan = cat.explain(&raw(), &req, true).await.unwrap();
        assert!(
            !plan.contains("Seq Scan on nodes"),
            "{name} scans the table:\n{plan}"
        );
    }
}

#[tokio::test]
async fn keyset_pages_equal_offset_pages_and_counts_hold() {
    let (_schema, cat) = loaded().await;
    // The container's length comes from its kept child count.
    let all = cat.search(&raw(), &SearchRequest::default()).await.unwrap();
    assert_eq!(all.count as i64, RUNS);

    // Walk three pages by cursor and compare with the same pages by offset, both directions.
    for descending in [false, true] {
        let sort = vec![SortKey::Default { descending }];
        let mut after = None;
        for page in 0..3 {
            let by_cursor = cat
                .search(
                    &raw(),
                    &SearchRequest {
                        sort: sort.clone(),
                        offset: page * 50,
                        limit: 50,
                        after,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            let by_offset = cat
                .search(
                    &raw(),
                    &SearchRequest {
                        sort: sort.clone(),
                        offset: page * 50,
                        limit: 50,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            let keys = |p: &tessera_api::catalog::SearchPage| -> Vec<String> {
                p.nodes.iter().map(|n| n.key().to_string()).collect()
            };
            assert_eq!(keys(&by_cursor), keys(&by_offset));
            assert_eq!(by_cursor.nodes.len(), 50);
            after = by_cursor.cursor;
            assert!(after.is_some());
        }
    }

    // A filter with few matches is counted exactly.
    let few = cat
        .search(
            &raw(),
            &SearchRequest {
                filters: filters(&[
                    ("comparison][condition][operator]", "lt"),
                    ("comparison][condition][key]", "scan_id"),
                    ("comparison][condition][value]", "101"),
                ]),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(few.count, 100);
    assert_eq!(few.nodes.len(), 10);

    // One with many matches is estimated: at least the exact lower bound, near the truth.
    let many = cat
        .search(
            &raw(),
            &SearchRequest {
                filters: filters(&[
                    ("eq][condition][key]", "sample.kind"),
                    ("eq][condition][value]", "\"powder\""),
                ]),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(many.count as i64 > EXACT_COUNT_LIMIT, "{}", many.count);
    assert!(
        (many.count as i64 - RUNS).abs() < RUNS / 2,
        "estimate {} too far from {RUNS}",
        many.count
    );
}

#[tokio::test]
async fn indexed_keys_serve_ranges_and_sorts() {
    let (_schema, cat) = loaded().await;
    let range = SearchRequest {
        filters: filters(&[
            ("comparison][condition][operator]", "ge"),
            ("comparison][condition][key]", "time"),
            ("comparison][condition][value]", "1700029000"),
        ]),
        limit: 10,
        ..Default::default()
    };
    let latest = SearchRequest {
        sort: vec![SortKey::Metadata {
            key: "time".into(),
            descending: true,
        }],
        limit: 10,
        ..Default::default()
    };
    let name = cat.index_key("time").await.unwrap();
    for req in [&range, &latest] {
        let plan = cat.explain(&raw(), req, true).await.unwrap();
        assert!(!plan.contains("Seq Scan on nodes"), "{plan}");
        assert!(plan.contains(&name), "the new index is used:\n{plan}");
    }
    // And the answers are right: the last 1001 runs match, the newest comes first.
    let page = cat.search(&raw(), &range).await.unwrap();
    assert_eq!(page.count, 1001);
    let newest = cat.search(&raw(), &latest).await.unwrap();
    assert_eq!(newest.nodes[0].key(), format!("scan_{RUNS:06}"));
}

#[tokio::test]
async fn large_containers_count_common_matches_from_a_sample() {
    let (_schema, cat) = loaded().await;
    let cat = cat.with_sample_above(1_000, 100);
    let count = |pairs: Vec<(&'static str, &'static str)>| {
        let cat = &cat;
        async move {
            let req = SearchRequest {
                filters: filters(&pairs),
                limit: 5,
                ..Default::default()
            };
            cat.search(&raw(), &req).await.unwrap()
        }
    };
    // Every run matches: the sample says so (30,000 of 30,000, within a few percent).
    let all = count(vec![
        ("eq][condition][key]", "sample.kind"),
        ("eq][condition][value]", "\"powder\""),
    ])
    .await;
    assert!(
        (all.count as i64 - RUNS).abs() <= RUNS / 10,
        "sampled count {} for {RUNS} matches",
        all.count
    );
    assert_eq!(all.nodes.len(), 5);
    // A quarter match (plan_name cycles over four names): still estimated, near 7,500 x 4.
    let quarter = count(vec![
        ("eq][condition][key]", "plan_name"),
        ("eq][condition][value]", "\"scan\""),
    ])
    .await;
    assert!(
        (quarter.count as i64 - RUNS / 4).abs() <= RUNS / 20,
        "sampled count {} for {} matches",
        quarter.count,
        RUNS / 4
    );
    // Few matches fall back to the exact count.
    let few = count(vec![
        ("comparison][condition][operator]", "lt"),
        ("comparison][condition][key]", "scan_id"),
        ("comparison][condition][value]", "51"),
    ])
    .await;
    assert_eq!(few.count, 50);
}
