//! The `/api/v1/auth/...` routes the Tiled client calls: password login, session refresh
//! and revocation, whoami, API keys.

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Auth, scopes};
use crate::error::ApiError;
use crate::respond;
use crate::routes::Request;
use crate::state::AppState;

#[derive(Deserialize)]
struct RefreshBody {
    refresh_token: String,
}

fn json_body<T: serde::de::DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    serde_json::from_slice(&req.body).map_err(|e| {
        ApiError::bad_request(format!("the request body is not the JSON expected: {e}"))
    })
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

fn need(req: &Request, scope: scopes::Scopes) -> Result<(), ApiError> {
    if req.caller.scopes.covers(scope) {
        return Ok(());
    }
    Err(crate::routes::not_enough(scope, req.caller.scopes))
}

/// Serves `/api/v1/auth/{path}`.
pub async fn route(state: &AppState, req: &Request, path: &[String]) -> Result<Response, ApiError> {
    let Some(auth) = state.config.auth.as_deref() else {
        return Err(ApiError::not_found(
            "this server has no login providers (single-user mode): use its API key",
        ));
    };
    let parts: Vec<&str> = path.iter().map(String::as_str).collect();
    let m = &req.method;
    match (parts.as_slice(), m) {
        (["provider", provider, "token"], &Method::POST) => login(auth, req, provider).await,
        (["session", "refresh"], &Method::POST) => {
            let body: RefreshBody = json_body(req)?;
            respond::document(&req.headers, &auth.refresh(&body.refresh_token).await?).await
        }
        (["session", "revoke"], &Method::POST) => {
            let body: RefreshBody = json_body(req)?;
            if auth.revoke_by_token(&body.refresh_token).await? {
                Ok(no_content())
            } else {
                Err(ApiError::new(StatusCode::CONFLICT, "No such session"))
            }
        }
        (["session", "revoke", session], &Method::DELETE) => {
            if req.caller.principal.is_none() {
                return Err(crate::routes::not_enough(
                    scopes::READ_METADATA,
                    req.caller.scopes,
                ));
            }
            if auth.revoke_session(&req.caller, session).await? {
                Ok(no_content())
            } else {
                Err(ApiError::not_found(format!(
                    "no session {session} of this principal"
                )))
            }
        }
        (["whoami"], &Method::GET) => {
            let doc = match &req.caller.principal {
                Some(p) => auth.principal_doc(p).await?,
                None => Value::Null,
            };
            respond::document(&req.headers, &doc).await
        }
        (["logout"], &Method::POST) => {
            let mut r = respond::document(&req.headers, &json!({})).await?;
            r.headers_mut().append(
                axum::http::header::SET_COOKIE,
                axum::http::HeaderValue::from_static(
                    "tiled_api_key=; Max-Age=0; Path=/; HttpOnly; SameSite=lax",
                ),
            );
            Ok(r)
        }
        (["apikey"], &Method::POST) => {
            let any = scopes::CREATE_APIKEYS.with(scopes::ADMIN_APIKEYS);
            if req.caller.scopes.and(any).is_empty() {
                need(req, scopes::CREATE_APIKEYS)?;
            }
            let doc = auth.create_own_key(&req.caller, json_body(req)?).await?;
            respond::document(&req.headers, &doc).await
        }
        (["apikey"], &Method::GET) => {
            respond::document(&req.headers, &auth.key_info(&req.caller).await?).await
        }
        (["apikey"], &Method::DELETE) => {
            let any = scopes::REVOKE_APIKEYS.with(scopes::ADMIN_APIKEYS);
            if req.caller.scopes.and(any).is_empty() {
                need(req, scopes::REVOKE_APIKEYS)?;
            }
            let first_eight = first_eight(req)?;
            let Some(owner) = &req.caller.principal else {
                return Err(crate::routes::not_enough(
                    scopes::REVOKE_APIKEYS,
                    req.caller.scopes,
                ));
            };
            if auth.revoke_key(owner, first_eight).await? {
                Ok(no_content())
            } else {
                Err(ApiError::not_found(format!(
                    "no API key {first_eight}... of this principal"
                )))
            }
        }
        (["principal"], &Method::GET) => {
            need(req, scopes::READ_PRINCIPALS)?;
            let offset = count_param(req, ["page[offset]", "offset"], 0)?;
            let limit = count_param(req, ["page[limit]", "limit"], 100)?.min(1000);
            respond::document(&req.headers, &auth.principals(offset, limit).await?).await
        }
        (["principal"], &Method::POST) => {
            need(req, scopes::WRITE_PRINCIPALS)?;
            let role = req
                .params
                .get("role")
                .ok_or_else(|| ApiError::bad_request("give role: user or admin"))?;
            respond::document(&req.headers, &auth.create_service(role).await?).await
        }
        (["principal", uuid], &Method::GET) => {
            need(req, scopes::READ_PRINCIPALS)?;
            match auth.principal_doc(&uuid.replace('-', "")).await? {
                Value::Null => Err(ApiError::not_found(format!("no principal {uuid}"))),
                doc => respond::document(&req.headers, &doc).await,
            }
        }
        (["principal", uuid, "apikey"], &Method::POST) => {
            need(req, scopes::ADMIN_APIKEYS)?;
            let doc = auth.create_key_for(uuid, json_body(req)?).await?;
            respond::document(&req.headers, &doc).await
        }
        (["principal", uuid, "apikey"], &Method::DELETE) => {
            need(req, scopes::ADMIN_APIKEYS)?;
            let first_eight = first_eight(req)?;
            if auth.revoke_key(uuid, first_eight).await? {
                Ok(no_content())
            } else {
                Err(ApiError::not_found(format!(
                    "no API key {first_eight}... of {uuid}"
                )))
            }
        }
        (["provider", _, "token"] | ["session", "refresh" | "revoke"] | ["logout"], _) => {
            Err(wrong_method(m, "POST"))
        }
        (["principal"], _) => Err(wrong_method(m, "GET, POST")),
        (["principal", _], _) => Err(wrong_method(m, "GET")),
        (["principal", _, "apikey"], _) => Err(wrong_method(m, "POST, DELETE")),
        (["session", "revoke", _], _) => Err(wrong_method(m, "DELETE")),
        (["whoami"], _) => Err(wrong_method(m, "GET")),
        (["apikey"], _) => Err(wrong_method(m, "GET, POST, DELETE")),
        _ => Err(ApiError::not_found(format!(
            "no authentication route /auth/{}",
            parts.join("/")
        ))),
    }
}

