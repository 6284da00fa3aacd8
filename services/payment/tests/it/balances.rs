//! Balances and transactions: opened and closed by the user service's
//! events, topped up by admins, debited and refunded by the domain the saga
//! will drive, each customer confined to their own.

use std::time::Duration;

use es_core::{AggregateId, CommandContext};
use stocklet_payment::domain::{BalanceCommand, BalanceEvent, Cents};
use stocklet_proto::stocklet::payment::v1 as pb;
use stocklet_service_kit::{Identity, Secret};
use stocklet_values::{CustomerId, OrderId};
use tonic::{Code, Request, Status};

use crate::app::*;

const ALICE: &str = "customer-1";
const BOB: &str = "customer-2";

async fn transaction_eventually(
    app: &TestApp,
    id: &str,
    done: impl Fn(&pb::Transaction) -> bool,
) -> pb::Transaction {
    for _ in 0..200 {
        if let Ok(transaction) = app.transaction(&admin(), id).await
            && done(&transaction)
        {
            return transaction;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("transaction {id} never got there");
}

#[tokio::test]
async fn a_registered_user_gets_a_zero_balance_that_admins_top_up() {
    let app = TestApp::spawn().await;
    let opened = app.open_balance(ALICE).await;
    assert_eq!(
        (opened.customer_id.as_str(), opened.balance_cents),
        (ALICE, 0)
    );

    let credited = app.credit(&admin(), ALICE, 2500).await.unwrap();
    let balance = credited.balance.unwrap();
    assert_eq!(balance.balance_cents, 2500);
    assert_eq!(balance.created_at_ms, opened.created_at_ms);
    let transaction = credited.transaction.unwrap();
    assert_eq!(transaction.kind(), pb::TransactionKind::Credit);
    assert_eq!(
        (transaction.amount_cents, transaction.customer_id.as_str()),
        (2500, ALICE)
    );

    // Read-your-writes, for the owner as for admins.
    assert_eq!(
        app.balance(&customer(), ALICE).await.unwrap().balance_cents,
        2500
    );
    assert_eq!(
        app.transaction(&customer(), &transaction.id).await.unwrap(),
        transaction
    );
    assert_eq!(
        app.transaction(&admin(), &transaction.id).await.unwrap(),
        transaction
    );

    // Another customer learns nothing, not even that they exist.
    app.open_balance(BOB).await;
    assert_eq!(
        app.balance(&other_customer(), ALICE)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(
        app.transaction(&other_customer(), &transaction.id)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(
        app.transaction(&admin(), "0192-unknown")
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    app.stop().await;
}

#[tokio::test]
async fn transactions_list_newest_first_page_by_page() {
    let app = TestApp::spawn().await;
    app.open_balance(ALICE).await;
    app.open_balance(BOB).await;
    let mut ids = Vec::new();
    for amount in [100, 200, 300] {
        ids.push(
            app.credit(&admin(), ALICE, amount)
                .await
                .unwrap()
                .transaction
                .unwrap()
                .id,
        );
    }
    app.credit(&admin(), BOB, 999).await.unwrap();
    ids.reverse();

    let first = app.transactions(&customer(), "", 2, "").await.unwrap();
    assert!(!first.next_page_token.is_empty());
    let second = app
        .transactions(&customer(), "", 2, &first.next_page_token)
        .await
        .unwrap();
    assert!(second.next_page_token.is_empty());
    let listed: Vec<String> = [first.transactions, second.transactions]
        .concat()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(listed, ids);

    // Naming yourself is the same as naming nobody.
    assert_eq!(
        app.transactions(&customer(), ALICE, 0, "")
            .await
            .unwrap()
            .transactions
            .len(),
        3
    );
    // An admin names any customer; a customer names nobody else.
    let bobs = app.transactions(&admin(), BOB, 0, "").await.unwrap();
    assert_eq!(bobs.transactions.len(), 1);
    assert_eq!(bobs.transactions[0].amount_cents, 999);
    assert_eq!(
        app.transactions(&customer(), BOB, 0, "")
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    app.stop().await;
}

#[tokio::test]
async fn payments_and_refunds_show_on_the_ledger() {
    let app = TestApp::spawn().await;
    app.open_balance(ALICE).await;
    app.credit(&admin(), ALICE, 2500).await.unwrap();
    let balances = app.balances();
    let alice = AggregateId::parse(ALICE).unwrap();
    let debit = |order: &str, amount: i64| BalanceCommand::Debit {
        transaction_id: format!("tx-{order}"),
        customer_id: CustomerId::parse(ALICE).unwrap(),
        order_id: OrderId::from_recorded(order),
        amount: Cents::parse(amount).unwrap(),
        shipment_id: "s1".into(),
        reservation_id: "r1".into(),
        at_ms: es_core::envelope::now_ms(),
    };
    balances
        .execute(&alice, &debit("o1", 1000), &CommandContext::default())
        .await
        .unwrap();
    let payment = transaction_eventually(&app, "tx-o1", |_| true).await;
    assert_eq!(payment.kind(), pb::TransactionKind::Payment);
    assert_eq!(
        (payment.order_id.as_str(), payment.amount_cents),
        ("o1", 1000)
    );
    assert_eq!(payment.reversed_at_ms, 0);
    assert_eq!(
        app.balance(&customer(), ALICE).await.unwrap().balance_cents,
        1500
    );

    // More than the balance: the payment fails and nothing moves.
    let failed = balances
        .execute(&alice, &debit("o2", 5000), &CommandContext::default())
        .await
        .unwrap();
    // The failure is recorded (the order's Payment keeps it in the saga).
    assert!(matches!(
        failed.events.as_slice(),
        [BalanceEvent::Failed(_)]
    ));
    assert_eq!(failed.state.balance_cents(), 1500);

    balances
        .execute(
            &alice,
            &BalanceCommand::Reverse {
                order_id: OrderId::from_recorded("o1"),
                transaction_id: "tx-o1".into(),
                amount: Cents::parse(1000).unwrap(),
                at_ms: es_core::envelope::now_ms(),
            },
            &CommandContext::default(),
        )
        .await
        .unwrap();
    let refunded = transaction_eventually(&app, "tx-o1", |t| t.reversed_at_ms > 0).await;
    assert!(refunded.reversed_at_ms >= refunded.processed_at_ms);
    let balance = app
        .balance_eventually(ALICE, |b| b.as_ref().is_ok_and(|b| b.balance_cents == 2500))
        .await;
    assert!(balance.is_ok());
    let listed = app.transactions(&customer(), "", 0, "").await.unwrap();
    assert_eq!(
        listed.transactions.len(),
        2,
        "a top-up and a payment; no row for the failure"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_deleted_user_s_balance_closes_for_good() {
    let app = TestApp::spawn().await;
    app.open_balance(ALICE).await;
    app.credit(&admin(), ALICE, 100).await.unwrap();
    app.user_deleted(ALICE).await;
    let gone = app
        .balance_eventually(ALICE, |b| {
            b.as_ref().is_err_and(|s| s.code() == Code::NotFound)
        })
        .await;
    assert!(gone.is_err());
    assert_eq!(
        app.credit(&admin(), ALICE, 100).await.unwrap_err().code(),
        Code::NotFound
    );
    app.stop().await;
}

#[tokio::test]
async fn invalid_requests_name_every_bad_field() {
    let app = TestApp::spawn().await;
    let fields = |status: Status| {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        violated_fields(&status)
    };
    assert_eq!(
        fields(app.credit(&admin(), "", 0).await.unwrap_err()),
        ["customer_id", "amount_cents"]
    );
    assert_eq!(
        fields(app.credit(&admin(), ALICE, -5).await.unwrap_err()),
        ["amount_cents"]
    );
    assert_eq!(
        fields(
            app.credit(&admin(), ALICE, 1_000_000_000_001)
                .await
                .unwrap_err()
        ),
        ["amount_cents"]
    );
    assert_eq!(
        fields(app.balance(&admin(), "a.b").await.unwrap_err()),
        ["customer_id"]
    );
    assert_eq!(
        fields(app.transaction(&admin(), "").await.unwrap_err()),
        ["transaction_id"]
    );
    assert_eq!(
        fields(app.transactions(&admin(), "a*", -1, "").await.unwrap_err()),
        ["customer_id", "page_size"]
    );
    assert_eq!(
        fields(
            app.transactions(&customer(), "", 10, "not-a-token")
                .await
                .unwrap_err()
        ),
        ["page_token"]
    );
    // A well-formed top-up for a customer without a balance.
    assert_eq!(
        app.credit(&admin(), "nobody", 100)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    app.stop().await;
}

#[tokio::test]
async fn only_admins_top_up_and_everyone_must_sign_in() {
    let app = TestApp::spawn().await;
    // Describing the service is public.
    let info = app
        .client
        .clone()
        .get_service_info(Request::new(pb::GetServiceInfoRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (info.name.as_str(), info.license.as_str()),
        ("payment", "MIT")
    );
    app.open_balance(ALICE).await;
    // Customers cannot credit, not even themselves.
    assert_eq!(
        app.credit(&customer(), ALICE, 100)
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    let anonymous = app
        .client
        .clone()
        .view_balance(Request::new(pb::ViewBalanceRequest {
            customer_id: ALICE.into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let anonymous = app
        .client
        .clone()
        .view_transactions(Request::new(pb::ViewTransactionsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let mut forged = Request::new(pb::CreditBalanceRequest {
        customer_id: ALICE.into(),
        amount_cents: 100,
    });
    Identity::admin("mallory").write_metadata(forged.metadata_mut(), &Secret::new("guessed"));
    assert_eq!(
        app.client
            .clone()
            .credit_balance(forged)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    assert_eq!(
        app.balance(&customer(), ALICE).await.unwrap().balance_cents,
        0
    );
    app.stop().await;
}

#[tokio::test]
async fn the_ledger_survives_restarts_and_rebuilds_from_the_stream() {
    let app = TestApp::spawn().await;
    app.open_balance(ALICE).await;
    let credit = app.credit(&admin(), ALICE, 700).await.unwrap();
    let (nats, db) = app.stop().await;

    // Lose the read model entirely: the next start rebuilds it.
    sqlx::raw_sql(
        "TRUNCATE payment.balances, payment.transactions; DELETE FROM payment.es_checkpoints",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let app = TestApp::spawn_on(nats, db).await;
    let balance = app
        .balance_eventually(ALICE, |b| b.as_ref().is_ok_and(|b| b.balance_cents == 700))
        .await
        .unwrap();
    assert_eq!(balance.updated_at_ms, credit.balance.unwrap().updated_at_ms);
    let transaction = credit.transaction.unwrap();
    assert_eq!(
        app.transaction(&customer(), &transaction.id).await.unwrap(),
        transaction
    );
    // A user registered while the service was down gets a balance too.
    app.open_balance(BOB).await;
    app.stop().await;
}
