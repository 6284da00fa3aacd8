//! `TestApp`: one warehouse service on a port-0 listener, its own
//! nats-server and its own database, with typed client calls as a given
//! identity, and a way to publish other services' events.

use std::time::Duration;

use es_core::{JetStreamEventStore, Repository, StreamRef};
use stocklet_proto::stocklet::events::v1 as events;
use stocklet_proto::stocklet::warehouse::v1 as pb;
use stocklet_proto::stocklet::warehouse::v1::warehouse_service_client::WarehouseServiceClient;
use stocklet_service_kit::config::CommonConfig;
use stocklet_service_kit::lifecycle::RunError;
use stocklet_service_kit::streams;
use stocklet_service_kit::{Identity, Secret};
use stocklet_test_support::{NatsServer, RunningService, TestDb};
use stocklet_warehouse::domain::Stock;
use stocklet_warehouse::{Config, run};
use tonic::transport::Channel;
use tonic::{Request, Status};

pub const INTERNAL_TOKEN: &str = "test-internal-token";

pub struct TestApp {
    pub nats: NatsServer,
    pub db: TestDb,
    pub client: WarehouseServiceClient<Channel>,
    pub store: JetStreamEventStore,
    service: RunningService<RunError>,
}

pub fn admin() -> Identity {
    Identity::admin("admin-1")
}

pub fn customer() -> Identity {
    Identity::customer("customer-1")
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
        };
        let (service, channel) =
            RunningService::start(|listener, shutdown| run(config, listener, shutdown)).await;
        // The listener accepts before `run` has provisioned anything: one
        // answered call proves the streams, consumers and tables are ready.
        let mut client = WarehouseServiceClient::new(channel);
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

    /// Publishes an event on another service's stream, as that service
    /// would (appended after the subject's last event).
    pub async fn publish<E: prost::Message + prost::Name>(
        &self,
        definition: streams::Stream,
        aggregate_type: &str,
        aggregate_id: &str,
        event: E,
    ) {
        let stream = stream(definition);
        es_core::testing::append_event(&self.store, &stream, aggregate_type, aggregate_id, event)
            .await
            .unwrap();
    }

    /// The product service announces a new product.
    pub async fn product_created(&self, product_id: &str) {
        self.publish(
            streams::PRODUCT,
            "product",
            product_id,
            events::ProductCreated {
                product_id: product_id.into(),
                name: "Mug".into(),
                description: String::new(),
                price_cents: 1299,
                occurred_at_ms: es_core::envelope::now_ms(),
            },
        )
        .await;
    }

    /// The stock aggregates, written directly as the saga will.
    pub fn stocks(&self) -> Repository<Stock, JetStreamEventStore> {
        Repository::new(self.store.clone(), stream(streams::WAREHOUSE))
    }

    pub async fn stock(&self, product_id: &str) -> Result<pb::ProductStock, Status> {
        let request = Request::new(pb::ViewProductStockRequest {
            product_id: product_id.into(),
        });
        Ok(self
            .client
            .clone()
            .view_product_stock(request)
            .await?
            .into_inner()
            .stock
            .unwrap())
    }

    /// Waits (bounded) until the stock matches `done`.
    pub async fn stock_eventually(
        &self,
        product_id: &str,
        done: impl Fn(&pb::ProductStock) -> bool,
    ) -> pb::ProductStock {
        for _ in 0..200 {
            if let Ok(stock) = self.stock(product_id).await
                && done(&stock)
            {
                return stock;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the stock of {product_id} never got there");
    }

    /// Publishes ProductCreated and waits until the stock is open.
    pub async fn open_stock(&self, product_id: &str) -> pb::ProductStock {
        self.product_created(product_id).await;
        self.stock_eventually(product_id, |_| true).await
    }

    pub async fn add(
        &self,
        identity: &Identity,
        product_id: &str,
        quantity: i64,
    ) -> Result<pb::ProductStock, Status> {
        let request = pb::AddStockRequest {
            product_id: product_id.into(),
            quantity,
        };
        Ok(self
            .client
            .clone()
            .add_stock(as_user(identity, request))
            .await?
            .into_inner()
            .stock
            .unwrap())
    }

    pub async fn remove(
        &self,
        identity: &Identity,
        product_id: &str,
        quantity: i64,
    ) -> Result<pb::ProductStock, Status> {
        let request = pb::RemoveStockRequest {
            product_id: product_id.into(),
            quantity,
        };
        Ok(self
            .client
            .clone()
            .remove_stock(as_user(identity, request))
            .await?
            .into_inner()
            .stock
            .unwrap())
    }

    pub async fn reservation(
        &self,
        identity: &Identity,
        reservation_id: &str,
    ) -> Result<pb::Reservation, Status> {
        let request = pb::ViewReservationRequest {
            reservation_id: reservation_id.into(),
        };
        Ok(self
            .client
            .clone()
            .view_reservation(as_user(identity, request))
            .await?
            .into_inner()
            .reservation
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
