//! The gateway binary: configuration from the environment, a listener, and
//! `stocklet_gateway::run` until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use stocklet_gateway::{Config, run};
use stocklet_service_kit::{lifecycle, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let _telemetry = telemetry::init("gateway");
    lifecycle::serve_binary("gateway", Config::from_env, |c| &c.listen_addr, run).await
}
