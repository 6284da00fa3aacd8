//! The warehouse service binary: configuration from the environment, a
//! listener, and `stocklet_warehouse::run` until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use stocklet_service_kit::{lifecycle, telemetry};
use stocklet_warehouse::{config_from_env, run};

#[tokio::main]
async fn main() -> ExitCode {
    let _telemetry = telemetry::init("warehouse");
    lifecycle::serve_binary(
        "warehouse service",
        config_from_env,
        |c| &c.listen_addr,
        run,
    )
    .await
}
