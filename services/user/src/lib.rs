//! The user service: Stocklet's user profiles and registration.
//!
//! It owns users' profiles and makes email addresses unique: each address
//! has an email-claim aggregate keyed by a digest of its normalised form,
//! and a user's change is committed together with the claims it needs in
//! one atomic JetStream batch. So there is never a user without their claim,
//! nor a claim left behind by a registration that died half-way.
//!
//! Registration and the auth service: the password is hashed here
//! (Argon2id) and only its hash leaves, handed to the auth service on its
//! private AUTH stream (`InitialPasswordHashed`, see
//! [`stocklet_service_kit::registration`]) before `UserRegistered`, which
//! carries no hash, goes on the public USER stream. The auth service
//! reacts to `UserRegistered`, takes the hash and creates the credentials,
//! with a dedupe key derived from the event. The event is durable before RegisterUser
//! answers and the auth reactor retries until it is done, so credentials
//! always follow a user, even if auth is down at the time; a login tried
//! before auth has caught up fails and succeeds moments later.
//!
//! | events | |
//! | --- | --- |
//! | produces (stream `USER`) | `UserRegistered`, `UserEmailUpdated`, `UserDeleted` (aggregate `user`); `EmailClaimed`, `EmailReleased` (aggregate `email`) |
//! | hands over (stream `AUTH`, private) | `InitialPasswordHashed` (subject `auth.registration.<user id>`) |
//! | consumes | none |
//! | reacted to by | auth (credentials), payment (balances) |
//!
//! Read model: `user.users`, built by the [`projections::Directory`]
//! projection. A command answers once the directory shows its effect, so
//! queries read their writes.

pub mod api;
pub mod domain;
pub mod projections;

use stocklet_proto::stocklet::user::v1::user_service_server::UserServiceServer;
use stocklet_service_kit::ConfigError;
use stocklet_service_kit::config::{CommonConfig, env_or, env_parse};
use stocklet_service_kit::lifecycle::RunError;
use stocklet_service_kit::password::Hasher;
use stocklet_service_kit::service::{Service, ServiceSpec};
use stocklet_service_kit::streams;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::UserApi;
use crate::projections::Directory;

/// The gRPC service name, for health checks.
pub const SERVICE_NAME: &str = "stocklet.user.v1.UserService";
/// The PostgreSQL schema of the read models.
pub const SCHEMA: &str = "user";

/// The variable naming where the gRPC server listens.
pub const ADDR_VAR: &str = "STOCKLET_USER_ADDR";
/// Where the gRPC server listens when [`ADDR_VAR`] is unset (below the
/// ephemeral port range, see the README).
pub const DEFAULT_ADDR: &str = "127.0.0.1:15052";

/// The user service's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Settings every service shares.
    pub common: CommonConfig,
    /// `STOCKLET_USER_ADDR`: where the gRPC server listens.
    pub listen_addr: String,
    /// `STOCKLET_USER_HASH_CONCURRENCY`: password hashes computed at once
    /// (each takes 19 MiB and tens of milliseconds of one core).
    pub hash_concurrency: usize,
}

impl Config {
    /// Reads the settings from the environment, with defaults.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            common: CommonConfig::from_env()?,
            listen_addr: env_or(ADDR_VAR, DEFAULT_ADDR),
            hash_concurrency: env_parse("STOCKLET_USER_HASH_CONCURRENCY", 2)?,
        })
    }
}

/// Who the service is: its schema and its stream.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "user",
    schema: SCHEMA,
    stream: streams::USER,
};

/// Runs the service on `listener` until `shutdown`, then stops gracefully.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let mut service = Service::start(&config.common, SPEC, sqlx::migrate!("./migrations")).await?;
    let directory = service.projection(Directory).await?;
    let auth_stream = service.source(streams::AUTH).await?;
    let api = UserApi::new(
        service.repository(),
        service.repository(),
        directory,
        service.pool().clone(),
        Hasher::new(config.hash_concurrency),
        auth_stream,
    );
    service
        .serve(listener, UserServiceServer::new(api), shutdown)
        .await
}
