//! Client retries made safe: the `idempotency-key` metadata of a unary call.
//!
//! A client whose call timed out cannot tell whether the command happened.
//! With a key it can simply send the call again: the first answer is
//! recorded and every repeat of the same call gets that answer back,
//! without running the command again. This is a step of every call in
//! [`grpc::serve`](crate::grpc::serve), so every service has it once and no
//! handler knows about it; the gateway forwards the REST `Idempotency-Key`
//! header as this metadata.
//!
//! How a keyed call goes:
//!
//! 1. The key is checked ([`IdempotencyKey::parse`]: 1-255 characters of
//!    `A-Z a-z 0-9 - _ . :`); a bad one is `InvalidArgument` on the field
//!    `idempotency-key`.
//! 2. The record is keyed by (caller, method, key): the caller is the
//!    identity the [`authentication`](crate::authentication) layer found
//!    (a bearer token's user, or trusted identity metadata; every
//!    anonymous caller shares one namespace), so two users never collide
//!    on a key, and a user's key is the same whether the call came through
//!    the gateway or straight from a gRPC client.
//! 3. The request is fingerprinted: SHA-256 of the decoded message in a
//!    canonical form (the proto3 JSON mapping with sorted keys), not of its
//!    bytes, because protobuf maps (a cart's items) are encoded in hash
//!    order and the same request may arrive as different bytes.
//! 4. The record is claimed in the service's own schema
//!    (`stocklet_idempotency`, created by [`Idempotency::prepare`], not by
//!    each service's migrations) before the command runs. If PostgreSQL
//!    cannot take the claim the call fails with `Unavailable` and the
//!    command does not run: a command is never executed without a way to
//!    remember it. An unkeyed call does not touch the table, so it works
//!    with PostgreSQL down.
//! 5. A claim already there answers instead of the command: its recorded
//!    response (with `idempotent-replayed: true` metadata); `Aborted`
//!    while the first call is still in flight; and `InvalidArgument` with
//!    the `google.rpc.ErrorInfo` reason [`KEY_REUSED`] when the request
//!    differs (the gateway answers that 422). These answers are
//!    [`ApiError`]s, mapped to statuses where every other one is.
//! 6. Only definitive answers are recorded: success, `AlreadyExists`,
//!    `FailedPrecondition` and `OutOfRange`. Anything else (validation,
//!    `NotFound` from a read model not caught up, `Unavailable`, `Aborted`,
//!    `Internal`, ...) releases the claim, so a retry runs the command again.
//!
//! The claim, the command and the recording run in a spawned task, so a
//! caller that gives up mid-call (its deadline cancels the call) leaves
//! neither a half-run command nor a key claimed without its answer.
//!
//! Records are kept for the TTL (`STOCKLET_IDEMPOTENCY_TTL_S`, default
//! 24 h, far beyond JetStream's two-minute duplicate window); an expired
//! record counts as absent and a background task deletes them. A claim
//! whose owner died mid-call (no answer recorded) blocks its key for
//! [`IN_FLIGHT_LEASE`], then the same request may claim it again.
//!
//! `LoginPassword` is not recorded (the key is accepted and ignored): its
//! answer is a bearer token, which must not sit in a table for a day, and
//! logging in twice is harmless.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::BodyExt;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status};
use tower::Service as _;
use tracing::Instrument;

use crate::error::ApiError;
use crate::grpc::{CallStep, GrpcRequest, GrpcResponse, Next};
use crate::identity::Identity;

/// The metadata key (and, in the gateway, the HTTP header
/// `Idempotency-Key`).
pub const METADATA_KEY: &str = "idempotency-key";
/// Response metadata set on a replayed answer.
pub const REPLAYED: &str = "idempotent-replayed";
/// The `google.rpc.ErrorInfo` reason of a key reused with another request.
pub const KEY_REUSED: &str = "IDEMPOTENCY_KEY_REUSED";
/// The `google.rpc.ErrorInfo` domain of [`KEY_REUSED`].
pub const ERROR_DOMAIN: &str = "stocklet";
/// Default `STOCKLET_IDEMPOTENCY_TTL_S`: a day.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// How long a claim without an answer blocks its key: long enough for any
/// call to finish (the gateway gives up after 10 s), short enough that a
/// call whose server died can be retried.
pub const IN_FLIGHT_LEASE: Duration = Duration::from_secs(60);
/// The longest a single statement on the table may take before the call
/// answers `Unavailable`: PostgreSQL being down must not eat the caller's
/// whole deadline (the pool itself waits 10 s for a connection).
pub const STORE_TIMEOUT: Duration = Duration::from_secs(2);
/// Methods whose answers are never recorded (see the module docs).
const NOT_RECORDED: &[&str] = &["/stocklet.auth.v1.AuthService/LoginPassword"];
/// Longest request body fingerprinted (tonic's default decode limit).
const MAX_BODY: usize = 4 * 1024 * 1024;
const TABLE: &str = "stocklet_idempotency";

