//! Every warehouse route through the gateway: public stock reads, admin
//! stock changes and reservation reads, with their error statuses.

use serde_json::json;

use crate::app::{TestApp, violated_fields};

#[tokio::test]
async fn warehouse_routes_read_and_change_stock() {
    let app = TestApp::spawn_full().await;
    let info = app.get("/v1/warehouse/service", None).await;
    assert_eq!(info.status, 200, "{info:?}");
    let admin = app.admin_user().await;
    let product = app.stocked_product(&admin, 500, 5).await;

    // Stock reads are public.
    let path = format!("/v1/warehouse/product/{product}");
    let stock = app
        .eventually(&path, None, |a| a.json["stock"]["onHand"] == "5")
        .await;
    assert_eq!(stock.status, 200, "{stock:?}");
    assert_eq!(stock.json["stock"]["productId"], product.as_str());
    assert_eq!(stock.json["stock"]["available"], "5");
    assert_eq!(stock.json["stock"]["reserved"], "0");
    let unknown = app
        .get(
            "/v1/warehouse/product/0192f0c1-0000-7000-8000-00000000dead",
            None,
        )
        .await;
    assert_eq!(unknown.status, 404, "{unknown:?}");
    let malformed = app.get("/v1/warehouse/product/not.an.id", None).await;
    assert_eq!(malformed.status, 400, "{malformed:?}");
    assert_eq!(violated_fields(&malformed.json), ["product_id"]);

    // Adding and removing: admin only, positive quantities, never below
    // what is available.
    let change = |what: &str, token: Option<String>, quantity: serde_json::Value| {
        let app = &app;
        let path = format!("/v1/warehouse/product/{product}/{what}");
        async move {
            app.post(&path, token.as_deref(), &json!({"quantity": quantity}))
                .await
        }
    };
    let added = change("add", Some(admin.token.clone()), json!("3")).await;
    assert_eq!(added.status, 200, "{added:?}");
    assert_eq!(added.json["stock"]["onHand"], "8");
    let removed = change("remove", Some(admin.token.clone()), json!(2)).await;
    assert_eq!(removed.status, 200, "{removed:?}");
    assert_eq!(removed.json["stock"]["onHand"], "6");
    let too_many = change("remove", Some(admin.token.clone()), json!("7")).await;
    assert_eq!(too_many.status, 412, "{too_many:?}");
    assert_eq!(too_many.json["code"], 9);
    for what in ["add", "remove"] {
        let zero = change(what, Some(admin.token.clone()), json!(0)).await;
        assert_eq!(zero.status, 400, "{what}: {zero:?}");
        assert_eq!(violated_fields(&zero.json), ["quantity"]);
        let anonymous = change(what, None, json!(1)).await;
        assert_eq!(anonymous.status, 401, "{what}: {anonymous:?}");
    }
    let customer = app.register("ann@example.com").await;
    let forbidden = change("add", Some(customer.token.clone()), json!(1)).await;
    assert_eq!(forbidden.status, 403, "{forbidden:?}");
    let missing = app
        .post(
            "/v1/warehouse/product/0192f0c1-0000-7000-8000-00000000dead/add",
            Some(&admin.token),
            &json!({"quantity": 1}),
        )
        .await;
    assert_eq!(missing.status, 404, "{missing:?}");
    let stock = app.get(&path, None).await;
    assert_eq!(stock.json["stock"]["onHand"], "6");

    // Reservations: an order's reservation is visible to an admin only.
    app.credit(&admin, &customer, 10_000).await;
    let order = app.settled_order(&customer, &product, 2).await;
    assert_eq!(order["status"], "ORDER_STATUS_APPROVED", "{order}");
    let reservation_path = format!(
        "/v1/warehouse/reservation/{}",
        order["reservationId"].as_str().unwrap()
    );
    let reservation = app
        .eventually(&reservation_path, Some(&admin.token), |a| a.status == 200)
        .await;
    assert_eq!(reservation.json["reservation"]["orderId"], order["id"]);
    assert_eq!(
        reservation.json["reservation"]["lines"][0]["productId"],
        product.as_str()
    );
    assert_eq!(
        app.get(&reservation_path, Some(&customer.token))
            .await
            .status,
        403
    );
    assert_eq!(app.get(&reservation_path, None).await.status, 401);
    let no_reservation = app
        .get(
            "/v1/warehouse/reservation/0192f0c1-0000-7000-8000-00000000dead",
            Some(&admin.token),
        )
        .await;
    assert_eq!(no_reservation.status, 404, "{no_reservation:?}");
    // The order's two units are no longer available.
    let after = app.get(&path, None).await;
    assert_eq!(after.json["stock"]["available"], "4", "{after:?}");
    app.stop().await;
}
