//! `Saga`: product, warehouse, order, payment and shipping on port-0
//! listeners against one nats-server and one database, with typed client
//! calls as a given identity and helpers to set up products, stock and
//! customers.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use es_core::{EventStore, JetStreamEventStore};
use prost::{Message, Name};
use stocklet_proto::stocklet::events::v1 as events;
use stocklet_proto::stocklet::order::v1 as order;
use stocklet_proto::stocklet::order::v1::order_service_client::OrderServiceClient;
use stocklet_proto::stocklet::payment::v1 as payment;
use stocklet_proto::stocklet::payment::v1::payment_service_client::PaymentServiceClient;
use stocklet_proto::stocklet::product::v1 as product;
use stocklet_proto::stocklet::product::v1::product_service_client::ProductServiceClient;
use stocklet_proto::stocklet::shipping::v1 as shipping;
use stocklet_proto::stocklet::shipping::v1::shipping_service_client::ShippingServiceClient;
use stocklet_proto::stocklet::warehouse::v1 as warehouse;
use stocklet_proto::stocklet::warehouse::v1::warehouse_service_client::WarehouseServiceClient;
use stocklet_service_kit::Identity;
use stocklet_service_kit::lifecycle::RunError;
use stocklet_service_kit::streams;
pub use stocklet_test_support::harness::as_user;
use stocklet_test_support::harness::{LISTEN_ADDR, common_config, eventually};
use stocklet_test_support::{NatsServer, RunningService, TestDb};
use tonic::Code;
use tonic::transport::Channel;

/// The flat shipping fee the order service adds.
pub const SHIPPING_FEE: i64 = 499;
/// Units one shipment carries.
pub const CAPACITY: i64 = 10;
/// How long a saga may take to settle in a test.
pub const SETTLE: Duration = Duration::from_secs(20);
/// How long a saga may take to settle after a restart: a stopping reactor
/// releases what it pulled at once, but an instance that died holding events
/// leaves them for the consumer's ack wait (30 s).
pub const SETTLE_AFTER_RESTART: Duration = Duration::from_secs(45);

pub fn admin() -> Identity {
    Identity::admin(uuid::Uuid::now_v7().to_string())
}

/// A registered customer.
pub struct Customer {
    pub id: String,
    pub identity: Identity,
}

pub struct Saga {
    pub nats: NatsServer,
    pub db: TestDb,
    pub store: JetStreamEventStore,
    pub products: ProductServiceClient<Channel>,
    pub warehouse: WarehouseServiceClient<Channel>,
    pub orders: OrderServiceClient<Channel>,
    pub payments: PaymentServiceClient<Channel>,
    pub shipping: ShippingServiceClient<Channel>,
    running: Vec<Running>,
}

/// One service of the saga, as a test starts and stops it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Product,
    Warehouse,
    Order,
    Payment,
    Shipping,
}

impl Service {
    /// Every service, in start order.
    pub const ALL: [Service; 5] = [
        Service::Product,
        Service::Warehouse,
        Service::Order,
        Service::Payment,
        Service::Shipping,
    ];
}

/// A started service of the saga.
struct Running {
    service: Service,
    running: RunningService<RunError>,
}

/// The read-model tables of the saga's services, as `"schema"."table"`.
async fn read_model_tables(db: &TestDb) -> Vec<String> {
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema, table_name FROM information_schema.tables
         WHERE table_schema IN ('product', 'warehouse', 'order', 'payment', 'shipping')
           AND table_type = 'BASE TABLE'
           AND table_name NOT IN ('es_checkpoints', '_sqlx_migrations')
         ORDER BY 1, 2",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    tables
        .into_iter()
        .map(|(schema, table)| format!("\"{schema}\".\"{table}\""))
        .collect()
}

