//! The one place where failures become HTTP answers: every error carries its status and a
//! message that says what was wrong, rendered as Tiled's `{"detail": ...}` JSON body.

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
}

impl ApiError {
    /// An error with any status.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            detail: detail.into(),
            validation: None,
            www_authenticate: false,
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, detail = %self.detail, "request failed");
        }
        let detail = match self.validation {
            Some(v) => v,
            None => serde_json::Value::String(self.detail),
        };
        let body = serde_json::json!({ "detail": detail }).to_string();
        let mut resp = (self.status, body).into_response();
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
