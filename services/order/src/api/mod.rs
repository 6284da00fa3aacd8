//! The order service's gRPC API: placing, reading and cancelling orders,
//! and following their sagas (timeline, stuck sagas).
//!
//! Commands load the order aggregate, decide and append through the
//! repository, then wait (bounded) for the orders projection to reach the
//! new position, so that a query right after a command sees it. Queries read
//! the read model. The caller comes from the identity metadata only: the
//! customer of a new order is the caller, and customers see only their own
//! orders (another customer's order is NotFound, so ids cannot be probed).
//! Every failure becomes an [`ApiError`] and, through it, a gRPC status in
//! one place.

mod convert;
pub mod deadletters;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use es_core::projection::ProjectionRunner;
use es_core::{AggregateId, JetStreamEventStore, Repository};
use sqlx::PgPool;
use stocklet_proto::stocklet::order::v1::{self as pb, order_service_server::OrderService};
use stocklet_service_kit::{ApiError, CommandApi, FieldViolation, Validation};
use tonic::{Request, Response, Status};

use crate::domain::{
    CancellationReason, Cart, CustomerId, InvalidCart, Order, OrderCommand, OrderError, OrderId,
};
use crate::projections::timeline::{self, SagaStep, StuckRow};
use crate::projections::{self, Orders};

/// Longest product id echoed back in a field path.
const MAX_ECHOED_KEY: usize = 64;

/// Handles `stocklet.order.v1.OrderService`.
#[derive(Clone)]
pub struct OrderApi {
    core: CommandApi<Order, Orders>,
    stuck_saga_timeout: Duration,
}

impl OrderApi {
    /// The API over its repository and read models; a saga without progress
    /// for `stuck_saga_timeout` counts as stuck unless a request says
    /// otherwise.
    pub fn new(
        orders: Repository<Order, JetStreamEventStore>,
        read_model: Arc<ProjectionRunner<Orders>>,
        pool: PgPool,
        stuck_saga_timeout: Duration,
    ) -> Self {
        Self {
            core: CommandApi::new(orders, read_model, pool),
            stuck_saga_timeout,
        }
    }

    /// Runs a command in the order's saga and waits until the read model
    /// shows its effect.
    async fn execute<T>(
        &self,
        request: &Request<T>,
        id: &OrderId,
        command: OrderCommand,
    ) -> Result<Order, ApiError> {
        let id = aggregate_id(id)?;
        // Every command on an order belongs to that order's saga: its events
        // carry the order id as correlation id, and the reactions downstream
        // inherit it.
        let context = self.core.context(request).with_correlation_id(id.as_str());
        self.core.execute(&id, &command, &context, rejected).await
    }
}

/// An order id is a UUID, hence always a valid subject token.
fn aggregate_id(id: &OrderId) -> Result<AggregateId, ApiError> {
    AggregateId::parse(id.as_str()).map_err(|e| ApiError::Internal(e.to_string()))
}

/// How the order's business rules surface to clients.
fn rejected(error: OrderError) -> ApiError {
    match error {
        OrderError::NotPlaced => ApiError::NotFound("order".into()),
        OrderError::AlreadyPlaced => ApiError::AlreadyExists("order".into()),
        OrderError::Final { .. } => ApiError::FailedPrecondition(error.to_string()),
        // Saga inputs do not come through this API; reaching one is a bug.
        OrderError::TooEarly { .. }
        | OrderError::Contradicts { .. }
        | OrderError::QuoteMismatch
        | OrderError::ItemsPriceMismatch { .. }
        | OrderError::TotalTooLarge
        | OrderError::AmountMismatch { .. }
        | OrderError::ShipmentMismatch { .. } => ApiError::Internal(error.to_string()),
    }
}

/// The cart of a PlaceOrder request and the field it came in: `items` (the
/// original Stocklet's bare map) or `cart.items` (wrapped). Both at once is
/// a mistake the client should hear about, not a merge.
fn cart_field(
    request: &pb::PlaceOrderRequest,
) -> Result<(&'static str, &HashMap<String, i64>), ApiError> {
    match &request.cart {
        Some(cart) if !cart.items.is_empty() && !request.items.is_empty() => {
            Err(ApiError::InvalidArgument(vec![FieldViolation {
                field: "items".to_owned(),
                description: "give the cart in items or in cart, not both".to_owned(),
            }]))
        }
        Some(cart) if !cart.items.is_empty() => Ok(("cart.items", &cart.items)),
        _ => Ok(("items", &request.items)),
    }
}

