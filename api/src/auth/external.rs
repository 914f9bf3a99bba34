//! Logins at an external OpenID Connect provider, in the two ways Tiled offers them:
//!
//! - **Device code** (what the Python client's `login()` drives): the client asks for a
//!   device code (`POST /auth/provider/{p}/authorize`), shows the user a URL at the provider
//!   and a user code, and polls `POST /auth/provider/{p}/token`. The provider sends the
//!   user's browser back to `GET /auth/provider/{p}/device_code`, a form where the user
//!   enters the user code; submitting it exchanges the provider's code and approves the
//!   device code, which the next poll redeems for tokens (once).
//! - **Browser** (`GET /auth/provider/{p}/authorize`, back at `GET .../code`): a redirect to
//!   the provider and back, answered with tokens (or a redirect carrying them).
//!
//! What a login began with (state, nonce, PKCE verifier, redirect URI) is kept in the
//! authentication database, so the steps may land on different API nodes. The device form
//! checks the provider's `state` against the login the user code belongs to, so neither a
//! guessed user code nor a code from another login approves someone else's device.

use std::net::IpAddr;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::Digest;

use super::oidc::{LoginError, Oidc};
use super::store::Val;
use super::{Auth, constant_time_eq, hex, now, random_hex};
use crate::error::ApiError;

/// How long a login may take, from its start to the redeemed device code.
pub const PENDING_MAX_AGE: i64 = 15 * 60;
/// Seconds between the client's polls.
pub const POLL_INTERVAL: i64 = 5;
/// Logins that may be pending at once (all providers): more are refused (429).
const MAX_PENDING: i64 = 10_000;

fn sha(s: &str) -> String {
    hex(&sha2::Sha256::digest(s.as_bytes()))
}

/// A login's row in `auth_pending`.
struct Pending {
    state: String,
    nonce: String,
    verifier: String,
    redirect_uri: String,
    client_state: Option<String>,
}

/// The columns of a [`Pending`], in the order `Pending::from_row` reads them.
const PENDING_COLUMNS: &str = "state, nonce, verifier, redirect_uri, client_state";

impl Pending {
    fn from_row(r: &[Val]) -> Pending {
        Pending {
            state: r[0].str().to_string(),
            nonce: r[1].str().to_string(),
            verifier: r[2].str().to_string(),
            redirect_uri: r[3].str().to_string(),
            client_state: r[4].text().map(str::to_string),
        }
    }

    /// The user the provider's `code` for this login names.
    async fn identify(&self, oidc: &Oidc, code: &str) -> Result<String, ApiError> {
        oidc.finish(code, &self.redirect_uri, &self.verifier, &self.nonce)
            .await
            .map_err(|e| upstream(&e))
    }
}

fn upstream(e: &LoginError) -> ApiError {
    tracing::warn!("an external login failed: {e}");
    match e {
        LoginError::Unreachable(_) => {
            ApiError::unavailable("the identity provider cannot be reached: retry later", 5)
        }
        _ => ApiError::new(StatusCode::UNAUTHORIZED, "Authentication failure"),
    }
}

impl Auth {
    /// How `provider` logs its users in, if there is such a provider.
    pub fn provider_kind(&self, provider: &str) -> Option<&super::ProviderKind> {
        self.settings
            .providers
            .iter()
            .find(|p| p.name == provider)
            .map(|p| &p.kind)
    }

    /// The OpenID Connect provider named `provider`.
    pub fn oidc_provider(&self, provider: &str) -> Result<&Oidc, ApiError> {
        match self.settings.providers.iter().find(|p| p.name == provider) {
            Some(super::Provider {
                kind: super::ProviderKind::Oidc(o),
                ..
            }) => Ok(o),
            Some(_) => Err(ApiError::not_found(format!(
                "provider {provider:?} logs in with a password, not through a browser"
            ))),
            None => Err(ApiError::not_found(format!(
                "no login provider {provider:?}"
            ))),
        }
    }

