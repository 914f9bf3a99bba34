//! Multi-user access: who is asking (a principal through an access token or an API key,
//! or nobody) and what they may do (scopes). Principals log in with a password provider
//! (Tiled's `DictionaryAuthenticator`), get short-lived access tokens and a refresh token
//! bound to a session in the authentication database, and make API keys, stored hashed.
//! Sessions and keys live in the database, so any API node refreshes, revokes and accepts
//! them. Single-user mode (one static key) is unchanged and has none of this.

pub mod external;
pub mod oidc;
pub mod policy;
pub mod routes;
pub mod scopes;
pub mod store;
pub mod tokens;
pub mod users;

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};
use sha2::Digest;

use crate::error::ApiError;
use scopes::Scopes;
use store::{Db, Val};
use tokens::{Keys, TokenError, TokenIdentity};

/// A login provider of the configuration.
#[derive(Clone, Debug)]
pub struct Provider {
    pub name: String,
    pub kind: ProviderKind,
    pub confirmation_message: Option<String>,
}

/// How a provider's users prove who they are.
#[derive(Clone, Debug)]
pub enum ProviderKind {
    /// A password, checked against users and passwords in the configuration (Tiled's
    /// `DictionaryAuthenticator`).
    Dictionary(HashMap<String, String>),
    /// A password, checked against the argon2id hash of the user in the authentication
    /// database (`tessera.authenticators:DatabaseAuthenticator`; users are added by admins).
    UserTable,
    /// A login at an OpenID Connect provider (Tiled's `OIDCAuthenticator`).
    Oidc(Arc<oidc::Oidc>),
}

impl ProviderKind {
    /// The root document's `mode`: `internal` (a password sent to us) or `external`.
    pub fn mode(&self) -> &'static str {
        match self {
            ProviderKind::Dictionary(_) | ProviderKind::UserTable => "internal",
            ProviderKind::Oidc(_) => "external",
        }
    }
}

/// The settings of multi-user access (Tiled's `authentication` and `database` sections).
#[derive(Clone, Debug)]
pub struct AuthSettings {
    pub providers: Vec<Provider>,
    /// `(provider, id)` of the identities that get role `admin`.
    pub admins: Vec<(String, String)>,
    pub secret_keys: Vec<String>,
    pub allow_anonymous_access: bool,
    pub access_token_max_age: Duration,
    pub refresh_token_max_age: Duration,
    pub session_max_age: Duration,
    /// The authentication database; `None`: an in-memory SQLite database (sessions and
    /// keys end with the process, and are this node's only).
    pub database: Option<String>,
    pub init_if_not_exists: bool,
    /// Failed logins of one user in a minute before further attempts are refused (429);
    /// one address may fail ten times as often.
    pub login_failures_per_minute: u32,
    /// Who sees and changes which nodes; `None`: every principal sees everything.
    pub policy: Option<Arc<policy::TagPolicy>>,
}

/// Who made a request, and what they may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The principal's UUID (32 hex digits); `None` for anonymous callers and the holder of
    /// the single-user key.
    pub principal: Option<String>,
    pub scopes: Scopes,
    /// The hash of the API key used, if one was.
    pub api_key: Option<String>,
    /// A service principal (named by its UUID), not a user.
    pub service: bool,
    /// The principal's identities: `(provider, id)`.
    pub identities: Vec<(String, String)>,
    /// The access tags an API key is restricted to (`None`: not restricted).
    pub key_tags: Option<Vec<String>>,
}

impl Caller {
    pub fn anonymous(scopes: Scopes) -> Caller {
        Caller {
            principal: None,
            scopes,
            api_key: None,
            service: false,
            identities: Vec::new(),
            key_tags: None,
        }
    }
}

/// The credentials a request presents.
#[derive(Debug, PartialEq, Eq)]
pub enum Credentials {
    None,
    ApiKey(String),
    Bearer(String),
}

/// What a new API key is asked to be (the body of `POST /auth/apikey`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// Scope names; `None`: `inherit` (the owner's scopes when used).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Under an access policy: the only tags the key reaches nodes through.
    #[serde(default)]
    pub access_tags: Option<Vec<String>>,
    /// Seconds until it expires; `None`: never.
    #[serde(default)]
    pub expires_in: Option<f64>,
    #[serde(default)]
    pub note: Option<String>,
}

/// An API key as stored, with what the caller needs of its principal.
#[derive(Clone, Debug)]
struct KeyRecord {
    principal: String,
    scopes: Scopes,
    expires: Option<i64>,
    /// The scopes of the principal's role.
    role: Scopes,
    service: bool,
    identities: Vec<(String, String)>,
    access_tags: Option<Vec<String>>,
}

