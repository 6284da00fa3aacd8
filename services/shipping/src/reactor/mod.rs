//! Reactions to other services' events: the shipping steps of the
//! place-order saga.
//!
//! One durable consumer per source stream, with dedupe keys from the source
//! event ([`CommandContext::caused_by`]), so a redelivered event changes
//! nothing.
//!
//! - `WAREHOUSE` (only the order-level subjects
//!   `warehouse.reservation.>`): `StockReserved` allocates the order's
//!   shipment, or fails it when the order exceeds a shipment's capacity.
//! - `PAYMENT`: `PaymentFailed` releases the shipment.
//! - `ORDER`: `OrderApproved` makes the shipment dispatchable (paid);
//!   `OrderCancellationRequested` releases it if it has not left, or records
//!   the refusal if it has (the shipment is the point of no return, see
//!   [`crate::domain`]); `OrderCancelled` releases it.
//!
//! Ids another service recorded (the order, its customer, its products)
//! are taken as recorded (`from_recorded`): that service parsed them before
//! it wrote the event. Quantities and the total are parsed, so a malformed
//! event fails for good instead of being shipped.
//!
//! A shipment's id is its order's id: one order has one shipment, and a
//! redelivered `StockReserved` then lands on the same aggregate, whose
//! history holds the dedupe key (a fresh random id would allocate twice).

use es_core::envelope::EventMeta;
use es_core::reactor::{Reaction, ReactionError};
use es_core::{
    AggregateId, CommandContext, ExecuteError, JetStreamEventStore, Recorded, Repository,
};
use stocklet_proto::stocklet::events::v1 as events;

use crate::domain::{
    Capacity, Cents, CustomerId, ManifestLine, OrderId, ProductId, Quantity, Shipment,
    ShipmentCommand, ShipmentError,
};

/// The handler name in the dedupe key of an allocation.
pub const ALLOCATE: &str = "shipping.allocate";
/// The handler name in the dedupe key of a release.
pub const RELEASE: &str = "shipping.release";
/// The handler name in the dedupe key of a shipment cleared for dispatch.
pub const MARK_PAID: &str = "shipping.mark-paid";
/// The handler name in the dedupe key of a customer's cancellation.
pub const CANCEL: &str = "shipping.cancel";
/// The warehouse subjects this service reads: order-level reservations.
pub const RESERVATION_SUBJECTS: &str = "warehouse.reservation.>";

es_core::domain_events! {
    /// The saga events that allocate and release shipments.
    pub enum SagaEvent {
        /// The warehouse reserved an order's stock: allocate its shipment.
        StockReserved(events::StockReserved),
        /// The payment failed: release the shipment.
        PaymentFailed(events::PaymentFailed),
        /// The order was approved (paid): the shipment may leave.
        OrderApproved(events::OrderApproved),
        /// The customer asked to cancel: release the shipment unless it left.
        OrderCancellationRequested(events::OrderCancellationRequested),
        /// The order was cancelled: release the shipment.
        OrderCancelled(events::OrderCancelled),
    }
}

/// Allocates and releases shipments for orders.
#[derive(Clone)]
pub struct SagaReaction {
    shipments: Repository<Shipment, JetStreamEventStore>,
    capacity: Capacity,
}

impl SagaReaction {
    /// A reaction writing through `shipments`, with `capacity` units per
    /// shipment.
    pub fn new(shipments: Repository<Shipment, JetStreamEventStore>, capacity: Capacity) -> Self {
        Self {
            shipments,
            capacity,
        }
    }

    async fn execute(
        &self,
        source: &EventMeta,
        shipment_id: &str,
        command: ShipmentCommand,
        handler: &str,
    ) -> Result<(), ReactionError> {
        let id = AggregateId::parse(shipment_id)
            .map_err(|e| ReactionError::Permanent(format!("bad shipment id: {e}")))?;
        let context = CommandContext::caused_by(source, handler);
        match self.shipments.execute(&id, &command, &context).await {
            Ok(_) => Ok(()),
            // Released before it was allocated: retry once it is.
            Err(ExecuteError::Rejected(ShipmentError::NotFound)) => Err(ReactionError::NotYet(
                format!("shipment {id} does not exist yet"),
            )),
            Err(error) => Err(error.into()),
        }
    }
}

impl Reaction for SagaReaction {
    type Event = SagaEvent;

    async fn react(&self, stored: &Recorded<SagaEvent>) -> Result<(), ReactionError> {
        let at_ms = es_core::envelope::now_ms();
        match stored.event.clone() {
            SagaEvent::StockReserved(reserved) => {
                let lines = reserved
                    .lines
                    .iter()
                    .map(|line| {
                        Ok(ManifestLine {
                            product_id: ProductId::from_recorded(&line.product_id),
                            quantity: Quantity::parse(line.quantity).map_err(|e| {
                                ReactionError::Permanent(format!("bad quantity: {e}"))
                            })?,
                        })
                    })
                    .collect::<Result<Vec<_>, ReactionError>>()?;
                // Any order total the order service recorded, but never a
                // negative one.
                let total = Cents::parse_at_most(reserved.total_cents, i64::MAX)
                    .map_err(|e| ReactionError::Permanent(format!("bad total: {e}")))?;
                let command = ShipmentCommand::Allocate {
                    shipment_id: reserved.order_id.clone(),
                    order_id: OrderId::from_recorded(&reserved.order_id),
                    customer_id: CustomerId::from_recorded(&reserved.customer_id),
                    reservation_id: reserved.reservation_id,
                    lines,
                    total,
                    capacity: self.capacity,
                    at_ms,
                };
                self.execute(&stored.meta, &reserved.order_id, command, ALLOCATE)
                    .await
            }
            SagaEvent::PaymentFailed(failed) => {
                self.execute(
                    &stored.meta,
                    &failed.shipment_id,
                    ShipmentCommand::Release { at_ms },
                    RELEASE,
                )
                .await
            }
            SagaEvent::OrderCancelled(cancelled) => {
                // No shipment named: the saga never allocated one, or its
                // failure path already released it.
                if cancelled.shipment_id.is_empty() {
                    return Ok(());
                }
                self.execute(
                    &stored.meta,
                    &cancelled.shipment_id,
                    ShipmentCommand::Release { at_ms },
                    RELEASE,
                )
                .await
            }
            SagaEvent::OrderApproved(approved) => {
                let command = ShipmentCommand::MarkPaid {
                    transaction_id: approved.transaction_id,
                    at_ms,
                };
                self.execute(&stored.meta, &approved.order_id, command, MARK_PAID)
                    .await
            }
            SagaEvent::OrderCancellationRequested(requested) => {
                self.execute(
                    &stored.meta,
                    &requested.order_id,
                    ShipmentCommand::Cancel { at_ms },
                    CANCEL,
                )
                .await
            }
        }
    }
}
