//! Admission and limits end to end on the demo tree: bodies refused before they are read,
//! requests and bytes in flight bounded (503 with Retry-After), per-request budgets on
//! chunks and decoded bytes, and what error answers may carry.

#![allow(clippy::unwrap_used)] // test helpers: a failure here is a test failure

use std::time::Duration;

use serde_json::Value;
use tessera_api::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod support;
use support::DemoServer;

/// Sends `head` (a request line and headers) and the first `sent` bytes of a body that claims
/// to be much longer, then reads the answer. The server must answer without waiting for the
/// rest: the read has a deadline.
async fn answer_to_partial_body(s: &DemoServer, head: &str, sent: usize) -> String {
    let mut conn = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&vec![b'x'; sent]).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
        .await
        .expect("the server waited for a body it should have refused")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}
fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or("")
}

#[tokio::test]
async fn an_unauthenticated_gigabyte_is_refused_before_it_is_read() {
    let s = DemoServer::with_config(Config {
        api_key: Some("secret".into()),
        public: false,
        ..Config::default()
    })
    .await;
    let head = format!(
        "PUT /api/v1/array/full/flat_array HTTP/1.1\r\nHost: {}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        s.addr,
        1u64 << 30
    );
    let answer = answer_to_partial_body(&s, &head, 64 << 10).await;
    assert!(status_line(&answer).contains(" 401 "), "{answer}");
    assert!(answer.contains("Not enough permissions"), "{answer}");
}

#[tokio::test]
async fn a_document_body_over_its_limit_is_refused_from_its_declared_length() {
    // A writer (a server without a key lets anyone read, and only read).
    let s = DemoServer::with_config(Config {
        document_bytesize_limit: 1 << 20,
        api_key: Some("secret".into()),
        ..Config::default()
    })
    .await;
    let head = format!(
        "POST /api/v1/metadata/ HTTP/1.1\r\nHost: {}\r\nAuthorization: Apikey secret\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        s.addr,
        64u64 << 20
    );
    let answer = answer_to_partial_body(&s, &head, 1024).await;
    assert!(status_line(&answer).contains(" 413 "), "{answer}");
    assert!(answer.contains("document_bytesize_limit"), "{answer}");
}

#[tokio::test]
async fn a_body_without_a_length_is_cut_off_at_the_limit() {
    // A writer (a server without a key lets anyone read, and only read).
    let s = DemoServer::with_config(Config {
        document_bytesize_limit: 1000,
        api_key: Some("secret".into()),
        ..Config::default()
    })
    .await;
    let mut request = format!(
        "POST /api/v1/metadata/ HTTP/1.1\r\nHost: {}\r\nAuthorization: Apikey secret\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        s.addr
    );
    for _ in 0..20 {
        request.push_str(&format!("64\r\n{}\r\n", " ".repeat(100)));
    }
    let answer = answer_to_partial_body(&s, &request, 0).await;
    assert!(status_line(&answer).contains(" 413 "), "{answer}");
    assert!(answer.contains("document_bytesize_limit"), "{answer}");
}

#[tokio::test]
async fn a_slice_touching_too_many_chunks_is_refused_by_the_budget() {
    // medium_image: 1000 x 1000 float64 in 4 x 10 chunks of 250 x 100.
    let s = DemoServer::with_config(Config {
        max_chunks_per_request: 10,
        max_decoded_bytes_per_request: 500_000,
        ..Config::default()
    })
    .await;
    let path = "/api/v1/array/full/nested/images/medium_image";
    // One row keeps 8 kB but decodes 10 chunks of 200 kB: over the decoded bytes.
    let r = s.get(&format!("{path}?slice=0,:")).await;
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("max_decoded_bytes_per_request"), "{detail}");
    // The whole image touches all 40 chunks.
    let r = s.get(path).await;
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("max_chunks_per_request"),
        "{body}"
    );
    // Within both: two chunks.
    let r = s.get(&format!("{path}?slice=0:10,0:200")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), 10 * 200 * 8);
}

#[tokio::test]
async fn requests_over_the_in_flight_limit_get_503_with_retry_after() {
    let s = DemoServer::with_config(Config {
        max_in_flight_requests: 1,
        ..Config::default()
    })
    .await;
    // The first answer's body is not read: the request stays in flight until it is.
    let first = s
        .get("/api/v1/array/full/nested/images/big_image?slice=0:2000,0:2000")
        .await;
    assert_eq!(first.status(), 200);
    let second = s.get("/api/v1/metadata/").await;
    assert_eq!(second.status(), 503);
    assert_eq!(second.headers()["retry-after"], "2");
    let body: Value = second.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("max_in_flight_requests"),
        "{body}"
    );
    assert_eq!(first.bytes().await.unwrap().len(), 2000 * 2000 * 8);
    // The slot is released once the server has dropped the sent body.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(s.get("/api/v1/metadata/").await.status(), 200);
}

#[tokio::test]
async fn a_response_waits_for_bytes_in_flight_then_gets_503() {
    let s = DemoServer::with_config(Config {
        max_bytes_in_flight: 64 << 20,
        admission_wait: Duration::from_millis(300),
        ..Config::default()
    })
    .await;
    // 2000 x 2000 float64 is 32 MB: its reservation (result and encoding) is the budget.
    let path = "/api/v1/array/full/nested/images/big_image?slice=0:2000,0:2000";
    let first = s.get(path).await;
    assert_eq!(first.status(), 200);
    let second = s.get(path).await;
    assert_eq!(second.status(), 503);
    let body: Value = second.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("max_bytes_in_flight"),
        "{body}"
    );
    // Small answers need no reservation worth waiting for.
    assert_eq!(s.get("/api/v1/metadata/").await.status(), 200);
    drop(first);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(s.get(path).await.status(), 200);
}

#[tokio::test]
async fn error_answers_name_the_request_and_links_drop_credentials() {
    let s = DemoServer::with_config(Config {
        api_key: Some("secret".into()),
        public: false,
        ..Config::default()
    })
    .await;
    let r = s.get("/api/v1/metadata/nope?api_key=secret").await;
    assert_eq!(r.status(), 404);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["request_id"], id.as_str());
    // A well-formed id from a proxy is kept; anything else is replaced.
    let r = s
        .client
        .get(format!("{}/api/v1/metadata/nope", s.base))
        .header("x-request-id", "lb-1234")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "lb-1234");
    let r = s
        .client
        .get(format!("{}/api/v1/metadata/nope", s.base))
        .header("x-request-id", "a b;<x>")
        .send()
        .await
        .unwrap();
    assert_ne!(r.headers()["x-request-id"], "a b;<x>");

    let r = s
        .get("/api/v1/search/nested?api_key=secret&page[limit]=1")
        .await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert!(doc["links"]["next"].as_str().unwrap().contains("page"));
    assert!(!text.contains("secret"), "{text}");
}
