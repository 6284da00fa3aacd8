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
use es_core::streams::definitions;
use stocklet_proto::stocklet::payment::v1::payment_service_server::PaymentServiceServer;
use stocklet_service_kit::config::{CommonConfig, env_or};
use stocklet_service_kit::lifecycle::{self, RunError};
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
            definitions::PAYMENT,
            definitions::USER,
            definitions::SHIPPING,
            definitions::ORDER,
        ],
        config.common.stream_replicas,
    )
    .await?;
    let mut streams = streams.into_iter();
    let (Some(stream), Some(user_stream)) = (streams.next(), streams.next()) else {
        return Err(RunError::Config("PAYMENT or USER stream missing".into()));
    };
    let sources: Vec<es_core::StreamRef> = streams.collect();
    let pool = db::connect(&config.common.database_url, SCHEMA, 8).await?;
    sqlx::migrate!("./migrations").run(&pool).await?;

    let balances = Repository::new(store.clone(), stream.clone());
    let ledger = Arc::new(ProjectionRunner::new(
        Ledger,
        pool.clone(),
        store.clone(),
        stream,
        ProjectionConfig::default(),
    ));
    let users = Reactor::new(
        UserReaction::new(balances.clone()),
        store.context().clone(),
        user_stream,
        ReactorConfig::new(USER_CONSUMER),
    );
    users
        .ensure_consumer()
        .await
        .map_err(|e| RunError::Consumer(e.to_string()))?;

    let saga = SagaReaction::new(balances.clone());
    let mut saga_reactors = Vec::with_capacity(SAGA_CONSUMERS.len());
    for (source, (name, consumer)) in sources.into_iter().zip(SAGA_CONSUMERS) {
        if source.name != name {
            return Err(RunError::Config(format!("{name} stream missing")));
        }
        let reactor = Reactor::new(
            saga.clone(),
            store.context().clone(),
            source,
            ReactorConfig::new(consumer),
        );
        reactor
            .ensure_consumer()
            .await
            .map_err(|e| RunError::Consumer(e.to_string()))?;
        saga_reactors.push(reactor);
    }

    let consumers = CancellationToken::new();
    let projection = tokio::spawn({
        let (ledger, consumers) = (Arc::clone(&ledger), consumers.clone());
        async move { ledger.run(consumers).await }
    });
    let reactor = tokio::spawn({
        let consumers = consumers.clone();
        async move { users.run(consumers).await }
    });
    let saga_reacting: Vec<_> = saga_reactors
        .into_iter()
        .map(|reactor| {
            let consumers = consumers.clone();
            tokio::spawn(async move { reactor.run(consumers).await })
        })
        .collect();

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
    consumers.cancel();
    let mut reacted = reactor
        .await
        .map_err(|e| RunError::Consumer(e.to_string()))?
        .map_err(|e| RunError::Consumer(e.to_string()));
    for reactor in saga_reacting {
        let outcome = reactor
            .await
            .map_err(|e| RunError::Consumer(e.to_string()))?
            .map_err(|e| RunError::Consumer(e.to_string()));
        reacted = reacted.and(outcome);
    }
    let consumed = projection
        .await
        .map_err(|e| RunError::Consumer(e.to_string()))?
        .map_err(|e| RunError::Consumer(e.to_string()));
    served?;
    reacted?;
    consumed
}
