//! The Prometheus registry behind every service's `GET /metrics`.
//!
//! es-core records through the `metrics` facade (command counts and
//! latency, consumer pending and redeliveries, projection lag, dead
//! letters); this module installs the process-wide Prometheus recorder that
//! keeps them and renders the text format. It is served on each service's
//! gRPC port by [`crate::grpc::serve`] and on the gateway's HTTP port, so
//! there is no extra port to open. One process holds one registry: the
//! all-in-one binary shows every service's series on each endpoint, told
//! apart by their labels.

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder once per process (later calls do nothing) and
/// starts its upkeep, which folds histogram samples even when nobody
/// scrapes. Returns false if another recorder was installed first.
pub fn install() -> bool {
    use_stocklet_names();
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(handle) => {
                let upkeep = handle.clone();
                let started = std::thread::Builder::new()
                    .name("metrics-upkeep".into())
                    .spawn(move || {
                        loop {
                            std::thread::sleep(Duration::from_secs(5));
                            upkeep.run_upkeep();
                        }
                    });
                if let Err(error) = started {
                    tracing::warn!(%error, "cannot start metrics upkeep; histograms fold on scrape only");
                }
                Some(handle)
            }
            Err(error) => {
                tracing::warn!(%error, "cannot install the Prometheus recorder; /metrics stays empty");
                None
            }
        })
        .is_some()
}

/// The current metrics in the Prometheus text format.
pub fn render() -> String {
    install();
    HANDLE
        .get()
        .and_then(Option::as_ref)
        .map(PrometheusHandle::render)
        .unwrap_or_default()
}

/// `GET /metrics`.
pub async fn serve() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render(),
    )
        .into_response()
}

/// Names es-core's metrics `stocklet_*` (the names the dashboards and the
/// README use). Call before anything is recorded; later calls do nothing.
pub fn use_stocklet_names() {
    es_core::metrics::set_prefix(METRIC_PREFIX);
}

/// The prefix of every Stocklet metric.
pub const METRIC_PREFIX: &str = "stocklet";
