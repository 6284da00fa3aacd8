//! The shipping service's gRPC API: shipments and manifests for their
//! customers and for admins, dispatch for admins.
//!
//! DispatchShipment looks the shipment's order up in the read model (the
//! aggregate is keyed by order), decides and appends through the
//! repository, then waits (bounded) for the projection to reach the new
//! position, so that a query right after it sees it. Queries read the
//! shipments table. A customer asking for another customer's shipment is
//! told it does not exist. Every failure becomes an [`ApiError`] and,
//! through it, a gRPC status in one place.

use std::sync::Arc;

use es_core::projection::ProjectionRunner;
use es_core::{AggregateId, JetStreamEventStore, Repository};
use sqlx::PgPool;
use stocklet_proto::stocklet::shipping::v1::{
    self as pb, shipping_service_server::ShippingService,
};
use stocklet_service_kit::{ApiError, CommandApi, Identity, Validation};
use tonic::{Request, Response, Status};

use crate::domain::{Shipment, ShipmentCommand, ShipmentError};
use crate::projections::{ShipmentRow, Shipments};

/// Handles `stocklet.shipping.v1.ShippingService`.
#[derive(Clone)]
pub struct ShippingApi {
    core: CommandApi<Shipment, Shipments>,
}

impl ShippingApi {
    /// The API over its repository and read model.
    pub fn new(
        shipments: Repository<Shipment, JetStreamEventStore>,
        projection: Arc<ProjectionRunner<Shipments>>,
        pool: PgPool,
    ) -> Self {
        let core = CommandApi::new(shipments, projection, pool);
        Self { core }
    }

    /// Runs a command and waits until the read model shows its effect.
    async fn execute<T>(
        &self,
        request: &Request<T>,
        order_id: &AggregateId,
        command: ShipmentCommand,
    ) -> Result<Shipment, ApiError> {
        // A shipment's id is its order's id: its events belong to that
        // order's saga.
        let context = self
            .core
            .context(request)
            .with_correlation_id(order_id.as_str());
        self.core
            .execute(order_id, &command, &context, rejected)
            .await
    }

    /// A shipment the caller may see, by a validated id.
    async fn visible(&self, identity: &Identity, raw_id: &str) -> Result<ShipmentRow, ApiError> {
        identity.require_user()?;
        let mut validation = Validation::new();
        let id = validation.parse("shipment_id", AggregateId::parse(raw_id));
        validation.finish()?;
        let id = id.ok_or_else(|| ApiError::invalid("shipment_id", "is required"))?;
        let row = ShipmentRow::find(self.core.pool(), id.as_str())
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("shipment".into()))?;
        identity.require_owner_or_admin(&row.customer_id, "shipment")?;
        Ok(row)
    }
}

/// How the shipment's business rules surface to clients.
fn rejected(error: ShipmentError) -> ApiError {
    match error {
        ShipmentError::NotFound => ApiError::NotFound("shipment".into()),
        error @ (ShipmentError::EmptyManifest
        | ShipmentError::Released
        | ShipmentError::AlreadyDispatched
        | ShipmentError::NotPaid) => ApiError::FailedPrecondition(error.to_string()),
    }
}

fn status_to_pb(status: &str) -> pb::ShipmentStatus {
    match status {
        "allocated" => pb::ShipmentStatus::Allocated,
        "released" => pb::ShipmentStatus::Released,
        "dispatched" => pb::ShipmentStatus::Dispatched,
        _ => pb::ShipmentStatus::Unspecified,
    }
}

fn status_filter(status: pb::ShipmentStatus) -> Option<&'static str> {
    match status {
        pb::ShipmentStatus::Unspecified => None,
        pb::ShipmentStatus::Allocated => Some("allocated"),
        pb::ShipmentStatus::Released => Some("released"),
        pb::ShipmentStatus::Dispatched => Some("dispatched"),
    }
}

fn row_to_pb(row: ShipmentRow) -> pb::Shipment {
    pb::Shipment {
        status: status_to_pb(&row.status).into(),
        id: row.id,
        order_id: row.order_id,
        customer_id: row.customer_id,
        created_at_ms: row.created_at_ms,
        updated_at_ms: row.updated_at_ms,
        dispatched_at_ms: row.dispatched_at_ms,
    }
}

