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

use es_core::reactor::ReactorConfig;
use stocklet_proto::stocklet::shipping::v1::shipping_service_server::ShippingServiceServer;
use stocklet_service_kit::ConfigError;
use stocklet_service_kit::config::{CommonConfig, env_or, env_parse};
use stocklet_service_kit::lifecycle::RunError;
use stocklet_service_kit::service::{Service, ServiceSpec};
use stocklet_service_kit::streams::{self, Stream};
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
pub const SAGA_CONSUMERS: [(Stream, &str); 3] = [
    (streams::WAREHOUSE, "shipping-from-warehouse"),
    (streams::PAYMENT, "shipping-from-payment"),
    (streams::ORDER, "shipping-from-order"),
];

/// The variable naming where the gRPC server listens.
pub const ADDR_VAR: &str = "STOCKLET_SHIPPING_ADDR";
/// Where the gRPC server listens when [`ADDR_VAR`] is unset (below the
/// ephemeral port range, see the README).
pub const DEFAULT_ADDR: &str = "127.0.0.1:15057";

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
            listen_addr: env_or(ADDR_VAR, DEFAULT_ADDR),
            shipment_capacity: env_parse("STOCKLET_SHIPMENT_CAPACITY", Capacity::default())?,
        })
    }
}

/// Who the service is: its schema and its stream.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "shipping",
    schema: SCHEMA,
    stream: streams::SHIPPING,
};

/// Runs the service on `listener` until `shutdown`, then stops gracefully.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let mut service = Service::start(&config.common, SPEC, sqlx::migrate!("./migrations")).await?;
    let shipments = service.projection(Shipments).await?;
    let saga = SagaReaction::new(service.repository(), config.shipment_capacity);
    for (stream, consumer) in SAGA_CONSUMERS {
        let mut reactor = ReactorConfig::new(consumer);
        // Only the order-level reservations, not every product's stock.
        if stream == streams::WAREHOUSE {
            reactor = reactor.with_filter_subjects([RESERVATION_SUBJECTS]);
        }
        service.reactor(stream, reactor, saga.clone()).await?;
    }
    let api = ShippingApi::new(service.repository(), shipments, service.pool().clone());
    service
        .serve(listener, ShippingServiceServer::new(api), shutdown)
        .await
}
