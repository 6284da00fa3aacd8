//! Long histories: a customer with thousands of past payments is still
//! debited and refunded correctly, each step loading a snapshot of the
//! balance and a short tail; and a saga event redelivered long after its
//! dedupe key left every snapshot's memory has no second effect.

use es_core::snapshot::{RECENT_KEYS, SnapshotStore};
use es_core::{Aggregate, AggregateId, CommandContext, EventStore, JetStreamEventStore};
use es_core::{Repository, StoredEvent};
use stocklet_payment::domain::{
    Balance, BalanceCommand, Cents, CustomerId, OrderId, Payment, PaymentOutcome,
};
use stocklet_payment::reactor::SagaReaction;
use stocklet_payment::reactor::saga::BALANCE_SNAPSHOT_EVERY;
use stocklet_proto::stocklet::events::v1 as events;
use stocklet_service_kit::streams::{self, Stream};

use crate::app::*;

const PAST_ORDERS: usize = 3_000;

/// Appends `orders` past payments of `cents` each to the customer's
/// balance (one keyed commit per order, decided by `Balance` itself), the
/// way the saga would have written them, only faster.
async fn past_payments(
    balances: &Repository<Balance, JetStreamEventStore>,
    customer: &str,
    orders: usize,
    cents: i64,
) {
    let id = AggregateId::parse(customer).unwrap();
    let mut loaded = balances.load(&id).await.unwrap();
    for _ in 0..orders {
        let order = AggregateId::new_v7().to_string();
        let decided = loaded
            .state
            .decide(&BalanceCommand::Debit {
                transaction_id: format!("t-{order}"),
                customer_id: CustomerId::parse(customer).unwrap(),
                order_id: OrderId::from_recorded(&order),
                amount: Cents::parse(cents).unwrap(),
                shipment_id: format!("s-{order}"),
                reservation_id: format!("r-{order}"),
                at_ms: 1,
            })
            .unwrap();
        let context = CommandContext::with_dedupe_key(format!("past-{order}"));
        let commit = balances.commit(&id, loaded.version, &decided, &context);
        let appended = balances
            .store()
            .append(balances.stream(), &commit)
            .await
            .unwrap();
        for event in &decided {
            loaded.state.apply(event);
        }
        loaded.version = appended.sequence;
    }
}

async fn stored(app: &TestApp, stream: Stream, aggregate_type: &str, id: &str) -> Vec<StoredEvent> {
    let stream = stream.stream_ref();
    let subject = stream.subject(aggregate_type, id);
    app.store.load(&stream, &subject, 0).await.unwrap()
}

async fn last_sequence(app: &TestApp, stream: Stream, aggregate_type: &str, id: &str) -> u64 {
    stored(app, stream, aggregate_type, id)
        .await
        .last()
        .map_or(0, |e| e.meta.stream_sequence)
}

