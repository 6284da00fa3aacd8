//! What every service's gRPC API holds, and the two things it does with it.
//!
//! Each service's API struct used to carry the same fields (its
//! aggregate's repository, the projection its queries read, the pool that
//! projection lives in), the same `new`, the same `identity(&request)`,
//! and the same `execute` helper: run a command, wait
//! (bounded by [`READ_YOUR_WRITES_WAIT`]) until the read model holds it so
//! that the caller's next query reads its write, and turn any failure into
//! an [`ApiError`] through the service's own `rejected` mapping of its
//! business rules. [`CommandApi`] is that part, written once; a service's
//! API wraps it and keeps only what is its own (its `rejected` mapping,
//! other repositories, hashers, signers, settings).
//!
//! ```text
//! pub struct ProductApi {
//!     core: CommandApi<Product, Catalogue>,
//! }
//! // in a handler:
//! let identity = self.core.identity(&request);
//! let product = self.core.execute(&id, &command, &self.core.context(&request), rejected).await?;
//! let row = ProductRow::find(self.core.pool(), id.as_str()).await?;
//! ```

use std::sync::Arc;

use es_core::projection::{Projection, ProjectionRunner};
use es_core::{Aggregate, AggregateId, CommandContext, JetStreamEventStore, Repository};
use sqlx::PgPool;
use tonic::Request;

use crate::error::ApiError;
use crate::identity::Identity;
use crate::service::READ_YOUR_WRITES_WAIT;

/// The metadata key of a request's id: the gateway sends the one it logs
/// (its client's `X-Request-Id`, or one it made), and a direct gRPC client
/// may send its own.
pub const REQUEST_ID: &str = "x-request-id";

/// The request's id from its metadata when it is a usable one (see
/// [`usable_request_id`]), else a new one ([`new_request_id`]): what the
/// events a request causes name as their causation id.
pub fn request_id(metadata: &tonic::metadata::MetadataMap) -> String {
    metadata
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| usable_request_id(id))
        .map_or_else(new_request_id, str::to_owned)
}

/// Whether a client's request id can name events: 1 to 128 characters of
/// letters, digits and `-_.:`.
pub fn usable_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

/// A new request id (a UUIDv7), for a request that came without one.
pub fn new_request_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The repository of aggregate `A`, the runner of projection `P` that the
/// API's queries read, and its pool.
pub struct CommandApi<A, P> {
    repository: Repository<A, JetStreamEventStore>,
    read_model: Arc<ProjectionRunner<P>>,
    pool: PgPool,
}

// By hand: a derive would ask the projection `P` to be `Clone`, and it is
// only ever shared through its `Arc`.
impl<A: Aggregate, P> Clone for CommandApi<A, P> {
    fn clone(&self) -> Self {
        Self {
            repository: self.repository.clone(),
            read_model: Arc::clone(&self.read_model),
            pool: self.pool.clone(),
        }
    }
}

impl<A: Aggregate, P: Projection> CommandApi<A, P> {
    /// The API's shared part over its repository and read model.
    pub fn new(
        repository: Repository<A, JetStreamEventStore>,
        read_model: Arc<ProjectionRunner<P>>,
        pool: PgPool,
    ) -> Self {
        Self {
            repository,
            read_model,
            pool,
        }
    }

    /// Who is calling, as the [`authentication`](crate::authentication)
    /// layer found it (see [`Identity::of`]).
    pub fn identity<T>(&self, request: &Request<T>) -> Identity {
        Identity::of(request)
    }

    /// The context of a command a client `request` asked for: caused by the
    /// request, named by its `x-request-id` metadata (see
    /// [`request_id`]).
    pub fn context<T>(&self, request: &Request<T>) -> CommandContext {
        CommandContext::default().with_causation_id(request_id(request.metadata()))
    }

    /// Runs `command` on aggregate `id` and waits (at most
    /// [`READ_YOUR_WRITES_WAIT`]) until the read model shows its effect;
    /// a read model still behind is logged and the command answers anyway.
    /// Returns the aggregate's state afterwards. A business rule's refusal
    /// becomes what `rejected` makes of it, any other failure the status
    /// [`ApiError::from_execute`] gives it.
    pub async fn execute(
        &self,
        id: &AggregateId,
        command: &A::Command,
        context: &CommandContext,
        rejected: impl FnOnce(A::Error) -> ApiError,
    ) -> Result<A, ApiError> {
        self.repository
            .execute_and_wait(
                id,
                command,
                context,
                &*self.read_model,
                READ_YOUR_WRITES_WAIT,
            )
            .await
            .map(|executed| executed.state)
            .map_err(|e| ApiError::from_execute(e, rejected))
    }

    /// The aggregate's repository, for loads and for commands that need
    /// more than [`execute`](Self::execute).
    pub fn repository(&self) -> &Repository<A, JetStreamEventStore> {
        &self.repository
    }

    /// The projection the API's queries read.
    pub fn read_model(&self) -> &ProjectionRunner<P> {
        &self.read_model
    }

    /// The pool the read model lives in.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::{MetadataMap, MetadataValue};

    #[test]
    fn a_request_id_is_the_clients_when_usable_and_new_otherwise() {
        let mut metadata = MetadataMap::new();
        metadata.insert(REQUEST_ID, MetadataValue::from_static("req-42.a:b_c"));
        assert_eq!(request_id(&metadata), "req-42.a:b_c");
        metadata.insert(REQUEST_ID, MetadataValue::from_static("spaces are not ok"));
        let made = request_id(&metadata);
        assert!(uuid::Uuid::parse_str(&made).is_ok(), "{made}");
        assert_ne!(made, request_id(&MetadataMap::new()), "a new id each time");
    }
}