/// Empties every read model and its checkpoints while the services are
/// stopped, so that their next start rebuilds everything from the streams.
pub async fn drop_read_models(db: &TestDb) {
    let tables = read_model_tables(db).await;
    assert!(!tables.is_empty());
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "TRUNCATE {}",
        tables.join(", ")
    )))
    .execute(&db.pool)
    .await
    .unwrap();
    for schema in ["product", "warehouse", "order", "payment", "shipping"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM \"{schema}\".es_checkpoints"
        )))
        .execute(&db.pool)
        .await
        .unwrap();
    }
}

/// A channel to nowhere, for a client whose service has not started yet.
fn unstarted() -> Channel {
    Channel::from_static("http://127.0.0.1:9").connect_lazy()
}

impl Saga {
    pub async fn spawn() -> Saga {
        let nats = NatsServer::start().await;
        let db = TestDb::create().await;
        Self::spawn_on(nats, db).await
    }

    /// Starts the five services on existing infrastructure (for restarts).
    pub async fn spawn_on(nats: NatsServer, db: TestDb) -> Saga {
        nats.provision().await;
        let store = stocklet_service_kit::lifecycle::event_store(nats.client().await);
        let mut saga = Saga {
            nats,
            db,
            store,
            products: ProductServiceClient::new(unstarted()),
            warehouse: WarehouseServiceClient::new(unstarted()),
            orders: OrderServiceClient::new(unstarted()),
            payments: PaymentServiceClient::new(unstarted()),
            shipping: ShippingServiceClient::new(unstarted()),
            running: Vec::new(),
        };
        // One after the other: each answered call proves that service's
        // streams, consumers and tables are ready.
        for service in Service::ALL {
            saga.start_service(service).await;
        }
        saga
    }

    /// Starts one service (again) and points its client at it.
    pub async fn start_service(&mut self, service: Service) {
        assert!(
            self.running.iter().all(|r| r.service != service),
            "{service:?} is already running"
        );
        let common = common_config(self.nats.url(), &self.db);
        let listen_addr = LISTEN_ADDR.to_owned();
        let running = match service {
            Service::Product => {
                let config = stocklet_product::Config {
                    common,
                    listen_addr,
                };
                let (running, channel) = RunningService::start(|listener, shutdown| {
                    stocklet_product::run(config, listener, shutdown)
                })
                .await;
                self.products = ProductServiceClient::new(channel);
                self.products
                    .get_service_info(product::GetServiceInfoRequest {})
                    .await
                    .unwrap();
                running
            }
            Service::Warehouse => {
                let config = stocklet_warehouse::Config {
                    common,
                    listen_addr,
                };
                let (running, channel) = RunningService::start(|listener, shutdown| {
                    stocklet_warehouse::run(config, listener, shutdown)
                })
                .await;
                self.warehouse = WarehouseServiceClient::new(channel);
                self.warehouse
                    .get_service_info(warehouse::GetServiceInfoRequest {})
                    .await
                    .unwrap();
                running
            }
            Service::Order => {
                let config = stocklet_order::Config {
                    common,
                    listen_addr,
                    shipping_fee: stocklet_order::domain::Cents::parse(SHIPPING_FEE).unwrap(),
                    stuck_saga_timeout: Duration::from_secs(30),
                };
                let (running, channel) = RunningService::start(|listener, shutdown| {
                    stocklet_order::run(config, listener, shutdown)
                })
                .await;
                self.orders = OrderServiceClient::new(channel);
                self.orders
                    .get_service_info(order::GetServiceInfoRequest {})
                    .await
                    .unwrap();
                running
            }
            Service::Payment => {
                let config = stocklet_payment::Config {
                    common,
                    listen_addr,
                };
                let (running, channel) = RunningService::start(|listener, shutdown| {
                    stocklet_payment::run(config, listener, shutdown)
                })
                .await;
                self.payments = PaymentServiceClient::new(channel);
                self.payments
                    .get_service_info(payment::GetServiceInfoRequest {})
                    .await
                    .unwrap();
                running
            }
            Service::Shipping => {
                let config = stocklet_shipping::Config {
                    common,
                    listen_addr,
                    shipment_capacity: stocklet_shipping::domain::Capacity::parse(CAPACITY)
                        .unwrap(),
                };
                let (running, channel) = RunningService::start(|listener, shutdown| {
                    stocklet_shipping::run(config, listener, shutdown)
                })
                .await;
                self.shipping = ShippingServiceClient::new(channel);
                self.shipping
                    .get_service_info(shipping::GetServiceInfoRequest {})
                    .await
                    .unwrap();
                running
            }
        };
        self.running.push(Running { service, running });
    }

