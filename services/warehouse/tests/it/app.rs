//! `TestApp`: one warehouse service on the shared `ServiceHarness` (its
//! own nats-server and database), with typed client calls as a given
//! identity, the product service's announcements, and the stock aggregates
//! to drive as the saga will.

use es_core::{JetStreamEventStore, Repository};
use stocklet_proto::stocklet::events::v1 as events;
use stocklet_proto::stocklet::warehouse::v1 as pb;
use stocklet_proto::stocklet::warehouse::v1::warehouse_service_client::WarehouseServiceClient;
use stocklet_service_kit::Identity;
use stocklet_service_kit::streams;
use stocklet_test_support::harness::{LISTEN_ADDR, SETTLE, eventually};
pub use stocklet_test_support::harness::{admin, customer, violated_fields};
use stocklet_warehouse::domain::Stock;
use stocklet_warehouse::{Config, run};
use tonic::{Request, Status};

stocklet_test_support::service_test_app! {
    /// The warehouse service under test, on its harness.
    pub struct TestApp(WarehouseServiceClient);
    info: pb::GetServiceInfoRequest {};
    start: |common, listener, shutdown| {
        run(Config { common, listen_addr: LISTEN_ADDR.into() }, listener, shutdown)
    };
}

impl TestApp {
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
        self.repository(streams::WAREHOUSE)
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
        let what = format!("the stock of {product_id} getting there");
        eventually(SETTLE, what, async || match self.stock(product_id).await {
            Ok(stock) if done(&stock) => Ok(stock),
            other => Err(other),
        })
        .await
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
        let answer = self
            .call_as(identity, request, async |mut client, request| {
                client.add_stock(request).await
            })
            .await?;
        Ok(answer.stock.unwrap())
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
        let answer = self
            .call_as(identity, request, async |mut client, request| {
                client.remove_stock(request).await
            })
            .await?;
        Ok(answer.stock.unwrap())
    }

    pub async fn reservation(
        &self,
        identity: &Identity,
        reservation_id: &str,
    ) -> Result<pb::Reservation, Status> {
        let request = pb::ViewReservationRequest {
            reservation_id: reservation_id.into(),
        };
        let answer = self
            .call_as(identity, request, async |mut client, request| {
                client.view_reservation(request).await
            })
            .await?;
        Ok(answer.reservation.unwrap())
    }
}
