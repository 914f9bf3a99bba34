//! The one place where failures become HTTP answers: every error carries its status and a
//! message that says what was wrong, rendered as Tiled's `{"detail": ...}` JSON body, plus
//! the request id under which the server log holds the rest. What a client reads never
//! carries server paths, SQL or database error text: a 500 says only that it happened (the
//! log has the cause), and absolute paths in other messages are cut to their file name.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tessera_common::adapters::AdapterError;
use tessera_common::chunks::ChunkError;
use tessera_common::serializers::SerializeError;
use tessera_common::slicing::SliceError;

/// An error answer: status plus the `detail` message.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
    /// For parameter validation errors: the FastAPI-style list `[{type, loc, msg, input}]`
    /// that replaces the plain `detail` string (what Tiled's clients and tools know).
    pub validation: Option<serde_json::Value>,
    /// 401s: ask for credentials with `WWW-Authenticate: Bearer`.
    pub www_authenticate: bool,
    /// 503s: seconds the client should wait before trying again (`Retry-After`).
    pub retry_after: Option<u32>,
}

impl ApiError {
    /// An error with any status.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            detail: detail.into(),
            validation: None,
            www_authenticate: false,
            retry_after: None,
        }
    }
    /// 422 for one invalid query parameter, rendered in FastAPI's list form.
    /// `kind` is the validation type (`missing`, `string_pattern_mismatch`, ...).
    pub fn invalid_param(
        param: &str,
        kind: &str,
        input: Option<&str>,
        msg: impl Into<String>,
    ) -> Self {
        let msg = msg.into();
        let validation = serde_json::json!([{
            "type": kind, "loc": ["query", param], "msg": msg, "input": input,
        }]);
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            detail: msg,
            validation: Some(validation),
            www_authenticate: false,
            retry_after: None,
        }
    }
    /// 400 Bad Request.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }
    /// 404 Not Found.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }
    /// 404 for a path that names no node, worded as Tiled does (`No such entry: ['a', 'b']`).
    pub fn no_such_entry(path: &[String]) -> Self {
        Self::not_found(format!("No such entry: {}", py_list(path)))
    }
    /// 422 Unprocessable Entity (parameter validation, as Tiled uses it).
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }
    /// 406 Not Acceptable.
    pub fn not_acceptable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_ACCEPTABLE, detail)
    }
    /// 503 Service Unavailable, asking the client to come back after `retry_after` seconds.
    pub fn unavailable(detail: impl Into<String>, retry_after: u32) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, detail);
        e.retry_after = Some(retry_after);
        e
    }
    /// 500: a bug or an unexpected failure on our side (never for bad input).
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, detail)
    }
}

/// A list of strings as Python prints it (`['a', 'b']`), for messages Tiled users know.
pub fn py_list(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")))
        .collect();
    format!("[{}]", quoted.join(", "))
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.detail, self.status)
    }
}

impl std::error::Error for ApiError {}

/// Absolute paths in a message: a `/` that starts a word (after a space, quote, bracket or
/// `=`), up to the next space or quote. URLs (`scheme://`) and media types are not matched.
fn absolute_path() -> &'static regex::Regex {
    static PATTERN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| {
        regex::Regex::new(r#"(^|[\s'"(\[=])(/[^\s'"),\]]*)"#)
            .unwrap_or_else(|_| regex::Regex::new("$^").unwrap_or_else(|_| unreachable!()))
    })
}

/// Routes named in messages ("write them with /array/block"): not server paths.
const ROUTE_PREFIXES: [&str; 8] = [
    "/api/",
    "/array/",
    "/table/",
    "/awkward/",
    "/ragged/",
    "/container/",
    "/node/",
    "/metadata/",
];

/// `text` with every absolute path cut to its last component (`/data/x/scan.h5` becomes
/// `scan.h5`), so messages about files name them without telling where the server keeps them.
pub fn redact_paths(text: &str) -> String {
    absolute_path()
        .replace_all(text, |c: &regex::Captures| {
            let path = &c[2];
            if ROUTE_PREFIXES.iter().any(|r| path.starts_with(r)) {
                return c[0].to_string();
            }
            let name = path.rsplit('/').find(|s| !s.is_empty()).unwrap_or("");
            format!("{}{name}", &c[1])
        })
        .into_owned()
}

