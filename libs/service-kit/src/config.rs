//! Typed configuration from environment variables (12-factor).
//!
//! Every setting has a sane default, so `make run` works with none set. A
//! value that is set but malformed is an error at start-up, never a silent
//! fallback. Secrets are wrapped in [`Secret`], whose `Debug` and `Display`
//! print `***`, so configuration can be logged whole.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::jwt::JwtSettings;

/// A setting that is set but cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    /// The variable.
    pub name: String,
    /// Its value (never a secret's).
    pub value: String,
    /// Why it is invalid.
    pub reason: String,
}

/// Reads `name`, or `default` when unset or empty.
pub fn env_or(name: &str, default: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => default.to_owned(),
    }
}

/// Reads and parses `name`, or `default` when unset or empty.
pub fn env_parse<T>(name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value.parse().map_err(|e: T::Err| ConfigError {
            name: name.to_owned(),
            value,
            reason: e.to_string(),
        }),
        _ => Ok(default),
    }
}

/// A value that must never appear in logs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether no secret was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Settings every service has, with the variable names used in `make run`,
/// `compose.yaml` and the README.
#[derive(Clone, Debug)]
pub struct CommonConfig {
    /// `NATS_URL`.
    pub nats_url: String,
    /// `STOCKLET_<USER>_NATS_PASSWORD`: the passwords of the NATS users
    /// this process may connect as; a service connects as its own
    /// ([`NatsPasswords::credentials`]).
    pub nats_passwords: NatsPasswords,
    /// `DATABASE_URL`: the server; each service uses its own schema in it.
    pub database_url: Secret,
    /// `STOCKLET_INTERNAL_TOKEN`: shared by the gateway and the services;
    /// identity metadata is trusted only next to it. No default: a service
    /// refuses to start without one ([`require_internal_token`]).
    pub internal_token: Secret,
    /// `STOCKLET_STREAM_REPLICAS`: 1 on one server, 3 on a cluster.
    pub stream_replicas: usize,
    /// `STOCKLET_DB_POOL_SIZE`: most PostgreSQL connections per service.
    pub db_pool_size: u32,
    /// `STOCKLET_IDEMPOTENCY_TTL_S`: how long an idempotency key's answer
    /// is kept (see [`idempotency`](crate::idempotency)); default a day.
    pub idempotency_ttl: Duration,
    /// `STOCKLET_AUTH_URL`: the auth service's gRPC URL, whose JWKS
    /// verifies the bearer tokens clients send (the name the gateway's
    /// backend has; the auth service itself verifies in process).
    pub auth_url: String,
    /// `STOCKLET_JWT_ISSUER`, `STOCKLET_JWT_AUDIENCE`,
    /// `STOCKLET_JWT_LEEWAY_S`: what a bearer token must say (see
    /// [`JwtSettings::from_env`]).
    pub jwt: JwtSettings,
}

/// Default `NATS_URL`: the nats-server `make run` starts.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:14222";
/// Default `DATABASE_URL`: the local PostgreSQL with trust auth.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// The least length of `STOCKLET_INTERNAL_TOKEN`: 32 characters, as
/// `openssl rand -hex 16` gives (128 bits).
pub const MIN_INTERNAL_TOKEN_CHARS: usize = 32;

/// Tokens that were published (an earlier default, the compose example):
/// anyone can read them, so none may be used.
const PUBLISHED_INTERNAL_TOKENS: [&str; 2] = [
    "stocklet-dev-internal-token",
    "change-me-compose-internal-token",
];