/// A valid idempotency key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The longest key.
    pub const MAX_LEN: usize = 255;

    /// Checks length (1-255) and charset (`A-Z a-z 0-9 - _ . :`), so a key
    /// is safe in headers, metadata, logs and SQL parameters alike.
    pub fn parse(value: &str) -> Result<Self, &'static str> {
        if value.is_empty() || value.len() > Self::MAX_LEN {
            return Err("must be 1-255 characters");
        }
        if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        {
            return Err("may hold only A-Z, a-z, 0-9, '-', '_', '.' and ':'");
        }
        Ok(Self(value.to_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
enum StoreError {
    #[error("the idempotency store did not answer within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// What a claim found.
#[derive(Debug)]
enum Claim {
    /// The caller owns the key now: run the command.
    Owned,
    /// The first call's answer.
    Replay(Recorded),
    /// The first call is still running.
    InFlight,
    /// The key was used with another request.
    Reused,
}

/// A recorded answer: the gRPC trailers that carry the status and the
/// response's data frames.
#[derive(Clone, Debug)]
struct Recorded {
    status: i32,
    message: Option<String>,
    details: Option<String>,
    body: Vec<u8>,
}

/// The idempotency store of one service: its pool (in the service's
/// schema) and the TTL.
#[derive(Clone, Debug)]
pub struct Idempotency {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: PgPool,
    ttl: Duration,
    descriptors: Option<DescriptorPool>,
}

impl Idempotency {
    /// The store over `pool` (connections in the service's schema).
    pub fn new(pool: PgPool, ttl: Duration) -> Self {
        let descriptors = DescriptorPool::decode(stocklet_proto::FILE_DESCRIPTOR_SET)
            .map_err(|error| tracing::error!(%error, "descriptors do not decode; keys are ignored"))
            .ok();
        Self {
            inner: Arc::new(Inner {
                pool,
                ttl,
                descriptors,
            }),
        }
    }

    /// Creates the table if it is missing. Idempotent; two instances
    /// starting at once may race on the catalog, so a failure is retried
    /// once.
    pub async fn prepare(&self) -> Result<(), sqlx::Error> {
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {TABLE} (
                 caller TEXT NOT NULL,
                 method TEXT NOT NULL,
                 key TEXT NOT NULL,
                 request_hash BYTEA NOT NULL,
                 created_at TIMESTAMPTZ NOT NULL,
                 locked_until TIMESTAMPTZ,
                 status INT,
                 message TEXT,
                 details TEXT,
                 body BYTEA,
                 PRIMARY KEY (caller, method, key)
             );
             CREATE INDEX IF NOT EXISTS {TABLE}_created_at ON {TABLE} (created_at);"
        );
        if sqlx::raw_sql(sqlx::AssertSqlSafe(create.clone()))
            .execute(&self.inner.pool)
            .await
            .is_err()
        {
            sqlx::raw_sql(sqlx::AssertSqlSafe(create))
                .execute(&self.inner.pool)
                .await?;
        }
        Ok(())
    }

    /// Deletes expired records every so often until `shutdown`.
    pub fn purge_until(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        let every = (self.inner.ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(600));
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
                match store.purge().await {
                    Ok(0) => {}
                    Ok(purged) => tracing::debug!(purged, "expired idempotency keys purged"),
                    Err(error) => tracing::warn!(%error, "purging idempotency keys failed"),
                }
            }
        })
    }

    /// Deletes the expired records; returns how many.
    pub async fn purge(&self) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {TABLE} WHERE created_at < now() - $1 * interval '1 millisecond'"
        )))
        .bind(millis(self.inner.ttl))
        .execute(&self.inner.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn bounded<T>(
        future: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(STORE_TIMEOUT, future)
            .await
            .map_err(|_| StoreError::Timeout(STORE_TIMEOUT))?
            .map_err(StoreError::from)
    }

    async fn claim(&self, id: &RecordId, hash: &[u8]) -> Result<Claim, StoreError> {
        // Twice at most: a record released between our insert and our read
        // is claimed on the second pass.
        for _ in 0..2 {
            let claimed: Option<(i32,)> = Self::bounded(
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO {TABLE} AS r (caller, method, key, request_hash, created_at, locked_until)
                     VALUES ($1, $2, $3, $4, now(), now() + $5 * interval '1 millisecond')
                     ON CONFLICT (caller, method, key) DO UPDATE
                       SET request_hash = EXCLUDED.request_hash, created_at = EXCLUDED.created_at,
                           locked_until = EXCLUDED.locked_until, status = NULL, message = NULL,
                           details = NULL, body = NULL
                       WHERE r.created_at < now() - $6 * interval '1 millisecond'
                          OR (r.status IS NULL AND r.locked_until < now()
                              AND r.request_hash = EXCLUDED.request_hash)
                     RETURNING 1"
                )))
                .bind(&id.caller)
                .bind(&id.method)
                .bind(id.key.as_str())
                .bind(hash)
                .bind(millis(IN_FLIGHT_LEASE))
                .bind(millis(self.inner.ttl))
                .fetch_optional(&self.inner.pool),
            )
            .await?;
            if claimed.is_some() {
                return Ok(Claim::Owned);
            }
            type Row = (
                Vec<u8>,
                Option<i32>,
                Option<String>,
                Option<String>,
                Option<Vec<u8>>,
            );
            let found: Option<Row> = Self::bounded(
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT request_hash, status, message, details, body FROM {TABLE}
                     WHERE caller = $1 AND method = $2 AND key = $3"
                )))
                .bind(&id.caller)
                .bind(&id.method)
                .bind(id.key.as_str())
                .fetch_optional(&self.inner.pool),
            )
            .await?;
            let Some((request_hash, status, message, details, body)) = found else {
                continue;
            };
            if request_hash != hash {
                return Ok(Claim::Reused);
            }
            return Ok(match status {
                Some(status) => Claim::Replay(Recorded {
                    status,
                    message,
                    details,
                    body: body.unwrap_or_default(),
                }),
                None => Claim::InFlight,
            });
        }
        Ok(Claim::InFlight)
    }

    async fn record(&self, id: &RecordId, recorded: &Recorded) -> Result<(), StoreError> {
        Self::bounded(
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {TABLE} SET status = $4, message = $5, details = $6, body = $7,
                     locked_until = NULL
                 WHERE caller = $1 AND method = $2 AND key = $3 AND status IS NULL"
            )))
            .bind(&id.caller)
            .bind(&id.method)
            .bind(id.key.as_str())
            .bind(recorded.status)
            .bind(recorded.message.as_deref())
            .bind(recorded.details.as_deref())
            .bind(&recorded.body)
            .execute(&self.inner.pool),
        )
        .await
        .map(drop)
    }

    async fn release(&self, id: &RecordId) -> Result<(), StoreError> {
        Self::bounded(
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {TABLE} WHERE caller = $1 AND method = $2 AND key = $3
                     AND status IS NULL"
            )))
            .bind(&id.caller)
            .bind(&id.method)
            .bind(id.key.as_str())
            .execute(&self.inner.pool),
        )
        .await
        .map(drop)
    }

    /// Records `recorded`, retrying in the background for as long as the
    /// claim's lease if PostgreSQL fails now: the command has run, and a
    /// retry must find its answer rather than run it again.
    fn record_or_retry(&self, id: RecordId, recorded: Recorded) -> BoxFuture<'static, ()> {
        let store = self.clone();
        Box::pin(async move {
            let Err(error) = store.record(&id, &recorded).await else {
                return;
            };
            tracing::warn!(%error, method = %id.method, "recording an answer failed; retrying in the background");
            tokio::spawn(async move {
                let deadline = tokio::time::Instant::now() + IN_FLIGHT_LEASE;
                while tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if store.record(&id, &recorded).await.is_ok() {
                        tracing::info!(method = %id.method, "answer recorded after a retry");
                        return;
                    }
                }
                tracing::error!(method = %id.method, "an answer could not be recorded; a retry after the lease runs the command again");
            });
        })
    }

    fn method(&self, path: &str) -> Option<MethodDescriptor> {
        let (service, method) = path.strip_prefix('/')?.split_once('/')?;
        let method = self
            .inner
            .descriptors
            .as_ref()?
            .get_service_by_name(service)?
            .methods()
            .find(|m| m.name() == method)?;
        (!method.is_client_streaming() && !method.is_server_streaming()).then_some(method)
    }
}