/// How long a looked-up API key is trusted without asking the database again: a key
/// revoked on another node stops working within this time (at once on the revoking node).
const KEY_CACHE_TTL: Duration = Duration::from_secs(5);
/// At most one `latest_activity` write per key or principal in this time.
const ACTIVITY_EVERY: Duration = Duration::from_secs(60);
/// API keys a principal may hold.
const MAX_KEYS: i64 = 100;
/// Longest user name and password a login may present (they key the failure counts).
const MAX_NAME: usize = 256;
const MAX_PASSWORD: usize = 1024;
/// Access tags one API key may be restricted to, and the longest tag.
const MAX_KEY_TAGS: usize = 100;

/// The multi-user machinery of a node.
pub struct Auth {
    pub settings: AuthSettings,
    keys: Keys,
    db: Db,
    limiter: LoginLimiter,
    key_cache: moka::sync::Cache<String, Option<Arc<KeyRecord>>>,
    /// Failed logins counted for the whole cluster (Redis), beside this node's own count.
    shared: std::sync::OnceLock<SharedFailures>,
    /// Access tokens already checked, with their expiry.
    token_cache: moka::sync::Cache<String, (Arc<Caller>, i64)>,
    activity: moka::sync::Cache<String, ()>,
    /// Password hashes computed at once (each takes tens of milliseconds of a core).
    hashing: tokio::sync::Semaphore,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("providers", &self.settings.providers.len())
            .field("db", &self.db)
            .finish()
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `n` random bytes as hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    // The OS generator; failing it is a broken machine.
    getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
    hex(&bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The stored form of an API key: SHA-256 of its bytes (the secret is hex).
fn key_hash(secret: &str) -> String {
    hex(&sha2::Sha256::digest(secret.as_bytes()))
}

/// Compares secrets in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn unauthorized(detail: impl Into<String>) -> ApiError {
    let mut e = ApiError::new(StatusCode::UNAUTHORIZED, detail.into());
    e.www_authenticate = true;
    e
}

fn iso(t: Option<i64>) -> Value {
    t.and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map_or(Value::Null, |d| Value::String(d.to_rfc3339()))
}

/// A UUID of 32 hex digits in its dashed form, as Tiled shows principals and sessions.
fn dashed(u: &str) -> String {
    uuid::Uuid::parse_str(u).map_or_else(|_| u.to_string(), |u| u.hyphenated().to_string())
}

impl Auth {
    /// Opens the database and readies the keys.
    pub async fn start(settings: AuthSettings) -> anyhow::Result<Auth> {
        let uri = settings.database.as_deref().unwrap_or(":memory:");
        let init = settings.init_if_not_exists || settings.database.is_none();
        let db = Db::open(uri, init).await?;
        Ok(Auth {
            keys: Keys::new(&settings.secret_keys),
            limiter: LoginLimiter::new(settings.login_failures_per_minute),
            key_cache: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(KEY_CACHE_TTL)
                .build(),
            shared: std::sync::OnceLock::new(),
            token_cache: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
            activity: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ACTIVITY_EVERY)
                .build(),
            hashing: tokio::sync::Semaphore::new(users::HASHING_AT_ONCE),
            settings,
            db,
        })
    }

    /// Counts failed logins in the cluster's Redis too (keys under `prefix`), so that every
    /// node refuses a user or address that failed on any of them. Redis down: each node
    /// still counts its own.
    pub async fn count_failures_in(&self, redis_url: &str, prefix: &str) -> anyhow::Result<()> {
        let client = redis::Client::open(redis_url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1);
        let conn = redis::aio::ConnectionManager::new_with_config(client, config).await?;
        let _ = self.shared.set(SharedFailures {
            conn,
            prefix: format!("{prefix}:login"),
        });
        Ok(())
    }

