//! The auth service: Stocklet's credentials, logins and access tokens.
//!
//! It keeps one credentials aggregate per user (email, Argon2id hash,
//! role), exchanges a correct password for an ES256 JWT, and publishes the
//! public key as a JWKS for the gateway and the services, which verify
//! the tokens clients send them with it (this service verifies them with
//! the key in hand). It never sees a user's profile:
//! credentials are made by reacting to the user service's `UserRegistered`,
//! which carries the hash the user service made. That event is durable
//! before RegisterUser answers and the reactor retries until it is done, so
//! credentials always follow a registration, even one made while auth was
//! down; a login tried before auth has caught up fails, and succeeds
//! moments later.
//!
//! The first admin account is created at start-up from
//! `STOCKLET_ADMIN_EMAIL` and `STOCKLET_ADMIN_PASSWORD` when both are set,
//! idempotently: its user id is derived from the address
//! ([`admin_user_id`]), and an existing account is left as it is.
//!
//! | events | |
//! | --- | --- |
//! | produces (stream `AUTH`) | `CredentialsCreated`, `PasswordChanged`, `CredentialsEmailChanged`, `CredentialsRemoved` |
//! | consumes (stream `USER`) | `UserRegistered`, `UserEmailUpdated`, `UserDeleted` |
//!
//! Read model: `auth.logins` (email to user id), built by the
//! [`projections::Logins`] projection. Passwords and hashes never appear in
//! logs: their types print `***`.

pub mod api;
pub mod domain;
pub mod projections;
pub mod reactor;
pub mod tokens;

use std::path::PathBuf;
use std::time::Duration;

use es_core::reactor::ReactorConfig;
use es_core::{AggregateId, CommandContext, ExecuteError, JetStreamEventStore, Repository};
use sha2::{Digest, Sha256};
use stocklet_proto::stocklet::auth::v1::auth_service_server::AuthServiceServer;
use stocklet_service_kit::config::{CommonConfig, env_or, env_parse};
use stocklet_service_kit::jwt::StaticJwks;
use stocklet_service_kit::lifecycle::RunError;
use stocklet_service_kit::password::Passwords;
use stocklet_service_kit::ratelimit::RateLimiter;
use stocklet_service_kit::service::{Service, ServiceSpec};
use stocklet_service_kit::streams;
use stocklet_service_kit::{ConfigError, Secret};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::AuthApi;
use crate::domain::{Credentials, CredentialsCommand, CredentialsError, Email, Password, Role};
use crate::projections::Logins;
use crate::reactor::{DURABLE_NAME, UserReactions};
use crate::tokens::{KeySource, TokenSigner};

/// The gRPC service name, for health checks.
pub const SERVICE_NAME: &str = "stocklet.auth.v1.AuthService";
/// The PostgreSQL schema of the read models.
pub const SCHEMA: &str = "auth";

/// The account created at start-up.
#[derive(Clone, Debug)]
pub struct AdminAccount {
    /// `STOCKLET_ADMIN_EMAIL`.
    pub email: String,
    /// `STOCKLET_ADMIN_PASSWORD`.
    pub password: Secret,
}

/// The variable naming where the gRPC server listens.
pub const ADDR_VAR: &str = "STOCKLET_AUTH_ADDR";
/// Where the gRPC server listens when [`ADDR_VAR`] is unset (below the
/// ephemeral port range, see the README).
pub const DEFAULT_ADDR: &str = "127.0.0.1:15051";

