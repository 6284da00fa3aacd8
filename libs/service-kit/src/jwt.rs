//! Verifying access tokens: ES256 JWTs against the auth service's JWKS, the
//! one verifier the gateway and every service use.
//!
//! Written against `p256` directly, as the auth service signs with it: the
//! checks fit on one screen and each rule is one line here.
//!
//! - The algorithm is pinned: the header's `alg` must be exactly `ES256`, so
//!   `none` and HS256 (signed with the public key as an HMAC secret) fail.
//! - `jku`, `jwk`, `x5u`, `x5c` and `crit` headers are refused outright and
//!   never followed: keys come only from the configured [`JwksSource`].
//! - The key is found by `kid`. An unknown `kid` refreshes the JWKS once
//!   (at most once per `min_refresh`, so forged kids cannot hammer the auth
//!   service), and the token fails if the kid is still unknown.
//! - The signature is checked before the claims are read. `exp` is
//!   required; `nbf` and `iat` may not lie in the future; `iss` and `aud`
//!   must match. All time checks allow the same small, explicit leeway.
//!
//! Where the keys come from is pluggable ([`JwksSource`]): the gateway and
//! the services fetch the JWKS from the auth service over gRPC
//! ([`RemoteJwks`], `STOCKLET_AUTH_URL`), while the auth service verifies
//! with its own public key in process ([`StaticJwks`]) instead of calling
//! itself. Either way the keys pass the same filter and the tokens the same
//! rules.
//!
//! [`TokenVerifier::authenticate`] reads the `authorization` header the
//! same way for REST and gRPC, and a refusal says only what
//! [`Refusal`] says: the reason is logged, never sent.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64ct::{Base64UrlUnpadded, Encoding};
use futures::future::BoxFuture;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use serde_json::{Map, Value};
use stocklet_proto::stocklet::auth::v1::auth_service_client::AuthServiceClient;
use stocklet_proto::stocklet::auth::v1::{GetJwksRequest, Jwk};
use tokio::sync::{Mutex, RwLock};
use tonic::Code;
use tonic::transport::Channel;

use crate::config::{ConfigError, env_or, env_parse};
use crate::identity::{Identity, Role};

/// Header parameters that point at keys elsewhere; never followed.
const FORBIDDEN_HEADERS: [&str; 5] = ["jku", "jwk", "x5u", "x5c", "crit"];

/// Default `STOCKLET_JWT_ISSUER`.
pub const DEFAULT_ISSUER: &str = "stocklet-auth";
/// Default `STOCKLET_JWT_AUDIENCE`.
pub const DEFAULT_AUDIENCE: &str = "stocklet";
/// Default `STOCKLET_JWT_LEEWAY_S`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// What the tokens must say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtSettings {
    /// The required `iss`.
    pub issuer: String,
    /// The required `aud` (or one of the `aud` values).
    pub audience: String,
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// Least time between two JWKS fetches caused by unknown kids.
    pub min_refresh: Duration,
    /// How long fetched keys are used before they are fetched again.
    pub keys_ttl: Duration,
}

impl Default for JwtSettings {
    /// The defaults of [`from_env`](Self::from_env): what the auth service
    /// issues when nothing is configured.
    fn default() -> Self {
        Self {
            issuer: DEFAULT_ISSUER.to_owned(),
            audience: DEFAULT_AUDIENCE.to_owned(),
            leeway: DEFAULT_LEEWAY,
            min_refresh: Duration::from_secs(10),
            keys_ttl: Duration::from_secs(600),
        }
    }
}

impl JwtSettings {
    /// `STOCKLET_JWT_ISSUER` (default `stocklet-auth`),
    /// `STOCKLET_JWT_AUDIENCE` (default `stocklet`) and
    /// `STOCKLET_JWT_LEEWAY_S` (default 30): the same variables the auth
    /// service issues its tokens by.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        Ok(Self {
            issuer: env_or("STOCKLET_JWT_ISSUER", DEFAULT_ISSUER),
            audience: env_or("STOCKLET_JWT_AUDIENCE", DEFAULT_AUDIENCE),
            leeway: Duration::from_secs(env_parse(
                "STOCKLET_JWT_LEEWAY_S",
                DEFAULT_LEEWAY.as_secs(),
            )?),
            ..defaults
        })
    }
}

