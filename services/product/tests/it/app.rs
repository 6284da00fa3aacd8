//! `TestApp`: one product service on a port-0 listener, its own nats-server
//! and its own database, with typed client calls as a given identity.

use stocklet_product::{Config, run};
use stocklet_proto::stocklet::product::v1 as pb;
use stocklet_proto::stocklet::product::v1::product_service_client::ProductServiceClient;
use stocklet_service_kit::config::CommonConfig;
use stocklet_service_kit::lifecycle::RunError;
use stocklet_service_kit::{Identity, Secret};
use stocklet_test_support::{NatsServer, RunningService, TestDb};
use tonic::transport::Channel;
use tonic::{Request, Status};

pub const INTERNAL_TOKEN: &str = "test-internal-token";

pub struct TestApp {
    pub nats: NatsServer,
    pub db: TestDb,
    pub client: ProductServiceClient<Channel>,
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
        TestApp {
            nats,
            db,
            client: ProductServiceClient::new(channel),
            service,
        }
    }

    /// Stops the service gracefully and hands back its infrastructure.
    pub async fn stop(self) -> (NatsServer, TestDb) {
        self.service.stop().await;
        (self.nats, self.db)
    }

    pub async fn create(
        &self,
        identity: &Identity,
        name: &str,
        price_cents: i64,
    ) -> Result<pb::Product, Status> {
        let request = pb::CreateProductRequest {
            name: name.into(),
            description: format!("{name}, described"),
            price_cents,
        };
        let response = self
            .client
            .clone()
            .create_product(as_user(identity, request))
            .await?;
        Ok(response.into_inner().product.unwrap())
    }

    pub async fn view(&self, id: &str) -> Result<pb::Product, Status> {
        let request = Request::new(pb::ViewProductRequest { id: id.into() });
        Ok(self
            .client
            .clone()
            .view_product(request)
            .await?
            .into_inner()
            .product
            .unwrap())
    }

    pub async fn list(
        &self,
        page_size: i32,
        page_token: &str,
    ) -> Result<pb::ViewProductsResponse, Status> {
        let request = Request::new(pb::ViewProductsRequest {
            page_size,
            page_token: page_token.into(),
        });
        Ok(self
            .client
            .clone()
            .view_products(request)
            .await?
            .into_inner())
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
