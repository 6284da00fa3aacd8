//! The warehouse service: Stocklet's stock of every product.
//!
//! It owns each product's units on hand and the per-order reservations that
//! hold some of them. A product's stock is opened at zero when the product
//! is created; admins add and remove units; anyone can see a product's
//! stock, and admins can look at reservations.
//!
//! | events | |
//! | --- | --- |
//! | produces (stream `WAREHOUSE`) | `StockCreated`, `StockAdded`, `StockRemoved`; per product (`warehouse.stock.<product id>`) the saga's `StockHeld`, `StockReleased`, `StockConsumed`, `StockReturned`; per order (`warehouse.reservation.<order id>`) the order-level `StockReserved` or `StockReservationFailed`, then `ReservationReleased`, `ReservationConsumed`, `ReservationReturned` |
//! | consumes | `ProductCreated` (stream `PRODUCT`, opens the stock at zero); `OrderPriced`, `OrderCancelled` (`ORDER`); `ShipmentAllocationFailed` (`SHIPPING`); `PaymentFailed`, `PaymentCaptured` (`PAYMENT`) |
//!
//! A popular product's stock stays cheap to load however many orders it
//! served: the stock keeps only counts and is snapshotted, while each
//! order's hold (and so whether a redelivered step is due) is the
//! order-keyed [`domain::Reservation`]'s (see [`reactor::saga`]).
//!
//! Read model: `warehouse.stocks`, `warehouse.reservations` and
//! `warehouse.reservation_lines`, built by the [`projections::Inventory`]
//! projection. A command answers once the read model shows its effect, so
//! queries read their writes.
//!
//! Old versions of its events (a hold stored as a per-product
//! `StockReserved` before `StockHeld` existed) are upgraded as they are
//! read, by the chain in [`upcasters`], which `run` registers once for
//! every repository and for the projection.

pub mod api;
pub mod domain;
pub mod projections;
pub mod reactor;
pub mod upcasters;

use es_core::reactor::ReactorConfig;
use stocklet_proto::stocklet::warehouse::v1::warehouse_service_server::WarehouseServiceServer;
use stocklet_service_kit::lifecycle::RunError;
use stocklet_service_kit::service::{Service, ServiceSpec};
use stocklet_service_kit::streams::{self, Stream};
use stocklet_service_kit::{ConfigError, ServiceConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::WarehouseApi;
use crate::domain::Stock;
use crate::projections::Inventory;
use crate::reactor::{ProductReaction, SagaReaction};

/// The gRPC service name, for health checks.
pub const SERVICE_NAME: &str = "stocklet.warehouse.v1.WarehouseService";
/// The PostgreSQL schema of the read models.
pub const SCHEMA: &str = "warehouse";
/// The durable consumer that reacts to the `PRODUCT` stream.
pub const PRODUCT_CONSUMER: &str = "warehouse-from-product";
/// The durable consumers of the saga's source streams, each beside the
/// stream it reads.
pub const SAGA_CONSUMERS: [(Stream, &str); 3] = [
    (streams::ORDER, "warehouse-from-order"),
    (streams::SHIPPING, "warehouse-from-shipping"),
    (streams::PAYMENT, "warehouse-from-payment"),
];

/// The warehouse service's settings: the common ones and [`ADDR_VAR`].
pub type Config = ServiceConfig;

/// The variable naming where the gRPC server listens.
pub const ADDR_VAR: &str = "STOCKLET_WAREHOUSE_ADDR";
/// Where the gRPC server listens when [`ADDR_VAR`] is unset.
pub const DEFAULT_ADDR: &str = "127.0.0.1:15054";

/// Reads the settings from the environment, with defaults.
pub fn config_from_env() -> Result<Config, ConfigError> {
    ServiceConfig::from_env(ADDR_VAR, DEFAULT_ADDR)
}

/// Who the service is: its schema and its stream.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "warehouse",
    schema: SCHEMA,
    stream: streams::WAREHOUSE,
};

/// Runs the service on `listener` until `shutdown`, then stops gracefully.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let mut service = Service::start(&config.common, SPEC, sqlx::migrate!("./migrations"))
        .await?
        .with_upcasters(upcasters::upcasters());
    let stocks = service
        .snapshotted_repository::<Stock>(reactor::saga::STOCK_SNAPSHOT_EVERY)
        .await?;
    let inventory = service.projection(Inventory).await?;
    service
        .reactor(
            streams::PRODUCT,
            ReactorConfig::new(PRODUCT_CONSUMER),
            ProductReaction::new(stocks.clone()),
        )
        .await?;
    let saga = SagaReaction::new(stocks.clone(), service.repository());
    for (stream, consumer) in SAGA_CONSUMERS {
        service
            .reactor(stream, ReactorConfig::new(consumer), saga.clone())
            .await?;
    }
    let api = WarehouseApi::new(stocks, inventory, service.pool().clone());
    service
        .serve(listener, WarehouseServiceServer::new(api), shutdown)
        .await
}
