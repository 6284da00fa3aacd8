//! The shipping service: Stocklet's shipments.
//!
//! It owns one shipment per order, with the manifest of what it carries.
//! A shipment carries at most `STOCKLET_SHIPMENT_CAPACITY` units, so an
//! order too big to ship fails its allocation. Customers see their own
//! shipments, admins everyone's, and admins dispatch allocated shipments.
//!
//! | events | |
//! | --- | --- |
//! | produces (stream `SHIPPING`) | the saga's `ShipmentAllocated` or `ShipmentAllocationFailed`, `ShipmentReleased`; `ShipmentDispatched` (the order service completes the order on it) |
//! | consumes | `StockReserved` (stream `WAREHOUSE`, order-level subjects only: allocates), `PaymentFailed` (`PAYMENT`) and `OrderCancelled` (`ORDER`): release |
//!
//! Read model: `shipping.shipments` and `shipping.shipment_items`, built by
//! the [`projections::Shipments`] projection. A command answers once the
//! read model shows its effect, so queries read their writes.

pub mod api;
pub mod domain;
pub mod projections;
pub mod reactor;

use std::sync::Arc;

use es_core::Repository;
use es_core::projection::{ProjectionConfig, ProjectionRunner};
use es_core::reactor::{Reactor, ReactorConfig};
use stocklet_proto::stocklet::shipping::v1::shipping_service_server::ShippingServiceServer;
use stocklet_service_kit::config::{CommonConfig, env_or, env_parse};
use stocklet_service_kit::consumers::Consumers;
use stocklet_service_kit::lifecycle::{self, RunError};
use stocklet_service_kit::streams;
use stocklet_service_kit::{ConfigError, db, grpc};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::ShippingApi;
use crate::domain::Capacity;
use crate::projections::Shipments;
use crate::reactor::{RESERVATION_SUBJECTS, SagaReaction};

/// The gRPC service name, for health checks.
pub const SERVICE_NAME: &str = "stocklet.shipping.v1.ShippingService";
/// The PostgreSQL schema of the read models.
pub const SCHEMA: &str = "shipping";
/// The durable consumers of the saga's source streams: (stream, consumer).
pub const SAGA_CONSUMERS: [(&str, &str); 3] = [
    ("WAREHOUSE", "shipping-from-warehouse"),
    ("PAYMENT", "shipping-from-payment"),
    ("ORDER", "shipping-from-order"),
];

/// The shipping service's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Settings every service shares.
    pub common: CommonConfig,
    /// `STOCKLET_SHIPPING_ADDR`: where the gRPC server listens.
    pub listen_addr: String,
    /// `STOCKLET_SHIPMENT_CAPACITY`: the most units one shipment carries
    /// (default 50); a larger order fails its allocation.
    pub shipment_capacity: Capacity,
}

impl Config {
    /// Reads the settings from the environment, with defaults.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            common: CommonConfig::from_env()?,
            listen_addr: env_or("STOCKLET_SHIPPING_ADDR", "127.0.0.1:50057"),
            shipment_capacity: env_parse("STOCKLET_SHIPMENT_CAPACITY", Capacity::default())?,
        })
    }
}

/// Runs the service on `listener` until `shutdown`, then stops gracefully.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let store = lifecycle::connect_event_store(&config.common.nats_url).await?;
    let streams = lifecycle::provision(
        &store,
        &[
            streams::SHIPPING,
            streams::WAREHOUSE,
            streams::PAYMENT,
            streams::ORDER,
        ],
        config.common.stream_replicas,
    )
    .await?;
    let mut streams = streams.into_iter();
    let stream = streams
        .next()
        .ok_or_else(|| RunError::Config("SHIPPING stream missing".into()))?;
    let sources: Vec<es_core::StreamRef> = streams.collect();
    let pool = db::connect(
        &config.common.database_url,
        SCHEMA,
        config.common.db_pool_size,
    )
    .await?;
    sqlx::migrate!("./migrations").run(&pool).await?;

    let shipments = Arc::new(ProjectionRunner::new(
        Shipments,
        pool.clone(),
        store.clone(),
        stream.clone(),
        ProjectionConfig::default(),
    ));
    let saga = SagaReaction::new(
        Repository::new(store.clone(), stream.clone()),
        config.shipment_capacity,
    );
    let mut consumers = Consumers::new();
    consumers.projection(Arc::clone(&shipments)).await?;
    for (source, (name, consumer)) in sources.into_iter().zip(SAGA_CONSUMERS) {
        if source.name != name {
            return Err(RunError::Config(format!("{name} stream missing")));
        }
        let mut reactor_config = ReactorConfig::new(consumer);
        if name == "WAREHOUSE" {
            reactor_config.filter_subjects = vec![RESERVATION_SUBJECTS.to_owned()];
        }
        consumers
            .reactor(Reactor::new(
                saga.clone(),
                store.context().clone(),
                source,
                reactor_config,
            ))
            .await?;
    }

    let api = ShippingApi::new(
        Repository::new(store, stream),
        shipments,
        pool,
        config.common.internal_token.clone(),
    );
    tracing::info!(
        addr = ?listener.local_addr().ok(),
        capacity = config.shipment_capacity.get(),
        "shipping service listening"
    );
    let served = grpc::serve(
        listener,
        tonic::service::Routes::new(ShippingServiceServer::new(api)),
        &[SERVICE_NAME],
        shutdown,
    )
    .await;

    // gRPC has drained; now let the consumers finish what they hold.
    let consumed = consumers.stop().await;
    served?;
    consumed
}
