//! `TestApp`: one order service on a port-0 listener, its own nats-server
//! and its own database, with typed client calls as a given identity, and
//! a repository on the same stream to drive orders through saga states
//! (the saga's reactions arrive in the next issue).

use std::time::Duration;

use es_core::{AggregateId, CommandContext, JetStreamEventStore, Repository};
use stocklet_order::domain::{
    Cents, Order, OrderCommand, ProductId, Quantity, QuotedLine, SagaInput,
};
use stocklet_order::{Config, DEFAULT_SHIPPING_FEE_CENTS, DEFAULT_STUCK_SAGA_TIMEOUT_MS, run};
use stocklet_proto::stocklet::order::v1 as pb;
use stocklet_proto::stocklet::order::v1::order_service_client::OrderServiceClient;
use stocklet_service_kit::config::CommonConfig;
use stocklet_service_kit::lifecycle::RunError;
use stocklet_service_kit::streams;
use stocklet_service_kit::{Identity, Secret};
use stocklet_test_support::{NatsServer, RunningService, TestDb};
use tonic::transport::Channel;
use tonic::{Request, Status};

pub const INTERNAL_TOKEN: &str = "test-internal-token";
pub const P1: &str = "0192f0c1-0000-7000-8000-000000000001";
pub const P2: &str = "0192f0c1-0000-7000-8000-000000000002";
pub const P3: &str = "0192f0c1-0000-7000-8000-000000000003";

pub struct TestApp {
    pub nats: NatsServer,
    pub db: TestDb,
    pub client: OrderServiceClient<Channel>,
    pub repository: Repository<Order, JetStreamEventStore>,
    service: RunningService<RunError>,
}

pub fn admin() -> Identity {
    Identity::admin("admin-1")
}

pub fn alice() -> Identity {
    Identity::customer("alice")
}

pub fn bob() -> Identity {
    Identity::customer("bob")
}

/// A request carrying `identity` the way the gateway sends it.
pub fn as_user<T>(identity: &Identity, message: T) -> Request<T> {
    let mut request = Request::new(message);
    identity.write_metadata(request.metadata_mut(), &Secret::new(INTERNAL_TOKEN));
    request
}

