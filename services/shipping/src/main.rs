//! The shipping service binary: configuration from the environment, a
//! listener, and `stocklet_shipping::run` until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use stocklet_service_kit::{lifecycle, telemetry};
use stocklet_shipping::{Config, run};

#[tokio::main]
async fn main() -> ExitCode {
    let _telemetry = telemetry::init("shipping");
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%error, "invalid configuration");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(&config.listen_addr).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, addr = %config.listen_addr, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    match run(config, listener, lifecycle::shutdown_on_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "shipping service stopped with an error");
            ExitCode::FAILURE
        }
    }
}
