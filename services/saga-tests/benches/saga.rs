//! `make bench-saga`: the place-order saga under load, end to end.
//!
//! It starts a private nats-server with the shipped config
//! (`sync_interval: always`) and a fresh PostgreSQL database, measures the
//! raw pipelined JetStream publish rate `P` on that server, then runs the
//! release build of the all-in-one `stocklet` binary as its own process and
//! drives it over gRPC with concurrent customers:
//!
//! 1. **max**: closed loop, `SAGA_BENCH_CUSTOMERS` customers each placing an
//!    order and waiting until the order read model shows it settled (polled
//!    every `SAGA_BENCH_POLL_MS`, 50 by default, so that the polling does not
//!    eat the machine), for `SAGA_BENCH_SECONDS`: the sustained approved
//!    orders per second;
//! 2. **half**: open loop at half that rate: latency p50/p95/p99 from
//!    PlaceOrder to the terminal status in the read model (polled every
//!    2 ms), and where the saga's time goes, hop by hop, from the orders'
//!    timelines.
//!
//! Messages appended per approved order are counted from the five saga
//! streams, so the physical limit is `L = P / messages per order`. The RSS
//! of every process and the CPU each used (a coarse profile: who spends the
//! machine's two cores) close the report. Every figure is one JSON object
//! per line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use stocklet_proto::stocklet::order::v1 as order;
use stocklet_proto::stocklet::order::v1::order_service_client::OrderServiceClient;
use stocklet_proto::stocklet::payment::v1 as payment;
use stocklet_proto::stocklet::payment::v1::payment_service_client::PaymentServiceClient;
use stocklet_proto::stocklet::product::v1 as product;
use stocklet_proto::stocklet::product::v1::product_service_client::ProductServiceClient;
use stocklet_proto::stocklet::user::v1 as user;
use stocklet_proto::stocklet::user::v1::user_service_client::UserServiceClient;
use stocklet_proto::stocklet::warehouse::v1 as warehouse;
use stocklet_proto::stocklet::warehouse::v1::warehouse_service_client::WarehouseServiceClient;
use stocklet_service_kit::{Identity, Secret};
use stocklet_test_support::{NatsServer, TestDb};
use tokio::sync::Mutex;
use tonic::transport::Channel;
use tonic::{Code, Request};

const INTERNAL_TOKEN: &str = "saga-bench-internal-token-0123456789abcdef";
/// The services of the all-in-one binary, in the order of `ports`.
const SERVICES: [&str; 8] = [
    "AUTH",
    "USER",
    "PRODUCT",
    "WAREHOUSE",
    "ORDER",
    "PAYMENT",
    "SHIPPING",
    "GATEWAY",
];
/// The streams the saga writes.
const SAGA_STREAMS: [&str; 5] = ["ORDER", "PRODUCT", "WAREHOUSE", "SHIPPING", "PAYMENT"];
/// Raw publishes kept in flight when measuring `P`.
const RAW_IN_FLIGHT: usize = 64;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn emit(figure: serde_json::Value) {
    println!("{figure}");
}

fn progress(message: &str) {
    eprintln!("bench-saga: {message}");
}

fn as_user<T>(identity: &Identity, message: T) -> Request<T> {
    let mut request = Request::new(message);
    identity.write_metadata(request.metadata_mut(), &Secret::new(INTERNAL_TOKEN));
    request
}

fn admin() -> Identity {
    Identity::admin("saga-bench-admin")
}

fn percentile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * (sorted.len() - 1) as f64).round() as usize;
    (sorted[rank.min(sorted.len() - 1)].as_secs_f64() * 1_000.0 * 10.0).round() / 10.0
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// The release `stocklet` binary `make bench-saga` builds first.
fn stocklet_binary() -> PathBuf {
    if let Ok(path) = std::env::var("STOCKLET_BIN") {
        return PathBuf::from(path);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target =
        std::env::var("CARGO_TARGET_DIR").map_or_else(|_| root.join("target"), PathBuf::from);
    let binary = target.join("release").join("stocklet");
    assert!(
        binary.exists(),
        "{} is missing: run `make bench-saga`, which builds it (cargo build --release --bin stocklet)",
        binary.display()
    );
    binary
}

/// Memory and CPU of one process, from `/proc`.
#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    rss_kib: u64,
    peak_rss_kib: u64,
    cpu_ticks: u64,
}

fn usage(pid: u32) -> Usage {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the
    // 14th field overall, stime the 15th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Usage {
        rss_kib: field("VmRSS:"),
        peak_rss_kib: field("VmHWM:"),
        cpu_ticks: ticks(11) + ticks(12),
    }
}

