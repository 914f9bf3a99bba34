//! The `/api/v1/auth/...` routes the Tiled client calls: password login, session refresh
//! and revocation, whoami, API keys.

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Auth, ProviderKind, external, scopes};
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
        (["provider", provider, "authorize"], &Method::POST) => {
            let doc = auth.start_device_login(provider, &req.base).await?;
            respond::document(&req.headers, &doc).await
        }
        (["provider", provider, "authorize"], &Method::GET) => {
            browser_login(auth, req, provider).await
        }
        (["provider", provider, "device_code"], &Method::GET) => {
            let code = req.params.get("code").unwrap_or("");
            let state = req.params.get("state").unwrap_or("");
            let action = format!("{}/auth/provider/{provider}/device_code", req.base);
            if let Some(error) = req.params.get("error") {
                tracing::info!(
                    provider,
                    error,
                    "the identity provider refused a device login"
                );
                return Ok(external::page(
                    StatusCode::UNAUTHORIZED,
                    "Login refused",
                    "<p>The identity provider did not log you in. Start again from your terminal.</p>",
                ));
            }
            auth.oidc_provider(provider)?;
            Ok(external::device_form(
                StatusCode::OK,
                &action,
                code,
                state,
                None,
            ))
        }
        (["provider", provider, "device_code"], &Method::POST) => {
            approve_device(auth, req, provider).await
        }
        (["provider", provider, "users"], &Method::GET) => {
            need(req, scopes::READ_PRINCIPALS)?;
            respond::document(&req.headers, &auth.users(provider).await?).await
        }
        (["provider", provider, "users", username], &Method::PUT) => {
            need(req, scopes::WRITE_PRINCIPALS)?;
            let body: PasswordBody = json_body(req)?;
            let added = auth
                .set_user_password(provider, username, &body.password)
                .await?;
            let doc = json!({"username": username, "provider": provider, "added": added});
            respond::document(&req.headers, &doc).await
        }
        (["provider", provider, "users", username], &Method::DELETE) => {
            need(req, scopes::WRITE_PRINCIPALS)?;
            if auth.remove_user(provider, username).await? {
                Ok(no_content())
            } else {
                Err(ApiError::not_found(format!(
                    "{provider} has no user {username:?}"
                )))
            }
        }
        (["provider", provider, "password"], &Method::POST) => {
            let body: ChangePasswordBody = json_body(req)?;
            let Some((_, id)) = req.caller.identities.iter().find(|(p, _)| p == provider) else {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    format!("log in as a user of {provider} to change your password"),
                ));
            };
            auth.change_own_password(
                provider,
                id,
                &body.old_password,
                &body.new_password,
                req.peer.map(|a| a.ip()),
            )
            .await?;
            Ok(no_content())
        }
        (["provider", provider, "code"], &Method::GET) => {
            finish_browser_login(auth, req, provider).await
        }
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
        (["provider", _, "authorize" | "device_code"], _) => Err(wrong_method(m, "GET, POST")),
        (["provider", _, "code" | "users"], _) => Err(wrong_method(m, "GET")),
        (["provider", _, "users", _], _) => Err(wrong_method(m, "PUT, DELETE")),
        (["provider", _, "password"], _) => Err(wrong_method(m, "POST")),
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangePasswordBody {
    old_password: String,
    new_password: String,
}

#[derive(Deserialize)]
struct DeviceCodeBody {
    device_code: String,
    #[serde(default)]
    grant_type: Option<String>,
}

/// The device-code grant's `grant_type`.
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// `POST /auth/provider/{provider}/token`: with a form, the OAuth2 password grant; for an
/// external provider, JSON with a device code to redeem.
async fn login(auth: &Auth, req: &Request, provider: &str) -> Result<Response, ApiError> {
    if let Some(ProviderKind::Oidc(_)) = auth.provider_kind(provider) {
        let body: DeviceCodeBody = json_body(req)?;
        if body
            .grant_type
            .as_deref()
            .is_some_and(|g| g != DEVICE_GRANT)
        {
            return Err(ApiError::bad_request(format!(
                "unsupported grant_type: this provider takes {DEVICE_GRANT}"
            )));
        }
        let doc = auth.redeem_device_code(provider, &body.device_code).await?;
        return respond::document(&req.headers, &doc).await;
    }
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

/// The value of cookie `name` in the request, if it has one.
fn cookie<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The cookie that ties a browser login's return to the browser that began it.
const STATE_COOKIE: &str = "tessera_oidc_state";

/// `GET /auth/provider/{provider}/authorize`: off to the identity provider.
async fn browser_login(auth: &Auth, req: &Request, provider: &str) -> Result<Response, ApiError> {
    let client_state = req.params.get("state");
    let (url, state) = auth
        .start_browser_login(provider, &req.base, client_state)
        .await?;
    let secure = if req.base.starts_with("https:") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{STATE_COOKIE}={state}; Max-Age={}; Path=/api/v1/auth/provider/{provider}; HttpOnly; SameSite=lax{secure}",
        external::PENDING_MAX_AGE
    );
    let mut r = StatusCode::FOUND.into_response();
    let h = r.headers_mut();
    h.insert(axum::http::header::LOCATION, header_value(&url)?);
    h.append(axum::http::header::SET_COOKIE, header_value(&cookie)?);
    h.insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(r)
}