#[tonic::async_trait]
impl ShippingService for ShippingApi {
    async fn get_service_info(
        &self,
        _request: Request<pb::GetServiceInfoRequest>,
    ) -> Result<Response<pb::GetServiceInfoResponse>, Status> {
        Ok(Response::new(pb::GetServiceInfoResponse {
            name: "shipping".into(),
            source: "https://github.com/stocklet/stocklet/tree/main/services/shipping".into(),
            license: "MIT".into(),
        }))
    }

    async fn view_shipment(
        &self,
        request: Request<pb::ViewShipmentRequest>,
    ) -> Result<Response<pb::ViewShipmentResponse>, Status> {
        let identity = self.core.identity(&request);
        let row = self
            .visible(&identity, &request.get_ref().shipment_id)
            .await?;
        Ok(Response::new(pb::ViewShipmentResponse {
            shipment: Some(row_to_pb(row)),
        }))
    }

    async fn view_shipment_manifest(
        &self,
        request: Request<pb::ViewShipmentManifestRequest>,
    ) -> Result<Response<pb::ViewShipmentManifestResponse>, Status> {
        let identity = self.core.identity(&request);
        let row = self
            .visible(&identity, &request.get_ref().shipment_id)
            .await?;
        let items = ShipmentRow::manifest(self.core.pool(), &row.id)
            .await
            .map_err(ApiError::from)?
            .into_iter()
            .map(|line| pb::ManifestItem {
                product_id: line.product_id,
                quantity: line.quantity,
            })
            .collect();
        Ok(Response::new(pb::ViewShipmentManifestResponse {
            shipment_id: row.id,
            items,
        }))
    }

    async fn view_shipments(
        &self,
        request: Request<pb::ViewShipmentsRequest>,
    ) -> Result<Response<pb::ViewShipmentsResponse>, Status> {
        let identity = self.core.identity(&request);
        let caller = identity.require_user()?.to_owned();
        let body = request.get_ref();
        let mut validation = Validation::new();
        let page = validation.page(body.page_size, &body.page_token);
        let status = validation.parse(
            "status",
            pb::ShipmentStatus::try_from(body.status).map_err(|_| "is not a shipment status"),
        );
        let named = if body.customer_id.is_empty() {
            None
        } else {
            validation
                .parse("customer_id", AggregateId::parse(body.customer_id.as_str()))
                .map(|id| id.to_string())
        };
        validation.finish()?;
        // A customer sees their own shipments, and naming someone else is
        // refused, as in the order and payment lists; an admin sees
        // everyone's, or the named customer's.
        let customer_id = match named {
            Some(named) if named != caller => {
                identity.require_admin()?;
                Some(named)
            }
            _ if identity.is_admin() && body.customer_id.is_empty() => None,
            _ => Some(caller),
        };
        let (Some(page), Some(status)) = (page, status) else {
            return Err(ApiError::Internal("validated fields missing".into()).into());
        };
        let rows = ShipmentRow::page(
            self.core.pool(),
            customer_id.as_deref(),
            status_filter(status),
            page.after.as_deref(),
            page.fetch_limit(),
        )
        .await
        .map_err(ApiError::from)?;
        let (rows, next_page_token) = page.finish(rows, |row| row.id.clone());
        Ok(Response::new(pb::ViewShipmentsResponse {
            shipments: rows.into_iter().map(row_to_pb).collect(),
            next_page_token,
        }))
    }

    async fn dispatch_shipment(
        &self,
        request: Request<pb::DispatchShipmentRequest>,
    ) -> Result<Response<pb::DispatchShipmentResponse>, Status> {
        let identity = self.core.identity(&request);
        identity.require_admin()?;
        let row = self
            .visible(&identity, &request.get_ref().shipment_id)
            .await?;
        let order_id = AggregateId::parse(row.order_id.as_str())
            .map_err(|e| ApiError::Internal(format!("stored order id: {e}")))?;
        let at_ms = es_core::envelope::now_ms();
        self.execute(&request, &order_id, ShipmentCommand::Dispatch { at_ms })
            .await?;
        Ok(Response::new(pb::DispatchShipmentResponse {
            shipment: Some(pb::Shipment {
                status: pb::ShipmentStatus::Dispatched.into(),
                updated_at_ms: at_ms,
                dispatched_at_ms: at_ms,
                ..row_to_pb(row)
            }),
        }))
    }
}
