//! CancelOrder: only approved orders, only by their customer or an admin.

use stocklet_proto::stocklet::order::v1 as pb;
use tonic::Code;

use crate::app::*;

#[tokio::test]
async fn the_customer_cancels_an_approved_order() {
    let app = TestApp::spawn().await;
    let order = app.place(&alice(), &[(P1, 2), (P2, 1)]).await.unwrap();
    let order = app.price(&order, &[1_000, 250]).await;
    let order = app.approve(&order).await;

    let cancelled = app
        .cancel(&alice(), &order.id, "  changed my mind ")
        .await
        .unwrap();
    assert_eq!(cancelled.status(), pb::OrderStatus::Cancelled);
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
    // Read-your-writes.
    assert_eq!(app.view(&alice(), &order.id).await.unwrap(), cancelled);

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
    let cancelled = app.cancel(&admin(), &order.id, "").await.unwrap();
    assert_eq!(cancelled.status(), pb::OrderStatus::Cancelled);
    assert_eq!(cancelled.customer_id, "alice");
    app.stop().await;
}

#[tokio::test]
async fn a_running_saga_cannot_be_cancelled_yet() {
    let app = TestApp::spawn().await;
    let order = app.place(&alice(), &[(P1, 1)]).await.unwrap();
    let processing = app.cancel(&alice(), &order.id, "").await.unwrap_err();
    assert_eq!(processing.code(), Code::FailedPrecondition);
    let order = app.price(&order, &[100]).await;
    let pending = app.cancel(&alice(), &order.id, "").await.unwrap_err();
    assert_eq!(pending.code(), Code::FailedPrecondition);
    assert_eq!(
        app.view(&alice(), &order.id).await.unwrap().status(),
        pb::OrderStatus::Pending
    );
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