/// What a record is keyed by.
#[derive(Clone, Debug)]
struct RecordId {
    caller: String,
    method: String,
    key: IdempotencyKey,
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

impl CallStep for Idempotency {
    fn call<E: Send + 'static>(
        &self,
        mut inner: Next<E>,
        request: GrpcRequest,
    ) -> BoxFuture<'static, Result<GrpcResponse, E>> {
        let store = self.clone();
        let keyed = request.headers().get(METADATA_KEY).cloned();
        let method = keyed
            .as_ref()
            .and_then(|_| store.method(request.uri().path()))
            .filter(|_| !NOT_RECORDED.contains(&request.uri().path()));
        let (Some(key), Some(method)) = (keyed, method) else {
            return Box::pin(async move { inner.call(request).await });
        };
        Box::pin(async move {
            let key = match key
                .to_str()
                .map_err(|_| "must be ASCII")
                .and_then(IdempotencyKey::parse)
            {
                Ok(key) => key,
                Err(reason) => return Ok(answer(ApiError::invalid(METADATA_KEY, reason))),
            };
            let (parts, body) = request.into_parts();
            let bytes = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => {
                    return Ok(answer(ApiError::invalid(
                        "body",
                        "the request could not be read",
                    )));
                }
            };
            let caller = match Identity::of_http(&parts.extensions) {
                Identity::User { user_id, .. } => format!("user:{user_id}"),
                Identity::Anonymous => "anonymous".to_owned(),
            };
            let id = RecordId {
                caller,
                method: parts.uri.path().to_owned(),
                key,
            };
            let hash = fingerprint(&method, &bytes);
            let request = http::Request::from_parts(
                parts,
                tonic::body::Body::new(http_body_util::Full::new(bytes)),
            );
            // Claiming, the command and recording its answer run in a task
            // of their own: a caller that gives up (a client timeout
            // cancels the call) must not cut them off halfway and leave
            // the key claimed without an answer, since a retry is exactly
            // what follows.
            let running = tokio::spawn(
                {
                    let (store, id) = (store.clone(), id.clone());
                    async move {
                        match store.claim(&id, &hash).await {
                            Ok(Claim::Owned) => run_and_record(inner, request, store, id).await,
                            Ok(Claim::Replay(recorded)) => Ok(replay(&recorded)),
                            // A call with this key is running: the client retries.
                            Ok(Claim::InFlight) => Ok(answer(ApiError::Aborted)),
                            Ok(Claim::Reused) => Ok(answer(ApiError::IdempotencyKeyReused)),
                            Err(error) => Ok(answer(ApiError::Unavailable(format!(
                                "cannot claim idempotency key for {}, not running it: {error}",
                                id.method
                            )))),
                        }
                    }
                }
                .in_current_span(),
            );
            match running.await {
                Ok(answered) => answered,
                Err(panicked) => {
                    if let Err(error) = store.release(&id).await {
                        tracing::warn!(%error, "releasing an idempotency key failed; it frees itself after the lease");
                    }
                    Ok(answer(ApiError::Internal(format!(
                        "the call failed: {panicked}"
                    ))))
                }
            }
        })
    }
}

