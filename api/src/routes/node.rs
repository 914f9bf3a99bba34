//! Document routes: the root document, one node's metadata, search (children and deep),
//! distinct values, health, the landing page and the OpenAPI document.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Map, Value, json};
use tessera_common::structure::StructureFamily;

use super::Request;
use crate::catalog::query::{Filter, QUERY_NAMES, parse_filters};
use crate::catalog::{DistinctRequest, Node, SearchRequest, SortKey};
use crate::error::ApiError;
use crate::negotiate;
use crate::resource::{View, resource};
use crate::respond;
use crate::state::AppState;

/// Inlined container contents stop at this many children (as in Tiled).
const INLINE_LIMIT: usize = 500;

pub fn healthz() -> Response {
    axum::Json(json!({"status": "ready"})).into_response()
}

/// `GET /readyz`: 200 when the node should get traffic (its catalog, Redis and NATS answer,
/// and it is not draining), else 503 naming what is wrong.
pub async fn readyz(state: &AppState) -> Response {
    if state.health.draining() {
        let body = json!({"status": "draining"});
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(body),
        )
            .into_response();
    }
    let checks = state.health.check(state.catalog.as_ref()).await;
    let ready = checks.iter().all(|(_, r)| r.is_ok());
    let detail: serde_json::Map<String, serde_json::Value> = checks
        .into_iter()
        .map(|(what, r)| {
            (
                what.to_string(),
                json!(r.err().unwrap_or_else(|| "ok".into())),
            )
        })
        .collect();
    let (status, word) = if ready {
        (axum::http::StatusCode::OK, "ready")
    } else {
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    (
        status,
        axum::Json(json!({"status": word, "checks": detail})),
    )
        .into_response()
}

/// `GET /metrics`: Prometheus' text format, with the node's cache and pool gauges read now.
pub async fn metrics(state: &AppState) -> Response {
    crate::metrics::read_node(state).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(),
    )
        .into_response()
}

/// The OpenAPI 3.1 document of every route, kept as a file beside the code.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// `GET /openapi.json`.
pub fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

pub fn web_root() -> Response {
    Html(concat!(
        "<!doctype html><html><head><title>tessera</title></head><body>",
        "<h1>tessera</h1><p>A Tiled-compatible data service. The API is at ",
        "<a href=\"/api/v1/\">/api/v1/</a>; browse nodes under ",
        "<a href=\"/api/v1/search/\">/api/v1/search/</a>; the routes are described in ",
        "<a href=\"/openapi.json\">/openapi.json</a>.</p></body></html>"
    ))
    .into_response()
}

pub fn redirect_to_root(base: &str) -> Response {
    let mut r = StatusCode::TEMPORARY_REDIRECT.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("{base}/")) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// The root document's `authentication`: the login providers and the links the client
/// follows, as Tiled gives them.
fn authentication(state: &AppState, base: &str) -> serde_json::Value {
    let Some(auth) = &state.config.auth else {
        return json!({"required": false, "providers": [], "links": null});
    };
    let providers: Vec<serde_json::Value> = auth
        .settings
        .providers
        .iter()
        .map(|p| {
            // A password goes to `token`; an external login starts at `authorize`.
            let endpoint = match p.kind {
                crate::auth::ProviderKind::Oidc(_) => "authorize",
                _ => "token",
            };
            json!({
                "provider": p.name,
                "mode": p.kind.mode(),
                "links": {"auth_endpoint": format!("{base}/auth/provider/{}/{endpoint}", p.name)},
                "confirmation_message": p.confirmation_message,
                "extra_scopes": null,
            })
        })
        .collect();
    json!({
        "required": !auth.settings.allow_anonymous_access,
        "providers": providers,
        "links": {
            "whoami": format!("{base}/auth/whoami"),
            "apikey": format!("{base}/auth/apikey"),
            "refresh_session": format!("{base}/auth/session/refresh"),
            "revoke_session": format!("{base}/auth/session/revoke/{{session_id}}"),
            "logout": format!("{base}/auth/logout"),
        },
    })
}

