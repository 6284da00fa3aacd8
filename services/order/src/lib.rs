//! The order service: Stocklet's orders and the state machine of the
//! place-order saga.
//!
//! Customers place orders (the customer is always the caller), read their
//! own orders and cancel approved ones; admins read anyone's. An order's
//! [`domain::Order`] aggregate is the saga's state machine: PROCESSING ->
//! PENDING -> APPROVED -> COMPLETED, or REJECTED, or CANCELLED, with every
//! status change and its time kept in the order's history.
//!
//! | events | |
//! | --- | --- |
//! | produces (stream `ORDER`) | `OrderPlaced`; the saga's `OrderPriced`, `OrderRejected`, `OrderApproved`, `OrderCompleted`, and `OrderCancelled` (CancelOrder on an approved order) |
//! | consumes | none yet: the reactions to `PriceQuoted`, `PriceQuoteFailed`, `StockReservationFailed`, `ShipmentAllocationFailed`, `PaymentFailed`, `PaymentCaptured` and `ShipmentDispatched` (the aggregate's [`domain::SagaInput`]s) come with the saga |
//!
//! Read model: `order.orders` and `order.order_items`, built by the
//! [`projections::Orders`] projection. A command answers once the read
//! model shows its effect, so queries read their writes.

pub mod api;
pub mod domain;
pub mod projections;

use std::sync::Arc;

use es_core::Repository;
use es_core::projection::{ProjectionConfig, ProjectionRunner};
use es_core::streams::definitions;
use stocklet_proto::stocklet::order::v1::order_service_server::OrderServiceServer;
use stocklet_service_kit::config::{CommonConfig, env_or, env_parse};
use stocklet_service_kit::lifecycle::{self, RunError};
use stocklet_service_kit::{ConfigError, db, grpc};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::OrderApi;
use crate::domain::Cents;
use crate::projections::Orders;

/// The gRPC service name, for health checks.
pub const SERVICE_NAME: &str = "stocklet.order.v1.OrderService";
/// The PostgreSQL schema of the read models.
pub const SCHEMA: &str = "order";
/// The default flat shipping fee, in cents.
pub const DEFAULT_SHIPPING_FEE_CENTS: i64 = 499;

/// The order service's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Settings every service shares.
    pub common: CommonConfig,
    /// `STOCKLET_ORDER_ADDR`: where the gRPC server listens.
    pub listen_addr: String,
    /// `STOCKLET_SHIPPING_FEE_CENTS`: the flat shipping fee added to every
    /// order when it is priced (default 499).
    pub shipping_fee: Cents,
}

impl Config {
    /// Reads the settings from the environment, with defaults.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            common: CommonConfig::from_env()?,
            listen_addr: env_or("STOCKLET_ORDER_ADDR", "127.0.0.1:50055"),
            shipping_fee: shipping_fee(env_parse(
                SHIPPING_FEE_VARIABLE,
                DEFAULT_SHIPPING_FEE_CENTS,
            )?)?,
        })
    }
}

const SHIPPING_FEE_VARIABLE: &str = "STOCKLET_SHIPPING_FEE_CENTS";

/// A configured shipping fee: an amount in cents, like any price.
fn shipping_fee(raw: i64) -> Result<Cents, ConfigError> {
    Cents::parse(raw).map_err(|e| ConfigError {
        name: SHIPPING_FEE_VARIABLE.to_owned(),
        value: raw.to_string(),
        reason: e.to_string(),
    })
}

/// Runs the service on `listener` until `shutdown`, then stops gracefully.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let store = lifecycle::connect_event_store(&config.common.nats_url).await?;
    let streams =
        lifecycle::provision(&store, &[definitions::ORDER], config.common.stream_replicas).await?;
    let stream = streams
        .into_iter()
        .next()
        .ok_or_else(|| RunError::Config("ORDER stream missing".into()))?;
    let pool = db::connect(&config.common.database_url, SCHEMA, 8).await?;
    sqlx::migrate!("./migrations").run(&pool).await?;

    let orders = Arc::new(ProjectionRunner::new(
        Orders,
        pool.clone(),
        store.clone(),
        stream.clone(),
        ProjectionConfig::default(),
    ));
    let consumers = CancellationToken::new();
    let projection = tokio::spawn({
        let (orders, consumers) = (Arc::clone(&orders), consumers.clone());
        async move { orders.run(consumers).await }
    });

    let api = OrderApi::new(
        Repository::new(store, stream),
        orders,
        pool,
        config.common.internal_token.clone(),
    );
    tracing::info!(addr = ?listener.local_addr().ok(), "order service listening");
    let served = grpc::serve(
        listener,
        tonic::service::Routes::new(OrderServiceServer::new(api)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipping_fee_is_an_amount_in_cents() {
        assert_eq!(shipping_fee(499).map(Cents::get).ok(), Some(499));
        assert_eq!(shipping_fee(0).map(Cents::get).ok(), Some(0));
        let negative = shipping_fee(-1).err().map(|e| e.name);
        assert_eq!(negative.as_deref(), Some(SHIPPING_FEE_VARIABLE));
    }
}
