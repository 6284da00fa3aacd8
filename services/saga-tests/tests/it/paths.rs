//! One test per path of the saga, each checking the order's final status
//! and the side effects on stock, balance and shipment.

use es_core::EventStore as _;
use stocklet_proto::stocklet::order::v1 as order;
use stocklet_proto::stocklet::order::v1::{OrderStatus, RejectionReason};
use stocklet_proto::stocklet::shipping::v1::ShipmentStatus;
use stocklet_service_kit::streams;

use crate::app::{CAPACITY, SHIPPING_FEE, Saga};

fn reason(order: &order::Order) -> RejectionReason {
    order
        .rejection
        .as_ref()
        .map_or(RejectionReason::Unspecified, |r| r.reason())
}

#[tokio::test]
async fn an_order_with_stock_shipping_and_money_is_approved() {
    let saga = Saga::spawn().await;
    let widget = saga.product(1_000, 10).await;
    let gadget = saga.product(250, 5).await;
    let customer = saga.customer(10_000).await;

    let placed = saga.place(&customer, &[(&widget, 2), (&gadget, 3)]).await;
    assert_eq!(placed.status(), OrderStatus::Processing);
    let approved = saga
        .await_status(&customer, &placed.id, OrderStatus::Approved)
        .await;

    let total = 2 * 1_000 + 3 * 250 + SHIPPING_FEE;
    assert_eq!(approved.items_price_cents, 2 * 1_000 + 3 * 250);
    assert_eq!(approved.shipping_fee_cents, SHIPPING_FEE);
    assert_eq!(approved.total_cents, total);
    assert!(!approved.transaction_id.is_empty());
    assert!(!approved.reservation_id.is_empty());
    assert_eq!(approved.shipment_id, placed.id, "one shipment per order");
    // Reserved stock was consumed: it left the stock on hand.
    saga.await_stock(&widget, (8, 0)).await;
    saga.await_stock(&gadget, (2, 0)).await;
    saga.await_balance(&customer, 10_000 - total).await;
    saga.await_shipment(&approved.shipment_id, ShipmentStatus::Allocated)
        .await;
    let shipment = saga.shipment(&approved.shipment_id).await;
    assert_eq!(shipment.order_id, placed.id);
    assert_eq!(shipment.customer_id, customer.id);

    // Every saga event, in every service, carries the order id as its
    // correlation id.
    let saga_subjects = [
        (streams::ORDER, "order", placed.id.as_str()),
        (streams::PRODUCT, "quote", placed.id.as_str()),
        (streams::WAREHOUSE, "reservation", placed.id.as_str()),
        (streams::WAREHOUSE, "stock", widget.as_str()),
        (streams::SHIPPING, "shipment", placed.id.as_str()),
        (streams::PAYMENT, "balance", customer.id.as_str()),
    ];
    let not_saga = [
        "stocklet.events.v1.StockCreated",
        "stocklet.events.v1.StockAdded",
        "stocklet.events.v1.BalanceOpened",
        "stocklet.events.v1.BalanceCredited",
    ];
    for (definition, aggregate_type, id) in saga_subjects {
        let history = saga.history(definition, aggregate_type, id).await;
        assert!(!history.is_empty(), "no events on {aggregate_type} {id}");
        for (event_type, correlation) in history {
            if not_saga.contains(&event_type.as_str()) {
                continue;
            }
            assert_eq!(
                correlation.as_deref(),
                Some(placed.id.as_str()),
                "{event_type} on {aggregate_type} {id}"
            );
        }
    }
    saga.stop().await;
}

#[tokio::test]
async fn an_order_of_a_deleted_or_unknown_product_is_rejected_as_unavailable() {
    let saga = Saga::spawn().await;
    let kept = saga.product(100, 5).await;
    let deleted = saga.product(100, 0).await;
    saga.delete_product(&deleted).await;
    let unknown = uuid::Uuid::now_v7().to_string();
    let customer = saga.customer(10_000).await;

    let placed = saga
        .place(&customer, &[(&kept, 1), (&deleted, 1), (&unknown, 1)])
        .await;
    let rejected = saga
        .await_status(&customer, &placed.id, OrderStatus::Rejected)
        .await;

    assert_eq!(reason(&rejected), RejectionReason::ProductUnavailable);
    let mut at_fault = rejected.rejection.unwrap().product_ids;
    at_fault.sort();
    let mut expected = vec![deleted, unknown];
    expected.sort();
    assert_eq!(at_fault, expected);
    saga.await_stock(&kept, (5, 0)).await;
    assert_eq!(saga.balance(&customer).await, 10_000);
    saga.stop().await;
}

#[tokio::test]
async fn an_order_short_of_stock_is_rejected_and_reserves_nothing() {
    let saga = Saga::spawn().await;
    let plenty = saga.product(100, 10).await;
    let scarce = saga.product(100, 1).await;
    let customer = saga.customer(10_000).await;

    let placed = saga.place(&customer, &[(&plenty, 2), (&scarce, 2)]).await;
    let rejected = saga
        .await_status(&customer, &placed.id, OrderStatus::Rejected)
        .await;

    assert_eq!(reason(&rejected), RejectionReason::InsufficientStock);
    assert_eq!(
        rejected.rejection.unwrap().product_ids,
        vec![scarce.clone()]
    );
    // All or nothing: the product that had enough holds nothing either.
    assert_eq!(saga.stock(&plenty).await, (10, 0));
    assert_eq!(saga.stock(&scarce).await, (1, 0));
    assert_eq!(saga.balance(&customer).await, 10_000);
    saga.stop().await;
}

