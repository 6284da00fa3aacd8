//! The service builder: one shape for every service's `run`.
//!
//! Every Stocklet service starts the same way: connect to NATS as its own
//! user, look up the streams it writes and reads (which the provisioner
//! created, [`crate::provision`]), open its PostgreSQL pool in its own
//! schema, run its migrations, start its projections and reactors, serve
//! gRPC until shutdown, then stop its consumers once the server has
//! drained. [`Service`] owns those steps, so a service's `run` only
//! declares what it has (from `services/warehouse/src/lib.rs`):
//!
//! ```text
//! let mut service = Service::start(&config.common, SPEC, migrate!("./migrations")).await?;
//! let stocks = service.repository::<Stock>();
//! let inventory = service.projection(Inventory).await?;
//! service.reactor(streams::PRODUCT, ReactorConfig::new("warehouse-from-product"),
//!     ProductReaction::new(stocks.clone())).await?;
//! service.serve(listener, WarehouseServiceServer::new(api), shutdown).await
//! ```
//!
//! A service that still has old versions of its events in its stream
//! registers their upcasters once ([`Service::with_upcasters`]): every
//! repository it builds loads through them, and so does every projection
//! or reactor it runs on its own stream, so no handler meets an old
//! version.
//!
//! Every call it serves passes the same steps first (see [`grpc::serve`]):
//! who is calling (a bearer token verified against the auth service's JWKS
//! at `STOCKLET_AUTH_URL`, or the gateway's identity metadata), then
//! idempotency. The auth service alone verifies with its own key
//! ([`Service::verify_tokens_with`]).
//!
//! A stream is named by its typed constant ([`streams`]), and each reactor
//! by the stream it reads and its durable name, side by side: nothing is
//! paired by position. A stream is looked up the first time anything names
//! it (its own at start, a source stream with its first consumer); one that
//! is missing, or captures other subjects than shipped, stops the start
//! with an error that says to run `stocklet provision`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use es_core::projection::{Projection, ProjectionConfig, ProjectionRunner};
use es_core::reactor::{Reaction, Reactor, ReactorConfig};
use es_core::snapshot::{SnapshotState, SnapshotStore};
use es_core::streams::ProvisionError;
use es_core::{Aggregate, JetStreamEventStore, Repository, StreamRef, Upcasters};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::service::Routes;

use crate::authentication::Authentication;
use crate::config::{CommonConfig, Secret};
use crate::consumers::Consumers;
use crate::grpc::Calls;
use crate::idempotency::Idempotency;
use crate::jwt::{JwksSource, RemoteJwks, TokenVerifier};
use crate::lifecycle::{self, RunError};
use crate::streams::{self, Stream};
use crate::{db, grpc};

/// How long a command waits for its read model before answering anyway:
/// the read-your-writes bound of every API (see
/// [`Repository::execute_and_wait`]).
pub const READ_YOUR_WRITES_WAIT: Duration = Duration::from_secs(3);

/// Who a service is: how it is called in logs, the PostgreSQL schema of
/// its read models, and the stream it owns (writes its events to).
#[derive(Clone, Copy, Debug)]
pub struct ServiceSpec {
    /// Short name, e.g. `warehouse`.
    pub name: &'static str,
    /// The schema its read models and checkpoints live in.
    pub schema: &'static str,
    /// The stream of its own aggregates.
    pub stream: Stream,
}

/// A service being started: connected, provisioned and migrated, gathering
/// its consumers until [`serve`](Self::serve).
pub struct Service {
    spec: ServiceSpec,
    store: JetStreamEventStore,
    pool: PgPool,
    stream: StreamRef,
    provisioned: HashMap<&'static str, StreamRef>,
    snapshots: Option<SnapshotStore>,
    upcasters: Upcasters,
    consumers: Consumers,
    idempotency: Idempotency,
    verifier: TokenVerifier,
    internal_token: Secret,
}

/// `stream`, which must exist as shipped: a service may use streams but
/// not create or change them (`nats/permissions.conf`); the provisioner
/// does ([`crate::provision`]).
async fn look_up(store: &JetStreamEventStore, stream: Stream) -> Result<StreamRef, RunError> {
    stream
        .definition()?
        .lookup(store.context())
        .await
        .map_err(not_provisioned)
}