    /// 429 when the cluster counted `per_minute * factor` failures of `key` this minute.
    async fn shared_check(&self, key: &str, factor: u32) -> Result<(), ApiError> {
        let Some(shared) = self.shared.get() else {
            return Ok(());
        };
        // This minute's failures and the last minute's: a burst across the turn of a minute
        // counts whole.
        let (now, left) = shared.window(key, 0);
        let (before, _) = shared.window(key, 1);
        let mut conn = shared.conn.clone();
        let counts: Vec<Option<u32>> = redis::cmd("MGET")
            .arg(&now)
            .arg(&before)
            .query_async(&mut conn)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!("counting failed logins in Redis: {e}");
                Vec::new()
            });
        let count: u32 = counts.into_iter().flatten().sum();
        if count < self.limiter.per_minute * factor {
            return Ok(());
        }
        Err(too_many_logins(left))
    }

    async fn shared_fail(&self, key: &str) {
        let Some(shared) = self.shared.get() else {
            return;
        };
        let (name, _) = shared.window(key, 0);
        let mut conn = shared.conn.clone();
        let done: redis::RedisResult<()> = redis::pipe()
            .cmd("INCR")
            .arg(&name)
            .ignore()
            .cmd("EXPIRE")
            .arg(&name)
            .arg(2 * WINDOW.as_secs())
            .ignore()
            .query_async(&mut conn)
            .await;
        if let Err(e) = done {
            tracing::warn!("counting failed logins in Redis: {e}");
        }
    }

    /// Counts a failed login (or user code) against each of `keys`, here and cluster-wide.
    async fn failed(&self, keys: &[Option<&String>]) {
        for k in keys.iter().flatten() {
            self.limiter.fail(k);
            self.shared_fail(k).await;
        }
    }

    /// Scopes of callers who present nothing.
    pub fn anonymous_scopes(&self) -> Scopes {
        if self.settings.allow_anonymous_access {
            scopes::PUBLIC
        } else {
            Scopes::NONE
        }
    }

    /// Who presents `credentials`: an unknown, revoked or expired key, or a bad token, is a
    /// 401 with Tiled's detail.
    pub async fn caller(&self, credentials: &Credentials) -> Result<Caller, ApiError> {
        match credentials {
            Credentials::None => Ok(Caller::anonymous(self.anonymous_scopes())),
            Credentials::Bearer(token) => {
                // A token checked before is not checked again until it expires (its
                // signature cannot have changed); the cache is bounded in size and time.
                if let Some((caller, exp)) = self.token_cache.get(token)
                    && exp > now()
                {
                    return Ok((*caller).clone());
                }
                match self.keys.access(token) {
                    Ok(claims) => {
                        let scopes = Scopes::parse(&claims.scp)
                            .map_err(|_| unauthorized("Could not validate credentials"))?;
                        let exp = claims.exp;
                        let caller = Caller {
                            principal: Some(claims.sub),
                            scopes,
                            api_key: None,
                            service: claims.sub_typ == "service",
                            identities: claims.ids.into_iter().map(|i| (i.idp, i.id)).collect(),
                            key_tags: None,
                        };
                        self.token_cache
                            .insert(token.clone(), (Arc::new(caller.clone()), exp));
                        Ok(caller)
                    }
                    Err(TokenError::Expired) => {
                        Err(unauthorized("Access token has expired. Refresh token."))
                    }
                    Err(TokenError::Invalid) => Err(unauthorized("Could not validate credentials")),
                }
            }
            Credentials::ApiKey(secret) => {
                let hash = key_hash(secret);
                let record = match self.key_cache.get(&hash) {
                    Some(r) => r,
                    None => {
                        let r = self.load_key(&hash).await?.map(Arc::new);
                        self.key_cache.insert(hash.clone(), r.clone());
                        r
                    }
                };
                let record = record
                    .filter(|r| r.expires.is_none_or(|e| e > now()))
                    .ok_or_else(|| unauthorized("Invalid API key"))?;
                let scopes = if record.scopes.covers(scopes::INHERIT) {
                    record.role
                } else {
                    record.scopes.and(record.role)
                };
                self.note_activity(&hash).await;
                Ok(Caller {
                    principal: Some(record.principal.clone()),
                    scopes,
                    api_key: Some(hash),
                    service: record.service,
                    identities: record.identities.clone(),
                    key_tags: record.access_tags.clone(),
                })
            }
        }
    }

    async fn load_key(&self, hash: &str) -> Result<Option<KeyRecord>, ApiError> {
        let rows = self
            .db
            .rows(
                "SELECT principal, scopes, expires, access_tags FROM auth_api_keys WHERE hash = $1",
                vec![hash.into()],
            )
            .await?;
        let Some(r) = rows.first() else {
            return Ok(None);
        };
        let principal = r[0].str().to_string();
        let who = self
            .db
            .rows(
                "SELECT kind, role FROM auth_principals WHERE uuid = $1",
                vec![principal.clone().into()],
            )
            .await?;
        let identities = self
            .db
            .rows(
                "SELECT provider, id FROM auth_identities WHERE principal = $1",
                vec![principal.clone().into()],
            )
            .await?
            .iter()
            .map(|i| (i[0].str().to_string(), i[1].str().to_string()))
            .collect();
        Ok(Some(KeyRecord {
            scopes: serde_json::from_str::<Vec<String>>(r[1].str())
                .ok()
                .and_then(|names| Scopes::parse(&names).ok())
                .unwrap_or_default(),
            expires: r[2].int(),
            role: who
                .first()
                .and_then(|w| scopes::role(w[1].str()))
                .unwrap_or_default(),
            service: who.first().is_some_and(|w| w[0].str() == "service"),
            identities,
            access_tags: r[3].text().and_then(|t| serde_json::from_str(t).ok()),
            principal,
        }))
    }

    /// The scopes of the principal's role now (none for a principal that is gone).
    async fn role_scopes(&self, principal: &str) -> Result<Scopes, ApiError> {
        let rows = self
            .db
            .rows(
                "SELECT role FROM auth_principals WHERE uuid = $1",
                vec![principal.into()],
            )
            .await?;
        Ok(rows
            .first()
            .and_then(|r| scopes::role(r[0].str()))
            .unwrap_or_default())
    }

    /// Records the use of key `hash`, at most once a minute.
    async fn note_activity(&self, hash: &str) {
        if self.activity.contains_key(hash) {
            return;
        }
        self.activity.insert(hash.to_string(), ());
        let _ = self
            .db
            .exec(
                "UPDATE auth_api_keys SET latest_activity = $1 WHERE hash = $2",
                vec![now().into(), hash.into()],
            )
            .await;
    }

    /// Logs `username` in with `password` at `provider`: a new session and its tokens.
    pub async fn password_login(
        &self,
        provider: &str,
        username: &str,
        password: &str,
        addr: Option<IpAddr>,
    ) -> Result<Value, ApiError> {
        let p = self
            .settings
            .providers
            .iter()
            .find(|p| p.name == provider)
            .ok_or_else(|| ApiError::not_found(format!("no login provider {provider:?}")))?;
        if username.len() > MAX_NAME || password.len() > MAX_PASSWORD {
            return Err(ApiError::bad_request(format!(
                "user names are at most {MAX_NAME} bytes and passwords {MAX_PASSWORD}"
            )));
        }
        let user_key = format!("user:{provider}/{username}");
        let addr_key = addr.map(|a| format!("addr:{a}"));
        self.shared_check(&user_key, 1).await?;
        self.limiter.check(&user_key, 1)?;
        if let Some(k) = &addr_key {
            self.shared_check(k, 10).await?;
            self.limiter.check(k, 10)?;
        }
        let accepted = match &p.kind {
            ProviderKind::Dictionary(users) => {
                let known = users.get(username);
                // Digests compared in constant time, even for unknown users: the time tells
                // neither who exists nor how long the password is.
                let expected = sha2::Sha256::digest(known.map_or("", String::as_str).as_bytes());
                let given = sha2::Sha256::digest(password.as_bytes());
                constant_time_eq(&expected, &given) && known.is_some()
            }
            ProviderKind::UserTable => {
                self.check_user_password(provider, username, password)
                    .await?
            }
            ProviderKind::Oidc(_) => {
                return Err(ApiError::bad_request(format!(
                    "provider {provider:?} logs in through its identity provider: POST \
                     /auth/provider/{provider}/authorize for a device code"
                )));
            }
        };
        if !accepted {
            self.failed(&[Some(&user_key), addr_key.as_ref()]).await;
            tracing::info!(provider, "a failed login");
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "Incorrect username or password",
            ));
        }
        let (principal, session) = self.new_session(provider, username).await?;
        let mut doc = self.tokens(&principal, &session).await?;
        doc["identity"] = json!({"id": username, "provider": provider});
        doc["principal"] = json!(principal);
        Ok(doc)
    }

    /// A new session for identity `(provider, id)` (its principal made on its first login):
    /// `(principal, session)`.
    async fn new_session(&self, provider: &str, id: &str) -> Result<(String, String), ApiError> {
        let principal = self.principal_for(provider, id).await?;
        let session = uuid::Uuid::new_v4().simple().to_string();
        let expires = now() + self.settings.session_max_age.as_secs() as i64;
        self.db
            .exec(
                "INSERT INTO auth_sessions (uuid, principal, expires) VALUES ($1, $2, $3)",
                vec![
                    session.clone().into(),
                    principal.clone().into(),
                    expires.into(),
                ],
            )
            .await?;
        Ok((principal, session))
    }

    /// The token document of a login: tokens for `session` of identity `(provider, id)`.
    async fn session_tokens(
        &self,
        provider: &str,
        id: &str,
        session: &str,
    ) -> Result<Value, ApiError> {
        let rows = self
            .db
            .rows(
                "SELECT principal FROM auth_sessions WHERE uuid = $1 AND revoked = 0 AND expires > $2",
                vec![session.into(), now().into()],
            )
            .await?;
        let principal = rows
            .first()
            .map(|r| r[0].str().to_string())
            .ok_or_else(|| unauthorized("Session has expired. Please re-authenticate."))?;
        let mut doc = self.tokens(&principal, session).await?;
        doc["identity"] = json!({"id": id, "provider": provider});
        doc["principal"] = json!(principal);
        Ok(doc)
    }

    /// The principal of identity `(provider, id)`, made on its first login; its role
    /// follows `tiled_admins` at each login.
    async fn principal_for(&self, provider: &str, id: &str) -> Result<String, ApiError> {
        let admin = self
            .settings
            .admins
            .iter()
            .any(|(p, i)| p == provider && i == id);
        let role = if admin { "admin" } else { "user" };
        let found = self
            .db
            .rows(
                "SELECT principal FROM auth_identities WHERE provider = $1 AND id = $2",
                vec![provider.into(), id.into()],
            )
            .await?;
        let t = now();
        if let Some(row) = found.first() {
            let uuid = row[0].str().to_string();
            self.db
                .exec(
                    "UPDATE auth_identities SET latest_login = $1 WHERE provider = $2 AND id = $3",
                    vec![t.into(), provider.into(), id.into()],
                )
                .await?;
            self.db
                .exec(
                    "UPDATE auth_principals SET role = $1, latest_activity = $2 WHERE uuid = $3",
                    vec![role.into(), t.into(), uuid.clone().into()],
                )
                .await?;
            return Ok(uuid);
        }
        let uuid = uuid::Uuid::new_v4().simple().to_string();
        self.db
            .exec(
                "INSERT INTO auth_principals (uuid, kind, role, created, latest_activity) \
                 VALUES ($1, 'user', $2, $3, $3)",
                vec![uuid.clone().into(), role.into(), t.into()],
            )
            .await?;
        // Two first logins at once on two nodes: the second insert loses and uses the first.
        let inserted = self
            .db
            .exec(
                "INSERT INTO auth_identities (provider, id, principal, latest_login) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                vec![provider.into(), id.into(), uuid.clone().into(), t.into()],
            )
            .await?;
        if inserted == 0 {
            self.db
                .exec(
                    "DELETE FROM auth_principals WHERE uuid = $1",
                    vec![uuid.into()],
                )
                .await?;
            return Box::pin(self.principal_for(provider, id)).await;
        }
        Ok(uuid)
    }

    /// A new access token and refresh token for `principal` in `session`.
    async fn tokens(&self, principal: &str, session: &str) -> Result<Value, ApiError> {
        let role = self.role_scopes(principal).await?;
        let ids = self
            .db
            .rows(
                "SELECT id, provider FROM auth_identities WHERE principal = $1 ORDER BY provider, id",
                vec![principal.into()],
            )
            .await?
            .iter()
            .map(|r| TokenIdentity {
                id: r[0].str().to_string(),
                idp: r[1].str().to_string(),
            })
            .collect();
        let s = &self.settings;
        let access = tokens::AccessClaims {
            sub: principal.to_string(),
            sub_typ: "user".into(),
            scp: role.names().iter().map(|n| n.to_string()).collect(),
            state: json!({}),
            ids,
            exp: now() + s.access_token_max_age.as_secs() as i64,
            kind: "access".into(),
        };
        let refresh = tokens::RefreshClaims {
            sid: session.to_string(),
            exp: now() + s.refresh_token_max_age.as_secs() as i64,
            kind: "refresh".into(),
        };
        Ok(json!({
            "access_token": self.keys.sign(&access),
            "expires_in": s.access_token_max_age.as_secs_f64(),
            "refresh_token": self.keys.sign(&refresh),
            "refresh_token_expires_in": s.refresh_token_max_age.as_secs_f64(),
            "token_type": "bearer",
        }))
    }

    /// New tokens for the session of `refresh_token`, if it is live.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Value, ApiError> {
        let expired = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "Session has expired. Please re-authenticate.",
            )
        };
        let claims = self.keys.refresh(refresh_token).map_err(|_| expired())?;
        let rows = self
            .db
            .rows(
                "SELECT principal FROM auth_sessions WHERE uuid = $1 AND revoked = 0 AND expires > $2",
                vec![claims.sid.clone().into(), now().into()],
            )
            .await?;
        let principal = rows.first().ok_or_else(expired)?[0].str().to_string();
        self.db
            .exec(
                "UPDATE auth_sessions SET refreshes = refreshes + 1 WHERE uuid = $1",
                vec![claims.sid.clone().into()],
            )
            .await?;
        self.tokens(&principal, &claims.sid).await
    }

    /// Revokes the session of `refresh_token` (logout); `false` if there is no such session.
    pub async fn revoke_by_token(&self, refresh_token: &str) -> Result<bool, ApiError> {
        let Ok(claims) = self.keys.refresh(refresh_token) else {
            return Ok(false);
        };
        let n = self
            .db
            .exec(
                "UPDATE auth_sessions SET revoked = 1 WHERE uuid = $1",
                vec![claims.sid.into()],
            )
            .await?;
        Ok(n > 0)
    }

    /// Revokes session `session` of `principal` (any principal's for an admin).
    pub async fn revoke_session(&self, caller: &Caller, session: &str) -> Result<bool, ApiError> {
        let session = session.replace('-', "");
        let n = if caller.scopes.covers(scopes::WRITE_PRINCIPALS) {
            self.db
                .exec(
                    "UPDATE auth_sessions SET revoked = 1 WHERE uuid = $1",
                    vec![session.into()],
                )
                .await?
        } else {
            self.db
                .exec(
                    "UPDATE auth_sessions SET revoked = 1 WHERE uuid = $1 AND principal = $2",
                    vec![session.into(), caller.principal.clone().into()],
                )
                .await?
        };
        Ok(n > 0)
    }

    /// The principal document Tiled's `whoami` gives (`null` for nobody).
    pub async fn principal_doc(&self, principal: &str) -> Result<Value, ApiError> {
        let rows = self
            .db
            .rows(
                "SELECT kind, role, latest_activity FROM auth_principals WHERE uuid = $1",
                vec![principal.into()],
            )
            .await?;
        let Some(p) = rows.first() else {
            return Ok(Value::Null);
        };
        let identities: Vec<Value> = self
            .db
            .rows(
                "SELECT id, provider, latest_login FROM auth_identities WHERE principal = $1 \
                 ORDER BY provider, id",
                vec![principal.into()],
            )
            .await?
            .iter()
            .map(|r| json!({"id": r[0].str(), "provider": r[1].str(), "latest_login": iso(r[2].int())}))
            .collect();
        let keys: Vec<Value> = self
            .db
            .rows(
                "SELECT first_eight, expires, note, scopes, latest_activity, access_tags FROM auth_api_keys \
                 WHERE principal = $1 ORDER BY first_eight",
                vec![principal.into()],
            )
            .await?
            .iter()
            .map(|r| key_doc(r))
            .collect();
        let sessions: Vec<Value> = self
            .db
            .rows(
                "SELECT uuid, expires, revoked FROM auth_sessions WHERE principal = $1 \
                 AND expires > $2 ORDER BY uuid",
                vec![principal.into(), now().into()],
            )
            .await?
            .iter()
            .map(|r| {
                json!({"uuid": dashed(r[0].str()), "expiration_time": iso(r[1].int()),
                       "revoked": r[2].int() == Some(1), "state": {}})
            })
            .collect();
        let role = p[1].str();
        Ok(json!({
            "uuid": dashed(principal),
            "type": p[0].str(),
            "identities": identities,
            "roles": [{"name": role, "scopes": scopes::role(role).unwrap_or_default().names()}],
            "api_keys": keys,
            "sessions": sessions,
            "latest_activity": iso(p[2].int()),
        }))
    }

    /// A new API key of `caller`'s own principal (see [`NewKey`]). Scopes the caller does
    /// not hold are refused (403); a key made with a key cannot outgrow that key, in scopes
    /// or in access tags.
    pub async fn create_own_key(
        &self,
        caller: &Caller,
        mut new: NewKey,
    ) -> Result<Value, ApiError> {
        let owner = caller.principal.clone().ok_or_else(|| {
            unauthorized("Not enough permissions. API keys belong to a logged-in principal")
        })?;
        if let Some(outer) = &caller.key_tags {
            let tags = new.access_tags.get_or_insert_with(|| outer.clone());
            if let Some(t) = tags.iter().find(|t| !outer.contains(t)) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!("access tag {t:?} is not among the tags of the key this request used"),
                ));
            }
        }
        let cap = caller.api_key.is_some().then_some(caller.scopes);
        self.create_key(&owner, caller.scopes, cap, new).await
    }

    /// A new API key of principal `owner` (an admin's route), within its role's scopes.
    pub async fn create_key_for(&self, owner: &str, new: NewKey) -> Result<Value, ApiError> {
        let owner = owner.replace('-', "");
        if self.principal_doc(&owner).await?.is_null() {
            return Err(ApiError::not_found(format!("no principal {owner}")));
        }
        let held = self.role_scopes(&owner).await?;
        self.create_key(&owner, held, None, new).await
    }

    /// A new key of `owner`, whose scopes may not exceed `held`; `cap` replaces `inherit`
    /// (the scopes of the key it was made with).
    async fn create_key(
        &self,
        owner: &str,
        held: Scopes,
        cap: Option<Scopes>,
        new: NewKey,
    ) -> Result<Value, ApiError> {
        let NewKey {
            scopes: asked,
            access_tags,
            expires_in,
            note,
        } = new;
        let principal = owner.to_string();
        let names = asked.unwrap_or_else(|| vec!["inherit".into()]);
        let wanted = Scopes::parse(&names)
            .map_err(|name| ApiError::bad_request(format!("unknown scope {name:?}")))?;
        let beyond = wanted.minus(scopes::INHERIT).minus(held);
        if !beyond.is_empty() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "Requested scopes {} are not held by this principal: an API key cannot \
                     have more scopes than its owner",
                    beyond.display()
                ),
            ));
        }
        if let Some(tags) = &access_tags {
            if tags.len() > MAX_KEY_TAGS || tags.iter().any(|t| t.len() > MAX_NAME) {
                return Err(ApiError::bad_request(format!(
                    "a key may be restricted to at most {MAX_KEY_TAGS} access tags of at most \
                     {MAX_NAME} bytes each"
                )));
            }
            if self.settings.policy.is_none() {
                return Err(ApiError::bad_request(
                    "access_tags restrict a key under an access policy, and this server has none",
                ));
            }
            if !wanted
                .and(scopes::INHERIT.with(scopes::ADMIN_APIKEYS))
                .is_empty()
            {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "a key restricted to access_tags needs its scopes listed: it cannot inherit \
                     its owner's or hold admin:apikeys",
                ));
            }
        }
        let wanted = match cap {
            Some(cap) if wanted.covers(scopes::INHERIT) => cap,
            _ => wanted,
        };
        if let Some(e) = expires_in
            && !(e.is_finite() && e > 0.0)
        {
            return Err(ApiError::bad_request(
                "expires_in must be a positive number of seconds",
            ));
        }
        if note.as_ref().is_some_and(|n| n.len() > 1000) {
            return Err(ApiError::bad_request("note is longer than 1000 characters"));
        }
        let held = self
            .db
            .rows(
                "SELECT count(*) FROM auth_api_keys WHERE principal = $1",
                vec![principal.clone().into()],
            )
            .await?
            .first()
            .and_then(|r| r[0].int())
            .unwrap_or(0);
        if held >= MAX_KEYS {
            return Err(ApiError::bad_request(format!(
                "this principal has {held} API keys, the most it may hold: revoke some first"
            )));
        }
        let secret = random_hex(36);
        let first_eight = secret[..8].to_string();
        let expires = expires_in.map(|e| now() + e.ceil() as i64);
        let names: Vec<&str> = wanted.names();
        self.db
            .exec(
                "INSERT INTO auth_api_keys \
                 (hash, first_eight, principal, scopes, expires, note, access_tags) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                vec![
                    key_hash(&secret).into(),
                    first_eight.clone().into(),
                    principal.into(),
                    serde_json::to_string(&names).unwrap_or_default().into(),
                    expires.into(),
                    note.clone().into(),
                    access_tags
                        .as_ref()
                        .map(|t| serde_json::to_string(t).unwrap_or_default())
                        .into(),
                ],
            )
            .await?;
        Ok(json!({
            "first_eight": first_eight,
            "expiration_time": iso(expires),
            "note": note,
            "scopes": names,
            "access_tags": access_tags,
            "latest_activity": null,
            "secret": secret,
        }))
    }

    /// The key `caller` presents, without its secret.
    pub async fn key_info(&self, caller: &Caller) -> Result<Value, ApiError> {
        let hash = caller
            .api_key
            .as_ref()
            .ok_or_else(|| unauthorized("No API key was provided with this request."))?;
        let rows = self
            .db
            .rows(
                "SELECT first_eight, expires, note, scopes, latest_activity, access_tags FROM auth_api_keys \
                 WHERE hash = $1",
                vec![hash.clone().into()],
            )
            .await?;
        rows.first()
            .map(|r| key_doc(r))
            .ok_or_else(|| unauthorized("Invalid API key"))
    }

    /// Revokes the key of principal `owner` that starts with `first_eight`.
    pub async fn revoke_key(&self, owner: &str, first_eight: &str) -> Result<bool, ApiError> {
        let principal = owner.replace('-', "");
        let hashes = self
            .db
            .rows(
                "SELECT hash FROM auth_api_keys WHERE principal = $1 AND first_eight = $2",
                vec![principal.into(), first_eight.into()],
            )
            .await?;
        for row in &hashes {
            self.db
                .exec(
                    "DELETE FROM auth_api_keys WHERE hash = $1",
                    vec![row[0].clone()],
                )
                .await?;
            self.key_cache.invalidate(row[0].str());
        }
        Ok(!hashes.is_empty())
    }
}