/// Checks `STOCKLET_INTERNAL_TOKEN` before a service or the gateway starts.
///
/// There is no default: a value shipped in the repository would let anyone
/// who reads it act as any user, admin included, on every service's port.
/// Each deployment generates its own (`make run` writes one to
/// `.data/secrets/internal-token` on first start; compose and clusters take
/// it from the environment or a secret file), and a process refuses to
/// start without one, or with one too short to resist guessing.
pub fn require_internal_token(token: &Secret) -> Result<(), ConfigError> {
    let refuse = |reason: &str| ConfigError {
        name: "STOCKLET_INTERNAL_TOKEN".to_owned(),
        value: "***".to_owned(),
        reason: format!(
            "{reason}; generate one per deployment, for example `openssl rand -hex 32` \
             (`make run` keeps one in .data/secrets/internal-token)"
        ),
    };
    let value = token.expose();
    if value.is_empty() {
        return Err(refuse("it is not set"));
    }
    if PUBLISHED_INTERNAL_TOKENS.contains(&value) {
        return Err(refuse("it is a value published in the repository"));
    }
    if value.chars().count() < MIN_INTERNAL_TOKEN_CHARS {
        return Err(refuse(&format!(
            "it is shorter than {MIN_INTERNAL_TOKEN_CHARS} characters"
        )));
    }
    Ok(())
}

/// Default `STOCKLET_AUTH_URL`: the auth service of `make run`.
pub const DEFAULT_AUTH_URL: &str = "http://127.0.0.1:15051";

/// Default `STOCKLET_DB_POOL_SIZE`.
pub const DEFAULT_DB_POOL_SIZE: u32 = 8;

impl CommonConfig {
    /// Reads the common settings from the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            nats_url: env_or("NATS_URL", DEFAULT_NATS_URL),
            nats_passwords: NatsPasswords::from_env(),
            database_url: Secret::new(env_or("DATABASE_URL", DEFAULT_DATABASE_URL)),
            internal_token: Secret::new(env_or("STOCKLET_INTERNAL_TOKEN", "")),
            stream_replicas: env_parse("STOCKLET_STREAM_REPLICAS", 1)?,
            db_pool_size: env_parse("STOCKLET_DB_POOL_SIZE", DEFAULT_DB_POOL_SIZE)?,
            idempotency_ttl: Duration::from_secs(env_parse(
                "STOCKLET_IDEMPOTENCY_TTL_S",
                crate::idempotency::DEFAULT_TTL.as_secs(),
            )?),
            auth_url: env_or("STOCKLET_AUTH_URL", DEFAULT_AUTH_URL),
            jwt: JwtSettings::from_env()?,
        })
    }
}

/// The users of Stocklet's NATS server (`nats/permissions.conf`): one per
/// service, named like it, then the provisioner (creates and updates
/// streams, operates dead letters) and the read-only subscriber for
/// programs outside Stocklet.
pub const NATS_USERS: [&str; 9] = [
    "auth",
    "user",
    "product",
    "warehouse",
    "order",
    "payment",
    "shipping",
    PROVISION_NATS_USER,
    SUBSCRIBER_NATS_USER,
];

/// The NATS user that provisions streams (`stocklet provision`) and
/// operates dead letters (`stocklet dlq`).
pub const PROVISION_NATS_USER: &str = "provision";
/// The NATS user that may only read the public streams.
pub const SUBSCRIBER_NATS_USER: &str = "subscriber";

/// The variable holding `user`'s NATS password, e.g.
/// `STOCKLET_ORDER_NATS_PASSWORD`: the same name in nats-server's
/// environment (`nats/permissions.conf`) and in the client's.
pub fn nats_password_variable(user: &str) -> String {
    format!("STOCKLET_{}_NATS_PASSWORD", user.to_ascii_uppercase())
}

/// Who a process is on the NATS server.
#[derive(Clone, Debug)]
pub struct NatsCredentials {
    /// The user, one of [`NATS_USERS`].
    pub user: String,
    /// Its password.
    pub password: Secret,
}

/// The NATS passwords given to this process, by user.
///
/// A container runs one service and is given that service's password
/// only; the all-in-one binary is given every service's. There is no
/// default: the NATS server refuses anonymous clients, and each deployment
/// generates its own passwords (`make run` keeps them in `.data/secrets`).
#[derive(Clone, Debug, Default)]
pub struct NatsPasswords(BTreeMap<String, Secret>);

