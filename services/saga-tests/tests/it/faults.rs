//! A service down mid-saga: the saga waits (and shows as stuck, waiting on
//! that service), resumes when the service comes back, and a cancellation
//! asked for meanwhile undoes exactly what the saga did.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use stocklet_proto::stocklet::order::v1 as order;
use stocklet_proto::stocklet::order::v1::{OrderStatus, SagaStep};
use stocklet_proto::stocklet::shipping::v1::ShipmentStatus;

use crate::app::{Customer, SETTLE, SHIPPING_FEE, Saga, Service, admin, as_user};

impl Saga {
    /// The order's timeline, as its customer sees it.
    pub async fn timeline(&self, customer: &Customer, order_id: &str) -> Vec<order::TimelineEntry> {
        self.orders
            .clone()
            .view_order_timeline(as_user(
                &customer.identity,
                order::ViewOrderTimelineRequest {
                    order_id: order_id.to_owned(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .entries
    }

    /// Waits until the order's timeline holds an event of each type.
    pub async fn await_timeline(
        &self,
        customer: &Customer,
        order_id: &str,
        event_types: &[&str],
    ) -> Vec<order::TimelineEntry> {
        let deadline = Instant::now() + SETTLE;
        loop {
            let entries = self.timeline(customer, order_id).await;
            let seen: BTreeSet<&str> = entries
                .iter()
                .map(|e| e.event_type.trim_start_matches("stocklet.events.v1."))
                .collect();
            if event_types.iter().all(|t| seen.contains(t)) {
                return entries;
            }
            assert!(
                Instant::now() < deadline,
                "the timeline of {order_id} never showed {event_types:?}: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The sagas without progress for `timeout_ms`, as an admin sees them.
    pub async fn stuck_sagas(&self, timeout_ms: i64) -> Vec<order::StuckSaga> {
        self.orders
            .clone()
            .list_stuck_sagas(as_user(
                &admin(),
                order::ListStuckSagasRequest {
                    page_size: 100,
                    page_token: String::new(),
                    timeout_ms,
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .sagas
    }
}

#[tokio::test]
async fn a_saga_waits_for_a_service_that_is_down_and_resumes_when_it_returns() {
    let mut saga = Saga::spawn().await;
    let widget = saga.product(1_000, 10).await;
    let customer = saga.customer(10_000).await;
    saga.stop_service(Service::Payment).await;

    let placed = saga.place(&customer, &[(&widget, 2)]).await;
    saga.await_timeline(&customer, &placed.id, &["ShipmentAllocated"])
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stuck = saga.stuck_sagas(200).await;
    assert_eq!(stuck.len(), 1, "{stuck:?}");
    assert_eq!(stuck[0].order_id, placed.id);
    assert_eq!(stuck[0].status(), OrderStatus::Pending);
    assert_eq!(stuck[0].waiting_on(), SagaStep::Payment);
    assert_eq!(stuck[0].waiting_on_service, "payment");
    assert_eq!(
        stuck[0].last_event_type,
        "stocklet.events.v1.ShipmentAllocated"
    );
    assert_eq!(
        saga.view_order(&customer, &placed.id).await.status(),
        OrderStatus::Pending
    );

    saga.start_service(Service::Payment).await;
    let approved = saga
        .await_status(&customer, &placed.id, OrderStatus::Approved)
        .await;
    saga.await_balance(&customer, 10_000 - 2_000 - SHIPPING_FEE)
        .await;
    saga.await_stock(&widget, (8, 0)).await;
    assert!(!approved.transaction_id.is_empty());
    assert!(saga.stuck_sagas(1).await.is_empty());

    // The whole saga, from every service, in one timeline.
    let entries = saga
        .await_timeline(
            &customer,
            &placed.id,
            &["OrderApproved", "StockConsumed", "PaymentCaptured"],
        )
        .await;
    let services: BTreeSet<&str> = entries.iter().map(|e| e.service.as_str()).collect();
    assert_eq!(
        services,
        BTreeSet::from(["order", "payment", "product", "shipping", "warehouse"])
    );
    assert_eq!(entries[0].event_type, "stocklet.events.v1.OrderPlaced");
    assert!(
        entries
            .windows(2)
            .all(|w| w[0].occurred_at_ms <= w[1].occurred_at_ms)
    );
    saga.stop().await;
}

#[tokio::test]
async fn cancelling_while_payment_is_down_undoes_everything_once_it_answers() {
    let mut saga = Saga::spawn().await;
    let widget = saga.product(1_000, 10).await;
    let customer = saga.customer(10_000).await;
    saga.stop_service(Service::Payment).await;

    let placed = saga.place(&customer, &[(&widget, 3)]).await;
    saga.await_timeline(&customer, &placed.id, &["ShipmentAllocated"])
        .await;
    saga.await_stock(&widget, (10, 3)).await;
    let requested = saga
        .cancel(&customer, &placed.id, "too slow")
        .await
        .unwrap();
    assert_eq!(requested.status(), OrderStatus::Pending);
    assert!(requested.cancellation_requested);

    // Payment comes back and takes the money; the order, already asked to
    // cancel, settles as CANCELLED and everything is given back.
    saga.start_service(Service::Payment).await;
    let cancelled = saga
        .await_status(&customer, &placed.id, OrderStatus::Cancelled)
        .await;
    assert!(!cancelled.transaction_id.is_empty());
    assert_eq!(cancelled.cancellation_reason, "too slow");
    assert!(
        !cancelled
            .status_history
            .iter()
            .any(|c| c.status() == OrderStatus::Approved)
    );
    saga.await_balance(&customer, 10_000).await;
    saga.await_stock(&widget, (10, 0)).await;
    saga.await_shipment(&cancelled.shipment_id, ShipmentStatus::Released)
        .await;
    saga.await_timeline(
        &customer,
        &placed.id,
        &[
            "OrderCancellationRequested",
            "OrderCancelled",
            "TransactionReversed",
            "StockReturned",
            "ShipmentReleased",
        ],
    )
    .await;
    saga.await_reactors_idle().await;
    saga.stop().await;
}

#[tokio::test]
async fn cancelling_before_the_quote_starts_nothing_downstream() {
    let mut saga = Saga::spawn().await;
    let widget = saga.product(1_000, 10).await;
    let customer = saga.customer(10_000).await;
    saga.stop_service(Service::Product).await;

    let placed = saga.place(&customer, &[(&widget, 1)]).await;
    saga.cancel(&customer, &placed.id, "").await.unwrap();
    saga.start_service(Service::Product).await;
    let cancelled = saga
        .await_status(&customer, &placed.id, OrderStatus::Cancelled)
        .await;
    assert_eq!(cancelled.transaction_id, "");
    saga.await_reactors_idle().await;
    saga.await_stock(&widget, (10, 0)).await;
    assert_eq!(saga.balance(&customer).await, 10_000);
    let entries = saga.timeline(&customer, &placed.id).await;
    assert!(
        entries
            .iter()
            .all(|e| e.service == "order" || e.service == "product"),
        "{entries:?}"
    );
    saga.stop().await;
}