    /// Stops one service gracefully; the others keep running.
    pub async fn stop_service(&mut self, service: Service) {
        let index = self
            .running
            .iter()
            .position(|r| r.service == service)
            .unwrap_or_else(|| panic!("{service:?} is not running"));
        self.running.remove(index).running.stop().await;
    }

    /// Asks to cancel the order as `customer`; the order as answered.
    pub async fn cancel(
        &self,
        customer: &Customer,
        order_id: &str,
        reason: &str,
    ) -> Result<order::Order, tonic::Status> {
        self.orders
            .clone()
            .cancel_order(as_user(
                &customer.identity,
                order::CancelOrderRequest {
                    order_id: order_id.to_owned(),
                    reason: reason.to_owned(),
                },
            ))
            .await
            .map(|answer| answer.into_inner().order.unwrap_or_default())
    }

    /// Dispatches the shipment as an admin (the request named
    /// `request_id`), once shipping has cleared it: it hears that the order
    /// was approved a moment after the order shows APPROVED.
    pub async fn dispatch(
        &self,
        shipment_id: &str,
        request_id: &str,
    ) -> Result<shipping::Shipment, tonic::Status> {
        let deadline = Instant::now() + SETTLE;
        loop {
            let mut request = as_user(
                &admin(),
                shipping::DispatchShipmentRequest {
                    shipment_id: shipment_id.to_owned(),
                },
            );
            if let Ok(value) = request_id.parse() {
                request.metadata_mut().insert("x-request-id", value);
            }
            match self.shipping.clone().dispatch_shipment(request).await {
                Err(status)
                    if status.message().contains("not paid") && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                answer => return answer.map(|r| r.into_inner().shipment.unwrap_or_default()),
            }
        }
    }

    /// Kills one service (as `kill -9` would); the others keep running.
    pub async fn kill_service(&mut self, service: Service) {
        let index = self
            .running
            .iter()
            .position(|r| r.service == service)
            .unwrap_or_else(|| panic!("{service:?} is not running"));
        self.running.remove(index).running.kill().await;
    }

    /// Pauses one durable consumer of `stream` on the server for `pause`:
    /// the consumer lags as if its service were overloaded or partitioned.
    pub async fn pause_consumer(&self, stream: &str, consumer: &str, pause: Duration) {
        let until = time::OffsetDateTime::now_utc() + pause;
        self.nats
            .jetstream()
            .await
            .get_stream(stream)
            .await
            .unwrap()
            .pause_consumer(consumer, until)
            .await
            .unwrap();
    }

    /// Stops every service gracefully, after checking that no consumer
    /// gave up on an event.
    pub async fn stop(self) {
        self.assert_no_dead_letters().await;
        drop(self.shut_down().await);
    }

    /// Stops every service gracefully and hands back the infrastructure.
    pub async fn shut_down(mut self) -> (NatsServer, TestDb) {
        // In reverse start order, so no service outlives one it calls.
        while let Some(started) = self.running.pop() {
            started.running.stop().await;
        }
        (self.nats, self.db)
    }

    /// No consumer dead-lettered anything: every saga step succeeded or was
    /// retried to success.
    pub async fn assert_no_dead_letters(&self) {
        let dead = self.dead_letters().await;
        assert!(dead.is_empty(), "events were dead-lettered: {dead:#?}");
    }

