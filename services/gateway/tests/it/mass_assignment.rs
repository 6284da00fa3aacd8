//! Mass assignment through the gateway, with every service running:
//! privileged fields sent in a request (role, status, customer id, price,
//! balance, another object's id) change nothing. Fields the request
//! message does not have are refused with 400; fields it has but that the
//! caller may not set are ignored or overridden by the path and token.

use serde_json::json;

use crate::app::{PASSWORD, TestApp};

#[tokio::test]
async fn privileged_fields_in_requests_change_nothing() {
    let app = TestApp::spawn_full().await;
    let admin = app.admin_user().await;

    // A role, an id or a balance in a registration is refused, and the
    // address stays free.
    for smuggled in [
        json!({"role": "admin"}),
        json!({"role": "ROLE_ADMIN"}),
        json!({"id": admin.id}),
        json!({"balanceCents": "1000000"}),
    ] {
        let mut body = json!({"firstName": "Eve", "lastName": "X", "email": "eve@example.com", "password": PASSWORD});
        body.as_object_mut()
            .unwrap()
            .extend(smuggled.as_object().unwrap().clone());
        let answer = app.post("/v1/user/register", None, &body).await;
        assert_eq!(answer.status, 400, "{smuggled}: {answer:?}");
    }
    let eve = app.register("eve@example.com").await;
    assert_eq!(
        app.get("/v1/user/users", Some(&eve.token)).await.status,
        403,
        "Eve is a customer"
    );
    // Nor in an email change, nor in a login.
    let promoted = app
        .send(
            http::Method::PUT,
            &format!("/v1/user/users/{}/email", eve.id),
            Some(&eve.token),
            json!({"email": "eve@example.com", "role": "admin"})
                .to_string()
                .into_bytes(),
            &[],
        )
        .await;
    assert_eq!(promoted.status, 400, "{promoted:?}");
    let login = app
        .post(
            "/v1/auth/login",
            None,
            &json!({"email": "eve@example.com", "password": PASSWORD, "role": "admin"}),
        )
        .await;
    assert_eq!(login.status, 400, "{login:?}");
    let token = app.login("eve@example.com", PASSWORD).await;
    assert_eq!(app.get("/v1/user/users", Some(&token)).await.status, 403);

    // An order is priced by the catalogue and owned by the caller,
    // whatever the cart claims; the cart has no status, customer, price or
    // total.
    let product = app.stocked_product(&admin, 1_000, 5).await;
    app.credit(&admin, &eve, 5_000).await;
    // Wrapped (`POST /v1/order/orders`), a field beside the items is unknown;
    // bare (`POST /v1/order/place`), every key is a product id, so a field
    // name is a product that does not exist.
    for (path, smuggled) in [
        (
            "/v1/order/orders",
            json!({"items": {&product: 1}, "customerId": admin.id}),
        ),
        (
            "/v1/order/orders",
            json!({"items": {&product: 1}, "status": "ORDER_STATUS_COMPLETED"}),
        ),
        (
            "/v1/order/orders",
            json!({"items": {&product: 1}, "totalCents": "1"}),
        ),
        (
            "/v1/order/orders",
            json!({"items": {&product: 1}, "itemsPriceCents": "1"}),
        ),
        (
            "/v1/order/orders",
            json!({"items": {&product: 1}, "priceCents": "1"}),
        ),
        (
            "/v1/order/orders",
            json!({"items": {&product: {"quantity": 1, "priceCents": "1"}}}),
        ),
        (
            "/v1/order/place",
            json!({&product: 1, "customerId": admin.id}),
        ),
        ("/v1/order/place", json!({&product: 1, "totalCents": "1"})),
        (
            "/v1/order/place",
            json!({&product: {"quantity": 1, "priceCents": "1"}}),
        ),
        ("/v1/order/place", json!({"items": {&product: 1}})),
    ] {
        let answer = app.post(path, Some(&eve.token), &smuggled).await;
        assert_eq!(answer.status, 400, "{path} {smuggled}: {answer:?}");
    }
    let orders = app.get("/v1/order/list", Some(&eve.token)).await;
    assert_eq!(orders.json["orders"], json!([]), "no order was placed");
    let order = app.settled_order(&eve, &product, 2).await;
    assert_eq!(order["customerId"], eve.id.as_str());
    assert_eq!(order["itemsPriceCents"], "2000");
    assert_eq!(order["status"], "ORDER_STATUS_APPROVED");

    // A customer cannot credit themselves, whatever the body says.
    let credit = app
        .post(
            &format!("/v1/payment/balance/{}/credit", eve.id),
            Some(&eve.token),
            &json!({"amountCents": "1000000", "customerId": eve.id}),
        )
        .await;
    assert_eq!(credit.status, 403, "{credit:?}");
    // The path's customer wins over the body's when an admin credits.
    let other = app.register("other@example.com").await;
    let credited = app
        .once_known(
            http::Method::POST,
            &format!("/v1/payment/balance/{}/credit", eve.id),
            &admin.token,
            &json!({"amountCents": "1", "customerId": other.id}),
        )
        .await;
    assert_eq!(credited.status, 200, "{credited:?}");
    assert_eq!(credited.json["balance"]["customerId"], eve.id.as_str());
    let others = app
        .eventually(
            &format!("/v1/payment/balance/{}", other.id),
            Some(&other.token),
            |a| a.status == 200,
        )
        .await;
    assert_eq!(others.json["balance"]["balanceCents"], "0");

    // A product's price in the body of a details change does not reprice.
    let patched = app
        .send(
            http::Method::PATCH,
            &format!("/v1/product/{product}"),
            Some(&admin.token),
            json!({"name": "Renamed", "priceCents": "1"})
                .to_string()
                .into_bytes(),
            &[],
        )
        .await;
    assert_eq!(patched.status, 400, "{patched:?}");
    let viewed = app.get(&format!("/v1/product/{product}"), None).await;
    assert_eq!(viewed.json["product"]["priceCents"], "1000");
    app.stop().await;
}