/// The auth service's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Settings every service shares.
    pub common: CommonConfig,
    /// `STOCKLET_AUTH_ADDR`: where the gRPC server listens.
    pub listen_addr: String,
    /// Where the signing key comes from: `STOCKLET_JWT_KEY_FILE`, else
    /// `STOCKLET_JWT_KEY_PEM`, else a key generated once and kept in
    /// `STOCKLET_DATA_DIR` (default `.data`) as `auth/jwt-signing-key.pem`.
    pub signing_key: KeySource,
    /// `STOCKLET_JWT_TTL_S` (default 3600): token lifetime in seconds.
    pub token_ttl_s: i64,
    /// `STOCKLET_AUTH_HASH_CONCURRENCY` (default 2): Argon2 computations at
    /// once (each takes 19 MiB).
    pub hash_concurrency: usize,
    /// The first admin account, when both its variables are set.
    pub admin: Option<AdminAccount>,
    /// `STOCKLET_AUTH_FAILED_LOGINS_PER_HOUR` (default 12) and
    /// `STOCKLET_AUTH_FAILED_LOGINS_BURST` (default 10): failed password
    /// checks one account may take, from any caller, before the service
    /// answers `RESOURCE_EXHAUSTED`; a right password gives its try back.
    pub failed_logins_per_hour: u32,
    /// See [`Config::failed_logins_per_hour`].
    pub failed_logins_burst: u32,
}

impl Config {
    /// Reads the settings from the environment, with defaults.
    pub fn from_env() -> Result<Self, ConfigError> {
        let file = env_or("STOCKLET_JWT_KEY_FILE", "");
        let pem = env_or("STOCKLET_JWT_KEY_PEM", "");
        let signing_key = match (file.is_empty(), pem.is_empty()) {
            (false, false) => {
                return Err(ConfigError {
                    name: "STOCKLET_JWT_KEY_PEM".into(),
                    value: "***".into(),
                    reason: "set STOCKLET_JWT_KEY_FILE or STOCKLET_JWT_KEY_PEM, not both".into(),
                });
            }
            (false, true) => KeySource::File(PathBuf::from(file)),
            (true, false) => KeySource::Pem(Secret::new(pem)),
            (true, true) => KeySource::Generated(
                PathBuf::from(env_or("STOCKLET_DATA_DIR", ".data"))
                    .join("auth")
                    .join("jwt-signing-key.pem"),
            ),
        };
        let token_ttl_s = env_parse("STOCKLET_JWT_TTL_S", 3600i64)?;
        if token_ttl_s <= 0 {
            return Err(ConfigError {
                name: "STOCKLET_JWT_TTL_S".into(),
                value: token_ttl_s.to_string(),
                reason: "must be positive".into(),
            });
        }
        let email = env_or("STOCKLET_ADMIN_EMAIL", "");
        let password = env_or("STOCKLET_ADMIN_PASSWORD", "");
        let admin = (!email.is_empty() && !password.is_empty()).then(|| AdminAccount {
            email,
            password: Secret::new(password),
        });
        Ok(Self {
            common: CommonConfig::from_env()?,
            listen_addr: env_or(ADDR_VAR, DEFAULT_ADDR),
            signing_key,
            token_ttl_s,
            hash_concurrency: env_parse("STOCKLET_AUTH_HASH_CONCURRENCY", 2)?,
            admin,
            failed_logins_per_hour: env_parse("STOCKLET_AUTH_FAILED_LOGINS_PER_HOUR", 12)?,
            failed_logins_burst: env_parse("STOCKLET_AUTH_FAILED_LOGINS_BURST", 10)?,
        })
    }
}

/// The bootstrap admin's user id: a UUID (version 8, RFC 9562) derived from
/// the normalised address, so every start and every instance agree on it.
pub fn admin_user_id(email: &str) -> String {
    let digest = Sha256::digest(format!("stocklet-admin:{}", domain::normalise_email(email)));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(bytes).to_string()
}

