//! The payment steps of the place-order saga.
//!
//! - `SHIPPING`: `ShipmentAllocated` debits the order's total from the
//!   customer's balance: `BalanceDebited` + `PaymentCaptured`, or
//!   `PaymentFailed` when the balance is short (or not open).
//! - `ORDER`: `OrderCancelled` reverses the order's captured payment
//!   (`TransactionReversed` + a refund credit).
//!
//! # One atomic batch per step
//!
//! The money moves on the customer's [`Balance`]; whether the order's
//! payment is due, done or refundable is the order-keyed [`Payment`]'s to
//! say. Each step writes both in one JetStream atomic batch
//! ([`Repository::execute_atomic`]), each commit at its aggregate's
//! expected sequence: the payment record says "captured" exactly when the
//! money was taken, and "reversed" exactly when it was given back.
//!
//! Idempotency does not depend on the balance's history: a redelivered
//! `ShipmentAllocated` finds the order's payment settled, a redelivered
//! `OrderCancelled` finds it reversed, however late they come (long after
//! their dedupe keys left the duplicate window and any balance snapshot's
//! memory of the 256 most recent keys). Two deliveries racing for the same
//! step are decided by the payment record's expected sequence: one batch
//! is stored, the other refused whole; it decides again and finds the step
//! done. This costs one ~2 ms batch per debit or refund instead of one
//! ~0.3 ms append, once per order: small next to the order's saga, and what
//! lets a busy customer's balance stay a few fields, snapshotted every
//! [`BALANCE_SNAPSHOT_EVERY`] events.

use es_core::reactor::{Reaction, ReactionError};
use es_core::{
    Aggregate as _, AggregateId, AtomicDecision, CommandContext, ExecuteError, JetStreamEventStore,
    Recorded, Repository, RetryPolicy,
};
use stocklet_proto::stocklet::events::v1 as events;

use crate::domain::{
    Balance, BalanceCommand, BalanceEvent, Cents, CustomerId, MAX_CENTS, OrderId, Payment,
    PaymentCommand, PaymentError, PaymentOutcome,
};

/// The handler name in the dedupe key of an order's debit.
pub const DEBIT: &str = "payment.debit-order";
/// The handler name in the dedupe key of a cancelled order's refund.
pub const REFUND: &str = "payment.refund-order";

/// A balance is snapshotted once this many events follow its last
/// snapshot: a load is one snapshot get plus at most this many events.
pub const BALANCE_SNAPSHOT_EVERY: usize = 32;

/// Attempts at a step before the event is retried later: a customer's
/// orders may race on their balance.
const STEP_ATTEMPTS: u32 = 30;

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
    payments: Repository<Payment, JetStreamEventStore>,
}

/// Why a step cannot be stored now.
#[derive(Debug, thiserror::Error)]
enum StepError {
    /// It depends on an event not handled yet.
    #[error("{0}")]
    NotYet(String),
    /// It can never succeed.
    #[error("{0}")]
    Refused(String),
}

impl SagaReaction {
    /// A reaction writing through `balances` and `payments` (one stream).
    pub fn new(
        balances: Repository<Balance, JetStreamEventStore>,
        payments: Repository<Payment, JetStreamEventStore>,
    ) -> Self {
        Self {
            balances: balances
                .with_retry_policy(RetryPolicy::default().with_max_attempts(STEP_ATTEMPTS)),
            payments,
        }
    }

    /// Runs one step's attempts; maps what went wrong onto the reactor's
    /// retry kinds.
    async fn run<F, Fut>(&self, decide: F) -> Result<(), ReactionError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<AtomicDecision<()>, ExecuteError<StepError>>>,
    {
        match self.balances.execute_atomic(decide).await {
            Ok(_) => Ok(()),
            Err(ExecuteError::Rejected(StepError::NotYet(reason))) => {
                Err(ReactionError::NotYet(reason))
            }
            Err(ExecuteError::Rejected(StepError::Refused(reason))) => {
                Err(ReactionError::Permanent(reason))
            }
            Err(error) => Err(ReactionError::Transient(error.to_string())),
        }
    }

