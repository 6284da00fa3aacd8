//! Limits and operations: body limit, rate limits (attacked as an outsider
//! would: throwaway tokens, many addresses, rotating victims, forged
//! `X-Forwarded-For`, registration floods), CORS, health, readiness and the
//! OpenAPI document.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::app::{Answer, DOUBLE_PASSWORD, P1, SLOW_PASSWORD, Setup, TestApp};

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

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// A token of a throwaway account of the attacker's (a fresh id).
fn throwaway(app: &TestApp) -> String {
    app.key
        .token(&es_core::AggregateId::new_v7().to_string(), "customer")
}

/// The statuses of `answers`, and the `Retry-After` of each 429 (which
/// every 429 must carry).
fn statuses(answers: &[Answer]) -> Vec<u16> {
    for answer in answers.iter().filter(|a| a.status == 429) {
        let retry_after: u64 = answer.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry_after >= 1, "{answer:?}");
        assert_eq!(answer.json["code"], 8, "{answer:?}");
    }
    answers.iter().map(|a| a.status).collect()
}

fn retry_after(answer: &Answer) -> u64 {
    answer.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn throwaway_tokens_from_many_addresses_get_one_victim_only_the_account_budget() {
    // The attacker controls many addresses (a botnet behind the trusted
    // proxy, each with its own X-Forwarded-For) and many throwaway
    // accounts. Each address may try 3 logins; the victim's account takes
    // 5 failures, then one an hour.
    let app = TestApp::spawn_with(|config| {
        config.rate_limit_burst = 3;
        config.account_rate_limit_per_hour = 1;
        config.account_rate_limit_burst = 5;
        config.trusted_proxies = "127.0.0.1".parse().unwrap();
    })
    .await;
    let mut answers = Vec::new();
    for i in 0..20 {
        // The same account however its address is spelled.
        let victim = [
            "victim@example.com",
            " VICTIM@Example.com",
            "Victim@example.COM",
        ][i % 3];
        let guess = json!({"email": victim, "password": format!("guess number {i}")});
        let bot = format!("203.0.113.{i}");
        let token = throwaway(&app);
        answers.push(
            app.post_from(
                ip("127.0.0.1"),
                "/v1/auth/login",
                Some(&token),
                &guess,
                &[("x-forwarded-for", &bot)],
            )
            .await,
        );
    }
    let mut expected = vec![401; 5];
    expected.extend([429; 15]);
    assert_eq!(statuses(&answers), expected);
    // The wait is the account's: up to an hour.
    assert!(
        (60..=3600).contains(&retry_after(&answers[5])),
        "{:?}",
        answers[5]
    );

    // Another account is not affected, and neither is the bots' own budget.
    let other = json!({"email": "other@example.com", "password": "guess"});
    let answer = app
        .post_from(
            ip("127.0.0.1"),
            "/v1/auth/login",
            None,
            &other,
            &[("x-forwarded-for", "203.0.113.1")],
        )
        .await;
    assert_eq!(answer.status, 401, "{answer:?}");
    // Until the budget recovers even the right password waits: the price of
    // a per-account limit (see the README).
    let right = json!({"email": "victim@example.com", "password": DOUBLE_PASSWORD});
    let answer = app
        .post_from(
            ip("127.0.0.1"),
            "/v1/auth/login",
            None,
            &right,
            &[("x-forwarded-for", "198.51.100.1")],
        )
        .await;
    assert_eq!(answer.status, 429, "{answer:?}");
    app.stop().await;
}

#[tokio::test]
async fn only_failed_logins_spend_the_account_budget() {
    let app = TestApp::spawn_with(|config| {
        config.account_rate_limit_per_hour = 1;
        config.account_rate_limit_burst = 2;
    })
    .await;
    let login = |password: &str| {
        let body = json!({"userId": crate::app::ALICE, "password": password});
        let app = &app;
        async move { app.post("/v1/auth/login", None, &body).await.status }
    };
    // Alice logs in as often as she likes; her typos count.
    assert_eq!(login(DOUBLE_PASSWORD).await, 200);
    assert_eq!(login("typo").await, 401);
    for _ in 0..5 {
        assert_eq!(login(DOUBLE_PASSWORD).await, 200);
    }
    assert_eq!(login("another typo").await, 401);
    assert_eq!(login(DOUBLE_PASSWORD).await, 429);
    assert_eq!(login("a guess").await, 429);
    app.stop().await;
}

#[tokio::test]
async fn a_stolen_token_guessing_the_current_password_is_limited_like_a_login() {
    let app = TestApp::spawn_with(|config| {
        config.account_rate_limit_per_hour = 1;
        config.account_rate_limit_burst = 3;
        config.trusted_proxies = "127.0.0.1".parse().unwrap();
    })
    .await;
    let stolen = app.alice();
    let mut answers = Vec::new();
    for i in 0..6 {
        let change =
            json!({"password": "the attacker's own", "currentPassword": format!("guess {i}")});
        let bot = format!("203.0.113.{i}");
        answers.push(
            app.post_from(
                ip("127.0.0.1"),
                "/v1/auth/password",
                Some(&stolen),
                &change,
                &[("x-forwarded-for", &bot)],
            )
            .await,
        );
    }
    assert_eq!(statuses(&answers), [403, 403, 403, 429, 429, 429]);
    // SetPassword and login by id share the account's budget.
    let login = json!({"userId": crate::app::ALICE, "password": "guess"});
    assert_eq!(app.post("/v1/auth/login", None, &login).await.status, 429);
    // An admin's reset checks no password, so it is no guess and spends
    // nothing: it still works.
    let reset = json!({"userId": crate::app::ALICE, "password": "reset by the admin", "currentPassword": DOUBLE_PASSWORD});
    let answer = app
        .post("/v1/auth/password", Some(&app.admin()), &reset)
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    // SetPassword is limited per address too: one address with a dozen
    // stolen tokens, each account guessed once, gets the default burst (10).
    let mut answers = Vec::new();
    for i in 0..12 {
        let change =
            json!({"password": "the attacker's own", "currentPassword": format!("try {i}")});
        let token = throwaway(&app);
        answers.push(
            app.post_from(
                ip("127.0.0.9"),
                "/v1/auth/password",
                Some(&token),
                &change,
                &[],
            )
            .await,
        );
    }
    let mut expected = vec![403; 10];
    expected.extend([429; 2]);
    assert_eq!(statuses(&answers), expected);
    app.stop().await;
}

#[tokio::test]
async fn one_client_rotating_victims_and_tokens_hits_the_per_address_budget() {
    let app = TestApp::spawn_with(|config| {
        config.rate_limit_per_minute = 1;
        config.rate_limit_burst = 4;
    })
    .await;
    let attacker = ip("127.0.0.2");
    let mut answers = Vec::new();
    for i in 0..8 {
        // A new victim each time, and a new throwaway token or none.
        let guess = json!({"email": format!("victim{i}@example.com"), "password": "Summer2024!"});
        let token = (i % 2 == 0).then(|| throwaway(&app));
        answers.push(
            app.post_from(attacker, "/v1/auth/login", token.as_deref(), &guess, &[])
                .await,
        );
    }
    assert_eq!(statuses(&answers), [401, 401, 401, 401, 429, 429, 429, 429]);
    assert!((1..=60).contains(&retry_after(&answers[4])));
    // Another client has its own budget.
    let guess = json!({"email": "victim9@example.com", "password": "Summer2024!"});
    let answer = app
        .post_from(ip("127.0.0.3"), "/v1/auth/login", None, &guess, &[])
        .await;
    assert_eq!(answer.status, 401, "{answer:?}");
    app.stop().await;
}

#[tokio::test]
async fn x_forwarded_for_is_ignored_from_untrusted_peers_and_separates_clients_behind_a_trusted_proxy()
 {
    let app = TestApp::spawn_with(|config| {
        config.rate_limit_per_minute = 1;
        config.rate_limit_burst = 2;
        config.trusted_proxies = "127.0.0.1, 10.0.0.0/8".parse().unwrap();
    })
    .await;
    let mut n = 0;
    let mut login_from = async |peer: &str, forwarded: Option<&str>| {
        n += 1;
        let guess = json!({"email": format!("someone{n}@example.com"), "password": "guess"});
        let headers: Vec<(&str, &str)> = forwarded
            .map(|f| ("x-forwarded-for", f))
            .into_iter()
            .collect();
        app.post_from(ip(peer), "/v1/auth/login", None, &guess, &headers)
            .await
            .status
    };

    // An untrusted peer rotating forged addresses stays one client.
    let mut untrusted = Vec::new();
    for i in 0..3 {
        untrusted.push(login_from("127.0.0.2", Some(&format!("198.51.100.{i}"))).await);
    }
    assert_eq!(untrusted, [401, 401, 429]);

    // Behind the trusted proxy each client has its own budget.
    for client in ["198.51.100.7", "198.51.100.8"] {
        assert_eq!(login_from("127.0.0.1", Some(client)).await, 401);
        assert_eq!(login_from("127.0.0.1", Some(client)).await, 401);
    }
    assert_eq!(login_from("127.0.0.1", Some("198.51.100.7")).await, 429);
    // What a client writes itself is left of what the proxy appended, and
    // is not believed; hops through further trusted proxies are skipped.
    assert_eq!(
        login_from("127.0.0.1", Some("203.0.113.5, 198.51.100.7")).await,
        429
    );
    assert_eq!(
        login_from("127.0.0.1", Some("198.51.100.7, 10.1.2.3")).await,
        429
    );
    assert_eq!(
        login_from("127.0.0.1", Some("198.51.100.9, 10.1.2.3")).await,
        401
    );
    // The proxy's own requests (no header) are the proxy's.
    assert_eq!(login_from("127.0.0.1", None).await, 401);
    app.stop().await;
}

#[tokio::test]
async fn a_registration_flood_gets_429_with_retry_after() {
    let app = TestApp::spawn_full_tweaked(Setup::default(), |config| {
        config.register_rate_limit_per_hour = 20;
        config.register_rate_limit_burst = 3;
    })
    .await;
    let register = |i: usize, from: &'static str| {
        let app = &app;
        async move {
            let body = json!({"firstName": "Bot", "lastName": "Net", "email": format!("bot{i}@example.com"), "password": format!("bot password {i}")});
            // Throwaway tokens change nothing either.
            let token = (i % 2 == 1).then(|| throwaway(app));
            app.post_from(ip(from), "/v1/user/register", token.as_deref(), &body, &[])
                .await
        }
    };
    let mut answers = Vec::new();
    for i in 0..6 {
        answers.push(register(i, "127.0.0.2").await);
    }
    assert_eq!(statuses(&answers), [200, 200, 200, 429, 429, 429]);
    // One registration every 3 minutes after the burst.
    assert!(
        (1..=180).contains(&retry_after(&answers[3])),
        "{:?}",
        answers[3]
    );
    // Another address registers; logins are not registrations.
    assert_eq!(register(10, "127.0.0.3").await.status, 200);
    let login = json!({"email": "bot0@example.com", "password": "wrong password"});
    let answer = app
        .post_from(ip("127.0.0.2"), "/v1/auth/login", None, &login, &[])
        .await;
    assert_eq!(answer.status, 401, "{answer:?}");
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