pub async fn root(state: &AppState, req: &Request) -> Result<Response, ApiError> {
    let (formats, aliases) = negotiate::root_formats();
    let doc = json!({
        "api_version": 0,
        "library_version": crate::LIBRARY_VERSION,
        "formats": formats,
        "aliases": aliases,
        "queries": QUERY_NAMES,
        "authentication": authentication(state, &req.base),
        "links": {"self": req.base, "documentation": format!("{}/docs", req.base)},
        "meta": {"root_path": "/api"},
    });
    let mut r = respond::document(&req.headers, &doc).await?;
    let expires = chrono::Utc::now() + chrono::Duration::seconds(600);
    if let Ok(v) = HeaderValue::from_str(&expires.format("%a, %d %b %Y %H:%M:%S GMT").to_string()) {
        r.headers_mut().insert(header::EXPIRES, v);
    }
    Ok(r)
}

/// The number of children of `node` the caller of `req` may see; `counted` says the
/// catalog already counted them under the caller's filter (into `child_count`).
async fn child_count(
    state: &AppState,
    req: &Request,
    node: &Node,
    counted: bool,
) -> Result<Option<usize>, ApiError> {
    if node.family != StructureFamily::Container {
        return Ok(None);
    }
    let access = state.listing_filter(req, &node.path);
    if let Some(n) = node.child_count
        && (access.is_none() || counted)
    {
        return Ok(Some(n as usize));
    }
    let sreq = SearchRequest {
        limit: 0,
        filters: access.into_iter().collect(),
        ..Default::default()
    };
    Ok(Some(state.catalog.search(&node.path, &sreq).await?.count))
}

/// The full resource of `node`, with its child count and inlined contents where it has them.
async fn build(
    state: &AppState,
    req: &Request,
    node: &Node,
    view: &View,
    inline: bool,
    counted: bool,
) -> Result<Value, ApiError> {
    let count = if view.wants_count() {
        child_count(state, req, node, counted).await?
    } else {
        None
    };
    let contents = if inline && node.inline_contents && count.is_some_and(|c| c <= INLINE_LIMIT) {
        let page = state
            .catalog
            .search(
                &node.path,
                &SearchRequest {
                    limit: INLINE_LIMIT,
                    filters: state.listing_filter(req, &node.path).into_iter().collect(),
                    ..Default::default()
                },
            )
            .await?;
        let mut m = Map::new();
        for child in &page.nodes {
            let c = child_count(state, req, child, false).await?;
            m.insert(
                child.key().to_string(),
                resource(child, &req.base, view, c, None),
            );
        }
        Some(m)
    } else {
        None
    };
    Ok(resource(node, &req.base, view, count, contents))
}

pub async fn metadata(
    state: &AppState,
    req: &Request,
    path: &[String],
) -> Result<Response, ApiError> {
    let view = View::from_params(&req.params)?;
    let max_depth = req.params.usize("max_depth", 0)?;
    if max_depth > 5 {
        return Err(ApiError::unprocessable("max_depth must be between 0 and 5"));
    }
    let node = state.node_for(req, path).await?;
    let data = build(state, req, &node, &view, true, false).await?;
    let doc = json!({"data": data, "error": null, "links": null, "meta": {}});
    respond::document(&req.headers, &doc).await
}

/// Resources of a search page built at once.
const BUILD_AT_ONCE: usize = 8;

fn parse_sort(values: &[&str], deep: bool) -> Result<Vec<SortKey>, ApiError> {
    let mut keys: Vec<SortKey> = Vec::new();
    let items: Vec<&str> = values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    if deep && items.iter().any(|s| !s.is_empty()) {
        return Err(ApiError::bad_request("search-deep does not support sort"));
    }
    let mut seen: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let (descending, name) = match item.as_bytes().first() {
            Some(b'-') => (true, &item[1..]),
            Some(b'+') => (false, &item[1..]),
            _ => (false, *item),
        };
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(ApiError::unprocessable(format!(
                "sort key {item:?} is invalid: use key, +key or -key with letters, digits, '_' and '.'"
            )));
        }
        if seen.iter().any(|s| s == name) {
            return Err(ApiError::bad_request(format!(
                "sort key {name:?} is given more than once"
            )));
        }
        seen.push(name.to_string());
        if name.is_empty() || name == "_" {
            if name.is_empty() && i + 1 != items.len() && !descending {
                return Err(ApiError::bad_request(
                    "the empty sort key (default order) must come last",
                ));
            }
            keys.push(SortKey::Default { descending });
        } else {
            keys.push(SortKey::Metadata {
                key: name.to_string(),
                descending,
            });
        }
    }
    Ok(keys)
}

