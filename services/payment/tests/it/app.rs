//! `TestApp`: one payment service on the shared `ServiceHarness` (its
//! own nats-server and database), with typed client calls as a given
//! identity, the user service's announcements, and the balance aggregates
//! to drive as the saga will.

use es_core::{JetStreamEventStore, Repository};
use stocklet_payment::domain::Balance;
use stocklet_payment::{Config, run};
use stocklet_proto::stocklet::events::v1 as events;
use stocklet_proto::stocklet::payment::v1 as pb;
use stocklet_proto::stocklet::payment::v1::payment_service_client::PaymentServiceClient;
use stocklet_service_kit::Identity;
use stocklet_service_kit::streams;
use stocklet_test_support::harness::{LISTEN_ADDR, SETTLE, eventually};
pub use stocklet_test_support::harness::{admin, customer, other_customer, violated_fields};
use tonic::Status;

stocklet_test_support::service_test_app! {
    /// The payment service under test, on its harness.
    pub struct TestApp(PaymentServiceClient);
    info: pb::GetServiceInfoRequest {};
    start: |common, listener, shutdown| {
        run(Config { common, listen_addr: LISTEN_ADDR.into() }, listener, shutdown)
    };
}

impl TestApp {
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
                occurred_at_ms: es_core::envelope::now_ms(),
                ..Default::default()
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
        self.repository(streams::PAYMENT)
    }

    pub async fn balance(
        &self,
        identity: &Identity,
        customer_id: &str,
    ) -> Result<pb::Balance, Status> {
        let request = pb::ViewBalanceRequest {
            customer_id: customer_id.into(),
        };
        let answer = self
            .call_as(identity, request, async |mut client, request| {
                client.view_balance(request).await
            })
            .await?;
        Ok(answer.balance.unwrap())
    }

    /// Waits (bounded) until an admin sees the balance answer `done`.
    pub async fn balance_eventually(
        &self,
        customer_id: &str,
        done: impl Fn(&Result<pb::Balance, Status>) -> bool,
    ) -> Result<pb::Balance, Status> {
        let what = format!("the balance of {customer_id} getting there");
        eventually(SETTLE, what, async || {
            let balance = self.balance(&admin(), customer_id).await;
            if done(&balance) {
                Ok(balance)
            } else {
                Err(balance)
            }
        })
        .await
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
        self.call_as(identity, request, async |mut client, request| {
            client.credit_balance(request).await
        })
        .await
    }

    pub async fn transaction(
        &self,
        identity: &Identity,
        transaction_id: &str,
    ) -> Result<pb::Transaction, Status> {
        let request = pb::ViewTransactionRequest {
            transaction_id: transaction_id.into(),
        };
        let answer = self
            .call_as(identity, request, async |mut client, request| {
                client.view_transaction(request).await
            })
            .await?;
        Ok(answer.transaction.unwrap())
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
        self.call_as(identity, request, async |mut client, request| {
            client.view_transactions(request).await
        })
        .await
    }
}
