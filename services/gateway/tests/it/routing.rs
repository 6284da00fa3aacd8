//! Routes from the proto, proto3 JSON both ways, error JSON, and per-user
//! authorization through the gateway.

use serde_json::json;

use crate::app::{ALICE, P1, TestApp, violated_fields};

#[tokio::test]
async fn product_routes_speak_proto3_json() {
    let app = TestApp::spawn().await;
    // Input in snake_case with an int64 as a number; output lowerCamelCase,
    // int64 as strings, every field present.
    let created = app
        .post(
            "/v1/product",
            Some(&app.admin()),
            &json!({"name": "Kettle", "description": "Boils", "price_cents": 1250}),
        )
        .await;
    assert_eq!(created.status, 200, "{created:?}");
    let product = &created.json["product"];
    assert_eq!(product["priceCents"], "1250");
    assert!(product["createdAtMs"].is_string());
    assert!(product.get("price_cents").is_none());
    let id = product["id"].as_str().unwrap().to_owned();

    // Public reads need no token.
    let viewed = app.get(&format!("/v1/product/{id}"), None).await;
    assert_eq!(viewed.status, 200);
    assert_eq!(viewed.json["product"], *product);

    app.create_product("Teapot", 900).await;
    let page = app.get("/v1/product/list?pageSize=1", None).await;
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(page.json["products"].as_array().unwrap().len(), 1);
    let token = page.json["nextPageToken"].as_str().unwrap().to_owned();
    assert!(!token.is_empty());
    let next = app
        .get(
            &format!("/v1/product/list?page_size=1&page_token={token}"),
            None,
        )
        .await;
    assert_eq!(next.json["products"][0]["name"], "Teapot");

    // PUT with the id in the path; an id in the body does not override it.
    let repriced = app
        .send(
            http::Method::PUT,
            &format!("/v1/product/{id}/price"),
            Some(&app.admin()),
            json!({"id": "0192f0c1-0000-7000-8000-00000000ffff", "priceCents": "1300"})
                .to_string()
                .into_bytes(),
            &[],
        )
        .await;
    assert_eq!(repriced.status, 200, "{repriced:?}");
    assert_eq!(repriced.json["product"]["id"], id.as_str());
    assert_eq!(repriced.json["product"]["priceCents"], "1300");
    app.stop().await;
}

#[tokio::test]
async fn errors_are_json_with_mapped_statuses_and_field_violations() {
    let app = TestApp::spawn().await;
    let invalid = app
        .post(
            "/v1/product",
            Some(&app.admin()),
            &json!({"name": "", "priceCents": "-5"}),
        )
        .await;
    assert_eq!(invalid.status, 400, "{invalid:?}");
    assert_eq!(invalid.json["code"], 3);
    let mut fields = violated_fields(&invalid.json);
    fields.sort();
    assert_eq!(fields, ["name", "price_cents"]);

    let missing = app
        .get("/v1/product/0192f0c1-0000-7000-8000-00000000dead", None)
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json["code"], 5);
    assert_eq!(missing.json["details"], json!([]));

    let bad_json = app
        .send(
            http::Method::POST,
            "/v1/product",
            Some(&app.admin()),
            b"{not json".to_vec(),
            &[],
        )
        .await;
    assert_eq!(bad_json.status, 400);

    let bad_query = app.get("/v1/product/list?pageSize=lots", None).await;
    assert_eq!(bad_query.status, 400);
    assert_eq!(violated_fields(&bad_query.json), ["page_size"]);

    assert_eq!(app.get("/v1/nowhere", None).await.status, 404);
    let wrong_method = app
        .send(
            http::Method::POST,
            "/v1/product/list",
            None,
            Vec::new(),
            &[],
        )
        .await;
    assert_eq!(wrong_method.status, 405);
    // `/v1/product/list` also matches `/v1/product/{id}`.
    assert_eq!(wrong_method.headers["allow"], "GET, PATCH, DELETE");

    // A backend that is down answers 503 without its cause.
    let down = app.get("/v1/warehouse/service", None).await;
    assert_eq!(down.status, 503, "{down:?}");
    assert!(!down.json["message"].as_str().unwrap().contains("127.0.0.1"));
    app.stop().await;
}