/// The URL of a search page with the request's own parameters and a new offset.
fn page_link(
    req: &Request,
    route: &str,
    path: &[String],
    offset: Option<usize>,
    limit: usize,
    after: Option<i64>,
) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    if let Some(o) = offset {
        q.append_pair("page[offset]", &o.to_string());
    }
    q.append_pair("page[limit]", &limit.to_string());
    if let Some(a) = after {
        q.append_pair("page[after]", &a.to_string());
    }
    for (k, v) in &req.params.0 {
        if !matches!(
            k.as_str(),
            // A credential in the query must not travel on in links (or into logs and
            // browser histories through them).
            "page[offset]" | "page[limit]" | "page[cursor]" | "page[after]" | "api_key"
        ) {
            q.append_pair(k, v);
        }
    }
    let p: Vec<String> = path
        .iter()
        .map(|s| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        })
        .collect();
    format!("{}/{route}/{}?{}", req.base, p.join("/"), q.finish())
}

pub async fn search(
    state: &AppState,
    req: &Request,
    path: &[String],
    deep: bool,
) -> Result<Response, ApiError> {
    let view = View::from_params(&req.params)?;
    let p = &req.params;
    if p.has("page[cursor]") && p.has("page[offset]") {
        return Err(ApiError::bad_request(
            "page[cursor] and page[offset] cannot be used together",
        ));
    }
    let offset_param = if p.has("page[cursor]") {
        "page[cursor]"
    } else {
        "page[offset]"
    };
    let (offset, limit) = page(state, p, offset_param)?;
    let max_depth = if deep {
        let d = p.usize("max_depth", 64)?;
        if !(1..=64).contains(&d) {
            return Err(ApiError::unprocessable(
                "max_depth must be between 1 and 64",
            ));
        }
        Some(d)
    } else {
        None
    };
    let only_count = view.fields.as_ref().is_some_and(|f| f == &["count"]);
    let sort = p.all("sort");
    check_count(
        sort.len(),
        state.config.max_sort_keys,
        "sort keys",
        "max_sort_keys",
    )?;
    state.check_access(req, path).await?;
    let mut filters = filters(state, p)?;
    if let Some(Filter::AccessTags { tags }) = state.listing_filter(req, path) {
        if deep {
            filters.push(Filter::AccessPath { tags: tags.clone() });
        }
        filters.push(Filter::AccessTags { tags });
    }
    // Under an access policy, the catalog counts each child's visible children in the page's
    // query when it can (else one query per child container, a few at once).
    let child_filter = state.child_filter(req);
    let counted = state.catalog.counts_children_under_filters() && child_filter.is_some();
    let sreq = SearchRequest {
        child_filters: child_filter.filter(|_| counted).map(|f| vec![f]),
        filters,
        sort: parse_sort(&sort, deep)?,
        offset,
        limit: if only_count { 0 } else { limit },
        deep: max_depth,
        // A hint from our own `links.next`; `page[offset]` still names the page.
        after: match p.get("page[after]") {
            Some(raw) => Some(raw.parse::<i64>().map_err(|_| {
                ApiError::invalid_param(
                    "page[after]",
                    "int_parsing",
                    Some(raw),
                    "Input should be a valid integer (a cursor from links.next)",
                )
            })?),
            None => None,
        },
    };
    let page = state.catalog.search(path, &sreq).await?;
    // A few resources at once: under an access policy each child container's count is a
    // query of its own (the catalog's kept count includes what the caller may not see).
    use futures::StreamExt;
    let builds: Vec<_> = page
        .nodes
        .iter()
        .map(|n| build(state, req, n, &view, false, counted))
        .collect();
    let data: Vec<Value> = futures::stream::iter(builds)
        .buffered(BUILD_AT_ONCE)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let route = if deep { "search-deep" } else { "search" };
    // A short page is the last one, whatever an estimated count says.
    let next = (offset + limit < page.count && !only_count && page.nodes.len() == limit)
        .then(|| page_link(req, route, path, Some(offset + limit), limit, page.cursor));
    let doc = json!({
        "data": data,
        "error": null,
        "links": {
            "self": page_link(req, route, path, (offset > 0).then_some(offset), limit, sreq.after),
            "first": page_link(req, route, path, None, limit, None),
            "next": next,
        },
        "meta": {"count": page.count},
    });
    let mut r = respond::document(&req.headers, &doc).await?;
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("must-revalidate"),
    );
    Ok(r)
}

