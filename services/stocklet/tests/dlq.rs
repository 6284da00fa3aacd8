//! `stocklet dlq`: an operator lists, shows and discards dead letters, and
//! is told plainly when a letter cannot be replayed. (Replaying to a running
//! reactor is es-core's `an_operator_lists_replays_and_discards_dead_letters`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use stocklet_proto::stocklet::events::v1 as events;
use stocklet_service_kit::{lifecycle, streams};
use stocklet_test_support::NatsServer;

fn dlq(nats: &NatsServer, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stocklet"))
        .arg("dlq")
        .args(args)
        .env("NATS_URL", nats.url())
        .envs(stocklet_test_support::nats_password_env())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn an_operator_lists_shows_and_discards_dead_letters() {
    let nats = NatsServer::start().await;
    let store = lifecycle::event_store(nats.client().await);
    let context = store.context();
    let conventions = lifecycle::conventions();
    let order = streams::ORDER
        .definition()
        .unwrap()
        .ensure(context)
        .await
        .unwrap();
    streams::DEADLETTER
        .definition()
        .unwrap()
        .ensure(context)
        .await
        .unwrap();
    let order_id = "0192f0c1-0000-7000-8000-000000000001";
    es_core::testing::append_event(
        &store,
        &order,
        "order",
        order_id,
        events::OrderPlaced {
            order_id: order_id.into(),
            customer_id: "c-1".into(),
            lines: vec![],
            occurred_at_ms: 1,
        },
    )
    .await
    .unwrap();
    es_core::deadletter::publish_stored(
        context,
        &conventions,
        "order-orders",
        "ORDER",
        1,
        "bad row",
    )
    .await
    .unwrap();

    let listed = dlq(&nats, &["list"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let out = text(&listed.stdout);
    assert!(out.contains("order-orders"), "{out}");
    assert!(out.contains("stocklet.events.v1.OrderPlaced"), "{out}");
    assert!(out.contains("ORDER:1"), "{out}");
    assert!(out.contains("bad row"), "{out}");
    assert!(
        text(&dlq(&nats, &["list", "--consumer", "nobody"]).stdout)
            .lines()
            .count()
            == 1
    );

    let shown = dlq(&nats, &["show", "1"]);
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    let json: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(json["consumer"], "order-orders");
    assert_eq!(json["event"]["orderId"], order_id, "{json}");
    assert_eq!(json["error"], "bad row");

    // A projection's letter cannot be replayed: the operator is told why.
    let replay = dlq(&nats, &["replay", "1"]);
    assert!(!replay.status.success());
    assert!(
        text(&replay.stderr).contains("rebuild"),
        "{}",
        text(&replay.stderr)
    );

    let discarded = dlq(&nats, &["discard", "--consumer", "order-orders", "--all"]);
    assert!(discarded.status.success(), "{}", text(&discarded.stderr));
    assert!(text(&discarded.stdout).contains("discarded 1"));
    let empty = dlq(&nats, &["list"]);
    assert_eq!(text(&empty.stdout).lines().count(), 1, "only the header");
    let gone = dlq(&nats, &["show", "1"]);
    assert!(!gone.status.success());
    assert!(text(&gone.stderr).contains("no dead letter 1"));

    let misuse = dlq(&nats, &["purge"]);
    assert_eq!(misuse.status.code(), Some(2));
    assert!(text(&misuse.stderr).contains("usage"));
}