impl ApiError {
    /// The answer for this error to request `request_id`. A 500 is logged with its cause and
    /// answered without it; other errors are logged at debug level.
    pub fn render(self, request_id: &str) -> Response {
        let detail = if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(request_id, detail = %self.detail, "request failed");
            serde_json::Value::String(if request_id.is_empty() {
                "Internal server error: the server log has the details".to_string()
            } else {
                format!(
                    "Internal server error: the server log has the details under request id \
                     {request_id}"
                )
            })
        } else {
            if self.status.is_server_error() {
                tracing::warn!(request_id, status = %self.status, detail = %self.detail, "request refused");
            } else {
                tracing::debug!(request_id, status = %self.status, detail = %self.detail, "request refused");
            }
            match self.validation {
                Some(v) => v,
                None => serde_json::Value::String(redact_paths(&self.detail)),
            }
        };
        let mut body = serde_json::json!({ "detail": detail });
        if !request_id.is_empty() {
            body["request_id"] = serde_json::Value::String(request_id.to_string());
        }
        let mut resp = (self.status, body.to_string()).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.www_authenticate {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl IntoResponse for ApiError {
    /// The answer outside a request's scope (no request id known).
    fn into_response(self) -> Response {
        self.render("")
    }
}

impl From<SliceError> for ApiError {
    fn from(e: SliceError) -> Self {
        // Syntax errors are turned into 422s where the slice is parsed; a well-formed slice
        // that does not fit the array is a 400, as in Tiled.
        match e {
            SliceError::TooManyDims { .. } => {
                ApiError::bad_request(format!("Block index out of range: {e}"))
            }
            _ => ApiError::bad_request(e.to_string()),
        }
    }
}

impl From<ChunkError> for ApiError {
    fn from(e: ChunkError) -> Self {
        ApiError::unprocessable(e.to_string())
    }
}

impl From<AdapterError> for ApiError {
    fn from(e: AdapterError) -> Self {
        match e {
            AdapterError::BlockOutOfRange { .. } => ApiError::unprocessable(e.to_string()),
            AdapterError::PartitionOutOfRange(_) => ApiError::bad_request(e.to_string()),
            // A node the catalog lists but whose data cannot be read is a problem with the
            // data, not a transient server fault: a 4xx stops the client's 5xx retry loop.
            AdapterError::UnknownMimetype(_)
            | AdapterError::BadSource(_)
            | AdapterError::Corrupt(_)
            | AdapterError::Limit(_)
            | AdapterError::Outside(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
            }
            AdapterError::Read(_) => ApiError::internal(e.to_string()),
        }
    }
}

impl From<SerializeError> for ApiError {
    fn from(e: SerializeError) -> Self {
        match e {
            SerializeError::Unsupported { .. } => ApiError::not_acceptable(e.to_string()),
            other => ApiError::internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_paths_are_cut_to_file_names() {
        assert_eq!(
            redact_paths("the file /srv/beamline/2026/scan_001.h5 is truncated"),
            "the file scan_001.h5 is truncated"
        );
        assert_eq!(
            redact_paths("cannot open '/etc/secret/x.zarr/0.0': gone (path=/a/b)"),
            "cannot open '0.0': gone (path=b)"
        );
        // Routes, media types, URLs and node paths are not server paths.
        for kept in [
            "write them one by one with /table/partition",
            "application/x-hdf5 is not supported",
            "see http://host/api/v1/metadata/a",
            "No such entry: 'raw/scan/det'",
        ] {
            assert_eq!(redact_paths(kept), kept);
        }
    }

    async fn body_of(r: Response) -> serde_json::Value {
        let b = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        serde_json::from_slice(&b).unwrap()
    }

    #[tokio::test]
    async fn a_500_tells_the_request_id_but_not_the_cause() {
        let r = ApiError::internal("catalog database: relation \"nodes\" does not exist at /var/x")
            .render("r-42");
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = body_of(r).await;
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("r-42"), "{detail}");
        assert!(!detail.contains("relation"), "{detail}");
        assert_eq!(body["request_id"], "r-42");
    }

    #[tokio::test]
    async fn a_503_carries_retry_after() {
        let mut e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy");
        e.retry_after = Some(3);
        let r = e.render("r-1");
        assert_eq!(r.headers()[header::RETRY_AFTER], "3");
        assert_eq!(body_of(r).await["detail"], "busy");
    }
}
