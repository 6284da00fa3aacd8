//! The warehouse service: Stocklet's stock of every product.
//!
//! It owns each product's units on hand and the per-order reservations that
//! hold some of them. A product's stock is opened at zero when the product
//! is created; admins add and remove units; anyone can see a product's
//! stock, and admins can look at reservations.
//!
//! | events | |
//! | --- | --- |
//! | produces (stream `WAREHOUSE`) | `StockCreated`, `StockAdded`, `StockRemoved`; the domain also decides `StockReserved`, `StockReleased`, `StockConsumed`, `StockReturned`, which the saga (next issue) will drive |
//! | consumes (stream `PRODUCT`) | `ProductCreated` (opens the stock at zero) |
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
use es_core::streams::definitions;
use stocklet_proto::stocklet::warehouse::v1::warehouse_service_server::WarehouseServiceServer;
use stocklet_service_kit::config::{CommonConfig, env_or};
use stocklet_service_kit::lifecycle::{self, RunError};
use stocklet_service_kit::{ConfigError, db, grpc};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::WarehouseApi;
use crate::projections::Inventory;
use crate::reactor::ProductReaction;

/// The gRPC service name, for health checks.
pub const SERVICE_NAME: &str = "stocklet.warehouse.v1.WarehouseService";
/// The PostgreSQL schema of the read models.
pub const SCHEMA: &str = "warehouse";
/// The durable consumer that reacts to the `PRODUCT` stream.
pub const PRODUCT_CONSUMER: &str = "warehouse-from-product";

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
        &[definitions::WAREHOUSE, definitions::PRODUCT],
        config.common.stream_replicas,
    )
    .await?;
    let [stream, product_stream]: [es_core::StreamRef; 2] = streams
        .try_into()
        .map_err(|_| RunError::Config("WAREHOUSE or PRODUCT stream missing".into()))?;
    let pool = db::connect(&config.common.database_url, SCHEMA, 8).await?;
    sqlx::migrate!("./migrations").run(&pool).await?;

    let stocks = Repository::new(store.clone(), stream.clone());
    let inventory = Arc::new(ProjectionRunner::new(
        Inventory,
        pool.clone(),
        store.clone(),
        stream,
        ProjectionConfig::default(),
    ));
    let products = Reactor::new(
        ProductReaction::new(stocks.clone()),
        store.context().clone(),
        product_stream,
        ReactorConfig::new(PRODUCT_CONSUMER),
    );
    products
        .ensure_consumer()
        .await
        .map_err(|e| RunError::Consumer(e.to_string()))?;

    let consumers = CancellationToken::new();
    let projection = tokio::spawn({
        let (inventory, consumers) = (Arc::clone(&inventory), consumers.clone());
        async move { inventory.run(consumers).await }
    });
    let reactor = tokio::spawn({
        let consumers = consumers.clone();
        async move { products.run(consumers).await }
    });

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
    consumers.cancel();
    let reacted = reactor
        .await
        .map_err(|e| RunError::Consumer(e.to_string()))?
        .map_err(|e| RunError::Consumer(e.to_string()));
    let consumed = projection
        .await
        .map_err(|e| RunError::Consumer(e.to_string()))?
        .map_err(|e| RunError::Consumer(e.to_string()));
    served?;
    reacted?;
    consumed
}
