//! The product service binary: configuration from the environment, a
//! listener, and `stocklet_product::run` until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use stocklet_product::{config_from_env, run};
use stocklet_service_kit::{lifecycle, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let _telemetry = telemetry::init("product");
    lifecycle::serve_binary("product service", config_from_env, |c| &c.listen_addr, run).await
}
