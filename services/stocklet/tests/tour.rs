//! The README's curl tour, run for real: the all-in-one `stocklet` binary on
//! a private nats-server and a fresh database, with demo seeding on, and
//! `scripts/tour.sh` against its gateway. Then a restart on the same data
//! proves the seed adds nothing the second time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

const INTERNAL_TOKEN: &str = "tour-test-internal-token";
/// The admin the test reads as (any id: only the role and token matter).
const ADMIN_ID: &str = "00000000-0000-8000-8000-000000000001";
const SERVICES: [&str; 7] = [
    "AUTH",
    "USER",
    "PRODUCT",
    "WAREHOUSE",
    "ORDER",
    "PAYMENT",
    "SHIPPING",
];
/// How long start-up (streams, migrations) and seeding may take.
const START: Duration = Duration::from_secs(120);

/// Loopback ports nothing listens on (held together, so they differ).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// One run of the `stocklet` binary; killed on drop.
struct Stocklet {
    child: Child,
    log: PathBuf,
}

impl Stocklet {
    fn start(nats: &NatsServer, db: &TestDb, ports: &[u16], data_dir: &std::path::Path) -> Self {
        let log = data_dir.join(format!(
            "stocklet-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let out = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_stocklet"));
        command
            .env("NATS_URL", nats.url())
            .env("DATABASE_URL", &db.url)
            .env("STOCKLET_INTERNAL_TOKEN", INTERNAL_TOKEN)
            .env("STOCKLET_SEED", "true")
            .env("STOCKLET_DATA_DIR", data_dir)
            .env("STOCKLET_GATEWAY_ADDR", format!("127.0.0.1:{}", ports[7]))
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            // The tour must work with the demo admin's defaults.
            .env_remove("STOCKLET_ADMIN_EMAIL")
            .env_remove("STOCKLET_ADMIN_PASSWORD")
            .env_remove("STOCKLET_JWT_KEY_FILE")
            .env_remove("STOCKLET_JWT_KEY_PEM")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        for (service, port) in SERVICES.iter().zip(ports) {
            command
                .env(
                    format!("STOCKLET_{service}_ADDR"),
                    format!("127.0.0.1:{port}"),
                )
                .env(
                    format!("STOCKLET_{service}_URL"),
                    format!("http://127.0.0.1:{port}"),
                );
        }
        let child = command.spawn().expect("the stocklet binary starts");
        Stocklet { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("stocklet exited with {status}; its log:\n{}", self.log());
        }
    }

    /// Waits until `/readyz` answers 200.
    fn await_ready(&mut self, gateway: &str) {
        let deadline = Instant::now() + START;
        loop {
            self.assert_running();
            let ready = Command::new("curl")
                .args(["-fsS", "--max-time", "2", &format!("{gateway}/readyz")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("curl is installed (the tour needs it too)");
            if ready.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the gateway never became ready; stocklet's log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits for the seed's outcome; returns its log line.
    fn await_seeded(&mut self) -> String {
        let deadline = Instant::now() + START;
        loop {
            self.assert_running();
            let log = self.log();
            if let Some(line) = log.lines().find(|l| l.contains("demo data seeded")) {
                return line.to_owned();
            }
            assert!(
                !log.contains("seeding demo data failed"),
                "seeding failed; stocklet's log:\n{log}"
            );
            assert!(
                Instant::now() < deadline,
                "seeding did not finish; stocklet's log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM, as Ctrl-C would; waits for a clean exit.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "stocklet stopped with {status}; its log:\n{}",
                    self.log()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "stocklet did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Stocklet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