#[tokio::test]
async fn orders_are_placed_with_the_cart_as_body_and_stay_private() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.alice(), app.bob());
    let placed = app.place(&alice, &[(P1, 2)]).await;
    assert_eq!(placed.status, 200, "{placed:?}");
    let order = &placed.json["order"];
    assert_eq!(order["customerId"], ALICE);
    assert_eq!(order["status"], "ORDER_STATUS_PROCESSING");
    assert_eq!(order["items"][0]["quantity"], "2");
    let id = order["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/order/orders/{id}");

    assert_eq!(app.get(&path, Some(&alice)).await.status, 200);
    assert_eq!(app.get(&path, Some(&app.admin())).await.status, 200);
    // Bob can neither read nor cancel Alice's order, nor see it listed.
    assert_eq!(app.get(&path, Some(&bob)).await.status, 404);
    let cancel = app
        .post(
            &format!("{path}/cancel"),
            Some(&bob),
            &json!({"reason": "mine now"}),
        )
        .await;
    assert_eq!(cancel.status, 404, "{cancel:?}");
    let bobs = app.get("/v1/order/list", Some(&bob)).await;
    assert_eq!(bobs.status, 200);
    assert_eq!(bobs.json["orders"], json!([]));
    let alices = app.get("/v1/order/list", Some(&alice)).await;
    assert_eq!(alices.json["orders"][0]["id"], id.as_str());

    // A bad cart is a 400 naming the field.
    let empty = app.place(&alice, &[(P1, 0)]).await;
    assert_eq!(empty.status, 400, "{empty:?}");
    assert!(!violated_fields(&empty.json).is_empty());
    app.stop().await;
}

#[tokio::test]
async fn tokens_are_required_and_admin_routes_refuse_customers() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/v1/order/list", None).await.status, 401);
    let anonymous = app.post("/v1/order/place", None, &json!({P1: 1})).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.json["code"], 16);
    assert_eq!(anonymous.headers["www-authenticate"], "Bearer");

    let alice = app.alice();
    let create = app
        .post(
            "/v1/product",
            Some(&alice),
            &json!({"name": "Free", "priceCents": "0"}),
        )
        .await;
    assert_eq!(create.status, 403, "{create:?}");
    assert_eq!(create.json["code"], 7);
    let product = app.create_product("Kettle", 100).await;
    let id = product["id"].as_str().unwrap();
    let delete = app
        .send(
            http::Method::DELETE,
            &format!("/v1/product/{id}"),
            Some(&alice),
            Vec::new(),
            &[],
        )
        .await;
    assert_eq!(delete.status, 403, "{delete:?}");
    let reprice = app
        .send(
            http::Method::PUT,
            &format!("/v1/product/{id}/price"),
            Some(&alice),
            br#"{"priceCents": "1"}"#.to_vec(),
            &[],
        )
        .await;
    assert_eq!(reprice.status, 403);
    // A customer cannot list someone else's orders by naming them.
    let other = app
        .get(
            &format!("/v1/order/list?customerId={ALICE}"),
            Some(&app.bob()),
        )
        .await;
    assert_eq!(other.status, 403, "{other:?}");
    app.stop().await;
}

#[tokio::test]
async fn privileged_fields_in_a_body_change_nothing() {
    let app = TestApp::spawn().await;
    let bob = app.bob();
    // The cart has no customer, status or price: such fields are refused.
    for (path, smuggled) in [
        (
            "/v1/order/orders",
            json!({"items": {P1: 1}, "customerId": ALICE}),
        ),
        (
            "/v1/order/orders",
            json!({"items": {P1: 1}, "customer_id": ALICE}),
        ),
        (
            "/v1/order/orders",
            json!({"items": {P1: 1}, "status": "ORDER_STATUS_APPROVED"}),
        ),
        (
            "/v1/order/orders",
            json!({"cart": {"items": {P1: 1}}, "customerId": ALICE}),
        ),
        (
            "/v1/order/orders",
            json!({"items": {P1: 1}, "totalCents": "0"}),
        ),
        ("/v1/order/place", json!({P1: 1, "customerId": ALICE})),
        ("/v1/order/place", json!({P1: 1, "customer_id": ALICE})),
        ("/v1/order/place", json!({"cart": {"items": {P1: 1}}})),
    ] {
        let answer = app.post(path, Some(&bob), &smuggled).await;
        assert_eq!(answer.status, 400, "{path} {smuggled}: {answer:?}");
    }
    let alices = app.get("/v1/order/list", Some(&app.alice())).await;
    assert_eq!(alices.json["orders"], json!([]));
    // A role in the query or body does not make a customer an admin.
    let promoted = app
        .post(
            "/v1/product",
            Some(&bob),
            &json!({"name": "x", "priceCents": "1", "role": "admin"}),
        )
        .await;
    assert_eq!(promoted.status, 400);
    let placed = app.place(&bob, &[(P1, 1)]).await;
    assert_eq!(placed.json["order"]["customerId"], crate::app::BOB);
    app.stop().await;
}
