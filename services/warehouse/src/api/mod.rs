//! The warehouse's gRPC API: stock levels for everyone, stock changes and
//! reservations for admins.
//!
//! Commands load the product's stock, decide and append through the
//! repository, then wait (bounded) for the inventory projection to reach
//! the new position, so that a query right after a command sees it. Queries
//! read the inventory. Every failure becomes an [`ApiError`] and, through
//! it, a gRPC status in one place.

use std::sync::Arc;

use es_core::projection::ProjectionRunner;
use es_core::{AggregateId, JetStreamEventStore, Repository};
use sqlx::PgPool;
use stocklet_proto::stocklet::warehouse::v1::{
    self as pb, warehouse_service_server::WarehouseService,
};
use stocklet_service_kit::{ApiError, CommandApi, Validation};
use tonic::{Request, Response, Status};

use crate::domain::{Quantity, Stock, StockCommand, StockError};
use crate::projections::{Inventory, ReservationRow, StockRow};

/// Handles `stocklet.warehouse.v1.WarehouseService`.
#[derive(Clone)]
pub struct WarehouseApi {
    core: CommandApi<Stock, Inventory>,
}

impl WarehouseApi {
    /// The API over its repository and read model.
    pub fn new(
        stocks: Repository<Stock, JetStreamEventStore>,
        inventory: Arc<ProjectionRunner<Inventory>>,
        pool: PgPool,
    ) -> Self {
        let core = CommandApi::new(stocks, inventory, pool);
        Self { core }
    }

    /// Runs a command and waits until the inventory shows its effect.
    async fn execute<T>(
        &self,
        request: &Request<T>,
        id: &AggregateId,
        command: StockCommand,
    ) -> Result<Stock, ApiError> {
        let context = self.core.context(request);
        self.core.execute(id, &command, &context, rejected).await
    }

    /// Validates a stock change and parses its fields.
    fn stock_change(product_id: &str, quantity: i64) -> Result<(AggregateId, Quantity), ApiError> {
        let mut validation = Validation::new();
        let id = validation.parse("product_id", AggregateId::parse(product_id));
        let quantity = validation.parse("quantity", Quantity::parse(quantity));
        validation.finish()?;
        match (id, quantity) {
            (Some(id), Some(quantity)) => Ok((id, quantity)),
            _ => Err(ApiError::Internal("validated fields missing".into())),
        }
    }
}

/// How the stock's business rules surface to clients.
fn rejected(error: StockError) -> ApiError {
    match error {
        StockError::NotFound => ApiError::NotFound("stock".into()),
        error @ (StockError::Insufficient { .. }
        | StockError::Overflow { .. }
        | StockError::NotReserved { .. }) => ApiError::FailedPrecondition(error.to_string()),
    }
}

fn stock_to_pb(stock: &Stock, id: &AggregateId, at_ms: i64) -> pb::ProductStock {
    pb::ProductStock {
        product_id: id.to_string(),
        on_hand: stock.on_hand(),
        reserved: stock.reserved(),
        available: stock.available(),
        updated_at_ms: at_ms,
    }
}

fn row_to_pb(row: StockRow) -> pb::ProductStock {
    pb::ProductStock {
        product_id: row.product_id,
        on_hand: row.on_hand,
        reserved: row.reserved,
        available: row.on_hand - row.reserved,
        updated_at_ms: row.updated_at_ms,
    }
}

fn status_to_pb(status: &str) -> pb::ReservationStatus {
    match status {
        "reserved" => pb::ReservationStatus::Reserved,
        "released" => pb::ReservationStatus::Released,
        "consumed" => pb::ReservationStatus::Consumed,
        "returned" => pb::ReservationStatus::Returned,
        _ => pb::ReservationStatus::Unspecified,
    }
}

fn reservation_to_pb(row: ReservationRow) -> pb::Reservation {
    pb::Reservation {
        id: row.id,
        order_id: row.order_id,
        lines: row
            .lines
            .into_iter()
            .map(|line| pb::ReservationLine {
                product_id: line.product_id,
                quantity: line.quantity,
            })
            .collect(),
        status: status_to_pb(&row.status).into(),
        created_at_ms: row.created_at_ms,
        updated_at_ms: row.updated_at_ms,
    }
}

#[tonic::async_trait]
impl WarehouseService for WarehouseApi {
    async fn get_service_info(
        &self,
        _request: Request<pb::GetServiceInfoRequest>,
    ) -> Result<Response<pb::GetServiceInfoResponse>, Status> {
        Ok(Response::new(pb::GetServiceInfoResponse {
            name: "warehouse".into(),
            source: "https://github.com/stocklet/stocklet/tree/main/services/warehouse".into(),
            license: "MIT".into(),
        }))
    }

    async fn view_product_stock(
        &self,
        request: Request<pb::ViewProductStockRequest>,
    ) -> Result<Response<pb::ViewProductStockResponse>, Status> {
        let mut validation = Validation::new();
        let id = validation.parse(
            "product_id",
            AggregateId::parse(request.get_ref().product_id.as_str()),
        );
        validation.finish()?;
        let id = id.ok_or_else(|| ApiError::invalid("product_id", "is required"))?;
        let row = StockRow::find(self.core.pool(), id.as_str())
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("stock".into()))?;
        Ok(Response::new(pb::ViewProductStockResponse {
            stock: Some(row_to_pb(row)),
        }))
    }

    async fn view_reservation(
        &self,
        request: Request<pb::ViewReservationRequest>,
    ) -> Result<Response<pb::ViewReservationResponse>, Status> {
        self.core.identity(&request).require_admin()?;
        let mut validation = Validation::new();
        let id = validation.parse(
            "reservation_id",
            AggregateId::parse(request.get_ref().reservation_id.as_str()),
        );
        validation.finish()?;
        let id = id.ok_or_else(|| ApiError::invalid("reservation_id", "is required"))?;
        let row = ReservationRow::find(self.core.pool(), id.as_str())
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("reservation".into()))?;
        Ok(Response::new(pb::ViewReservationResponse {
            reservation: Some(reservation_to_pb(row)),
        }))
    }

    async fn add_stock(
        &self,
        request: Request<pb::AddStockRequest>,
    ) -> Result<Response<pb::AddStockResponse>, Status> {
        self.core.identity(&request).require_admin()?;
        let body = request.get_ref();
        let (id, quantity) = Self::stock_change(&body.product_id, body.quantity)?;
        let at_ms = es_core::envelope::now_ms();
        let stock = self
            .execute(&request, &id, StockCommand::Add { quantity, at_ms })
            .await?;
        Ok(Response::new(pb::AddStockResponse {
            stock: Some(stock_to_pb(&stock, &id, at_ms)),
        }))
    }

    async fn remove_stock(
        &self,
        request: Request<pb::RemoveStockRequest>,
    ) -> Result<Response<pb::RemoveStockResponse>, Status> {
        self.core.identity(&request).require_admin()?;
        let body = request.get_ref();
        let (id, quantity) = Self::stock_change(&body.product_id, body.quantity)?;
        let at_ms = es_core::envelope::now_ms();
        let stock = self
            .execute(&request, &id, StockCommand::Remove { quantity, at_ms })
            .await?;
        Ok(Response::new(pb::RemoveStockResponse {
            stock: Some(stock_to_pb(&stock, &id, at_ms)),
        }))
    }
}
