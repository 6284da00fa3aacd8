//! Every auth route through the gateway, against the real auth and user
//! services: service info, JWKS, login by email or user id, and password
//! changes by the user themselves or an admin.

use base64ct::{Base64UrlUnpadded, Encoding};
use serde_json::{Value, json};

use crate::app::{PASSWORD, TestApp, violated_fields};

/// The claims of a compact JWS (not verified: the gateway does that).
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&Base64UrlUnpadded::decode_vec(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn auth_routes_publish_keys_log_in_and_change_passwords() {
    let app = TestApp::spawn_full().await;
    let info = app.get("/v1/auth/service", None).await;
    assert_eq!(info.status, 200, "{info:?}");
    assert!(!info.json["name"].as_str().unwrap().is_empty());
    let jwks = app.get("/v1/auth/jwks", None).await;
    assert_eq!(jwks.status, 200, "{jwks:?}");
    assert_eq!(jwks.json["keys"][0]["kid"], app.key.kid.as_str());
    assert_eq!(jwks.json["keys"][0]["alg"], "ES256");

    // Login by email (in `register`) and by user id; the token says who.
    let ann = app.register("ann@example.com").await;
    let claims = claims_of(&ann.token);
    assert_eq!(claims["sub"], ann.id.as_str());
    assert_eq!(claims["role"], "customer");
    let by_id = app
        .post(
            "/v1/auth/login",
            None,
            &json!({"user_id": ann.id, "password": PASSWORD}),
        )
        .await;
    assert_eq!(by_id.status, 200, "{by_id:?}");
    assert!(
        by_id.json["expiresInS"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            > 0
    );
    // The token it hands out opens private routes.
    let me = app
        .get(&format!("/v1/user/users/{}", ann.id), Some(&ann.token))
        .await;
    assert_eq!(me.status, 200, "{me:?}");

    // Wrong password and unknown user look alike: 401.
    for body in [
        json!({"email": "ann@example.com", "password": "wrong"}),
        json!({"email": "nobody@example.com", "password": PASSWORD}),
    ] {
        let refused = app.post("/v1/auth/login", None, &body).await;
        assert_eq!(refused.status, 401, "{body}: {refused:?}");
        assert_eq!(refused.json["code"], 16);
    }
    let no_password = app
        .post("/v1/auth/login", None, &json!({"email": "ann@example.com"}))
        .await;
    assert_eq!(no_password.status, 400, "{no_password:?}");
    assert_eq!(violated_fields(&no_password.json), ["password"]);

    // Changing a password: a token, the current password, a valid new one.
    let change = |token: Option<String>, body: Value| {
        let app = &app;
        async move { app.post("/v1/auth/password", token.as_deref(), &body).await }
    };
    let anonymous = change(None, json!({"password": "new password"})).await;
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
    let no_current = change(Some(ann.token.clone()), json!({"password": "new password"})).await;
    assert_eq!(no_current.status, 400, "{no_current:?}");
    assert_eq!(violated_fields(&no_current.json), ["current_password"]);
    let too_long = change(
        Some(ann.token.clone()),
        json!({"password": "x".repeat(129), "currentPassword": PASSWORD}),
    )
    .await;
    assert_eq!(too_long.status, 400, "{too_long:?}");
    assert_eq!(violated_fields(&too_long.json), ["password"]);
    // The new password follows the policy: a 7-character or a common one
    // is a 400 naming the field, before the current password is checked.
    for weak in ["7 chars", "baseball", "Sunshine1"] {
        let refused = change(
            Some(ann.token.clone()),
            json!({"password": weak, "currentPassword": PASSWORD}),
        )
        .await;
        assert_eq!(refused.status, 400, "{weak}: {refused:?}");
        assert_eq!(violated_fields(&refused.json), ["password"], "{weak}");
    }
    let wrong_current = change(
        Some(ann.token.clone()),
        json!({"password": "new password", "currentPassword": "guess"}),
    )
    .await;
    assert_eq!(wrong_current.status, 403, "{wrong_current:?}");
    let changed = change(
        Some(ann.token.clone()),
        json!({"password": "new password", "currentPassword": PASSWORD}),
    )
    .await;
    assert_eq!(changed.status, 200, "{changed:?}");
    assert_eq!(changed.json, json!({}));
    let old = app
        .post(
            "/v1/auth/login",
            None,
            &json!({"email": "ann@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(old.status, 401);
    app.login("ann@example.com", "new password").await;

    // Another customer cannot reach Ann's credentials; an admin can,
    // without her current password.
    let bob = app.register("bob@example.com").await;
    let hijack = change(
        Some(bob.token.clone()),
        json!({"userId": ann.id, "password": "bob's now", "currentPassword": PASSWORD}),
    )
    .await;
    assert_eq!(hijack.status, 404, "{hijack:?}");
    let admin = app.admin_user().await;
    assert_eq!(claims_of(&admin.token)["role"], "admin");
    let reset = change(
        Some(admin.token.clone()),
        json!({"userId": ann.id, "password": "reset by admin"}),
    )
    .await;
    assert_eq!(reset.status, 200, "{reset:?}");
    app.login("ann@example.com", "reset by admin").await;
    let ghost = change(
        Some(admin.token.clone()),
        json!({"userId": "0192f0c1-0000-7000-8000-00000000dead", "password": "ghost's password"}),
    )
    .await;
    assert_eq!(ghost.status, 404, "{ghost:?}");
    let bad_id = change(
        Some(admin.token.clone()),
        json!({"userId": "not.an.id", "password": "a valid password"}),
    )
    .await;
    assert_eq!(bad_id.status, 400, "{bad_id:?}");
    assert_eq!(violated_fields(&bad_id.json), ["user_id"]);
    app.stop().await;
}

#[tokio::test]
async fn no_public_stream_carries_a_password_or_its_hash() {
    let app = TestApp::spawn_full().await;
    let ann = app.register("ann@example.com").await;
    let changed = app
        .post(
            "/v1/auth/password",
            Some(&ann.token),
            &serde_json::json!({"password": "a brand new secret", "currentPassword": PASSWORD}),
        )
        .await;
    assert_eq!(changed.status, 200, "{changed:?}");
    // Everything the saga writes, too.
    let admin = app.admin_user().await;
    let (_customer, _order) = app.customer_with_order(&admin, "bea@example.com").await;

    let contains = |haystack: &[u8], needle: &str| {
        haystack
            .windows(needle.len())
            .any(|window| window == needle.as_bytes())
    };
    for stream in stocklet_service_kit::streams::PUBLIC_STREAMS {
        let messages = app.stream_bytes(stream.name).await;
        assert!(!messages.is_empty(), "{} is empty", stream.name);
        for message in &messages {
            for secret in ["$argon2id$", PASSWORD, "a brand new secret"] {
                assert!(
                    !contains(message, secret),
                    "{} holds {secret:?}",
                    stream.name
                );
            }
        }
    }
    // The scan does find hashes where they belong: the private AUTH stream.
    let private = app.stream_bytes("AUTH").await;
    let hashes = private
        .iter()
        .filter(|message| contains(message, "$argon2id$"))
        .count();
    assert!(
        hashes >= 3,
        "registration, password change and the admin: {hashes}"
    );
    app.stop().await;
}
