//! The fixtures themselves, against the real nats-server and PostgreSQL.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use stocklet_test_support::{NatsServer, NatsServerOptions, TestDb};

async fn create_orders_stream(js: &jetstream::Context) -> jetstream::stream::Stream {
    js.create_stream(stream::Config {
        name: "ORDERS".to_owned(),
        subjects: vec!["orders.>".to_owned()],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("create stream: {e}"))
}

#[tokio::test]
async fn publish_is_acked_and_stream_survives_restart() {
    let mut nats = NatsServer::start().await;
    assert!(nats.url().starts_with("nats://127.0.0.1:"));
    let port = nats.port();

    let js = jetstream::new(nats.client().await);
    create_orders_stream(&js).await;
    let ack = js
        .publish("orders.created", "order-1".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(ack.stream, "ORDERS");
    assert_eq!(ack.sequence, 1);
    assert!(nats.store_dir().join("jetstream").is_dir());

    // Clean restart: same port, same store.
    nats.restart().await;
    assert_eq!(nats.port(), port);
    let js = nats.jetstream().await;
    let mut orders = js.get_stream("ORDERS").await.unwrap();
    assert_eq!(orders.info().await.unwrap().state.messages, 1);
    let message = orders.get_raw_message(1).await.unwrap();
    assert_eq!(message.payload.as_ref(), b"order-1");

    // Crash (SIGKILL) and restart: the acked messages are still there (sync_interval: always).
    let ack = js
        .publish("orders.created", "order-2".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(ack.sequence, 2);
    nats.kill();
    assert!(!nats.is_running());
    nats.restart().await;
    let js = nats.jetstream().await;
    let mut orders = js.get_stream("ORDERS").await.unwrap();
    assert_eq!(orders.info().await.unwrap().state.messages, 2);
}

#[tokio::test]
async fn paused_server_times_out_publishes_until_resumed() {
    let mut nats = NatsServer::start().await;
    let client = nats.client().await;
    let js = jetstream::context::ContextBuilder::new()
        .timeout(Duration::from_millis(500))
        .build(client);
    create_orders_stream(&js).await;

    nats.pause();
    let result = tokio::time::timeout(Duration::from_secs(10), async {
        js.publish("orders.created", "lost?".into()).await?.await
    })
    .await
    .expect("the JetStream timeout should fire first");
    assert!(
        result.is_err(),
        "publish to a paused server must not be acked"
    );

    nats.resume();
    let ack = js
        .publish("orders.created", "after-resume".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(ack.sequence >= 1);
}

#[tokio::test]
async fn start_with_applies_extra_config_and_args() {
    let nats = NatsServer::start_with(
        NatsServerOptions::new()
            .config("max_payload: 512KB")
            .args(["--server_name", "smoke-extra"]),
    )
    .await;
    let client = nats.client().await;
    let info = client.server_info();
    assert_eq!(info.max_payload, 512 * 1024);
    assert_eq!(info.server_name, "smoke-extra");
    assert!(info.jetstream);
}

#[tokio::test]
async fn test_dbs_are_distinct_and_dropped() {
    let a = TestDb::create().await;
    let b = TestDb::create().await;
    assert_ne!(a.name, b.name);
    assert!(a.name.starts_with("stocklet_test_"));
    assert!(a.url.ends_with(&a.name));

    let current_a: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&a.pool)
        .await
        .unwrap();
    let current_b: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&b.pool)
        .await
        .unwrap();
    assert_eq!(current_a, a.name);
    assert_eq!(current_b, b.name);

    sqlx::query("CREATE TABLE only_in_a (id int)")
        .execute(&a.pool)
        .await
        .unwrap();
    let in_b: Option<String> = sqlx::query_scalar("SELECT to_regclass('only_in_a')::text")
        .fetch_one(&b.pool)
        .await
        .unwrap();
    assert_eq!(in_b, None);

    let name_a = a.name.clone();
    drop(a);
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name_a)
            .fetch_one(&b.pool)
            .await
            .unwrap();
    assert!(
        !exists,
        "database {name_a} should be dropped with its TestDb"
    );
}