fn header_value(s: &str) -> Result<axum::http::HeaderValue, ApiError> {
    axum::http::HeaderValue::from_str(s)
        .map_err(|_| ApiError::bad_request("a value that cannot be sent in a header"))
}

/// `GET /auth/provider/{provider}/code`: back from the identity provider with a code.
async fn finish_browser_login(
    auth: &Auth,
    req: &Request,
    provider: &str,
) -> Result<Response, ApiError> {
    let oidc = auth.oidc_provider(provider)?;
    let code = req.params.get("code");
    let state = req.params.get("state");
    let result = match (code, state) {
        (Some(code), Some(state)) => {
            auth.finish_browser_login(provider, code, state, cookie(req, STATE_COOKIE))
                .await
        }
        _ => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Authentication failure",
        )),
    };
    let clear = format!("{STATE_COOKIE}=; Max-Age=0; Path=/api/v1/auth/provider/{provider}");
    let mut r = match (
        result,
        &oidc.settings.redirect_on_success,
        &oidc.settings.redirect_on_failure,
    ) {
        (Ok((doc, client_state)), Some(to), _) => {
            let mut url = openidconnect::url::Url::parse(to)
                .map_err(|e| ApiError::internal(format!("redirect_on_success: {e}")))?;
            {
                let mut q = url.query_pairs_mut();
                for key in ["access_token", "refresh_token", "principal"] {
                    q.append_pair(key, doc[key].as_str().unwrap_or(""));
                }
                q.append_pair("identity.id", doc["identity"]["id"].as_str().unwrap_or(""));
                q.append_pair("identity.provider", provider);
                if let Some(s) = &client_state {
                    q.append_pair("state", s);
                }
            }
            redirect(url.as_str())?
        }
        (Ok((doc, _)), None, _) => respond::document(&req.headers, &doc).await?,
        (Err(e), _, Some(to)) if e.status == StatusCode::UNAUTHORIZED => redirect(to)?,
        (Err(e), _, _) => return Err(e),
    };
    r.headers_mut()
        .append(axum::http::header::SET_COOKIE, header_value(&clear)?);
    Ok(r)
}

fn redirect(to: &str) -> Result<Response, ApiError> {
    let mut r = StatusCode::FOUND.into_response();
    r.headers_mut()
        .insert(axum::http::header::LOCATION, header_value(to)?);
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(r)
}

/// `POST /auth/provider/{provider}/device_code`: the user's form with the user code.
async fn approve_device(auth: &Auth, req: &Request, provider: &str) -> Result<Response, ApiError> {
    auth.oidc_provider(provider)?;
    let (mut code, mut state, mut user_code) = (String::new(), String::new(), String::new());
    for (k, v) in form_urlencoded::parse(&req.body) {
        match k.as_ref() {
            "code" => code = v.into_owned(),
            "state" => state = v.into_owned(),
            "user_code" => user_code = v.into_owned(),
            _ => {}
        }
    }
    let action = format!("{}/auth/provider/{provider}/device_code", req.base);
    if code.is_empty() || user_code.is_empty() || user_code.len() > 64 {
        return Ok(external::device_form(
            StatusCode::BAD_REQUEST,
            &action,
            &code,
            &state,
            Some("Enter the code your terminal shows."),
        ));
    }
    match auth
        .approve_device_login(
            provider,
            &code,
            &state,
            &user_code,
            req.peer.map(|a| a.ip()),
        )
        .await
    {
        Ok(id) => Ok(external::page(
            StatusCode::OK,
            "Logged in",
            &format!(
                "<p>You are logged in as {}. Return to your terminal: it continues within {} seconds.</p>",
                external::esc(&id),
                external::POLL_INTERVAL
            ),
        )),
        Err(e)
            if e.status == StatusCode::UNAUTHORIZED
                && e.detail.starts_with("Invalid user code") =>
        {
            Ok(external::device_form(
                StatusCode::UNAUTHORIZED,
                &action,
                &code,
                &state,
                Some(&e.detail),
            ))
        }
        Err(e) if e.status == StatusCode::UNAUTHORIZED => Ok(external::page(
            StatusCode::UNAUTHORIZED,
            "Login failed",
            "<p>The user code was right, but the identity provider's answer was not accepted. \
             Start again from your terminal; if it fails again, ask the administrators to look \
             at the server log.</p>",
        )),
        Err(e) => Err(e),
    }
}
