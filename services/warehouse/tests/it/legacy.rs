//! Stock stored before `StockHeld` existed still loads and projects.
//!
//! Until `StockHeld`, a product's hold for one order was a per-product
//! `StockReserved` on its stock subject. The warehouse upcasts those to
//! `StockHeld` as it reads them (`stocklet_warehouse::upcasters`). These
//! tests replay a stored sample of such a history into the service's stream
//! byte for byte, headers and payloads as the code of that time stored them
//! (`tests/fixtures/legacy-stock-reserved`, made as its README says), and
//! check what the service makes of it: the stock aggregates' counts, the
//! saga's next step on an old hold, the read model, and a rebuild of the
//! read model from the same stream. Without the upcaster (in the chain, or
//! registered in `run`) each of them fails.

use std::path::{Path, PathBuf};

use async_nats::HeaderMap;
use es_core::{Aggregate as _, AggregateId, DomainEvent as _, StoreError};
use prost::Message as _;
use sqlx::PgPool;
use stocklet_proto::stocklet::events::v1 as events;
use stocklet_service_kit::streams;
use stocklet_test_support::harness::{SETTLE, eventually};
use stocklet_warehouse::domain::{Reservation, Stock, StockEvent};
use stocklet_warehouse::upcasters::upcasters;
use tonic::Code;

use crate::app::*;

/// The two products of the sample and their stock when it was taken: 10
/// mugs on hand, 3 held by order 1 (order 2's 4 were released); 5 teas, 2
/// held by order 1 and 1 consumed by order 3.
const MUG: &str = "legacy-mug";
const TEA: &str = "legacy-tea";
const ORDER_1: &str = "legacy-order-1";
const ORDER_2: &str = "legacy-order-2";
const ORDER_3: &str = "legacy-order-3";

/// One message of the sample, as the server stored it.
struct StoredMessage {
    sequence: u64,
    subject: String,
    headers: HeaderMap,
    payload: Vec<u8>,
}

impl StoredMessage {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|value| value.as_str())
    }
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy-stock-reserved")
}

/// A stored NATS header block (`NATS/1.0\r\nName: value\r\n...\r\n\r\n`).
fn parse_headers(block: &[u8]) -> HeaderMap {
    let block = std::str::from_utf8(block).unwrap();
    let mut lines = block.split("\r\n");
    assert_eq!(lines.next(), Some("NATS/1.0"), "{block:?}");
    let mut headers = HeaderMap::new();
    for line in lines.take_while(|line| !line.is_empty()) {
        let (name, value) = line.split_once(':').unwrap();
        headers.append(name, value.trim_start());
    }
    headers
}

/// The sample: every message of the `WAREHOUSE` stream, in stream order.
fn fixture() -> Vec<StoredMessage> {
    let dir = fixture_dir();
    let manifest = std::fs::read_to_string(dir.join("messages.txt")).unwrap();
    manifest
        .lines()
        .map(|line| {
            let (sequence, subject) = line.split_once(' ').unwrap();
            StoredMessage {
                sequence: sequence.parse().unwrap(),
                subject: subject.to_owned(),
                headers: parse_headers(
                    &std::fs::read(dir.join(format!("{sequence}.headers"))).unwrap(),
                ),
                payload: std::fs::read(dir.join(format!("{sequence}.payload"))).unwrap(),
            }
        })
        .collect()
}

