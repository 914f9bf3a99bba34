//! The HTTP API end to end on the demo tree: a real server on a free port, driven with reqwest.
//! Wire-level checks (shapes of documents, bytes, status codes); the Tiled-client suite in
//! tests/compat covers the same ground through the client.

#![allow(clippy::unwrap_used)] // test helpers: a failure here is a test failure

use serde_json::Value;
use tessera_api::config::Config;

mod support;
use support::DemoServer;

fn f64s(bytes: &[u8]) -> Vec<f64> {
    bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[tokio::test]
async fn root_document_has_what_the_client_validates() {
    let s = DemoServer::start().await;
    let r = s.json("/api/v1/").await;
    assert_eq!(r["api_version"], 0);
    assert_eq!(r["authentication"]["required"], false);
    assert!(
        r["authentication"]["providers"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(r["links"]["self"], format!("{}/api/v1", s.base));
    assert!(r["formats"]["array"].as_array().unwrap().len() > 3);
    assert!(
        r["queries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q == "regex")
    );
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/api/v1", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 307);
}

#[tokio::test]
async fn msgpack_is_served_when_asked_for() {
    let s = DemoServer::start().await;
    let r = s
        .get_with("/api/v1/metadata/", "application/x-msgpack")
        .await;
    assert_eq!(r.headers()["content-type"], "application/x-msgpack");
    let v: Value = rmp_serde::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["data"]["attributes"]["structure"]["count"], 8);
}

#[tokio::test]
async fn search_pages_link_to_the_next_page() {
    let s = DemoServer::start().await;
    let r = s.json("/api/v1/search/?page[offset]=2&page[limit]=3").await;
    let ids: Vec<&str> = r["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["tables", "structured_data", "flat_array"]);
    assert_eq!(r["meta"]["count"], 8);
    let next = r["links"]["next"].as_str().unwrap();
    assert!(next.contains("page%5Boffset%5D=5"), "{next}");
    let last = s.json("/api/v1/search/?page[offset]=6&page[limit]=3").await;
    assert_eq!(last["links"]["next"], Value::Null);
}

#[tokio::test]
async fn filters_select_children() {
    let s = DemoServer::start().await;
    let r = s
        .json("/api/v1/search/tables?filter[eq][condition][key]=color&filter[eq][condition][value]=%22red%22&fields=")
        .await;
    let ids: Vec<&str> = r["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["short_table", "wide_table"]);
}

#[tokio::test]
async fn array_block_is_the_raw_chunk() {
    let s = DemoServer::start().await;
    let r = s
        .get_with(
            "/api/v1/array/block/nested/images/medium_image?block=1,3&expected_shape=250,100",
            "application/octet-stream",
        )
        .await;
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len(), 250 * 100 * 8);
    // The same values through /array/full with a slice.
    let full = s
        .get("/api/v1/array/full/nested/images/medium_image?slice=250:251,300:302")
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(f64s(&full), f64s(&body[..16]));
}

#[tokio::test]
async fn etag_answers_304_and_repeats_are_identical() {
    let s = DemoServer::start().await;
    for path in [
        "/api/v1/array/full/flat_array",
        "/api/v1/array/full/nested/images/small_image?format=png",
        "/api/v1/table/partition/tables/long_table?partition=1",
    ] {
        let r = s.get(path).await;
        let etag = r.headers()["etag"].to_str().unwrap().to_string();
        let first = r.bytes().await.unwrap();
        let again = s.get(path).await;
        assert_eq!(again.headers()["etag"].to_str().unwrap(), etag, "{path}");
        assert_eq!(again.bytes().await.unwrap(), first, "{path}");
        let revalidated = s
            .client
            .get(format!("{}{path}", s.base))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(revalidated.status(), 304, "{path}");
    }
}

#[tokio::test]
async fn table_columns_are_array_children() {
    let s = DemoServer::start().await;
    let md = s.json("/api/v1/metadata/tables/long_table/B").await;
    assert_eq!(md["data"]["attributes"]["structure_family"], "array");
    assert_eq!(
        md["data"]["attributes"]["structure"]["chunks"],
        serde_json::json!([[20000, 20000, 20000, 20000, 20000]])
    );
    let a = s
        .get("/api/v1/array/full/tables/long_table/A?slice=0:3")
        .await
        .bytes()
        .await
        .unwrap();
    let b = s
        .get("/api/v1/array/full/tables/long_table/B?slice=0:3")
        .await
        .bytes()
        .await
        .unwrap();
    let (a, b) = (f64s(&a), f64s(&b));
    assert_eq!(b, a.iter().map(|x| 2.0 * x).collect::<Vec<_>>());
}

/// `node/full` is Tiled's deprecated alias of `table/full`: tables and containers both.
#[tokio::test]
async fn node_full_serves_tables_and_containers() {
    let s = DemoServer::start().await;
    for path in ["tables/short_table", "structured_data/xarray_dataset"] {
        let alias = s.get(&format!("/api/v1/node/full/{path}?format=csv")).await;
        assert_eq!(alias.status(), 200, "{path}");
        let table = s
            .get(&format!("/api/v1/table/full/{path}?format=csv"))
            .await;
        assert_eq!(alias.bytes().await.unwrap(), table.bytes().await.unwrap());
    }
}

/// Malformed requests: each a clear 4xx with a JSON detail, never a 5xx.
#[tokio::test]
async fn bad_input_gets_a_clear_4xx() {
    let s = DemoServer::start().await;
    let cases: &[(&str, u16)] = &[
        (
            "/api/v1/array/full/nested/images/tiny_image?slice=1:2:0",
            400,
        ),
        ("/api/v1/array/full/nested/images/tiny_image?slice=a", 422),
        ("/api/v1/array/full/nested/images/tiny_image?slice=::,", 400),
        (
            "/api/v1/array/full/nested/images/tiny_image?slice=99999999999999999999999",
            400,
        ),
        (
            "/api/v1/array/full/nested/images/tiny_image?slice=0:1,0:1,0:1",
            400,
        ),
        (
            "/api/v1/array/full/nested/images/tiny_image?expected_shape=3,3",
            422,
        ),
        (
            "/api/v1/array/block/nested/images/tiny_image?block=5,5",
            422,
        ),
        ("/api/v1/array/block/nested/images/tiny_image?block=0", 422),
        ("/api/v1/array/block/nested/images/tiny_image", 422),
        ("/api/v1/array/block/nested/images/tiny_image?block=a", 422),
        (
            "/api/v1/array/full/nested/images/tiny_image?format=foo",
            406,
        ),
        ("/api/v1/array/full/nested/images/big_image", 400),
        ("/api/v1/search/?page[limit]=100000", 422),
        ("/api/v1/search/?page[offset]=-1", 422),
        ("/api/v1/search/?filter[bogus][condition][key]=x", 400),
        (
            "/api/v1/search/?filter[eq][condition][key]=color&filter[eq][condition][value]=red",
            400,
        ),
        (
            "/api/v1/search/?filter[regex][condition][key]=c&filter[regex][condition][pattern]=(",
            400,
        ),
        ("/api/v1/metadata/a/b/c/d/e/f/g/h", 404),
        // (`..` and `%2e%2e` are normalised away by URL libraries before sending; the
        // parser's refusal of both is unit-tested in routes::tests.)
        (
            "/api/v1/table/partition/tables/short_table?partition=7",
            400,
        ),
        ("/api/v1/table/partition/tables/short_table", 422),
        (
            "/api/v1/table/partition/tables/short_table?partition=0&column=nope",
            400,
        ),
        (
            "/api/v1/table/partition/tables/short_table?partition=0&format=png",
            406,
        ),
        (
            "/api/v1/table/partition/nested/images/tiny_image?partition=0",
            404,
        ),
        ("/api/v1/search/flat_array", 404),
        ("/api/v1/nope", 404),
    ];
    for (path, status) in cases {
        let r = s.get(path).await;
        assert_eq!(r.status().as_u16(), *status, "{path}");
        assert_eq!(r.headers()["content-type"], "application/json", "{path}");
        let v: Value = r.json().await.unwrap();
        // A message, or (for parameter validation) FastAPI's list of {type, loc, msg}.
        let message = match &v["detail"] {
            Value::String(d) => d.clone(),
            Value::Array(items) => items[0]["msg"].as_str().unwrap_or("").to_string(),
            _ => String::new(),
        };
        assert!(!message.is_empty(), "{path}: {v}");
    }
    // A 100 kB URL: hyper refuses it with 414 before routing (and may close the connection
    // while the client is still sending); either way no 5xx and no hang.
    let long = format!("{}/api/v1/metadata/{}", s.base, "x".repeat(100_000));
    let sent = s
        .client
        .get(long)
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await;
    match sent {
        Ok(r) => assert!(r.status().is_client_error(), "{}", r.status()),
        Err(e) => assert!(!e.is_timeout(), "{e}"),
    }
}

#[tokio::test]
async fn response_size_limit_is_checked_before_reading() {
    let s = DemoServer::with_config(Config {
        response_bytesize_limit: 1000,
        ..Config::default()
    })
    .await;
    let r = s.get("/api/v1/array/full/nested/images/tiny_image").await;
    assert_eq!(r.status(), 400);
    let small = s
        .get("/api/v1/array/full/nested/images/tiny_image?slice=0:5,0:5")
        .await;
    assert_eq!(small.status(), 200);
}

#[tokio::test]
async fn writes_to_the_read_only_demo_are_405() {
    // Without a key anyone may read and no one may write (as `tiled serve demo`): 401.
    let s = DemoServer::start().await;
    let put = |key: Option<&str>| {
        let mut r = s
            .client
            .put(format!("{}/api/v1/array/full/flat_array", s.base))
            .body(vec![0u8; 800]);
        if let Some(k) = key {
            r = r.header("Authorization", format!("Apikey {k}"));
        }
        r.send()
    };
    let anonymous = put(None).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    // The key's holder may write, but the demo tree cannot be written: 405.
    let keyed = DemoServer::with_config(Config {
        api_key: Some("secret".into()),
        ..Config::default()
    })
    .await;
    let r = keyed
        .client
        .put(format!("{}/api/v1/array/full/flat_array", keyed.base))
        .header("Authorization", "Apikey secret")
        .body(vec![0u8; 800])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}
