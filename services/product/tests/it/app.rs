//! `TestApp`: one product service on the shared `ServiceHarness` (its
//! own nats-server and database), with typed client calls as a given
//! identity.

use stocklet_product::{Config, run};
use stocklet_proto::stocklet::product::v1 as pb;
use stocklet_proto::stocklet::product::v1::product_service_client::ProductServiceClient;
use stocklet_service_kit::Identity;
use stocklet_test_support::harness::LISTEN_ADDR;
pub use stocklet_test_support::harness::{admin, as_user, customer, violated_fields};
use tonic::{Request, Status};

stocklet_test_support::service_test_app! {
    /// The product service under test, on its harness.
    pub struct TestApp(ProductServiceClient);
    info: pb::GetServiceInfoRequest {};
    start: |common, listener, shutdown| {
        run(Config { common, listen_addr: LISTEN_ADDR.into() }, listener, shutdown)
    };
}

impl TestApp {
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
