//! Many orders racing for scarce stock: the warehouse never oversells and
//! never leaves a partial reservation.

use futures::future::join_all;
use stocklet_proto::stocklet::order::v1::OrderStatus;

use crate::app::{SETTLE_AFTER_RESTART, SHIPPING_FEE, Saga};

#[tokio::test]
async fn racing_orders_never_oversell_scarce_stock() {
    let saga = Saga::spawn().await;
    let scarce = saga.product(100, 7).await;
    let other = saga.product(100, 9).await;
    let mut customers = Vec::new();
    for _ in 0..6 {
        customers.push(saga.customer(1_000_000).await);
    }

    // 30 orders, each for 1 of `scarce` and 1 of `other`, placed at once.
    let placing = (0..30).map(|i| {
        let customer = &customers[i % customers.len()];
        let (saga, scarce, other) = (&saga, scarce.as_str(), other.as_str());
        async move {
            let placed = saga.place(customer, &[(scarce, 1), (other, 1)]).await;
            saga.await_settled(customer, &placed.id).await
        }
    });
    let settled = join_all(placing).await;

    let approved = settled
        .iter()
        .filter(|o| o.status() == OrderStatus::Approved)
        .count();
    let rejected = settled
        .iter()
        .filter(|o| o.status() == OrderStatus::Rejected)
        .count();
    assert_eq!(approved + rejected, 30, "every order settles");
    // Exactly as many as the scarcer product allows, never more.
    assert_eq!(approved, 7);
    let approved_units = i64::try_from(approved).unwrap();
    saga.await_stock(&scarce, (7 - approved_units, 0)).await;
    saga.await_stock(&other, (9 - approved_units, 0)).await;
    saga.stop().await;
}

#[tokio::test]
async fn sagas_interrupted_by_a_restart_of_every_service_finish_afterwards() {
    let saga = Saga::spawn().await;
    let scarce = saga.product(1_000, 5).await;
    let mut customers = Vec::new();
    for _ in 0..4 {
        customers.push(saga.customer(5_000).await);
    }
    let count = customers.len();
    let placing = (0..12).map(|i| {
        let customer = &customers[i % count];
        let (saga, scarce) = (&saga, scarce.as_str());
        async move { (i % count, saga.place(customer, &[(scarce, 1)]).await) }
    });
    let placed = join_all(placing).await;

    // Stop everything while the sagas are in flight, then start again.
    let (nats, db) = saga.shut_down().await;
    let saga = Saga::spawn_on(nats, db).await;

    let mut approved_per_customer = vec![0i64; customers.len()];
    for (customer, order) in &placed {
        let settled = saga
            .await_settled_within(&customers[*customer], &order.id, SETTLE_AFTER_RESTART)
            .await;
        if settled.status() == OrderStatus::Approved {
            approved_per_customer[*customer] += 1;
        }
    }
    let approved: i64 = approved_per_customer.iter().sum();
    assert_eq!(approved, 5, "every unit sold, none twice");
    saga.await_stock(&scarce, (0, 0)).await;
    for (customer, count) in customers.iter().zip(&approved_per_customer) {
        saga.await_balance(customer, 5_000 - count * (1_000 + SHIPPING_FEE))
            .await;
    }
    saga.stop().await;
}
