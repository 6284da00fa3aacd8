//! The shipping service: Stocklet's shipments.
//!
//! It owns one shipment per order, with the manifest of what it carries.
//! A shipment carries at most `STOCKLET_SHIPMENT_CAPACITY` units, so an
//! order too big to ship fails its allocation. Customers see their own
//! shipments, admins everyone's, and admins dispatch allocated shipments.
//!
//! | events | |
//! | --- | --- |
//! | produces (stream `SHIPPING`) | `ShipmentDispatched` (the order service completes the order on it); the domain also decides `ShipmentAllocated`, `ShipmentAllocationFailed`, `ShipmentReleased`, which the saga (next issue) will drive |
//! | consumes | none yet (allocation on `StockReserved` and release on `PaymentFailed` / `OrderCancelled` come with the saga) |
//!
//! Read model: `shipping.shipments` and `shipping.shipment_items`, built by
//! the [`projections::Shipments`] projection. A command answers once the
//! read model shows its effect, so queries read their writes.

pub mod api;
pub mod domain;
pub mod projections;

use std::sync::Arc;

use es_core::Repository;
use es_core::projection::{ProjectionConfig, ProjectionRunner};
use es_core::streams::definitions;
use stocklet_proto::stocklet::shipping::v1::shipping_service_server::ShippingServiceServer;
use stocklet_service_kit::config::{CommonConfig, env_or, env_parse};
use stocklet_service_kit::lifecycle::{self, RunError};
use stocklet_service_kit::{ConfigError, db, grpc};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::ShippingApi;
use crate::domain::Capacity;
use crate::projections::Shipments;

/// The gRPC service name, for health checks.
pub const SERVICE_NAME: &str = "stocklet.shipping.v1.ShippingService";
/// The PostgreSQL schema of the read models.
pub const SCHEMA: &str = "shipping";

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
        &[definitions::SHIPPING],
        config.common.stream_replicas,
    )
    .await?;
    let stream = streams
        .into_iter()
        .next()
        .ok_or_else(|| RunError::Config("SHIPPING stream missing".into()))?;
    let pool = db::connect(&config.common.database_url, SCHEMA, 8).await?;
    sqlx::migrate!("./migrations").run(&pool).await?;

    let shipments = Arc::new(ProjectionRunner::new(
        Shipments,
        pool.clone(),
        store.clone(),
        stream.clone(),
        ProjectionConfig::default(),
    ));
    let consumers = CancellationToken::new();
    let projection = tokio::spawn({
        let (shipments, consumers) = (Arc::clone(&shipments), consumers.clone());
        async move { shipments.run(consumers).await }
    });

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
    consumers.cancel();
    let consumed = projection
        .await
        .map_err(|e| RunError::Consumer(e.to_string()))?
        .map_err(|e| RunError::Consumer(e.to_string()));
    served?;
    consumed
}
