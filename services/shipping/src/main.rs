//! The shipping service binary: configuration from the environment, a
//! listener, and `stocklet_shipping::run` until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use stocklet_service_kit::{lifecycle, telemetry};
use stocklet_shipping::{Config, run};

#[tokio::main]
async fn main() -> ExitCode {
    let _telemetry = telemetry::init("shipping");
    lifecycle::serve_binary(
        "shipping service",
        Config::from_env,
        |c| &c.listen_addr,
        run,
    )
    .await
}
