//! Request routing: every request is first parsed into a typed [`Endpoint`] (so a bad path is
//! a clear 4xx before any work), then handed to the module that owns that endpoint.

mod array;
mod container;
mod node;
mod register;
mod table;
pub mod write;

use std::sync::Arc;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use tracing::Instrument;

use crate::admission::{Held, Holds, Reservation};
use crate::auth::scopes::{self, Scopes};
use crate::auth::{Caller, Credentials};
use crate::error::ApiError;
use crate::params::Params;
use crate::state::AppState;

/// Longest path (in bytes) we try to resolve; anything longer cannot be a node of ours.
const MAX_PATH: usize = 4096;

/// What a request asks for, with the node path already split and decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum Endpoint {
    WebRoot,
    Healthz,
    Readyz,
    Metrics,
    /// `/api/v1/metrics`: Tiled's place for them, behind the `metrics` scope.
    ApiMetrics,
    OpenApi,
    ApiRootRedirect,
    ApiRoot,
    Metadata(Vec<String>),
    Search(Vec<String>),
    SearchDeep(Vec<String>),
    Distinct(Vec<String>),
    ArrayFull(Vec<String>),
    ArrayBlock(Vec<String>),
    TablePartition(Vec<String>),
    TableFull(Vec<String>),
    AwkwardBuffers(Vec<String>),
    AwkwardFull(Vec<String>),
    RaggedFull(Vec<String>),
    ContainerFull(Vec<String>),
    Revisions(Vec<String>),
    Register(Vec<String>),
    /// `/api/v1/auth/...`: login, sessions, API keys (multi-user mode).
    Auth(Vec<String>),
}

/// Splits a node path on `/`, percent-decodes each segment and drops empty ones (the client
/// sends `//x` for children of the root). `.` and `..` are refused: keys are names, not paths.
pub fn split_path(raw: &str) -> Result<Vec<String>, ApiError> {
    if raw.len() > MAX_PATH {
        return Err(ApiError::new(
            StatusCode::URI_TOO_LONG,
            format!("path is {} bytes long; the limit is {MAX_PATH}", raw.len()),
        ));
    }
    let mut out = Vec::new();
    for seg in raw.split('/') {
        if seg.is_empty() {
            continue;
        }
        let decoded = percent_encoding::percent_decode_str(seg)
            .decode_utf8()
            .map_err(|_| {
                ApiError::bad_request(format!("path segment {seg:?} is not valid UTF-8"))
            })?;
        if decoded == "." || decoded == ".." || decoded.contains('/') {
            return Err(ApiError::bad_request(format!(
                "path segment {decoded:?} is not allowed: node keys cannot be '.', '..' or contain '/'"
            )));
        }
        out.push(decoded.into_owned());
    }
    Ok(out)
}

impl Endpoint {
    /// Parses the request path (without the query).
    pub fn parse(path: &str) -> Result<Endpoint, ApiError> {
        match path {
            "/" | "" => return Ok(Endpoint::WebRoot),
            "/healthz" => return Ok(Endpoint::Healthz),
            "/readyz" => return Ok(Endpoint::Readyz),
            "/metrics" => return Ok(Endpoint::Metrics),
            "/api/v1/metrics" => return Ok(Endpoint::ApiMetrics),
            "/openapi.json" => return Ok(Endpoint::OpenApi),
            "/api/v1" => return Ok(Endpoint::ApiRootRedirect),
            "/api/v1/" => return Ok(Endpoint::ApiRoot),
            _ => {}
        }
        let not_found = || ApiError::not_found("Not Found");
        let rest = path.strip_prefix("/api/v1/").ok_or_else(not_found)?;
        if let Some(tail) = rest.strip_prefix("auth")
            && (tail.is_empty() || tail.starts_with('/'))
        {
            return Ok(Endpoint::Auth(split_path(tail)?));
        }
        for (prefix, make) in NODE_ROUTES {
            if let Some(tail) = rest.strip_prefix(prefix)
                && (tail.is_empty() || tail.starts_with('/'))
            {
                return Ok(make(split_path(tail)?));
            }
        }
        Err(not_found())
    }
}

