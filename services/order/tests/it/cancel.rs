//! CancelOrder: any order not yet dispatched, only by its customer or an
//! admin; a running saga is cancelled when its step in flight answers, an
//! approved order when shipping releases its shipment (or completed when
//! the shipment had left).

use stocklet_proto::stocklet::order::v1 as pb;
use tonic::Code;

use stocklet_order::DEFAULT_SHIPPING_FEE_CENTS;
use stocklet_order::domain::{Cents, ProductId, Quantity, QuotedLine, SagaInput};

use crate::app::*;

#[tokio::test]
async fn the_customer_cancels_an_approved_order() {
    let app = TestApp::spawn().await;
    let order = app.place(&alice(), &[(P1, 2), (P2, 1)]).await.unwrap();
    let order = app.price(&order, &[1_000, 250]).await;
    let order = app.approve(&order).await;

    let requested = app
        .cancel(&alice(), &order.id, "  changed my mind ")
        .await
        .unwrap();
    // Shipping decides: until it answers, the order stays approved.
    assert_eq!(requested.status(), pb::OrderStatus::Approved);
    assert!(requested.cancellation_requested);
    assert_eq!(app.view(&alice(), &order.id).await.unwrap(), requested);
    let released = SagaInput::ShipmentReleased {
        shipment_id: "ship-1".into(),
    };
    let cancelled = app
        .react(&order, released, pb::OrderStatus::Cancelled)
        .await;
    assert_eq!(cancelled.status(), pb::OrderStatus::Cancelled);
    assert!(!cancelled.cancellation_requested);
    assert_eq!(cancelled.cancellation_reason, "changed my mind");
    let history: Vec<pb::OrderStatus> = cancelled
        .status_history
        .iter()
        .map(|c| c.status())
        .collect();
    assert_eq!(
        history,
        [
            pb::OrderStatus::Processing,
            pb::OrderStatus::Pending,
            pb::OrderStatus::Approved,
            pb::OrderStatus::Cancelled
        ]
    );
    assert!(
        cancelled
            .status_history
            .windows(2)
            .all(|w| w[0].at_ms <= w[1].at_ms)
    );
    // A cancelled order is final.
    let again = app.cancel(&alice(), &order.id, "").await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    app.stop().await;
}

#[tokio::test]
async fn an_admin_cancels_any_approved_order() {
    let app = TestApp::spawn().await;
    let order = app.place(&alice(), &[(P1, 1)]).await.unwrap();
    let order = app.price(&order, &[100]).await;
    let order = app.approve(&order).await;
    let requested = app.cancel(&admin(), &order.id, "").await.unwrap();
    assert!(requested.cancellation_requested);
    assert_eq!(requested.customer_id, "alice");
    let released = SagaInput::ShipmentReleased {
        shipment_id: "ship-1".into(),
    };
    app.react(&order, released, pb::OrderStatus::Cancelled)
        .await;
    app.stop().await;
}

#[tokio::test]
async fn a_cancellation_that_comes_after_dispatch_completes_the_order() {
    let app = TestApp::spawn().await;
    let order = app.place(&alice(), &[(P1, 1)]).await.unwrap();
    let order = app.price(&order, &[100]).await;
    let order = app.approve(&order).await;
    let requested = app.cancel(&alice(), &order.id, "too late").await.unwrap();
    assert!(requested.cancellation_requested);
    let dispatched = SagaInput::ShipmentDispatched {
        shipment_id: "ship-1".into(),
    };
    let completed = app
        .react(&order, dispatched, pb::OrderStatus::Completed)
        .await;
    assert!(
        !completed.cancellation_requested,
        "the cancellation was refused"
    );
    let again = app.cancel(&alice(), &order.id, "").await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    app.stop().await;
}

