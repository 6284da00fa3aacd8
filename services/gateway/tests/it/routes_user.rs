//! Every user route through the gateway: registration, reading, listing,
//! email changes and deletion, with their error statuses.

use serde_json::json;

use crate::app::{PASSWORD, TestApp, violated_fields};

#[tokio::test]
async fn user_routes_register_read_list_update_and_delete() {
    let app = TestApp::spawn_full().await;
    let info = app.get("/v1/user/service", None).await;
    assert_eq!(info.status, 200, "{info:?}");

    // Registration: public, validated, unique emails.
    let ann = app.register("ann@example.com").await;
    let register = |body: serde_json::Value| {
        let app = &app;
        async move { app.post("/v1/user/register", None, &body).await }
    };
    let taken = register(json!({"firstName": "A", "lastName": "B", "email": "ANN@example.com", "password": PASSWORD})).await;
    assert_eq!(taken.status, 409, "{taken:?}");
    assert_eq!(taken.json["code"], 6);
    let invalid = register(
        json!({"firstName": "", "lastName": "B", "email": "not an email", "password": ""}),
    )
    .await;
    assert_eq!(invalid.status, 400, "{invalid:?}");
    let mut fields = violated_fields(&invalid.json);
    fields.sort();
    assert_eq!(fields, ["email", "first_name", "password"]);
    // The password policy (NIST SP 800-63B): 8 to 128 characters, not one
    // of the most common passwords, whatever its case.
    for (weak, why) in [
        ("7 chars", "at least 8 characters"),
        ("Password1", "most commonly used"),
        ("iloveyou", "most commonly used"),
    ] {
        let refused = register(json!({"firstName": "Eve", "lastName": "B", "email": "eve@example.com", "password": weak})).await;
        assert_eq!(refused.status, 400, "{weak}: {refused:?}");
        assert_eq!(violated_fields(&refused.json), ["password"], "{weak}");
        let description = &refused.json["details"][0]["fieldViolations"][0]["description"];
        assert!(
            description.as_str().unwrap().contains(why),
            "{weak}: {refused:?}"
        );
    }

    // Reading: the user themselves or an admin.
    let path = format!("/v1/user/users/{}", ann.id);
    let me = app.get(&path, Some(&ann.token)).await;
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(me.json["user"]["email"], "ann@example.com");
    assert_eq!(me.json["user"]["firstName"], "Ann");
    assert!(me.json["user"].get("password").is_none());
    assert!(me.json["user"].get("passwordHash").is_none());
    assert_eq!(app.get(&path, None).await.status, 401);
    let admin = app.admin_user().await;
    assert_eq!(app.get(&path, Some(&admin.token)).await.status, 200);
    let ghost = app
        .get(
            "/v1/user/users/0192f0c1-0000-7000-8000-00000000dead",
            Some(&admin.token),
        )
        .await;
    assert_eq!(ghost.status, 404, "{ghost:?}");
    let bad_id = app
        .get("/v1/user/users/not.an.id", Some(&admin.token))
        .await;
    assert_eq!(bad_id.status, 400, "{bad_id:?}");
    assert_eq!(violated_fields(&bad_id.json), ["id"]);

    // Listing: admin only, paginated.
    let bob = app.register("bob@example.com").await;
    let listed = app
        .eventually("/v1/user/users?pageSize=1", Some(&admin.token), |a| {
            a.status == 200 && !a.json["nextPageToken"].as_str().unwrap_or("").is_empty()
        })
        .await;
    assert_eq!(listed.json["users"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.get("/v1/user/users", Some(&ann.token)).await.status,
        403
    );
    assert_eq!(app.get("/v1/user/users", None).await.status, 401);
    let bad_page = app
        .get("/v1/user/users?pageSize=-1", Some(&admin.token))
        .await;
    assert_eq!(bad_page.status, 400, "{bad_page:?}");

    // Email changes: validated, unique, the path's id wins over the body's.
    let email_path = format!("{path}/email");
    let put = |path: String, token: String, body: serde_json::Value| {
        let app = &app;
        async move {
            app.send(
                http::Method::PUT,
                &path,
                Some(&token),
                body.to_string().into_bytes(),
                &[],
            )
            .await
        }
    };
    let changed = put(
        email_path.clone(),
        ann.token.clone(),
        json!({"id": bob.id, "email": "ann@new.example"}),
    )
    .await;
    assert_eq!(changed.status, 200, "{changed:?}");
    assert_eq!(changed.json["user"]["id"], ann.id.as_str());
    assert_eq!(changed.json["user"]["email"], "ann@new.example");
    let bobs = app
        .get(&format!("/v1/user/users/{}", bob.id), Some(&bob.token))
        .await;
    assert_eq!(bobs.json["user"]["email"], "bob@example.com");
    app.login("ann@new.example", PASSWORD).await;
    let clash = put(
        email_path.clone(),
        ann.token.clone(),
        json!({"email": "bob@example.com"}),
    )
    .await;
    assert_eq!(clash.status, 409, "{clash:?}");
    let malformed = put(email_path.clone(), ann.token.clone(), json!({"email": "@"})).await;
    assert_eq!(malformed.status, 400, "{malformed:?}");
    assert_eq!(violated_fields(&malformed.json), ["email"]);

    // Deletion: the user or an admin; afterwards the user is gone and the
    // address is free again.
    let delete = |path: String, token: Option<String>| {
        let app = &app;
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
    assert_eq!(delete(path.clone(), None).await.status, 401);
    let deleted = delete(path.clone(), Some(ann.token.clone())).await;
    assert_eq!(deleted.status, 200, "{deleted:?}");
    assert_eq!(deleted.json, json!({}));
    let gone = app
        .eventually(&path, Some(&admin.token), |a| a.status != 200)
        .await;
    assert_eq!(gone.status, 404, "{gone:?}");
    let again = delete(path.clone(), Some(admin.token.clone())).await;
    assert_eq!(again.status, 404, "{again:?}");
    let reused = register(json!({"firstName": "New", "lastName": "Ann", "email": "ann@new.example", "password": PASSWORD})).await;
    assert_eq!(reused.status, 200, "{reused:?}");
    let by_admin = delete(
        format!("/v1/user/users/{}", bob.id),
        Some(admin.token.clone()),
    )
    .await;
    assert_eq!(by_admin.status, 200, "{by_admin:?}");
    app.stop().await;
}
