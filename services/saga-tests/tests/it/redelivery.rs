//! Redelivery of every saga event changes nothing: with each reactor's
//! durable consumer deleted while the services are down, the restarted
//! services receive their whole source streams again, and append nothing.

use stocklet_proto::stocklet::order::v1::OrderStatus;
use stocklet_proto::stocklet::shipping::v1::ShipmentStatus;

use crate::app::{SHIPPING_FEE, Saga};

const STREAMS: [&str; 6] = [
    "PRODUCT",
    "WAREHOUSE",
    "ORDER",
    "PAYMENT",
    "SHIPPING",
    "USER",
];

async fn stream_sizes(saga: &Saga) -> Vec<u64> {
    let jetstream = saga.nats.jetstream().await;
    let mut sizes = Vec::new();
    for name in STREAMS {
        let mut stream = jetstream.get_stream(name).await.unwrap();
        sizes.push(stream.info().await.unwrap().state.messages);
    }
    sizes
}

#[tokio::test]
async fn redelivering_every_saga_event_appends_nothing_and_changes_nothing() {
    let saga = Saga::spawn().await;
    let widget = saga.product(1_000, 10).await;
    let rich = saga.customer(10_000).await;
    let poor = saga.customer(500).await;

    let approved = saga.place(&rich, &[(&widget, 2)]).await;
    saga.await_status(&rich, &approved.id, OrderStatus::Approved)
        .await;
    let rejected = saga.place(&poor, &[(&widget, 1)]).await;
    saga.await_status(&poor, &rejected.id, OrderStatus::Rejected)
        .await;
    let cancelled = saga.place(&rich, &[(&widget, 1)]).await;
    saga.await_status(&rich, &cancelled.id, OrderStatus::Approved)
        .await;
    saga.cancel(&rich, &cancelled.id, "").await.unwrap();
    saga.await_status(&rich, &cancelled.id, OrderStatus::Cancelled)
        .await;
    let rich_balance = 10_000 - 2_000 - SHIPPING_FEE;
    saga.await_balance(&rich, rich_balance).await;
    saga.await_stock(&widget, (8, 0)).await;
    saga.await_shipment(&cancelled.id, ShipmentStatus::Released)
        .await;
    saga.await_shipment(&rejected.id, ShipmentStatus::Released)
        .await;
    saga.await_reactors_idle().await;
    let before = stream_sizes(&saga).await;

    // Forget every reactor's progress while the services are down.
    let (nats, db) = saga.shut_down().await;
    let jetstream = nats.jetstream().await;
    for (stream, consumer) in Saga::reactor_consumers() {
        jetstream
            .get_stream(stream)
            .await
            .unwrap()
            .delete_consumer(consumer)
            .await
            .unwrap();
    }
    let saga = Saga::spawn_on(nats, db).await;
    saga.await_reactors_idle().await;

    assert_eq!(stream_sizes(&saga).await, before, "nothing was appended");
    assert_eq!(
        saga.view_order(&rich, &approved.id).await.status(),
        OrderStatus::Approved
    );
    assert_eq!(
        saga.view_order(&poor, &rejected.id).await.status(),
        OrderStatus::Rejected
    );
    assert_eq!(
        saga.view_order(&rich, &cancelled.id).await.status(),
        OrderStatus::Cancelled
    );
    assert_eq!(saga.stock(&widget).await, (8, 0));
    assert_eq!(saga.balance(&rich).await, rich_balance);
    assert_eq!(saga.balance(&poor).await, 500);
    assert_eq!(
        saga.shipment(&approved.id).await.status(),
        ShipmentStatus::Allocated
    );
    saga.stop().await;
}
