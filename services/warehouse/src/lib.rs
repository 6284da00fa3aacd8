//! The warehouse service: Stocklet's stock of every product.
//!
//! It owns each product's units on hand and the per-order reservations that
//! hold some of them. A product's stock is opened at zero when the product
//! is created; admins add and remove units; anyone can see a product's
//! stock, and admins can look at reservations.
//!
//! | events | |
//! | --- | --- |
//! | produces (stream `WAREHOUSE`) | `StockCreated`, `StockAdded`, `StockRemoved`; per product (`warehouse.stock.<product id>`) the saga's `StockReserved`, `StockReleased`, `StockConsumed`, `StockReturned`; per order (`warehouse.reservation.<order id>`) the order-level `StockReserved` or `StockReservationFailed` |
//! | consumes | `ProductCreated` (stream `PRODUCT`, opens the stock at zero); `OrderPriced`, `OrderCancelled` (`ORDER`); `ShipmentAllocationFailed` (`SHIPPING`); `PaymentFailed`, `PaymentCaptured` (`PAYMENT`) |
//!
//! Read model: `warehouse.stocks`, `warehouse.reservations` and
//! `warehouse.reservation_lines`, built by the [`projections::Inventory`]
//! projection. A command answers once the read model shows its effect, so
//! queries read their writes.

pub mod api;
pub mod domain;
pub mod projections;
pub mod reactor;

use std::sync::Arc;

use es_core::Repository;
use es_core::projection::{ProjectionConfig, ProjectionRunner};
use es_core::reactor::{Reactor, ReactorConfig};
use stocklet_proto::stocklet::warehouse::v1::warehouse_service_server::WarehouseServiceServer;
use stocklet_service_kit::config::{CommonConfig, env_or};
use stocklet_service_kit::consumers::Consumers;
use stocklet_service_kit::lifecycle::{self, RunError};
use stocklet_service_kit::streams;
use stocklet_service_kit::{ConfigError, db, grpc};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::WarehouseApi;
use crate::projections::Inventory;
use crate::reactor::{ProductReaction, SagaReaction};

/// The gRPC service name, for health checks.
pub const SERVICE_NAME: &str = "stocklet.warehouse.v1.WarehouseService";
/// The PostgreSQL schema of the read models.
pub const SCHEMA: &str = "warehouse";
/// The durable consumer that reacts to the `PRODUCT` stream.
pub const PRODUCT_CONSUMER: &str = "warehouse-from-product";
/// The durable consumers of the saga's source streams: (stream, consumer).
pub const SAGA_CONSUMERS: [(&str, &str); 3] = [
    ("ORDER", "warehouse-from-order"),
    ("SHIPPING", "warehouse-from-shipping"),
    ("PAYMENT", "warehouse-from-payment"),
];

/// The warehouse service's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Settings every service shares.
    pub common: CommonConfig,
    /// `STOCKLET_WAREHOUSE_ADDR`: where the gRPC server listens.
    pub listen_addr: String,
}

impl Config {
    /// Reads the settings from the environment, with defaults.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            common: CommonConfig::from_env()?,
            listen_addr: env_or("STOCKLET_WAREHOUSE_ADDR", "127.0.0.1:50054"),
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
            streams::WAREHOUSE,
            streams::PRODUCT,
            streams::ORDER,
            streams::SHIPPING,
            streams::PAYMENT,
        ],
        config.common.stream_replicas,
    )
    .await?;
    let mut streams = streams.into_iter();
    let (Some(stream), Some(product_stream)) = (streams.next(), streams.next()) else {
        return Err(RunError::Config(
            "WAREHOUSE or PRODUCT stream missing".into(),
        ));
    };
    let sources: Vec<es_core::StreamRef> = streams.collect();
    let pool = db::connect(
        &config.common.database_url,
        SCHEMA,
        config.common.db_pool_size,
    )
    .await?;
    sqlx::migrate!("./migrations").run(&pool).await?;

    let stocks = Repository::new(store.clone(), stream.clone());
    let reservations = Repository::new(store.clone(), stream.clone());
    let inventory = Arc::new(ProjectionRunner::new(
        Inventory,
        pool.clone(),
        store.clone(),
        stream,
        ProjectionConfig::default(),
    ));
    let mut consumers = Consumers::new();
    consumers.projection(Arc::clone(&inventory)).await?;
    consumers
        .reactor(Reactor::new(
            ProductReaction::new(stocks.clone()),
            store.context().clone(),
            product_stream,
            ReactorConfig::new(PRODUCT_CONSUMER),
        ))
        .await?;
    let saga = SagaReaction::new(stocks.clone(), reservations);
    for (source, (name, consumer)) in sources.into_iter().zip(SAGA_CONSUMERS) {
        if source.name != name {
            return Err(RunError::Config(format!("{name} stream missing")));
        }
        consumers
            .reactor(Reactor::new(
                saga.clone(),
                store.context().clone(),
                source,
                ReactorConfig::new(consumer),
            ))
            .await?;
    }

    let api = WarehouseApi::new(
        stocks,
        inventory,
        pool,
        config.common.internal_token.clone(),
    );
    tracing::info!(addr = ?listener.local_addr().ok(), "warehouse service listening");
    let served = grpc::serve(
        listener,
        tonic::service::Routes::new(WarehouseServiceServer::new(api)),
        &[SERVICE_NAME],
        shutdown,
    )
    .await;

    // gRPC has drained; now let the consumers finish what they hold.
    let consumed = consumers.stop().await;
    served?;
    consumed
}
