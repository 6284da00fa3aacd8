//! The `Payment` aggregate: the payment service's record of one order's
//! payment, keyed by the order id (`payment.payment.<order id>`).
//!
//! The money moves on the customer's [`Balance`](super::Balance); this
//! record says what happened to the order's payment: captured (under which
//! transaction, for how much), failed, and whether a captured payment was
//! reversed. It is written in the same atomic batch as the balance's
//! events, each commit at its aggregate's expected sequence, so it says
//! "captured" exactly when the money was taken.
//!
//! Why a record per order: "an order is paid at most once" and "refunded
//! at most once" must hold however late a saga event is redelivered. Kept
//! on the balance, the answer needed the customer's whole history (or a
//! dedupe key still remembered by a snapshot, which keeps only the most
//! recent 256). Kept here, it is a handful of events, forever.

use stocklet_proto::stocklet::events::v1 as pb;

use stocklet_values::{Cents, CustomerId, OrderId};

es_core::domain_events! {
    /// Everything that happens to an order's payment.
    pub enum PaymentEvent {
        // The order's total was taken from the balance.
        Captured(pb::OrderPaymentCaptured),
        // The balance could not pay.
        Failed(pb::OrderPaymentFailed),
        // The captured payment was refunded.
        Reversed(pb::OrderPaymentReversed),
    }
}

/// What can be asked of an order's payment. `at_ms` is the time the
/// caller stamps on the events, so deciding stays pure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaymentCommand {
    /// Records the capture the balance decided.
    Capture {
        /// The order.
        order_id: OrderId,
        /// The customer whose balance paid.
        customer_id: CustomerId,
        /// The payment's transaction.
        transaction_id: String,
        /// The amount debited.
        amount: Cents,
        /// Event time, Unix milliseconds.
        at_ms: i64,
    },
    /// Records the failure the balance decided.
    Fail {
        /// The order.
        order_id: OrderId,
        /// The customer.
        customer_id: CustomerId,
        /// The amount that could not be debited.
        amount: Cents,
        /// Why.
        reason: pb::PaymentFailureReason,
        /// Event time, Unix milliseconds.
        at_ms: i64,
    },
    /// Records the refund of a captured payment.
    Reverse {
        /// Event time, Unix milliseconds.
        at_ms: i64,
    },
}

/// Why a payment command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// The order was never paid (or its payment is not recorded yet).
    #[error("order has no payment")]
    NotFound,
    /// The order's payment failed, so there is nothing to reverse.
    #[error("the order's payment was not captured")]
    NotCaptured,
}

/// How an order's payment went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaymentOutcome {
    /// Debited, under this transaction.
    Captured {
        /// The customer whose balance paid.
        customer_id: CustomerId,
        /// The payment's transaction.
        transaction_id: String,
        /// The amount debited.
        amount: Cents,
        /// Whether it was refunded.
        reversed: bool,
    },
    /// Not debited.
    Failed,
}

/// An order's payment: the fold of its events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Payment {
    order_id: Option<OrderId>,
    outcome: Option<PaymentOutcome>,
}

impl Payment {
    /// How the payment went; `None` before it was attempted.
    pub fn outcome(&self) -> Option<&PaymentOutcome> {
        self.outcome.as_ref()
    }

    /// Whether the payment was attempted (captured or failed): a debit is
    /// then never due again.
    pub fn settled(&self) -> bool {
        self.outcome.is_some()
    }
}

impl es_core::Aggregate for Payment {
    const TYPE: &'static str = "payment";
    type Command = PaymentCommand;
    type Event = PaymentEvent;
    type Error = PaymentError;

    fn decide(&self, command: &PaymentCommand) -> Result<Vec<PaymentEvent>, PaymentError> {
        match command {
            PaymentCommand::Capture {
                order_id,
                customer_id,
                transaction_id,
                amount,
                at_ms,
            } => {
                if self.settled() {
                    return Ok(Vec::new());
                }
                Ok(vec![
                    pb::OrderPaymentCaptured {
                        order_id: order_id.to_string(),
                        customer_id: customer_id.to_string(),
                        transaction_id: transaction_id.clone(),
                        amount_cents: amount.get(),
                        occurred_at_ms: *at_ms,
                    }
                    .into(),
                ])
            }
            PaymentCommand::Fail {
                order_id,
                customer_id,
                amount,
                reason,
                at_ms,
            } => {
                if self.settled() {
                    return Ok(Vec::new());
                }
                Ok(vec![
                    pb::OrderPaymentFailed {
                        order_id: order_id.to_string(),
                        customer_id: customer_id.to_string(),
                        amount_cents: amount.get(),
                        reason: (*reason).into(),
                        occurred_at_ms: *at_ms,
                    }
                    .into(),
                ])
            }
            PaymentCommand::Reverse { at_ms } => match &self.outcome {
                None => Err(PaymentError::NotFound),
                Some(PaymentOutcome::Failed) => Err(PaymentError::NotCaptured),
                Some(PaymentOutcome::Captured { reversed: true, .. }) => Ok(Vec::new()),
                Some(PaymentOutcome::Captured {
                    customer_id,
                    transaction_id,
                    amount,
                    reversed: false,
                }) => Ok(vec![
                    pb::OrderPaymentReversed {
                        order_id: self
                            .order_id
                            .as_ref()
                            .map(OrderId::to_string)
                            .unwrap_or_default(),
                        customer_id: customer_id.to_string(),
                        transaction_id: transaction_id.clone(),
                        amount_cents: amount.get(),
                        occurred_at_ms: *at_ms,
                    }
                    .into(),
                ]),
            },
        }
    }

