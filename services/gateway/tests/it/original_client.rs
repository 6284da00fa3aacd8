//! A client written for the original Stocklet's REST API: only its routes
//! and its request shapes (snake_case field names, as its proto named them,
//! and the bare cart as the place-order body), reading the fields its
//! responses had under their proto3 JSON names. What the original could not
//! do through its API (create a product, add stock, credit a balance) is set
//! up by the admin first, as its users had to do by hand.
//!
//! The README's "Moving from the original Stocklet" lists where the shapes
//! deliberately differ; each difference this client meets is asserted here.

use serde_json::{Value, json};

use crate::app::{ADMIN_EMAIL, PASSWORD, TestApp};

const SERVICES: [&str; 7] = [
    "auth",
    "user",
    "product",
    "warehouse",
    "order",
    "payment",
    "shipping",
];

#[tokio::test]
async fn a_client_of_the_originals_routes_places_and_follows_an_order() {
    let app = TestApp::spawn_full().await;
    let admin = app.admin_user().await;
    assert!(!ADMIN_EMAIL.is_empty());
    let product = app.stocked_product(&admin, 1_250, 10).await;

    // Every service describes itself.
    for service in SERVICES {
        let info = app.get(&format!("/v1/{service}/service"), None).await;
        assert_eq!(info.status, 200, "{service}: {info:?}");
        assert_eq!(info.json["name"], service, "{info:?}");
        for field in ["source", "license"] {
            assert!(info.json[field].is_string(), "{service} {field}: {info:?}");
        }
    }

    // Register with the original's field names.
    let registered = app
        .post(
            "/v1/user/register",
            None,
            &json!({"first_name": "Ada", "last_name": "Byron", "email": "ada@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(registered.status, 200, "{registered:?}");
    let user = &registered.json["user"];
    let user_id = user["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (&user["email"], &user["firstName"], &user["lastName"]),
        (&json!("ada@example.com"), &json!("Ada"), &json!("Byron"))
    );
    // Difference: times are Unix milliseconds (`createdAtMs`), not seconds.
    assert!(
        user["createdAtMs"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            > 1_700_000_000_000
    );

    // Log in by user id, as the original did (by email works too).
    let token = login_by_id(&app, &user_id, PASSWORD).await;
    let bearer = Some(token.as_str());

    let jwks = app.get("/v1/auth/jwks", None).await;
    assert_eq!(jwks.status, 200);
    let key = &jwks.json["keys"][0];
    assert_eq!(
        (&key["kty"], &key["use"], &key["alg"], &key["crv"]),
        (
            &json!("EC"),
            &json!("sig"),
            &json!("ES256"),
            &json!("P-256")
        )
    );
    assert!(key["x"].is_string() && key["y"].is_string());

    let viewed = app.get(&format!("/v1/user/users/{user_id}"), bearer).await;
    assert_eq!(viewed.status, 200, "{viewed:?}");
    assert_eq!(viewed.json["user"]["id"], user_id.as_str());

    // The catalogue and the stock. Difference: money is integer cents
    // (`priceCents`, a string as proto3 JSON writes int64), not a float.
    let list = app.get("/v1/product/list", None).await;
    assert_eq!(list.status, 200);
    assert!(
        list.json["products"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == product.as_str()),
        "{list:?}"
    );
    let viewed = app.get(&format!("/v1/product/{product}"), None).await;
    assert_eq!(viewed.status, 200);
    let listed = &viewed.json["product"];
    assert_eq!(listed["priceCents"], "1250");
    assert!(listed["name"].is_string() && listed["description"].is_string());
    // Difference: the stock says on hand, reserved and available, not one
    // `quantity`.
    let stock = app
        .get(&format!("/v1/warehouse/product/{product}"), None)
        .await;
    assert_eq!(stock.status, 200, "{stock:?}");
    assert_eq!(stock.json["stock"]["productId"], product.as_str());
    assert_eq!(stock.json["stock"]["available"], "10");

    // The customer needs money; the original had no API for that.
    let credited = app
        .once_known(
            http::Method::POST,
            &format!("/v1/payment/balance/{user_id}/credit"),
            &admin.token,
            &json!({"amountCents": "100000"}),
        )
        .await;
    assert_eq!(credited.status, 200, "{credited:?}");

    // The original's place-order body: the cart itself.
    let placed = app
        .post("/v1/order/place", bearer, &json!({product.as_str(): 2}))
        .await;
    assert_eq!(placed.status, 200, "{placed:?}");
    let order_id = placed.json["order"]["id"].as_str().unwrap().to_owned();
    assert_eq!(placed.json["order"]["status"], "ORDER_STATUS_PROCESSING");
    assert_eq!(placed.json["order"]["customerId"], user_id.as_str());

    let settled = app
        .eventually(&format!("/v1/order/orders/{order_id}"), bearer, |answer| {
            answer.json["order"]["status"] == "ORDER_STATUS_APPROVED"
        })
        .await;
    let order = &settled.json["order"];
    // Difference: items are a list of lines with their unit price, not a
    // map of product id to quantity.
    assert_eq!(
        order["items"],
        json!([{"productId": product, "quantity": "2", "unitPriceCents": "1250"}])
    );
    let total: i64 = order["totalCents"].as_str().unwrap().parse().unwrap();
    assert!(total >= 2_500, "{order}");
    // Difference: `shipmentId`, not `shipping_id`.
    let shipment_id = order["shipmentId"].as_str().unwrap().to_owned();
    let transaction_id = order["transactionId"].as_str().unwrap().to_owned();
    let reservation_id = order["reservationId"].as_str().unwrap().to_owned();
    assert!(!shipment_id.is_empty() && !transaction_id.is_empty() && !reservation_id.is_empty());

    let mine = app.get("/v1/order/list", bearer).await;
    assert_eq!(mine.status, 200);
    assert_eq!(mine.json["orders"][0]["id"], order_id.as_str());

    // Difference: a reservation is the warehouse's business, admin only.
    let path = format!("/v1/warehouse/reservation/{reservation_id}");
    assert_eq!(app.get(&path, bearer).await.status, 403);
    let reservation = app.get(&path, Some(&admin.token)).await;
    assert_eq!(reservation.status, 200, "{reservation:?}");
    assert_eq!(
        reservation.json["reservation"]["orderId"],
        order_id.as_str()
    );

    let transaction = app
        .get(&format!("/v1/payment/transaction/{transaction_id}"), bearer)
        .await;
    assert_eq!(transaction.status, 200, "{transaction:?}");
    let transaction = &transaction.json["transaction"];
    assert_eq!(transaction["orderId"], order_id.as_str());
    assert_eq!(transaction["customerId"], user_id.as_str());
    assert_eq!(transaction["amountCents"], total.to_string());
    assert_ne!(transaction["processedAtMs"], "0");

    let balance = app
        .get(&format!("/v1/payment/balance/{user_id}"), bearer)
        .await;
    assert_eq!(balance.status, 200, "{balance:?}");
    assert_eq!(
        balance.json["balance"]["balanceCents"],
        (100_000 - total).to_string()
    );

    let shipment = app
        .get(&format!("/v1/shipping/shipment/{shipment_id}"), bearer)
        .await;
    assert_eq!(shipment.status, 200, "{shipment:?}");
    assert_eq!(shipment.json["shipment"]["orderId"], order_id.as_str());
    let manifest = app
        .get(
            &format!("/v1/shipping/shipment/{shipment_id}/manifest"),
            bearer,
        )
        .await;
    assert_eq!(manifest.status, 200, "{manifest:?}");
    assert_eq!(
        manifest.json["items"],
        json!([{"productId": product, "quantity": "2"}])
    );

    // Difference: setting one's own password needs the current one.
    let without = app
        .post(
            "/v1/auth/password",
            bearer,
            &json!({"user_id": user_id, "password": "a new passphrase"}),
        )
        .await;
    assert_eq!(without.status, 400, "{without:?}");
    let changed = app
        .post(
            "/v1/auth/password",
            bearer,
            &json!({"user_id": user_id, "password": "a new passphrase", "current_password": PASSWORD}),
        )
        .await;
    assert_eq!(changed.status, 200, "{changed:?}");
    login_by_id(&app, &user_id, "a new passphrase").await;
    app.stop().await;
}

/// `POST /v1/auth/login` with `user_id`, waiting for the auth service to
/// catch up with a registration or a new password.
async fn login_by_id(app: &TestApp, user_id: &str, password: &str) -> String {
    let answer = app
        .eventually_post(
            "/v1/auth/login",
            &json!({"user_id": user_id, "password": password}),
        )
        .await;
    assert_eq!(answer.json["token_type"], Value::Null, "camelCase answers");
    assert_eq!(answer.json["tokenType"], "Bearer");
    assert!(
        answer.json["expiresInS"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            > 0
    );
    answer.json["accessToken"].as_str().unwrap().to_owned()
}
