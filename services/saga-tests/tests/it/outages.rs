//! Infrastructure outages while every service keeps running: PostgreSQL
//! stopped, nats-server restarted meanwhile, PostgreSQL started again. The
//! saga runs on NATS alone, so orders keep moving while the database is
//! down, and every read model catches up by itself once it is back, with
//! no restart of any service and nothing dead-lettered.

use std::time::{Duration, Instant};

use stocklet_proto::stocklet::order::v1::OrderStatus;
use stocklet_test_support::{NatsServer, PostgresServer, TestDb};

use crate::app::{SHIPPING_FEE, Saga};

#[tokio::test]
async fn read_models_catch_up_after_a_database_outage_and_a_nats_restart_without_restarts() {
    let postgres = PostgresServer::start().await;
    let db = TestDb::create_on(&postgres.url()).await;
    let mut saga = Saga::spawn_on(NatsServer::start().await, db).await;
    let widget = saga.product(1_000, 10).await;
    let customer = saga.customer(100_000).await;
    let before = saga.place(&customer, &[(&widget, 1)]).await;
    saga.await_status(&customer, &before.id, OrderStatus::Approved)
        .await;

    postgres.stop();
    // Commands still answer (from what they decided) while the database is
    // down, and the saga moves on NATS.
    let mut during = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        during.push(saga.place(&customer, &[(&widget, 1)]).await.id);
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "placing an order took {:?} with the database down",
            started.elapsed()
        );
    }
    saga.nats.restart().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    postgres.start_again().await;

    let back = Instant::now();
    for order_id in &during {
        let order = saga.await_settled(&customer, order_id).await;
        assert_eq!(order.status(), OrderStatus::Approved, "{order:?}");
    }
    saga.await_stock(&widget, (6, 0)).await;
    saga.await_balance(&customer, 100_000 - 4 * (1_000 + SHIPPING_FEE))
        .await;
    eprintln!(
        "read models caught up {:?} after the database came back",
        back.elapsed()
    );
    saga.stop().await;
}