/// Why a token was refused. Logged, never sent: a caller hears only the
/// [`Refusal`] it maps to.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Not three base64url parts of JSON.
    #[error("malformed token")]
    Malformed,
    /// `alg` is not ES256.
    #[error("algorithm {0:?} is not allowed")]
    Algorithm(String),
    /// A header that points at a key elsewhere.
    #[error("header parameter {0} is not allowed")]
    ForbiddenHeader(&'static str),
    /// No key with this id.
    #[error("unknown key id")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
    /// `exp` is past.
    #[error("token expired")]
    Expired,
    /// `nbf` or `iat` is in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// A required claim is missing or malformed.
    #[error("claim {0} missing or malformed")]
    Claim(&'static str),
    /// `iss` does not match.
    #[error("wrong issuer")]
    Issuer,
    /// `aud` does not match.
    #[error("wrong audience")]
    Audience,
    /// The JWKS could not be fetched.
    #[error("the JWKS is unavailable: {0}")]
    JwksUnavailable(String),
}

/// What a caller hears when its `authorization` header is refused: the
/// same to a REST client (as HTTP 401 or 503) and a gRPC client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not a bearer token, or one that does not verify for any reason
    /// (malformed, forged, expired, another issuer...): `Unauthenticated`.
    InvalidToken,
    /// The keys to verify it cannot be had now: `Unavailable`, retry.
    KeysUnavailable,
}

impl Refusal {
    /// The gRPC code (the gateway answers its HTTP equivalent).
    pub fn code(self) -> Code {
        match self {
            Self::InvalidToken => Code::Unauthenticated,
            Self::KeysUnavailable => Code::Unavailable,
        }
    }

    /// The message: what happened, never why a token failed.
    pub fn message(self) -> &'static str {
        match self {
            Self::InvalidToken => "invalid or expired bearer token",
            Self::KeysUnavailable => "authentication temporarily unavailable",
        }
    }
}

impl From<Refusal> for tonic::Status {
    fn from(refusal: Refusal) -> Self {
        Self::new(refusal.code(), refusal.message())
    }
}

/// The token of an `authorization: Bearer <token>` header value (the scheme
/// in any case, as RFC 9110 has it), or `None` for anything else.
pub fn bearer_token(value: &http::HeaderValue) -> Option<&str> {
    let value = value.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Now, in Unix seconds.
pub fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Where a verifier gets its keys: the JWKS, as the auth service publishes
/// it. Every key still passes [`TokenVerifier`]'s filter (ES256 on P-256,
/// with a `kid`), whatever the source.
pub trait JwksSource: fmt::Debug + Send + Sync + 'static {
    /// The current keys.
    fn fetch(&self) -> BoxFuture<'_, Result<Vec<Jwk>, TokenError>>;
}

/// The longest a JWKS fetch may take: a token waits for it.
const JWKS_TIMEOUT: Duration = Duration::from_secs(5);

/// The auth service's JWKS, fetched with its gRPC `GetJwks`.
#[derive(Clone, Debug)]
pub struct RemoteJwks {
    auth: AuthServiceClient<Channel>,
}

impl RemoteJwks {
    /// Keys from the auth service behind `auth` (a lazily connected channel
    /// is fine: it is first used by the first token).
    pub fn new(auth: Channel) -> Self {
        Self {
            auth: AuthServiceClient::new(auth),
        }
    }
}

impl JwksSource for RemoteJwks {
    fn fetch(&self) -> BoxFuture<'_, Result<Vec<Jwk>, TokenError>> {
        Box::pin(async move {
            let mut auth = self.auth.clone();
            // The verifier bounds the whole fetch (`JWKS_TIMEOUT`).
            let response = auth
                .get_jwks(GetJwksRequest {})
                .await
                .map_err(|status| TokenError::JwksUnavailable(status.message().to_owned()))?;
            Ok(response.into_inner().keys)
        })
    }
}

