//! The auth service binary: configuration from the environment, a
//! listener, and `stocklet_auth::run` until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use stocklet_auth::{Config, run};
use stocklet_service_kit::{lifecycle, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let _telemetry = telemetry::init("auth");
    lifecycle::serve_binary("auth service", Config::from_env, |c| &c.listen_addr, run).await
}