#[tokio::test]
async fn cancelling_while_the_quote_is_in_flight_settles_when_it_answers() {
    let app = TestApp::spawn().await;
    let order = app.place(&alice(), &[(P1, 1)]).await.unwrap();
    let requested = app.cancel(&alice(), &order.id, "too slow").await.unwrap();
    assert_eq!(requested.status(), pb::OrderStatus::Processing);
    assert!(requested.cancellation_requested);
    assert_eq!(requested.cancellation_reason, "too slow");
    assert_eq!(app.view(&alice(), &order.id).await.unwrap(), requested);
    // Asking twice is harmless.
    let again = app.cancel(&alice(), &order.id, "").await.unwrap();
    assert!(again.cancellation_requested);

    // The quote answers: the order is cancelled, never priced, so no
    // downstream step ever starts and nothing needs undoing.
    let input = SagaInput::PriceQuoted {
        lines: vec![QuotedLine {
            product_id: ProductId::parse(P1).unwrap(),
            quantity: Quantity::parse(1).unwrap(),
            unit_price: Cents::parse(100).unwrap(),
        }],
        items_price: Cents::parse(100).unwrap(),
        shipping_fee: Cents::parse(DEFAULT_SHIPPING_FEE_CENTS).unwrap(),
    };
    let cancelled = app.react(&order, input, pb::OrderStatus::Cancelled).await;
    assert!(!cancelled.cancellation_requested);
    assert_eq!(cancelled.transaction_id, "");
    let history: Vec<pb::OrderStatus> = cancelled
        .status_history
        .iter()
        .map(|c| c.status())
        .collect();
    assert_eq!(
        history,
        [pb::OrderStatus::Processing, pb::OrderStatus::Cancelled]
    );
    app.stop().await;
}

#[tokio::test]
async fn cancelling_while_pending_settles_with_the_payment_to_refund() {
    let app = TestApp::spawn().await;
    let order = app.place(&alice(), &[(P1, 1)]).await.unwrap();
    let order = app.price(&order, &[100]).await;
    let requested = app.cancel(&admin(), &order.id, "").await.unwrap();
    assert_eq!(requested.status(), pb::OrderStatus::Pending);
    assert!(requested.cancellation_requested);

    // The payment lands anyway: the order is cancelled, not approved, and
    // names the payment, shipment and reservation to undo.
    let input = SagaInput::PaymentCaptured {
        transaction_id: "tx-9".into(),
        amount: Cents::parse(order.total_cents).unwrap(),
        shipment_id: "ship-9".into(),
        reservation_id: "res-9".into(),
    };
    let cancelled = app.react(&order, input, pb::OrderStatus::Cancelled).await;
    assert_eq!(cancelled.transaction_id, "tx-9");
    assert_eq!(cancelled.shipment_id, "ship-9");
    assert!(
        !cancelled
            .status_history
            .iter()
            .any(|c| c.status() == pb::OrderStatus::Approved)
    );
    let final_again = app.cancel(&alice(), &order.id, "").await.unwrap_err();
    assert_eq!(final_again.code(), Code::FailedPrecondition);
    app.stop().await;
}

#[tokio::test]
async fn strangers_cannot_cancel_and_cannot_tell_the_order_exists() {
    let app = TestApp::spawn().await;
    let order = app.place(&alice(), &[(P1, 1)]).await.unwrap();
    let order = app.price(&order, &[100]).await;
    let order = app.approve(&order).await;
    let by_bob = app.cancel(&bob(), &order.id, "").await.unwrap_err();
    assert_eq!(by_bob.code(), Code::NotFound);
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_eq!(
        app.cancel(&bob(), &unknown, "").await.unwrap_err().code(),
        Code::NotFound
    );
    let anonymous = app
        .client
        .clone()
        .cancel_order(tonic::Request::new(pb::CancelOrderRequest {
            order_id: order.id.clone(),
            reason: String::new(),
        }))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    assert_eq!(
        app.view(&alice(), &order.id).await.unwrap().status(),
        pb::OrderStatus::Approved
    );
    app.stop().await;
}

#[tokio::test]
async fn invalid_cancellations_name_every_bad_field() {
    let app = TestApp::spawn().await;
    let status = app
        .cancel(&alice(), "nope", &"x".repeat(201))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["order_id", "reason"]);
    app.stop().await;
}
