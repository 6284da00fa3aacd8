//! `GET /metrics` on a running service's gRPC port: Prometheus text with the
//! command counter and the projection lag that es-core records.

use std::time::{Duration, Instant};

use stocklet_proto::stocklet::product::v1 as product;
use stocklet_proto::stocklet::product::v1::product_service_client::ProductServiceClient;
use stocklet_test_support::{NatsServer, TestDb, common_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::app::{admin, as_user};

/// A plain HTTP/1 scrape, the way Prometheus does it.
async fn scrape(addr: std::net::SocketAddr) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: stocklet\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.to_owned(), body.to_owned())
}

/// The value of the series named `name` whose labels include every one of
/// `labels` (`key="value"` each).
fn value(body: &str, name: &str, labels: &[&str]) -> Option<f64> {
    body.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let rest = series.strip_prefix(name)?;
        let matches = (rest.is_empty() || rest.starts_with('{'))
            && labels.iter().all(|label| rest.contains(label));
        matches.then(|| value.parse().ok()).flatten()
    })
}

#[tokio::test]
async fn a_service_serves_command_counts_and_projection_lag_on_its_grpc_port() {
    let nats = NatsServer::start().await;
    nats.provision().await;
    let db = TestDb::create().await;
    let config = stocklet_product::Config {
        common: common_config(nats.url(), &db),
        listen_addr: "127.0.0.1:0".into(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(stocklet_product::run(config, listener, shutdown.clone()));
    let channel = loop {
        match Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
        {
            Ok(channel) => break channel,
            Err(_) if !running.is_finished() => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(error) => panic!("the product service did not start: {error}"),
        }
    };
    let mut products = ProductServiceClient::new(channel);
    let created = products
        .create_product(as_user(
            &admin(),
            product::CreateProductRequest {
                name: "Widget".into(),
                description: "A widget".into(),
                price_cents: 1_000,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .product
        .unwrap();
    assert!(!created.id.is_empty());

    // The projection applies the new product soon after; its lag is then 0.
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (head, body) = scrape(addr).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: text/plain")
        );
        if value(&body, "stocklet_projection_lag_events", &[]).is_some() {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "no projection lag series:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        value(
            &body,
            "stocklet_commands_total",
            &["aggregate_type=\"product\"", "outcome=\"executed\""]
        ),
        Some(1.0),
        "one product command executed:\n{body}"
    );
    assert_eq!(
        value(
            &body,
            "stocklet_command_duration_seconds_count",
            &["aggregate_type=\"product\""]
        ),
        Some(1.0),
        "its latency was observed:\n{body}"
    );
    assert_eq!(
        value(&body, "stocklet_projection_lag_events", &[]),
        Some(0.0),
        "the projection caught up:\n{body}"
    );
    let age = value(&body, "stocklet_projection_lag_seconds", &[]).unwrap();
    assert!((0.0..10.0).contains(&age), "lag of {age} s");
    assert!(
        value(&body, "stocklet_consumer_pending", &[]).is_some(),
        "consumer pending:\n{body}"
    );

    shutdown.cancel();
    running.await.unwrap().unwrap();
}
