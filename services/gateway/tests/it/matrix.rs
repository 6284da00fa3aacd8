//! The user-A/user-B matrix over every object-scoped route, with every
//! service running: customer B can neither read nor change anything of
//! customer A's. A request for another customer's object answers 404, as
//! if it did not exist (the services' `require_owner_or_admin`); naming
//! another customer in a list's filter answers 403. A's objects are
//! unchanged afterwards, and an admin still reaches them.

use serde_json::{Value, json};

use crate::app::{Answer, PASSWORD, TestApp, User};

/// One of B's attempts on A's objects, and the status it must get.
struct Attempt {
    method: http::Method,
    path: String,
    body: Value,
    status: u16,
}

fn attempt(method: http::Method, path: String, body: Value, status: u16) -> Attempt {
    Attempt {
        method,
        path,
        body,
        status,
    }
}

async fn send(app: &TestApp, who: &User, attempt: &Attempt) -> Answer {
    let body = if attempt.method == http::Method::GET || attempt.method == http::Method::DELETE {
        Vec::new()
    } else {
        attempt.body.to_string().into_bytes()
    };
    app.send(
        attempt.method.clone(),
        &attempt.path,
        Some(&who.token),
        body,
        &[],
    )
    .await
}

#[tokio::test]
async fn no_customer_reads_or_writes_another_customers_objects() {
    let app = TestApp::spawn_full().await;
    let admin = app.admin_user().await;
    let (a, a_order) = app.customer_with_order(&admin, "a@example.com").await;
    let (b, b_order) = app.customer_with_order(&admin, "b@example.com").await;
    let order_of = async |who: &User, id: &str| {
        app.get(&format!("/v1/order/orders/{id}"), Some(&who.token))
            .await
            .json["order"]
            .clone()
    };
    let a_snapshot = order_of(&a, &a_order).await;
    let a_shipment = a_snapshot["shipmentId"].as_str().unwrap().to_owned();
    let a_transaction = a_snapshot["transactionId"].as_str().unwrap().to_owned();
    // A's balance once the payment for the order shows in it.
    let total: i64 = a_snapshot["totalCents"].as_str().unwrap().parse().unwrap();
    let paid = (10_000 - total).to_string();
    let a_balance = app
        .eventually(
            &format!("/v1/payment/balance/{}", a.id),
            Some(&a.token),
            |answer| answer.json["balance"]["balanceCents"] == paid.as_str(),
        )
        .await
        .json;
    let a_user = app
        .get(&format!("/v1/user/users/{}", a.id), Some(&a.token))
        .await
        .json;
    use http::Method as M;
    let matrix = [
        // user record
        attempt(M::GET, format!("/v1/user/users/{}", a.id), json!({}), 404),
        attempt(
            M::PUT,
            format!("/v1/user/users/{}/email", a.id),
            json!({"email": "stolen@example.com"}),
            404,
        ),
        attempt(
            M::DELETE,
            format!("/v1/user/users/{}", a.id),
            json!({}),
            404,
        ),
        attempt(
            M::POST,
            "/v1/auth/password".into(),
            json!({"userId": a.id, "password": "stolen password", "currentPassword": PASSWORD}),
            404,
        ),
        // balance and transactions
        attempt(
            M::GET,
            format!("/v1/payment/balance/{}", a.id),
            json!({}),
            404,
        ),
        attempt(
            M::GET,
            format!("/v1/payment/transaction/{a_transaction}"),
            json!({}),
            404,
        ),
        attempt(
            M::GET,
            format!("/v1/payment/transactions?customerId={}", a.id),
            json!({}),
            403,
        ),
        // shipments
        attempt(
            M::GET,
            format!("/v1/shipping/shipment/{a_shipment}"),
            json!({}),
            404,
        ),
        attempt(
            M::GET,
            format!("/v1/shipping/shipment/{a_shipment}/manifest"),
            json!({}),
            404,
        ),
        attempt(
            M::GET,
            format!("/v1/shipping/shipments?customerId={}", a.id),
            json!({}),
            403,
        ),
        // orders
        attempt(
            M::GET,
            format!("/v1/order/orders/{a_order}"),
            json!({}),
            404,
        ),
        attempt(
            M::GET,
            format!("/v1/order/orders/{a_order}/timeline"),
            json!({}),
            404,
        ),
        attempt(
            M::POST,
            format!("/v1/order/orders/{a_order}/cancel"),
            json!({"reason": "not mine"}),
            404,
        ),
        attempt(
            M::GET,
            format!("/v1/order/list?customerId={}", a.id),
            json!({}),
            403,
        ),
    ];
    for attempt in &matrix {
        let answer = send(&app, &b, attempt).await;
        assert_eq!(
            answer.status, attempt.status,
            "B: {} {}: {answer:?}",
            attempt.method, attempt.path
        );
        // No body leaks A's data.
        let text = answer.json.to_string();
        assert!(!text.contains(&a.id), "{} leaks: {text}", attempt.path);
    }
    // B's own lists hold only B's objects.
    for list in [
        "/v1/payment/transactions",
        "/v1/shipping/shipments",
        "/v1/order/list",
    ] {
        // Read models of other services may still be catching up.
        let answer = app
            .eventually(list, Some(&b.token), |a| a.json.to_string().contains(&b.id))
            .await;
        assert_eq!(answer.status, 200, "{list}: {answer:?}");
        let text = answer.json.to_string();
        assert!(!text.contains(&a.id), "{list} leaks A: {text}");
    }

    // Nothing of A's changed: the order, balance, user record and password.
    assert_eq!(order_of(&a, &a_order).await, a_snapshot);
    let balance = app
        .get(&format!("/v1/payment/balance/{}", a.id), Some(&a.token))
        .await;
    assert_eq!(balance.json, a_balance);
    let user = app
        .get(&format!("/v1/user/users/{}", a.id), Some(&a.token))
        .await;
    assert_eq!(user.json, a_user);
    app.login("a@example.com", PASSWORD).await;
    // The matrix is symmetric: A cannot reach B's order either.
    let b_path = format!("/v1/order/orders/{b_order}");
    assert_eq!(app.get(&b_path, Some(&a.token)).await.status, 404);
    // And an admin reaches everything B was refused.
    for attempt in matrix.iter().filter(|a| a.method == http::Method::GET) {
        let answer = app
            .eventually(&attempt.path, Some(&admin.token), |a| a.status == 200)
            .await;
        let text = answer.json.to_string();
        assert!(
            text.contains(&a.id) || text.contains(&a_order),
            "admin: {}: {answer:?}",
            attempt.path
        );
    }
    app.stop().await;
}
