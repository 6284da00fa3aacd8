//! Long histories: a product with thousands of past orders still reserves,
//! releases, consumes and returns correctly, each step loading a snapshot
//! and a short tail; and a saga event redelivered long after its dedupe key
//! left every snapshot's memory has no second effect.

use es_core::snapshot::{RECENT_KEYS, SnapshotStore};
use es_core::{Aggregate, AggregateId, CommandContext, EventStore, Repository};
use es_core::{JetStreamEventStore, StoredEvent};
use stocklet_proto::stocklet::events::v1 as events;
use stocklet_service_kit::streams::{self, Stream};
use stocklet_warehouse::domain::{
    Cents, Quantity, Reservation, ReservationState, Stock, StockCommand,
};
use stocklet_warehouse::reactor::SagaReaction;
use stocklet_warehouse::reactor::saga::{CONSUME, STOCK_SNAPSHOT_EVERY};

use crate::app::*;

const PAST_ORDERS: usize = 3_000;

/// Appends `orders` past orders of `units` each on the product's stock,
/// reserved and consumed (one commit per order, each with its own dedupe
/// key), the way the saga would have written them, only faster.
async fn past_orders(
    stocks: &Repository<Stock, JetStreamEventStore>,
    product: &AggregateId,
    orders: usize,
    units: i64,
) {
    let mut loaded = stocks.load(product).await.unwrap();
    for i in 0..orders {
        let order = AggregateId::new_v7().to_string();
        let mut state = loaded.state.clone();
        let mut decided = Vec::new();
        for command in [
            StockCommand::Reserve {
                reservation_id: format!("r-{order}"),
                order_id: order.clone(),
                customer_id: "c".into(),
                quantity: Quantity::parse(units).unwrap(),
                unit_price: Cents::parse(100).unwrap(),
                at_ms: 1,
            },
            StockCommand::Consume {
                reservation_id: format!("r-{order}"),
                order_id: order.clone(),
                quantity: Quantity::parse(units).unwrap(),
                at_ms: 1,
            },
        ] {
            for event in state.decide(&command).unwrap() {
                state.apply(&event);
                decided.push(event);
            }
        }
        let context = CommandContext::with_dedupe_key(format!("past-{order}-{i}"));
        let commit = stocks.commit(product, loaded.version, &decided, &context);
        let appended = stocks
            .store()
            .append(stocks.stream(), &commit)
            .await
            .unwrap();
        loaded.state = state;
        loaded.version = appended.sequence;
    }
}

/// The last stream sequence on a subject of `stream`.
async fn last_sequence(app: &TestApp, stream: Stream, aggregate_type: &str, id: &str) -> u64 {
    let stream = stream.stream_ref();
    let subject = stream.subject(aggregate_type, id);
    app.store
        .load(&stream, &subject, 0)
        .await
        .unwrap()
        .last()
        .map_or(0, |e| e.meta.stream_sequence)
}

/// The stored events of one subject of `stream`.
async fn stored(app: &TestApp, stream: Stream, aggregate_type: &str, id: &str) -> Vec<StoredEvent> {
    let stream = stream.stream_ref();
    let subject = stream.subject(aggregate_type, id);
    app.store.load(&stream, &subject, 0).await.unwrap()
}

fn priced(order: &str, product: &str, quantity: i64) -> events::OrderPriced {
    events::OrderPriced {
        order_id: order.into(),
        customer_id: "c1".into(),
        lines: vec![events::PricedOrderLine {
            product_id: product.into(),
            quantity,
            unit_price_cents: 100,
        }],
        items_price_cents: 100 * quantity,
        shipping_fee_cents: 0,
        total_cents: 100 * quantity,
        occurred_at_ms: 1,
    }
}

/// Publishes the payment's capture of `order` as the payment service does.
async fn capture(app: &TestApp, transaction_id: &str, order: &str, amount_cents: i64) {
    app.publish(
        streams::PAYMENT,
        "balance",
        "c1",
        events::PaymentCaptured {
            transaction_id: transaction_id.into(),
            order_id: order.to_owned(),
            customer_id: "c1".into(),
            amount_cents,
            ..Default::default()
        },
    )
    .await;
}