    /// What the dead-letter stream holds: (consumer, error) per event.
    pub async fn dead_letters(&self) -> Vec<(String, String)> {
        let name = streams::DEADLETTER.definition().unwrap().stream_ref().name;
        let mut stream = self.nats.jetstream().await.get_stream(name).await.unwrap();
        let state = stream.info().await.unwrap().state.clone();
        let conventions = stocklet_service_kit::lifecycle::conventions();
        let mut dead = Vec::new();
        for sequence in state.first_sequence..=state.last_sequence {
            if state.messages == 0 {
                break;
            }
            let Ok(message) = stream.get_raw_message(sequence).await else {
                continue;
            };
            let header = |name: &str| {
                message
                    .headers
                    .get(name)
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            };
            dead.push((
                header(conventions.header(es_core::envelope::Header::DeadLetterConsumer)),
                header(conventions.header(es_core::envelope::Header::DeadLetterError)),
            ));
        }
        dead
    }

    /// Every reactor's durable consumer: (stream, consumer).
    pub fn reactor_consumers() -> Vec<(&'static str, &'static str)> {
        let mut consumers = vec![
            ("ORDER", stocklet_product::ORDER_CONSUMER),
            ("PRODUCT", stocklet_warehouse::PRODUCT_CONSUMER),
            ("USER", stocklet_payment::USER_CONSUMER),
        ];
        consumers
            .extend(stocklet_warehouse::SAGA_CONSUMERS.map(|(stream, name)| (stream.name, name)));
        consumers.extend(stocklet_order::SAGA_CONSUMERS.map(|(stream, name)| (stream.name, name)));
        consumers
            .extend(stocklet_payment::SAGA_CONSUMERS.map(|(stream, name)| (stream.name, name)));
        consumers
            .extend(stocklet_shipping::SAGA_CONSUMERS.map(|(stream, name)| (stream.name, name)));
        consumers
    }

