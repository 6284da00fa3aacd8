//! `stocklet`: every service in one process, each on its own gRPC port, and
//! the REST/JSON gateway in front of them.
//!
//! It runs exactly the `run` functions the per-service binaries run, with
//! the same environment variables, so what `make run` starts is what the
//! containers start. If one service fails, the others are stopped too and
//! the process exits non-zero; Ctrl-C or SIGTERM stops them all gracefully.

use std::future::Future;
use std::process::ExitCode;

use stocklet_service_kit::lifecycle;
use stocklet_service_kit::{ConfigError, telemetry};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Why a service could not be started.
#[derive(Debug)]
enum StartError {
    Config(&'static str, ConfigError),
    Listen(&'static str, String, std::io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Config(service, error) => write!(f, "{service}: {error}"),
            Self::Listen(service, addr, error) => {
                write!(f, "{service}: cannot listen on {addr}: {error}")
            }
        }
    }
}

/// Starts one service as a task named `name`.
async fn start<C, F, Fut, E>(
    tasks: &mut JoinSet<(&'static str, Result<(), String>)>,
    name: &'static str,
    config: Result<C, ConfigError>,
    listen_addr: impl Fn(&C) -> String,
    run: F,
    shutdown: &CancellationToken,
) -> Result<(), StartError>
where
    F: FnOnce(C, TcpListener, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    let config = config.map_err(|e| StartError::Config(name, e))?;
    let addr = listen_addr(&config);
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|e| StartError::Listen(name, addr.clone(), e))?;
    tracing::info!(service = name, %addr, "starting");
    let running = run(config, listener, shutdown.clone());
    tasks.spawn(async move { (name, running.await.map_err(|e| e.to_string())) });
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init();
    let shutdown = lifecycle::shutdown_on_signal();
    let mut tasks = JoinSet::new();
    // Each service is started by its own crate's `run`, from its own
    // environment variables.
    macro_rules! start_service {
        ($name:literal, $service:ident) => {
            start(
                &mut tasks,
                $name,
                $service::Config::from_env(),
                |c| c.listen_addr.clone(),
                $service::run,
                &shutdown,
            )
            .await
        };
    }
    let started = async {
        start_service!("auth", stocklet_auth)?;
        start_service!("user", stocklet_user)?;
        start_service!("product", stocklet_product)?;
        start_service!("warehouse", stocklet_warehouse)?;
        start_service!("order", stocklet_order)?;
        start_service!("payment", stocklet_payment)?;
        start_service!("shipping", stocklet_shipping)?;
        start_service!("gateway", stocklet_gateway)?;
        Ok::<(), StartError>(())
    }
    .await;
    if let Err(error) = started {
        tracing::error!(%error, "cannot start");
        shutdown.cancel();
        while tasks.join_next().await.is_some() {}
        return ExitCode::FAILURE;
    }

    let mut failed = false;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((name, Ok(()))) => tracing::info!(service = name, "stopped"),
            Ok((name, Err(error))) => {
                tracing::error!(service = name, %error, "failed; stopping every service");
                failed = true;
                shutdown.cancel();
            }
            Err(error) => {
                tracing::error!(%error, "a service task panicked; stopping every service");
                failed = true;
                shutdown.cancel();
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
