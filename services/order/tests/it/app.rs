//! `TestApp`: one order service on the shared `ServiceHarness` (its own
//! nats-server and database), with typed client calls as a given identity,
//! and the order aggregates to drive through saga states as the saga's
//! reactions will.

use std::time::Duration;

use es_core::{AggregateId, CommandContext};
use stocklet_order::domain::{
    Cents, Order, OrderCommand, ProductId, Quantity, QuotedLine, SagaInput,
};
use stocklet_order::{Config, DEFAULT_SHIPPING_FEE_CENTS, DEFAULT_STUCK_SAGA_TIMEOUT_MS, run};
use stocklet_proto::stocklet::order::v1 as pb;
use stocklet_proto::stocklet::order::v1::order_service_client::OrderServiceClient;
use stocklet_service_kit::Identity;
use stocklet_service_kit::streams;
use stocklet_test_support::harness::{LISTEN_ADDR, SETTLE, eventually};
pub use stocklet_test_support::harness::{admin, as_user, violated_fields};
use tonic::Status;

pub const P1: &str = "0192f0c1-0000-7000-8000-000000000001";
pub const P2: &str = "0192f0c1-0000-7000-8000-000000000002";
pub const P3: &str = "0192f0c1-0000-7000-8000-000000000003";

pub fn alice() -> Identity {
    Identity::customer("alice")
}

pub fn bob() -> Identity {
    Identity::customer("bob")
}

pub fn cart(items: &[(&str, i64)]) -> pb::Cart {
    pb::Cart {
        items: items.iter().map(|(id, q)| ((*id).to_owned(), *q)).collect(),
    }
}

stocklet_test_support::service_test_app! {
    /// The order service under test, on its harness.
    pub struct TestApp(OrderServiceClient);
    info: pb::GetServiceInfoRequest {};
    start: |common, listener, shutdown| {
        let config = Config {
            common,
            listen_addr: LISTEN_ADDR.into(),
            shipping_fee: Cents::parse(DEFAULT_SHIPPING_FEE_CENTS).unwrap(),
            stuck_saga_timeout: Duration::from_millis(DEFAULT_STUCK_SAGA_TIMEOUT_MS as u64),
        };
        run(config, listener, shutdown)
    };
}

impl TestApp {
    pub async fn place(
        &self,
        identity: &Identity,
        items: &[(&str, i64)],
    ) -> Result<pb::Order, Status> {
        let request = pb::PlaceOrderRequest {
            cart: Some(cart(items)),
            items: Default::default(),
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
        let answer = self
            .call_as(identity, request, async |mut client, request| {
                client.view_order(request).await
            })
            .await?;
        Ok(answer.order.unwrap())
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
        self.call_as(identity, request, async |mut client, request| {
            client.view_orders(request).await
        })
        .await
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
        let answer = self
            .call_as(identity, request, async |mut client, request| {
                client.cancel_order(request).await
            })
            .await?;
        Ok(answer.order.unwrap())
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
        self.repository::<Order>(streams::ORDER)
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
        let what = format!("order {order_id} reaching {expected:?}");
        eventually(SETTLE, what, async || {
            let order = self.view(&admin(), order_id).await.unwrap();
            if order.status() == expected {
                Ok(order)
            } else {
                Err(order)
            }
        })
        .await
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
