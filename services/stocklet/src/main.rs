//! `stocklet`: every service in one process, each on its own gRPC port, and
//! the REST/JSON gateway in front of them.
//!
//! It runs exactly the `run` functions the per-service binaries run, with
//! the same environment variables, so what `make run` starts is what the
//! containers start. If one service fails, the others are stopped too and
//! the process exits non-zero; Ctrl-C or SIGTERM stops them all gracefully.
//!
//! With `STOCKLET_SEED=true` it also seeds demo data once every service is
//! started (see [`seed`]); the auth service's start-up admin then defaults to
//! the demo admin.
//!
//! `stocklet dlq list|show|replay|discard` shows and operates the
//! dead-letter stream (see [`dlq`]).
//!
//! `stocklet provision` first creates or updates every stream and the
//! snapshot bucket, as the NATS user `provision` (services may only look
//! streams up: `nats/permissions.conf`); then it starts every service on a
//! private port and stops it at once: each runs its migrations and creates
//! its durable consumers, as its own NATS user. That is what a deployment's
//! one-shot init needs, before any service starts (the services would run
//! their migrations and create their consumers themselves, but not all at
//! the same moment and not before anyone depends on them). It exits 0 once
//! all are done.

mod dlq;
mod seed;

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;

use stocklet_service_kit::config::{CommonConfig, PROVISION_NATS_USER};
use stocklet_service_kit::{ConfigError, lifecycle, provision, telemetry};
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

/// Creates or updates every stream and the snapshot bucket, as the NATS
/// user `provision` (the services may only look them up).
async fn provision_streams() -> Result<(), String> {
    let config = CommonConfig::from_env().map_err(|e| e.to_string())?;
    let credentials = config
        .nats_passwords
        .credentials(PROVISION_NATS_USER)
        .map_err(|e| e.to_string())?;
    let client = lifecycle::connect(&config.nats_url, &credentials)
        .await
        .map_err(|e| e.to_string())?;
    provision::provision(&client, config.stream_replicas)
        .await
        .map_err(|e| e.to_string())?;
    // Every ack before the process exits.
    client.flush().await.map_err(|e| e.to_string())?;
    tracing::info!(replicas = config.stream_replicas, "streams provisioned");
    Ok(())
}

/// Starts one service as a task named `name`; returns where it listens.
async fn start<C, F, Fut, E>(
    tasks: &mut JoinSet<(&'static str, Result<(), String>)>,
    name: &'static str,
    config: Result<C, ConfigError>,
    listen_addr: impl Fn(&C) -> String,
    run: F,
    shutdown: &CancellationToken,
) -> Result<SocketAddr, StartError>
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
    let bound = listener
        .local_addr()
        .map_err(|e| StartError::Listen(name, addr.clone(), e))?;
    tracing::info!(service = name, %addr, "starting");
    let running = run(config, listener, shutdown.clone());
    tasks.spawn(async move { (name, running.await.map_err(|e| e.to_string())) });
    Ok(bound)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // An operator's command: its output alone on stdout, no service logs.
    if args.first().map(String::as_str) == Some("dlq") {
        return dlq::main(&args[1..]).await;
    }
    let _telemetry = telemetry::init("stocklet");
    let provision_only = match args.first().map(String::as_str) {
        None => false,
        Some("provision") => true,
        Some(other) => {
            eprintln!("usage: stocklet [provision | dlq ...]  (unknown argument {other:?})");
            return ExitCode::FAILURE;
        }
    };
    if provision_only && let Err(error) = provision_streams().await {
        tracing::error!(%error, "cannot provision the streams");
        return ExitCode::FAILURE;
    }
    let shutdown = lifecycle::shutdown_on_signal();
    let mut tasks = JoinSet::new();
    // Each service is started by its own crate's `run`, from its own
    // environment variables.
    macro_rules! start_service {
        ($name:literal, $service:ident) => {
            start_service!($name, $service, $service::Config::from_env())
        };
        ($name:literal, $service:ident, $config:expr) => {
            start(
                &mut tasks,
                $name,
                $config,
                |c| {
                    if provision_only {
                        "127.0.0.1:0".to_owned()
                    } else {
                        c.listen_addr.clone()
                    }
                },
                $service::run,
                &shutdown,
            )
            .await
        };
    }
    let started = async {
        let seeding =
            !provision_only && seed::enabled().map_err(|e| StartError::Config("seed", e))?;
        // Seeding needs an admin who can log in: the demo admin by default.
        let auth_config = stocklet_auth::Config::from_env().map(|mut config| {
            if seeding {
                config.admin.get_or_insert_with(seed::demo_admin);
            }
            config
        });
        let admin_email = auth_config
            .as_ref()
            .ok()
            .and_then(|c| c.admin.as_ref())
            .map(|admin| admin.email.clone());
        start_service!("auth", stocklet_auth, auth_config)?;
        let user = start_service!("user", stocklet_user)?;
        let product = start_service!(
            "product",
            stocklet_product,
            stocklet_product::config_from_env()
        )?;
        let warehouse = start_service!(
            "warehouse",
            stocklet_warehouse,
            stocklet_warehouse::config_from_env()
        )?;
        start_service!("order", stocklet_order)?;
        let payment = start_service!(
            "payment",
            stocklet_payment,
            stocklet_payment::config_from_env()
        )?;
        start_service!("shipping", stocklet_shipping)?;
        if !provision_only {
            start_service!("gateway", stocklet_gateway)?;
        }
        let endpoints = seed::Endpoints {
            user,
            product,
            warehouse,
            payment,
        };
        Ok::<_, StartError>(
            admin_email
                .filter(|_| seeding)
                .map(|email| (endpoints, email)),
        )
    }
    .await;
    let seed_with = match started {
        Ok(seed_with) => seed_with,
        Err(error) => {
            tracing::error!(%error, "cannot start");
            shutdown.cancel();
            while tasks.join_next().await.is_some() {}
            return ExitCode::FAILURE;
        }
    };
    if provision_only {
        // Every `run` provisions before it serves; a cancelled token makes
        // each stop as soon as it would start serving.
        shutdown.cancel();
    }
    if let Some((endpoints, admin_email)) = seed_with {
        let shutdown = shutdown.clone();
        // Not a service: a failed seed is logged, the services keep running.
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                seeded = seed::run(&endpoints, &admin_email) => match seeded {
                    Ok(seeded) => tracing::info!(?seeded, "demo data seeded"),
                    Err(error) => tracing::error!(%error, "seeding demo data failed"),
                },
            }
        });
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
        if provision_only {
            tracing::info!("streams, schemas and consumers are provisioned");
        }
        ExitCode::SUCCESS
    }
}
