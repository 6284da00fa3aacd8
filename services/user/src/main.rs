//! The user service binary: configuration from the environment, a
//! listener, and `stocklet_user::run` until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use stocklet_service_kit::{lifecycle, telemetry};
use stocklet_user::{Config, run};

#[tokio::main]
async fn main() -> ExitCode {
    let _telemetry = telemetry::init("user");
    lifecycle::serve_binary("user service", Config::from_env, |c| &c.listen_addr, run).await
}
