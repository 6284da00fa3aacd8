//! Starting and stopping a service: the steps every `run` shares.
//!
//! A service's `run(config, listener, shutdown)` is declared with the
//! [`Service`](crate::service::Service) builder, which connects to NATS
//! ([`connect_event_store`]), provisions its streams, prepares its database,
//! starts its consumers, and serves gRPC until `shutdown`; it then stops
//! taking calls, lets in-flight calls finish, and only then stops its
//! consumers, which finish and ack the events in hand. [`RunError`] is why
//! a start or a stop failed; [`shutdown_on_signal`] turns Ctrl-C and SIGTERM
//! into that token for binaries, and [`serve_binary`] is the whole of a
//! binary's `main` after telemetry: configuration, listener, `run` until the
//! signal, and an exit code.

use std::fmt::Display;
use std::process::ExitCode;

use es_core::JetStreamEventStore;
use es_core::envelope::Conventions;
use es_core::streams::ProvisionError;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::NatsCredentials;
use crate::db::DbError;
use crate::grpc::ServeError;

/// Why a service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// NATS could not be reached.
    #[error("connecting to NATS at {url}: {reason}")]
    Nats {
        /// The URL tried.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A stream could not be provisioned.
    #[error(transparent)]
    Provision(#[from] ProvisionError),
    /// A stream or bucket the service uses does not exist (as defined):
    /// services may not create streams, the provisioner does.
    #[error(
        "{0}; provision the streams first: `stocklet provision` (as NATS user \"provision\", \
         STOCKLET_PROVISION_NATS_PASSWORD)"
    )]
    NotProvisioned(ProvisionError),
    /// PostgreSQL could not be prepared.
    #[error("database: {0}")]
    Database(#[from] DbError),
    /// A migration failed.
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The gRPC server failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// A consumer failed for good.
    #[error("consumer: {0}")]
    Consumer(String),
    /// Something the service needs is misconfigured.
    #[error("configuration: {0}")]
    Config(String),
}

/// Connects to NATS as `credentials` and returns the event store on it.
/// `nats_url` may list several servers of a cluster, comma-separated, so a
/// service starts while any one of them is up.
///
/// The client's inboxes (where replies arrive) are `_INBOX_<user>.>`, the
/// only subjects its user may subscribe to (`nats/permissions.conf`), so
/// no other user can read a reply meant for it. A server that refuses the
/// credentials is logged as an error on every try (the client keeps
/// trying, as it does while the server is down).
pub async fn connect_event_store(
    nats_url: &str,
    credentials: &NatsCredentials,
) -> Result<JetStreamEventStore, RunError> {
    let client = connect(nats_url, credentials).await?;
    Ok(event_store(client))
}

/// Connects to NATS as `credentials` (see [`connect_event_store`]).
pub async fn connect(
    nats_url: &str,
    credentials: &NatsCredentials,
) -> Result<async_nats::Client, RunError> {
    let servers = server_list(nats_url);
    let user = credentials.user.clone();
    async_nats::ConnectOptions::with_user_and_password(
        credentials.user.clone(),
        credentials.password.expose().to_owned(),
    )
    .name(format!("stocklet-{user}"))
    .custom_inbox_prefix(format!("_INBOX_{user}"))
    .event_callback(move |event| {
        let user = user.clone();
        async move {
            if let async_nats::Event::ServerError(error) = event {
                tracing::error!(nats_user = %user, %error, "the NATS server reports an error");
            }
        }
    })
    .retry_on_initial_connect()
    .connect(servers)
    .await
    .map_err(|e| RunError::Nats {
        url: nats_url.to_owned(),
        reason: e.to_string(),
    })
}

/// The event store on `client`, with Stocklet's names on the wire
/// ([`conventions`]).
pub fn event_store(client: async_nats::Client) -> JetStreamEventStore {
    JetStreamEventStore::new(client).with_conventions(conventions())
}

/// Stocklet's wire names, part of its public contract (`docs/events.md`):
/// headers `Stocklet-Event-Id`, `Stocklet-Event-Type`, ...; multi-event
/// messages of type `stocklet.events.v1.EventBatch` (declared in
/// `proto/stocklet/events/v1/envelope.proto`); dead letters on
/// `deadletter.<consumer>`.
pub fn conventions() -> Conventions {
    Conventions::new("Stocklet-")
        .with_batch_type("stocklet.events.v1.EventBatch")
        .with_dead_letter_prefix("deadletter")
}

/// The servers of a `NATS_URL`: comma-separated, blanks ignored.
fn server_list(nats_url: &str) -> Vec<&str> {
    nats_url
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .collect()
}

/// A token cancelled on Ctrl-C or SIGTERM.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(term) => term,
                    Err(error) => {
                        tracing::warn!(%error, "cannot listen for SIGTERM; Ctrl-C only");
                        let _ = ctrl_c.await;
                        cancel.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested");
        cancel.cancel();
    });
    token
}

/// A service binary's `main`, once telemetry is up: reads its
/// configuration with `from_env`, binds the address `listen_addr` picks
/// from it, and runs `run` on that listener until Ctrl-C or SIGTERM. Every
/// failure is logged (`name` says what stopped, e.g. `"auth service"`) and
/// exits with [`ExitCode::FAILURE`]; a clean stop exits with
/// [`ExitCode::SUCCESS`].
///
/// ```text
/// let _telemetry = telemetry::init("auth");
/// lifecycle::serve_binary("auth service", Config::from_env, |c| &c.listen_addr, run).await
/// ```
pub async fn serve_binary<C, CE, R, Fut, RE>(
    name: &str,
    from_env: impl FnOnce() -> Result<C, CE>,
    listen_addr: impl FnOnce(&C) -> &str,
    run: R,
) -> ExitCode
where
    CE: Display,
    R: FnOnce(C, TcpListener, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), RE>>,
    RE: Display,
{
    let config = match from_env() {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%error, "invalid configuration");
            return ExitCode::FAILURE;
        }
    };
    let addr = listen_addr(&config).to_owned();
    let listener = match TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, %addr, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    match run(config, listener, shutdown_on_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "{name} stopped with an error");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nats_url_may_list_a_cluster() {
        assert_eq!(server_list("nats://a:4222"), ["nats://a:4222"]);
        assert_eq!(
            server_list("nats://a:4222, nats://b:4222,,nats://c:4222 "),
            ["nats://a:4222", "nats://b:4222", "nats://c:4222"]
        );
    }
}
