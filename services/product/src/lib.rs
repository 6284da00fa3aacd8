//! The product service: Stocklet's catalogue.
//!
//! It owns products and their prices. Admins create products, change their
//! price or details, and delete them; anyone can browse the catalogue.
//!
//! | events | |
//! | --- | --- |
//! | produces (stream `PRODUCT`) | `ProductCreated`, `ProductPriceUpdated`, `ProductDetailsUpdated`, `ProductDeleted` |
//! | produces (stream `PRODUCT`, subject `product.quote.<order id>`) | the saga's `PriceQuoted` or `PriceQuoteFailed`, one per order |
//! | consumes (stream `ORDER`) | `OrderPlaced` (prices the order) |
//!
//! Read model: `product.products`, built by the [`projections::Catalogue`]
//! projection. A command answers once the catalogue shows its effect, so
//! queries read their writes.

pub mod api;
pub mod domain;
pub mod projections;
pub mod reactor;

use std::sync::Arc;

use es_core::Repository;
use es_core::projection::{ProjectionConfig, ProjectionRunner};
use es_core::reactor::{Reactor, ReactorConfig};
use stocklet_proto::stocklet::product::v1::product_service_server::ProductServiceServer;
use stocklet_service_kit::config::{CommonConfig, env_or};
use stocklet_service_kit::consumers::Consumers;
use stocklet_service_kit::lifecycle::{self, RunError};
use stocklet_service_kit::streams;
use stocklet_service_kit::{ConfigError, db, grpc};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::ProductApi;
use crate::projections::Catalogue;
use crate::reactor::OrderReaction;

/// The gRPC service name, for health checks.
pub const SERVICE_NAME: &str = "stocklet.product.v1.ProductService";
/// The PostgreSQL schema of the read models.
pub const SCHEMA: &str = "product";
/// The durable consumer that reacts to the `ORDER` stream.
pub const ORDER_CONSUMER: &str = "product-from-order";

/// The product service's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Settings every service shares.
    pub common: CommonConfig,
    /// `STOCKLET_PRODUCT_ADDR`: where the gRPC server listens.
    pub listen_addr: String,
}

impl Config {
    /// Reads the settings from the environment, with defaults.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            common: CommonConfig::from_env()?,
            listen_addr: env_or("STOCKLET_PRODUCT_ADDR", "127.0.0.1:50053"),
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
        &[streams::PRODUCT, streams::ORDER],
        config.common.stream_replicas,
    )
    .await?;
    let [stream, order_stream]: [es_core::StreamRef; 2] = streams
        .try_into()
        .map_err(|_| RunError::Config("PRODUCT or ORDER stream missing".into()))?;
    let pool = db::connect(
        &config.common.database_url,
        SCHEMA,
        config.common.db_pool_size,
    )
    .await?;
    sqlx::migrate!("./migrations").run(&pool).await?;

    let catalogue = Arc::new(ProjectionRunner::new(
        Catalogue,
        pool.clone(),
        store.clone(),
        stream.clone(),
        ProjectionConfig::default(),
    ));
    let mut consumers = Consumers::new();
    consumers.projection(Arc::clone(&catalogue)).await?;
    consumers
        .reactor(Reactor::new(
            OrderReaction::new(
                Repository::new(store.clone(), stream.clone()),
                Repository::new(store.clone(), stream.clone()),
            ),
            store.context().clone(),
            order_stream,
            ReactorConfig::new(ORDER_CONSUMER),
        ))
        .await?;

    let api = ProductApi::new(
        Repository::new(store, stream),
        catalogue,
        pool,
        config.common.internal_token.clone(),
    );
    tracing::info!(addr = ?listener.local_addr().ok(), "product service listening");
    let served = grpc::serve(
        listener,
        tonic::service::Routes::new(ProductServiceServer::new(api)),
        &[SERVICE_NAME],
        shutdown,
    )
    .await;

    // gRPC has drained; now let the consumers finish what they hold.
    let consumed = consumers.stop().await;
    served?;
    consumed
}
