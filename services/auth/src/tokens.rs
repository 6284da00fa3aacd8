//! Access tokens: ES256 (ECDSA P-256 with SHA-256) JWTs, and the JWKS that
//! verifies them.
//!
//! A token is a compact JWS (RFC 7515) with the header
//! `{"alg":"ES256","typ":"JWT","kid":...}` and the claims `iss`, `aud`,
//! `sub` (the user id), `role` (`customer` or `admin`), `iat` and `exp`
//! (Unix seconds). The key id is the key's RFC 7638 thumbprint, so it
//! changes exactly when the key does. Verifiers (the gateway) fetch the
//! JWKS and must pin the algorithm to ES256.
//!
//! The signing key comes from configuration (`STOCKLET_JWT_KEY_FILE` or
//! `STOCKLET_JWT_KEY_PEM`, PKCS#8 or SEC1 PEM). Without one, a key is
//! generated once and kept in the data directory, so a restart does not
//! invalidate the tokens already issued: fine for development, while
//! production should configure its key.

use std::fmt;
use std::path::{Path, PathBuf};

use base64ct::{Base64UrlUnpadded, Encoding};
use p256::SecretKey;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rand_core::OsRng;
use sha2::{Digest, Sha256};
use stocklet_proto::stocklet::auth::v1::Jwk;
use stocklet_service_kit::Secret;

use crate::domain::Role;

/// Where the signing key comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// `STOCKLET_JWT_KEY_FILE`: a PEM file.
    File(PathBuf),
    /// `STOCKLET_JWT_KEY_PEM`: the PEM itself.
    Pem(Secret),
    /// Neither: generate one and keep it in this file.
    Generated(PathBuf),
}

/// Why the signing key could not be had. Never shows key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read or written.
    #[error("key file {path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The PEM is not a P-256 private key.
    #[error("the signing key is not a P-256 private key in PKCS#8 or SEC1 PEM")]
    NotP256,
}

/// Signs tokens with one P-256 key.
#[derive(Clone)]
pub struct TokenSigner {
    key: SigningKey,
    jwk: Jwk,
    issuer: String,
    audience: String,
    ttl_s: i64,
}

impl fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSigner")
            .field("kid", &self.jwk.kid)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("ttl_s", &self.ttl_s)
            .finish_non_exhaustive()
    }
}

/// A signed token and how long it lives.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// The compact JWS.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in_s: i64,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(***)")
    }
}

impl TokenSigner {
    /// A signer with `secret`, naming itself `issuer` and its tokens'
    /// audience `audience`, issuing tokens that live `ttl_s` seconds.
    pub fn new(secret: &SecretKey, issuer: String, audience: String, ttl_s: i64) -> Self {
        let key = SigningKey::from(secret);
        let jwk = public_jwk(secret);
        Self {
            key,
            jwk,
            issuer,
            audience,
            ttl_s,
        }
    }

    /// The public key as a JWK, for the JWKS.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// Issues a token for `user_id` with `role`, issued at `now_s`.
    pub fn issue(&self, user_id: &str, role: Role, now_s: i64) -> AccessToken {
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": self.jwk.kid});
        let claims = serde_json::json!({
            "iss": self.issuer,
            "aud": self.audience,
            "sub": user_id,
            "role": role.as_str(),
            "iat": now_s,
            "exp": now_s.saturating_add(self.ttl_s),
        });
        let signing_input = format!(
            "{}.{}",
            Base64UrlUnpadded::encode_string(header.to_string().as_bytes()),
            Base64UrlUnpadded::encode_string(claims.to_string().as_bytes()),
        );
        let signature: Signature = self.key.sign(signing_input.as_bytes());
        AccessToken {
            token: format!(
                "{signing_input}.{}",
                Base64UrlUnpadded::encode_string(&signature.to_bytes())
            ),
            expires_in_s: self.ttl_s,
        }
    }
}

/// The public half of `secret` as a JWK, its `kid` the RFC 7638 thumbprint.
pub fn public_jwk(secret: &SecretKey) -> Jwk {
    let point = secret.public_key().to_encoded_point(false);
    let coordinate = |c: Option<&p256::FieldBytes>| {
        c.map(|bytes| Base64UrlUnpadded::encode_string(bytes))
            .unwrap_or_default()
    };
    let (x, y) = (coordinate(point.x()), coordinate(point.y()));
    // RFC 7638: the required members, lexicographically ordered, no spaces.
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    let kid = Base64UrlUnpadded::encode_string(&Sha256::digest(canonical.as_bytes()));
    Jwk {
        kty: "EC".into(),
        r#use: "sig".into(),
        alg: "ES256".into(),
        crv: "P-256".into(),
        x,
        y,
        kid,
    }
}

/// Parses a P-256 private key from PKCS#8 (`BEGIN PRIVATE KEY`) or SEC1
/// (`BEGIN EC PRIVATE KEY`) PEM.
pub fn parse_pem(pem: &str) -> Result<SecretKey, KeyError> {
    SecretKey::from_pkcs8_pem(pem.trim())
        .or_else(|_| SecretKey::from_sec1_pem(pem.trim()))
        .map_err(|_| KeyError::NotP256)
}