/// A missing stream is an error that says how to provision it.
fn not_provisioned(error: ProvisionError) -> RunError {
    match error {
        ProvisionError::NotProvisioned { .. } => RunError::NotProvisioned(error),
        other => RunError::Provision(other),
    }
}

/// How long the auth service may take to accept a connection for its JWKS.
const AUTH_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

impl Service {
    /// Connects to NATS as the service's user (`spec.name`, with its
    /// `STOCKLET_<NAME>_NATS_PASSWORD`), looks up the service's own stream
    /// and the dead-letter stream, opens the pool (`STOCKLET_DB_POOL_SIZE`
    /// connections in the service's schema) and runs `migrations`.
    pub async fn start(
        common: &CommonConfig,
        spec: ServiceSpec,
        migrations: Migrator,
    ) -> Result<Self, RunError> {
        crate::config::require_internal_token(&common.internal_token)
            .map_err(|e| RunError::Config(e.to_string()))?;
        crate::metrics::use_stocklet_names();
        let credentials = common
            .nats_passwords
            .credentials(spec.name)
            .map_err(|e| RunError::Config(e.to_string()))?;
        let store = lifecycle::connect_event_store(&common.nats_url, &credentials).await?;
        let mut provisioned = HashMap::new();
        for stream in [spec.stream, streams::DEADLETTER] {
            provisioned.insert(stream.name, look_up(&store, stream).await?);
        }
        let stream = provisioned
            .get(spec.stream.name)
            .cloned()
            .ok_or_else(|| RunError::Config(format!("{} stream missing", spec.stream.name)))?;
        let pool = db::connect(&common.database_url, spec.schema, common.db_pool_size).await?;
        migrations.run(&pool).await?;
        let idempotency = Idempotency::new(pool.clone(), common.idempotency_ttl);
        idempotency.prepare().await.map_err(db::DbError::from)?;
        let auth = tonic::transport::Endpoint::from_shared(common.auth_url.clone())
            .map_err(|e| RunError::Config(format!("STOCKLET_AUTH_URL={:?}: {e}", common.auth_url)))?
            .connect_timeout(AUTH_CONNECT_TIMEOUT)
            .connect_lazy();
        Ok(Self {
            spec,
            store,
            pool,
            stream,
            provisioned,
            snapshots: None,
            upcasters: Upcasters::default(),
            consumers: Consumers::new(),
            idempotency,
            verifier: TokenVerifier::new(common.jwt.clone(), RemoteJwks::new(auth)),
            internal_token: common.internal_token.clone(),
        })
    }

    /// Upgrades old versions of the service's own events with
    /// `upcasters` wherever it reads its own stream: in every repository it
    /// builds from now on, and in every projection and reactor it runs on
    /// that stream. Call it before building any of them.
    #[must_use]
    pub fn with_upcasters(mut self, upcasters: Upcasters) -> Self {
        self.upcasters = upcasters;
        self
    }

    /// The upcasters for a reader of `stream`: the service's own on its
    /// own stream; none on another service's, whose old events are that
    /// service's to upgrade.
    fn upcasters_for(&self, stream: Stream) -> Upcasters {
        if stream.name == self.spec.stream.name {
            self.upcasters.clone()
        } else {
            Upcasters::default()
        }
    }

    /// Verifies bearer tokens with keys from `source` instead of the auth
    /// service's JWKS at `STOCKLET_AUTH_URL`: what the auth service does,
    /// with its own public key, rather than call itself.
    pub fn verify_tokens_with(&mut self, source: impl JwksSource) {
        self.verifier = TokenVerifier::new(self.verifier.settings().clone(), source);
    }

    /// The event store.
    pub fn store(&self) -> &JetStreamEventStore {
        &self.store
    }

    /// The pool of the service's schema.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The service's own stream.
    pub fn stream(&self) -> &StreamRef {
        &self.stream
    }

    /// A repository for aggregates of type `A` in the service's own stream,
    /// loading through the service's upcasters.
    pub fn repository<A: Aggregate>(&self) -> Repository<A, JetStreamEventStore> {
        Repository::new(self.store.clone(), self.stream.clone())
            .with_upcasters(self.upcasters.clone())
    }