/// Runs the claimed call, records its answer if it is definitive (or
/// releases the claim), and hands the answer on.
async fn run_and_record<S, B>(
    mut inner: S,
    request: GrpcRequest,
    store: Idempotency,
    id: RecordId,
) -> Result<GrpcResponse, S::Error>
where
    S: tower::Service<GrpcRequest, Response = http::Response<B>>,
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let response = match inner.call(request).await {
        Ok(response) => response,
        Err(error) => {
            if let Err(e) = store.release(&id).await {
                tracing::warn!(error = %e, "releasing an idempotency key failed; it frees itself after the lease");
            }
            return Err(error);
        }
    };
    let (parts, body) = response.into_parts();
    let collected = match body.collect().await {
        Ok(collected) => collected,
        Err(error) => {
            let _ = store.release(&id).await;
            return Ok(Status::from_error(error.into()).into_http());
        }
    };
    let trailers = collected.trailers().cloned();
    let text = |name: &str| {
        trailers
            .as_ref()
            .and_then(|t| t.get(name))
            .or_else(|| parts.headers.get(name))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let status = text("grpc-status")
        .and_then(|s| s.parse::<i32>().ok())
        .unwrap_or(Code::Unknown as i32);
    let (message, details) = (text("grpc-message"), text("grpc-status-details-bin"));
    let recorded = Recorded {
        status,
        message,
        details,
        body: collected.to_bytes().to_vec(),
    };
    if definitive(Code::from_i32(status)) {
        store.record_or_retry(id, recorded.clone()).await;
    } else if let Err(error) = store.release(&id).await {
        tracing::warn!(%error, "releasing an idempotency key failed; it frees itself after the lease");
    }
    // The live answer goes out as the handler made it.
    let body = http_body_util::Full::new(Bytes::from(recorded.body))
        .with_trailers(async move { trailers.map(Ok) });
    Ok(http::Response::from_parts(
        parts,
        tonic::body::Body::new(body),
    ))
}

