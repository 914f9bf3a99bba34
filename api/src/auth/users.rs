//! The user table of a `tessera.authenticators:DatabaseAuthenticator`: user names and
//! argon2id password hashes (PHC strings) in the authentication database, so that every API
//! node checks the same passwords and an admin adds, resets and removes users without a
//! restart. Hashing runs on the blocking pool, a few at a time, so a burst of logins costs
//! those threads and never the request workers.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{Auth, MAX_NAME, MAX_PASSWORD, ProviderKind, iso, now};
use crate::error::ApiError;

/// Password hashes computed at once on a node.
pub const HASHING_AT_ONCE: usize = 2;
/// The shortest password an admin may set.
pub const MIN_PASSWORD: usize = 8;

/// A hash of a password nobody has, checked for unknown users so that the time of a
/// refusal does not tell whether the user exists.
fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        Argon2::default()
            .hash_password(super::random_hex(16).as_bytes())
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

impl Auth {
    fn user_table(&self, provider: &str) -> Result<(), ApiError> {
        match self.provider_kind(provider) {
            Some(ProviderKind::UserTable) => Ok(()),
            Some(_) => Err(ApiError::not_found(format!(
                "provider {provider:?} keeps no users here: its users are in the configuration \
                 or at its identity provider"
            ))),
            None => Err(ApiError::not_found(format!(
                "no login provider {provider:?}"
            ))),
        }
    }

    /// Runs `f` on the blocking pool, at most [`HASHING_AT_ONCE`] at a time.
    async fn hash_work<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|_| ApiError::unavailable("shutting down", 1))?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| ApiError::internal(format!("password hashing: {e}")))
    }

    /// Whether `password` is that of `username` at `provider`.
    pub(super) async fn check_user_password(
        &self,
        provider: &str,
        username: &str,
        password: &str,
    ) -> Result<bool, ApiError> {
        let rows = self
            .db
            .rows(
                "SELECT hash FROM auth_users WHERE provider = $1 AND username = $2",
                vec![provider.into(), username.into()],
            )
            .await?;
        let stored = rows.first().map(|r| r[0].str().to_string());
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| decoy().to_string());
        let password = password.to_string();
        let matches = self
            .hash_work(move || {
                Argon2::default()
                    .verify_password(password.as_bytes(), hash.as_str())
                    .is_ok()
            })
            .await?;
        Ok(known && matches)
    }

    /// Sets the password of `username` at `provider`, adding the user if new. `true` when
    /// the user was added.
    pub async fn set_user_password(
        &self,
        provider: &str,
        username: &str,
        password: &str,
    ) -> Result<bool, ApiError> {
        self.user_table(provider)?;
        let plain = |c: char| c.is_alphanumeric() || "._@+-".contains(c);
        if username.is_empty() || username.len() > MAX_NAME || !username.chars().all(plain) {
            return Err(ApiError::bad_request(format!(
                "a user name is 1 to {MAX_NAME} bytes of letters, digits and . _ @ + -"
            )));
        }
        if password.chars().count() < MIN_PASSWORD || password.len() > MAX_PASSWORD {
            return Err(ApiError::bad_request(format!(
                "a password has at least {MIN_PASSWORD} characters and at most {MAX_PASSWORD} bytes"
            )));
        }
        let password = password.to_string();
        let hash = self
            .hash_work(move || Argon2::default().hash_password(password.as_bytes()))
            .await?
            .map_err(|e| ApiError::internal(format!("password hashing: {e}")))?
            .to_string();
        let t = now();
        let changed = self
            .db
            .exec(
                "UPDATE auth_users SET hash = $1, changed = $2 WHERE provider = $3 AND username = $4",
                vec![hash.clone().into(), t.into(), provider.into(), username.into()],
            )
            .await?;
        if changed > 0 {
            return Ok(false);
        }
        let added = self
            .db
            .exec(
                "INSERT INTO auth_users (provider, username, hash, created, changed) \
                 VALUES ($1, $2, $3, $4, $4) ON CONFLICT DO NOTHING",
                vec![provider.into(), username.into(), hash.into(), t.into()],
            )
            .await?;
        if added == 0 {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("{username:?} was added at the same time by another request: retry"),
            ));
        }
        Ok(true)
    }

    /// A user's change of their own password: the old one must be right (and wrong ones
    /// count as failed logins).
    pub async fn change_own_password(
        &self,
        provider: &str,
        username: &str,
        old: &str,
        new: &str,
        addr: Option<std::net::IpAddr>,
    ) -> Result<(), ApiError> {
        self.user_table(provider)?;
        if old.len() > MAX_PASSWORD {
            return Err(ApiError::bad_request(format!(
                "passwords are at most {MAX_PASSWORD} bytes"
            )));
        }
        let user_key = format!("user:{provider}/{username}");
        self.shared_check(&user_key, 1).await?;
        self.limiter.check(&user_key, 1)?;
        if !self.check_user_password(provider, username, old).await? {
            let addr_key = addr.map(|a| format!("addr:{a}"));
            self.failed(&[Some(&user_key), addr_key.as_ref()]).await;
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "the old password is not right",
            ));
        }
        self.set_user_password(provider, username, new).await?;
        Ok(())
    }

    /// Removes `username` from `provider`'s users, and ends the sessions of their
    /// principal. `false` if there was no such user.
    pub async fn remove_user(&self, provider: &str, username: &str) -> Result<bool, ApiError> {
        self.user_table(provider)?;
        let removed = self
            .db
            .exec(
                "DELETE FROM auth_users WHERE provider = $1 AND username = $2",
                vec![provider.into(), username.into()],
            )
            .await?;
        if removed > 0 {
            self.db
                .exec(
                    "UPDATE auth_sessions SET revoked = 1 WHERE principal IN \
                     (SELECT principal FROM auth_identities WHERE provider = $1 AND id = $2)",
                    vec![provider.into(), username.into()],
                )
                .await?;
        }
        Ok(removed > 0)
    }

    /// The users of `provider`, by name.
    pub async fn users(&self, provider: &str) -> Result<Value, ApiError> {
        self.user_table(provider)?;
        let rows = self
            .db
            .rows(
                "SELECT username, created, changed FROM auth_users WHERE provider = $1 ORDER BY username",
                vec![provider.into()],
            )
            .await?;
        Ok(Value::Array(
            rows.iter()
                .map(|r| {
                    json!({
                        "username": r[0].str(),
                        "created": iso(r[1].int()),
                        "password_changed": iso(r[2].int()),
                    })
                })
                .collect(),
        ))
    }
}
