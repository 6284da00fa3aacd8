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
