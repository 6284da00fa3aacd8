//! Calling the services: one lazily connected gRPC channel per backend and
//! service-kit's codec for `prost_reflect::DynamicMessage`, so one generic
//! call serves every route with no generated client per method.

use std::collections::BTreeMap;
use std::time::Duration;

use prost_reflect::DynamicMessage;
use stocklet_service_kit::dynamic::DynamicCodec;
use stocklet_service_kit::telemetry;
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};
use tracing::Instrument;

use crate::routes::Route;

/// A backend URL that is not a valid endpoint.
#[derive(Debug, thiserror::Error)]
#[error("backend {name} has an invalid URL {url:?}: {reason}")]
pub struct BackendError {
    /// The backend, for example `product`.
    pub name: String,
    /// Its URL.
    pub url: String,
    /// Why it is invalid.
    pub reason: String,
}

/// The gRPC channels to the services, by backend name.
#[derive(Clone, Debug)]
pub struct Backends {
    channels: BTreeMap<String, Channel>,
}

impl Backends {
    /// Prepares a channel per backend; none connects until it is used.
    pub fn new(
        urls: &BTreeMap<String, String>,
        connect_timeout: Duration,
    ) -> Result<Self, BackendError> {
        let mut channels = BTreeMap::new();
        for (name, url) in urls {
            let endpoint = Endpoint::from_shared(url.clone())
                .map_err(|e| BackendError {
                    name: name.clone(),
                    url: url.clone(),
                    reason: e.to_string(),
                })?
                .connect_timeout(connect_timeout);
            channels.insert(name.clone(), endpoint.connect_lazy());
        }
        Ok(Self { channels })
    }

    /// The channel of `backend`, if configured.
    pub fn channel(&self, backend: &str) -> Option<Channel> {
        self.channels.get(backend).cloned()
    }

    /// Every backend's name and channel.
    pub fn all(&self) -> impl Iterator<Item = (&str, &Channel)> {
        self.channels
            .iter()
            .map(|(name, channel)| (name.as_str(), channel))
    }

    /// Calls `route`'s method with `message` and `metadata`, within
    /// `timeout`.
    pub async fn unary(
        &self,
        route: &Route,
        message: DynamicMessage,
        metadata: MetadataMap,
        timeout: Duration,
    ) -> Result<tonic::Response<DynamicMessage>, Status> {
        let channel = self
            .channel(&route.backend)
            .ok_or_else(|| Status::unavailable(format!("no backend {}", route.backend)))?;
        let path = format!(
            "/{}/{}",
            route.method.parent_service().full_name(),
            route.method.name()
        );
        let path = path
            .parse()
            .map_err(|_| Status::internal(format!("bad gRPC path {path}")))?;
        let mut request = Request::from_parts(metadata, tonic::Extensions::new(), message);
        request.set_timeout(timeout);
        // The gateway's span roots the trace; the backend's is its child.
        let span = tracing::info_span!(
            "gateway",
            otel.name = %path,
            otel.kind = "client",
            backend = %route.backend,
            trace_id = tracing::field::Empty,
        );
        telemetry::record_trace_id(&span);
        span.in_scope(|| telemetry::inject_trace(request.metadata_mut()));
        let mut grpc = tonic::client::Grpc::new(channel);
        let call = async {
            grpc.ready()
                .await
                .map_err(|e| Status::unavailable(format!("backend not ready: {e}")))?;
            grpc.unary(request, path, DynamicCodec(route.method.output()))
                .await
        };
        match tokio::time::timeout(timeout, call.instrument(span)).await {
            Ok(result) => result.map_err(unreachable_is_unavailable),
            Err(_) => Err(Status::deadline_exceeded(
                "the backend did not answer in time",
            )),
        }
    }
}

/// A status the client side made up because the connection failed (the
/// backend was down, or died or restarted mid-call) is `Unavailable`, so
/// the client hears 503 "try again", not 500.
///
/// tonic turns such failures into `Unknown` ("transport error"),
/// `Internal` ("h2 protocol error: ..."), or `Cancelled`, the same codes a
/// backend may send on purpose. What tells them apart: a status built from
/// a local error keeps that error as its source (or, for an h2 reset,
/// carries tonic's `h2 protocol error` message), while a status received
/// from a backend has neither.
fn unreachable_is_unavailable(status: Status) -> Status {
    let mut causes = std::iter::successors(std::error::Error::source(&status), |e| e.source());
    let local = std::error::Error::source(&status).is_some()
        || status.message().starts_with("h2 protocol error");
    // The call's own deadline (grpc-timeout) is a timeout, not a lost
    // connection: it stays CANCELLED, which the client hears as a timeout.
    if causes.any(|cause| cause.is::<tonic::TimeoutExpired>()) {
        return status;
    }
    match status.code() {
        tonic::Code::Unknown | tonic::Code::Internal | tonic::Code::Cancelled if local => {
            tracing::warn!(code = ?status.code(), cause = %status.message(), "the backend connection failed");
            Status::unavailable(format!("backend connection failed: {}", status.message()))
        }
        _ => status,
    }
}
