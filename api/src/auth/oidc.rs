//! Logins through an OpenID Connect provider (Tiled's `OIDCAuthenticator`: Keycloak,
//! Entra, ORCID, Google, ...). The provider's discovery document and signing keys are
//! fetched when first needed and kept for an hour; a token signed by a key we do not know
//! makes us fetch the keys again (at most every few seconds), so the provider can rotate
//! them (or its algorithm). Each login is an authorization-code exchange with PKCE, a `state` bound to the
//! request that began it and a `nonce` bound to the ID token; the ID token's signature,
//! issuer, audience, expiry, nonce and `at_hash` are checked before its subject is trusted.

use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreJsonWebKeySet, CoreProviderMetadata,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, SignatureVerificationError, TokenResponse,
};
use tokio::sync::Mutex;

/// The arguments of an `OIDCAuthenticator`.
#[derive(Clone, Debug)]
pub struct OidcSettings {
    pub client_id: String,
    pub client_secret: String,
    /// The provider's discovery document (`.../.well-known/openid-configuration`).
    pub well_known_uri: String,
    /// The audience ID tokens must name (besides the client id, which they always may).
    pub audience: String,
    /// The ID-token claim that names the user: `sub`, `email` or `preferred_username`.
    pub user_id_claim: UserIdClaim,
    pub redirect_on_success: Option<String>,
    pub redirect_on_failure: Option<String>,
}

/// The claims a user may be named by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserIdClaim {
    Sub,
    Email,
    PreferredUsername,
}

impl UserIdClaim {
    pub fn parse(name: &str) -> Option<UserIdClaim> {
        match name {
            "sub" => Some(UserIdClaim::Sub),
            "email" => Some(UserIdClaim::Email),
            "preferred_username" => Some(UserIdClaim::PreferredUsername),
            _ => None,
        }
    }
}

/// How long the discovery document and keys are kept before they are fetched again.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// For a token signed by an unknown key or algorithm, the document and keys are fetched
/// again at most this often.
const REFETCH_INTERVAL: Duration = Duration::from_secs(5);
/// The largest discovery document or key set we read.
const MAX_DOCUMENT: usize = 1 << 20;

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// What a login at the provider began with, kept until the provider sends the user back.
#[derive(Clone, Debug)]
pub struct Started {
    /// Where to send the user's browser.
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub verifier: String,
}

/// Why a login at the provider failed: logged, never shown in full to the user.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("the identity provider cannot be reached: {0}")]
    Unreachable(String),
    #[error("the identity provider refused the code: {0}")]
    Refused(String),
    #[error("the ID token is not acceptable: {0}")]
    BadToken(String),
}

struct Discovered {
    meta: CoreProviderMetadata,
    fetched: Instant,
}

/// One OpenID Connect provider.
pub struct Oidc {
    pub settings: OidcSettings,
    http: Http,
    discovered: Mutex<Option<Discovered>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("well_known_uri", &self.settings.well_known_uri)
            .field("client_id", &self.settings.client_id)
            .finish()
    }
}

/// Our HTTP client, as openidconnect's: a named future type (a closure's would not be
/// `Send` for every lifetime, which the server's handlers need).
struct Http(reqwest::Client);

impl<'c> openidconnect::AsyncHttpClient<'c> for Http {
    type Error = reqwest::Error;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<openidconnect::HttpResponse, reqwest::Error>>
                + Send
                + 'c,
        >,
    >;

    fn call(&'c self, request: openidconnect::HttpRequest) -> Self::Future {
        Box::pin(send(&self.0, request))
    }
}

/// Sends one of openidconnect's requests with our HTTP client.
async fn send(
    http: &reqwest::Client,
    req: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, reqwest::Error> {
    let resp = http.execute(reqwest::Request::try_from(req)?).await?;
    let mut b = axum::http::Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        b = b.header(k, v);
    }
    let body = resp.bytes().await?.to_vec();
    Ok(b.body(body)
        .expect("a status and headers taken from a response"))
}

