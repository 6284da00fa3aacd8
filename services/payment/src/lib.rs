//! The payment service: Stocklet's customer balances and transactions.
//!
//! It owns each customer's prepaid balance and the payments taken from it.
//! A balance is opened at zero when a user registers and closed when the
//! user is deleted; admins top balances up; customers see their own balance
//! and transactions, admins everyone's.
//!
//! | events | |
//! | --- | --- |
//! | produces (stream `PAYMENT`) | per customer (`payment.balance.<customer id>`) `BalanceOpened`, `BalanceCredited`, `BalanceClosed`, and the saga's `BalanceDebited` + `PaymentCaptured` or `PaymentFailed`, and `TransactionReversed`; per order (`payment.payment.<order id>`, in the same atomic batch) `OrderPaymentCaptured` or `OrderPaymentFailed`, then `OrderPaymentReversed` |
//! | consumes | `UserRegistered` (stream `USER`, opens the balance), `UserDeleted` (closes it); `ShipmentAllocated` (`SHIPPING`, debits the order); `OrderCancelled` (`ORDER`, refunds it) |
//!
//! A busy customer's balance stays cheap to load however many orders they
//! paid: the balance keeps only its money and is snapshotted, while what
//! happened to each order's payment (and so whether a redelivered step is
//! due) is the order-keyed [`domain::Payment`]'s (see [`reactor::saga`]).
//!
//! Read model: `payment.balances` and `payment.transactions`, built by the
//! [`projections::Ledger`] projection. A command answers once the read
//! model shows its effect, so queries read their writes.

pub mod api;
pub mod domain;
pub mod projections;
pub mod reactor;

use es_core::reactor::ReactorConfig;
use stocklet_proto::stocklet::payment::v1::payment_service_server::PaymentServiceServer;
use stocklet_service_kit::lifecycle::RunError;
use stocklet_service_kit::service::{Service, ServiceSpec};
use stocklet_service_kit::streams::{self, Stream};
use stocklet_service_kit::{ConfigError, ServiceConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::PaymentApi;
use crate::domain::Balance;
use crate::projections::Ledger;
use crate::reactor::{SagaReaction, UserReaction};

/// The gRPC service name, for health checks.
pub const SERVICE_NAME: &str = "stocklet.payment.v1.PaymentService";
/// The PostgreSQL schema of the read models.
pub const SCHEMA: &str = "payment";
/// The durable consumer that reacts to the `USER` stream.
pub const USER_CONSUMER: &str = "payment-from-user";
/// The durable consumers of the saga's source streams, each beside the
/// stream it reads.
pub const SAGA_CONSUMERS: [(Stream, &str); 2] = [
    (streams::SHIPPING, "payment-from-shipping"),
    (streams::ORDER, "payment-from-order"),
];

/// The payment service's settings: the common ones and [`ADDR_VAR`].
pub type Config = ServiceConfig;

/// The variable naming where the gRPC server listens.
pub const ADDR_VAR: &str = "STOCKLET_PAYMENT_ADDR";
/// Where the gRPC server listens when [`ADDR_VAR`] is unset.
pub const DEFAULT_ADDR: &str = "127.0.0.1:15056";

/// Reads the settings from the environment, with defaults.
pub fn config_from_env() -> Result<Config, ConfigError> {
    ServiceConfig::from_env(ADDR_VAR, DEFAULT_ADDR)
}

/// Who the service is: its schema and its stream.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "payment",
    schema: SCHEMA,
    stream: streams::PAYMENT,
};

/// Runs the service on `listener` until `shutdown`, then stops gracefully.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let mut service = Service::start(&config.common, SPEC, sqlx::migrate!("./migrations")).await?;
    let balances = service
        .snapshotted_repository::<Balance>(reactor::saga::BALANCE_SNAPSHOT_EVERY)
        .await?;
    let ledger = service.projection(Ledger).await?;
    service
        .reactor(
            streams::USER,
            ReactorConfig::new(USER_CONSUMER),
            UserReaction::new(balances.clone()),
        )
        .await?;
    let saga = SagaReaction::new(balances.clone(), service.repository());
    for (stream, consumer) in SAGA_CONSUMERS {
        service
            .reactor(stream, ReactorConfig::new(consumer), saga.clone())
            .await?;
    }
    let api = PaymentApi::new(balances, ledger, service.pool().clone());
    service
        .serve(listener, PaymentServiceServer::new(api), shutdown)
        .await
}
