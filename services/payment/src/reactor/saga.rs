//! The payment steps of the place-order saga.
//!
//! - `SHIPPING`: `ShipmentAllocated` debits the order's total from the
//!   customer's balance: `BalanceDebited` + `PaymentCaptured`, or
//!   `PaymentFailed` when the balance is short (or not open).
//! - `ORDER`: `OrderCancelled` reverses the order's captured payment
//!   (`TransactionReversed` + a refund credit).
//!
//! Both run on the customer's [`Balance`], which keeps one payment per
//! order, so with the dedupe key from the source event a redelivery never
//! charges or refunds twice.

use es_core::envelope::EventMeta;
use es_core::reactor::{Reaction, ReactionError};
use es_core::{
    AggregateId, CommandContext, ExecuteError, JetStreamEventStore, Recorded, Repository,
};
use stocklet_proto::stocklet::events::v1 as events;

use crate::domain::{Balance, BalanceCommand, BalanceError, Cents, CustomerId, MAX_CENTS, OrderId};

/// The handler name in the dedupe key of an order's debit.
pub const DEBIT: &str = "payment.debit-order";
/// The handler name in the dedupe key of a cancelled order's refund.
pub const REFUND: &str = "payment.refund-order";

es_core::domain_events! {
    /// The saga events that move money.
    pub enum SagaEvent {
        /// Shipping allocated the order's shipment: debit the total.
        ShipmentAllocated(events::ShipmentAllocated),
        /// The order was cancelled: refund what was captured.
        OrderCancelled(events::OrderCancelled),
    }
}

/// Debits and refunds orders.
#[derive(Clone)]
pub struct SagaReaction {
    balances: Repository<Balance, JetStreamEventStore>,
}

impl SagaReaction {
    /// A reaction writing through `balances`.
    pub fn new(balances: Repository<Balance, JetStreamEventStore>) -> Self {
        Self { balances }
    }

    async fn execute(
        &self,
        source: &EventMeta,
        customer_id: &str,
        command: BalanceCommand,
        handler: &str,
    ) -> Result<(), ReactionError> {
        let id = AggregateId::parse(customer_id)
            .map_err(|e| ReactionError::Permanent(format!("bad customer id: {e}")))?;
        let context = CommandContext::caused_by(source, handler);
        match self.balances.execute(&id, &command, &context).await {
            Ok(_) => Ok(()),
            // A refund seen before its payment is recorded: retry later.
            Err(ExecuteError::Rejected(error @ BalanceError::PaymentNotFound { .. })) => {
                Err(ReactionError::NotYet(error.to_string()))
            }
            Err(error) => Err(error.into()),
        }
    }
}

impl Reaction for SagaReaction {
    type Event = SagaEvent;

    async fn react(&self, stored: &Recorded<SagaEvent>) -> Result<(), ReactionError> {
        let at_ms = es_core::envelope::now_ms();
        match stored.event.clone() {
            SagaEvent::ShipmentAllocated(allocated) => {
                let amount = Cents::parse_at_most(allocated.total_cents, MAX_CENTS)
                    .map_err(|e| ReactionError::Permanent(format!("bad total: {e}")))?;
                let customer_id = CustomerId::parse(&allocated.customer_id)
                    .map_err(|e| ReactionError::Permanent(format!("bad customer id: {e}")))?;
                let command = BalanceCommand::Debit {
                    transaction_id: AggregateId::new_v7().to_string(),
                    customer_id,
                    // Recorded by the order service after parsing it.
                    order_id: OrderId::from_recorded(&allocated.order_id),
                    amount,
                    shipment_id: allocated.shipment_id,
                    reservation_id: allocated.reservation_id,
                    at_ms,
                };
                self.execute(&stored.meta, &allocated.customer_id, command, DEBIT)
                    .await
            }
            SagaEvent::OrderCancelled(cancelled) => {
                // No transaction named: nothing was captured for the order.
                if cancelled.transaction_id.is_empty() {
                    return Ok(());
                }
                let command = BalanceCommand::Reverse {
                    order_id: OrderId::from_recorded(&cancelled.order_id),
                    at_ms,
                };
                self.execute(&stored.meta, &cancelled.customer_id, command, REFUND)
                    .await
            }
        }
    }
}
