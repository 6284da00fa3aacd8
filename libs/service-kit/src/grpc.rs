//! Serving a service over gRPC, the same way in every binary and test.
//!
//! Every service gets standard gRPC health (`grpc.health.v1`, reporting
//! SERVING while it runs, NOT_SERVING while one of its consumers is down
//! (see [`ConsumerHealth`]) and once shutdown starts) and
//! reflection (`grpc.reflection.v1` and `v1alpha`, from the shared
//! descriptor set, listing exactly the services this port serves, health
//! and reflection included, so `grpcurl` works without the .proto files). The listener comes from the
//! caller: binaries bind the configured address, tests bind port 0.
//!
//! Every call runs in a `grpc` span that is the child of the caller's span
//! (W3C `traceparent`/`tracestate` metadata, see
//! [`telemetry::inject_trace`](crate::telemetry::inject_trace)), so a trace
//! continues across services without per-service code. The same port also
//! answers plain HTTP/1 `GET /metrics` (Prometheus text, see
//! [`metrics`](crate::metrics)).
//!
//! Every call is authenticated first (see
//! [`authentication`](crate::authentication)): a bearer token is verified,
//! or identity metadata trusted next to the internal token, and the caller
//! travels with the request. A unary call carrying `idempotency-key`
//! metadata is answered once and replayed after (see
//! [`idempotency`](crate::idempotency)), keyed by that caller. Both layers
//! sit inside the trace layer, so a refusal or a replay is traced like any
//! call.

use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::BoxFuture;

use es_core::envelope::{TRACEPARENT, TRACESTATE, link_span};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;

use crate::authentication::Authentication;
use crate::consumers::ConsumerHealth;
use crate::idempotency::Idempotency;
use tracing::Instrument;

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The reflection service could not be built from the descriptors.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The transport failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The standard health service every port serves.
pub const HEALTH_SERVICE: &str = "grpc.health.v1.Health";
/// The reflection service every port serves.
pub const REFLECTION_SERVICE: &str = "grpc.reflection.v1.ServerReflection";
/// The reflection service's earlier version, which every port serves too.
pub const REFLECTION_SERVICE_V1ALPHA: &str = "grpc.reflection.v1alpha.ServerReflection";
/// What every port serves besides its own services.
pub const ALWAYS_SERVED: [&str; 3] = [
    HEALTH_SERVICE,
    REFLECTION_SERVICE,
    REFLECTION_SERVICE_V1ALPHA,
];

/// Serves `routes` plus health and reflection on `listener` until
/// `shutdown`, then stops taking new calls and lets in-flight ones finish.
/// `service_names` are the full names the health service reports on:
/// SERVING while no consumer is down (`consumers`), NOT_SERVING otherwise.
/// `calls` tells who is calling and answers a repeated keyed call once
/// (see [`Calls`]).
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    service_names: &[&str],
    mut consumers: ConsumerHealth,
    calls: Calls,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let Calls {
        authentication,
        idempotency,
    } = calls;
    let purging = idempotency.purge_until(shutdown.clone());
    let (reporter, health) = tonic_health::server::health_reporter();
    let names: Vec<String> = service_names.iter().map(|n| (*n).to_owned()).collect();
    let report = {
        let (reporter, names) = (reporter.clone(), names.clone());
        move |status: ServingStatus| {
            let (reporter, names) = (reporter.clone(), names.clone());
            async move {
                for name in &names {
                    reporter.set_service_status(name.as_str(), status).await;
                }
            }
        }
    };
    let status_of = |down: usize| {
        if down == 0 {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        }
    };
    let down = *consumers.borrow_and_update();
    report(status_of(down)).await;
    let following = tokio::spawn({
        let (report, shutdown) = (report.clone(), shutdown.clone());
        async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    changed = consumers.changed() => if changed.is_err() { return },
                }
                let down = *consumers.borrow_and_update();
                if down > 0 {
                    tracing::error!(down, "a consumer is down; health says NOT_SERVING");
                }
                report(status_of(down)).await;
            }
        }
    });
    // Reflection lists exactly what this port serves (its services, health
    // and reflection itself), and resolves each of them, health included,
    // so a reflection-only client can call any of them. Both versions of
    // the protocol answer: `v1`, and `v1alpha`, which many clients still
    // speak first or only (grpcurl before 1.9, grpcio-reflection).
    let reflection = || {
        let mut builder = tonic_reflection::server::Builder::configure()
            .include_reflection_service(false)
            .register_encoded_file_descriptor_set(stocklet_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            );
        for name in service_names.iter().copied().chain(ALWAYS_SERVED) {
            builder = builder.with_service_name(name);
        }
        builder
    };
    let (reflection_v1, reflection_v1alpha) =
        (reflection().build_v1()?, reflection().build_v1alpha()?);
    crate::metrics::install();
    let routes = routes
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    let routes = Routes::from(
        routes
            .prepare()
            .into_axum_router()
            .route("/metrics", axum::routing::get(crate::metrics::serve)),
    );
    let stopping = async move {
        shutdown.cancelled().await;
        following.abort();
        report(ServingStatus::NotServing).await;
    };
    tonic::transport::Server::builder()
        .accept_http1(true)
        .layer(TraceContextLayer)
        .layer(StepLayer(authentication))
        .layer(StepLayer(idempotency))
        .add_routes(routes)
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), stopping)
        .await?;
    purging.abort();
    Ok(())
}

