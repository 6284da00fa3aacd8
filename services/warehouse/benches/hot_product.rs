//! Hot-product benchmark: `make bench` (`cargo bench -p stocklet-warehouse
//! --bench hot_product`).
//!
//! Issue 11 §4 asks that a command on a hot aggregate cost the same however
//! long the shop has run. This measures the warehouse's reservation (the
//! saga's `OrderPriced` reaction: load the order's reservation, load the
//! product's stock, one atomic batch) on one product after 10 prior orders
//! and on one after 10,000, in alternating rounds against the same
//! nats-server (the project's `nats/nats-server.conf`, so
//! `sync_interval: always`), and prints the ratio of the medians against
//! the target "within 1.5x".
//!
//! A third figure reserves on the 10,000-order product through a stock
//! repository without snapshots: the full-history load every reservation
//! paid before stocks were bounded and snapshotted (the old stock also
//! folded a per-order map, so the real old figure was a little higher).
//!
//! Prior orders are written straight to the stream (one commit per order,
//! reserved and consumed, decided by `Stock` itself), which is what the saga
//! would have written, only faster. Output: a table, PASS/FAIL (the exit
//! code stays 0), then one JSON object per figure per line on stdout.
//! `STOCKLET_BENCH_ROUNDS` (default 60) sets the measured rounds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use es_core::envelope::EventMeta;
use es_core::reactor::Reaction as _;
use es_core::snapshot::SnapshotStore;
use es_core::{
    Aggregate as _, AggregateId, CommandContext, EventStore as _, JetStreamEventStore, Recorded,
    Repository,
};
use serde_json::json;
use stocklet_proto::stocklet::events::v1 as events;
use stocklet_service_kit::streams;
use stocklet_test_support::NatsServer;
use stocklet_warehouse::domain::{Cents, Quantity, Reservation, Stock, StockCommand};
use stocklet_warehouse::reactor::SagaReaction;
use stocklet_warehouse::reactor::saga::{STOCK_SNAPSHOT_EVERY, SagaEvent};

const QUIET_ORDERS: usize = 10;
const HOT_ORDERS: usize = 10_000;
const TARGET_RATIO: f64 = 1.5;

type Stocks = Repository<Stock, JetStreamEventStore>;

/// Opens a product's stock with plenty of units and writes `orders` prior
/// orders on it (each reserved and consumed, one commit).
async fn product_with_orders(stocks: &Stocks, orders: usize) -> AggregateId {
    let product = AggregateId::new_v7();
    let ctx = CommandContext::default();
    stocks
        .execute(
            &product,
            &StockCommand::Create {
                product_id: product.to_string(),
                at_ms: 1,
            },
            &ctx,
        )
        .await
        .unwrap();
    stocks
        .execute(
            &product,
            &StockCommand::Add {
                quantity: Quantity::parse(100_000_000).unwrap(),
                at_ms: 1,
            },
            &ctx,
        )
        .await
        .unwrap();
    let mut loaded = stocks.load(&product).await.unwrap();
    for i in 0..orders {
        let order = AggregateId::new_v7().to_string();
        let mut state = loaded.state.clone();
        let mut decided = Vec::new();
        for command in [
            StockCommand::Reserve {
                reservation_id: format!("r-{order}"),
                order_id: order.clone(),
                customer_id: "bench".into(),
                quantity: Quantity::parse(2).unwrap(),
                unit_price: Cents::parse(1299).unwrap(),
                at_ms: 1,
            },
            StockCommand::Consume {
                reservation_id: format!("r-{order}"),
                order_id: order.clone(),
                quantity: Quantity::parse(2).unwrap(),
                at_ms: 1,
            },
        ] {
            for event in state.decide(&command).unwrap() {
                state.apply(&event);
                decided.push(event);
            }
        }
        let context = CommandContext::with_dedupe_key(format!("warehouse.reserve:{order}"));
        let commit = stocks.commit(&product, loaded.version, &decided, &context);
        let appended = stocks
            .store()
            .append(stocks.stream(), &commit)
            .await
            .unwrap();
        loaded.state = state;
        loaded.version = appended.sequence;
        if (i + 1) % 2_000 == 0 {
            eprintln!("  {} prior orders written", i + 1);
        }
    }
    product
}

