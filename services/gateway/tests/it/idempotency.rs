//! Every command is safe to retry (issue 11, section 5), through the
//! gateway and the real services: an `Idempotency-Key` makes a repeated
//! command answer its first answer without running again, a key reused
//! with another body is a 422, callers do not share keys, keys expire; a
//! backend that dies mid-call is a 503; a JSON key given twice is a 400;
//! and a keyed order placed while PostgreSQL is down is placed and charged
//! exactly once when it is retried.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stocklet_test_support::PostgresServer;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::app::{Answer, SETTLE, SLOW_PASSWORD, Setup, TestApp, User, violated_fields};

const KEY: &str = "idempotency-key";

impl TestApp {
    /// POSTs `body` with `token` and, if given, an `Idempotency-Key`.
    async fn post_keyed(&self, path: &str, token: &str, body: &Value, key: &str) -> Answer {
        self.send(
            http::Method::POST,
            path,
            Some(token),
            body.to_string().into_bytes(),
            &[(KEY, key)],
        )
        .await
    }

    /// The customer's transactions of `kind` (e.g. `TRANSACTION_KIND_PAYMENT`).
    async fn transactions(&self, customer: &User, kind: &str) -> Vec<Value> {
        let listed = self
            .get(
                "/v1/payment/transactions?pageSize=100",
                Some(&customer.token),
            )
            .await;
        assert_eq!(listed.status, 200, "{listed:?}");
        listed.json["transactions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t["kind"] == kind)
            .collect()
    }

    /// The customer's orders.
    async fn orders(&self, customer: &User) -> Vec<Value> {
        let listed = self
            .get("/v1/order/list?pageSize=100", Some(&customer.token))
            .await;
        assert_eq!(listed.status, 200, "{listed:?}");
        listed.json["orders"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until `order` of `customer` leaves PROCESSING/PENDING.
    async fn settle(&self, customer: &User, order: &str) -> Value {
        self.eventually(
            &format!("/v1/order/orders/{order}"),
            Some(&customer.token),
            |answer| {
                !matches!(
                    answer.json["order"]["status"].as_str(),
                    Some("ORDER_STATUS_PROCESSING" | "ORDER_STATUS_PENDING") | None
                )
            },
        )
        .await
        .json["order"]
            .clone()
    }
}

fn replayed(answer: &Answer) -> bool {
    answer
        .headers
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true")
}

#[tokio::test]
async fn a_keyed_command_runs_once_and_repeats_answer_the_first_answer() {
    let app = TestApp::spawn_full().await;
    let admin = app.admin_user().await;
    let ann = app.register("ann@example.com").await;
    let bob = app.register("bob@example.com").await;
    let product = app.stocked_product(&admin, 1_000, 10).await;

    // A credit sent twice with one key is credited once. Until the
    // balance is opened (a reaction to the registration) the answer is a
    // 404, which is not recorded: the same key may be retried.
    let credit = format!("/v1/payment/balance/{}/credit", ann.id);
    let amount = json!({"amountCents": "10000"});
    let deadline = Instant::now() + SETTLE;
    let first = loop {
        let answer = app
            .post_keyed(&credit, &admin.token, &amount, "credit-1")
            .await;
        if answer.status != 404 || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(first.status, 200, "{first:?}");
    assert!(!replayed(&first));
    let again = app
        .post_keyed(&credit, &admin.token, &amount, "credit-1")
        .await;
    assert_eq!(again.status, 200, "{again:?}");
    assert!(replayed(&again), "{again:?}");
    assert_eq!(again.json, first.json);
    assert_eq!(
        app.transactions(&ann, "TRANSACTION_KIND_CREDIT")
            .await
            .len(),
        1
    );

    // An order placed twice with one key is one order.
    let cart = json!({product.as_str(): "2"});
    let placed = app
        .post_keyed("/v1/order/place", &ann.token, &cart, "order-1")
        .await;
    assert_eq!(placed.status, 200, "{placed:?}");
    let again = app
        .post_keyed("/v1/order/place", &ann.token, &cart, "order-1")
        .await;
    assert_eq!(again.status, 200, "{again:?}");
    assert!(replayed(&again));
    assert_eq!(again.json, placed.json, "the identical answer");

    // Several at once: each gets the first order or a 409 while it runs.
    let cart2 = json!({product.as_str(): "1"});
    let racing = futures_like_join(
        (0..4).map(|_| app.post_keyed("/v1/order/place", &ann.token, &cart2, "order-2")),
    )
    .await;
    let ids: std::collections::BTreeSet<&str> = racing
        .iter()
        .filter(|a| a.status == 200)
        .filter_map(|a| a.json["order"]["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 1, "one order for one key: {racing:?}");
    for answer in &racing {
        assert!(matches!(answer.status, 200 | 409), "{answer:?}");
        assert_eq!(answer.headers["content-type"], "application/json");
    }

    // The key with another body: 422, saying why.
    let other = app
        .post_keyed(
            "/v1/order/place",
            &ann.token,
            &json!({product.as_str(): "3"}),
            "order-1",
        )
        .await;
    assert_eq!(other.status, 422, "{other:?}");
    assert_eq!(other.headers["content-type"], "application/json");
    assert_eq!(other.json["code"], 3);
    assert!(
        other.json["message"]
            .as_str()
            .is_some_and(|m| m.contains("different request")),
        "{other:?}"
    );
    assert_eq!(violated_fields(&other.json), ["idempotency-key"]);

    // Another caller's key of the same name is their own.
    let bobs = app
        .post_keyed("/v1/order/place", &bob.token, &cart, "order-1")
        .await;
    assert_eq!(bobs.status, 200, "{bobs:?}");
    assert!(!replayed(&bobs));
    assert_ne!(bobs.json["order"]["id"], placed.json["order"]["id"]);

    // Two orders and two charges for ann, however often she asked.
    let first_order = placed.json["order"]["id"].as_str().unwrap();
    let settled = app.settle(&ann, first_order).await;
    assert_eq!(settled["status"], "ORDER_STATUS_APPROVED", "{settled}");
    let second_order = ids.iter().next().unwrap();
    let settled = app.settle(&ann, second_order).await;
    assert_eq!(settled["status"], "ORDER_STATUS_APPROVED", "{settled}");
    assert_eq!(app.orders(&ann).await.len(), 2);
    let charges = app.transactions(&ann, "TRANSACTION_KIND_PAYMENT").await;
    assert_eq!(charges.len(), 2, "{charges:?}");
    app.stop().await;
}

/// Runs the futures concurrently on this task.
async fn futures_like_join<F: Future<Output = Answer>>(
    futures: impl Iterator<Item = F>,
) -> Vec<Answer> {
    let futures: Vec<_> = futures.map(Box::pin).collect();
    let mut results: Vec<Option<Answer>> = futures.iter().map(|_| None).collect();
    let mut pending: Vec<_> = futures.into_iter().enumerate().collect();
    std::future::poll_fn(|cx| {
        pending.retain_mut(|(i, future)| match future.as_mut().poll(cx) {
            std::task::Poll::Ready(answer) => {
                results[*i] = Some(answer);
                false
            }
            std::task::Poll::Pending => true,
        });
        if pending.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    results.into_iter().flatten().collect()
}

#[tokio::test]
async fn keys_expire_after_the_ttl_and_bad_keys_or_repeated_json_keys_are_400() {
    let ttl = Duration::from_secs(2);
    let setup = Setup {
        idempotency_ttl: Some(ttl),
        ..Setup::default()
    };
    let app = TestApp::spawn_with_setup(setup, |_| {}).await;
    let admin = app.admin();
    let product = json!({"name": "Kettle", "description": "", "priceCents": "1000"});
    let first = app
        .post_keyed("/v1/product", &admin, &product, "product-1")
        .await;
    assert_eq!(first.status, 200, "{first:?}");
    let again = app
        .post_keyed("/v1/product", &admin, &product, "product-1")
        .await;
    assert_eq!(again.json, first.json);
    assert!(replayed(&again));
    // After the TTL the record is purged and the key is new again: the
    // command runs.
    let records = async || -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM product.stocklet_idempotency WHERE key = $1")
            .bind("product-1")
            .fetch_one(&app.db().pool)
            .await
            .unwrap()
    };
    assert_eq!(records().await, 1);
    // The purge runs every TTL/4, at least every second.
    tokio::time::sleep(ttl + Duration::from_millis(1_500)).await;
    assert_eq!(records().await, 0, "purged");
    let later = app
        .post_keyed("/v1/product", &admin, &product, "product-1")
        .await;
    assert_eq!(later.status, 200, "{later:?}");
    assert!(!replayed(&later));
    assert_ne!(later.json["product"]["id"], first.json["product"]["id"]);

    // Keys are bounded in length and charset; the header is named.
    let long = "k".repeat(256);
    for bad in ["a b", "ключ", long.as_str()] {
        let answer = app
            .send(
                http::Method::POST,
                "/v1/product",
                Some(&admin),
                product.to_string().into_bytes(),
                &[(KEY, bad)],
            )
            .await;
        assert_eq!(answer.status, 400, "{bad:?}: {answer:?}");
        assert_eq!(violated_fields(&answer.json), ["Idempotency-Key"]);
    }
    // A query ignores the header: it is safe to repeat as it is.
    let query = app
        .send(
            http::Method::GET,
            "/v1/product/list",
            None,
            Vec::new(),
            &[(KEY, "a b")],
        )
        .await;
    assert_eq!(query.status, 200, "{query:?}");

    // A key given twice in a JSON object, at any depth: 400, naming it.
    let token = app.alice();
    for (path, body, field) in [
        ("/v1/order/place", r#"{"p": "1", "p": "2"}"#, "items.p"),
        (
            "/v1/product",
            r#"{"name": "a", "description": "", "name": "b"}"#,
            "name",
        ),
    ] {
        let token = if path == "/v1/product" {
            &admin
        } else {
            &token
        };
        let answer = app
            .send(
                http::Method::POST,
                path,
                Some(token),
                body.as_bytes().to_vec(),
                &[],
            )
            .await;
        assert_eq!(answer.status, 400, "{body}: {answer:?}");
        assert_eq!(answer.headers["content-type"], "application/json");
        assert_eq!(violated_fields(&answer.json), [field]);
    }
    app.stop().await;
}

/// A TCP proxy in front of a backend that the test can cut, as a killed
/// process cuts its connections.
struct Proxy {
    addr: SocketAddr,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accepting: JoinHandle<()>,
}

impl Proxy {
    fn start(upstream: String) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let listener = TcpListener::from_std(listener).unwrap();
        let connections = Arc::new(Mutex::new(Vec::new()));
        let accepting = tokio::spawn({
            let connections = Arc::clone(&connections);
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    let upstream = upstream.clone();
                    let connection = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    connections.lock().unwrap().push(connection);
                }
            }
        });
        Proxy {
            addr,
            connections,
            accepting,
        }
    }

    /// Closes every connection and takes no new ones: the backend is gone.
    fn kill(&self) {
        self.accepting.abort();
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }
}

#[tokio::test]
async fn a_backend_killed_mid_call_or_down_answers_503() {
    let mut proxy = None;
    let app = TestApp::spawn_with(|config| {
        let auth = config.backends["auth"]
            .trim_start_matches("http://")
            .to_owned();
        let started = Proxy::start(auth);
        config
            .backends
            .insert("auth".into(), format!("http://{}", started.addr));
        proxy = Some(started);
    })
    .await;
    let proxy = proxy.unwrap();
    // The double takes 5 s to refuse this password; the backend dies
    // meanwhile.
    let slow = json!({"email": "ann@example.com", "password": SLOW_PASSWORD});
    let login = app.post("/v1/auth/login", None, &slow);
    let kill = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        proxy.kill();
    };
    let (answer, ()) = tokio::join!(login, kill);
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.headers["content-type"], "application/json");
    assert_eq!(answer.json["message"], "service temporarily unavailable");
    // And while it stays down.
    let down = app
        .post(
            "/v1/auth/login",
            None,
            &json!({"email": "ann@example.com", "password": "x"}),
        )
        .await;
    assert_eq!(down.status, 503, "{down:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_keyed_order_placed_while_postgres_is_down_is_placed_and_charged_once() {
    let postgres = PostgresServer::start().await;
    let app = TestApp::spawn_full_with(Setup {
        postgres_url: Some(postgres.url()),
        ..Setup::default()
    })
    .await;
    let admin = app.admin_user().await;
    let ann = app.register("ann@example.com").await;
    let bob = app.register("bob@example.com").await;
    let product = app.stocked_product(&admin, 1_000, 10).await;
    app.credit(&admin, &ann, 10_000).await;
    app.eventually(
        &format!("/v1/payment/balance/{}", ann.id),
        Some(&ann.token),
        |a| a.json["balance"]["balanceCents"] == "10000",
    )
    .await;

    postgres.stop();
    // Unkeyed, a command still answers what it decided, within the bound
    // of the read-your-writes wait.
    let started = Instant::now();
    let unkeyed = app.place(&bob.token, &[(product.as_str(), 1)]).await;
    let took = started.elapsed();
    assert_eq!(unkeyed.status, 200, "{unkeyed:?}");
    assert!(took < Duration::from_secs(8), "took {took:?}");
    eprintln!("unkeyed PlaceOrder with PostgreSQL down answered in {took:?}");
    // Keyed, it cannot be recorded, so it is not run: 503 (or, had it
    // been recorded, 200; either way the retry below is the one order).
    let cart = json!({product.as_str(): "1"});
    let started = Instant::now();
    let during = app
        .post_keyed("/v1/order/place", &ann.token, &cart, "outage-1")
        .await;
    eprintln!(
        "keyed PlaceOrder with PostgreSQL down: {} in {:?}",
        during.status,
        started.elapsed()
    );
    assert!(matches!(during.status, 200 | 503), "{during:?}");

    postgres.start_again().await;
    let deadline = Instant::now() + SETTLE;
    let placed = loop {
        let answer = app
            .post_keyed("/v1/order/place", &ann.token, &cart, "outage-1")
            .await;
        if answer.status == 200 || Instant::now() > deadline {
            break answer;
        }
        assert_eq!(answer.status, 503, "{answer:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(placed.status, 200, "{placed:?}");
    if during.status == 200 {
        assert_eq!(placed.json, during.json);
    }
    let order = placed.json["order"]["id"].as_str().unwrap();
    let settled = app.settle(&ann, order).await;
    assert_eq!(settled["status"], "ORDER_STATUS_APPROVED", "{settled}");
    // A last retry changes nothing either.
    let last = app
        .post_keyed("/v1/order/place", &ann.token, &cart, "outage-1")
        .await;
    assert_eq!(last.json["order"]["id"], order);
    assert_eq!(app.orders(&ann).await.len(), 1);
    // The payment's ledger follows its own stream: wait until the charge
    // shows, then check it is the only one.
    let deadline = Instant::now() + SETTLE;
    let charges = loop {
        let charges = app.transactions(&ann, "TRANSACTION_KIND_PAYMENT").await;
        if !charges.is_empty() || Instant::now() > deadline {
            break charges;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(charges.len(), 1, "{charges:?}");
    app.stop().await;
    drop(postgres);
}
