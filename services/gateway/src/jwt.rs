//! Verifying access tokens: ES256 JWTs against the auth service's JWKS.
//!
//! Written against `p256` directly, as the auth service signs with it: the
//! checks fit on one screen and each rule of the issue is one line here.
//!
//! - The algorithm is pinned: the header's `alg` must be exactly `ES256`, so
//!   `none` and HS256 (signed with the public key as an HMAC secret) fail.
//! - `jku`, `jwk`, `x5u`, `x5c` and `crit` headers are refused outright and
//!   never followed: keys come only from the auth service's JWKS.
//! - The key is found by `kid`. An unknown `kid` refreshes the JWKS once
//!   (at most once per `min_refresh`, so forged kids cannot hammer the auth
//!   service), and the token fails if the kid is still unknown.
//! - The signature is checked before the claims are read. `exp` is
//!   required; `nbf` and `iat` may not lie in the future; `iss` and `aud`
//!   must match. All time checks allow the same small, explicit leeway.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64ct::{Base64UrlUnpadded, Encoding};
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use serde_json::{Map, Value};
use stocklet_proto::stocklet::auth::v1::auth_service_client::AuthServiceClient;
use stocklet_proto::stocklet::auth::v1::{GetJwksRequest, Jwk};
use stocklet_service_kit::{Identity, Role};
use tokio::sync::{Mutex, RwLock};
use tonic::transport::Channel;

/// Header parameters that point at keys elsewhere; never followed.
const FORBIDDEN_HEADERS: [&str; 5] = ["jku", "jwk", "x5u", "x5c", "crit"];

/// What the tokens must say.
#[derive(Clone, Debug)]
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

/// Why a token was refused. Logged, never sent: every case answers 401.
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

#[derive(Debug, Default)]
struct KeyCache {
    keys: HashMap<String, VerifyingKey>,
    fetched_at: Option<Instant>,
}

/// Verifies tokens, with a JWKS cache filled from the auth service.
#[derive(Debug)]
pub struct TokenVerifier {
    settings: JwtSettings,
    auth: AuthServiceClient<Channel>,
    cache: RwLock<KeyCache>,
    refreshing: Mutex<()>,
}

impl TokenVerifier {
    /// A verifier fetching keys from the auth service at `auth`.
    pub fn new(settings: JwtSettings, auth: Channel) -> Self {
        Self {
            settings,
            auth: AuthServiceClient::new(auth),
            cache: RwLock::new(KeyCache::default()),
            refreshing: Mutex::new(()),
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
    async fn key(&self, kid: &str) -> Result<VerifyingKey, TokenError> {
        {
            let cache = self.cache.read().await;
            let fresh = cache
                .fetched_at
                .is_some_and(|at| at.elapsed() < self.settings.keys_ttl);
            if let (true, Some(key)) = (fresh, cache.keys.get(kid)) {
                return Ok(*key);
            }
        }
        let _single_flight = self.refreshing.lock().await;
        {
            // Another request may have refreshed while this one waited.
            let cache = self.cache.read().await;
            let recent = cache
                .fetched_at
                .is_some_and(|at| at.elapsed() < self.settings.min_refresh);
            if let Some(key) = cache.keys.get(kid).filter(|_| recent) {
                return Ok(*key);
            }
            if recent {
                return Err(TokenError::UnknownKey);
            }
        }
        let fetched = self.fetch().await;
        let mut cache = self.cache.write().await;
        match fetched {
            Ok(keys) => {
                cache.keys = keys;
                cache.fetched_at = Some(Instant::now());
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
        let response = self
            .auth
            .clone()
            .get_jwks(GetJwksRequest {})
            .await
            .map_err(|status| TokenError::JwksUnavailable(status.message().to_owned()))?;
        let mut keys = HashMap::new();
        for jwk in response.into_inner().keys {
            match verifying_key(&jwk) {
                Some(key) => {
                    keys.insert(jwk.kid, key);
                }
                None => {
                    tracing::warn!(kid = %jwk.kid, "ignoring a JWK that is not an ES256 P-256 key")
                }
            }
        }
        tracing::info!(keys = keys.len(), "fetched the JWKS");
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

    /// A verifier whose cache already holds `key` as `k1`; the auth
    /// channel points at a closed port and is never used.
    async fn verifier(key: &SigningKey) -> TokenVerifier {
        let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:9").connect_lazy();
        let settings = JwtSettings {
            issuer: "iss".into(),
            audience: "aud".into(),
            leeway: Duration::from_secs(30),
            min_refresh: Duration::from_secs(3600),
            keys_ttl: Duration::from_secs(3600),
        };
        let verifier = TokenVerifier::new(settings, channel);
        {
            let mut cache = verifier.cache.write().await;
            cache.keys.insert("k1".into(), *key.verifying_key());
            cache.fetched_at = Some(Instant::now());
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
        let point = key.verifying_key().to_encoded_point(false);
        let jwk = Jwk {
            kty: "EC".into(),
            r#use: "sig".into(),
            alg: "ES256".into(),
            crv: "P-256".into(),
            x: b64(point.x().unwrap()),
            y: b64(point.y().unwrap()),
            kid: "k1".into(),
        };
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
}
