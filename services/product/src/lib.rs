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

use es_core::reactor::ReactorConfig;
use stocklet_proto::stocklet::product::v1::product_service_server::ProductServiceServer;
use stocklet_service_kit::lifecycle::RunError;
use stocklet_service_kit::service::{Service, ServiceSpec};
use stocklet_service_kit::streams;
use stocklet_service_kit::{ConfigError, ServiceConfig};
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

/// The product service's settings: the common ones and [`ADDR_VAR`].
pub type Config = ServiceConfig;

/// The variable naming where the gRPC server listens.
pub const ADDR_VAR: &str = "STOCKLET_PRODUCT_ADDR";
/// Where the gRPC server listens when [`ADDR_VAR`] is unset.
pub const DEFAULT_ADDR: &str = "127.0.0.1:15053";

/// Reads the settings from the environment, with defaults.
pub fn config_from_env() -> Result<Config, ConfigError> {
    ServiceConfig::from_env(ADDR_VAR, DEFAULT_ADDR)
}

/// Who the service is: its schema and its stream.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "product",
    schema: SCHEMA,
    stream: streams::PRODUCT,
};

/// Runs the service on `listener` until `shutdown`, then stops gracefully.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let mut service = Service::start(&config.common, SPEC, sqlx::migrate!("./migrations")).await?;
    let catalogue = service.projection(Catalogue).await?;
    service
        .reactor(
            streams::ORDER,
            ReactorConfig::new(ORDER_CONSUMER),
            OrderReaction::new(service.repository(), service.repository()),
        )
        .await?;
    let api = ProductApi::new(service.repository(), catalogue, service.pool().clone());
    service
        .serve(listener, ProductServiceServer::new(api), shutdown)
        .await
}
