//! `stocklet provision`: the one-shot init of a deployment. It must leave
//! every stream, schema and durable consumer in place and exit 0, without
//! serving anything.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use stocklet_test_support::{NatsServer, TestDb, nats_password_env};

#[tokio::test]
async fn provision_prepares_streams_schemas_and_consumers_then_exits() {
    let nats = NatsServer::start().await;
    let db = TestDb::create().await;
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stocklet"))
        .arg("provision")
        .env("NATS_URL", nats.url())
        .envs(nats_password_env())
        .env("DATABASE_URL", &db.url)
        .env("STOCKLET_DATA_DIR", data.path())
        .env("STOCKLET_SEED", "true") // ignored when provisioning
        .env(
            "STOCKLET_INTERNAL_TOKEN",
            "provision-test-token-0123456789abcdef",
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "stocklet provision never exited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "stocklet provision failed: {status}");

    let jetstream = nats.jetstream().await;
    for name in [
        "AUTH",
        "USER",
        "PRODUCT",
        "WAREHOUSE",
        "ORDER",
        "PAYMENT",
        "SHIPPING",
        "DEADLETTER",
    ] {
        let mut stream = jetstream.get_stream(name).await.unwrap();
        assert_eq!(stream.info().await.unwrap().state.messages, 0, "{name}");
    }
    // A projection's and a reactor's durable consumers.
    let order = jetstream.get_stream("ORDER").await.unwrap();
    for consumer in ["order-orders", "order-timeline-order"] {
        order
            .get_consumer::<async_nats::jetstream::consumer::pull::Config>(consumer)
            .await
            .unwrap_or_else(|e| panic!("no consumer {consumer}: {e}"));
    }
    order
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>(
            stocklet_product::ORDER_CONSUMER,
        )
        .await
        .unwrap();
    // Every service's schema is migrated, and no demo data was seeded.
    let (tables,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM information_schema.tables
         WHERE table_schema IN ('auth', 'user', 'product', 'warehouse', 'order', 'payment', 'shipping')
           AND table_name = '_sqlx_migrations'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(tables, 7);
    let (products,): (i64,) = sqlx::query_as("SELECT count(*) FROM product.products")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(products, 0);
}

#[tokio::test]
async fn the_binary_refuses_to_start_without_a_deployment_secret() {
    // No default ships in the repository: without STOCKLET_INTERNAL_TOKEN,
    // or with a published or short one, nothing starts, and the log says
    // what to do.
    let nats = NatsServer::start().await;
    let db = TestDb::create().await;
    for token in [None, Some("stocklet-dev-internal-token"), Some("short")] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_stocklet"));
        command
            .env("NATS_URL", nats.url())
            .envs(nats_password_env())
            .env("DATABASE_URL", &db.url)
            .env("STOCKLET_SEED", "false")
            .env("STOCKLET_GATEWAY_ADDR", "127.0.0.1:0")
            .env("NO_COLOR", "1")
            .env_remove("STOCKLET_INTERNAL_TOKEN")
            .stdin(Stdio::null());
        if let Some(token) = token {
            command.env("STOCKLET_INTERNAL_TOKEN", token);
        }
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .unwrap()
            .unwrap();
        assert!(!output.status.success(), "{token:?} started");
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(log.contains("STOCKLET_INTERNAL_TOKEN"), "{token:?}: {log}");
        assert!(log.contains("openssl rand"), "says how: {log}");
        if let Some(token) = token {
            assert!(
                !log.contains(&format!("\"{token}\"")),
                "the value is never logged"
            );
        }
    }
}

#[tokio::test]
async fn services_do_not_create_streams_and_say_how_to_provision_them() {
    // A service's NATS user may not create streams: on a server nobody
    // provisioned, the binary stops at once and says what to run. Without
    // its NATS password it does not start either.
    let nats = NatsServer::start().await;
    let db = TestDb::create().await;
    let run = |without: Option<&'static str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_stocklet"));
        command
            .env("NATS_URL", nats.url())
            .envs(nats_password_env())
            .env_remove("STOCKLET_PROVISION_NATS_PASSWORD")
            .env("DATABASE_URL", &db.url)
            .env("STOCKLET_SEED", "false")
            .env("STOCKLET_GATEWAY_ADDR", "127.0.0.1:0")
            .env(
                "STOCKLET_INTERNAL_TOKEN",
                "provision-test-token-0123456789abcdef",
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        for service in [
            "AUTH",
            "USER",
            "PRODUCT",
            "WAREHOUSE",
            "ORDER",
            "PAYMENT",
            "SHIPPING",
        ] {
            command.env(format!("STOCKLET_{service}_ADDR"), "127.0.0.1:0");
        }
        if let Some(variable) = without {
            command.env_remove(variable);
        }
        async move {
            let output = tokio::time::timeout(
                Duration::from_secs(60),
                tokio::task::spawn_blocking(move || command.output()),
            )
            .await
            .expect("the binary stops by itself")
            .unwrap()
            .unwrap();
            assert!(!output.status.success(), "it started");
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        }
    };
    let log = run(None).await;
    assert!(log.contains("is not provisioned"), "{log}");
    assert!(log.contains("stocklet provision"), "says how: {log}");
    let jetstream = nats.jetstream().await;
    let mut names = jetstream.stream_names();
    assert!(names.next().await.is_none(), "no stream was created");

    let log = run(Some("STOCKLET_ORDER_NATS_PASSWORD")).await;
    assert!(log.contains("STOCKLET_ORDER_NATS_PASSWORD"), "{log}");
    assert!(log.contains("not set"), "{log}");
}