impl Endpoint {
    /// The route's name: the `endpoint` label of the request metrics and the span name of
    /// its trace (a fixed set, never the path).
    pub fn name(&self) -> &'static str {
        match self {
            Endpoint::WebRoot => "web_root",
            Endpoint::Healthz => "healthz",
            Endpoint::Readyz => "readyz",
            Endpoint::Metrics | Endpoint::ApiMetrics => "metrics",
            Endpoint::OpenApi => "openapi",
            Endpoint::ApiRootRedirect | Endpoint::ApiRoot => "api_root",
            Endpoint::Metadata(_) => "metadata",
            Endpoint::Search(_) => "search",
            Endpoint::SearchDeep(_) => "search_deep",
            Endpoint::Distinct(_) => "distinct",
            Endpoint::ArrayFull(_) => "array_full",
            Endpoint::ArrayBlock(_) => "array_block",
            Endpoint::TablePartition(_) => "table_partition",
            Endpoint::TableFull(_) => "table_full",
            Endpoint::AwkwardBuffers(_) => "awkward_buffers",
            Endpoint::AwkwardFull(_) => "awkward_full",
            Endpoint::RaggedFull(_) => "ragged_full",
            Endpoint::ContainerFull(_) => "container_full",
            Endpoint::Revisions(_) => "revisions",
            Endpoint::Register(_) => "register",
            Endpoint::Auth(_) => "auth",
        }
    }
}

/// The `endpoint` label of a request whose path names no route.
const NO_ROUTE: &str = "not_found";

/// The `method` label: the methods the API takes, every other one as `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

type MakeEndpoint = fn(Vec<String>) -> Endpoint;

/// The routes `/api/v1/<prefix>/<node path>`, tried in order. The OpenAPI document
/// (`openapi.json`) lists each; a unit test keeps the two in step.
const NODE_ROUTES: [(&str, MakeEndpoint); 15] = [
    ("metadata", Endpoint::Metadata),
    ("search", Endpoint::Search),
    ("search-deep", Endpoint::SearchDeep),
    ("distinct", Endpoint::Distinct),
    ("array/full", Endpoint::ArrayFull),
    ("array/block", Endpoint::ArrayBlock),
    ("table/partition", Endpoint::TablePartition),
    ("table/full", Endpoint::TableFull),
    ("awkward/buffers", Endpoint::AwkwardBuffers),
    ("awkward/full", Endpoint::AwkwardFull),
    ("ragged/full", Endpoint::RaggedFull),
    ("container/full", Endpoint::ContainerFull),
    ("revisions", Endpoint::Revisions),
    ("register", Endpoint::Register),
    // Tiled's deprecated alias of the table and container reads and the table write;
    // /table/full serves containers as /container/full does.
    ("node/full", Endpoint::TableFull),
];

/// Everything a handler needs about the request.
pub struct Request {
    pub method: Method,
    pub headers: HeaderMap,
    pub params: Params,
    pub body: Bytes,
    /// `scheme://host/api/v1`, as the client sees us.
    pub base: String,
    /// Names this request in the log and in error bodies.
    pub id: String,
    /// Who is asking, and what they may do.
    pub caller: Caller,
    /// The scopes the route needs (checked again on the node under an access policy).
    pub need: Scopes,
    /// Under an access policy, the tags that let the caller see a node (computed once).
    pub visible: std::sync::OnceLock<crate::auth::policy::Visible>,
    /// The address the connection came from (the proxy's, behind one).
    pub peer: Option<std::net::SocketAddr>,
    /// Memory reserved for this request's buffers and body, released once the response
    /// body is sent.
    reservations: std::sync::Mutex<Vec<Reservation>>,
}

impl Request {
    /// The `Accept` header, if any.
    pub fn accept(&self) -> Option<&str> {
        self.headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
    }

    /// Reserves `bytes` of the node's bytes-in-flight budget for `what`, held until the
    /// response body is sent; waits for room a bounded time, else 503.
    pub async fn reserve(&self, state: &AppState, bytes: u64, what: &str) -> Result<(), ApiError> {
        let r = state.admission.reserve(bytes, what).await?;
        if let Ok(mut held) = self.reservations.lock() {
            held.push(r);
        }
        Ok(())
    }
}

fn base_url(headers: &HeaderMap) -> String {
    let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    let scheme = get("x-forwarded-proto").unwrap_or("http");
    let host = get("x-forwarded-host")
        .or_else(|| get("host"))
        .unwrap_or("localhost");
    format!("{scheme}://{host}/api/v1")
}

