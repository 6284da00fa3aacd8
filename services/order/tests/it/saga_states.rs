//! The read model follows the order through the saga's states: priced,
//! rejected with a reason, approved and completed, each status with its
//! time. (The saga's reactions come in the next issue; here the steps are
//! recorded through the repository as they will be.)

use stocklet_order::domain::{PaymentFailure, ProductId, SagaInput};
use stocklet_proto::stocklet::order::v1 as pb;

use crate::app::*;

#[tokio::test]
async fn a_priced_order_shows_its_prices_and_shipping_fee() {
    let app = TestApp::spawn().await;
    let order = app.place(&alice(), &[(P1, 2), (P2, 3)]).await.unwrap();
    let priced = app.price(&order, &[1_000, 250]).await;
    let prices: Vec<i64> = priced.items.iter().map(|i| i.unit_price_cents).collect();
    assert_eq!(prices, [1_000, 250]);
    assert_eq!(
        (
            priced.items_price_cents,
            priced.shipping_fee_cents,
            priced.total_cents
        ),
        (2_750, 499, 3_249)
    );
    let history: Vec<pb::OrderStatus> = priced.status_history.iter().map(|c| c.status()).collect();
    assert_eq!(
        history,
        [pb::OrderStatus::Processing, pb::OrderStatus::Pending]
    );
    assert_eq!(priced.updated_at_ms, priced.status_history[1].at_ms);
    assert_eq!(priced.created_at_ms, order.created_at_ms);
    app.stop().await;
}

#[tokio::test]
async fn a_rejected_order_shows_why_and_which_products() {
    let app = TestApp::spawn().await;
    let order = app.place(&alice(), &[(P1, 1), (P2, 1)]).await.unwrap();
    let rejected = app
        .react(
            &order,
            SagaInput::PriceQuoteFailed {
                product_ids: vec![ProductId::parse(P2).unwrap()],
                total_too_large: false,
            },
            pb::OrderStatus::Rejected,
        )
        .await;
    let rejection = rejected.rejection.clone().unwrap();
    assert_eq!(rejection.reason(), pb::RejectionReason::ProductUnavailable);
    assert_eq!(rejection.product_ids, [P2]);
    assert!(!rejection.detail.is_empty());

    let order = app.place(&alice(), &[(P1, 1)]).await.unwrap();
    let order = app.price(&order, &[100]).await;
    let rejected = app
        .react(
            &order,
            SagaInput::PaymentFailed {
                reason: PaymentFailure::InsufficientBalance,
                detail: String::new(),
                reservation_id: "res-9".into(),
                shipment_id: "ship-9".into(),
            },
            pb::OrderStatus::Rejected,
        )
        .await;
    assert_eq!(
        rejected.rejection.unwrap().reason(),
        pb::RejectionReason::InsufficientBalance
    );
    assert_eq!(
        (
            rejected.reservation_id.as_str(),
            rejected.shipment_id.as_str()
        ),
        ("res-9", "ship-9")
    );
    assert_eq!(rejected.total_cents, 599);
    app.stop().await;
}

#[tokio::test]
async fn an_approved_order_completes_on_dispatch() {
    let app = TestApp::spawn().await;
    let order = app.place(&alice(), &[(P1, 1)]).await.unwrap();
    let order = app.price(&order, &[100]).await;
    let approved = app.approve(&order).await;
    assert_eq!(
        (
            approved.transaction_id.as_str(),
            approved.shipment_id.as_str(),
            approved.reservation_id.as_str()
        ),
        ("tx-1", "ship-1", "res-1")
    );
    let completed = app
        .react(
            &approved,
            SagaInput::ShipmentDispatched {
                shipment_id: "ship-1".into(),
            },
            pb::OrderStatus::Completed,
        )
        .await;
    let history: Vec<pb::OrderStatus> = completed
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
            pb::OrderStatus::Completed
        ]
    );
    // A completed order is final.
    let cancel = app.cancel(&alice(), &completed.id, "").await.unwrap_err();
    assert_eq!(cancel.code(), tonic::Code::FailedPrecondition);
    app.stop().await;
}
