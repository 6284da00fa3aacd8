//! ViewOrderTimeline and ListStuckSagas: following sagas from the outside.

use std::time::Duration;

use stocklet_proto::stocklet::order::v1 as pb;
use stocklet_service_kit::Identity;
use tonic::Code;

use crate::app::*;

impl TestApp {
    async fn timeline(
        &self,
        identity: &Identity,
        order_id: &str,
    ) -> Result<pb::ViewOrderTimelineResponse, tonic::Status> {
        self.client
            .clone()
            .view_order_timeline(as_user(
                identity,
                pb::ViewOrderTimelineRequest {
                    order_id: order_id.to_owned(),
                },
            ))
            .await
            .map(tonic::Response::into_inner)
    }

    /// The timeline once it holds `count` entries (its projections run
    /// behind the commands).
    async fn timeline_of(&self, order_id: &str, count: usize) -> Vec<pb::TimelineEntry> {
        for _ in 0..100 {
            let entries = self.timeline(&admin(), order_id).await.unwrap().entries;
            if entries.len() >= count {
                return entries;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the timeline of {order_id} never reached {count} entries");
    }

    async fn stuck(
        &self,
        identity: &Identity,
        request: pb::ListStuckSagasRequest,
    ) -> Result<pb::ListStuckSagasResponse, tonic::Status> {
        self.client
            .clone()
            .list_stuck_sagas(as_user(identity, request))
            .await
            .map(tonic::Response::into_inner)
    }
}

fn stuck_for(timeout_ms: i64, page_size: i32, page_token: &str) -> pb::ListStuckSagasRequest {
    pb::ListStuckSagasRequest {
        page_size,
        page_token: page_token.to_owned(),
        timeout_ms,
    }
}

#[tokio::test]
async fn the_timeline_shows_the_saga_in_order_to_its_customer_only() {
    let app = TestApp::spawn().await;
    let order = app.place(&alice(), &[(P1, 2)]).await.unwrap();
    let order = app.price(&order, &[1_000]).await;
    app.approve(&order).await;

    let entries = app.timeline_of(&order.id, 3).await;
    let types: Vec<&str> = entries.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "stocklet.events.v1.OrderPlaced",
            "stocklet.events.v1.OrderPriced",
            "stocklet.events.v1.OrderApproved"
        ]
    );
    assert!(entries.iter().all(|e| e.service == "order"));
    assert!(
        entries
            .windows(2)
            .all(|w| w[0].occurred_at_ms <= w[1].occurred_at_ms)
    );
    assert!(entries.iter().all(|e| !e.event_id.is_empty()));
    assert!(
        entries[1].summary.contains("total_cents=2499"),
        "{}",
        entries[1].summary
    );
    assert!(entries[2].summary.contains("transaction_id=tx-1"));

    // Its customer and admins see it; anyone else learns nothing.
    assert_eq!(
        app.timeline(&admin(), &order.id).await.unwrap().entries,
        entries
    );
    let by_bob = app.timeline(&bob(), &order.id).await.unwrap_err();
    assert_eq!(by_bob.code(), Code::NotFound);
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_eq!(
        app.timeline(&alice(), &unknown).await.unwrap_err().code(),
        Code::NotFound
    );
    let bad = app.timeline(&alice(), "nope").await.unwrap_err();
    assert_eq!(violated_fields(&bad), ["order_id"]);
    app.stop().await;
}

#[tokio::test]
async fn stuck_sagas_are_listed_with_the_step_they_wait_on() {
    let app = TestApp::spawn().await;
    // No product service runs here, so quotes never come: both stall.
    let waiting_for_quote = app.place(&alice(), &[(P1, 1)]).await.unwrap();
    let waiting_for_stock = app.place(&bob(), &[(P2, 1)]).await.unwrap();
    let waiting_for_stock = app.price(&waiting_for_stock, &[100]).await;
    let done = app.place(&alice(), &[(P2, 1)]).await.unwrap();
    let done = app.price(&done, &[100]).await;
    app.approve(&done).await;
    app.timeline_of(&waiting_for_stock.id, 0).await;
    app.timeline_of(&done.id, 3).await;
    tokio::time::sleep(Duration::from_millis(50)).await;

    let listed = app.stuck(&admin(), stuck_for(10, 0, "")).await.unwrap();
    let ids: Vec<&str> = listed.sagas.iter().map(|s| s.order_id.as_str()).collect();
    assert_eq!(
        ids,
        [waiting_for_quote.id.as_str(), waiting_for_stock.id.as_str()]
    );
    let quote = &listed.sagas[0];
    assert_eq!(quote.status(), pb::OrderStatus::Processing);
    assert_eq!(quote.waiting_on(), pb::SagaStep::PriceQuote);
    assert_eq!(quote.waiting_on_service, "product");
    assert_eq!(quote.last_event_type, "stocklet.events.v1.OrderPlaced");
    assert_eq!(quote.customer_id, "alice");
    assert!(quote.stalled_for_ms >= 10, "{quote:?}");
    let stock = &listed.sagas[1];
    assert_eq!(stock.status(), pb::OrderStatus::Pending);
    assert_eq!(stock.waiting_on(), pb::SagaStep::StockReservation);
    assert_eq!(stock.waiting_on_service, "warehouse");
    assert_eq!(stock.last_event_type, "stocklet.events.v1.OrderPriced");
    assert!(listed.next_page_token.is_empty());

    // Pages of one, longest stalled first.
    let first = app.stuck(&admin(), stuck_for(10, 1, "")).await.unwrap();
    assert_eq!(first.sagas.len(), 1);
    assert_eq!(first.sagas[0].order_id, waiting_for_quote.id);
    let second = app
        .stuck(&admin(), stuck_for(10, 1, &first.next_page_token))
        .await
        .unwrap();
    assert_eq!(second.sagas.len(), 1);
    assert_eq!(second.sagas[0].order_id, waiting_for_stock.id);
    assert!(second.next_page_token.is_empty());

    // The default timeout (30 s) lists nothing this young.
    let fresh = app.stuck(&admin(), stuck_for(0, 0, "")).await.unwrap();
    assert!(fresh.sagas.is_empty(), "{fresh:?}");

    // Admins only, and bad input names its fields.
    let customer = app.stuck(&alice(), stuck_for(10, 0, "")).await.unwrap_err();
    assert_eq!(customer.code(), Code::PermissionDenied);
    let bad = app
        .stuck(&admin(), stuck_for(-1, -1, "zz"))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&bad),
        ["timeout_ms", "page_size", "page_token"]
    );
    app.stop().await;
}
