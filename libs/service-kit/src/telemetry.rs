//! Logs and traces, set up the same way by every binary.
//!
//! - Logs: `LOG_FORMAT=json` gives one JSON object per line (for log
//!   shippers), anything else a human-readable format. `RUST_LOG` filters as
//!   usual; the default quiets hyper, h2 and tower. The spans Stocklet opens
//!   (gRPC request, command, handled event) carry a `trace_id` field, so
//!   every log line inside them names its trace, in both formats.
//! - Traces: an OpenTelemetry layer is always installed, so trace context is
//!   created and propagated (gRPC metadata, NATS headers) whether or not this
//!   process exports. Spans are exported over OTLP/gRPC only when
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` is set; `OTEL_SERVICE_NAME` names the
//!   service (default: the binary's). No endpoint means no exporter and no
//!   error.
//! - [`init`] returns a guard that flushes the exporter when dropped: keep
//!   it for the life of `main`.
//!
//! Calling [`init`] twice (the all-in-one binary) keeps the first setup.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tonic::metadata::{MetadataMap, MetadataValue};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Default filter when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info,h2=warn,hyper=warn,tower=warn,async_nats=warn,sqlx=warn";

/// Flushes and stops the span exporter when dropped.
#[must_use = "dropping the guard stops exporting spans"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "could not flush the span exporter");
        }
    }
}

/// Installs the global subscriber (logs plus OpenTelemetry) once, exporting
/// spans when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. `default_service` names
/// the service when `OTEL_SERVICE_NAME` is unset.
pub fn init(default_service: &str) -> TelemetryGuard {
    let (provider, exporter_error) = tracer_provider(default_service);
    let installed = install(&provider);
    crate::metrics::install();
    if let Some(error) = exporter_error {
        tracing::error!(%error, "cannot build the OTLP span exporter; spans are not exported");
    }
    TelemetryGuard {
        provider: installed.then_some(provider),
    }
}

/// A tracer provider for this service: with an OTLP/gRPC batch exporter when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the exporter reads the standard
/// `OTEL_EXPORTER_OTLP_*` variables itself), without one otherwise. Also
/// returns why the exporter could not be built, if it could not.
pub fn tracer_provider(default_service: &str) -> (SdkTracerProvider, Option<String>) {
    let service = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| default_service.to_owned());
    let mut builder = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(service).build());
    let mut error = None;
    if std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").is_ok_and(|e| !e.trim().is_empty()) {
        match opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
        {
            Ok(exporter) => builder = builder.with_batch_exporter(exporter),
            Err(e) => error = Some(e.to_string()),
        }
    }
    (builder.build(), error)
}

/// Installs the global subscriber with `provider`'s tracer: the env filter,
/// the OpenTelemetry layer and the log formatter. Returns false when a
/// subscriber was already installed (which is then kept). Tests use it with
/// a provider that exports to memory.
pub fn install(provider: &SdkTracerProvider) -> bool {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|f| f == "json");
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("stocklet"));
    tracing_subscriber::registry()
        .with(filter)
        .with(otel)
        .with(json.then(|| tracing_subscriber::fmt::layer().json()))
        .with((!json).then(tracing_subscriber::fmt::layer))
        .try_init()
        .is_ok()
}

/// Writes the current span's W3C trace context into outgoing gRPC metadata
/// (`traceparent`, `tracestate`), so the callee's request span is its child.
pub fn inject_trace(metadata: &mut MetadataMap) {
    let Some((traceparent, tracestate)) = es_core::envelope::current_trace() else {
        return;
    };
    if let Ok(value) = MetadataValue::try_from(traceparent.as_str()) {
        metadata.insert(es_core::envelope::TRACEPARENT, value);
    }
    if let Some(state) = tracestate
        && let Ok(value) = MetadataValue::try_from(state.as_str())
    {
        metadata.insert(es_core::envelope::TRACESTATE, value);
    }
}

/// Records `span`'s trace id in its `trace_id` field (declare it
/// `tracing::field::Empty`), for spans a service opens itself.
pub fn record_trace_id(span: &tracing::Span) {
    es_core::envelope::record_trace_id(span, None);
}
