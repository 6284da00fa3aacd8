//! The README's curl tour, run for real: the all-in-one `stocklet` binary on
//! a private nats-server and a fresh database, with demo seeding on, and
//! `scripts/tour.sh` against its gateway. Then a restart on the same data
//! proves the seed adds nothing the second time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use stocklet_proto::stocklet::payment::v1 as payment;
use stocklet_proto::stocklet::payment::v1::payment_service_client::PaymentServiceClient;
use stocklet_proto::stocklet::product::v1 as product;
use stocklet_proto::stocklet::product::v1::product_service_client::ProductServiceClient;
use stocklet_proto::stocklet::user::v1 as user;
use stocklet_proto::stocklet::user::v1::user_service_client::UserServiceClient;
use stocklet_proto::stocklet::warehouse::v1 as warehouse;
use stocklet_proto::stocklet::warehouse::v1::warehouse_service_client::WarehouseServiceClient;
use stocklet_service_kit::{Identity, Secret};
use stocklet_test_support::{NatsServer, TestDb, workspace_root};
use tonic::Request;

use crate::support::{INTERNAL_TOKEN, Stocklet, free_ports};

/// The admin the test reads as (any id: only the role and token matter).
const ADMIN_ID: &str = "00000000-0000-8000-8000-000000000001";

/// What the demo data looks like from the services: users, products, the
/// seeded customers' balances and the products' stock on hand.
#[derive(Debug, PartialEq)]
struct Counts {
    users: usize,
    products: Vec<(String, i64)>,
    balances: Vec<i64>,
}

fn admin_request<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    Identity::admin(ADMIN_ID).write_metadata(request.metadata_mut(), &Secret::new(INTERNAL_TOKEN));
    request
}

async fn counts(ports: &[u16]) -> Counts {
    let url = |port: u16| format!("http://127.0.0.1:{port}");
    let mut users = UserServiceClient::connect(url(ports[1])).await.unwrap();
    let listed = users
        .list_users(admin_request(user::ListUsersRequest {
            page_size: 100,
            page_token: String::new(),
        }))
        .await
        .unwrap()
        .into_inner();
    let mut balances = Vec::new();
    let mut payments = PaymentServiceClient::connect(url(ports[5])).await.unwrap();
    for email in ["ada@example.com", "grace@example.com"] {
        let id = &listed
            .users
            .iter()
            .find(|u| u.email == email)
            .unwrap_or_else(|| panic!("{email} was seeded"))
            .id;
        let balance = payments
            .view_balance(admin_request(payment::ViewBalanceRequest {
                customer_id: id.clone(),
            }))
            .await
            .unwrap()
            .into_inner()
            .balance
            .unwrap();
        balances.push(balance.balance_cents);
    }
    let mut catalogue = ProductServiceClient::connect(url(ports[2])).await.unwrap();
    let mut stock = WarehouseServiceClient::connect(url(ports[3]))
        .await
        .unwrap();
    let mut products = Vec::new();
    for listed in catalogue
        .view_products(product::ViewProductsRequest {
            page_size: 100,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .products
    {
        let on_hand = stock
            .view_product_stock(warehouse::ViewProductStockRequest {
                product_id: listed.id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .stock
            .unwrap()
            .on_hand;
        products.push((listed.name, on_hand));
    }
    Counts {
        users: listed.users.len(),
        products,
        balances,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_curl_tour_passes_on_the_seeded_stack_and_a_restart_seeds_nothing() {
    let nats = NatsServer::start().await;
    nats.provision().await; // as `stocklet provision` does
    let db = TestDb::create().await;
    let data_dir =
        std::env::temp_dir().join(format!("stocklet-tour-{}-{}", std::process::id(), db.name));
    std::fs::create_dir_all(&data_dir).unwrap();
    let ports = free_ports(8);
    let gateway = format!("http://127.0.0.1:{}", ports[7]);

    // First start: seeds everything.
    let mut stocklet = Stocklet::start(&nats, &db, &ports, &data_dir);
    stocklet.await_ready(&gateway);
    let seeded = stocklet.await_seeded();
    assert!(
        seeded.contains(
            "products_created: 4, products_stocked: 4, customers_registered: 2, balances_credited: 2"
        ),
        "the first start seeds the whole demo: {seeded}"
    );
    let first = counts(&ports).await;
    assert_eq!(first.users, 2, "{first:?}");
    assert_eq!(first.balances, vec![100_000, 50_000]);
    assert_eq!(first.products.len(), 4, "{first:?}");
    assert!(first.products.iter().all(|(_, on_hand)| *on_hand > 0));

    // The tour, exactly as a newcomer runs it.
    let tour = Command::new("bash")
        .arg(workspace_root().join("scripts/tour.sh"))
        .arg(&gateway)
        .current_dir(workspace_root())
        .env_remove("STOCKLET_ADMIN_EMAIL")
        .env_remove("STOCKLET_ADMIN_PASSWORD")
        .output()
        .expect("bash runs");
    let stderr = String::from_utf8_lossy(&tour.stderr);
    assert!(
        tour.status.success(),
        "scripts/tour.sh failed:\n{stderr}\nstdout:\n{}\nstocklet's log (tail):\n{}",
        String::from_utf8_lossy(&tour.stdout),
        stocklet
            .log()
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(stderr.contains("tour: OK"), "{stderr}");
    let after_tour = counts(&ports).await;
    assert_eq!(after_tour.users, 3, "the tour registered one customer");
    stocklet.stop();

    // Second start on the same data: nothing new.
    let mut stocklet = Stocklet::start(&nats, &db, &ports, &data_dir);
    stocklet.await_ready(&gateway);
    let seeded = stocklet.await_seeded();
    assert!(
        seeded.contains(
            "products_created: 0, products_stocked: 0, customers_registered: 0, balances_credited: 0"
        ),
        "a second start seeds nothing: {seeded}"
    );
    assert_eq!(counts(&ports).await, after_tour);
    stocklet.stop();
    let _ = std::fs::remove_dir_all(&data_dir);
}