/// The page a request asks for: the offset (in `offset_param`, `page[offset]` or its alias)
/// and `page[limit]`, at most `max_page_limit`. Offsets stop at `i64::MAX`, what SQL
/// catalogs hold, so that `offset + limit` cannot overflow either.
pub(super) fn page(
    state: &AppState,
    p: &crate::params::Params,
    offset_param: &str,
) -> Result<(usize, usize), ApiError> {
    let raw = p.get(offset_param);
    let offset = match raw {
        Some(raw) if raw.starts_with('-') && raw[1..].parse::<u64>().is_ok() => {
            return Err(ApiError::invalid_param(
                offset_param,
                "greater_than_equal",
                Some(raw),
                "Input should be greater than or equal to 0",
            ));
        }
        _ => p.usize(offset_param, 0)?,
    };
    if offset > i64::MAX as usize {
        return Err(ApiError::invalid_param(
            offset_param,
            "less_than_equal",
            raw,
            format!("Input should be less than or equal to {}", i64::MAX),
        ));
    }
    let limit = p.usize("page[limit]", 100)?;
    let max = state.config.max_page_limit;
    if limit > max {
        return Err(ApiError::invalid_param(
            "page[limit]",
            "less_than_equal",
            p.get("page[limit]"),
            format!("Input should be less than or equal to {max}"),
        ));
    }
    Ok((offset, limit))
}

/// Refuses more than `max` of something a search may list.
fn check_count(n: usize, max: usize, what: &str, setting: &str) -> Result<(), ApiError> {
    if n > max {
        crate::metrics::REFUSED.with_label_values(&[setting]).inc();
        return Err(ApiError::bad_request(format!(
            "this request gives {n} {what}; at most {max} are accepted ({setting}): \
             narrow the search in steps"
        )));
    }
    Ok(())
}

/// The request's search filters, at most `max_filters` of them.
fn filters(state: &AppState, p: &crate::params::Params) -> Result<Vec<Filter>, ApiError> {
    let filters = parse_filters(&p.0)?;
    check_count(
        filters.len(),
        state.config.max_filters,
        "filters",
        "max_filters",
    )?;
    Ok(filters)
}

pub async fn distinct(
    state: &AppState,
    req: &Request,
    path: &[String],
) -> Result<Response, ApiError> {
    let p = &req.params;
    let keys = p.all("metadata");
    check_count(
        keys.len(),
        state.config.max_distinct_keys,
        "metadata keys",
        "max_distinct_keys",
    )?;
    let dreq = DistinctRequest {
        metadata: keys.iter().map(|s| s.to_string()).collect(),
        structure_families: p.bool("structure_families", false)?,
        specs: p.bool("specs", false)?,
        counts: p.bool("counts", false)?,
    };
    state.check_access(req, path).await?;
    let mut filters = filters(state, p)?;
    filters.extend(state.listing_filter(req, path));
    let doc = state.catalog.distinct(path, &filters, &dreq).await?;
    respond::document(&req.headers, &doc).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_items_parse_and_validate() {
        assert_eq!(
            parse_sort(&["-color", ""], false).unwrap(),
            vec![
                SortKey::Metadata {
                    key: "color".into(),
                    descending: true
                },
                SortKey::Default { descending: false }
            ]
        );
        assert_eq!(
            parse_sort(&["-_"], false).unwrap(),
            vec![SortKey::Default { descending: true }]
        );
        assert_eq!(
            parse_sort(&["a", "a"], false).unwrap_err().status.as_u16(),
            400
        );
        assert_eq!(
            parse_sort(&["", "a"], false).unwrap_err().status.as_u16(),
            400
        );
        assert_eq!(
            parse_sort(&["a;drop"], false).unwrap_err().status.as_u16(),
            422
        );
        assert!(parse_sort(&["a"], true).is_err());
    }
}