    fn apply(&mut self, event: &PaymentEvent) {
        match event {
            PaymentEvent::Captured(e) => {
                self.order_id = Some(OrderId::from_recorded(&e.order_id));
                self.outcome = Some(PaymentOutcome::Captured {
                    customer_id: CustomerId::from_recorded(&e.customer_id),
                    transaction_id: e.transaction_id.clone(),
                    amount: Cents::from_recorded(e.amount_cents),
                    reversed: false,
                });
            }
            PaymentEvent::Failed(e) => {
                self.order_id = Some(OrderId::from_recorded(&e.order_id));
                self.outcome = Some(PaymentOutcome::Failed);
            }
            PaymentEvent::Reversed(_) => {
                if let Some(PaymentOutcome::Captured { reversed, .. }) = &mut self.outcome {
                    *reversed = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use es_core::testing::{given, given_no_events};

    use super::*;

    const AT: i64 = 1_700_000_000_000;

    fn capture() -> PaymentCommand {
        PaymentCommand::Capture {
            order_id: OrderId::from_recorded("o1"),
            customer_id: CustomerId::from_recorded("c1"),
            transaction_id: "t1".into(),
            amount: Cents::from_recorded(600),
            at_ms: AT,
        }
    }

    fn fail() -> PaymentCommand {
        PaymentCommand::Fail {
            order_id: OrderId::from_recorded("o1"),
            customer_id: CustomerId::from_recorded("c1"),
            amount: Cents::from_recorded(600),
            reason: pb::PaymentFailureReason::InsufficientBalance,
            at_ms: AT,
        }
    }

    fn captured() -> PaymentEvent {
        pb::OrderPaymentCaptured {
            order_id: "o1".into(),
            customer_id: "c1".into(),
            transaction_id: "t1".into(),
            amount_cents: 600,
            occurred_at_ms: AT,
        }
        .into()
    }

    fn failed() -> PaymentEvent {
        pb::OrderPaymentFailed {
            order_id: "o1".into(),
            customer_id: "c1".into(),
            amount_cents: 600,
            reason: pb::PaymentFailureReason::InsufficientBalance.into(),
            occurred_at_ms: AT,
        }
        .into()
    }

    fn reversed() -> PaymentEvent {
        pb::OrderPaymentReversed {
            order_id: "o1".into(),
            customer_id: "c1".into(),
            transaction_id: "t1".into(),
            amount_cents: 600,
            occurred_at_ms: AT,
        }
        .into()
    }

    const REVERSE: PaymentCommand = PaymentCommand::Reverse { at_ms: AT };

    #[test]
    fn an_order_is_settled_once_captured_or_failed() {
        let payment = given_no_events::<Payment>()
            .when(capture())
            .then_expect_events([captured()]);
        assert!(payment.settled());
        for command in [capture(), fail()] {
            given::<Payment>([captured()])
                .when(command.clone())
                .then_expect_events([]);
            // Failed once, failed for good: topping up does not retry it.
            given::<Payment>([failed()])
                .when(command)
                .then_expect_events([]);
        }
        given_no_events::<Payment>()
            .when(fail())
            .then_expect_events([failed()]);
    }

    #[test]
    fn a_captured_payment_is_reversed_once() {
        let payment = given::<Payment>([captured()])
            .when(REVERSE)
            .then_expect_events([reversed()]);
        assert!(matches!(
            payment.outcome(),
            Some(PaymentOutcome::Captured { reversed: true, .. })
        ));
        given::<Payment>([captured(), reversed()])
            .when(REVERSE)
            .then_expect_events([]);
    }

    #[test]
    fn only_captured_payments_can_be_reversed() {
        given_no_events::<Payment>()
            .when(REVERSE)
            .then_expect_error(|e| *e == PaymentError::NotFound);
        given::<Payment>([failed()])
            .when(REVERSE)
            .then_expect_error(|e| *e == PaymentError::NotCaptured);
    }

    #[test]
    fn events_round_trip_through_protobuf() {
        use es_core::DomainEvent;
        for event in [captured(), failed(), reversed()] {
            assert_eq!(PaymentEvent::decode(&event.to_raw()).unwrap(), event);
        }
    }
}