#[tokio::test]
async fn a_product_with_thousands_of_orders_steps_on_a_snapshot_and_a_short_tail() {
    let app = TestApp::spawn().await;
    let product = AggregateId::new_v7();
    let p = product.to_string();
    app.open_stock(&p).await;
    app.add(&admin(), &p, 1_000_000).await.unwrap();
    let stocks = app.stocks();
    past_orders(&stocks, &product, PAST_ORDERS, 2).await;
    let on_hand = 1_000_000 - 2 * PAST_ORDERS as i64;
    app.stock_eventually(&p, |s| s.on_hand == on_hand).await;
    let full = stocks.load(&product).await.unwrap();
    assert!(full.history.len() > 2 * PAST_ORDERS, "a long history");

    let snapshots = SnapshotStore::ensure(app.store.client().clone(), 1)
        .await
        .unwrap();
    let snapshotting = app
        .stocks()
        .with_snapshots(snapshots.clone(), STOCK_SNAPSHOT_EVERY);
    let reservations: Repository<Reservation, _> = app.repository(streams::WAREHOUSE);
    let short_load = async || {
        let loaded = snapshotting.load(&product).await.unwrap();
        let full = stocks.load(&product).await.unwrap();
        assert_eq!((&loaded.state, loaded.version), (&full.state, full.version));
        assert!(
            loaded.history.len() < STOCK_SNAPSHOT_EVERY,
            "a snapshot and a short tail: {} events",
            loaded.history.len()
        );
    };

    // Reserve, then release (payment failed).
    let a = AggregateId::new_v7().to_string();
    app.publish(streams::ORDER, "order", &a, priced(&a, &p, 5))
        .await;
    app.stock_eventually(&p, |s| s.reserved == 5).await;
    // The reservation loaded the whole history once and snapshotted it.
    let snapshot = async || {
        for _ in 0..200 {
            if let Some(record) = snapshots.get(Stock::TYPE, &p).await.unwrap() {
                return record;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("no snapshot of the stock");
    };
    assert!(snapshot().await.sequence >= full.version);
    short_load().await;
    app.publish(
        streams::PAYMENT,
        "balance",
        "c1",
        events::PaymentFailed {
            order_id: a.clone(),
            customer_id: "c1".into(),
            amount_cents: 500,
            ..Default::default()
        },
    )
    .await;
    app.stock_eventually(&p, |s| s.reserved == 0 && s.on_hand == on_hand)
        .await;

    // Reserve, consume (paid), return (cancelled).
    let b = AggregateId::new_v7().to_string();
    app.publish(streams::ORDER, "order", &b, priced(&b, &p, 3))
        .await;
    app.stock_eventually(&p, |s| s.reserved == 3).await;
    capture(&app, "t-b", &b, 300).await;
    app.stock_eventually(&p, |s| s.reserved == 0 && s.on_hand == on_hand - 3)
        .await;
    app.publish(
        streams::ORDER,
        "order",
        &b,
        events::OrderCancelled {
            order_id: b.clone(),
            customer_id: "c1".into(),
            transaction_id: "t-b".into(),
            ..Default::default()
        },
    )
    .await;
    app.stock_eventually(&p, |s| s.reserved == 0 && s.on_hand == on_hand)
        .await;
    short_load().await;

    let state_of = async |order: &str| {
        reservations
            .load(&AggregateId::parse(order).unwrap())
            .await
            .unwrap()
            .state
            .state()
    };
    assert_eq!(state_of(&a).await, ReservationState::Released);
    assert_eq!(state_of(&b).await, ReservationState::Returned);
    app.stop().await;
}

#[tokio::test]
async fn a_saga_event_redelivered_after_its_dedupe_key_is_forgotten_changes_nothing() {
    let app = TestApp::spawn().await;
    let product = AggregateId::new_v7();
    let p = product.to_string();
    app.open_stock(&p).await;
    app.add(&admin(), &p, 100_000).await.unwrap();
    let snapshots = SnapshotStore::ensure(app.store.client().clone(), 1)
        .await
        .unwrap();
    let stocks = app
        .stocks()
        .with_snapshots(snapshots.clone(), STOCK_SNAPSHOT_EVERY);
    // The reaction as the service builds it, driven directly so that the
    // test controls each delivery.
    let reaction = SagaReaction::new(stocks.clone(), app.repository(streams::WAREHOUSE));

    let order = AggregateId::new_v7().to_string();
    app.publish(streams::ORDER, "order", &order, priced(&order, &p, 4))
        .await;
    app.stock_eventually(&p, |s| s.reserved == 4).await;
    capture(&app, "t1", &order, 400).await;
    app.stock_eventually(&p, |s| s.reserved == 0 && s.on_hand == 100_000 - 4)
        .await;
    let captured = stored(&app, streams::PAYMENT, "balance", "c1").await;
    let priced_event = stored(&app, streams::ORDER, "order", &order).await;
    let key = format!("{CONSUME}:{}", captured[0].meta.event_id);
    let consumed_at = stocks.load(&product).await.unwrap();
    assert!(
        consumed_at
            .history
            .iter()
            .any(|e| e.meta.dedupe_key.as_deref() == Some(key.as_str()))
            || consumed_at.snapshot_keys.iter().any(|k| k.key == key),
        "the consumption carried its dedupe key"
    );

    // Long after: more keyed commits than any snapshot remembers.
    past_orders(&app.stocks(), &product, RECENT_KEYS + 50, 1).await;
    let on_hand = 100_000 - 4 - (RECENT_KEYS as i64 + 50);
    let loaded = stocks.load(&product).await.unwrap();
    stocks
        .snapshot_if_due(&loaded)
        .expect("a snapshot is due")
        .wait()
        .await
        .unwrap();
    let record = snapshots.get(Stock::TYPE, &p).await.unwrap().unwrap();
    assert!(
        record.recent_keys.iter().all(|k| k.key != key),
        "the key is forgotten"
    );
    let loaded = stocks.load(&product).await.unwrap();
    assert!(loaded.history.is_empty());
    assert_eq!(
        (loaded.state.on_hand(), loaded.state.reserved()),
        (on_hand, 0)
    );

    // Redelivered: the payment, and the order's pricing, again.
    let stock_before = last_sequence(&app, streams::WAREHOUSE, Stock::TYPE, &p).await;
    let reservation_before =
        last_sequence(&app, streams::WAREHOUSE, Reservation::TYPE, &order).await;
    let handled = es_core::testing::deliver(&reaction, captured.into_iter().chain(priced_event))
        .await
        .unwrap();
    assert_eq!(handled, 2);
    assert_eq!(
        last_sequence(&app, streams::WAREHOUSE, Stock::TYPE, &p).await,
        stock_before,
        "nothing new on the stock"
    );
    assert_eq!(
        last_sequence(&app, streams::WAREHOUSE, Reservation::TYPE, &order).await,
        reservation_before,
        "nothing new on the reservation"
    );
    let stock = stocks.load(&product).await.unwrap().state;
    assert_eq!((stock.on_hand(), stock.reserved()), (on_hand, 0));
    app.stop().await;
}

#[tokio::test]
async fn two_deliveries_racing_for_one_step_move_the_stock_once() {
    let app = TestApp::spawn().await;
    let product = AggregateId::new_v7();
    let p = product.to_string();
    app.open_stock(&p).await;
    app.add(&admin(), &p, 100).await.unwrap();
    let stocks = app.stocks();
    let reaction = SagaReaction::new(stocks.clone(), app.repository(streams::WAREHOUSE));
    let order = AggregateId::new_v7().to_string();
    app.publish(streams::ORDER, "order", &order, priced(&order, &p, 4))
        .await;
    app.stock_eventually(&p, |s| s.reserved == 4).await;
    // The payment's event, handled by the service's own consumer and, at
    // the same time, by two more deliveries (as if redelivered to other
    // instances).
    capture(&app, "t1", &order, 400).await;
    let captured = stored(&app, streams::PAYMENT, "balance", "c1").await;
    let (a, b) = tokio::join!(
        es_core::testing::deliver(&reaction, captured.clone()),
        es_core::testing::deliver(&reaction, captured),
    );
    assert_eq!((a.unwrap(), b.unwrap()), (1, 1));
    app.stock_eventually(&p, |s| s.reserved == 0 && s.on_hand == 96)
        .await;
    let consumptions = stored(&app, streams::WAREHOUSE, Stock::TYPE, &p)
        .await
        .iter()
        .filter(|e| e.raw.event_type == "stocklet.events.v1.StockConsumed")
        .count();
    assert_eq!(consumptions, 1, "consumed once");
    app.stop().await;
}