/// The request id: the one a proxy put in `X-Request-Id` when it is short and plain (so it
/// cannot forge log lines), else a new one.
fn request_id(headers: &HeaderMap) -> String {
    let given = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    match given {
        Some(v) => v.to_string(),
        None => uuid::Uuid::new_v4().simple().to_string()[..16].to_string(),
    }
}

/// Routes whose body is data (arrays, tables, awkward buffers): the large upload limit.
/// Every other body is a document (JSON or msgpack) under the small limit.
fn is_data_upload(endpoint: &Endpoint, method: &Method) -> bool {
    match endpoint {
        Endpoint::ArrayFull(_) => method == Method::PUT || method == Method::PATCH,
        Endpoint::ArrayBlock(_) | Endpoint::TableFull(_) | Endpoint::AwkwardFull(_) => {
            method == Method::PUT
        }
        Endpoint::TablePartition(_) => method == Method::PUT || method == Method::PATCH,
        _ => false,
    }
}

/// Reads the body once the request is authorized: refused at once (413) when its declared
/// length is over the route's limit, and cut off when it grows past it.
async fn read_body(
    state: &AppState,
    endpoint: &Endpoint,
    req: &Request,
    body: Body,
) -> Result<Bytes, ApiError> {
    let (limit, setting) = if is_data_upload(endpoint, &req.method) {
        (
            state.config.request_bytesize_limit,
            "request_bytesize_limit",
        )
    } else {
        (
            state.config.document_bytesize_limit,
            "document_bytesize_limit",
        )
    };
    let too_large = |size: String| {
        crate::metrics::REFUSED.with_label_values(&["body"]).inc();
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is {size}; this route takes at most {limit} bytes \
                 ({setting}): send the data in smaller pieces (by block or partition)"
            ),
        )
    };
    if HttpBody::is_end_stream(&body) {
        return Ok(Bytes::new());
    }
    let declared = req
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared {
        if n > limit as u64 {
            return Err(too_large(format!("{n} bytes")));
        }
        if n == 0 {
            return Ok(Bytes::new());
        }
    }
    // A body of unknown length is read up to a quarter of the node's budget at most, so
    // one chunked upload cannot hold all of it.
    let limit = match declared {
        Some(n) => n as usize,
        None => limit.min((state.admission.max_bytes() / 4) as usize),
    };
    if limit > 64 << 10 {
        req.reserve(state, limit as u64, "the request body").await?;
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let over = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if over {
            too_large(format!("over {limit} bytes"))
        } else {
            ApiError::bad_request(format!("the request body could not be read: {e}"))
        }
    })
}