/// Every PostgreSQL server process on the machine (they serve this run).
fn postgres_pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "postgres")
        })
        .collect()
}

/// The processes whose CPU use the report shows.
struct Processes {
    stocklet: u32,
    nats: u32,
}

impl Processes {
    fn cpu(&self) -> BTreeMap<&'static str, u64> {
        BTreeMap::from([
            ("stocklet", usage(self.stocklet).cpu_ticks),
            ("nats-server", usage(self.nats).cpu_ticks),
            ("load generator", usage(std::process::id()).cpu_ticks),
            (
                "postgres",
                postgres_pids()
                    .into_iter()
                    .map(|p| usage(p).cpu_ticks)
                    .sum(),
            ),
        ])
    }
}

/// The stocklet process; killed on drop.
struct Stocklet(Child);

impl Drop for Stocklet {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

fn start_stocklet(
    nats: &NatsServer,
    db: &TestDb,
    ports: &[u16],
    data: &std::path::Path,
) -> Stocklet {
    let log = std::fs::File::create(data.join("stocklet.log")).unwrap();
    let mut command = Command::new(stocklet_binary());
    command
        .env("NATS_URL", nats.url())
        .envs(stocklet_test_support::nats_password_env())
        .env("DATABASE_URL", &db.url)
        .env("STOCKLET_INTERNAL_TOKEN", INTERNAL_TOKEN)
        .env("STOCKLET_DATA_DIR", data)
        .env("STOCKLET_SEED", "false")
        .env("RUST_LOG", "warn")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
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
    Stocklet(command.spawn().expect("the stocklet binary starts"))
}

async fn channel(port: u16) -> Channel {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let connected = Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await;
        match connected {
            Ok(channel) => return channel,
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "port {port} never answered: {error}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// `P`: raw JetStream publishes per second with `RAW_IN_FLIGHT` acks
/// outstanding, on a file stream of the same server.
async fn raw_pipelined_publish_rate(client: &async_nats::Client, messages: usize) -> f64 {
    let jetstream = async_nats::jetstream::new(client.clone());
    jetstream
        .create_stream(async_nats::jetstream::stream::Config {
            name: "BENCH_RAW".into(),
            subjects: vec!["bench.raw.>".into()],
            storage: async_nats::jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await
        .unwrap();
    let payload = vec![b'x'; 300];
    let started = Instant::now();
    let mut in_flight = VecDeque::with_capacity(RAW_IN_FLIGHT);
    for i in 0..messages {
        if in_flight.len() == RAW_IN_FLIGHT {
            let ack: async_nats::jetstream::context::PublishAckFuture =
                in_flight.pop_front().unwrap();
            ack.await.unwrap();
        }
        let subject = format!("bench.raw.{}", i % 256);
        in_flight.push_back(
            jetstream
                .publish(subject, payload.clone().into())
                .await
                .unwrap(),
        );
    }
    for ack in in_flight {
        ack.await.unwrap();
    }
    let rate = messages as f64 / started.elapsed().as_secs_f64();
    jetstream.delete_stream("BENCH_RAW").await.unwrap();
    rate
}

/// Messages stored so far in the saga's streams.
async fn saga_messages(client: &async_nats::Client) -> u64 {
    let jetstream = async_nats::jetstream::new(client.clone());
    let mut total = 0;
    for name in SAGA_STREAMS {
        let mut stream = jetstream.get_stream(name).await.unwrap();
        total += stream.info().await.unwrap().state.messages;
    }
    total
}

/// The gRPC clients the load generator uses.
#[derive(Clone)]
struct Clients {
    orders: OrderServiceClient<Channel>,
}

#[derive(Clone)]
struct Customer {
    identity: Identity,
}

async fn setup(
    ports: &BTreeMap<&str, u16>,
    products: usize,
    customers: usize,
) -> (Vec<String>, Vec<Customer>) {
    let mut product_client = ProductServiceClient::new(channel(ports["PRODUCT"]).await);
    let warehouse_client = WarehouseServiceClient::new(channel(ports["WAREHOUSE"]).await);
    let mut users = UserServiceClient::new(channel(ports["USER"]).await);
    let payments = PaymentServiceClient::new(channel(ports["PAYMENT"]).await);
    let mut product_ids = Vec::new();
    for i in 0..products {
        let created = product_client
            .create_product(as_user(
                &admin(),
                product::CreateProductRequest {
                    name: format!("Bench item {i}"),
                    description: "For the saga benchmark".into(),
                    price_cents: 100 + 37 * i as i64,
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .product
            .unwrap();
        product_ids.push(created.id);
    }
    for id in &product_ids {
        retry_not_found(|| {
            let mut client = warehouse_client.clone();
            let id = id.clone();
            async move {
                client
                    .add_stock(as_user(
                        &admin(),
                        warehouse::AddStockRequest {
                            product_id: id,
                            quantity: 1_000_000,
                        },
                    ))
                    .await
                    .map(drop)
            }
        })
        .await;
    }
    let mut registered = Vec::new();
    for i in 0..customers {
        let user = users
            .register_user(Request::new(user::RegisterUserRequest {
                first_name: "Bench".into(),
                last_name: format!("Customer{i}"),
                email: format!("bench-{}-{i}@example.com", uuid::Uuid::now_v7().simple()),
                password: "correct horse battery staple".into(),
            }))
            .await
            .unwrap()
            .into_inner()
            .user
            .unwrap();
        retry_not_found(|| {
            let mut client = payments.clone();
            let id = user.id.clone();
            async move {
                client
                    .credit_balance(as_user(
                        &admin(),
                        payment::CreditBalanceRequest {
                            customer_id: id,
                            amount_cents: 100_000_000,
                        },
                    ))
                    .await
                    .map(drop)
            }
        })
        .await;
        registered.push(Customer {
            identity: Identity::customer(user.id),
        });
    }
    (product_ids, registered)
}

/// Retries a call while the target is not there yet (a projection or a
/// reaction still on its way).
async fn retry_not_found<F, Fut>(call: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), tonic::Status>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match call().await {
            Ok(()) => return,
            Err(status) if status.code() == Code::NotFound && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(status) => panic!("setup failed: {status}"),
        }
    }
}

/// What one order did.
struct Outcome {
    order_id: String,
    approved: bool,
    latency: Duration,
}

/// Places one order and waits until the read model shows it settled,
/// polling every `poll`.
async fn one_order(
    clients: &Clients,
    customer: &Customer,
    products: &[String],
    pick: u64,
    poll: Duration,
) -> Outcome {
    let mut orders = clients.orders.clone();
    let first = (pick % products.len() as u64) as usize;
    let second = ((pick / 7 + 3) % products.len() as u64) as usize;
    let mut items = std::collections::HashMap::from([(products[first].clone(), 1)]);
    if pick.is_multiple_of(2) {
        items.insert(products[second].clone(), 1);
    }
    let started = Instant::now();
    let placed = orders
        .place_order(as_user(
            &customer.identity,
            order::PlaceOrderRequest { items, cart: None },
        ))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    loop {
        tokio::time::sleep(poll).await;
        let seen = orders
            .view_order(as_user(
                &customer.identity,
                order::ViewOrderRequest {
                    order_id: placed.id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .order
            .unwrap();
        use order::OrderStatus as S;
        match seen.status() {
            S::Approved | S::Completed => {
                return Outcome {
                    order_id: placed.id,
                    approved: true,
                    latency: started.elapsed(),
                };
            }
            S::Rejected | S::Cancelled => {
                return Outcome {
                    order_id: placed.id,
                    approved: false,
                    latency: started.elapsed(),
                };
            }
            _ => {}
        }
    }
}

/// Closed loop: every customer places an order and waits for it, again and
/// again, for `duration` after `warmup`. Returns the approved orders per
/// second over `duration`, and the latencies.
async fn closed_loop(
    clients: &Clients,
    customers: &[Customer],
    products: &Arc<Vec<String>>,
    warmup: Duration,
    duration: Duration,
    poll: Duration,
) -> (f64, Vec<Duration>, u64) {
    let counter = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let measure_from = started + warmup;
    let end = measure_from + duration;
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let approved = Arc::new(AtomicU64::new(0));
    let rejected = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for customer in customers {
        let (clients, customer, products) =
            (clients.clone(), customer.clone(), Arc::clone(products));
        let (counter, latencies, approved, rejected) = (
            Arc::clone(&counter),
            Arc::clone(&latencies),
            Arc::clone(&approved),
            Arc::clone(&rejected),
        );
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                let pick = counter.fetch_add(1, Ordering::Relaxed);
                let outcome = one_order(&clients, &customer, &products, pick, poll).await;
                let finished = Instant::now();
                if finished >= measure_from && finished < end {
                    if outcome.approved {
                        approved.fetch_add(1, Ordering::Relaxed);
                    } else {
                        rejected.fetch_add(1, Ordering::Relaxed);
                    }
                    latencies.lock().await.push(outcome.latency);
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let rate = approved.load(Ordering::Relaxed) as f64 / duration.as_secs_f64();
    let mut latencies = latencies.lock().await.clone();
    latencies.sort();
    (rate, latencies, rejected.load(Ordering::Relaxed))
}

/// Open loop: orders arrive at `rate` per second for `duration`, each from
/// the next customer, whatever the system's pace. Returns the latencies and
/// the order ids.
async fn open_loop(
    clients: &Clients,
    customers: &[Customer],
    products: &Arc<Vec<String>>,
    rate: f64,
    duration: Duration,
) -> (Vec<Duration>, u64, Vec<String>) {
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.1));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let end = Instant::now() + duration;
    let mut tasks = Vec::new();
    let mut pick = 1_000_000u64;
    while Instant::now() < end {
        ticker.tick().await;
        pick += 1;
        let customer = customers[(pick % customers.len() as u64) as usize].clone();
        let (clients, products) = (clients.clone(), Arc::clone(products));
        tasks.push(tokio::spawn(async move {
            one_order(
                &clients,
                &customer,
                &products,
                pick,
                Duration::from_millis(2),
            )
            .await
        }));
    }
    let mut latencies = Vec::new();
    let mut rejected = 0;
    let mut orders = Vec::new();
    for task in tasks {
        let outcome = task.await.unwrap();
        rejected += u64::from(!outcome.approved);
        latencies.push(outcome.latency);
        orders.push(outcome.order_id);
    }
    latencies.sort();
    (latencies, rejected, orders)
}

#[tokio::main]
async fn main() {
    let customers_n: usize = env_or("SAGA_BENCH_CUSTOMERS", 32);
    let products_n: usize = env_or("SAGA_BENCH_PRODUCTS", 50);
    let seconds: u64 = env_or("SAGA_BENCH_SECONDS", 20);
    let raw_messages: usize = env_or("SAGA_BENCH_RAW_MESSAGES", 20_000);
    let binary = stocklet_binary();
    progress(&format!(
        "{customers_n} customers, {products_n} products, {seconds} s per phase; binary {}",
        binary.display()
    ));

    let nats = NatsServer::start().await;
    nats.provision().await;
    let db = TestDb::create().await;
    let client = nats.client().await;

    progress("measuring P, the raw pipelined JetStream publish rate");
    let p = raw_pipelined_publish_rate(&client, raw_messages).await;
    emit(
        json!({"bench": "raw_pipelined_publish", "value": round2(p), "unit": "msgs/s",
        "in_flight": RAW_IN_FLIGHT, "note": "shipped nats-server.conf, sync_interval: always"}),
    );

    let data = tempfile::tempdir().unwrap();
    let ports = free_ports(SERVICES.len());
    let port_of: BTreeMap<&str, u16> = SERVICES
        .iter()
        .copied()
        .zip(ports.iter().copied())
        .collect();
    let stocklet = start_stocklet(&nats, &db, &ports, data.path());
    let processes = Processes {
        stocklet: stocklet.0.id(),
        nats: nats.pid(),
    };
    let clients = Clients {
        orders: OrderServiceClient::new(channel(port_of["ORDER"]).await),
    };
    progress("setting up products, stock and customers");
    let (products, customers) = setup(&port_of, products_n, customers_n).await;
    let products = Arc::new(products);

    progress("phase 1: closed loop, maximum sustained throughput");
    let messages_before = saga_messages(&client).await;
    let cpu_before = processes.cpu();
    let wall = Instant::now();
    let duration = Duration::from_secs(seconds);
    let (max_rate, max_latencies, max_rejected) = closed_loop(
        &clients,
        &customers,
        &products,
        Duration::from_secs(3),
        duration,
        Duration::from_millis(env_or("SAGA_BENCH_POLL_MS", 50)),
    )
    .await;
    let wall = wall.elapsed();
    let cpu_after = processes.cpu();
    // Let the reactions that follow an approval (stock consumed) land.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let messages = saga_messages(&client).await - messages_before;
    // Every order the closed loop placed (warm-up included) settled before
    // it returned; count them from the read model's view of the run.
    let orders_placed = placed_orders(&db).await;
    let per_order = messages as f64 / orders_placed.max(1) as f64;
    let limit = p / per_order;
    emit(
        json!({"bench": "saga_max_approved_orders", "value": round2(max_rate), "unit": "orders/s",
        "customers": customers_n, "rejected": max_rejected,
        "p50_ms": percentile_ms(&max_latencies, 0.5), "p99_ms": percentile_ms(&max_latencies, 0.99)}),
    );
    emit(
        json!({"bench": "saga_messages_per_order", "value": round2(per_order), "unit": "messages/order",
        "messages": messages, "orders": orders_placed,
        "note": "stream messages appended in the 5 saga streams; a multi-event commit is one message"}),
    );
    emit(
        json!({"bench": "saga_physical_limit", "value": round2(limit), "unit": "orders/s",
        "formula": "L = P / messages per order"}),
    );
    let ratio = max_rate / limit;
    emit(
        json!({"bench": "saga_throughput_vs_limit", "value": round2(ratio), "unit": "ratio",
        "target": ">= 0.5", "pass": ratio >= 0.5}),
    );
    let ticks_per_second = 100.0;
    let cpu: serde_json::Map<String, serde_json::Value> = cpu_after
        .iter()
        .map(|(name, after)| {
            let used =
                (after - cpu_before.get(name).copied().unwrap_or(0)) as f64 / ticks_per_second;
            ((*name).to_owned(), json!(round2(used / wall.as_secs_f64())))
        })
        .collect();
    emit(
        json!({"bench": "saga_cpu_profile", "unit": "cores busy during phase 1 (machine has 2)",
        "value": cpu}),
    );

    let half = (max_rate / 2.0).max(1.0);
    progress(&format!(
        "phase 2: open loop at {half:.1} orders/s (half the maximum)"
    ));
    let (latencies, rejected, orders) =
        open_loop(&clients, &customers, &products, half, duration).await;
    let p99 = percentile_ms(&latencies, 0.99);
    emit(
        json!({"bench": "saga_latency_at_half_max", "rate": round2(half), "unit": "ms",
        "orders": latencies.len(), "rejected": rejected,
        "p50": percentile_ms(&latencies, 0.5), "p95": percentile_ms(&latencies, 0.95), "p99": p99,
        "target": "p99 <= 100", "pass": p99 <= 100.0}),
    );

    emit(hop_profile(&clients, &orders).await);

    let stocklet_usage = usage(processes.stocklet);
    let nats_usage = usage(processes.nats);
    let loadgen_usage = usage(std::process::id());
    let mib = |kib: u64| round2(kib as f64 / 1024.0);
    emit(json!({"bench": "rss", "unit": "MiB", "value": {
        "stocklet (all 7 services + gateway)": {"rss": mib(stocklet_usage.rss_kib), "peak": mib(stocklet_usage.peak_rss_kib)},
        "nats-server": {"rss": mib(nats_usage.rss_kib), "peak": mib(nats_usage.peak_rss_kib)},
        "load generator": {"rss": mib(loadgen_usage.rss_kib), "peak": mib(loadgen_usage.peak_rss_kib)}},
        "stocklet_total_peak": mib(stocklet_usage.peak_rss_kib),
        "target": "Stocklet processes <= 300 MiB", "pass": stocklet_usage.peak_rss_kib <= 300 * 1024}));
    drop(stocklet);
}

/// Where a saga's time goes: for each step of the timeline (one event to
/// the next, by service and type), the median and p95 gap over a sample of
/// phase 2's orders. Commit times are the events' own, so this is the
/// profile of the saga's critical path.
async fn hop_profile(clients: &Clients, orders: &[String]) -> serde_json::Value {
    let mut gaps: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let step = (orders.len() / 100).max(1);
    for order_id in orders.iter().step_by(step) {
        let entries = clients
            .orders
            .clone()
            .view_order_timeline(as_user(
                &admin(),
                order::ViewOrderTimelineRequest {
                    order_id: order_id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .entries;
        let name = |e: &order::TimelineEntry| {
            format!(
                "{}:{}",
                e.service,
                e.event_type.trim_start_matches("stocklet.events.v1.")
            )
        };
        for pair in entries.windows(2) {
            let gap = (pair[1].occurred_at_ms - pair[0].occurred_at_ms) as f64;
            gaps.entry(format!("{} -> {}", name(&pair[0]), name(&pair[1])))
                .or_default()
                .push(gap);
        }
    }
    let hops: serde_json::Map<String, serde_json::Value> = gaps
        .into_iter()
        .map(|(hop, mut values)| {
            values.sort_by(f64::total_cmp);
            let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
            (
                hop,
                json!({"n": values.len(), "p50_ms": at(0.5), "p95_ms": at(0.95)}),
            )
        })
        .collect();
    json!({"bench": "saga_hop_profile", "unit": "ms between consecutive events of one saga",
        "value": hops})
}

/// Orders placed in this run (the bench's database holds nothing else).
async fn placed_orders(db: &TestDb) -> u64 {
    let (count,): (i64,) = sqlx::query_as(r#"SELECT count(*) FROM "order".orders"#)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    count.unsigned_abs()
}
