//! The HTTP side: axum in front of the generic gRPC call.
//!
//! Every API request goes through `api`, in this order: find the route
//! (404/405), authenticate (401), authorise at the edge (401 for a private
//! route without a token), rate-limit (429), read the body within the limit
//! (413), transcode (400), spend the target account's budget for a
//! password check (429), call the backend within the timeout, and answer
//! JSON. A command's `Idempotency-Key` header is checked (400) and sent on
//! as `idempotency-key` metadata; the service answers a repeat with the
//! first answer (see `stocklet_service_kit::idempotency`), which the
//! gateway marks `Idempotent-Replayed: true`. The services still authorise every call themselves; the gateway
//! only adds a first, cheap wall. `/healthz`, `/readyz` and `/openapi.json`
//! are the gateway's own routes. Every response passes `access_log`,
//! which logs method, path, status, latency, client and user id: never
//! headers, query strings or bodies, so tokens and passwords stay out of
//! the logs.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, StatusCode, header};
use prost_reflect::DescriptorPool;
use serde_json::json;
use stocklet_service_kit::Identity;
use stocklet_service_kit::api;
use stocklet_service_kit::idempotency::{self, IdempotencyKey};
use stocklet_service_kit::jwt::{RemoteJwks, TokenVerifier};
use tonic::Code;
use tonic::metadata::MetadataMap;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::backend::Backends;
use crate::errors::ApiError;
use crate::ratelimit::{RateLimiter, TrustedProxies, address_key, retry_after_seconds};
use crate::routes::{Lookup, RouteTable};
use crate::{Config, policy, transcode};

/// Everything a request needs, shared by all requests.
#[derive(Debug)]
pub struct Gateway {
    routes: RouteTable,
    backends: Backends,
    verifier: TokenVerifier,
    limits: Limits,
    body_limit: usize,
    timeout: Duration,
    openapi: Bytes,
    /// Full gRPC service names per backend, for `/readyz`.
    health_names: Vec<(String, String)>,
}

impl Gateway {
    /// Builds the gateway from the descriptors and `config`.
    pub fn new(config: &Config, pool: &DescriptorPool) -> Result<Self, crate::StartError> {
        let routes = RouteTable::from_pool(pool)?;
        let backends = Backends::new(&config.backends, config.connect_timeout)?;
        let auth = backends
            .channel("auth")
            .ok_or_else(|| crate::StartError::Config("no auth backend configured".into()))?;
        let openapi = crate::openapi::document(&routes, policy::is_public).to_string();
        let health_names: Vec<(String, String)> = routes
            .routes()
            .iter()
            .map(|r| {
                (
                    r.backend.clone(),
                    r.method.parent_service().full_name().to_owned(),
                )
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        Ok(Self {
            routes,
            verifier: TokenVerifier::new(config.jwt.clone(), RemoteJwks::new(auth)),
            backends,
            limits: Limits::new(config),
            body_limit: config.body_limit_bytes,
            timeout: config.request_timeout,
            openapi: Bytes::from(openapi),
            health_names,
        })
    }
}

/// The rate limits (see `policy::Budget` for which method spends which).
#[derive(Debug)]
struct Limits {
    /// Per method and client address, or signed-in caller.
    per_client: RateLimiter,
    /// Failed password checks per target account.
    per_account: RateLimiter,
    /// Registrations per client address.
    registrations: RateLimiter,
    /// Whose `X-Forwarded-For` names the client.
    proxies: TrustedProxies,
}

impl Limits {
    fn new(config: &Config) -> Self {
        let hour = Duration::from_secs(3600);
        Self {
            per_client: RateLimiter::new(config.rate_limit_per_minute, config.rate_limit_burst),
            per_account: RateLimiter::per_period(
                config.account_rate_limit_per_hour,
                hour,
                config.account_rate_limit_burst,
            ),
            registrations: RateLimiter::per_period(
                config.register_rate_limit_per_hour,
                hour,
                config.register_rate_limit_burst,
            ),
            proxies: config.trusted_proxies.clone(),
        }
    }

    /// Spends the budgets of `method` that need only the caller and the
    /// client's address (every one but the account's), or says how long
    /// to wait.
    fn check_client(
        &self,
        method: &str,
        budgets: &[policy::Budget],
        client: IpAddr,
        identity: &Identity,
    ) -> Result<(), ApiError> {
        let address = address_key(client);
        let now = Instant::now();
        for budget in budgets {
            let (limiter, key) = match budget {
                policy::Budget::Address => (&self.per_client, format!("{method}|ip:{address}")),
                policy::Budget::Caller => match identity {
                    Identity::User { user_id, .. } => {
                        (&self.per_client, format!("{method}|user:{user_id}"))
                    }
                    Identity::Anonymous => (&self.per_client, format!("{method}|ip:{address}")),
                },
                policy::Budget::Registration => (&self.registrations, format!("ip:{address}")),
                policy::Budget::Account => continue,
            };
            limiter
                .check(&key, now)
                .map_err(|wait| ApiError::rate_limited(retry_after_seconds(wait)))?;
        }
        Ok(())
    }
}

/// The user id of a request, handed from [`api`] to [`access_log`].
#[derive(Clone, Debug)]
struct LoggedUser(String);

/// The axum application.
pub fn router(gateway: Arc<Gateway>, cors_origins: &[String]) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi))
        .route("/metrics", get(stocklet_service_kit::metrics::serve))
        .fallback(api)
        .with_state(gateway)
        .layer(middleware::from_fn(access_log));
    if !cors_origins.is_empty() {
        let origins = if cors_origins.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(
                cors_origins
                    .iter()
                    .filter_map(|o| HeaderValue::from_str(o).ok()),
            )
        };
        router = router.layer(
            CorsLayer::new()
                .allow_origin(origins)
                .allow_methods([
                    http::Method::GET,
                    http::Method::POST,
                    http::Method::PUT,
                    http::Method::PATCH,
                    http::Method::DELETE,
                ])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    http::HeaderName::from_static(IDEMPOTENCY_KEY),
                    http::HeaderName::from_static(REQUEST_ID),
                ])
                .expose_headers([
                    header::RETRY_AFTER,
                    http::HeaderName::from_static(IDEMPOTENT_REPLAYED),
                    http::HeaderName::from_static(REQUEST_ID),
                ])
                .max_age(Duration::from_secs(600)),
        );
    }
    router
}

