//! The point of no return: dispatch cannot be undone, so shipping decides
//! every race between a dispatch and a cancellation. Whichever reaches the
//! shipment first wins: a shipment that left completes its order (the
//! cancellation refused, nothing refunded), a shipment released before it
//! left cancels its order (refunded, stock returned) and cannot be
//! dispatched any more. Never both.

use std::time::Duration;

use stocklet_proto::stocklet::order::v1::OrderStatus;
use stocklet_proto::stocklet::shipping::v1::ShipmentStatus;
use tonic::Code;

use crate::app::{SHIPPING_FEE, Saga};

#[tokio::test]
async fn a_cancellation_after_dispatch_is_refused_and_the_order_completes() {
    let saga = Saga::spawn().await;
    let widget = saga.product(1_000, 10).await;
    let customer = saga.customer(10_000).await;
    let placed = saga.place(&customer, &[(&widget, 2)]).await;
    let approved = saga
        .await_status(&customer, &placed.id, OrderStatus::Approved)
        .await;
    // The order does not hear of the dispatch yet, so the cancellation is
    // a request that reaches the shipment after it left.
    saga.pause_consumer("SHIPPING", "order-from-shipping", Duration::from_secs(3))
        .await;
    saga.dispatch(&approved.shipment_id, "req-dispatch")
        .await
        .unwrap();
    let requested = saga
        .cancel(&customer, &placed.id, "changed my mind")
        .await
        .unwrap();
    assert_eq!(requested.status(), OrderStatus::Approved);
    assert!(requested.cancellation_requested);

    let completed = saga
        .await_status(&customer, &placed.id, OrderStatus::Completed)
        .await;
    assert!(!completed.cancellation_requested);
    saga.await_timeline(&customer, &placed.id, &["ShipmentCancellationRefused"])
        .await;
    saga.await_shipment(&approved.shipment_id, ShipmentStatus::Dispatched)
        .await;
    saga.await_reactors_idle().await;
    assert_eq!(saga.balance(&customer).await, 10_000 - 2_000 - SHIPPING_FEE);
    assert_eq!(saga.stock(&widget).await, (8, 0));
    saga.stop().await;
}

#[tokio::test]
async fn a_dispatch_after_the_release_is_refused_and_the_order_is_cancelled() {
    let saga = Saga::spawn().await;
    let widget = saga.product(1_000, 10).await;
    let customer = saga.customer(10_000).await;
    let placed = saga.place(&customer, &[(&widget, 2)]).await;
    let approved = saga
        .await_status(&customer, &placed.id, OrderStatus::Approved)
        .await;
    saga.cancel(&customer, &placed.id, "changed my mind")
        .await
        .unwrap();
    saga.await_shipment(&approved.shipment_id, ShipmentStatus::Released)
        .await;

    let refused = saga
        .dispatch(&approved.shipment_id, "req-late")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    saga.await_status(&customer, &placed.id, OrderStatus::Cancelled)
        .await;
    saga.await_balance(&customer, 10_000).await;
    saga.await_stock(&widget, (10, 0)).await;
    saga.await_reactors_idle().await;
    saga.stop().await;
}

#[tokio::test]
async fn racing_dispatches_and_cancellations_each_end_one_way_only() {
    let saga = Saga::spawn().await;
    let widget = saga.product(1_000, 100).await;
    let mut orders = Vec::new();
    for _ in 0..8 {
        let customer = saga.customer(10_000).await;
        let placed = saga.place(&customer, &[(&widget, 1)]).await;
        orders.push((customer, placed.id));
    }
    let mut shipments = Vec::new();
    for (customer, order_id) in &orders {
        let approved = saga
            .await_status(customer, order_id, OrderStatus::Approved)
            .await;
        shipments.push(approved.shipment_id);
    }
    // Each order's dispatch and cancellation at the same moment.
    let races = orders
        .iter()
        .zip(&shipments)
        .map(|((customer, order_id), shipment)| {
            let saga = &saga;
            async move {
                let (dispatched, cancelled) = tokio::join!(
                    saga.dispatch(shipment, "req-race"),
                    saga.cancel(customer, order_id, "changed my mind")
                );
                (dispatched.is_ok(), cancelled.is_ok())
            }
        });
    let outcomes = futures::future::join_all(races).await;

    let mut completed = 0;
    for (((customer, order_id), shipment), (dispatched, _)) in
        orders.iter().zip(&shipments).zip(&outcomes)
    {
        let settled = saga.await_settled(customer, order_id).await;
        let settled = match settled.status() {
            // Approved with the cancellation on its way: wait for shipping's
            // decision.
            OrderStatus::Approved => {
                saga.await_status(
                    customer,
                    order_id,
                    if *dispatched {
                        OrderStatus::Completed
                    } else {
                        OrderStatus::Cancelled
                    },
                )
                .await
            }
            _ => settled,
        };
        match settled.status() {
            OrderStatus::Completed => {
                completed += 1;
                assert!(dispatched, "completed without a dispatch: {settled:?}");
                saga.await_shipment(shipment, ShipmentStatus::Dispatched)
                    .await;
                saga.await_balance(customer, 10_000 - 1_000 - SHIPPING_FEE)
                    .await;
            }
            OrderStatus::Cancelled => {
                assert!(!dispatched, "dispatched and cancelled: {settled:?}");
                saga.await_shipment(shipment, ShipmentStatus::Released)
                    .await;
                saga.await_balance(customer, 10_000).await;
            }
            other => panic!("order {order_id} ended {other:?}"),
        }
    }
    saga.await_reactors_idle().await;
    // Every unit of a completed order left; every other came back.
    assert_eq!(saga.stock(&widget).await, (100 - completed, 0));
    eprintln!("{completed} of {} races went to the dispatch", orders.len());
    saga.stop().await;
}
