//! `TestApp`: one shipping service on a port-0 listener, its own
//! nats-server and its own database, with typed client calls as a given
//! identity, and the shipment aggregates to allocate as the saga will.

use std::time::Duration;

use es_core::{AggregateId, CommandContext, JetStreamEventStore, Repository, StreamRef};
use stocklet_proto::stocklet::shipping::v1 as pb;
use stocklet_proto::stocklet::shipping::v1::shipping_service_client::ShippingServiceClient;
use stocklet_service_kit::config::CommonConfig;
use stocklet_service_kit::lifecycle::RunError;
use stocklet_service_kit::streams;
use stocklet_service_kit::{Identity, Secret};
use stocklet_shipping::domain::{Capacity, ManifestLine, Quantity, Shipment, ShipmentCommand};
use stocklet_shipping::{Config, run};
use stocklet_test_support::{NatsServer, RunningService, TestDb};
use tonic::transport::Channel;
use tonic::{Request, Status};

pub const INTERNAL_TOKEN: &str = "test-internal-token";
/// Units a shipment carries in these tests.
pub const CAPACITY: i64 = 50;

pub struct TestApp {
    pub nats: NatsServer,
    pub db: TestDb,
    pub client: ShippingServiceClient<Channel>,
    pub store: JetStreamEventStore,
    service: RunningService<RunError>,
}

pub fn admin() -> Identity {
    Identity::admin("admin-1")
}

pub fn customer() -> Identity {
    Identity::customer("customer-1")
}

pub fn other_customer() -> Identity {
    Identity::customer("customer-2")
}

/// A request carrying `identity` the way the gateway sends it.
pub fn as_user<T>(identity: &Identity, message: T) -> Request<T> {
    let mut request = Request::new(message);
    identity.write_metadata(request.metadata_mut(), &Secret::new(INTERNAL_TOKEN));
    request
}

fn stream(definition: streams::Stream) -> StreamRef {
    definition.stream_ref()
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
            shipment_capacity: Capacity::parse(CAPACITY).unwrap(),
        };
        let (service, channel) =
            RunningService::start(|listener, shutdown| run(config, listener, shutdown)).await;
        // The listener accepts before `run` has provisioned anything: one
        // answered call proves the streams, consumers and tables are ready.
        let mut client = ShippingServiceClient::new(channel);
        client
            .get_service_info(pb::GetServiceInfoRequest {})
            .await
            .expect("the service answers");
        let store = JetStreamEventStore::new(nats.client().await);
        TestApp {
            nats,
            db,
            client,
            store,
            service,
        }
    }

    /// Stops the service gracefully and hands back its infrastructure.
    pub async fn stop(self) -> (NatsServer, TestDb) {
        self.service.stop().await;
        (self.nats, self.db)
    }

    /// The shipment aggregates, written directly as the saga will.
    pub fn shipments(&self) -> Repository<Shipment, JetStreamEventStore> {
        Repository::new(self.store.clone(), stream(streams::SHIPPING))
    }

    /// Allocates a shipment for a new order of `customer_id` carrying
    /// `quantities` of products p0, p1, ...; returns the order id and the
    /// shipment id.
    pub async fn allocate(&self, customer_id: &str, quantities: &[i64]) -> (String, String) {
        let order_id = uuid::Uuid::now_v7().to_string();
        let shipment_id = uuid::Uuid::now_v7().to_string();
        let lines = quantities
            .iter()
            .enumerate()
            .map(|(i, q)| ManifestLine {
                product_id: format!("p{i}"),
                quantity: Quantity::parse(*q).unwrap(),
            })
            .collect();
        self.shipments()
            .execute(
                &AggregateId::parse(order_id.clone()).unwrap(),
                &ShipmentCommand::Allocate {
                    shipment_id: shipment_id.clone(),
                    order_id: order_id.clone(),
                    customer_id: customer_id.into(),
                    reservation_id: "r1".into(),
                    lines,
                    total_cents: 1000,
                    capacity: Capacity::parse(CAPACITY).unwrap(),
                    at_ms: es_core::envelope::now_ms(),
                },
                &CommandContext::default(),
            )
            .await
            .unwrap();
        (order_id, shipment_id)
    }

    pub async fn shipment(&self, identity: &Identity, id: &str) -> Result<pb::Shipment, Status> {
        let request = pb::ViewShipmentRequest {
            shipment_id: id.into(),
        };
        Ok(self
            .client
            .clone()
            .view_shipment(as_user(identity, request))
            .await?
            .into_inner()
            .shipment
            .unwrap())
    }

    /// Waits (bounded) until an admin sees the shipment answer `done`.
    pub async fn shipment_eventually(
        &self,
        id: &str,
        done: impl Fn(&pb::Shipment) -> bool,
    ) -> pb::Shipment {
        for _ in 0..200 {
            if let Ok(shipment) = self.shipment(&admin(), id).await
                && done(&shipment)
            {
                return shipment;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("shipment {id} never got there");
    }

    pub async fn manifest(
        &self,
        identity: &Identity,
        id: &str,
    ) -> Result<pb::ViewShipmentManifestResponse, Status> {
        let request = pb::ViewShipmentManifestRequest {
            shipment_id: id.into(),
        };
        Ok(self
            .client
            .clone()
            .view_shipment_manifest(as_user(identity, request))
            .await?
            .into_inner())
    }

    pub async fn list(
        &self,
        identity: &Identity,
        request: pb::ViewShipmentsRequest,
    ) -> Result<pb::ViewShipmentsResponse, Status> {
        Ok(self
            .client
            .clone()
            .view_shipments(as_user(identity, request))
            .await?
            .into_inner())
    }

    pub async fn dispatch(&self, identity: &Identity, id: &str) -> Result<pb::Shipment, Status> {
        let request = pb::DispatchShipmentRequest {
            shipment_id: id.into(),
        };
        Ok(self
            .client
            .clone()
            .dispatch_shipment(as_user(identity, request))
            .await?
            .into_inner()
            .shipment
            .unwrap())
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