/// The single axum handler: admit, parse, authorize, read the body, dispatch, render errors.
/// The request's place and memory are held until its response body is sent.
pub async fn handle(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
) -> Response {
    let started = std::time::Instant::now();
    let (parts, body) = request.into_parts();
    let id = request_id(&parts.headers);
    let csrf = state.config.auth.is_some() && cookie(&parts.headers, "tiled_csrf").is_none();
    let method_name = method_label(&parts.method);
    let parsed = Endpoint::parse(parts.uri.path());
    let endpoint = parsed.as_ref().map_or(NO_ROUTE, Endpoint::name);
    let span = crate::telemetry::request_span(&parts.headers, method_name, endpoint, &id);
    let routed = admit_and_route(&state, parsed, parts, body, &id)
        .instrument(span.clone())
        .await;
    let mut resp = match routed {
        Ok((resp, holds)) => {
            let (parts, body) = resp.into_parts();
            Response::from_parts(parts, Held::wrap(body, holds))
        }
        Err(e) => e.render(&id),
    };
    crate::telemetry::end_request(&span, resp.status());
    // The access log, off unless asked for (`RUST_LOG=info,tessera::access=debug`): one line
    // a request, inside its span, so it carries the request id.
    span.in_scope(|| {
        tracing::debug!(
            target: "tessera::access",
            endpoint,
            status = resp.status().as_u16(),
            ms = started.elapsed().as_secs_f64() * 1e3,
            "answered"
        )
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    // The client reads this cookie to send it back as `x-csrf` on refresh and revoke.
    if csrf {
        let value = format!(
            "tiled_csrf={}; HttpOnly; Path=/; SameSite=lax",
            crate::auth::random_hex(16)
        );
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    crate::metrics::count_request(endpoint, method_name, started, resp)
}

/// The value of cookie `name`, if the request carries it.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(name)?.strip_prefix('='))
}

async fn admit_and_route(
    state: &AppState,
    endpoint: Result<Endpoint, ApiError>,
    parts: axum::http::request::Parts,
    body: Body,
    id: &str,
) -> Result<(Response, Holds), ApiError> {
    let endpoint = endpoint?;
    let axum::http::request::Parts {
        method,
        uri,
        headers,
        extensions,
        ..
    } = parts;
    let peer = extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    let slot = state.admission.admit()?;
    let need = scopes::required(&endpoint, &method).unwrap_or(Scopes::NONE);
    let mut req = Request {
        base: base_url(&headers),
        params: Params::parse(uri.query()),
        method,
        headers,
        body: Bytes::new(),
        id: id.to_string(),
        caller: Caller::anonymous(Scopes::NONE),
        need,
        visible: Default::default(),
        peer,
        reservations: Default::default(),
    };
    req.caller = authorize(state, &req).await?;
    req.body = read_body(state, &endpoint, &req, body).await?;
    let resp = route(state, endpoint, &req)
        .await
        .unwrap_or_else(|e| e.render(id));
    let reservations = req.reservations.into_inner().unwrap_or_default();
    Ok((
        resp,
        Holds {
            slot: Some(slot),
            reservations,
        },
    ))
}

/// The credentials a request presents, as Tiled reads them: an API key (`?api_key=`,
/// `Authorization: Apikey ...`, the `tiled_api_key` cookie) first, else a bearer token.
/// The flag says the credentials came from the cookie alone (the CSRF check).
fn credentials(req: &Request) -> Result<(Credentials, bool), ApiError> {
    if let Some(k) = req.params.get("api_key") {
        return Ok((Credentials::ApiKey(k.to_string()), false));
    }
    let mut bearer = None;
    if let Some(h) = req.headers.get(header::AUTHORIZATION) {
        let text = h.to_str().unwrap_or("");
        let (scheme, secret) = text.split_once(' ').unwrap_or((text, ""));
        let secret = secret.trim().to_string();
        if scheme.eq_ignore_ascii_case("apikey") {
            return Ok((Credentials::ApiKey(secret), false));
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::bad_request(
                "Authorization header must include the authorization type followed by a space and \
                 then the secret, as in 'Bearer SECRET' or 'Apikey SECRET'. ",
            ));
        }
        bearer = Some(secret);
    }
    if let Some(k) = cookie(&req.headers, "tiled_api_key") {
        return Ok((Credentials::ApiKey(k.to_string()), bearer.is_none()));
    }
    Ok((bearer.map_or(Credentials::None, Credentials::Bearer), false))
}

/// 401 for a caller without the scopes `need`, in Tiled's words.
pub fn not_enough(need: Scopes, had: Scopes) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::UNAUTHORIZED,
        format!(
            "Not enough permissions. Requires scopes {}. Request had scopes {}",
            need.display(),
            had.display()
        ),
    );
    e.www_authenticate = true;
    e
}

/// Who is asking (through the one place every request passes), checked against the scopes
/// the route requires. Multi-user: a principal's token or key, or anonymous. Single-user:
/// the holder of the one key gets its scopes; without a configured key everyone does.
async fn authorize(state: &AppState, req: &Request) -> Result<Caller, ApiError> {
    let (credentials, cookie_only) = credentials(req)?;
    // A browser sends cookies to any site's forms: a change made with the cookie alone must
    // also echo the CSRF cookie in a header.
    if cookie_only && !matches!(req.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        let echoed = req
            .headers
            .get("x-csrf")
            .and_then(|v| v.to_str().ok())
            .or_else(|| req.params.get("csrf"));
        let expected = cookie(&req.headers, "tiled_csrf");
        let ok = matches!((echoed, expected), (Some(a), Some(b)) if crate::auth::constant_time_eq(a.as_bytes(), b.as_bytes()));
        if !ok {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "a request authenticated by the tiled_api_key cookie must send the tiled_csrf \
                 cookie's value in an x-csrf header",
            ));
        }
    }
    let caller = match (&state.config.auth, &state.config.api_key) {
        (Some(auth), _) => auth.caller(&credentials).await?,
        // No key and no providers (`serve demo`): anyone reads, as in Tiled, and only reads.
        (None, None) => Caller::anonymous(scopes::PUBLIC),
        (None, Some(key)) => match &credentials {
            Credentials::ApiKey(k) | Credentials::Bearer(k)
                if crate::auth::constant_time_eq(k.as_bytes(), key.as_bytes()) =>
            {
                Caller::anonymous(scopes::SINGLE_USER)
            }
            Credentials::ApiKey(_) | Credentials::Bearer(_) => {
                let mut e = ApiError::new(StatusCode::UNAUTHORIZED, "Invalid API key");
                e.www_authenticate = true;
                return Err(e);
            }
            Credentials::None if state.config.public => Caller::anonymous(scopes::PUBLIC),
            Credentials::None => Caller::anonymous(Scopes::NONE),
        },
    };
    if !caller.scopes.covers(req.need) {
        return Err(not_enough(req.need, caller.scopes));
    }
    Ok(caller)
}

