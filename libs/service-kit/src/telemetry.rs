//! Tracing setup shared by every binary.
//!
//! `LOG_FORMAT=json` gives one JSON object per line (for log shippers),
//! anything else a human-readable format. `RUST_LOG` filters as usual; the
//! default quiets hyper, h2 and tower. Calling it twice (the all-in-one
//! binary runs every service in one process) is harmless.

use tracing_subscriber::EnvFilter;

/// Default filter when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info,h2=warn,hyper=warn,tower=warn,async_nats=warn,sqlx=warn";

/// Installs the global subscriber once.
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let installed = if std::env::var("LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // Already installed by another service in this process: keep that one.
    let _ = installed;
}