/// Whether an answer is the command's own, final word, worth replaying.
fn definitive(code: Code) -> bool {
    matches!(
        code,
        Code::Ok | Code::AlreadyExists | Code::FailedPrecondition | Code::OutOfRange
    )
}

/// SHA-256 of the request in canonical form: the decoded message as
/// proto3 JSON with sorted keys, or the raw bytes if it does not decode
/// (the handler then refuses it anyway).
fn fingerprint(method: &MethodDescriptor, framed: &[u8]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    let canonical = (framed.len() >= 5 && framed[0] == 0)
        .then(|| DynamicMessage::decode(method.input(), &framed[5..]).ok())
        .flatten()
        .and_then(|message| serde_json::to_value(&message).ok());
    match canonical {
        Some(value) => {
            hasher.update(b"json:");
            hasher.update(canonical_json(&value).as_bytes());
        }
        None => {
            hasher.update(b"raw:");
            hasher.update(framed);
        }
    }
    hasher.finalize().to_vec()
}

/// JSON text with every object's keys sorted, whatever map type serde_json
/// was built with.
fn canonical_json(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) => {
            let sorted: BTreeMap<&String, String> =
                map.iter().map(|(k, v)| (k, canonical_json(v))).collect();
            let fields: Vec<String> = sorted
                .into_iter()
                .map(|(k, v)| format!("{}:{v}", serde_json::Value::String(k.clone())))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        serde_json::Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// An answer rebuilt from its record: the data frames, then the trailers,
/// marked replayed.
fn replay(recorded: &Recorded) -> GrpcResponse {
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from(recorded.status));
    for (name, value) in [
        ("grpc-message", &recorded.message),
        ("grpc-status-details-bin", &recorded.details),
    ] {
        if let Some(value) = value
            .as_deref()
            .and_then(|v| http::HeaderValue::from_str(v).ok())
        {
            trailers.insert(name, value);
        }
    }
    let body = http_body_util::Full::new(Bytes::from(recorded.body.clone()))
        .with_trailers(async move { Some(Ok(trailers)) });
    let mut response = http::Response::new(tonic::body::Body::new(body));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    response
        .headers_mut()
        .insert(REPLAYED, http::HeaderValue::from_static("true"));
    response
}

/// An [`ApiError`] as the gRPC answer it maps to (in one place,
/// `From<ApiError> for Status`).
fn answer(error: ApiError) -> GrpcResponse {
    Status::from(error).into_http()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bounded_in_length_and_charset() {
        assert!(IdempotencyKey::parse("0192f0c1-0000-7000-8000-00000000a11c").is_ok());
        assert!(IdempotencyKey::parse("order:42.retry_1").is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        for bad in ["a b", "a/b", "ä", "a\nb", "a'b"] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_fingerprint_ignores_map_order() {
        use prost::Message as _;
        use stocklet_proto::stocklet::order::v1::PlaceOrderRequest;

        let pool = DescriptorPool::decode(stocklet_proto::FILE_DESCRIPTOR_SET).unwrap();
        let method = pool
            .get_service_by_name("stocklet.order.v1.OrderService")
            .unwrap()
            .methods()
            .find(|m| m.name() == "PlaceOrder")
            .unwrap();
        let framed = |items: &[(&str, i64)]| {
            let request = PlaceOrderRequest {
                items: items.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
                cart: None,
            };
            let message = request.encode_to_vec();
            let mut framed = vec![0];
            framed.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
            framed.extend_from_slice(&message);
            framed
        };
        let many: Vec<(String, i64)> = (0..20).map(|i| (format!("p{i}"), i)).collect();
        let many: Vec<(&str, i64)> = many.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let a = fingerprint(&method, &framed(&many));
        let mut reversed = many.clone();
        reversed.reverse();
        assert_eq!(a, fingerprint(&method, &framed(&reversed)));
        assert_ne!(a, fingerprint(&method, &framed(&many[1..])));
    }
}