async fn healthz() -> Response {
    json_response(StatusCode::OK, json!({"status": "ok"}).to_string().into())
}

async fn openapi(State(gateway): State<Arc<Gateway>>) -> Response {
    json_response(StatusCode::OK, gateway.openapi.clone())
}

/// 200 when every backend reports SERVING on gRPC health, else 503, with
/// each backend's state.
async fn readyz(State(gateway): State<Arc<Gateway>>) -> Response {
    let checks = gateway.health_names.iter().map(|(backend, service)| {
        let channel = gateway.backends.channel(backend);
        let (backend, service) = (backend.clone(), service.clone());
        async move {
            let serving = match channel {
                Some(channel) => {
                    let mut client = HealthClient::new(channel);
                    let call = client.check(HealthCheckRequest { service });
                    matches!(
                        tokio::time::timeout(Duration::from_secs(2), call).await,
                        Ok(Ok(response)) if response.get_ref().status == ServingStatus::Serving as i32
                    )
                }
                None => false,
            };
            (backend, serving)
        }
    });
    let results = futures_join_all(checks).await;
    let ready = results.iter().all(|(_, serving)| *serving);
    let backends: serde_json::Map<String, serde_json::Value> = results
        .into_iter()
        .map(|(name, serving)| (name, json!(if serving { "serving" } else { "not serving" })))
        .collect();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({"status": if ready { "ready" } else { "not ready" }, "backends": backends});
    json_response(status, body.to_string().into())
}

/// Runs the checks concurrently (a handful of futures; no extra crate).
async fn futures_join_all<F, T>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        if let Ok(value) = handle.await {
            out.push(value);
        }
    }
    out
}

/// Every REST route of the services.
async fn api(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let mut user = None;
    // One deadline for the whole request: reading a slow body included.
    let handled = tokio::time::timeout(gateway.timeout, handle(&gateway, peer, request, &mut user))
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::new(
                Code::DeadlineExceeded,
                "the request timed out",
            ))
        });
    let mut response = match handled {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    if let Some(user) = user {
        response.extensions_mut().insert(LoggedUser(user));
    }
    response
}