/// A JWKS held in process: the auth service's own public keys.
#[derive(Clone, Debug)]
pub struct StaticJwks(Vec<Jwk>);

impl StaticJwks {
    /// These keys, always.
    pub fn new(keys: Vec<Jwk>) -> Self {
        Self(keys)
    }
}

impl JwksSource for StaticJwks {
    fn fetch(&self) -> BoxFuture<'_, Result<Vec<Jwk>, TokenError>> {
        Box::pin(std::future::ready(Ok(self.0.clone())))
    }
}

#[derive(Debug, Default)]
struct KeyCache {
    keys: HashMap<String, VerifyingKey>,
    /// When the keys were last fetched successfully.
    fetched_at: Option<Instant>,
    /// When a fetch was last tried, whatever its outcome: at most one a
    /// `min_refresh`, so a hanging or failing auth service is not asked
    /// (and waited for) by every request.
    attempted_at: Option<Instant>,
}

/// Verifies tokens, with a key cache filled from its [`JwksSource`].
#[derive(Debug)]
pub struct TokenVerifier {
    settings: JwtSettings,
    source: Arc<dyn JwksSource>,
    cache: RwLock<KeyCache>,
    refreshing: Mutex<()>,
    fetch_timeout: Duration,
}

impl TokenVerifier {
    /// A verifier of tokens that follow `settings`, with keys from `source`.
    pub fn new(settings: JwtSettings, source: impl JwksSource) -> Self {
        Self {
            settings,
            source: Arc::new(source),
            cache: RwLock::new(KeyCache::default()),
            refreshing: Mutex::new(()),
            fetch_timeout: JWKS_TIMEOUT,
        }
    }

    /// Gives up on a JWKS fetch after `timeout` (default 5 s).
    #[must_use]
    pub fn with_fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// What the tokens must say.
    pub fn settings(&self) -> &JwtSettings {
        &self.settings
    }

    /// The identity the `authorization` header of `headers` proves: `None`
    /// without one, the token's user for a valid bearer token, and a
    /// [`Refusal`] for anything else (its reason logged).
    pub async fn authenticate(
        &self,
        headers: &http::HeaderMap,
    ) -> Result<Option<Identity>, Refusal> {
        let Some(value) = headers.get(http::header::AUTHORIZATION) else {
            return Ok(None);
        };
        let Some(token) = bearer_token(value) else {
            tracing::info!("authorization refused: not a bearer token");
            return Err(Refusal::InvalidToken);
        };
        match self.verify(token, now_s()).await {
            Ok(identity) => Ok(Some(identity)),
            Err(TokenError::JwksUnavailable(cause)) => {
                tracing::warn!(%cause, "cannot verify tokens: the JWKS is unavailable");
                Err(Refusal::KeysUnavailable)
            }
            Err(reason) => {
                tracing::info!(%reason, "token refused");
                Err(Refusal::InvalidToken)
            }
        }
    }

    /// Verifies `token` at `now` (Unix seconds) and returns who it names.
    pub async fn verify(&self, token: &str, now_s: i64) -> Result<Identity, TokenError> {
        let mut parts = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header = json_object(header_b64)?;
        match header.get("alg") {
            Some(Value::String(alg)) if alg == "ES256" => {}
            Some(Value::String(alg)) => return Err(TokenError::Algorithm(alg.clone())),
            _ => return Err(TokenError::Algorithm(String::new())),
        }
        if let Some(name) = FORBIDDEN_HEADERS.iter().find(|h| header.contains_key(**h)) {
            return Err(TokenError::ForbiddenHeader(name));
        }
        let Some(Value::String(kid)) = header.get("kid") else {
            return Err(TokenError::UnknownKey);
        };
        let signature = Base64UrlUnpadded::decode_vec(signature_b64)
            .ok()
            .and_then(|bytes| Signature::from_slice(&bytes).ok())
            .ok_or(TokenError::Signature)?;
        let key = self.key(kid).await?;
        let signing_input = &token[..header_b64.len() + 1 + claims_b64.len()];
        key.verify(signing_input.as_bytes(), &signature)
            .map_err(|_| TokenError::Signature)?;

        let claims = json_object(claims_b64)?;
        self.check_claims(&claims, now_s)
    }