impl Oidc {
    pub fn new(settings: OidcSettings) -> anyhow::Result<Oidc> {
        // No redirects: a provider's endpoints answer directly (openidconnect's advice
        // against being led elsewhere).
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Oidc {
            settings,
            http: Http(http),
            discovered: Mutex::new(None),
        })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, LoginError> {
        let unreachable = |e: String| LoginError::Unreachable(format!("{url}: {e}"));
        let resp = self
            .http
            .0
            .get(url)
            .send()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(unreachable(format!("status {}", resp.status())));
        }
        let body = resp.bytes().await.map_err(|e| unreachable(e.to_string()))?;
        if body.len() > MAX_DOCUMENT {
            return Err(unreachable("the document is too large".into()));
        }
        serde_json::from_slice(&body).map_err(|e| unreachable(e.to_string()))
    }

    /// The provider's metadata with its keys: fetched on first use and after an hour, and
    /// with `refresh` (a token signed by a key or algorithm we do not know) again unless it
    /// was just fetched. While the provider cannot be reached, what was fetched before.
    async fn metadata(&self, refresh: bool) -> Result<CoreProviderMetadata, LoginError> {
        let mut slot = self.discovered.lock().await;
        let now = Instant::now();
        if let Some(d) = slot.as_ref() {
            let age = now.duration_since(d.fetched);
            if age < METADATA_TTL && !(refresh && age >= REFETCH_INTERVAL) {
                return Ok(d.meta.clone());
            }
        }
        let fetched = async {
            let meta: CoreProviderMetadata = self.get_json(&self.settings.well_known_uri).await?;
            let keys: CoreJsonWebKeySet = self.get_json(meta.jwks_uri().url().as_str()).await?;
            Ok::<_, LoginError>(meta.set_jwks(keys))
        }
        .await;
        match (fetched, slot.as_ref()) {
            (Ok(meta), previous) => {
                if previous.is_some() {
                    tracing::info!(provider = %self.settings.well_known_uri, "discovery document and signing keys fetched again");
                }
                *slot = Some(Discovered {
                    meta: meta.clone(),
                    fetched: now,
                });
                Ok(meta)
            }
            (Err(e), Some(d)) => {
                tracing::warn!("{e}; using the discovery document and keys fetched earlier");
                Ok(d.meta.clone())
            }
            (Err(e), None) => Err(e),
        }
    }

    fn client(&self, meta: CoreProviderMetadata, redirect_uri: &str) -> Result<Client, LoginError> {
        let redirect = RedirectUrl::new(redirect_uri.to_string())
            .map_err(|e| LoginError::Refused(format!("redirect URI {redirect_uri:?}: {e}")))?;
        Ok(CoreClient::from_provider_metadata(
            meta,
            ClientId::new(self.settings.client_id.clone()),
            Some(ClientSecret::new(self.settings.client_secret.clone())),
        )
        .set_redirect_uri(redirect))
    }

    /// Begins a login: the provider's authorization URL for the user's browser, which will
    /// come back to `redirect_uri`, with what the return must be checked against.
    pub async fn start(
        &self,
        redirect_uri: &str,
        prompt_login: bool,
    ) -> Result<Started, LoginError> {
        let client = self.client(self.metadata(false).await?, redirect_uri)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        if prompt_login {
            request = request.add_prompt(openidconnect::core::CoreAuthPrompt::Login);
        }
        let (url, state, nonce) = request.url();
        Ok(Started {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            verifier: verifier.secret().clone(),
        })
    }

    /// Ends a login: exchanges the provider's `code` for tokens and checks the ID token;
    /// the user's id (the configured claim).
    pub async fn finish(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
        nonce: &str,
    ) -> Result<String, LoginError> {
        let client = self.client(self.metadata(false).await?, redirect_uri)?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| LoginError::Refused(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_string()))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                openidconnect::RequestTokenError::ServerResponse(r) => {
                    LoginError::Refused(r.to_string())
                }
                other => LoginError::Unreachable(other.to_string()),
            })?;
        let id_token = response
            .id_token()
            .ok_or_else(|| LoginError::Refused("no id_token in the token response".into()))?;
        let nonce = Nonce::new(nonce.to_string());
        match self.identify(&client, id_token, &nonce, response.access_token()) {
            Err(None) => {
                // A key we do not know yet: the provider may have rotated its keys.
                let client = self.client(self.metadata(true).await?, redirect_uri)?;
                self.identify(&client, id_token, &nonce, response.access_token())
                    .map_err(|e| {
                        e.unwrap_or_else(|| {
                            LoginError::BadToken(
                                "no signing key or algorithm of the provider matches the ID token"
                                    .into(),
                            )
                        })
                    })
            }
            other => other.map_err(|e| e.expect("an unknown key was handled above")),
        }
    }
}

impl Oidc {
    /// The user an ID token names, once it is checked against `client`'s provider keys,
    /// issuer, audience, expiry, `nonce` and the access token issued with it. `Err(None)`:
    /// signed by a key `client` does not know.
    fn identify(
        &self,
        client: &Client,
        id_token: &CoreIdToken,
        nonce: &Nonce,
        access_token: &openidconnect::AccessToken,
    ) -> Result<String, Option<LoginError>> {
        let bad = |e: String| Some(LoginError::BadToken(e));
        let audience = self.settings.audience.clone();
        let verifier = client
            .id_token_verifier()
            .set_other_audience_verifier_fn(move |aud| **aud == audience);
        let claims = match id_token.claims(&verifier, nonce) {
            Ok(c) => c,
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey
                | SignatureVerificationError::DisallowedAlg(_),
            )) => return Err(None),
            Err(ClaimsVerificationError::SignatureVerification(e)) => {
                return Err(bad(format!("its signature: {e}")));
            }
            Err(e) => return Err(bad(e.to_string())),
        };
        // The ID token must belong to the access token issued with it.
        if let Some(expected) = claims.access_token_hash() {
            let alg = id_token.signing_alg().map_err(|e| bad(e.to_string()))?;
            let key = id_token
                .signing_key(&verifier)
                .map_err(|e| bad(e.to_string()))?;
            let actual = AccessTokenHash::from_token(access_token, alg, key)
                .map_err(|e| bad(e.to_string()))?;
            if actual != *expected {
                return Err(bad("at_hash does not match the access token".into()));
            }
        }
        let id = match self.settings.user_id_claim {
            UserIdClaim::Sub => Some(claims.subject().to_string()),
            UserIdClaim::Email => claims.email().map(|e| e.to_string()),
            UserIdClaim::PreferredUsername => claims.preferred_username().map(|u| u.to_string()),
        };
        id.filter(|i| !i.is_empty()).ok_or_else(|| {
            bad(format!(
                "the ID token has no {:?} claim",
                self.settings.user_id_claim
            ))
        })
    }
}