    /// A repository for aggregates of type `A` in the service's own stream
    /// that loads from a snapshot and the events after it, snapshotting an
    /// aggregate once `every` events have followed its last snapshot. For
    /// aggregates whose histories grow with the shop's life (a product's
    /// stock, a customer's balance), so that a command's cost does not.
    /// The `snapshots` key-value bucket (created by the provisioner) is
    /// looked up the first time one is asked for.
    pub async fn snapshotted_repository<A: SnapshotState>(
        &mut self,
        every: usize,
    ) -> Result<Repository<A, JetStreamEventStore>, RunError> {
        let snapshots = match &self.snapshots {
            Some(snapshots) => snapshots.clone(),
            None => {
                let snapshots = SnapshotStore::open(self.store.client().clone())
                    .await
                    .map_err(not_provisioned)?;
                self.snapshots = Some(snapshots.clone());
                snapshots
            }
        };
        Ok(self.repository::<A>().with_snapshots(snapshots, every))
    }

    /// The stream `stream`, looked up the first time it is named.
    pub async fn source(&mut self, stream: Stream) -> Result<StreamRef, RunError> {
        if let Some(provisioned) = self.provisioned.get(stream.name) {
            return Ok(provisioned.clone());
        }
        let provisioned = look_up(&self.store, stream).await?;
        self.provisioned.insert(stream.name, provisioned.clone());
        Ok(provisioned)
    }

    /// Runs `projection` over the service's own stream, from its checkpoint
    /// and durable consumer (created now, before the service serves). The
    /// runner is returned so that the API can wait for it (read-your-writes).
    pub async fn projection<P: Projection>(
        &mut self,
        projection: P,
    ) -> Result<Arc<ProjectionRunner<P>>, RunError> {
        let stream = self.spec.stream;
        self.projection_of(stream, projection).await
    }

    /// Runs `projection` over `stream` (which may be another service's).
    pub async fn projection_of<P: Projection>(
        &mut self,
        stream: Stream,
        projection: P,
    ) -> Result<Arc<ProjectionRunner<P>>, RunError> {
        let source = self.source(stream).await?;
        let runner = Arc::new(
            ProjectionRunner::new(
                projection,
                self.pool.clone(),
                self.store.clone(),
                source,
                ProjectionConfig::default(),
            )
            .with_upcasters(self.upcasters_for(stream)),
        );
        self.consumers.projection(Arc::clone(&runner)).await?;
        Ok(runner)
    }

    /// Runs `reaction` on the events of `stream`, through the durable
    /// consumer `config` names (created now, before the service serves).
    pub async fn reactor<R: Reaction>(
        &mut self,
        stream: Stream,
        config: ReactorConfig,
        reaction: R,
    ) -> Result<(), RunError> {
        let source = self.source(stream).await?;
        let reactor = Reactor::new(reaction, &self.store, source, config)
            .with_upcasters(self.upcasters_for(stream));
        self.consumers.reactor(reactor).await
    }

    /// Serves `service` (with health, reflection and `/metrics`) on
    /// `listener` until `shutdown`; then, once gRPC has drained, stops the
    /// consumers, which finish and ack what they hold.
    pub async fn serve<S>(
        self,
        listener: TcpListener,
        service: S,
        shutdown: CancellationToken,
    ) -> Result<(), RunError>
    where
        S: tower::Service<http::Request<tonic::body::Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.serve_routes(listener, Routes::new(service), &[S::NAME], shutdown)
            .await
    }

    /// [`serve`](Self::serve) for a service that serves several gRPC
    /// services on its port: `routes` holds them and `names` are their full
    /// names, for health.
    pub async fn serve_routes(
        self,
        listener: TcpListener,
        routes: Routes,
        names: &[&str],
        shutdown: CancellationToken,
    ) -> Result<(), RunError> {
        tracing::info!(addr = ?listener.local_addr().ok(), "{} service listening", self.spec.name);
        let health = self.consumers.health();
        let calls = Calls {
            authentication: Authentication::new(self.verifier, self.internal_token),
            idempotency: self.idempotency,
        };
        let served = grpc::serve(listener, routes, names, health, calls, shutdown).await;
        let consumed = self.consumers.stop().await;
        served?;
        consumed
    }
}