#[tokio::test]
async fn an_order_too_big_to_ship_is_rejected_and_its_stock_released() {
    let saga = Saga::spawn().await;
    let widget = saga.product(100, 50).await;
    let customer = saga.customer(100_000).await;

    let placed = saga.place(&customer, &[(&widget, CAPACITY + 1)]).await;
    let rejected = saga
        .await_status(&customer, &placed.id, OrderStatus::Rejected)
        .await;

    assert_eq!(reason(&rejected), RejectionReason::ShippingUnavailable);
    saga.await_stock(&widget, (50, 0)).await;
    assert_eq!(saga.balance(&customer).await, 100_000);
    saga.stop().await;
}

#[tokio::test]
async fn an_order_the_customer_cannot_pay_is_rejected_and_compensated() {
    let saga = Saga::spawn().await;
    let widget = saga.product(1_000, 10).await;
    let customer = saga.customer(1_000).await;

    let placed = saga.place(&customer, &[(&widget, 1)]).await;
    let rejected = saga
        .await_status(&customer, &placed.id, OrderStatus::Rejected)
        .await;

    assert_eq!(reason(&rejected), RejectionReason::InsufficientBalance);
    // The shipment was allocated, then released; the stock was released.
    saga.await_shipment(&placed.id, ShipmentStatus::Released)
        .await;
    saga.await_stock(&widget, (10, 0)).await;
    assert_eq!(saga.balance(&customer).await, 1_000);
    saga.stop().await;
}

#[tokio::test]
async fn dispatching_an_approved_orders_shipment_completes_the_order() {
    let saga = Saga::spawn().await;
    let widget = saga.product(1_000, 10).await;
    let customer = saga.customer(10_000).await;
    let placed = saga.place(&customer, &[(&widget, 1)]).await;
    let approved = saga
        .await_status(&customer, &placed.id, OrderStatus::Approved)
        .await;

    saga.dispatch(&approved.shipment_id, "req-dispatch-1")
        .await
        .unwrap();

    saga.await_status(&customer, &placed.id, OrderStatus::Completed)
        .await;
    saga.await_shipment(&approved.shipment_id, ShipmentStatus::Dispatched)
        .await;
    saga.await_stock(&widget, (9, 0)).await;
    assert_eq!(saga.balance(&customer).await, 10_000 - 1_000 - SHIPPING_FEE);

    // The dispatch (a client's request) and the completion it causes belong
    // to the order's saga: the timeline runs to its end.
    saga.await_timeline(
        &customer,
        &placed.id,
        &["StockConsumed", "ShipmentDispatched", "OrderCompleted"],
    )
    .await;
    let stream = streams::SHIPPING.stream_ref();
    let subject = stream.subject("shipment", &approved.shipment_id);
    let shipment = saga.store.load(&stream, &subject, 0).await.unwrap();
    let dispatched = shipment
        .iter()
        .find(|e| e.raw.event_type == "stocklet.events.v1.ShipmentDispatched")
        .unwrap();
    assert_eq!(
        dispatched.meta.correlation_id.as_deref(),
        Some(placed.id.as_str())
    );
    assert_eq!(
        dispatched.meta.causation_id.as_deref(),
        Some("req-dispatch-1")
    );
    let order = saga.history(streams::ORDER, "order", &placed.id).await;
    assert!(
        order
            .iter()
            .all(|(_, correlation)| correlation.as_deref() == Some(placed.id.as_str())),
        "{order:?}"
    );
    let placed_event = saga
        .store
        .load(
            &streams::ORDER.stream_ref(),
            &streams::ORDER.stream_ref().subject("order", &placed.id),
            0,
        )
        .await
        .unwrap();
    assert!(
        placed_event[0].meta.causation_id.is_some(),
        "the order's first event names the request that placed it"
    );
    saga.stop().await;
}

#[tokio::test]
async fn cancelling_an_approved_order_refunds_releases_and_returns() {
    let saga = Saga::spawn().await;
    let widget = saga.product(1_000, 10).await;
    let customer = saga.customer(10_000).await;
    let placed = saga.place(&customer, &[(&widget, 3)]).await;
    let approved = saga
        .await_status(&customer, &placed.id, OrderStatus::Approved)
        .await;
    saga.await_balance(&customer, 10_000 - 3_000 - SHIPPING_FEE)
        .await;
    saga.await_stock(&widget, (7, 0)).await;

    saga.cancel(&customer, &placed.id, "changed my mind")
        .await
        .unwrap();

    saga.await_status(&customer, &placed.id, OrderStatus::Cancelled)
        .await;
    saga.await_balance(&customer, 10_000).await;
    saga.await_stock(&widget, (10, 0)).await;
    saga.await_shipment(&approved.shipment_id, ShipmentStatus::Released)
        .await;
    saga.stop().await;
}

#[tokio::test]
async fn an_order_too_large_to_charge_is_rejected_with_its_reason() {
    let saga = Saga::spawn().await;
    // The dearest price a product may have; two of them are more than one
    // order may cost, and one of them plus shipping is too.
    let dearest = saga.product(100_000_000_000, 10).await;
    let customer = saga.customer(10_000).await;
    for quantity in [2, 1] {
        let placed = saga.place(&customer, &[(&dearest, quantity)]).await;
        let rejected = saga
            .await_status(&customer, &placed.id, OrderStatus::Rejected)
            .await;
        assert_eq!(
            reason(&rejected),
            RejectionReason::TotalTooLarge,
            "{rejected:?}"
        );
        let detail = rejected.rejection.as_ref().map(|r| r.detail.as_str());
        assert!(
            detail.is_some_and(|d| d.contains("the most one order may cost")),
            "{detail:?}"
        );
    }
    saga.await_stock(&dearest, (10, 0)).await;
    assert_eq!(saga.balance(&customer).await, 10_000);
    saga.stop().await;
}