pub fn cart(items: &[(&str, i64)]) -> pb::Cart {
    pb::Cart {
        items: items.iter().map(|(id, q)| ((*id).to_owned(), *q)).collect(),
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        let nats = NatsServer::start().await;
        let db = TestDb::create().await;
        Self::spawn_on(nats, db).await
    }

    /// Starts the service on existing infrastructure (for restarts).
    pub async fn spawn_on(nats: NatsServer, db: TestDb) -> TestApp {
        let config = Config {
            common: CommonConfig {
                nats_url: nats.url(),
                database_url: Secret::new(db.url.clone()),
                internal_token: Secret::new(INTERNAL_TOKEN),
                stream_replicas: 1,
                db_pool_size: stocklet_service_kit::config::DEFAULT_DB_POOL_SIZE,
            },
            listen_addr: "127.0.0.1:0".into(),
            shipping_fee: Cents::parse(DEFAULT_SHIPPING_FEE_CENTS).unwrap(),
            stuck_saga_timeout: Duration::from_millis(DEFAULT_STUCK_SAGA_TIMEOUT_MS as u64),
        };
        let (service, channel) =
            RunningService::start(|listener, shutdown| run(config, listener, shutdown)).await;
        let stream = streams::ORDER.definition().unwrap().stream_ref();
        let repository = Repository::new(JetStreamEventStore::new(nats.client().await), stream);
        TestApp {
            nats,
            db,
            client: OrderServiceClient::new(channel),
            repository,
            service,
        }
    }

    /// Stops the service gracefully and hands back its infrastructure.
    pub async fn stop(self) -> (NatsServer, TestDb) {
        self.service.stop().await;
        (self.nats, self.db)
    }

    pub async fn place(
        &self,
        identity: &Identity,
        items: &[(&str, i64)],
    ) -> Result<pb::Order, Status> {
        let request = pb::PlaceOrderRequest {
            cart: Some(cart(items)),
        };
        let response = self
            .client
            .clone()
            .place_order(as_user(identity, request))
            .await?;
        Ok(response.into_inner().order.unwrap())
    }

    pub async fn view(&self, identity: &Identity, order_id: &str) -> Result<pb::Order, Status> {
        let request = pb::ViewOrderRequest {
            order_id: order_id.into(),
        };
        Ok(self
            .client
            .clone()
            .view_order(as_user(identity, request))
            .await?
            .into_inner()
            .order
            .unwrap())
    }

    pub async fn list(
        &self,
        identity: &Identity,
        customer_id: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<pb::ViewOrdersResponse, Status> {
        let request = pb::ViewOrdersRequest {
            page_size,
            page_token: page_token.into(),
            customer_id: customer_id.into(),
        };
        Ok(self
            .client
            .clone()
            .view_orders(as_user(identity, request))
            .await?
            .into_inner())
    }

    pub async fn cancel(
        &self,
        identity: &Identity,
        order_id: &str,
        reason: &str,
    ) -> Result<pb::Order, Status> {
        let request = pb::CancelOrderRequest {
            order_id: order_id.into(),
            reason: reason.into(),
        };
        Ok(self
            .client
            .clone()
            .cancel_order(as_user(identity, request))
            .await?
            .into_inner()
            .order
            .unwrap())
    }

    /// Records a saga step's outcome on an order, as the saga's reactions
    /// will (in the order's saga: its id is the correlation id), and waits
    /// until ViewOrder shows `expected`.
    pub async fn react(
        &self,
        order: &pb::Order,
        input: SagaInput,
        expected: pb::OrderStatus,
    ) -> pb::Order {
        let id = AggregateId::parse(order.id.clone()).unwrap();
        let command = OrderCommand::React {
            input,
            at_ms: es_core::envelope::now_ms(),
        };
        self.repository
            .execute(
                &id,
                &command,
                &CommandContext {
                    correlation_id: Some(order.id.clone()),
                    ..CommandContext::default()
                },
            )
            .await
            .unwrap();
        self.wait_for_status(&order.id, expected).await
    }

    pub async fn wait_for_status(&self, order_id: &str, expected: pb::OrderStatus) -> pb::Order {
        let mut seen = None;
        for _ in 0..100 {
            let order = self.view(&admin(), order_id).await.unwrap();
            if order.status() == expected {
                return order;
            }
            seen = Some(order);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("order never reached {expected:?}: {seen:?}");
    }

    /// Prices `order` (whose lines are given) with these unit prices.
    pub async fn price(&self, order: &pb::Order, unit_prices: &[i64]) -> pb::Order {
        let lines: Vec<QuotedLine> = order
            .items
            .iter()
            .zip(unit_prices)
            .map(|(item, price)| QuotedLine {
                product_id: ProductId::parse(&item.product_id).unwrap(),
                quantity: Quantity::parse(item.quantity).unwrap(),
                unit_price: Cents::parse(*price).unwrap(),
            })
            .collect();
        let items_price = order
            .items
            .iter()
            .zip(unit_prices)
            .map(|(item, price)| item.quantity * price)
            .sum();
        let input = SagaInput::PriceQuoted {
            lines,
            items_price: Cents::parse(items_price).unwrap(),
            shipping_fee: Cents::parse(DEFAULT_SHIPPING_FEE_CENTS).unwrap(),
        };
        self.react(order, input, pb::OrderStatus::Pending).await
    }

    /// Approves a priced order, as PaymentCaptured will.
    pub async fn approve(&self, order: &pb::Order) -> pb::Order {
        let input = SagaInput::PaymentCaptured {
            transaction_id: "tx-1".into(),
            amount: Cents::parse(order.total_cents).unwrap(),
            shipment_id: "ship-1".into(),
            reservation_id: "res-1".into(),
        };
        self.react(order, input, pb::OrderStatus::Approved).await
    }
}

/// The fields named in a status's BadRequest details.
pub fn violated_fields(status: &Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|details| {
            details
                .field_violations
                .into_iter()
                .map(|v| v.field)
                .collect()
        })
        .unwrap_or_default()
}