/// Publishes the sample into the service's (still empty) stream exactly as
/// it was stored: the same subjects, headers and payloads, in order, so each
/// lands at its old sequence and its stored concurrency and dedupe headers
/// hold again. The messages of an atomic batch go as that batch again (the
/// server stored their `Nats-Batch-*` headers): only the commit is answered.
async fn replay(app: &TestApp, sample: Vec<StoredMessage>) {
    let client = app.store.client().clone();
    for message in sample {
        let sequence = message.sequence;
        let in_batch = message.header("Nats-Batch-Id").is_some();
        let commits = message.header("Nats-Batch-Commit").is_some();
        if in_batch && !commits {
            client
                .publish_with_headers(message.subject, message.headers, message.payload.into())
                .await
                .unwrap();
            continue;
        }
        let ack = app
            .store
            .context()
            .publish_with_headers(message.subject, message.headers, message.payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(ack.sequence, sequence, "replayed at its stored sequence");
    }
}

/// Every row of the read model, to compare it across a rebuild.
async fn read_model(pool: &PgPool) -> (Vec<(String, i64, i64)>, Vec<(String, String, String)>) {
    let stocks = sqlx::query_as(
        "SELECT product_id, on_hand, reserved FROM warehouse.stocks ORDER BY product_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let reservations = sqlx::query_as(
        "SELECT r.order_id, r.status, string_agg(l.product_id || ':' || l.quantity, ',' ORDER BY l.product_id)
         FROM warehouse.reservations r JOIN warehouse.reservation_lines l ON l.reservation_id = r.id
         GROUP BY r.id, r.order_id, r.status ORDER BY r.order_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    (stocks, reservations)
}

#[test]
fn the_sample_holds_per_product_stock_reserved_on_stock_subjects() {
    let sample = fixture();
    assert_eq!(sample.len(), 15);
    let kinds: Vec<_> = sample
        .iter()
        .map(|m| {
            (
                m.header("Stocklet-Aggregate-Type").unwrap(),
                m.header("Stocklet-Event-Type").unwrap(),
                m.header("Stocklet-Schema-Version").unwrap(),
            )
        })
        .filter(|(_, event_type, _)| event_type.ends_with(".StockReserved"))
        .collect();
    // Four holds on stock subjects, three order-level reservations, all v1.
    let on = |aggregate: &str| kinds.iter().filter(|(a, _, _)| *a == aggregate).count();
    assert_eq!((on(Stock::TYPE), on(Reservation::TYPE)), (4, 3));
    assert!(kinds.iter().all(|(_, _, version)| *version == "1"));
    // Each hold names one product and is priced for it alone.
    for message in &sample {
        if message.header("Stocklet-Aggregate-Type") == Some(Stock::TYPE)
            && message.header("Stocklet-Event-Type") == Some("stocklet.events.v1.StockReserved")
        {
            let hold = events::StockReserved::decode(message.payload.as_slice()).unwrap();
            assert_eq!(hold.lines.len(), 1);
            assert!(message.subject.ends_with(&hold.lines[0].product_id));
            assert_eq!(hold.shipping_fee_cents, 0);
        }
    }
}

#[tokio::test]
async fn stock_stored_before_stock_held_loads_steps_and_rebuilds() {
    let app = TestApp::spawn().await;
    replay(&app, fixture()).await;

    // The read model, as the service's projection builds it.
    let mug = app
        .stock_eventually(MUG, |s| s.reserved == 3 && s.on_hand == 10)
        .await;
    assert_eq!(mug.available, 7);
    let tea = app
        .stock_eventually(TEA, |s| s.reserved == 2 && s.on_hand == 4)
        .await;
    assert_eq!(tea.available, 2);
    assert_eq!(
        read_model(&app.db.pool).await.1,
        [
            (
                ORDER_1.into(),
                "reserved".into(),
                format!("{MUG}:3,{TEA}:2")
            ),
            (ORDER_2.into(), "released".into(), format!("{MUG}:4")),
            (ORDER_3.into(), "consumed".into(), format!("{TEA}:1")),
        ]
    );

    // The aggregates, loaded through the warehouse's chain: the old holds
    // arrive as `StockHeld`. Without it they do not load at all.
    let mug_id = AggregateId::parse(MUG).unwrap();
    let stocks = app.stocks().with_upcasters(upcasters());
    let loaded = stocks.load(&mug_id).await.unwrap();
    assert_eq!(
        (
            loaded.state.on_hand(),
            loaded.state.reserved(),
            loaded.state.available()
        ),
        (10, 3, 7)
    );
    let holds: Vec<_> = loaded
        .history
        .iter()
        .filter_map(|e| match &e.event {
            StockEvent::Held(held) => Some((held.order_id.as_str(), held.lines[0].quantity)),
            _ => None,
        })
        .collect();
    assert_eq!(holds, [(ORDER_1, 3), (ORDER_2, 4)]);
    assert!(
        loaded
            .history
            .iter()
            .all(|e| e.event.event_type() != "stocklet.events.v1.StockReserved")
    );
    let tea = stocks
        .load(&AggregateId::parse(TEA).unwrap())
        .await
        .unwrap()
        .state;
    assert_eq!((tea.on_hand(), tea.reserved(), tea.available()), (4, 2, 2));
    let without = app.stocks().load(&mug_id).await;
    assert!(matches!(without, Err(StoreError::Decode(_))), "{without:?}");

    // The service's own repository folds the old holds too: only the 7
    // unheld mugs can be removed...
    let too_many = app.remove(&admin(), MUG, 8).await.unwrap_err();
    assert_eq!(too_many.code(), Code::FailedPrecondition, "{too_many}");
    let removed = app.remove(&admin(), MUG, 2).await.unwrap();
    assert_eq!(
        (removed.on_hand, removed.reserved, removed.available),
        (8, 3, 5)
    );
    // ...and the saga's next step releases an old hold: order 1's payment
    // fails.
    app.publish(
        streams::PAYMENT,
        "balance",
        "legacy-customer",
        events::PaymentFailed {
            order_id: ORDER_1.into(),
            customer_id: "legacy-customer".into(),
            amount_cents: 3 * 1299 + 2 * 450 + 500,
            ..Default::default()
        },
    )
    .await;
    app.stock_eventually(MUG, |s| s.reserved == 0 && s.on_hand == 8)
        .await;
    app.stock_eventually(TEA, |s| s.reserved == 0 && s.on_hand == 4)
        .await;
    let before = read_model(&app.db.pool).await;
    assert_eq!(
        before.0,
        [(MUG.into(), 8, 0), (TEA.into(), 4, 0)],
        "{before:?}"
    );
    assert_eq!(before.1[0].1, "released");

    // Lose the read model: the next start rebuilds it from the same stream,
    // old holds and new events alike.
    let (nats, db) = app.stop().await;
    sqlx::raw_sql(
        "TRUNCATE warehouse.stocks, warehouse.reservations, warehouse.reservation_lines;
         DELETE FROM warehouse.es_checkpoints",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let app = TestApp::spawn_on(nats, db).await;
    app.stock_eventually(MUG, |s| s.on_hand == 8).await;
    let what = "the rebuilt read model matching the one before";
    let rebuilt = eventually(SETTLE, what, async || {
        let now = read_model(&app.db.pool).await;
        if now == before { Ok(now) } else { Err(now) }
    })
    .await;
    assert_eq!(rebuilt.1.len(), 3);
    app.stop().await;
}