/// The signing key from `source`, generating and persisting one if asked.
pub fn load_key(source: &KeySource) -> Result<SecretKey, KeyError> {
    match source {
        KeySource::Pem(pem) => parse_pem(pem.expose()),
        KeySource::File(path) => parse_pem(&read(path)?),
        KeySource::Generated(path) => match std::fs::read_to_string(path) {
            Ok(pem) => parse_pem(&pem),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => generate(path),
            Err(error) => Err(io_error(path, &error)),
        },
    }
}

fn read(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|e| io_error(path, &e))
}

fn io_error(path: &Path, error: &dyn fmt::Display) -> KeyError {
    KeyError::Io {
        path: path.to_owned(),
        reason: error.to_string(),
    }
}

/// Generates a key and publishes it at `path` atomically (written aside,
/// then hard-linked into place, which fails if another instance won): every
/// instance ends up with the same key.
fn generate(path: &Path) -> Result<SecretKey, KeyError> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;

    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, &e))?;
    }
    let secret = SecretKey::random(&mut OsRng);
    let pem = secret
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|_| KeyError::NotP256)?;
    let aside = path.with_extension(format!("tmp-{}", uuid::Uuid::now_v7().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let written = options
        .open(&aside)
        .and_then(|mut file| {
            file.write_all(pem.as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| std::fs::hard_link(&aside, path));
    let _ = std::fs::remove_file(&aside);
    match written {
        Ok(()) => {
            tracing::warn!(path = %path.display(), "generated a JWT signing key; configure STOCKLET_JWT_KEY_FILE in production");
            Ok(secret)
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => parse_pem(&read(path)?),
        Err(error) => Err(io_error(path, &error)),
    }
}

#[cfg(test)]
mod tests {
    use p256::ecdsa::VerifyingKey;
    use p256::ecdsa::signature::Verifier;

    use super::*;

    fn decode_json(part: &str) -> serde_json::Value {
        serde_json::from_slice(&Base64UrlUnpadded::decode_vec(part).unwrap()).unwrap()
    }

    #[test]
    fn tokens_verify_against_the_published_jwk() {
        let secret = SecretKey::random(&mut OsRng);
        let signer = TokenSigner::new(&secret, "stocklet-auth".into(), "stocklet".into(), 600);
        let token = signer.issue("u1", Role::Admin, 1_000);
        assert_eq!(token.expires_in_s, 600);
        let parts: Vec<&str> = token.token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = decode_json(parts[0]);
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], signer.jwk().kid.as_str());
        let claims = decode_json(parts[1]);
        assert_eq!(claims["sub"], "u1");
        assert_eq!(claims["role"], "admin");
        assert_eq!(
            (claims["iat"].as_i64(), claims["exp"].as_i64()),
            (Some(1_000), Some(1_600))
        );
        assert_eq!(
            (claims["iss"].as_str(), claims["aud"].as_str()),
            (Some("stocklet-auth"), Some("stocklet"))
        );

        // Verify as a gateway would: from the JWK alone.
        let jwk = signer.jwk();
        let mut sec1 = vec![4u8];
        sec1.extend(Base64UrlUnpadded::decode_vec(&jwk.x).unwrap());
        sec1.extend(Base64UrlUnpadded::decode_vec(&jwk.y).unwrap());
        let key = VerifyingKey::from_sec1_bytes(&sec1).unwrap();
        let signature =
            Signature::from_slice(&Base64UrlUnpadded::decode_vec(parts[2]).unwrap()).unwrap();
        let input = format!("{}.{}", parts[0], parts[1]);
        assert!(key.verify(input.as_bytes(), &signature).is_ok());
        assert!(key.verify(b"tampered", &signature).is_err());
        assert!(!format!("{token:?}").contains(&token.token));
    }

    #[test]
    fn jwk_members_are_standard() {
        let jwk = public_jwk(&SecretKey::random(&mut OsRng));
        assert_eq!(
            (
                jwk.kty.as_str(),
                jwk.crv.as_str(),
                jwk.alg.as_str(),
                jwk.r#use.as_str()
            ),
            ("EC", "P-256", "ES256", "sig")
        );
        assert_eq!(Base64UrlUnpadded::decode_vec(&jwk.x).unwrap().len(), 32);
        assert_eq!(Base64UrlUnpadded::decode_vec(&jwk.y).unwrap().len(), 32);
        assert_eq!(Base64UrlUnpadded::decode_vec(&jwk.kid).unwrap().len(), 32);
    }

    #[test]
    fn pkcs8_and_sec1_pem_both_load_and_junk_does_not() {
        let secret = SecretKey::random(&mut OsRng);
        let pkcs8 = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
        let sec1 = secret.to_sec1_pem(LineEnding::LF).unwrap();
        assert_eq!(parse_pem(&pkcs8).unwrap(), secret);
        assert_eq!(parse_pem(&sec1).unwrap(), secret);
        assert!(matches!(parse_pem("not a key"), Err(KeyError::NotP256)));
    }

    #[test]
    fn a_generated_key_is_kept_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth").join("jwt-signing-key.pem");
        let first = load_key(&KeySource::Generated(path.clone())).unwrap();
        let second = load_key(&KeySource::Generated(path.clone())).unwrap();
        assert_eq!(first, second);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "the key file is private");
        }
        let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1);
    }
}