impl Auth {
    /// Principals in creation order, `limit` from `offset` (an admin's route).
    pub async fn principals(&self, offset: i64, limit: i64) -> Result<Value, ApiError> {
        let rows = self
            .db
            .rows(
                "SELECT uuid FROM auth_principals ORDER BY created, uuid LIMIT $1 OFFSET $2",
                vec![limit.into(), offset.into()],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(self.principal_doc(r[0].str()).await?);
        }
        Ok(Value::Array(out))
    }

    /// A new service principal with `role` (it authenticates with the API keys an admin
    /// makes for it).
    pub async fn create_service(&self, role: &str) -> Result<Value, ApiError> {
        if scopes::role(role).is_none() {
            return Err(ApiError::bad_request(format!(
                "unknown role {role:?}: the roles are user and admin"
            )));
        }
        let uuid = uuid::Uuid::new_v4().simple().to_string();
        self.db
            .exec(
                "INSERT INTO auth_principals (uuid, kind, role, created) VALUES ($1, 'service', $2, $3)",
                vec![uuid.clone().into(), role.into(), now().into()],
            )
            .await?;
        self.principal_doc(&uuid).await
    }
}

/// An API key row (`first_eight, expires, note, scopes, latest_activity, access_tags`) as
/// Tiled shows it.
fn key_doc(r: &[Val]) -> Value {
    let scopes: Vec<String> = serde_json::from_str(r[3].str()).unwrap_or_default();
    let tags: Option<Vec<String>> = r[5].text().and_then(|t| serde_json::from_str(t).ok());
    json!({
        "first_eight": r[0].str(),
        "expiration_time": iso(r[1].int()),
        "note": r[2].text(),
        "scopes": scopes,
        "access_tags": tags,
        "latest_activity": iso(r[4].int()),
    })
}

