//! `TestApp`: one payment service on a port-0 listener, its own
//! nats-server and its own database, with typed client calls as a given
//! identity, and a way to publish other services' events.

use std::time::Duration;

use es_core::{JetStreamEventStore, Repository, StreamRef};
use stocklet_payment::domain::Balance;
use stocklet_payment::{Config, run};
use stocklet_proto::stocklet::events::v1 as events;
use stocklet_proto::stocklet::payment::v1 as pb;
use stocklet_proto::stocklet::payment::v1::payment_service_client::PaymentServiceClient;
use stocklet_service_kit::config::CommonConfig;
use stocklet_service_kit::lifecycle::RunError;
use stocklet_service_kit::streams;
use stocklet_service_kit::{Identity, Secret};
use stocklet_test_support::{NatsServer, RunningService, TestDb};
use tonic::transport::Channel;
use tonic::{Request, Status};

pub const INTERNAL_TOKEN: &str = "test-internal-token";

pub struct TestApp {
    pub nats: NatsServer,
    pub db: TestDb,
    pub client: PaymentServiceClient<Channel>,
    pub store: JetStreamEventStore,
    service: RunningService<RunError>,
}

pub fn admin() -> Identity {
    Identity::admin("admin-1")
}

pub fn customer() -> Identity {
    Identity::customer("customer-1")
}

pub fn other_customer() -> Identity {
    Identity::customer("customer-2")
}

/// A request carrying `identity` the way the gateway sends it.
pub fn as_user<T>(identity: &Identity, message: T) -> Request<T> {
    let mut request = Request::new(message);
    identity.write_metadata(request.metadata_mut(), &Secret::new(INTERNAL_TOKEN));
    request
}

fn stream(definition: streams::Stream) -> StreamRef {
    definition.stream_ref()
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        let nats = NatsServer::start().await;
        let db = TestDb::create().await;
        Self::spawn_on(nats, db).await
    }

    /// Starts the service on existing infrastructure (for restarts).
    pub async fn spawn_on(nats: NatsServer, db: TestDb) -> TestApp {
        let config = Config {
            common: CommonConfig {
                nats_url: nats.url(),
                database_url: Secret::new(db.url.clone()),
                internal_token: Secret::new(INTERNAL_TOKEN),
                stream_replicas: 1,
                db_pool_size: stocklet_service_kit::config::DEFAULT_DB_POOL_SIZE,
            },
            listen_addr: "127.0.0.1:0".into(),
        };
        let (service, channel) =
            RunningService::start(|listener, shutdown| run(config, listener, shutdown)).await;
        // The listener accepts before `run` has provisioned anything: one
        // answered call proves the streams, consumers and tables are ready.
        let mut client = PaymentServiceClient::new(channel);
        client
            .get_service_info(pb::GetServiceInfoRequest {})
            .await
            .expect("the service answers");
        let store = JetStreamEventStore::new(nats.client().await);
        TestApp {
            nats,
            db,
            client,
            store,
            service,
        }
    }

    /// Stops the service gracefully and hands back its infrastructure.
    pub async fn stop(self) -> (NatsServer, TestDb) {
        self.service.stop().await;
        (self.nats, self.db)
    }

    /// Publishes an event on another service's stream, as that service
    /// would (appended after the subject's last event).
    pub async fn publish<E: prost::Message + prost::Name>(
        &self,
        definition: streams::Stream,
        aggregate_type: &str,
        aggregate_id: &str,
        event: E,
    ) {
        let stream = stream(definition);
        es_core::testing::append_event(&self.store, &stream, aggregate_type, aggregate_id, event)
            .await
            .unwrap();
    }

    /// The user service announces a registration.
    pub async fn user_registered(&self, user_id: &str) {
        self.publish(
            streams::USER,
            "user",
            user_id,
            events::UserRegistered {
                user_id: user_id.into(),
                email: format!("{user_id}@example.com"),
                first_name: "Ada".into(),
                last_name: "Lovelace".into(),
                password_hash: String::new(),
                occurred_at_ms: es_core::envelope::now_ms(),
            },
        )
        .await;
    }

    /// The user service announces a deletion.
    pub async fn user_deleted(&self, user_id: &str) {
        self.publish(
            streams::USER,
            "user",
            user_id,
            events::UserDeleted {
                user_id: user_id.into(),
                email: format!("{user_id}@example.com"),
                occurred_at_ms: es_core::envelope::now_ms(),
            },
        )
        .await;
    }

    /// The balance aggregates, written directly as the saga will.
    pub fn balances(&self) -> Repository<Balance, JetStreamEventStore> {
        Repository::new(self.store.clone(), stream(streams::PAYMENT))
    }

    pub async fn balance(
        &self,
        identity: &Identity,
        customer_id: &str,
    ) -> Result<pb::Balance, Status> {
        let request = pb::ViewBalanceRequest {
            customer_id: customer_id.into(),
        };
        Ok(self
            .client
            .clone()
            .view_balance(as_user(identity, request))
            .await?
            .into_inner()
            .balance
            .unwrap())
    }

    /// Waits (bounded) until an admin sees the balance answer `done`.
    pub async fn balance_eventually(
        &self,
        customer_id: &str,
        done: impl Fn(&Result<pb::Balance, Status>) -> bool,
    ) -> Result<pb::Balance, Status> {
        for _ in 0..200 {
            let balance = self.balance(&admin(), customer_id).await;
            if done(&balance) {
                return balance;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the balance of {customer_id} never got there");
    }

    /// Publishes UserRegistered and waits until the balance is open.
    pub async fn open_balance(&self, customer_id: &str) -> pb::Balance {
        self.user_registered(customer_id).await;
        self.balance_eventually(customer_id, Result::is_ok)
            .await
            .unwrap()
    }

    pub async fn credit(
        &self,
        identity: &Identity,
        customer_id: &str,
        amount_cents: i64,
    ) -> Result<pb::CreditBalanceResponse, Status> {
        let request = pb::CreditBalanceRequest {
            customer_id: customer_id.into(),
            amount_cents,
        };
        Ok(self
            .client
            .clone()
            .credit_balance(as_user(identity, request))
            .await?
            .into_inner())
    }

    pub async fn transaction(
        &self,
        identity: &Identity,
        transaction_id: &str,
    ) -> Result<pb::Transaction, Status> {
        let request = pb::ViewTransactionRequest {
            transaction_id: transaction_id.into(),
        };
        Ok(self
            .client
            .clone()
            .view_transaction(as_user(identity, request))
            .await?
            .into_inner()
            .transaction
            .unwrap())
    }

    pub async fn transactions(
        &self,
        identity: &Identity,
        customer_id: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<pb::ViewTransactionsResponse, Status> {
        let request = pb::ViewTransactionsRequest {
            page_size,
            page_token: page_token.into(),
            customer_id: customer_id.into(),
        };
        Ok(self
            .client
            .clone()
            .view_transactions(as_user(identity, request))
            .await?
            .into_inner())
    }
}
/// The fields named in a status's BadRequest details.
pub fn violated_fields(status: &Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|details| {
            details
                .field_violations
                .into_iter()
                .map(|v| v.field)
                .collect()
        })
        .unwrap_or_default()
}