async fn handle(
    gateway: &Gateway,
    peer: SocketAddr,
    request: Request,
    user: &mut Option<String>,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let (route, path_vars) = match gateway.routes.lookup(&parts.method, parts.uri.path()) {
        Lookup::Found(route, vars) => (route, vars),
        Lookup::MethodNotAllowed(allowed) => return Err(ApiError::method_not_allowed(allowed)),
        Lookup::NotFound => return Err(ApiError::new(Code::NotFound, "no such route")),
    };

    let identity = authenticate(gateway, &parts.headers).await?;
    if let Identity::User { user_id, .. } = &identity {
        *user = Some(user_id.clone());
    }
    if identity == Identity::Anonymous && !policy::is_public(route.full_name()) {
        return Err(ApiError::unauthenticated());
    }
    let budgets = policy::rate_limits(route.full_name());
    if !budgets.is_empty() {
        let client = gateway.limits.proxies.client(peer.ip(), &parts.headers);
        gateway
            .limits
            .check_client(route.full_name(), budgets, client, &identity)?;
    }

    let key = idempotency_key(&parts.method, &parts.headers)?;
    let body = read_body(body, &parts.headers, gateway.body_limit).await?;
    let message =
        transcode::request_message(route, &path_vars, parts.uri.query(), &body).map_err(|e| {
            let field = e.field().map(str::to_owned);
            let error = ApiError::new(Code::InvalidArgument, e.to_string());
            match field {
                Some(field) => error.with_violation(field, e.to_string()),
                None => error,
            }
        })?;
    // A password guess spends the target account's budget, whoever and
    // wherever the guesser is; a success gives it back, so only failures
    // count.
    let account = budgets
        .contains(&policy::Budget::Account)
        .then(|| policy::target_account(&message, &identity))
        .flatten();
    if let Some(account) = &account {
        gateway
            .limits
            .per_account
            .check(account, Instant::now())
            .map_err(|wait| ApiError::rate_limited(retry_after_seconds(wait)))?;
    }

    // The request's id: the client's X-Request-Id when usable, else a new
    // one. The services name it as the causation id of the events the
    // request causes, and the answer carries it back.
    let request_id = parts
        .headers
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| api::usable_request_id(id))
        .map_or_else(api::new_request_id, str::to_owned);
    // The services verify the caller's token themselves: the gateway passes
    // it on as it came and holds no credential that could act as anyone.
    let mut metadata = MetadataMap::new();
    if identity != Identity::Anonymous
        && let Some(Ok(value)) = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .map(str::parse)
    {
        metadata.insert("authorization", value);
    }
    if let Ok(value) = request_id.parse() {
        metadata.insert(api::REQUEST_ID, value);
    }
    if let Some(Ok(value)) = key.map(|key| key.as_str().parse()) {
        metadata.insert(idempotency::METADATA_KEY, value);
    }
    let reply = gateway
        .backends
        .unary(route, message, metadata, gateway.timeout)
        .await
        .map_err(|status| ApiError::from_status(&status))?;
    if let Some(account) = &account {
        gateway.limits.per_account.refund(account, Instant::now());
    }
    let replayed = reply.metadata().get(idempotency::REPLAYED).is_some();
    let json = transcode::response_json(reply.get_ref()).map_err(|e| {
        tracing::error!(error = %e, method = route.full_name(), "cannot write the response as JSON");
        ApiError::new(Code::Internal, "internal error")
    })?;
    let mut response = json_response(StatusCode::OK, json.into());
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    if replayed {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// The request header naming the request (echoed in the answer).
pub const REQUEST_ID: &str = "x-request-id";

/// The request header that makes a command safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The response header of an answer replayed for a repeated key.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// The `Idempotency-Key` of a command (every route but GET; a query is
/// safe to repeat as it is, so its key is ignored), checked here so a bad
/// one is a 400 naming the header before anything else happens.
fn idempotency_key(
    method: &http::Method,
    headers: &http::HeaderMap,
) -> Result<Option<IdempotencyKey>, ApiError> {
    if method == http::Method::GET {
        return Ok(None);
    }
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let bad = |reason: &str| {
        ApiError::new(
            Code::InvalidArgument,
            format!("invalid Idempotency-Key header: {reason}"),
        )
        .with_violation("Idempotency-Key", reason)
    };
    if values.next().is_some() {
        return Err(bad("must be given once"));
    }
    let text = value.to_str().map_err(|_| bad("must be ASCII"))?;
    IdempotencyKey::parse(text).map(Some).map_err(bad)
}

/// The caller's identity: anonymous without an `Authorization` header, a
/// verified user with a valid bearer token, and 401 (503 while the keys
/// cannot be fetched) for anything else, as a service answers a gRPC
/// client (service-kit's `TokenVerifier::authenticate`).
async fn authenticate(gateway: &Gateway, headers: &http::HeaderMap) -> Result<Identity, ApiError> {
    match gateway.verifier.authenticate(headers).await {
        Ok(identity) => Ok(identity.unwrap_or(Identity::Anonymous)),
        Err(refusal) => Err(ApiError::new(refusal.code(), refusal.message())),
    }
}

async fn read_body(body: Body, headers: &http::HeaderMap, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            Code::InvalidArgument,
            format!("the body exceeds {limit} bytes"),
        )
        .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
        while let Some(e) = source {
            if e.is::<http_body_util::LengthLimitError>() {
                return too_large();
            }
            source = e.source();
        }
        ApiError::new(Code::InvalidArgument, "the body could not be read")
    })
}

fn json_response(status: StatusCode, body: Bytes) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// One line per request: no headers, no query, no body.
async fn access_log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
        .unwrap_or_default();
    let response = next.run(request).await;
    let user = response
        .extensions()
        .get::<LoggedUser>()
        .map(|u| u.0.clone())
        .unwrap_or_default();
    tracing::info!(
        target: "stocklet_gateway::access",
        %method,
        %path,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_millis() as u64,
        %client,
        %user,
        "request"
    );
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[tokio::test]
    async fn bodies_without_a_declared_length_are_limited_too() {
        let headers = http::HeaderMap::new();
        let error = read_body(Body::from(vec![b' '; 1025]), &headers, 1024)
            .await
            .unwrap_err();
        assert_eq!(error.status, StatusCode::PAYLOAD_TOO_LARGE);
        let body = read_body(Body::from(vec![b' '; 1024]), &headers, 1024)
            .await
            .unwrap();
        assert_eq!(body.len(), 1024);
        let mut declared = http::HeaderMap::new();
        declared.insert(header::CONTENT_LENGTH, HeaderValue::from(5000u64));
        let error = read_body(Body::empty(), &declared, 1024).await.unwrap_err();
        assert_eq!(error.status, StatusCode::PAYLOAD_TOO_LARGE);
    }
}