    fn check_claims(
        &self,
        claims: &Map<String, Value>,
        now_s: i64,
    ) -> Result<Identity, TokenError> {
        let leeway = i64::try_from(self.settings.leeway.as_secs()).unwrap_or(i64::MAX);
        let time = |name: &'static str| match claims.get(name) {
            None => Ok(None),
            Some(value) => value.as_i64().map(Some).ok_or(TokenError::Claim(name)),
        };
        let exp = time("exp")?.ok_or(TokenError::Claim("exp"))?;
        if now_s > exp.saturating_add(leeway) {
            return Err(TokenError::Expired);
        }
        for name in ["nbf", "iat"] {
            if time(name)?.is_some_and(|t| t > now_s.saturating_add(leeway)) {
                return Err(TokenError::NotYetValid);
            }
        }
        if claims.get("iss").and_then(Value::as_str) != Some(self.settings.issuer.as_str()) {
            return Err(TokenError::Issuer);
        }
        let audience_ok = match claims.get("aud") {
            Some(Value::String(aud)) => *aud == self.settings.audience,
            Some(Value::Array(auds)) => auds
                .iter()
                .any(|a| a.as_str() == Some(self.settings.audience.as_str())),
            _ => false,
        };
        if !audience_ok {
            return Err(TokenError::Audience);
        }
        let user_id = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|sub| !sub.is_empty())
            .ok_or(TokenError::Claim("sub"))?;
        let role = claims
            .get("role")
            .and_then(Value::as_str)
            .and_then(Role::parse)
            .ok_or(TokenError::Claim("role"))?;
        Ok(Identity::User {
            user_id: user_id.to_owned(),
            role,
        })
    }

    /// The key `kid`, refreshing the JWKS when it is unknown or stale.
    ///
    /// A known key outlives a failing or hanging auth service: once a
    /// refresh has failed, the cached keys serve until the next attempt (a
    /// `min_refresh` later), and while one request waits for a refresh (at
    /// most the fetch timeout) the others use the cached key at once.
    async fn key(&self, kid: &str) -> Result<VerifyingKey, TokenError> {
        let min_refresh = self.settings.min_refresh;
        let tried_lately = |cache: &KeyCache| {
            cache
                .attempted_at
                .is_some_and(|at| at.elapsed() < min_refresh)
        };
        {
            let cache = self.cache.read().await;
            let fresh = cache
                .fetched_at
                .is_some_and(|at| at.elapsed() < self.settings.keys_ttl);
            if let Some(key) = cache
                .keys
                .get(kid)
                .filter(|_| fresh || tried_lately(&cache))
            {
                return Ok(*key);
            }
        }
        let _single_flight = match self.refreshing.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                // Someone is fetching: a known (stale) key serves meanwhile.
                if let Some(key) = self.cache.read().await.keys.get(kid) {
                    return Ok(*key);
                }
                self.refreshing.lock().await
            }
        };
        {
            // Another request may have refreshed (or tried) while this one
            // waited.
            let cache = self.cache.read().await;
            if tried_lately(&cache) {
                return match cache.keys.get(kid) {
                    Some(key) => Ok(*key),
                    None if cache.keys.is_empty() => Err(TokenError::JwksUnavailable(
                        "the last JWKS fetch failed; retrying shortly".into(),
                    )),
                    None => Err(TokenError::UnknownKey),
                };
            }
        }
        let fetched = match tokio::time::timeout(self.fetch_timeout, self.fetch()).await {
            Ok(fetched) => fetched,
            Err(_) => Err(TokenError::JwksUnavailable(format!(
                "no answer in {:?}",
                self.fetch_timeout
            ))),
        };
        let mut cache = self.cache.write().await;
        cache.attempted_at = Some(Instant::now());
        match fetched {
            Ok(keys) => {
                cache.keys = keys;
                cache.fetched_at = cache.attempted_at;
            }
            // Keep serving the keys we had: the auth service may be restarting.
            Err(error) if !cache.keys.is_empty() => {
                tracing::warn!(%error, "JWKS refresh failed; keeping the cached keys");
            }
            Err(error) => return Err(error),
        }
        cache.keys.get(kid).copied().ok_or(TokenError::UnknownKey)
    }

    async fn fetch(&self) -> Result<HashMap<String, VerifyingKey>, TokenError> {
        let mut keys = HashMap::new();
        for jwk in self.source.fetch().await? {
            match verifying_key(&jwk) {
                Some(key) => {
                    keys.insert(jwk.kid, key);
                }
                None => {
                    tracing::warn!(kid = %jwk.kid, "ignoring a JWK that is not an ES256 P-256 key")
                }
            }
        }
        tracing::debug!(keys = keys.len(), "fetched the JWKS");
        Ok(keys)
    }
}