/// A non-negative integer parameter under one of `names`, or `default`.
fn count_param(req: &Request, names: [&str; 2], default: i64) -> Result<i64, ApiError> {
    let Some(v) = names.iter().find_map(|n| req.params.get(n)) else {
        return Ok(default);
    };
    v.parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("{v:?} is not a count")))
}

fn first_eight(req: &Request) -> Result<&str, ApiError> {
    req.params
        .get("first_eight")
        .ok_or_else(|| ApiError::bad_request("give first_eight: the key's first 8 characters"))
}

fn wrong_method(m: &Method, allowed: &str) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{m} is not supported here (allowed: {allowed})"),
    )
}

/// `POST /auth/provider/{provider}/token` with a form: the OAuth2 password grant.
async fn login(auth: &Auth, req: &Request, provider: &str) -> Result<Response, ApiError> {
    let mut grant = None;
    let (mut username, mut password) = (None, None);
    for (k, v) in form_urlencoded::parse(&req.body) {
        match k.as_ref() {
            "grant_type" => grant = Some(v.into_owned()),
            "username" => username = Some(v.into_owned()),
            "password" => password = Some(v.into_owned()),
            _ => {}
        }
    }
    if grant.as_deref().is_some_and(|g| g != "password") {
        return Err(ApiError::bad_request(
            "unsupported grant_type: this provider takes grant_type=password",
        ));
    }
    let (Some(username), Some(password)) = (username, password) else {
        return Err(ApiError::bad_request(
            "give username and password as a form (application/x-www-form-urlencoded)",
        ));
    };
    let doc = auth
        .password_login(provider, &username, &password, req.peer.map(|a| a.ip()))
        .await?;
    respond::document(&req.headers, &doc).await
}
