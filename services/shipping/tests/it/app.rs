//! `TestApp`: one shipping service on the shared `ServiceHarness` (its
//! own nats-server and database), with typed client calls as a given
//! identity, and the shipment aggregates to allocate as the saga will.

use es_core::{AggregateId, CommandContext, JetStreamEventStore, Repository};
use stocklet_proto::stocklet::shipping::v1 as pb;
use stocklet_proto::stocklet::shipping::v1::shipping_service_client::ShippingServiceClient;
use stocklet_service_kit::Identity;
use stocklet_service_kit::streams;
use stocklet_shipping::domain::{
    Capacity, Cents, CustomerId, ManifestLine, OrderId, ProductId, Quantity, Shipment,
    ShipmentCommand,
};
use stocklet_shipping::{Config, run};
use stocklet_test_support::harness::{LISTEN_ADDR, SETTLE, eventually};
pub use stocklet_test_support::harness::{admin, customer, other_customer, violated_fields};
use tonic::Status;

/// Units a shipment carries in these tests.
pub const CAPACITY: i64 = 50;

stocklet_test_support::service_test_app! {
    /// The shipping service under test, on its harness.
    pub struct TestApp(ShippingServiceClient);
    info: pb::GetServiceInfoRequest {};
    start: |common, listener, shutdown| {
        let config = Config {
            common,
            listen_addr: LISTEN_ADDR.into(),
            shipment_capacity: Capacity::parse(CAPACITY).unwrap(),
        };
        run(config, listener, shutdown)
    };
}

impl TestApp {
    /// The shipment aggregates, written directly as the saga will.
    pub fn shipments(&self) -> Repository<Shipment, JetStreamEventStore> {
        self.repository(streams::SHIPPING)
    }

    /// Allocates a shipment for a new order of `customer_id` carrying
    /// `quantities` of products p0, p1, ...; returns the order id and the
    /// shipment id.
    pub async fn allocate(&self, customer_id: &str, quantities: &[i64]) -> (String, String) {
        let order_id = uuid::Uuid::now_v7().to_string();
        let shipment_id = uuid::Uuid::now_v7().to_string();
        let lines = manifest(quantities);
        self.shipments()
            .execute(
                &AggregateId::parse(order_id.clone()).unwrap(),
                &ShipmentCommand::Allocate {
                    shipment_id: shipment_id.clone(),
                    order_id: OrderId::parse(&order_id).unwrap(),
                    customer_id: CustomerId::parse(customer_id).unwrap(),
                    reservation_id: "r1".into(),
                    lines,
                    total: Cents::parse(1000).unwrap(),
                    capacity: Capacity::parse(CAPACITY).unwrap(),
                    at_ms: es_core::envelope::now_ms(),
                },
                &CommandContext::default(),
            )
            .await
            .unwrap();
        (order_id, shipment_id)
    }

    /// Approves the order, as the order service does once it is paid
    /// (`OrderApproved` on its stream), and waits until the shipment may
    /// leave.
    pub async fn approve(&self, order_id: &str, customer_id: &str) {
        self.publish(
            streams::ORDER,
            "order",
            order_id,
            stocklet_proto::stocklet::events::v1::OrderApproved {
                order_id: order_id.to_owned(),
                customer_id: customer_id.to_owned(),
                transaction_id: "tx-1".into(),
                shipment_id: order_id.to_owned(),
                reservation_id: "r1".into(),
                total_cents: 1000,
                occurred_at_ms: es_core::envelope::now_ms(),
            },
        )
        .await;
        let id = AggregateId::parse(order_id.to_owned()).unwrap();
        eventually(SETTLE, "the shipment becoming paid", async || {
            let loaded = self.shipments().load(&id).await.unwrap();
            if loaded.state.paid() {
                Ok(())
            } else {
                Err(loaded.state.status())
            }
        })
        .await;
    }

    pub async fn shipment(&self, identity: &Identity, id: &str) -> Result<pb::Shipment, Status> {
        let request = pb::ViewShipmentRequest {
            shipment_id: id.into(),
        };
        let answer = self
            .call_as(identity, request, async |mut client, request| {
                client.view_shipment(request).await
            })
            .await?;
        Ok(answer.shipment.unwrap())
    }

    /// Waits (bounded) until an admin sees the shipment answer `done`.
    pub async fn shipment_eventually(
        &self,
        id: &str,
        done: impl Fn(&pb::Shipment) -> bool,
    ) -> pb::Shipment {
        let what = format!("shipment {id} getting there");
        eventually(SETTLE, what, async || {
            match self.shipment(&admin(), id).await {
                Ok(shipment) if done(&shipment) => Ok(shipment),
                other => Err(other),
            }
        })
        .await
    }

    pub async fn manifest(
        &self,
        identity: &Identity,
        id: &str,
    ) -> Result<pb::ViewShipmentManifestResponse, Status> {
        let request = pb::ViewShipmentManifestRequest {
            shipment_id: id.into(),
        };
        self.call_as(identity, request, async |mut client, request| {
            client.view_shipment_manifest(request).await
        })
        .await
    }

    pub async fn list(
        &self,
        identity: &Identity,
        request: pb::ViewShipmentsRequest,
    ) -> Result<pb::ViewShipmentsResponse, Status> {
        self.call_as(identity, request, async |mut client, request| {
            client.view_shipments(request).await
        })
        .await
    }

    pub async fn dispatch(&self, identity: &Identity, id: &str) -> Result<pb::Shipment, Status> {
        let request = pb::DispatchShipmentRequest {
            shipment_id: id.into(),
        };
        let answer = self
            .call_as(identity, request, async |mut client, request| {
                client.dispatch_shipment(request).await
            })
            .await?;
        Ok(answer.shipment.unwrap())
    }
}

/// A manifest of `quantities` of products p0, p1, ...
pub fn manifest(quantities: &[i64]) -> Vec<ManifestLine> {
    let line = |(i, quantity): (usize, &i64)| ManifestLine {
        product_id: ProductId::from_recorded(&format!("p{i}")),
        quantity: Quantity::parse(*quantity).unwrap(),
    };
    quantities.iter().enumerate().map(line).collect()
}