/// The P-256 key of an ES256 signing JWK.
fn verifying_key(jwk: &Jwk) -> Option<VerifyingKey> {
    let fits = jwk.kty == "EC"
        && jwk.crv == "P-256"
        && (jwk.alg.is_empty() || jwk.alg == "ES256")
        && (jwk.r#use.is_empty() || jwk.r#use == "sig")
        && !jwk.kid.is_empty();
    if !fits {
        return None;
    }
    let x = Base64UrlUnpadded::decode_vec(&jwk.x).ok()?;
    let y = Base64UrlUnpadded::decode_vec(&jwk.y).ok()?;
    if x.len() != 32 || y.len() != 32 {
        return None;
    }
    // SEC1 uncompressed point: 0x04 || x || y.
    let mut sec1 = Vec::with_capacity(65);
    sec1.push(0x04);
    sec1.extend_from_slice(&x);
    sec1.extend_from_slice(&y);
    VerifyingKey::from_sec1_bytes(&sec1).ok()
}

fn json_object(part: &str) -> Result<Map<String, Value>, TokenError> {
    let bytes = Base64UrlUnpadded::decode_vec(part).map_err(|_| TokenError::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(TokenError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer as _;
    use rand_core::OsRng;
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn b64(bytes: &[u8]) -> String {
        Base64UrlUnpadded::encode_string(bytes)
    }

    fn sign(key: &SigningKey, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature: Signature = key.sign(input.as_bytes());
        format!("{input}.{}", b64(&signature.to_bytes()))
    }

    fn settings() -> JwtSettings {
        JwtSettings {
            issuer: "iss".into(),
            audience: "aud".into(),
            leeway: Duration::from_secs(30),
            min_refresh: Duration::from_secs(3600),
            keys_ttl: Duration::from_secs(3600),
        }
    }

    /// The auth service's JWKS on a closed port: every fetch fails.
    fn unreachable_auth() -> RemoteJwks {
        RemoteJwks::new(
            tonic::transport::Endpoint::from_static("http://127.0.0.1:9").connect_lazy(),
        )
    }

    fn jwk(key: &SigningKey, kid: &str) -> Jwk {
        let point = key.verifying_key().to_encoded_point(false);
        Jwk {
            kty: "EC".into(),
            r#use: "sig".into(),
            alg: "ES256".into(),
            crv: "P-256".into(),
            x: b64(point.x().unwrap()),
            y: b64(point.y().unwrap()),
            kid: kid.into(),
        }
    }

    /// A verifier whose cache already holds `key` as `k1`; the auth
    /// service it would fetch from is unreachable and never asked.
    async fn verifier(key: &SigningKey) -> TokenVerifier {
        let verifier = TokenVerifier::new(settings(), unreachable_auth());
        {
            let mut cache = verifier.cache.write().await;
            cache.keys.insert("k1".into(), *key.verifying_key());
            cache.fetched_at = Some(Instant::now());
            cache.attempted_at = cache.fetched_at;
        }
        verifier
    }

    fn claims(exp: i64) -> Value {
        json!({"iss": "iss", "aud": ["other", "aud"], "sub": "u1", "role": "admin", "exp": exp})
    }

    #[tokio::test]
    async fn the_leeway_is_small_and_explicit() {
        let key = SigningKey::random(&mut OsRng);
        let verifier = verifier(&key).await;
        let header = json!({"alg": "ES256", "kid": "k1"});
        let within = sign(&key, &header, &claims(NOW - 30));
        assert_eq!(
            verifier.verify(&within, NOW).await,
            Ok(Identity::admin("u1"))
        );
        let beyond = sign(&key, &header, &claims(NOW - 31));
        assert_eq!(
            verifier.verify(&beyond, NOW).await,
            Err(TokenError::Expired)
        );
        let mut early = claims(NOW + 600);
        early["nbf"] = json!(NOW + 31);
        assert_eq!(
            verifier.verify(&sign(&key, &header, &early), NOW).await,
            Err(TokenError::NotYetValid)
        );
    }

    #[tokio::test]
    async fn the_algorithm_is_pinned_before_any_key_is_used() {
        let key = SigningKey::random(&mut OsRng);
        let verifier = verifier(&key).await;
        for alg in ["none", "HS256", "ES384", "es256", "RS256"] {
            let token = sign(&key, &json!({"alg": alg, "kid": "k1"}), &claims(NOW + 60));
            assert_eq!(
                verifier.verify(&token, NOW).await,
                Err(TokenError::Algorithm(alg.into()))
            );
        }
        let token = sign(
            &key,
            &json!({"alg": "ES256", "kid": "k1", "crit": ["exp"]}),
            &claims(NOW + 60),
        );
        assert_eq!(
            verifier.verify(&token, NOW).await,
            Err(TokenError::ForbiddenHeader("crit"))
        );
        // An unknown kid with a recent JWKS fetch fails without a refresh.
        let token = sign(
            &key,
            &json!({"alg": "ES256", "kid": "k9"}),
            &claims(NOW + 60),
        );
        assert_eq!(
            verifier.verify(&token, NOW).await,
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn only_p256_signing_keys_are_taken_from_the_jwks() {
        let key = SigningKey::random(&mut OsRng);
        let jwk = jwk(&key, "k1");
        assert_eq!(verifying_key(&jwk), Some(*key.verifying_key()));
        let wrong = [
            Jwk {
                crv: "P-384".into(),
                ..jwk.clone()
            },
            Jwk {
                alg: "HS256".into(),
                ..jwk.clone()
            },
            Jwk {
                r#use: "enc".into(),
                ..jwk.clone()
            },
            Jwk {
                kty: "oct".into(),
                ..jwk.clone()
            },
            Jwk {
                x: b64(&[1; 32]),
                ..jwk.clone()
            },
            Jwk {
                kid: String::new(),
                ..jwk.clone()
            },
        ];
        for jwk in wrong {
            assert_eq!(verifying_key(&jwk), None, "{jwk:?}");
        }
    }

    /// An auth service that takes the call and never answers, counting
    /// how often it is asked.
    #[derive(Debug, Default)]
    struct HangingAuth(Arc<std::sync::atomic::AtomicUsize>);

    impl JwksSource for HangingAuth {
        fn fetch(&self) -> BoxFuture<'_, Result<Vec<Jwk>, TokenError>> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(std::future::pending())
        }
    }

    #[tokio::test]
    async fn cached_keys_serve_while_the_auth_service_hangs() {
        let key = SigningKey::random(&mut OsRng);
        let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let verifier = Arc::new(
            TokenVerifier::new(
                JwtSettings {
                    keys_ttl: Duration::from_millis(1),
                    min_refresh: Duration::from_secs(3600),
                    ..settings()
                },
                HangingAuth(asked.clone()),
            )
            .with_fetch_timeout(Duration::from_millis(300)),
        );
        {
            let mut cache = verifier.cache.write().await;
            cache.keys.insert("k1".into(), *key.verifying_key());
            cache.fetched_at = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(5)).await; // the keys are stale now
        let token = sign(
            &key,
            &json!({"alg": "ES256", "kid": "k1"}),
            &claims(NOW + 60),
        );

        // Many requests at once: one waits for the refresh (bounded by the
        // deadline), the others use the cached key at once.
        let started = Instant::now();
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let (verifier, token) = (verifier.clone(), token.clone());
            calls.spawn(async move { verifier.verify(&token, NOW).await });
        }
        while let Some(result) = calls.join_next().await {
            assert!(result.unwrap().is_ok());
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        // Once the refresh has failed, the cached keys serve without
        // asking again until min_refresh has passed.
        let again = Instant::now();
        for _ in 0..20 {
            verifier.verify(&token, NOW).await.unwrap();
        }
        assert!(again.elapsed() < Duration::from_millis(200));
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1);

        // With no key cached at all, a hanging auth service is a bounded
        // wait and an unavailable answer, not a hang.
        let empty = TokenVerifier::new(settings(), HangingAuth::default())
            .with_fetch_timeout(Duration::from_millis(300));
        let waited = Instant::now();
        let error = empty.verify(&token, NOW).await.unwrap_err();
        assert!(matches!(error, TokenError::JwksUnavailable(_)), "{error:?}");
        assert!(waited.elapsed() < Duration::from_secs(2));
        // And the next request does not wait again.
        let quick = Instant::now();
        assert!(matches!(
            empty.verify(&token, NOW).await.unwrap_err(),
            TokenError::JwksUnavailable(_)
        ));
        assert!(quick.elapsed() < Duration::from_millis(100));
    }

    #[tokio::test]
    async fn an_in_process_jwks_verifies_without_any_call() {
        let key = SigningKey::random(&mut OsRng);
        let other = SigningKey::random(&mut OsRng);
        let verifier = TokenVerifier::new(settings(), StaticJwks::new(vec![jwk(&key, "k1")]));
        let header = json!({"alg": "ES256", "kid": "k1"});
        assert_eq!(
            verifier
                .verify(&sign(&key, &header, &claims(NOW + 60)), NOW)
                .await,
            Ok(Identity::admin("u1"))
        );
        assert_eq!(
            verifier
                .verify(&sign(&other, &header, &claims(NOW + 60)), NOW)
                .await,
            Err(TokenError::Signature)
        );
        let unknown = json!({"alg": "ES256", "kid": "k2"});
        assert_eq!(
            verifier
                .verify(&sign(&key, &unknown, &claims(NOW + 60)), NOW)
                .await,
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn only_bearer_credentials_carry_a_token() {
        let token = |value: &'static str| {
            bearer_token(&http::HeaderValue::from_static(value)).map(str::to_owned)
        };
        assert_eq!(token("Bearer abc.def.ghi").as_deref(), Some("abc.def.ghi"));
        assert_eq!(token("bearer abc").as_deref(), Some("abc"));
        assert_eq!(token("BEARER  abc ").as_deref(), Some("abc"));
        for refused in [
            "Basic dXNlcjpwdw==",
            "Bearer",
            "Bearer ",
            "abc.def.ghi",
            "Bearerabc",
        ] {
            assert_eq!(token(refused), None, "{refused:?}");
        }
    }

    #[tokio::test]
    async fn a_request_is_anonymous_without_the_header_and_refused_with_a_bad_one() {
        let key = SigningKey::random(&mut OsRng);
        let verifier = verifier(&key).await;
        let headers = |value: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert(http::header::AUTHORIZATION, value.parse().unwrap());
            headers
        };
        assert_eq!(
            verifier.authenticate(&http::HeaderMap::new()).await,
            Ok(None)
        );
        let token = sign(
            &key,
            &json!({"alg": "ES256", "kid": "k1"}),
            &claims(now_s() + 60),
        );
        assert_eq!(
            verifier
                .authenticate(&headers(&format!("Bearer {token}")))
                .await,
            Ok(Some(Identity::admin("u1")))
        );
        for refused in ["Basic dXNlcjpwdw==", "Bearer not-a-token"] {
            assert_eq!(
                verifier.authenticate(&headers(refused)).await,
                Err(Refusal::InvalidToken),
                "{refused}"
            );
        }
        // No keys yet and the auth service unreachable: retry later, not 401.
        let cold = TokenVerifier::new(settings(), unreachable_auth());
        assert_eq!(
            cold.authenticate(&headers(&format!("Bearer {token}")))
                .await,
            Err(Refusal::KeysUnavailable)
        );
        let status = tonic::Status::from(Refusal::InvalidToken);
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(status.message(), "invalid or expired bearer token");
    }
}