    /// Waits until every reactor has handled (and acked) everything. Bounded
    /// by the restart bound: an event a stopped instance still held comes
    /// back only after the ack wait.
    pub async fn await_reactors_idle(&self) {
        let jetstream = self.nats.jetstream().await;
        let deadline = Instant::now() + SETTLE_AFTER_RESTART;
        'wait: loop {
            assert!(Instant::now() < deadline, "reactors never caught up");
            for (stream, name) in Self::reactor_consumers() {
                let mut consumer: async_nats::jetstream::consumer::PullConsumer = jetstream
                    .get_stream(stream)
                    .await
                    .unwrap()
                    .get_consumer(name)
                    .await
                    .unwrap();
                let info = consumer.info().await.unwrap();
                if info.num_pending > 0 || info.num_ack_pending > 0 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue 'wait;
                }
            }
            return;
        }
    }

    /// A new product at `price_cents` with `units` on hand.
    pub async fn product(&self, price_cents: i64, units: i64) -> String {
        let created = self
            .products
            .clone()
            .create_product(as_user(
                &admin(),
                product::CreateProductRequest {
                    name: "Widget".into(),
                    description: "A widget".into(),
                    price_cents,
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .product
            .unwrap();
        if units > 0 {
            self.add_stock(&created.id, units).await;
        }
        created.id
    }

    /// Adds units once the warehouse has opened the product's stock.
    pub async fn add_stock(&self, product_id: &str, units: i64) {
        let deadline = Instant::now() + SETTLE;
        loop {
            let added = self
                .warehouse
                .clone()
                .add_stock(as_user(
                    &admin(),
                    warehouse::AddStockRequest {
                        product_id: product_id.into(),
                        quantity: units,
                    },
                ))
                .await;
            match added {
                Ok(_) => return,
                Err(status) if status.code() == Code::NotFound && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(status) => panic!("cannot add stock: {status}"),
            }
        }
    }

    pub async fn delete_product(&self, product_id: &str) {
        self.products
            .clone()
            .delete_product(as_user(
                &admin(),
                product::DeleteProductRequest {
                    id: product_id.into(),
                },
            ))
            .await
            .unwrap();
    }

    /// The product's stock: (on hand, reserved).
    pub async fn stock(&self, product_id: &str) -> (i64, i64) {
        let stock = self
            .warehouse
            .clone()
            .view_product_stock(as_user(
                &admin(),
                warehouse::ViewProductStockRequest {
                    product_id: product_id.into(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .stock
            .unwrap();
        (stock.on_hand, stock.reserved)
    }

    /// Waits until the product's stock is `expected` (on hand, reserved).
    pub async fn await_stock(&self, product_id: &str, expected: (i64, i64)) {
        let what = format!("stock of {product_id} becoming {expected:?}");
        eventually(SETTLE, what, async || {
            let stock = self.stock(product_id).await;
            if stock == expected {
                Ok(())
            } else {
                Err(stock)
            }
        })
        .await
    }

    /// A registered customer with `balance_cents` on their balance.
    pub async fn customer(&self, balance_cents: i64) -> Customer {
        let id = uuid::Uuid::now_v7().to_string();
        self.publish(
            streams::USER,
            "user",
            &id,
            events::UserRegistered {
                user_id: id.clone(),
                email: format!("{id}@example.com"),
                first_name: "Ada".into(),
                last_name: "Lovelace".into(),
                occurred_at_ms: es_core::envelope::now_ms(),
                ..Default::default()
            },
        )
        .await;
        // The payment service opens the balance when it sees the user.
        let deadline = Instant::now() + SETTLE;
        loop {
            let viewed = self
                .payments
                .clone()
                .view_balance(as_user(
                    &admin(),
                    payment::ViewBalanceRequest {
                        customer_id: id.clone(),
                    },
                ))
                .await;
            match viewed {
                Ok(_) => break,
                Err(status) if status.code() == Code::NotFound && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(status) => panic!("the balance did not open: {status}"),
            }
        }
        if balance_cents > 0 {
            self.payments
                .clone()
                .credit_balance(as_user(
                    &admin(),
                    payment::CreditBalanceRequest {
                        customer_id: id.clone(),
                        amount_cents: balance_cents,
                    },
                ))
                .await
                .unwrap();
        }
        Customer {
            identity: Identity::customer(id.clone()),
            id,
        }
    }

    /// The customer's balance in cents.
    pub async fn balance(&self, customer: &Customer) -> i64 {
        self.payments
            .clone()
            .view_balance(as_user(
                &admin(),
                payment::ViewBalanceRequest {
                    customer_id: customer.id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .balance
            .unwrap()
            .balance_cents
    }

    /// Waits until the customer's balance is `expected`.
    pub async fn await_balance(&self, customer: &Customer, expected: i64) {
        let what = format!("balance becoming {expected}");
        eventually(SETTLE, what, async || {
            let balance = self.balance(customer).await;
            if balance == expected {
                Ok(())
            } else {
                Err(balance)
            }
        })
        .await
    }

    /// Places an order as `customer`; returns it as placed.
    pub async fn place(&self, customer: &Customer, items: &[(&str, i64)]) -> order::Order {
        self.orders
            .clone()
            .place_order(as_user(
                &customer.identity,
                order::PlaceOrderRequest {
                    items: items
                        .iter()
                        .map(|(product, quantity)| ((*product).to_owned(), *quantity))
                        .collect(),
                    cart: None,
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .order
            .unwrap()
    }

    pub async fn view_order(&self, customer: &Customer, order_id: &str) -> order::Order {
        self.try_view_order(customer, order_id)
            .await
            .unwrap_or_else(|| panic!("order {order_id} not found"))
    }

    /// The order as its read model shows it, or `None` while the read model
    /// does not hold it yet (after an outage, say).
    pub async fn try_view_order(
        &self,
        customer: &Customer,
        order_id: &str,
    ) -> Option<order::Order> {
        let viewed = self
            .orders
            .clone()
            .view_order(as_user(
                &customer.identity,
                order::ViewOrderRequest {
                    order_id: order_id.into(),
                },
            ))
            .await;
        match viewed {
            Ok(response) => response.into_inner().order,
            Err(status) if status.code() == tonic::Code::NotFound => None,
            Err(status) => panic!("viewing order {order_id}: {status:?}"),
        }
    }

    /// Waits until the order reaches `status`; returns it then.
    pub async fn await_status(
        &self,
        customer: &Customer,
        order_id: &str,
        status: order::OrderStatus,
    ) -> order::Order {
        let what = format!("order {order_id} becoming {status:?}");
        eventually(SETTLE, what, async || {
            let order = self.view_order(customer, order_id).await;
            if order.status() == status {
                Ok(order)
            } else {
                Err(order)
            }
        })
        .await
    }

    /// Waits until the order is in a final or resting state (APPROVED,
    /// REJECTED, COMPLETED or CANCELLED); returns it then.
    pub async fn await_settled(&self, customer: &Customer, order_id: &str) -> order::Order {
        self.await_settled_within(customer, order_id, SETTLE).await
    }

    /// [`Saga::await_settled`] with a bound of its own.
    pub async fn await_settled_within(
        &self,
        customer: &Customer,
        order_id: &str,
        bound: Duration,
    ) -> order::Order {
        use order::OrderStatus as S;
        let deadline = Instant::now() + bound;
        loop {
            let order = self.try_view_order(customer, order_id).await;
            if let Some(order) = &order
                && matches!(
                    order.status(),
                    S::Approved | S::Rejected | S::Completed | S::Cancelled
                )
            {
                return order.clone();
            }
            if Instant::now() >= deadline {
                let dead = self.dead_letters().await;
                panic!(
                    "order {order_id} is still {:?}; dead letters: {dead:#?}",
                    order.map(|order| order.status())
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn shipment(&self, shipment_id: &str) -> shipping::Shipment {
        self.shipping
            .clone()
            .view_shipment(as_user(
                &admin(),
                shipping::ViewShipmentRequest {
                    shipment_id: shipment_id.into(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .shipment
            .unwrap()
    }

    /// Waits until the shipment is `status`.
    pub async fn await_shipment(&self, shipment_id: &str, status: shipping::ShipmentStatus) {
        let what = format!("shipment {shipment_id} becoming {status:?}");
        eventually(SETTLE, what, async || {
            let request = shipping::ViewShipmentRequest {
                shipment_id: shipment_id.into(),
            };
            let viewed = self
                .shipping
                .clone()
                .view_shipment(as_user(&admin(), request))
                .await;
            match viewed {
                Ok(found)
                    if found.get_ref().shipment.as_ref().map(|s| s.status()) == Some(status) =>
                {
                    Ok(())
                }
                other => Err(other),
            }
        })
        .await
    }

    /// Every event of one aggregate: (event type, correlation id).
    pub async fn history(
        &self,
        definition: streams::Stream,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Vec<(String, Option<String>)> {
        let stream = definition.stream_ref();
        let subject = stream.subject(aggregate_type, aggregate_id);
        self.store
            .load(&stream, &subject, 0)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.raw.event_type, e.meta.correlation_id))
            .collect()
    }

    /// Every read model of the five services: each table's rows as sorted
    /// JSON, by `schema.table` (checkpoints and migrations left out).
    pub async fn read_models(&self) -> BTreeMap<String, Vec<String>> {
        let mut models = BTreeMap::new();
        for table in read_model_tables(&self.db).await {
            let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT to_jsonb(t)::text FROM {table} t ORDER BY 1"
            )))
            .fetch_all(&self.db.pool)
            .await
            .unwrap();
            models.insert(table, rows.into_iter().map(|(row,)| row).collect());
        }
        models
    }

    /// Appends an event to another service's stream, as that service would.
    pub async fn publish<E: Message + Name>(
        &self,
        definition: streams::Stream,
        aggregate_type: &str,
        aggregate_id: &str,
        event: E,
    ) {
        let stream = definition.stream_ref();
        es_core::testing::append_event(&self.store, &stream, aggregate_type, aggregate_id, event)
            .await
            .unwrap();
    }
}
