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

use es_core::reactor::{Reaction, ReactionError};
use es_core::{
    AggregateId, CommandContext, ExecuteError, JetStreamEventStore, Repository, StoredEvent,
};
use prost::{Message, Name};
use stocklet_proto::stocklet::events::v1 as events;

use crate::domain::{Balance, BalanceCommand, BalanceError, Cents, MAX_CENTS};

/// The handler name in the dedupe key of an order's debit.
pub const DEBIT: &str = "payment.debit-order";
/// The handler name in the dedupe key of a cancelled order's refund.
pub const REFUND: &str = "payment.refund-order";

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
        stored: &StoredEvent,
        customer_id: &str,
        command: BalanceCommand,
        handler: &str,
    ) -> Result<(), ReactionError> {
        let id = AggregateId::parse(customer_id)
            .map_err(|e| ReactionError::Permanent(format!("bad customer id: {e}")))?;
        let context = CommandContext::caused_by(&stored.meta, handler);
        match self.balances.execute(&id, &command, &context).await {
            Ok(_) => Ok(()),
            // A refund seen before its payment is recorded: retry later.
            Err(ExecuteError::Rejected(error @ BalanceError::PaymentNotFound { .. })) => {
                Err(ReactionError::Transient(error.to_string()))
            }
            Err(ExecuteError::Rejected(error)) => Err(ReactionError::Permanent(error.to_string())),
            Err(error) => Err(ReactionError::Transient(error.to_string())),
        }
    }
}

impl Reaction for SagaReaction {
    async fn react(&self, stored: &StoredEvent) -> Result<(), ReactionError> {
        let at_ms = es_core::envelope::now_ms();
        if let Some(allocated) = decode::<events::ShipmentAllocated>(stored)? {
            let amount = Cents::parse_at_most(allocated.total_cents, MAX_CENTS)
                .map_err(|e| ReactionError::Permanent(format!("bad total: {e}")))?;
            let command = BalanceCommand::Debit {
                transaction_id: AggregateId::new_v7().to_string(),
                customer_id: allocated.customer_id.clone(),
                order_id: allocated.order_id,
                amount,
                shipment_id: allocated.shipment_id,
                reservation_id: allocated.reservation_id,
                at_ms,
            };
            return self
                .execute(stored, &allocated.customer_id, command, DEBIT)
                .await;
        }
        if let Some(cancelled) = decode::<events::OrderCancelled>(stored)? {
            // No transaction named: nothing was captured for the order.
            if cancelled.transaction_id.is_empty() {
                return Ok(());
            }
            let command = BalanceCommand::Reverse {
                order_id: cancelled.order_id,
                at_ms,
            };
            return self
                .execute(stored, &cancelled.customer_id, command, REFUND)
                .await;
        }
        Ok(())
    }
}

fn decode<T: Message + Name + Default>(stored: &StoredEvent) -> Result<Option<T>, ReactionError> {
    if stored.raw.event_type != T::full_name() {
        return Ok(None);
    }
    T::decode(stored.raw.payload.clone())
        .map(Some)
        .map_err(|e| ReactionError::Permanent(format!("malformed {}: {e}", stored.raw.event_type)))
}
