//! The order routes through the gateway with every service running: a
//! placed order's saga settles, it is read, listed, traced and cancelled,
//! stuck sagas are listed, and a rule broken answers 412. (Ownership and the cart's shape are covered in
//! `routing.rs` and `matrix.rs`.)

use serde_json::json;

use crate::app::{TestApp, violated_fields};

#[tokio::test]
async fn order_routes_place_read_list_and_cancel() {
    let app = TestApp::spawn_full().await;
    let admin = app.admin_user().await;
    let ann = app.register("ann@example.com").await;
    let product = app.stocked_product(&admin, 1_000, 3).await;

    // Without money the saga rejects the order.
    let poor = app.settled_order(&ann, &product, 1).await;
    assert_eq!(poor["status"], "ORDER_STATUS_REJECTED", "{poor}");
    assert_eq!(
        poor["rejection"]["reason"],
        "REJECTION_REASON_INSUFFICIENT_BALANCE"
    );
    // A rejected order cannot be cancelled.
    let cancel_rejected = app
        .post(
            &format!("/v1/order/orders/{}/cancel", poor["id"].as_str().unwrap()),
            Some(&ann.token),
            &json!({"reason": "never mind"}),
        )
        .await;
    assert_eq!(cancel_rejected.status, 412, "{cancel_rejected:?}");

    // With money it is approved, priced by the catalogue.
    app.credit(&admin, &ann, 10_000).await;
    let order = app.settled_order(&ann, &product, 2).await;
    assert_eq!(order["status"], "ORDER_STATUS_APPROVED", "{order}");
    assert_eq!(order["itemsPriceCents"], "2000");
    assert_eq!(order["customerId"], ann.id.as_str());
    let id = order["id"].as_str().unwrap();
    let path = format!("/v1/order/orders/{id}");

    // Lists: newest first, paginated; an admin may name the customer.
    let mine = app.get("/v1/order/list?pageSize=1", Some(&ann.token)).await;
    assert_eq!(mine.status, 200, "{mine:?}");
    assert_eq!(mine.json["orders"][0]["id"], id);
    let next = mine.json["nextPageToken"].as_str().unwrap();
    let older = app
        .get(
            &format!("/v1/order/list?pageSize=1&pageToken={next}"),
            Some(&ann.token),
        )
        .await;
    assert_eq!(older.json["orders"][0]["id"], poor["id"]);
    let by_admin = app
        .get(
            &format!("/v1/order/list?customerId={}", ann.id),
            Some(&admin.token),
        )
        .await;
    assert_eq!(by_admin.json["orders"].as_array().unwrap().len(), 2);
    let bad = app
        .get(
            "/v1/order/list?customerId=not%20an%20id",
            Some(&admin.token),
        )
        .await;
    assert_eq!(bad.status, 400, "{bad:?}");
    assert_eq!(violated_fields(&bad.json), ["customer_id"]);
    let ghost = app
        .get(
            "/v1/order/orders/0192f0c1-0000-7000-8000-00000000dead",
            Some(&admin.token),
        )
        .await;
    assert_eq!(ghost.status, 404, "{ghost:?}");
    assert_eq!(app.get(&path, None).await.status, 401);

    // The saga's timeline: every service's events for the order.
    let timeline = app.get(&format!("{path}/timeline"), Some(&ann.token)).await;
    assert_eq!(timeline.status, 200, "{timeline:?}");
    assert_eq!(timeline.json["orderId"], id);
    let services: Vec<&str> = timeline.json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["service"].as_str())
        .collect();
    for service in ["order", "warehouse", "payment", "shipping"] {
        assert!(services.contains(&service), "{service}: {timeline:?}");
    }
    assert_eq!(app.get(&format!("{path}/timeline"), None).await.status, 401);
    let no_timeline = app
        .get(
            "/v1/order/orders/0192f0c1-0000-7000-8000-00000000dead/timeline",
            Some(&admin.token),
        )
        .await;
    assert_eq!(no_timeline.status, 404, "{no_timeline:?}");
    // Stuck sagas: admin only; none here with a long timeout.
    let stuck = app
        .get(
            "/v1/order/sagas/stuck?timeoutMs=3600000",
            Some(&admin.token),
        )
        .await;
    assert_eq!(stuck.status, 200, "{stuck:?}");
    assert_eq!(stuck.json["sagas"], json!([]));
    assert_eq!(
        app.get("/v1/order/sagas/stuck", Some(&ann.token))
            .await
            .status,
        403
    );
    let negative = app
        .get("/v1/order/sagas/stuck?timeoutMs=-1", Some(&admin.token))
        .await;
    assert_eq!(negative.status, 400, "{negative:?}");
    assert_eq!(violated_fields(&negative.json), ["timeout_ms"]);

    // Ordering what is not in stock is rejected by the saga.
    let greedy = app.settled_order(&ann, &product, 3).await;
    assert_eq!(greedy["status"], "ORDER_STATUS_REJECTED", "{greedy}");

    // Cancelling an approved order refunds it and releases its stock.
    let cancelled = app
        .post(
            &format!("{path}/cancel"),
            Some(&ann.token),
            &json!({"reason": "changed my mind"}),
        )
        .await;
    assert_eq!(cancelled.status, 200, "{cancelled:?}");
    let settled = app
        .eventually(&path, Some(&ann.token), |a| {
            a.json["order"]["status"] == "ORDER_STATUS_CANCELLED"
        })
        .await;
    assert_eq!(
        settled.json["order"]["cancellationReason"],
        "changed my mind"
    );
    let balance = app
        .eventually(
            &format!("/v1/payment/balance/{}", ann.id),
            Some(&ann.token),
            |a| a.json["balance"]["balanceCents"] == "10000",
        )
        .await;
    assert_eq!(balance.status, 200);
    let stock = app
        .eventually(&format!("/v1/warehouse/product/{product}"), None, |a| {
            a.json["stock"]["available"] == "3"
        })
        .await;
    assert_eq!(stock.status, 200);
    app.stop().await;
}