fn method_not_allowed(req: &Request, allowed: &str) -> ApiError {
    let detail = if matches!(req.method, Method::PUT | Method::PATCH | Method::DELETE)
        || req.method == Method::POST
    {
        format!(
            "{} is not supported here: this tree is read-only (allowed: {allowed})",
            req.method
        )
    } else {
        format!("{} is not supported here (allowed: {allowed})", req.method)
    };
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, detail)
}

async fn route(state: &AppState, endpoint: Endpoint, req: &Request) -> Result<Response, ApiError> {
    let read = matches!(req.method, Method::GET | Method::HEAD);
    let post = req.method == Method::POST;
    let (put, patch, delete) = (
        req.method == Method::PUT,
        req.method == Method::PATCH,
        req.method == Method::DELETE,
    );
    match endpoint {
        Endpoint::Metadata(p) if post => write::create(state, req, &p).await,
        Endpoint::Register(p) if post => register::register(state, req, &p).await,
        Endpoint::Auth(p) => crate::auth::routes::route(state, req, &p).await,
        Endpoint::Metadata(p) if put => write::replace_metadata(state, req, &p).await,
        Endpoint::Metadata(p) if patch => write::patch_metadata(state, req, &p).await,
        Endpoint::Metadata(p) if delete => write::delete(state, req, &p).await,
        Endpoint::Revisions(p) if read => write::revisions(state, req, &p).await,
        Endpoint::Revisions(p) if delete => write::delete_revision(state, req, &p).await,
        Endpoint::ArrayFull(p) if put => write::put_array_full(state, req, &p).await,
        Endpoint::ArrayBlock(p) if put => write::put_array_block(state, req, &p).await,
        Endpoint::ArrayFull(p) if patch => write::patch_array(state, req, &p).await,
        Endpoint::TableFull(p) if put => write::put_table(state, req, &p, true).await,
        Endpoint::TablePartition(p) if put => write::put_table(state, req, &p, false).await,
        Endpoint::TablePartition(p) if patch => write::append_table(state, req, &p).await,
        Endpoint::AwkwardFull(p) if put => write::put_awkward(state, req, &p).await,
        Endpoint::WebRoot if read => Ok(node::web_root()),
        Endpoint::Healthz if read => Ok(node::healthz()),
        Endpoint::Readyz if read => Ok(node::readyz(state).await),
        Endpoint::Metrics | Endpoint::ApiMetrics if read && state.config.metrics => {
            Ok(node::metrics(state).await)
        }
        Endpoint::Metrics | Endpoint::ApiMetrics if read => Err(ApiError::not_found(
            "metrics are not served here (metrics.prometheus is false in the config)",
        )),
        Endpoint::OpenApi if read => Ok(node::openapi()),
        Endpoint::ApiRootRedirect => Ok(node::redirect_to_root(&req.base)),
        Endpoint::ApiRoot if read => node::root(state, req).await,
        Endpoint::Metadata(p) if read => node::metadata(state, req, &p).await,
        Endpoint::Search(p) if read => node::search(state, req, &p, false).await,
        Endpoint::SearchDeep(p) if read => node::search(state, req, &p, true).await,
        Endpoint::Distinct(p) if read => node::distinct(state, req, &p).await,
        Endpoint::ArrayFull(p) if read => array::full(state, req, &p).await,
        Endpoint::ArrayBlock(p) if read => array::block(state, req, &p).await,
        Endpoint::TablePartition(p) if read || post => table::partition(state, req, &p).await,
        Endpoint::TableFull(p) if read || post => table::full(state, req, &p).await,
        Endpoint::AwkwardBuffers(p) if read || post => array::awkward_buffers(state, req, &p).await,
        Endpoint::AwkwardFull(p) if read => array::awkward_full(state, req, &p).await,
        Endpoint::RaggedFull(p) if read => array::ragged_full(state, req, &p).await,
        Endpoint::ContainerFull(p) if read || post => container::full(state, req, &p).await,
        Endpoint::TablePartition(_) => Err(method_not_allowed(req, "GET, POST, PUT, PATCH")),
        Endpoint::TableFull(_) => Err(method_not_allowed(req, "GET, POST, PUT")),
        Endpoint::AwkwardBuffers(_) | Endpoint::ContainerFull(_) => {
            Err(method_not_allowed(req, "GET, POST"))
        }
        Endpoint::Metadata(_) => Err(method_not_allowed(req, "GET, POST, PUT, PATCH, DELETE")),
        Endpoint::Revisions(_) => Err(method_not_allowed(req, "GET, DELETE")),
        Endpoint::Register(_) => Err(method_not_allowed(req, "POST")),
        Endpoint::ArrayFull(_) => Err(method_not_allowed(req, "GET, PUT, PATCH")),
        Endpoint::ArrayBlock(_) => Err(method_not_allowed(req, "GET, PUT")),
        _ => Err(method_not_allowed(req, "GET")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_routes_and_drops_empty_segments() {
        assert_eq!(
            Endpoint::parse("/api/v1/metadata//x/a").unwrap(),
            Endpoint::Metadata(vec!["x".into(), "a".into()])
        );
        assert_eq!(
            Endpoint::parse("/api/v1/search/").unwrap(),
            Endpoint::Search(vec![])
        );
        assert_eq!(
            Endpoint::parse("/api/v1/array/block/a%20b").unwrap(),
            Endpoint::ArrayBlock(vec!["a b".into()])
        );
        assert_eq!(
            Endpoint::parse("/api/v1/search-deep").unwrap(),
            Endpoint::SearchDeep(vec![])
        );
    }

    /// The published OpenAPI document names every route the router knows, and names only
    /// routes it knows.
    #[test]
    fn openapi_document_lists_every_route() {
        let doc: serde_json::Value = serde_json::from_str(node::OPENAPI).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let paths = doc["paths"].as_object().unwrap();
        let mut expected: Vec<String> = ["/", "/healthz", "/readyz", "/metrics", "/openapi.json"]
            .iter()
            .chain(&["/api/v1", "/api/v1/", "/api/v1/metrics"])
            .map(|p| p.to_string())
            .collect();
        expected.extend(
            NODE_ROUTES
                .iter()
                .map(|(prefix, _)| format!("/api/v1/{prefix}/{{path}}")),
        );
        for path in &expected {
            assert!(
                paths.contains_key(path),
                "openapi.json does not list {path}"
            );
        }
        for (path, item) in paths {
            let concrete = path.replace("{path}", "a/b");
            assert!(
                Endpoint::parse(&concrete).is_ok(),
                "openapi.json lists {path}, which the router does not know"
            );
            let item = item.as_object().unwrap();
            assert!(
                item.keys().any(|k| k != "parameters"),
                "{path} lists no operation"
            );
        }
    }

    #[test]
    fn dot_segments_and_unknown_routes_are_rejected() {
        assert_eq!(
            Endpoint::parse("/api/v1/metadata/a/../b")
                .unwrap_err()
                .status
                .as_u16(),
            400
        );
        assert_eq!(
            Endpoint::parse("/api/v1/metadata/%2e%2e")
                .unwrap_err()
                .status
                .as_u16(),
            400
        );
        assert_eq!(
            Endpoint::parse("/api/v1/metadatax")
                .unwrap_err()
                .status
                .as_u16(),
            404
        );
        assert_eq!(Endpoint::parse("/nope").unwrap_err().status.as_u16(), 404);
        let long = format!("/api/v1/metadata/{}", "a/".repeat(5000));
        assert_eq!(Endpoint::parse(&long).unwrap_err().status.as_u16(), 414);
    }
}
