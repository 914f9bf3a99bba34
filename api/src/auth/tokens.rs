//! Access and refresh tokens: HS256 JWTs signed with the first of the configured secret keys
//! and checked against each of them (so keys rotate without logging everyone out). Claims
//! are Tiled's; the client never decodes them.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// One identity of a principal, as tokens carry it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenIdentity {
    pub id: String,
    pub idp: String,
}

/// What an access token says about its bearer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The principal's UUID (32 hex digits).
    pub sub: String,
    /// `user` or `service`.
    pub sub_typ: String,
    /// Scope names.
    pub scp: Vec<String>,
    #[serde(default)]
    pub state: serde_json::Value,
    pub ids: Vec<TokenIdentity>,
    /// Unix seconds.
    pub exp: i64,
    #[serde(rename = "type")]
    pub kind: String,
}

/// What a refresh token says: the session it refreshes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RefreshClaims {
    /// The session's UUID (32 hex digits).
    pub sid: String,
    pub exp: i64,
    #[serde(rename = "type")]
    pub kind: String,
}

/// Why a token was not accepted. The messages are the client-facing details of Tiled.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    Expired,
    Invalid,
}

/// The signing keys.
pub struct Keys {
    signing: EncodingKey,
    checking: Vec<DecodingKey>,
    validation: Validation,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys({} secret keys)", self.checking.len())
    }
}

impl Keys {
    /// Keys from `secrets` (the first signs; each may check). None given: a random key, so
    /// tokens do not outlive the process.
    pub fn new(secrets: &[String]) -> Keys {
        let generated;
        let secrets: &[String] = if secrets.is_empty() {
            generated = [super::random_hex(32)];
            &generated
        } else {
            secrets
        };
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        Keys {
            signing: EncodingKey::from_secret(secrets[0].as_bytes()),
            checking: secrets
                .iter()
                .map(|s| DecodingKey::from_secret(s.as_bytes()))
                .collect(),
            validation,
        }
    }

    /// Signs `claims`.
    pub fn sign<T: Serialize>(&self, claims: &T) -> String {
        // HS256 over serialisable claims cannot fail.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.signing)
            .unwrap_or_default()
    }

    /// The claims of `token` if one of the keys signed it, it has not expired and its
    /// `type` is `kind`.
    fn check<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        kind: &str,
        kind_of: impl Fn(&T) -> &str,
    ) -> Result<T, TokenError> {
        let mut expired = false;
        for key in &self.checking {
            match jsonwebtoken::decode::<T>(token, key, &self.validation) {
                Ok(data) if kind_of(&data.claims) == kind => return Ok(data.claims),
                Ok(_) => return Err(TokenError::Invalid),
                Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => expired = true,
                Err(_) => {}
            }
        }
        Err(if expired {
            TokenError::Expired
        } else {
            TokenError::Invalid
        })
    }

    pub fn access(&self, token: &str) -> Result<AccessClaims, TokenError> {
        self.check(token, "access", |c: &AccessClaims| &c.kind)
    }

    pub fn refresh(&self, token: &str) -> Result<RefreshClaims, TokenError> {
        self.check(token, "refresh", |c: &RefreshClaims| &c.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

    fn claims(exp: i64) -> AccessClaims {
        AccessClaims {
            sub: "abc".into(),
            sub_typ: "user".into(),
            scp: vec!["read:data".into()],
            state: serde_json::json!({}),
            ids: vec![TokenIdentity {
                id: "alice".into(),
                idp: "toy".into(),
            }],
            exp,
            kind: "access".into(),
        }
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[test]
    fn signed_tokens_check_and_rotated_keys_still_check() {
        let old = Keys::new(&["old".into()]);
        let token = old.sign(&claims(now() + 60));
        assert_eq!(old.access(&token).unwrap().ids[0].id, "alice");
        let rotated = Keys::new(&["new".into(), "old".into()]);
        assert!(rotated.access(&token).is_ok());
        let dropped = Keys::new(&["new".into()]);
        assert_eq!(dropped.access(&token), Err(TokenError::Invalid));
    }

    #[test]
    fn expired_tampered_unsigned_and_wrong_kind_tokens_are_refused() {
        let keys = Keys::new(&["k".into()]);
        assert_eq!(
            keys.access(&keys.sign(&claims(now() - 1))),
            Err(TokenError::Expired)
        );
        let token = keys.sign(&claims(now() + 60));
        // A changed payload under the old signature.
        let parts: Vec<&str> = token.split('.').collect();
        let mut forged = claims(now() + 60);
        forged.scp.push("admin:apikeys".into());
        let payload = B64.encode(serde_json::to_vec(&forged).unwrap());
        let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
        assert_eq!(keys.access(&tampered), Err(TokenError::Invalid));
        // alg: none with no signature.
        let none = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert_eq!(
            keys.access(&format!("{none}.{}.", parts[1])),
            Err(TokenError::Invalid)
        );
        // An RS256 header over an HMAC signature (algorithm confusion).
        let rs = B64.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        assert_eq!(
            keys.access(&format!("{rs}.{}.{}", parts[1], parts[2])),
            Err(TokenError::Invalid)
        );
        // A refresh token is not an access token, nor the other way round.
        let refresh = keys.sign(&RefreshClaims {
            sid: "s".into(),
            exp: now() + 60,
            kind: "refresh".into(),
        });
        assert_eq!(keys.access(&refresh), Err(TokenError::Invalid));
        assert!(keys.refresh(&refresh).is_ok());
        assert_eq!(keys.refresh(&token), Err(TokenError::Invalid));
        assert_eq!(keys.access("not a token"), Err(TokenError::Invalid));
    }
}
