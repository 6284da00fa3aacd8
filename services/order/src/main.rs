//! The order service binary: configuration from the environment, a
//! listener, and `stocklet_order::run` until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use stocklet_order::{Config, run};
use stocklet_service_kit::{lifecycle, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let _telemetry = telemetry::init("order");
    lifecycle::serve_binary("order service", Config::from_env, |c| &c.listen_addr, run).await
}
