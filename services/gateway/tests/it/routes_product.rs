//! The product routes not covered in `routing.rs`: details changes and
//! deletion, with their error statuses.

use serde_json::json;

use crate::app::{TestApp, violated_fields};

#[tokio::test]
async fn product_details_change_and_deletion() {
    let app = TestApp::spawn().await;
    let product = app.create_product("Kettle", 1_250).await;
    let id = product["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/product/{id}");
    let patch = |token: Option<String>, body: serde_json::Value| {
        let app = &app;
        let path = path.clone();
        async move {
            app.send(
                http::Method::PATCH,
                &path,
                token.as_deref(),
                body.to_string().into_bytes(),
                &[],
            )
            .await
        }
    };
    let admin = Some(app.admin());
    // Only the fields given change.
    let renamed = patch(admin.clone(), json!({"name": "Tea kettle"})).await;
    assert_eq!(renamed.status, 200, "{renamed:?}");
    assert_eq!(renamed.json["product"]["name"], "Tea kettle");
    assert_eq!(renamed.json["product"]["priceCents"], "1250");
    let described = patch(admin.clone(), json!({"description": "Whistles"})).await;
    assert_eq!(described.json["product"]["name"], "Tea kettle");
    assert_eq!(described.json["product"]["description"], "Whistles");
    let invalid = patch(admin.clone(), json!({"name": ""})).await;
    assert_eq!(invalid.status, 400, "{invalid:?}");
    assert_eq!(violated_fields(&invalid.json), ["name"]);
    assert_eq!(
        patch(Some(app.alice()), json!({"name": "Mine"}))
            .await
            .status,
        403
    );
    assert_eq!(patch(None, json!({"name": "Mine"})).await.status, 401);
    let ghost = app
        .send(
            http::Method::PATCH,
            "/v1/product/0192f0c1-0000-7000-8000-00000000dead",
            admin.as_deref(),
            br#"{"name": "x"}"#.to_vec(),
            &[],
        )
        .await;
    assert_eq!(ghost.status, 404, "{ghost:?}");
    let viewed = app.get(&path, None).await;
    assert_eq!(viewed.json["product"]["name"], "Tea kettle");

    // Deletion: admin only; afterwards the product is gone.
    let delete = |token: Option<String>| {
        let app = &app;
        let path = path.clone();
        async move {
            app.send(
                http::Method::DELETE,
                &path,
                token.as_deref(),
                Vec::new(),
                &[],
            )
            .await
        }
    };
    assert_eq!(delete(None).await.status, 401);
    assert_eq!(delete(Some(app.bob())).await.status, 403);
    let deleted = delete(admin.clone()).await;
    assert_eq!(deleted.status, 200, "{deleted:?}");
    assert_eq!(deleted.json, json!({}));
    assert_eq!(app.get(&path, None).await.status, 404);
    let again = delete(admin.clone()).await;
    assert_eq!(again.status, 404, "{again:?}");
    let repriced = app
        .send(
            http::Method::PUT,
            &format!("{path}/price"),
            admin.as_deref(),
            br#"{"priceCents": "1"}"#.to_vec(),
            &[],
        )
        .await;
    assert_eq!(repriced.status, 404, "{repriced:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_clients_request_id_names_the_events_it_causes() {
    let app = TestApp::spawn_full().await;
    let admin = app.admin_user().await;
    let body = json!({"name": "Lamp", "description": "", "priceCents": "990"});
    let created = app
        .send(
            http::Method::POST,
            "/v1/product",
            Some(&admin.token),
            body.to_string().into_bytes(),
            &[("x-request-id", "req-lamp-1")],
        )
        .await;
    assert_eq!(created.status, 200, "{created:?}");
    assert_eq!(created.headers["x-request-id"], "req-lamp-1");
    let id = created.json["product"]["id"].as_str().unwrap().to_owned();
    let stored = app
        .last_event("PRODUCT", &format!("product.product.{id}"))
        .await;
    assert_eq!(
        stored.get("Stocklet-Causation-Id").map(|v| v.as_str()),
        Some("req-lamp-1")
    );

    // Without one (or with one that cannot name events), the gateway makes
    // one and answers with it.
    let made = app
        .send(
            http::Method::POST,
            "/v1/product",
            Some(&admin.token),
            body.to_string().into_bytes(),
            &[("x-request-id", "not usable")],
        )
        .await;
    assert_eq!(made.status, 200, "{made:?}");
    let made_id = made.headers["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(made_id, "not usable");
    let id = made.json["product"]["id"].as_str().unwrap().to_owned();
    let stored = app
        .last_event("PRODUCT", &format!("product.product.{id}"))
        .await;
    assert_eq!(
        stored.get("Stocklet-Causation-Id").map(|v| v.as_str()),
        Some(made_id.as_str())
    );
    app.stop().await;
}
