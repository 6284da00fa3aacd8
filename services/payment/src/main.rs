//! The payment service binary: configuration from the environment, a
//! listener, and `stocklet_payment::run` until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use stocklet_payment::{config_from_env, run};
use stocklet_service_kit::{lifecycle, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let _telemetry = telemetry::init("payment");
    lifecycle::serve_binary("payment service", config_from_env, |c| &c.listen_addr, run).await
}