/// What every call passes through before its handler: who is calling, and
/// the idempotency store of keyed calls.
#[derive(Clone, Debug)]
pub struct Calls {
    /// Tells who is calling.
    pub authentication: Authentication,
    /// Answers a repeated keyed call with its first answer.
    pub idempotency: Idempotency,
}

/// A request as the steps of a call see it.
pub(crate) type GrpcRequest = http::Request<tonic::body::Body>;
/// A response as the steps of a call make it.
pub(crate) type GrpcResponse = http::Response<tonic::body::Body>;
/// The rest of the stack after a step (the steps after it and the
/// handler), made ready, with its own error type `E`.
pub(crate) type Next<E> = tower::util::BoxCloneService<GrpcRequest, GrpcResponse, E>;

/// An asynchronous step every call passes on its way to the handler (who
/// is calling, idempotency): it gets the request and the rest of the stack,
/// and either calls on or answers itself. [`StepLayer`] makes it a tower
/// layer, so the steps share the tower plumbing.
pub(crate) trait CallStep: Clone + Send + Sync + 'static {
    /// Handles `request`, calling `next` or answering itself.
    fn call<E: Send + 'static>(
        &self,
        next: Next<E>,
        request: GrpcRequest,
    ) -> BoxFuture<'static, Result<GrpcResponse, E>>;
}

/// The tower layer of a [`CallStep`].
#[derive(Clone, Debug)]
pub(crate) struct StepLayer<T>(pub(crate) T);

impl<T: Clone, S> tower::Layer<S> for StepLayer<T> {
    type Service = Step<T, S>;

    fn layer(&self, inner: S) -> Self::Service {
        Step {
            step: self.0.clone(),
            inner,
        }
    }
}

/// The service of [`StepLayer`].
#[derive(Clone, Debug)]
pub(crate) struct Step<T, S> {
    step: T,
    inner: S,
}

impl<T, S, B> tower::Service<GrpcRequest> for Step<T, S>
where
    T: CallStep,
    S: tower::Service<GrpcRequest, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    type Response = GrpcResponse;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<GrpcResponse, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: GrpcRequest) -> Self::Future {
        // The clone serves the next call; the one that was made ready
        // serves this one.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let next = tower::util::BoxCloneService::new(tower::ServiceExt::map_response(
            inner,
            |response: http::Response<B>| response.map(tonic::body::Body::new),
        ));
        self.step.call(next, request)
    }
}

/// Opens each call's `grpc` span as the child of the caller's trace context.
#[derive(Clone, Copy, Debug)]
struct TraceContextLayer;

impl<S> tower::Layer<S> for TraceContextLayer {
    type Service = TraceContext<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceContext { inner }
    }
}