impl NatsPasswords {
    /// Reads `STOCKLET_<USER>_NATS_PASSWORD` for each of [`NATS_USERS`];
    /// unset or empty ones are left out.
    pub fn from_env() -> Self {
        let mut passwords = Self::default();
        for user in NATS_USERS {
            let password = env_or(&nats_password_variable(user), "");
            if !password.is_empty() {
                passwords = passwords.with(user, Secret::new(password));
            }
        }
        passwords
    }

    /// These passwords and `user`'s.
    #[must_use]
    pub fn with(mut self, user: &str, password: Secret) -> Self {
        self.0.insert(user.to_owned(), password);
        self
    }

    /// `user` and its password, or an error naming the variable to set.
    pub fn credentials(&self, user: &str) -> Result<NatsCredentials, ConfigError> {
        match self.0.get(user) {
            Some(password) => Ok(NatsCredentials {
                user: user.to_owned(),
                password: password.clone(),
            }),
            None => Err(ConfigError {
                name: nats_password_variable(user),
                value: String::new(),
                reason: format!(
                    "it is not set: the password of NATS user {user:?} (nats/permissions.conf), \
                     which nats-server is given too; generate one per deployment, for example \
                     `openssl rand -hex 32` (`make run` keeps them in .data/secrets)"
                ),
            }),
        }
    }
}

/// The settings of a service that needs nothing but the common ones and an
/// address to listen on (product, payment, warehouse).
///
/// Why one struct: those services' settings differed only in the name of
/// the address variable and its default, and each copy had to be kept in
/// step with [`CommonConfig`] by hand. A service with settings of its own
/// (shipping's capacity, auth's keys) keeps its own struct, with a
/// [`CommonConfig`] inside.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// Settings every service shares.
    pub common: CommonConfig,
    /// Where the gRPC server listens: the service's `STOCKLET_*_ADDR`.
    pub listen_addr: String,
}

impl ServiceConfig {
    /// Reads the common settings and the listen address from `addr_var`
    /// (`default_addr` when unset or empty).
    pub fn from_env(addr_var: &str, default_addr: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            common: CommonConfig::from_env()?,
            listen_addr: env_or(addr_var, default_addr),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret}"), "***");
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn malformed_settings_are_errors_not_defaults() {
        let parsed: Result<usize, _> = "three".parse::<usize>().map_err(|e| e.to_string());
        assert!(parsed.is_err());
        assert_eq!(
            env_parse("STOCKLET_TEST_UNSET_VARIABLE", 7usize).unwrap(),
            7
        );
    }

    #[test]
    fn the_internal_token_has_no_default_and_must_be_long_and_unpublished() {
        assert!(require_internal_token(&Secret::default()).is_err());
        assert!(require_internal_token(&Secret::new("short")).is_err());
        for published in PUBLISHED_INTERNAL_TOKENS {
            let error = require_internal_token(&Secret::new(published)).unwrap_err();
            assert!(error.to_string().contains("published"), "{error}");
            assert!(!error.to_string().contains(published), "never printed");
        }
        assert!(require_internal_token(&Secret::new("0123456789abcdef0123456789abcdef")).is_ok());
    }

    #[test]
    fn a_missing_nats_password_names_its_variable_and_no_password_prints() {
        let passwords = NatsPasswords::default().with("order", Secret::new("s3cret-order"));
        let order = passwords.credentials("order").unwrap();
        assert_eq!(order.user, "order");
        assert_eq!(order.password.expose(), "s3cret-order");
        assert!(!format!("{passwords:?} {order:?}").contains("s3cret"));
        let error = passwords.credentials("payment").unwrap_err();
        assert_eq!(error.name, "STOCKLET_PAYMENT_NATS_PASSWORD");
        assert!(error.to_string().contains("not set"), "{error}");
    }

    #[test]
    fn an_unset_listen_address_is_the_default() {
        let config =
            ServiceConfig::from_env("STOCKLET_TEST_UNSET_ADDR", "127.0.0.1:50099").unwrap();
        assert_eq!(config.listen_addr, "127.0.0.1:50099");
    }
}
