//! Reactions to other services' events: the saga's outcomes move the order.
//!
//! One durable consumer per source stream (`PRODUCT`, `WAREHOUSE`,
//! `SHIPPING`, `PAYMENT`), all feeding the same [`SagaReaction`], which turns
//! each outcome into a [`SagaInput`] on the order it names. The dedupe key
//! comes from the source event ([`CommandContext::caused_by`]), and the
//! aggregate itself ignores an outcome it has already recorded, so a
//! redelivery changes nothing.
//!
//! - An input that arrives before the order reached its step
//!   ([`OrderError::TooEarly`]) is retried later (a transient failure).
//! - An input that contradicts what the order recorded
//!   ([`OrderError::Contradicts`] and the other refusals) is permanent: it
//!   goes to the dead-letter stream for an operator.

use es_core::reactor::{Reaction, ReactionError};
use es_core::{
    AggregateId, CommandContext, ExecuteError, JetStreamEventStore, Recorded, Repository,
};
use stocklet_proto::stocklet::events::v1 as events;

use crate::domain::{
    Cents, InvalidValue, Order, OrderCommand, OrderError, PaymentFailure, ProductId, Quantity,
    QuotedLine, SagaInput,
};

/// The handler name in the dedupe key of a saga outcome recorded on an order.
pub const RECORD_OUTCOME: &str = "order.record-outcome";

es_core::domain_events! {
    /// The other services' saga outcomes that move an order.
    pub enum SagaOutcome {
        /// The catalogue priced the order.
        PriceQuoted(events::PriceQuoted),
        /// The catalogue could not price the order.
        PriceQuoteFailed(events::PriceQuoteFailed),
        /// The warehouse could not reserve the order's stock.
        StockReservationFailed(events::StockReservationFailed),
        /// Shipping could not allocate a shipment.
        ShipmentAllocationFailed(events::ShipmentAllocationFailed),
        /// The payment failed.
        PaymentFailed(events::PaymentFailed),
        /// The payment was captured.
        PaymentCaptured(events::PaymentCaptured),
        /// The shipment left the warehouse.
        ShipmentDispatched(events::ShipmentDispatched),
        /// The shipment was given up (for a cancellation: shipping's consent).
        ShipmentReleased(events::ShipmentReleased),
    }
}

/// Records other services' saga outcomes on orders.
#[derive(Clone)]
pub struct SagaReaction {
    orders: Repository<Order, JetStreamEventStore>,
    shipping_fee: Cents,
}

impl SagaReaction {
    /// A reaction writing through `orders`, pricing with `shipping_fee`.
    pub fn new(orders: Repository<Order, JetStreamEventStore>, shipping_fee: Cents) -> Self {
        Self {
            orders,
            shipping_fee,
        }
    }

    /// The order an outcome addresses and the input it means.
    fn input(&self, outcome: SagaOutcome) -> Result<(String, SagaInput), ReactionError> {
        let addressed = match outcome {
            SagaOutcome::PriceQuoted(e) => {
                let lines = e
                    .lines
                    .iter()
                    .map(|line| {
                        Ok(QuotedLine {
                            product_id: ProductId::parse(&line.product_id)?,
                            quantity: Quantity::parse(line.quantity)?,
                            unit_price: Cents::parse(line.unit_price_cents)?,
                        })
                    })
                    .collect::<Result<Vec<_>, InvalidValue>>()
                    .map_err(malformed)?;
                let input = SagaInput::PriceQuoted {
                    lines,
                    items_price: Cents::parse(e.items_price_cents).map_err(malformed)?,
                    shipping_fee: self.shipping_fee,
                };
                (e.order_id, input)
            }
            SagaOutcome::PriceQuoteFailed(e) => {
                let input = SagaInput::PriceQuoteFailed {
                    product_ids: product_ids(&e.unavailable_product_ids)?,
                    total_too_large: e.failure() == events::PriceQuoteFailure::TotalTooLarge,
                };
                (e.order_id, input)
            }
            SagaOutcome::StockReservationFailed(e) => {
                let input = SagaInput::StockReservationFailed {
                    product_ids: product_ids(&e.short_product_ids)?,
                };
                (e.order_id, input)
            }
            SagaOutcome::ShipmentAllocationFailed(e) => {
                let input = SagaInput::ShipmentAllocationFailed {
                    reservation_id: e.reservation_id,
                    detail: e.reason,
                };
                (e.order_id, input)
            }
            SagaOutcome::PaymentFailed(e) => {
                let (reason, detail) = match events::PaymentFailureReason::try_from(e.reason) {
                    Ok(events::PaymentFailureReason::InsufficientBalance) => (
                        PaymentFailure::InsufficientBalance,
                        format!(
                            "the balance of {} cents is less than the total of {} cents",
                            e.balance_cents, e.amount_cents
                        ),
                    ),
                    _ => (
                        PaymentFailure::Declined,
                        "the customer has no open balance".to_owned(),
                    ),
                };
                let input = SagaInput::PaymentFailed {
                    reason,
                    detail,
                    reservation_id: e.reservation_id,
                    shipment_id: e.shipment_id,
                };
                (e.order_id, input)
            }
            SagaOutcome::PaymentCaptured(e) => {
                let input = SagaInput::PaymentCaptured {
                    transaction_id: e.transaction_id,
                    amount: Cents::parse(e.amount_cents).map_err(malformed)?,
                    shipment_id: e.shipment_id,
                    reservation_id: e.reservation_id,
                };
                (e.order_id, input)
            }
            SagaOutcome::ShipmentDispatched(e) => {
                let input = SagaInput::ShipmentDispatched {
                    shipment_id: e.shipment_id,
                };
                (e.order_id, input)
            }
            SagaOutcome::ShipmentReleased(e) => {
                let input = SagaInput::ShipmentReleased {
                    shipment_id: e.shipment_id,
                };
                (e.order_id, input)
            }
        };
        Ok(addressed)
    }
}

impl Reaction for SagaReaction {
    type Event = SagaOutcome;

    async fn react(&self, stored: &Recorded<SagaOutcome>) -> Result<(), ReactionError> {
        let (order_id, input) = self.input(stored.event.clone())?;
        let id = AggregateId::parse(order_id)
            .map_err(|e| ReactionError::Permanent(format!("bad order id: {e}")))?;
        let command = OrderCommand::React {
            input,
            at_ms: es_core::envelope::now_ms(),
        };
        let context = CommandContext::caused_by(&stored.meta, RECORD_OUTCOME);
        match self.orders.execute(&id, &command, &context).await {
            Ok(executed) => {
                tracing::debug!(order_id = %id, events = executed.events.len(), "saga outcome recorded");
                Ok(())
            }
            Err(ExecuteError::Rejected(
                error @ (OrderError::TooEarly { .. } | OrderError::NotPlaced),
            )) => Err(ReactionError::NotYet(error.to_string())),
            Err(error) => Err(error.into()),
        }
    }
}

fn malformed(error: impl std::fmt::Display) -> ReactionError {
    ReactionError::Permanent(format!("malformed saga event: {error}"))
}

fn product_ids(raw: &[String]) -> Result<Vec<ProductId>, ReactionError> {
    raw.iter()
        .map(|id| ProductId::parse(id))
        .collect::<Result<_, _>>()
        .map_err(malformed)
}
