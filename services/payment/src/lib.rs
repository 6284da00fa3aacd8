//! The payment service: Stocklet's customer balances and transactions.
//!
//! It owns each customer's prepaid balance and the payments taken from it.
//! A balance is opened at zero when a user registers and closed when the
//! user is deleted; admins top balances up; customers see their own balance
//! and transactions, admins everyone's.
//!
//! | events | |
//! | --- | --- |
//! | produces (stream `PAYMENT`) | `BalanceOpened`, `BalanceCredited`, `BalanceClosed`; the saga's `BalanceDebited` + `PaymentCaptured` or `PaymentFailed`, and `TransactionReversed` |
//! | consumes | `UserRegistered` (stream `USER`, opens the balance), `UserDeleted` (closes it); `ShipmentAllocated` (`SHIPPING`, debits the order); `OrderCancelled` (`ORDER`, refunds it) |
//!
//! Read model: `payment.balances` and `payment.transactions`, built by the
//! [`projections::Ledger`] projection. A command answers once the read
//! model shows its effect, so queries read their writes.

pub mod api;
pub mod domain;
pub mod projections;
pub mod reactor;

use std::sync::Arc;

use es_core::Repository;
use es_core::projection::{ProjectionConfig, ProjectionRunner};
use es_core::reactor::{Reactor, ReactorConfig};
use stocklet_proto::stocklet::payment::v1::payment_service_server::PaymentServiceServer;
use stocklet_service_kit::config::{CommonConfig, env_or};
use stocklet_service_kit::consumers::Consumers;
use stocklet_service_kit::lifecycle::{self, RunError};
use stocklet_service_kit::streams;
use stocklet_service_kit::{ConfigError, db, grpc};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::PaymentApi;
use crate::projections::Ledger;
use crate::reactor::{SagaReaction, UserReaction};

/// The gRPC service name, for health checks.
pub const SERVICE_NAME: &str = "stocklet.payment.v1.PaymentService";
/// The PostgreSQL schema of the read models.
pub const SCHEMA: &str = "payment";
/// The durable consumer that reacts to the `USER` stream.
pub const USER_CONSUMER: &str = "payment-from-user";
/// The durable consumers of the saga's source streams: (stream, consumer).
pub const SAGA_CONSUMERS: [(&str, &str); 2] = [
    ("SHIPPING", "payment-from-shipping"),
    ("ORDER", "payment-from-order"),
];

/// The payment service's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Settings every service shares.
    pub common: CommonConfig,
    /// `STOCKLET_PAYMENT_ADDR`: where the gRPC server listens.
    pub listen_addr: String,
}

impl Config {
    /// Reads the settings from the environment, with defaults.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            common: CommonConfig::from_env()?,
            listen_addr: env_or("STOCKLET_PAYMENT_ADDR", "127.0.0.1:50056"),
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
            streams::PAYMENT,
            streams::USER,
            streams::SHIPPING,
            streams::ORDER,
        ],
        config.common.stream_replicas,
    )
    .await?;
    let mut streams = streams.into_iter();
    let (Some(stream), Some(user_stream)) = (streams.next(), streams.next()) else {
        return Err(RunError::Config("PAYMENT or USER stream missing".into()));
    };
    let sources: Vec<es_core::StreamRef> = streams.collect();
    let pool = db::connect(
        &config.common.database_url,
        SCHEMA,
        config.common.db_pool_size,
    )
    .await?;
    sqlx::migrate!("./migrations").run(&pool).await?;

    let balances = Repository::new(store.clone(), stream.clone());
    let ledger = Arc::new(ProjectionRunner::new(
        Ledger,
        pool.clone(),
        store.clone(),
        stream,
        ProjectionConfig::default(),
    ));
    let mut consumers = Consumers::new();
    consumers.projection(Arc::clone(&ledger)).await?;
    consumers
        .reactor(Reactor::new(
            UserReaction::new(balances.clone()),
            store.context().clone(),
            user_stream,
            ReactorConfig::new(USER_CONSUMER),
        ))
        .await?;
    let saga = SagaReaction::new(balances.clone());
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

    let api = PaymentApi::new(balances, ledger, pool, config.common.internal_token.clone());
    tracing::info!(addr = ?listener.local_addr().ok(), "payment service listening");
    let served = grpc::serve(
        listener,
        tonic::service::Routes::new(PaymentServiceServer::new(api)),
        &[SERVICE_NAME],
        shutdown,
    )
    .await;

    // gRPC has drained; now let the consumers finish what they hold.
    let consumed = consumers.stop().await;
    served?;
    consumed
}