#[derive(Clone, Debug)]
struct TraceContext<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for TraceContext<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = tracing::instrument::Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        let span = tracing::info_span!(
            "grpc",
            otel.name = path,
            otel.kind = "server",
            rpc = path,
            trace_id = tracing::field::Empty,
        );
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
        };
        link_span(&span, header(TRACEPARENT), header(TRACESTATE));
        let future = span.in_scope(|| self.inner.call(request));
        future.instrument(span)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::watch;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus as Reported;
    use tonic_health::pb::health_client::HealthClient;

    use super::*;
    use crate::config::Secret;
    use crate::idempotency::Idempotency;
    use crate::jwt::{JwtSettings, RemoteJwks, TokenVerifier};

    /// What every call passes through, with the auth service on a closed
    /// port (no test here sends a token).
    fn calls(pool: sqlx::PgPool) -> Calls {
        let auth = tonic::transport::Endpoint::from_static("http://127.0.0.1:9").connect_lazy();
        Calls {
            authentication: Authentication::new(
                TokenVerifier::new(JwtSettings::default(), RemoteJwks::new(auth)),
                Secret::new("t"),
            ),
            idempotency: Idempotency::new(pool, Duration::from_secs(60)),
        }
    }

    /// What health reports for `service`, once it answers as `expected`.
    async fn reported(
        client: &mut HealthClient<tonic::transport::Channel>,
        service: &str,
        expected: Reported,
    ) -> Reported {
        let mut last = Reported::Unknown;
        for _ in 0..100 {
            let answer = client
                .check(HealthCheckRequest {
                    service: service.to_owned(),
                })
                .await;
            if let Ok(answer) = answer {
                last = answer.into_inner().status();
                if last == expected {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        last
    }

    /// `serve` on a free port with no routes of its own, naming `served`:
    /// a client channel to it, the consumers' health sender, and how to
    /// stop it.
    struct TestServer {
        channel: tonic::transport::Channel,
        down: watch::Sender<usize>,
        shutdown: CancellationToken,
        serving: tokio::task::JoinHandle<Result<(), ServeError>>,
    }

    impl TestServer {
        async fn start(served: &'static [&'static str]) -> TestServer {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (down, health) = watch::channel(0usize);
            // Nothing here uses the database: a pool that never connects.
            let pool = sqlx::postgres::PgPoolOptions::new()
                .connect_lazy("postgres://nobody@127.0.0.1:9/none")
                .unwrap();
            let shutdown = CancellationToken::new();
            let serving = tokio::spawn(serve(
                listener,
                Routes::default(),
                served,
                health,
                calls(pool),
                shutdown.clone(),
            ));
            let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                .unwrap()
                .connect_lazy();
            TestServer {
                channel,
                down,
                shutdown,
                serving,
            }
        }
    }

    #[tokio::test]
    async fn reflection_lists_exactly_what_the_port_serves_and_resolves_health() {
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

        let TestServer {
            channel,
            shutdown,
            serving,
            ..
        } = TestServer::start(&["stocklet.product.v1.ProductService"]).await;
        let client = ServerReflectionClient::new(channel.clone());
        let ask = |request: MessageRequest| {
            let mut client = client.clone();
            async move {
                let requests = tonic::codegen::tokio_stream::iter([ServerReflectionRequest {
                    host: String::new(),
                    message_request: Some(request),
                }]);
                let mut answers = client
                    .server_reflection_info(requests)
                    .await
                    .unwrap()
                    .into_inner();
                answers.message().await.unwrap().unwrap().message_response
            }
        };
        let mut listed = Vec::new();
        for _ in 0..100 {
            if let Some(MessageResponse::ListServicesResponse(list)) =
                ask(MessageRequest::ListServices(String::new())).await
            {
                listed = list.service.into_iter().map(|s| s.name).collect::<Vec<_>>();
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        listed.sort();
        assert_eq!(
            listed,
            [
                HEALTH_SERVICE,
                REFLECTION_SERVICE,
                REFLECTION_SERVICE_V1ALPHA,
                "stocklet.product.v1.ProductService"
            ]
        );
        let health_file = ask(MessageRequest::FileContainingSymbol(HEALTH_SERVICE.into())).await;
        assert!(
            matches!(health_file, Some(MessageResponse::FileDescriptorResponse(ref f)) if !f.file_descriptor_proto.is_empty()),
            "{health_file:?}"
        );
        // The earlier version of the protocol lists the same.
        let mut alpha =
            tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient::new(
                channel,
            );
        let request = tonic_reflection::pb::v1alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest::ListServices(
                    String::new(),
                ),
            ),
        };
        let answer = alpha
            .server_reflection_info(tonic::codegen::tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner()
            .message()
            .await
            .unwrap()
            .unwrap()
            .message_response;
        let Some(
            tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(
                list,
            ),
        ) = answer
        else {
            panic!("{answer:?}");
        };
        let mut alpha_listed: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        alpha_listed.sort();
        assert_eq!(alpha_listed, listed);
        shutdown.cancel();
        serving.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn health_says_not_serving_while_a_consumer_is_down() {
        let TestServer {
            channel,
            down,
            shutdown,
            serving,
        } = TestServer::start(&["test.v1.Thing"]).await;
        let mut client = HealthClient::new(channel);
        let service = "test.v1.Thing";
        assert_eq!(
            reported(&mut client, service, Reported::Serving).await,
            Reported::Serving
        );
        down.send_replace(1);
        assert_eq!(
            reported(&mut client, service, Reported::NotServing).await,
            Reported::NotServing
        );
        down.send_replace(0);
        assert_eq!(
            reported(&mut client, service, Reported::Serving).await,
            Reported::Serving
        );
        shutdown.cancel();
        serving.await.unwrap().unwrap();
    }
}