#[tokio::test]
async fn a_busy_balance_pays_and_refunds_on_a_snapshot_and_never_twice() {
    let app = TestApp::spawn().await;
    let customer = AggregateId::new_v7().to_string();
    app.open_balance(&customer).await;
    app.credit(&admin(), &customer, 1_000_000_000)
        .await
        .unwrap();
    let balances = app.balances();
    past_payments(&balances, &customer, PAST_ORDERS, 100).await;
    let start = 1_000_000_000 - 100 * PAST_ORDERS as i64;
    let full = balances
        .load(&AggregateId::parse(&customer).unwrap())
        .await
        .unwrap();
    assert!(full.history.len() > 2 * PAST_ORDERS, "a long history");
    assert_eq!(full.state.balance_cents(), start);

    // The saga debits an order: one snapshot + tail from then on.
    let order = AggregateId::new_v7().to_string();
    app.publish(
        streams::SHIPPING,
        "shipment",
        &order,
        events::ShipmentAllocated {
            shipment_id: order.clone(),
            order_id: order.clone(),
            customer_id: customer.clone(),
            reservation_id: "r".into(),
            lines: Vec::new(),
            total_cents: 700,
            occurred_at_ms: 1,
        },
    )
    .await;
    app.balance_eventually(&customer, |b| {
        b.as_ref().is_ok_and(|b| b.balance_cents == start - 700)
    })
    .await
    .unwrap();
    let snapshots = SnapshotStore::ensure(app.store.client().clone(), 1)
        .await
        .unwrap();
    let snapshotting = app
        .balances()
        .with_snapshots(snapshots.clone(), BALANCE_SNAPSHOT_EVERY);
    let mut record = None;
    for _ in 0..200 {
        record = snapshots.get(Balance::TYPE, &customer).await.unwrap();
        if record.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(record.is_some_and(|r| r.sequence >= full.version));
    let short = async || {
        let loaded = snapshotting
            .load(&AggregateId::parse(&customer).unwrap())
            .await
            .unwrap();
        assert!(
            loaded.history.len() < BALANCE_SNAPSHOT_EVERY,
            "a snapshot and a short tail: {}",
            loaded.history.len()
        );
        loaded
    };
    short().await;

    // Cancelled: refunded.
    app.publish(
        streams::ORDER,
        "order",
        &order,
        events::OrderCancelled {
            order_id: order.clone(),
            customer_id: customer.clone(),
            transaction_id: "named".into(),
            ..Default::default()
        },
    )
    .await;
    app.balance_eventually(&customer, |b| {
        b.as_ref().is_ok_and(|b| b.balance_cents == start)
    })
    .await
    .unwrap();
    let payments: Repository<Payment, _> = app.repository(streams::PAYMENT);
    let payment = payments
        .load(&AggregateId::parse(&order).unwrap())
        .await
        .unwrap();
    assert!(matches!(
        payment.state.outcome(),
        Some(PaymentOutcome::Captured {
            reversed: true,
            amount,
            ..
        }) if amount.get() == 700
    ));

    // Long after: more keyed commits than any snapshot remembers.
    past_payments(&balances, &customer, RECENT_KEYS + 50, 1).await;
    let now = start - (RECENT_KEYS as i64 + 50);
    let loaded = snapshotting
        .load(&AggregateId::parse(&customer).unwrap())
        .await
        .unwrap();
    snapshotting
        .snapshot_if_due(&loaded)
        .expect("a snapshot is due")
        .wait()
        .await
        .unwrap();
    let record = snapshots
        .get(Balance::TYPE, &customer)
        .await
        .unwrap()
        .unwrap();
    let allocated = stored(&app, streams::SHIPPING, "shipment", &order).await;
    let cancelled = stored(&app, streams::ORDER, "order", &order).await;
    for source in [&allocated[0], &cancelled[0]] {
        assert!(
            record
                .recent_keys
                .iter()
                .all(|k| !k.key.ends_with(source.meta.event_id.as_str())),
            "the key of {} is forgotten",
            source.raw.event_type
        );
    }
    assert_eq!(short().await.state.balance_cents(), now);

    // Redelivered: the allocation and the cancellation, again.
    let reaction = SagaReaction::new(snapshotting.clone(), app.repository(streams::PAYMENT));
    let balance_before = last_sequence(&app, streams::PAYMENT, Balance::TYPE, &customer).await;
    let payment_before = last_sequence(&app, streams::PAYMENT, Payment::TYPE, &order).await;
    let handled = es_core::testing::deliver(&reaction, allocated.into_iter().chain(cancelled))
        .await
        .unwrap();
    assert_eq!(handled, 2);
    assert_eq!(
        last_sequence(&app, streams::PAYMENT, Balance::TYPE, &customer).await,
        balance_before,
        "nothing new on the balance"
    );
    assert_eq!(
        last_sequence(&app, streams::PAYMENT, Payment::TYPE, &order).await,
        payment_before,
        "nothing new on the payment"
    );
    assert_eq!(short().await.state.balance_cents(), now);
    app.stop().await;
}

#[tokio::test]
async fn deliveries_racing_for_one_debit_charge_once() {
    let app = TestApp::spawn().await;
    let customer = AggregateId::new_v7().to_string();
    app.open_balance(&customer).await;
    app.credit(&admin(), &customer, 10_000).await.unwrap();
    let reaction = SagaReaction::new(app.balances(), app.repository(streams::PAYMENT));
    let order = AggregateId::new_v7().to_string();
    // Handled by the service's own consumer and, at the same time, by two
    // more deliveries (as if redelivered to other instances).
    app.publish(
        streams::SHIPPING,
        "shipment",
        &order,
        events::ShipmentAllocated {
            shipment_id: order.clone(),
            order_id: order.clone(),
            customer_id: customer.clone(),
            reservation_id: "r".into(),
            lines: Vec::new(),
            total_cents: 700,
            occurred_at_ms: 1,
        },
    )
    .await;
    let allocated = stored(&app, streams::SHIPPING, "shipment", &order).await;
    let (a, b) = tokio::join!(
        es_core::testing::deliver(&reaction, allocated.clone()),
        es_core::testing::deliver(&reaction, allocated),
    );
    assert_eq!((a.unwrap(), b.unwrap()), (1, 1));
    app.balance_eventually(&customer, |b| {
        b.as_ref().is_ok_and(|b| b.balance_cents == 10_000 - 700)
    })
    .await
    .unwrap();
    let captures = stored(&app, streams::PAYMENT, Balance::TYPE, &customer)
        .await
        .iter()
        .filter(|e| e.raw.event_type == "stocklet.events.v1.PaymentCaptured")
        .count();
    assert_eq!(captures, 1, "charged once");
    app.stop().await;
}
