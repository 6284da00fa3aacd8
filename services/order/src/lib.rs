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
//! | consumes | `PriceQuoted`, `PriceQuoteFailed` (stream `PRODUCT`), `StockReservationFailed` (`WAREHOUSE`), `ShipmentAllocationFailed`, `ShipmentDispatched` (`SHIPPING`), `PaymentFailed`, `PaymentCaptured` (`PAYMENT`): the aggregate's [`domain::SagaInput`]s, through [`reactor::SagaReaction`] |
//!
//! Read models: `order.orders` and `order.order_items`, built by the
//! [`projections::Orders`] projection (a command answers once they show its
//! effect, so queries read their writes); `order.saga_events`, every
//! service's events of each order's saga, built by one
//! [`projections::Timeline`] per source stream, behind ViewOrderTimeline
//! and ListStuckSagas.

pub mod api;
pub mod domain;
pub mod projections;
pub mod reactor;

use std::time::Duration;

use es_core::EventStore as _;
use es_core::deadletter::DeadLetters;
use es_core::reactor::ReactorConfig;
use stocklet_proto::stocklet::order::v1::dead_letter_service_server::DeadLetterServiceServer;
use stocklet_proto::stocklet::order::v1::order_service_server::OrderServiceServer;
use stocklet_service_kit::ConfigError;
use stocklet_service_kit::config::{CommonConfig, env_or, env_parse};
use stocklet_service_kit::lifecycle::RunError;
use stocklet_service_kit::service::{Service, ServiceSpec};
use stocklet_service_kit::streams::{self, Stream};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::service::Routes;

use crate::api::OrderApi;
use crate::api::deadletters::DeadLetterApi;
use crate::domain::Cents;
use crate::projections::{Orders, Timeline};
use crate::reactor::SagaReaction;

/// The gRPC service name, for health checks.
pub const SERVICE_NAME: &str = "stocklet.order.v1.OrderService";
/// The PostgreSQL schema of the read models.
pub const SCHEMA: &str = "order";
/// The durable consumers that react to the saga's source streams, one per
/// stream: (stream, consumer).
pub const SAGA_CONSUMERS: [(Stream, &str); 4] = [
    (streams::PRODUCT, "order-from-product"),
    (streams::WAREHOUSE, "order-from-warehouse"),
    (streams::SHIPPING, "order-from-shipping"),
    (streams::PAYMENT, "order-from-payment"),
];
/// The default flat shipping fee, in cents.
pub const DEFAULT_SHIPPING_FEE_CENTS: i64 = 499;
/// The default time without progress after which ListStuckSagas lists a
/// saga, in milliseconds.
pub const DEFAULT_STUCK_SAGA_TIMEOUT_MS: i64 = 30_000;

/// The variable naming where the gRPC server listens.
pub const ADDR_VAR: &str = "STOCKLET_ORDER_ADDR";
/// Where the gRPC server listens when [`ADDR_VAR`] is unset (below the
/// ephemeral port range, see the README).
pub const DEFAULT_ADDR: &str = "127.0.0.1:15055";

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
    /// `STOCKLET_STUCK_SAGA_TIMEOUT_MS`: how long a running saga may make no
    /// progress before ListStuckSagas lists it, unless the request names
    /// another timeout (default 30000).
    pub stuck_saga_timeout: Duration,
}

impl Config {
    /// Reads the settings from the environment, with defaults.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            common: CommonConfig::from_env()?,
            listen_addr: env_or(ADDR_VAR, DEFAULT_ADDR),
            shipping_fee: shipping_fee(env_parse(
                SHIPPING_FEE_VARIABLE,
                DEFAULT_SHIPPING_FEE_CENTS,
            )?)?,
            stuck_saga_timeout: Duration::from_millis(env_parse(
                "STOCKLET_STUCK_SAGA_TIMEOUT_MS",
                DEFAULT_STUCK_SAGA_TIMEOUT_MS.unsigned_abs(),
            )?),
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

/// Who the service is: its schema and its stream.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "order",
    schema: SCHEMA,
    stream: streams::ORDER,
};

/// Runs the service on `listener` until `shutdown`, then stops gracefully.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let mut service = Service::start(&config.common, SPEC, sqlx::migrate!("./migrations")).await?;
    let orders = service.projection(Orders).await?;
    // The saga's timeline gathers every source stream, this one included.
    let descriptors = prost_reflect::DescriptorPool::decode(stocklet_proto::FILE_DESCRIPTOR_SET)
        .map_err(|e| RunError::Config(format!("event descriptors: {e}")))?;
    for stream in std::iter::once(streams::ORDER).chain(SAGA_CONSUMERS.map(|(stream, _)| stream)) {
        service
            .projection_of(
                stream,
                Timeline::of_stream(stream.name, descriptors.clone()),
            )
            .await?;
    }
    let reaction = SagaReaction::new(service.repository(), config.shipping_fee);
    for (stream, consumer) in SAGA_CONSUMERS {
        service
            .reactor(stream, ReactorConfig::new(consumer), reaction.clone())
            .await?;
    }
    let api = OrderApi::new(
        service.repository(),
        orders,
        service.pool().clone(),
        config.stuck_saga_timeout,
    );
    let dead_letters = DeadLetterApi::new(
        DeadLetters::new(
            service.store().context().clone(),
            service.store().conventions().clone(),
        ),
        descriptors,
    );
    let routes = Routes::new(OrderServiceServer::new(api))
        .add_service(DeadLetterServiceServer::new(dead_letters));
    service
        .serve_routes(
            listener,
            routes,
            &[
                <OrderServiceServer<OrderApi> as NamedService>::NAME,
                <DeadLetterServiceServer<DeadLetterApi> as NamedService>::NAME,
            ],
            shutdown,
        )
        .await
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