/// Every problem of a cart as a field violation on `<field>[<id>]` (or
/// `<field>` for the cart as a whole).
fn cart_violations(field: &str, error: InvalidCart) -> Vec<FieldViolation> {
    error
        .problems
        .into_iter()
        .map(|(key, problem)| FieldViolation {
            field: match key {
                Some(key) => {
                    let shown: String = key.chars().take(MAX_ECHOED_KEY).collect();
                    format!("{field}[{shown}]")
                }
                None => field.to_owned(),
            },
            description: problem.to_string(),
        })
        .collect()
}

fn missing() -> Status {
    ApiError::Internal("validated fields missing".into()).into()
}

#[tonic::async_trait]
impl OrderService for OrderApi {
    async fn get_service_info(
        &self,
        _request: Request<pb::GetServiceInfoRequest>,
    ) -> Result<Response<pb::GetServiceInfoResponse>, Status> {
        Ok(Response::new(pb::GetServiceInfoResponse {
            name: "order".into(),
            source: "https://github.com/stocklet/stocklet/tree/main/services/order".into(),
            license: "MIT".into(),
        }))
    }

    async fn view_order(
        &self,
        request: Request<pb::ViewOrderRequest>,
    ) -> Result<Response<pb::ViewOrderResponse>, Status> {
        let identity = self.core.identity(&request);
        identity.require_user()?;
        let mut validation = Validation::new();
        let id = validation.parse("order_id", OrderId::parse(&request.get_ref().order_id));
        validation.finish()?;
        let id = id.ok_or_else(missing)?;
        let view = projections::find(self.core.pool(), id.as_str())
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("order".into()))?;
        identity.require_owner_or_admin(&view.order.customer_id, "order")?;
        Ok(Response::new(pb::ViewOrderResponse {
            order: Some(convert::view_to_pb(view)),
        }))
    }

    async fn view_orders(
        &self,
        request: Request<pb::ViewOrdersRequest>,
    ) -> Result<Response<pb::ViewOrdersResponse>, Status> {
        let identity = self.core.identity(&request);
        let caller = identity.require_user()?.to_owned();
        let body = request.get_ref();
        // Naming another customer is an admin's privilege; naming oneself is
        // the same as naming no one.
        if !body.customer_id.is_empty() && body.customer_id != caller {
            identity.require_admin()?;
        }
        let mut validation = Validation::new();
        let customer = if body.customer_id.is_empty() {
            Some(caller)
        } else {
            validation
                .parse("customer_id", CustomerId::parse(&body.customer_id))
                .map(|id| id.to_string())
        };
        let page = validation.page(body.page_size, &body.page_token);
        validation.finish()?;
        let (Some(customer), Some(page)) = (customer, page) else {
            return Err(missing());
        };
        let views = projections::page_of_customer(
            self.core.pool(),
            &customer,
            page.after.as_deref(),
            page.fetch_limit(),
        )
        .await
        .map_err(ApiError::from)?;
        let (views, next_page_token) = page.finish(views, |view| view.order.id.clone());
        Ok(Response::new(pb::ViewOrdersResponse {
            orders: views.into_iter().map(convert::view_to_pb).collect(),
            next_page_token,
        }))
    }

    async fn place_order(
        &self,
        request: Request<pb::PlaceOrderRequest>,
    ) -> Result<Response<pb::PlaceOrderResponse>, Status> {
        let identity = self.core.identity(&request);
        // The customer is the caller: an identity that cannot name a
        // customer is no usable identity.
        let customer_id =
            CustomerId::parse(identity.require_user()?).map_err(|_| ApiError::Unauthenticated)?;
        let (field, items) = cart_field(request.get_ref())?;
        let cart = Cart::parse(items.iter().map(|(id, quantity)| (id.as_str(), *quantity)))
            .map_err(|e| ApiError::InvalidArgument(cart_violations(field, e)))?;
        let order_id = OrderId::generate();
        let order = self
            .execute(
                &request,
                &order_id,
                OrderCommand::Place {
                    order_id: order_id.clone(),
                    customer_id,
                    cart,
                    at_ms: es_core::envelope::now_ms(),
                },
            )
            .await?;
        Ok(Response::new(pb::PlaceOrderResponse {
            order: Some(convert::order_to_pb(&order)),
        }))
    }

    async fn cancel_order(
        &self,
        request: Request<pb::CancelOrderRequest>,
    ) -> Result<Response<pb::CancelOrderResponse>, Status> {
        let identity = self.core.identity(&request);
        identity.require_user()?;
        let body = request.get_ref();
        let mut validation = Validation::new();
        let id = validation.parse("order_id", OrderId::parse(&body.order_id));
        let reason = validation.parse("reason", CancellationReason::parse(&body.reason));
        validation.finish()?;
        let (Some(id), Some(reason)) = (id, reason) else {
            return Err(missing());
        };
        // Ownership first, so a stranger learns nothing about the order.
        let loaded = self
            .core
            .repository()
            .load(&aggregate_id(&id)?)
            .await
            .map_err(ApiError::from)?;
        if !loaded.exists() {
            return Err(ApiError::NotFound("order".into()).into());
        }
        identity.require_owner_or_admin(loaded.state.customer_id(), "order")?;
        let order = self
            .execute(
                &request,
                &id,
                OrderCommand::Cancel {
                    reason,
                    at_ms: es_core::envelope::now_ms(),
                },
            )
            .await?;
        Ok(Response::new(pb::CancelOrderResponse {
            order: Some(convert::order_to_pb(&order)),
        }))
    }

    async fn view_order_timeline(
        &self,
        request: Request<pb::ViewOrderTimelineRequest>,
    ) -> Result<Response<pb::ViewOrderTimelineResponse>, Status> {
        let identity = self.core.identity(&request);
        identity.require_user()?;
        let mut validation = Validation::new();
        let id = validation.parse("order_id", OrderId::parse(&request.get_ref().order_id));
        validation.finish()?;
        let id = id.ok_or_else(missing)?;
        let view = projections::find(self.core.pool(), id.as_str())
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("order".into()))?;
        identity.require_owner_or_admin(&view.order.customer_id, "order")?;
        let entries = timeline::timeline(self.core.pool(), id.as_str())
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ViewOrderTimelineResponse {
            order_id: id.to_string(),
            entries: entries
                .into_iter()
                .map(|row| pb::TimelineEntry {
                    event_id: row.event_id,
                    service: row.service,
                    event_type: row.event_type,
                    occurred_at_ms: row.occurred_at_ms,
                    summary: row.summary,
                })
                .collect(),
        }))
    }

    async fn list_stuck_sagas(
        &self,
        request: Request<pb::ListStuckSagasRequest>,
    ) -> Result<Response<pb::ListStuckSagasResponse>, Status> {
        let identity = self.core.identity(&request);
        identity.require_admin()?;
        let body = request.get_ref();
        let mut validation = Validation::new();
        validation.check(body.timeout_ms >= 0, "timeout_ms", "must not be negative");
        let page = validation.page(body.page_size, &body.page_token);
        let after = match page.as_ref().and_then(|p| p.after.as_deref()) {
            None => None,
            Some(key) => {
                let parsed = StuckRow::parse_sort_key(key);
                validation.check(
                    parsed.is_some(),
                    "page_token",
                    "is not a token this server issued",
                );
                parsed
            }
        };
        validation.finish()?;
        let page = page.ok_or_else(missing)?;
        let timeout_ms = if body.timeout_ms == 0 {
            i64::try_from(self.stuck_saga_timeout.as_millis()).unwrap_or(i64::MAX)
        } else {
            body.timeout_ms
        };
        let now_ms = es_core::envelope::now_ms();
        let rows = timeline::stuck(
            self.core.pool(),
            now_ms.saturating_sub(timeout_ms),
            after,
            page.fetch_limit(),
        )
        .await
        .map_err(ApiError::from)?;
        let (rows, next_page_token) = page.finish(rows, StuckRow::sort_key);
        Ok(Response::new(pb::ListStuckSagasResponse {
            sagas: rows
                .into_iter()
                .map(|row| pb::StuckSaga {
                    status: convert::status_to_pb(row.status).into(),
                    waiting_on: step_to_pb(row.waiting_on).into(),
                    waiting_on_service: row.waiting_on_service.to_owned(),
                    last_event_type: row.last_event_type,
                    stalled_for_ms: now_ms.saturating_sub(row.last_progress_at_ms),
                    last_progress_at_ms: row.last_progress_at_ms,
                    order_id: row.order_id,
                    customer_id: row.customer_id,
                })
                .collect(),
            next_page_token,
        }))
    }
}

fn step_to_pb(step: SagaStep) -> pb::SagaStep {
    match step {
        SagaStep::PriceQuote => pb::SagaStep::PriceQuote,
        SagaStep::StockReservation => pb::SagaStep::StockReservation,
        SagaStep::ShipmentAllocation => pb::SagaStep::ShipmentAllocation,
        SagaStep::Payment => pb::SagaStep::Payment,
    }
}