/// One reservation of 1 unit of `product`, as the saga's reactor hands it
/// over; returns how long the reaction took.
async fn reserve(reaction: &SagaReaction, product: &AggregateId, round: usize) -> Duration {
    let order = AggregateId::new_v7().to_string();
    let priced = events::OrderPriced {
        order_id: order.clone(),
        customer_id: "bench".into(),
        lines: vec![events::PricedOrderLine {
            product_id: product.to_string(),
            quantity: 1,
            unit_price_cents: 1299,
        }],
        items_price_cents: 1299,
        shipping_fee_cents: 0,
        total_cents: 1299,
        occurred_at_ms: 1,
    };
    let recorded = Recorded {
        meta: EventMeta {
            stream_sequence: round as u64 + 1,
            subject: format!("order.order.{order}"),
            event_id: AggregateId::new_v7().to_string(),
            aggregate_type: "order".into(),
            aggregate_id: order.clone(),
            causation_id: None,
            correlation_id: Some(order),
            dedupe_key: None,
            timestamp_ms: 1,
            traceparent: None,
            tracestate: None,
        },
        event: SagaEvent::OrderPriced(priced),
    };
    let started = Instant::now();
    reaction.react(&recorded).await.unwrap();
    started.elapsed()
}

fn p50_ms(latencies: &[Duration]) -> f64 {
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    sorted[sorted.len() / 2].as_secs_f64() * 1_000.0
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::var("STOCKLET_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(60)
        .max(1);
    let nats = NatsServer::start().await;
    let client = nats.client().await;
    let store = JetStreamEventStore::new(client.clone());
    let stream = streams::WAREHOUSE
        .definition()
        .unwrap()
        .ensure(store.context())
        .await
        .unwrap();
    let snapshots = SnapshotStore::ensure(client.clone(), 1).await.unwrap();
    let plain: Stocks = Repository::new(store.clone(), stream.clone());
    // As the service builds it (`lib.rs`).
    let stocks = plain
        .clone()
        .with_snapshots(snapshots.clone(), STOCK_SNAPSHOT_EVERY);
    let reservations: Repository<Reservation, _> = Repository::new(store.clone(), stream.clone());
    let reaction = SagaReaction::new(stocks.clone(), reservations.clone());
    let unsnapshotted = SagaReaction::new(plain.clone(), reservations);

    eprintln!("writing {QUIET_ORDERS} and {HOT_ORDERS} prior orders");
    let quiet = product_with_orders(&stocks, QUIET_ORDERS).await;
    let hot = product_with_orders(&stocks, HOT_ORDERS).await;
    let hot_events = plain.load(&hot).await.unwrap().history.len();

    // Warm-up: the first reservation of the hot product loads its whole
    // history once and snapshots it.
    for round in 0..3 {
        reserve(&reaction, &quiet, round).await;
        reserve(&reaction, &hot, round).await;
    }
    while snapshots
        .get(Stock::TYPE, hot.as_str())
        .await
        .unwrap()
        .is_none()
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    eprintln!("measuring {rounds} alternating rounds");
    let (mut after_quiet, mut after_hot, mut full_load) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        if round % 2 == 0 {
            after_quiet.push(reserve(&reaction, &quiet, round).await);
            after_hot.push(reserve(&reaction, &hot, round).await);
        } else {
            after_hot.push(reserve(&reaction, &hot, round).await);
            after_quiet.push(reserve(&reaction, &quiet, round).await);
        }
    }
    let tail = stocks.load(&hot).await.unwrap().history.len();
    for round in 0..rounds.min(20) {
        full_load.push(reserve(&unsnapshotted, &hot, round).await);
    }

    let quiet_ms = p50_ms(&after_quiet);
    let hot_ms = p50_ms(&after_hot);
    let full_ms = p50_ms(&full_load);
    let ratio = hot_ms / quiet_ms;
    let verdict = if ratio <= TARGET_RATIO {
        "PASS"
    } else {
        "FAIL"
    };
    println!("reservation of one product (OrderPriced reaction), p50 of {rounds} rounds");
    println!("| figure | p50 | note |");
    println!("| --- | --- | --- |");
    println!("| after {QUIET_ORDERS} prior orders | {quiet_ms:.2} ms | no snapshot needed |");
    println!(
        "| after {HOT_ORDERS} prior orders | {hot_ms:.2} ms | {hot_events} events; snapshot every {STOCK_SNAPSHOT_EVERY}, tail at the end {tail} |"
    );
    println!("| ratio | {ratio:.2}x | target: within {TARGET_RATIO}x: {verdict} |");
    println!(
        "| after {HOT_ORDERS}, no snapshot | {full_ms:.2} ms | the full load every reservation paid before ({} rounds) |",
        full_load.len()
    );
    let figures = [
        ("reserve_after_10_orders_p50", quiet_ms, "ms", None),
        ("reserve_after_10000_orders_p50", hot_ms, "ms", None),
        (
            "reserve_after_10000_orders_ratio",
            ratio,
            "x",
            Some((format!("within {TARGET_RATIO}x"), verdict)),
        ),
        (
            "reserve_after_10000_orders_full_load_p50",
            full_ms,
            "ms",
            None,
        ),
    ];
    for (bench, value, unit, target) in figures {
        let mut figure = json!({ "bench": bench, "value": value, "unit": unit });
        if let Some((target, verdict)) = target {
            figure["target"] = json!(target);
            figure["verdict"] = json!(verdict);
        }
        println!("{figure}");
    }
}
