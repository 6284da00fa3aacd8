//! Limits and operations: body limit, rate limit, CORS, health, readiness
//! and the OpenAPI document.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::app::{P1, SLOW_PASSWORD, TestApp};

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let app = TestApp::spawn().await;
    let big = format!(
        r#"{{"name": "x", "description": "{}"}}"#,
        "a".repeat(1024 * 1024)
    );
    let answer = app
        .send(
            http::Method::POST,
            "/v1/product",
            Some(&app.admin()),
            big.into_bytes(),
            &[],
        )
        .await;
    assert_eq!(answer.status, 413, "{answer:?}");
    assert_eq!(answer.json["code"], 3);
    app.stop().await;
}

#[tokio::test]
async fn login_and_order_placement_are_rate_limited_per_client() {
    let app = TestApp::spawn_with(|config| {
        config.rate_limit_per_minute = 1;
        config.rate_limit_burst = 2;
    })
    .await;
    let login = json!({"email": "a@example.com", "password": "nope"});
    for _ in 0..2 {
        let answer = app.post("/v1/auth/login", None, &login).await;
        assert_eq!(answer.status, 401, "{answer:?}");
    }
    let limited = app.post("/v1/auth/login", None, &login).await;
    assert_eq!(limited.status, 429, "{limited:?}");
    assert_eq!(limited.json["code"], 8);
    let retry_after: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");

    let alice = app.alice();
    for _ in 0..2 {
        assert_eq!(app.place(&alice, &[(P1, 1)]).await.status, 200);
    }
    let limited = app.place(&alice, &[(P1, 1)]).await;
    assert_eq!(limited.status, 429);
    assert!(limited.headers.contains_key("retry-after"));
    // Another customer has their own budget; other routes are not limited.
    assert_eq!(app.place(&app.bob(), &[(P1, 1)]).await.status, 200);
    assert_eq!(app.get("/v1/order/list", Some(&alice)).await.status, 200);
    app.stop().await;
}

#[tokio::test]
async fn cors_health_readiness_and_openapi() {
    let app = TestApp::spawn().await;
    let preflight = app
        .send(
            http::Method::OPTIONS,
            "/v1/order/place",
            None,
            Vec::new(),
            &[
                ("origin", "https://shop.example"),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "authorization"),
            ],
        )
        .await;
    assert_eq!(
        preflight.headers["access-control-allow-origin"],
        "https://shop.example"
    );
    let foreign = app
        .send(
            http::Method::GET,
            "/v1/product/list",
            None,
            Vec::new(),
            &[("origin", "https://evil.example")],
        )
        .await;
    assert!(!foreign.headers.contains_key("access-control-allow-origin"));

    let health = app.get("/healthz", None).await;
    assert_eq!(
        (health.status, health.json["status"].as_str()),
        (200, Some("ok"))
    );
    // Warehouse, user, payment and shipping are not running here.
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status, 503, "{ready:?}");
    assert_eq!(ready.json["backends"]["product"], "serving");
    assert_eq!(ready.json["backends"]["order"], "serving");
    assert_eq!(ready.json["backends"]["warehouse"], "not serving");

    let doc = app.get("/openapi.json", None).await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.json["openapi"], "3.0.3");
    let paths = doc.json["paths"].as_object().unwrap();
    for (path, method) in [
        ("/v1/order/place", "post"),
        ("/v1/order/orders/{order_id}", "get"),
        ("/v1/product/list", "get"),
        ("/v1/product/{id}", "get"),
        ("/v1/product/{id}/price", "put"),
        ("/v1/auth/login", "post"),
        ("/v1/auth/jwks", "get"),
        ("/v1/user/register", "post"),
        ("/healthz", "get"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path}");
    }
    // Every documented API operation is served: none answers 404 or 405.
    for (path, operations) in paths {
        if !path.starts_with("/v1/") {
            continue;
        }
        let concrete = path
            .split('/')
            .map(|s| {
                if s.starts_with('{') {
                    "0192f0c1-0000-7000-8000-000000000001"
                } else {
                    s
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for method in operations.as_object().unwrap().keys() {
            let method: http::Method = method.to_uppercase().parse().unwrap();
            let answer = tokio::time::timeout(
                Duration::from_secs(15),
                app.send(
                    method.clone(),
                    &concrete,
                    Some(&app.admin()),
                    b"{}".to_vec(),
                    &[],
                ),
            )
            .await
            .unwrap();
            assert!(
                answer.status != 404 || answer.json["message"] != "no such route",
                "{method} {concrete}: {answer:?}"
            );
            assert_ne!(answer.status, 405, "{method} {concrete}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn a_slow_backend_is_cut_off_at_the_request_timeout() {
    let app = TestApp::spawn_with(|config| {
        config.request_timeout = Duration::from_millis(500);
    })
    .await;
    let started = std::time::Instant::now();
    let answer = app
        .post(
            "/v1/auth/login",
            None,
            &json!({"email": "a@example.com", "password": SLOW_PASSWORD}),
        )
        .await;
    assert_eq!(answer.status, 503, "{answer:?}");
    // DEADLINE_EXCEEDED, or CANCELLED when the backend's own grpc-timeout
    // fires first; either way the same generic answer.
    assert!(
        matches!(answer.json["code"].as_i64(), Some(1 | 4)),
        "{answer:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    app.stop().await;
}

/// A `Write` into a shared buffer, to read what was logged.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn access_logs_carry_no_tokens_or_passwords() {
    // A global subscriber: a thread-local one misses events whose callsite
    // interest was cached by tests running in parallel. Other tests' logs
    // land here too, which only makes the check wider.
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("no other test sets a subscriber");

    let app = TestApp::spawn().await;
    let password = "correct-horse-battery-staple";
    app.post(
        "/v1/auth/login",
        None,
        &json!({"email": "a@example.com", "password": password}),
    )
    .await;
    let token = app.alice();
    let listed = app
        .get(
            &format!("/v1/order/list?pageToken={password}"),
            Some(&token),
        )
        .await;
    assert_eq!(listed.status, 400);
    assert_eq!(app.get("/v1/order/list", Some(&token)).await.status, 200);
    app.stop().await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("stocklet_gateway::access"), "{logs}");
    assert!(logs.contains("/v1/auth/login"));
    assert!(logs.contains(crate::app::ALICE), "the user id is logged");
    assert!(!logs.contains(password), "a password was logged");
    let signature = token.rsplit('.').next().unwrap();
    assert!(!logs.contains(signature), "a token was logged");
}
