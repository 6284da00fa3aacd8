#![doc = include_str!("../README.md")]
//!
//! # Modules
//! - [`routes`]: the route table, read from the `(google.api.http)`
//!   annotations of the descriptor set.
//! - [`transcode`]: proto3 JSON ↔ protobuf for one route.
//! - [`backend`]: one generic unary gRPC call for every route.
//! - [`policy`]: which methods are public (service-kit's `access`, which
//!   the services enforce too), and which rate-limit budgets each spends.
//! - [`ratelimit`]: the limiter, and who the client is behind trusted
//!   proxies.
//! - [`errors`], [`openapi`], [`server`].
//!
//! Tokens are verified by service-kit's `jwt::TokenVerifier` against the
//! auth service's JWKS: the same code and rules as every service uses for
//! a bearer token sent to it directly.
//!
//! The gateway produces and consumes no events.

pub mod backend;
pub mod errors;
pub mod openapi;
pub mod policy;
pub mod ratelimit;
pub mod routes;
pub mod server;
pub mod transcode;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prost_reflect::DescriptorPool;
use stocklet_service_kit::ConfigError;
use stocklet_service_kit::config::{DEFAULT_AUTH_URL, env_or, env_parse};
use stocklet_service_kit::jwt::JwtSettings;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::ratelimit::TrustedProxies;

/// The backends and their default gRPC addresses (`STOCKLET_<NAME>_URL`).
pub const BACKENDS: [(&str, &str); 7] = [
    ("auth", DEFAULT_AUTH_URL),
    ("user", "http://127.0.0.1:15052"),
    ("product", "http://127.0.0.1:15053"),
    ("warehouse", "http://127.0.0.1:15054"),
    ("order", "http://127.0.0.1:15055"),
    ("payment", "http://127.0.0.1:15056"),
    ("shipping", "http://127.0.0.1:15057"),
];

/// The gateway's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// `STOCKLET_GATEWAY_ADDR` (default `127.0.0.1:8080`).
    pub listen_addr: String,
    /// `STOCKLET_<SERVICE>_URL`: each backend's gRPC URL, by name.
    pub backends: BTreeMap<String, String>,
    /// `STOCKLET_JWT_ISSUER` (default `stocklet-auth`),
    /// `STOCKLET_JWT_AUDIENCE` (default `stocklet`),
    /// `STOCKLET_JWT_LEEWAY_S` (default 30): as every service reads them.
    pub jwt: JwtSettings,
    /// `STOCKLET_GATEWAY_BODY_LIMIT_BYTES` (default 1 MiB).
    pub body_limit_bytes: usize,
    /// `STOCKLET_GATEWAY_TIMEOUT_MS` (default 10 000): per request.
    pub request_timeout: Duration,
    /// Connect timeout to a backend (2 s).
    pub connect_timeout: Duration,
    /// `STOCKLET_GATEWAY_RATE_LIMIT_PER_MINUTE` (default 30): per client
    /// address (or signed-in customer, for orders) and rate-limited method.
    pub rate_limit_per_minute: u32,
    /// `STOCKLET_GATEWAY_RATE_LIMIT_BURST` (default 10).
    pub rate_limit_burst: u32,
    /// `STOCKLET_GATEWAY_ACCOUNT_RATE_LIMIT_PER_HOUR` (default 12): failed
    /// logins and password changes per target account, from anywhere.
    pub account_rate_limit_per_hour: u32,
    /// `STOCKLET_GATEWAY_ACCOUNT_RATE_LIMIT_BURST` (default 10).
    pub account_rate_limit_burst: u32,
    /// `STOCKLET_GATEWAY_REGISTER_RATE_LIMIT_PER_HOUR` (default 20):
    /// registrations per client address.
    pub register_rate_limit_per_hour: u32,
    /// `STOCKLET_GATEWAY_REGISTER_RATE_LIMIT_BURST` (default 5).
    pub register_rate_limit_burst: u32,
    /// `STOCKLET_GATEWAY_TRUSTED_PROXIES` (default none): the proxies whose
    /// `X-Forwarded-For` names the client, as addresses or CIDR networks.
    pub trusted_proxies: TrustedProxies,
    /// `STOCKLET_GATEWAY_CORS_ORIGINS`: comma-separated origins, `*` for
    /// any; empty (the default) sends no CORS headers.
    pub cors_origins: Vec<String>,
}

impl Config {
    /// Reads the settings from the environment, with defaults.
    pub fn from_env() -> Result<Self, ConfigError> {
        let backends = BACKENDS
            .iter()
            .map(|(name, default)| {
                let variable = format!("STOCKLET_{}_URL", name.to_ascii_uppercase());
                ((*name).to_owned(), env_or(&variable, default))
            })
            .collect();
        Ok(Self {
            listen_addr: env_or("STOCKLET_GATEWAY_ADDR", "127.0.0.1:8080"),
            backends,
            jwt: JwtSettings::from_env()?,
            body_limit_bytes: env_parse("STOCKLET_GATEWAY_BODY_LIMIT_BYTES", 1024 * 1024)?,
            request_timeout: Duration::from_millis(env_parse(
                "STOCKLET_GATEWAY_TIMEOUT_MS",
                10_000,
            )?),
            connect_timeout: Duration::from_secs(2),
            rate_limit_per_minute: env_parse("STOCKLET_GATEWAY_RATE_LIMIT_PER_MINUTE", 30)?,
            rate_limit_burst: env_parse("STOCKLET_GATEWAY_RATE_LIMIT_BURST", 10)?,
            account_rate_limit_per_hour: env_parse(
                "STOCKLET_GATEWAY_ACCOUNT_RATE_LIMIT_PER_HOUR",
                12,
            )?,
            account_rate_limit_burst: env_parse("STOCKLET_GATEWAY_ACCOUNT_RATE_LIMIT_BURST", 10)?,
            register_rate_limit_per_hour: env_parse(
                "STOCKLET_GATEWAY_REGISTER_RATE_LIMIT_PER_HOUR",
                20,
            )?,
            register_rate_limit_burst: env_parse("STOCKLET_GATEWAY_REGISTER_RATE_LIMIT_BURST", 5)?,
            trusted_proxies: env_parse(
                "STOCKLET_GATEWAY_TRUSTED_PROXIES",
                TrustedProxies::default(),
            )?,
            cors_origins: env_or("STOCKLET_GATEWAY_CORS_ORIGINS", "")
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }
}

/// Why the gateway could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The descriptor set does not decode.
    #[error("descriptors: {0}")]
    Descriptors(#[from] prost_reflect::DescriptorError),
    /// An annotation cannot be served.
    #[error("routes: {0}")]
    Routes(#[from] routes::RouteError),
    /// A backend URL is invalid.
    #[error(transparent)]
    Backend(#[from] backend::BackendError),
    /// Something else is misconfigured.
    #[error("configuration: {0}")]
    Config(String),
    /// Serving failed.
    #[error("serving: {0}")]
    Serve(#[from] std::io::Error),
}

/// Serves the gateway on `listener` until `shutdown`, then lets in-flight
/// requests finish.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let pool = DescriptorPool::decode(stocklet_proto::FILE_DESCRIPTOR_SET)?;
    let gateway = Arc::new(server::Gateway::new(&config, &pool)?);
    let app = server::router(gateway, &config.cors_origins);
    tracing::info!(addr = ?listener.local_addr().ok(), "gateway listening");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await?;
    Ok(())
}
