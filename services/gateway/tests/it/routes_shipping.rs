//! Every shipping route through the gateway: shipments, manifests, lists
//! and dispatch, with their error statuses.

use serde_json::json;

use crate::app::{TestApp, violated_fields};

#[tokio::test]
async fn shipping_routes_show_list_and_dispatch_shipments() {
    let app = TestApp::spawn_full().await;
    let info = app.get("/v1/shipping/service", None).await;
    assert_eq!(info.status, 200, "{info:?}");
    let admin = app.admin_user().await;
    let (ann, order_id) = app.customer_with_order(&admin, "ann@example.com").await;
    let order = app
        .get(&format!("/v1/order/orders/{order_id}"), Some(&ann.token))
        .await
        .json["order"]
        .clone();
    let shipment_id = order["shipmentId"].as_str().unwrap().to_owned();
    let path = format!("/v1/shipping/shipment/{shipment_id}");

    let shipment = app
        .eventually(&path, Some(&ann.token), |a| a.status == 200)
        .await;
    assert_eq!(shipment.json["shipment"]["orderId"], order_id.as_str());
    assert_eq!(shipment.json["shipment"]["customerId"], ann.id.as_str());
    assert_eq!(
        shipment.json["shipment"]["status"],
        "SHIPMENT_STATUS_ALLOCATED"
    );
    assert_eq!(app.get(&path, None).await.status, 401);
    let unknown = app
        .get(
            "/v1/shipping/shipment/0192f0c1-0000-7000-8000-00000000dead",
            Some(&admin.token),
        )
        .await;
    assert_eq!(unknown.status, 404, "{unknown:?}");
    let malformed = app
        .get("/v1/shipping/shipment/not.an.id", Some(&admin.token))
        .await;
    assert_eq!(malformed.status, 400, "{malformed:?}");
    assert_eq!(violated_fields(&malformed.json), ["shipment_id"]);

    let manifest = app.get(&format!("{path}/manifest"), Some(&ann.token)).await;
    assert_eq!(manifest.status, 200, "{manifest:?}");
    assert_eq!(manifest.json["shipmentId"], shipment_id.as_str());
    assert_eq!(
        manifest.json["items"][0]["productId"],
        order["items"][0]["productId"]
    );
    assert_eq!(manifest.json["items"][0]["quantity"], "1");

    // Lists: one's own; an admin sees everyone's, or one customer's, or by
    // status.
    let own = app
        .eventually("/v1/shipping/shipments", Some(&ann.token), |a| {
            a.json["shipments"]
                .as_array()
                .is_some_and(|s| !s.is_empty())
        })
        .await;
    assert_eq!(own.json["shipments"][0]["id"], shipment_id.as_str());
    let everyone = app.get("/v1/shipping/shipments", Some(&admin.token)).await;
    assert_eq!(everyone.status, 200, "{everyone:?}");
    assert_eq!(everyone.json["shipments"].as_array().unwrap().len(), 1);
    let dispatched = app
        .get(
            "/v1/shipping/shipments?status=SHIPMENT_STATUS_DISPATCHED",
            Some(&admin.token),
        )
        .await;
    assert_eq!(dispatched.status, 200, "{dispatched:?}");
    assert_eq!(dispatched.json["shipments"], json!([]));
    let bad_status = app
        .get("/v1/shipping/shipments?status=LOST", Some(&admin.token))
        .await;
    assert_eq!(bad_status.status, 400, "{bad_status:?}");
    assert_eq!(app.get("/v1/shipping/shipments", None).await.status, 401);

    // Dispatch: admin only, once; it completes the order.
    let dispatch = format!("{path}/dispatch");
    let by_customer = app.post(&dispatch, Some(&ann.token), &json!({})).await;
    assert_eq!(by_customer.status, 403, "{by_customer:?}");
    assert_eq!(app.post(&dispatch, None, &json!({})).await.status, 401);
    // Shipping clears the shipment once it hears the order was approved
    // (paid), a moment after the order shows APPROVED.
    let mut done = app.post(&dispatch, Some(&admin.token), &json!({})).await;
    for _ in 0..200 {
        if done.status != 412 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        done = app.post(&dispatch, Some(&admin.token), &json!({})).await;
    }
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(
        done.json["shipment"]["status"],
        "SHIPMENT_STATUS_DISPATCHED"
    );
    let twice = app.post(&dispatch, Some(&admin.token), &json!({})).await;
    assert_eq!(twice.status, 412, "{twice:?}");
    let nowhere = app
        .post(
            "/v1/shipping/shipment/0192f0c1-0000-7000-8000-00000000dead/dispatch",
            Some(&admin.token),
            &json!({}),
        )
        .await;
    assert_eq!(nowhere.status, 404, "{nowhere:?}");
    let completed = app
        .eventually(
            &format!("/v1/order/orders/{order_id}"),
            Some(&ann.token),
            |a| a.json["order"]["status"] == "ORDER_STATUS_COMPLETED",
        )
        .await;
    assert_eq!(completed.status, 200);
    // A completed order cannot be cancelled.
    let cancel = app
        .post(
            &format!("/v1/order/orders/{order_id}/cancel"),
            Some(&ann.token),
            &json!({"reason": "too late"}),
        )
        .await;
    assert_eq!(cancel.status, 412, "{cancel:?}");
    app.stop().await;
}