    /// Forgets logins that took too long, and refuses a new one when too many are pending.
    async fn make_room(&self) -> Result<(), ApiError> {
        self.db
            .exec(
                "DELETE FROM auth_pending WHERE expires < $1",
                vec![now().into()],
            )
            .await?;
        let pending = self
            .db
            .rows("SELECT count(*) FROM auth_pending", vec![])
            .await?
            .first()
            .and_then(|r| r[0].int())
            .unwrap_or(0);
        if pending >= MAX_PENDING {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many logins are under way: try again in a few minutes",
            ));
        }
        Ok(())
    }

    /// `POST /auth/provider/{p}/authorize`: a device code and user code for the client,
    /// and the provider URL where the user approves them.
    pub async fn start_device_login(&self, provider: &str, base: &str) -> Result<Value, ApiError> {
        let oidc = self.oidc_provider(provider)?;
        self.make_room().await?;
        let redirect_uri = format!("{base}/auth/provider/{provider}/device_code");
        let started = oidc
            .start(&redirect_uri, false)
            .await
            .map_err(|e| upstream(&e))?;
        let device_code = random_hex(32);
        let expires = now() + PENDING_MAX_AGE;
        // 8 hex digits: collisions among live codes are rare, and refused by the index.
        for _ in 0..3 {
            let user_code = random_hex(4).to_uppercase();
            let inserted = self
                .db
                .exec(
                    "INSERT INTO auth_pending (hash, provider, user_code, state, nonce, verifier, \
                     redirect_uri, expires) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT DO NOTHING",
                    vec![
                        sha(&device_code).into(),
                        provider.into(),
                        user_code.clone().into(),
                        started.state.clone().into(),
                        started.nonce.clone().into(),
                        started.verifier.clone().into(),
                        redirect_uri.clone().into(),
                        expires.into(),
                    ],
                )
                .await?;
            if inserted == 1 {
                return Ok(json!({
                    "authorization_uri": started.url,
                    "verification_uri": format!("{base}/auth/provider/{provider}/token"),
                    "interval": POLL_INTERVAL,
                    "device_code": device_code,
                    "expires_in": PENDING_MAX_AGE as f64,
                    "user_code": format!("{}-{}", &user_code[..4], &user_code[4..]),
                }));
            }
        }
        Err(ApiError::unavailable("no free user code: retry", 1))
    }

    /// `POST /auth/provider/{p}/device_code`: the user, back from the provider with its
    /// `code` and `state`, enters `user_code`. Approves the device code of that login.
    pub async fn approve_device_login(
        &self,
        provider: &str,
        code: &str,
        state: &str,
        user_code: &str,
        addr: Option<IpAddr>,
    ) -> Result<String, ApiError> {
        let oidc = self.oidc_provider(provider)?;
        let normalized: String = user_code
            .trim()
            .chars()
            .filter(|c| *c != '-')
            .flat_map(char::to_uppercase)
            .collect();
        let addr_key = addr.map(|a| format!("addr:{a}"));
        if let Some(k) = &addr_key {
            self.shared_check(k, 10).await?;
            self.limiter.check(k, 10)?;
        }
        let row = self
            .db
            .rows(
                &format!(
                    "SELECT {PENDING_COLUMNS} FROM auth_pending WHERE provider = $1 \
                     AND user_code = $2 AND expires >= $3 AND session IS NULL"
                ),
                vec![provider.into(), normalized.into(), now().into()],
            )
            .await?;
        let pending = row.first().map(|r| Pending::from_row(r));
        let Some(pending) =
            pending.filter(|p| constant_time_eq(p.state.as_bytes(), state.as_bytes()))
        else {
            self.failed(&[addr_key.as_ref()]).await;
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "Invalid user code. It may have been mistyped, or the pending request may have expired.",
            ));
        };
        let id = pending.identify(oidc, code).await?;
        let (principal, session) = self.new_session(provider, &id).await?;
        let approved = self
            .db
            .exec(
                "UPDATE auth_pending SET session = $1, identity = $2 \
                 WHERE provider = $3 AND state = $4 AND session IS NULL",
                vec![
                    session.into(),
                    id.clone().into(),
                    provider.into(),
                    pending.state.into(),
                ],
            )
            .await?;
        if approved == 0 {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "this login was approved already",
            ));
        }
        tracing::info!(provider, principal, "a device login approved");
        Ok(id)
    }

    /// `POST /auth/provider/{p}/token` with a device code: tokens once approved (and then
    /// never again), 400 `authorization_pending` until then.
    pub async fn redeem_device_code(
        &self,
        provider: &str,
        device_code: &str,
    ) -> Result<Value, ApiError> {
        self.oidc_provider(provider)?;
        if device_code.len() != 64 || !device_code.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "Invalid device code",
            ));
        }
        let hash = sha(&device_code.to_ascii_lowercase());
        let gone =
            || ApiError::not_found("No such device_code. The pending request may have expired.");
        let rows = self
            .db
            .rows(
                "SELECT session FROM auth_pending WHERE hash = $1 AND provider = $2 AND expires >= $3",
                vec![hash.clone().into(), provider.into(), now().into()],
            )
            .await?;
        let row = rows.first().ok_or_else(gone)?;
        if row[0].text().is_none() {
            let mut e = ApiError::new(StatusCode::BAD_REQUEST, "authorization_pending");
            e.validation = Some(json!({"error": "authorization_pending"}));
            return Err(e);
        }
        // Redeemed once: of two polls at once (on two nodes), one gets the tokens.
        let taken = self
            .db
            .rows(
                "DELETE FROM auth_pending WHERE hash = $1 AND session IS NOT NULL \
                 RETURNING session, identity",
                vec![hash.into()],
            )
            .await?;
        let row = taken.first().ok_or_else(gone)?;
        let (session, id) = (row[0].str().to_string(), row[1].str().to_string());
        self.session_tokens(provider, &id, &session).await
    }

    /// `GET /auth/provider/{p}/authorize`: where to send the browser, and the state the
    /// browser must bring back (set in a cookie).
    pub async fn start_browser_login(
        &self,
        provider: &str,
        base: &str,
        client_state: Option<&str>,
    ) -> Result<(String, String), ApiError> {
        let oidc = self.oidc_provider(provider)?;
        if client_state.is_some_and(|s| s.len() > 1024) {
            return Err(ApiError::bad_request("state is at most 1024 bytes"));
        }
        self.make_room().await?;
        let redirect_uri = format!("{base}/auth/provider/{provider}/code");
        let started = oidc
            .start(&redirect_uri, true)
            .await
            .map_err(|e| upstream(&e))?;
        self.db
            .exec(
                "INSERT INTO auth_pending (hash, provider, state, nonce, verifier, redirect_uri, \
                 client_state, expires) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                vec![
                    sha(&started.state).into(),
                    provider.into(),
                    started.state.clone().into(),
                    started.nonce.into(),
                    started.verifier.into(),
                    redirect_uri.into(),
                    client_state.into(),
                    (now() + PENDING_MAX_AGE).into(),
                ],
            )
            .await?;
        Ok((started.url, started.state))
    }

    /// `GET /auth/provider/{p}/code`: the browser back from the provider. The `state` must
    /// be the one this browser was given (its cookie) and is used once. Tokens, and the
    /// state the login was started with.
    pub async fn finish_browser_login(
        &self,
        provider: &str,
        code: &str,
        state: &str,
        cookie_state: Option<&str>,
    ) -> Result<(Value, Option<String>), ApiError> {
        let oidc = self.oidc_provider(provider)?;
        let failure = || ApiError::new(StatusCode::UNAUTHORIZED, "Authentication failure");
        if !cookie_state.is_some_and(|c| constant_time_eq(c.as_bytes(), state.as_bytes())) {
            tracing::warn!(
                provider,
                "a browser login came back without its state cookie"
            );
            return Err(failure());
        }
        let rows = self
            .db
            .rows(
                &format!(
                    "DELETE FROM auth_pending WHERE hash = $1 AND provider = $2 \
                     AND expires >= $3 AND user_code IS NULL RETURNING {PENDING_COLUMNS}"
                ),
                vec![sha(state).into(), provider.into(), now().into()],
            )
            .await?;
        let pending = rows
            .first()
            .map(|r| Pending::from_row(r))
            .ok_or_else(failure)?;
        let id = pending.identify(oidc, code).await?;
        let (_, session) = self.new_session(provider, &id).await?;
        let doc = self.session_tokens(provider, &id, &session).await?;
        Ok((doc, pending.client_state))
    }
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A small page for the user's browser: no scripts, no outside resources, never cached.
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:sans-serif;max-width:36em;margin:3em auto}}\
         input{{font-size:1.2em}}</style></head>\n<body><h1>{t}</h1>\n{body}\n</body></html>\n",
        t = esc(title)
    );
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

/// The form where the user, back from the provider, enters the user code.
pub fn device_form(
    status: StatusCode,
    action: &str,
    code: &str,
    state: &str,
    message: Option<&str>,
) -> Response {
    let message = message.map_or(String::new(), |m| {
        format!("<p><strong>{}</strong></p>", esc(m))
    });
    page(
        status,
        "Enter the code",
        &format!(
            "{message}<p>Enter the code your terminal shows to finish logging in.</p>\n\
             <form method=\"post\" action=\"{action}\">\
             <input type=\"hidden\" name=\"code\" value=\"{code}\">\
             <input type=\"hidden\" name=\"state\" value=\"{state}\">\
             <input name=\"user_code\" autocomplete=\"off\" autofocus placeholder=\"XXXX-XXXX\" \
             maxlength=\"16\"> <button type=\"submit\">Log in</button></form>",
            action = esc(action),
            code = esc(code),
            state = esc(state),
        ),
    )
}