    /// One attempt at an order's debit: nothing if its payment is settled,
    /// else the balance's decision and the payment's record of it.
    async fn decide_debit(
        &self,
        customer: &AggregateId,
        order: &AggregateId,
        command: &BalanceCommand,
        context: &CommandContext,
    ) -> Result<AtomicDecision<()>, ExecuteError<StepError>> {
        let payment = self.payments.load(order).await?;
        if payment.state.settled() {
            return Ok(AtomicDecision::Done(()));
        }
        let balance = self.balances.load(customer).await?;
        self.balances.snapshot_if_due(&balance);
        let moved = balance
            .state
            .decide(command)
            .map_err(|e| ExecuteError::Rejected(StepError::Refused(e.to_string())))?;
        let record = match moved.last() {
            Some(BalanceEvent::Captured(e)) => PaymentCommand::Capture {
                order_id: OrderId::from_recorded(&e.order_id),
                customer_id: CustomerId::from_recorded(&e.customer_id),
                transaction_id: e.transaction_id.clone(),
                amount: Cents::from_recorded(e.amount_cents),
                at_ms: e.occurred_at_ms,
            },
            Some(BalanceEvent::Failed(e)) => PaymentCommand::Fail {
                order_id: OrderId::from_recorded(&e.order_id),
                customer_id: CustomerId::from_recorded(&e.customer_id),
                amount: Cents::from_recorded(e.amount_cents),
                reason: e.reason(),
                at_ms: e.occurred_at_ms,
            },
            _ => {
                return Err(ExecuteError::Rejected(StepError::Refused(format!(
                    "the debit of order {order} decided {moved:?}"
                ))));
            }
        };
        let recorded = payment
            .state
            .decide(&record)
            .map_err(|e| ExecuteError::Rejected(StepError::Refused(e.to_string())))?;
        Ok(AtomicDecision::Commit {
            commits: vec![
                self.balances
                    .commit(customer, balance.version, &moved, context),
                self.payments
                    .commit(order, payment.version, &recorded, context),
            ],
            outcome: (),
        })
    }

    /// One attempt at an order's refund: nothing if its payment is reversed
    /// already, else the payment's reversal and the balance's refund of the
    /// captured transaction.
    async fn decide_refund(
        &self,
        order: &AggregateId,
        at_ms: i64,
        context: &CommandContext,
    ) -> Result<AtomicDecision<()>, ExecuteError<StepError>> {
        let payment = self.payments.load(order).await?;
        let recorded = match payment.state.decide(&PaymentCommand::Reverse { at_ms }) {
            Ok(recorded) => recorded,
            // A refund seen before its payment is recorded: retry later.
            Err(error @ PaymentError::NotFound) => {
                return Err(ExecuteError::Rejected(StepError::NotYet(format!(
                    "order {order}: {error}"
                ))));
            }
            Err(error @ PaymentError::NotCaptured) => {
                return Err(ExecuteError::Rejected(StepError::Refused(format!(
                    "order {order}: {error}"
                ))));
            }
        };
        let Some(PaymentOutcome::Captured {
            customer_id,
            transaction_id,
            amount,
            ..
        }) = payment.state.outcome().filter(|_| !recorded.is_empty())
        else {
            return Ok(AtomicDecision::Done(()));
        };
        let customer = AggregateId::parse(customer_id.as_str()).map_err(|e| {
            ExecuteError::Rejected(StepError::Refused(format!(
                "order {order} was paid by a bad customer id: {e}"
            )))
        })?;
        let balance = self.balances.load(&customer).await?;
        self.balances.snapshot_if_due(&balance);
        let refund = BalanceCommand::Reverse {
            order_id: OrderId::from_recorded(order.as_str()),
            transaction_id: transaction_id.clone(),
            amount: *amount,
            at_ms,
        };
        let moved = balance
            .state
            .decide(&refund)
            .map_err(|e| ExecuteError::Rejected(StepError::Refused(e.to_string())))?;
        Ok(AtomicDecision::Commit {
            commits: vec![
                self.balances
                    .commit(&customer, balance.version, &moved, context),
                self.payments
                    .commit(order, payment.version, &recorded, context),
            ],
            outcome: (),
        })
    }
}

fn parse_id(what: &str, raw: &str) -> Result<AggregateId, ReactionError> {
    AggregateId::parse(raw).map_err(|e| ReactionError::Permanent(format!("bad {what}: {e}")))
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
                let customer = parse_id("customer id", &allocated.customer_id)?;
                let order = parse_id("order id", &allocated.order_id)?;
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
                let context = CommandContext::caused_by(&stored.meta, DEBIT);
                self.run(|| self.decide_debit(&customer, &order, &command, &context))
                    .await
            }
            SagaEvent::OrderCancelled(cancelled) => {
                // No transaction named: nothing was captured for the order.
                if cancelled.transaction_id.is_empty() {
                    return Ok(());
                }
                let order = parse_id("order id", &cancelled.order_id)?;
                let context = CommandContext::caused_by(&stored.meta, REFUND);
                self.run(|| self.decide_refund(&order, at_ms, &context))
                    .await
            }
        }
    }
}