/// Creates the admin account unless it exists.
async fn bootstrap_admin(
    admin: &AdminAccount,
    credentials: &Repository<Credentials, JetStreamEventStore>,
    passwords: &Passwords,
) -> Result<(), RunError> {
    let user_id = admin_user_id(&admin.email);
    let id = AggregateId::parse(user_id.clone()).map_err(|e| RunError::Config(e.to_string()))?;
    let existing = credentials
        .load(&id)
        .await
        .map_err(|e| RunError::Config(format!("loading the admin account: {e}")))?;
    if existing.exists() {
        tracing::info!(%user_id, "admin account exists");
        return Ok(());
    }
    let email = Email::parse(&admin.email)
        .map_err(|e| RunError::Config(format!("STOCKLET_ADMIN_EMAIL {e}")))?;
    let password = Password::parse(admin.password.expose())
        .map_err(|e| RunError::Config(format!("STOCKLET_ADMIN_PASSWORD {e}")))?;
    let password_hash = passwords
        .hash(password)
        .await
        .map_err(|e| RunError::Config(e.to_string()))?;
    let command = CredentialsCommand::Create {
        user_id: user_id.clone(),
        email,
        password_hash,
        role: Role::Admin,
        at_ms: es_core::envelope::now_ms(),
    };
    match credentials
        .execute(
            &id,
            &command,
            &CommandContext::with_dedupe_key("bootstrap-admin"),
        )
        .await
    {
        Ok(_) | Err(ExecuteError::Rejected(CredentialsError::AlreadyExists)) => {
            tracing::info!(%user_id, "created the admin account");
            Ok(())
        }
        Err(error) => Err(RunError::Config(format!(
            "creating the admin account: {error}"
        ))),
    }
}

/// Who the service is: its schema and its stream.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "auth",
    schema: SCHEMA,
    stream: streams::AUTH,
};

/// Runs the service on `listener` until `shutdown`, then stops gracefully.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let secret =
        tokens::load_key(&config.signing_key).map_err(|e| RunError::Config(e.to_string()))?;
    // The `iss` and `aud` it signs are the ones every verifier checks
    // (`STOCKLET_JWT_ISSUER`, `STOCKLET_JWT_AUDIENCE`): one setting.
    let signer = TokenSigner::new(
        &secret,
        config.common.jwt.issuer.clone(),
        config.common.jwt.audience.clone(),
        config.token_ttl_s,
    );
    let mut service = Service::start(&config.common, SPEC, sqlx::migrate!("./migrations")).await?;
    // Bearer tokens sent straight to this port are verified with the
    // public key in hand, not by calling this service's own GetJwks.
    service.verify_tokens_with(StaticJwks::new(vec![signer.jwk().clone()]));
    let credentials = service.repository::<Credentials>();
    let passwords = Passwords::new(config.hash_concurrency)
        .await
        .map_err(|e| RunError::Config(e.to_string()))?;
    if let Some(admin) = &config.admin {
        bootstrap_admin(admin, &credentials, &passwords).await?;
    }
    let logins = service.projection(Logins).await?;
    // Users only, not their email claims.
    let users = service.source(streams::USER).await?.subject("user", "*");
    service
        .reactor(
            streams::USER,
            ReactorConfig::new(DURABLE_NAME).with_filter_subjects([users]),
            UserReactions::new(credentials.clone()),
        )
        .await?;
    let api = AuthApi::new(
        credentials,
        logins,
        service.pool().clone(),
        passwords,
        signer,
        RateLimiter::per_period(
            config.failed_logins_per_hour,
            Duration::from_secs(3600),
            config.failed_logins_burst,
        ),
    );
    service
        .serve(listener, AuthServiceServer::new(api), shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_id_is_a_stable_uuid_of_the_normalised_address() {
        let id = admin_user_id("Admin@Example.com ");
        assert_eq!(id, admin_user_id("admin@example.com"));
        assert_ne!(id, admin_user_id("root@example.com"));
        let parsed = uuid::Uuid::parse_str(&id).unwrap();
        assert_eq!(parsed.get_version_num(), 8);
    }

    #[test]
    fn configuration_never_prints_secrets() {
        let config = Config {
            common: CommonConfig::from_env().unwrap(),
            listen_addr: String::new(),
            signing_key: KeySource::Pem(Secret::new("-----BEGIN PRIVATE KEY-----")),
            token_ttl_s: 1,
            hash_concurrency: 1,
            admin: Some(AdminAccount {
                email: "admin@example.com".into(),
                password: Secret::new("hunter2"),
            }),
            failed_logins_per_hour: 1,
            failed_logins_burst: 1,
        };
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2") && !printed.contains("BEGIN"));
    }
}
