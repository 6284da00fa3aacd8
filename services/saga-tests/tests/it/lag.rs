//! Lag: a consumer that falls behind for longer than a saga step's retries
//! used to last (five deliveries in about 8 s) holds nothing back for good.
//! Steps that arrive before what they depend on are "not yet", retried for
//! hours; nothing is dead-lettered, and once the consumer catches up every
//! order reaches its terminal state.

use std::time::{Duration, Instant};

use stocklet_proto::stocklet::order::v1::OrderStatus;

use crate::app::{SETTLE, SHIPPING_FEE, Saga, Service};

/// Longer than the old retry budget by far.
const LAG: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_consumer_paused_for_a_minute_mid_saga_stalls_no_order() {
    let saga = Saga::spawn().await;
    let widget = saga.product(1_000, 100).await;
    let customers = [
        saga.customer(50_000).await,
        saga.customer(50_000).await,
        saga.customer(50_000).await,
    ];
    // Order stops hearing from warehouse: it hears of every shipment and
    // payment before it hears that the stock was reserved ("too early").
    saga.pause_consumer("WAREHOUSE", "order-from-warehouse", LAG)
        .await;
    let paused_at = Instant::now();
    let mut placed = Vec::new();
    for customer in &customers {
        for _ in 0..2 {
            placed.push((customer, saga.place(customer, &[(&widget, 2)]).await.id));
        }
    }
    // The rest of the saga has run (stock, shipment, payment) while order
    // waits; nothing is given up on meanwhile.
    for customer in &customers {
        saga.await_balance(customer, 50_000 - 2 * (2_000 + SHIPPING_FEE))
            .await;
    }
    assert!(paused_at.elapsed() < LAG, "the saga took the whole pause");
    saga.assert_no_dead_letters().await;
    tokio::time::sleep(LAG.saturating_sub(paused_at.elapsed())).await;

    for (customer, order_id) in &placed {
        let order = saga.await_settled_within(customer, order_id, SETTLE).await;
        assert_eq!(order.status(), OrderStatus::Approved, "{order:?}");
    }
    eprintln!(
        "{} orders approved {:?} after a {LAG:?} pause began",
        placed.len(),
        paused_at.elapsed()
    );
    saga.await_stock(&widget, (88, 0)).await;
    saga.stop().await;
}

#[tokio::test]
async fn a_cancellation_that_overtakes_the_payments_consumption_returns_every_unit() {
    let mut saga = Saga::spawn().await;
    let widgets = [
        saga.product(1_000, 10).await,
        saga.product(2_000, 10).await,
        saga.product(3_000, 10).await,
    ];
    let customer = saga.customer(50_000).await;
    // Warehouse has not consumed the payment's capture yet (its consumer
    // lags, as after a kill while it held the event) when the cancellation
    // reaches it: the return is "not yet" until the consumption is done.
    saga.pause_consumer("PAYMENT", "warehouse-from-payment", Duration::from_secs(20))
        .await;
    let placed = saga
        .place(
            &customer,
            &[(&widgets[0], 1), (&widgets[1], 2), (&widgets[2], 3)],
        )
        .await;
    saga.await_status(&customer, &placed.id, OrderStatus::Approved)
        .await;
    saga.cancel(&customer, &placed.id, "changed my mind")
        .await
        .unwrap();
    saga.await_status(&customer, &placed.id, OrderStatus::Cancelled)
        .await;
    saga.await_balance(&customer, 50_000).await;
    // Past the old retry budget, warehouse is killed while the return
    // waits, and comes back.
    tokio::time::sleep(Duration::from_secs(10)).await;
    saga.kill_service(Service::Warehouse).await;
    saga.start_service(Service::Warehouse).await;

    for widget in &widgets {
        saga.await_stock(widget, (10, 0)).await;
    }
    saga.await_reactors_idle().await;
    saga.stop().await;
}