/// 429 for a user or address that failed too often; try again after `wait`.
fn too_many_logins(wait: Duration) -> ApiError {
    crate::metrics::REFUSED.with_label_values(&["login"]).inc();
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too many failed logins: wait before trying again",
    );
    e.retry_after = Some(wait.as_secs().max(1) as u32);
    e
}

/// Failed logins counted in Redis, per minute (a fixed window), for the whole cluster.
struct SharedFailures {
    conn: redis::aio::ConnectionManager,
    prefix: String,
}

impl SharedFailures {
    /// The Redis key of `key`'s failures `ago` minutes back (hashed: user names and
    /// addresses stay out of Redis), and the time left in this minute.
    fn window(&self, key: &str, ago: u64) -> (String, Duration) {
        let secs = chrono::Utc::now().timestamp().max(0) as u64;
        let minute = (secs / WINDOW.as_secs()).saturating_sub(ago);
        let left = Duration::from_secs(WINDOW.as_secs() - secs % WINDOW.as_secs());
        (
            format!("{}:{}:{minute}", self.prefix, &key_hash(key)[..32]),
            left,
        )
    }
}

/// Failed logins per user and per address in the last minute.
struct LoginLimiter {
    per_minute: u32,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

const WINDOW: Duration = Duration::from_secs(60);
/// Entries kept before old ones are dropped (memory stays bounded under a flood of names).
const MAX_TRACKED: usize = 100_000;

impl LoginLimiter {
    fn new(per_minute: u32) -> LoginLimiter {
        LoginLimiter {
            per_minute: per_minute.max(1),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// 429 when `key` failed `per_minute * factor` times in the last minute.
    fn check(&self, key: &str, factor: u32) -> Result<(), ApiError> {
        let Ok(mut map) = self.failures.lock() else {
            return Ok(());
        };
        let Some(times) = map.get_mut(key) else {
            return Ok(());
        };
        while times.front().is_some_and(|t| t.elapsed() > WINDOW) {
            times.pop_front();
        }
        if times.len() < (self.per_minute * factor) as usize {
            return Ok(());
        }
        let wait = times
            .front()
            .map_or(WINDOW, |t| WINDOW.saturating_sub(t.elapsed()));
        Err(too_many_logins(wait))
    }

    fn fail(&self, key: &str) {
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        if map.len() >= MAX_TRACKED {
            map.retain(|_, times| times.back().is_some_and(|t| t.elapsed() <= WINDOW));
        }
        map.entry(key.to_string())
            .or_default()
            .push_back(Instant::now());
    }
}
