//! The `Balance` aggregate: one customer's prepaid money.
//!
//! Why the money is one aggregate: "the balance never goes negative" is
//! decided against the money on this one balance, so one aggregate keeps it
//! under concurrency. A failed payment is an event here too
//! (`PaymentFailed`), because the saga must hear about it, and the saga's
//! events stay on the balance's subject where their consumers read them.
//!
//! Why it keeps no per-order record: a busy customer's balance sees events
//! for every order they ever paid, for as long as the shop runs. "Is this
//! order paid, failed or refunded?" is the order-keyed
//! [`Payment`](super::Payment)'s to answer (a handful of events per order),
//! written in the same atomic batch as the balance's events, each commit at
//! its expected sequence. The balance trusts the transaction and amount a
//! reversal hands it. So its state is a few fields, it snapshots in a few
//! bytes ([`SnapshotState`]), a load is a snapshot plus a short tail, and no
//! idempotency depends on how far back its history (or a snapshot's memory
//! of dedupe keys) reaches.
//!
//! Opening and closing tolerate arriving out of order: closing a balance
//! that was never opened records it closed, and opening a closed balance
//! does nothing. Both are idempotent in the state itself.

use es_core::snapshot::SnapshotState;
use prost::Message as _;
use stocklet_proto::stocklet::events::v1 as pb;

use stocklet_values::{Cents, CustomerId, OrderId};

/// The largest amount one command may move: ten billion currency units,
/// above any price or order total ([`Cents::MAX`]). Sums of a few million
/// of them still fit in an `i64`.
pub const MAX_CENTS: i64 = 1_000_000_000_000;
const _: () = assert!(MAX_CENTS > Cents::MAX, "a payment may exceed any one price");

es_core::domain_events! {
    /// Everything that happens to a customer's balance.
    pub enum BalanceEvent {
        Opened(pb::BalanceOpened),
        Credited(pb::BalanceCredited),
        Debited(pb::BalanceDebited),
        Closed(pb::BalanceClosed),
        Captured(pb::PaymentCaptured),
        Failed(pb::PaymentFailed),
        Reversed(pb::TransactionReversed),
    }
}

/// What can be asked of a balance. `at_ms` is the time the caller stamps on
/// the events, and new transaction ids come from the caller too, so
/// deciding stays pure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BalanceCommand {
    /// Opens the balance at zero (reacting to `UserRegistered`).
    Open {
        /// The customer (user id).
        customer_id: CustomerId,
        /// Event time, Unix milliseconds.
        at_ms: i64,
    },
    /// Closes the balance for good (reacting to `UserDeleted`).
    Close {
        /// The customer (user id).
        customer_id: CustomerId,
        /// Event time, Unix milliseconds.
        at_ms: i64,
    },
    /// Tops the balance up (an admin).
    Credit {
        /// The credit's new transaction id.
        transaction_id: String,
        /// The amount, more than zero.
        amount: Cents,
        /// Event time, Unix milliseconds.
        at_ms: i64,
    },
    /// Pays for an order (once per order: the order's
    /// [`Payment`](super::Payment) says whether it is due).
    Debit {
        /// The payment's new transaction id, used only if it is captured.
        transaction_id: String,
        /// The customer (user id).
        customer_id: CustomerId,
        /// The order paid for: the payment's key.
        order_id: OrderId,
        /// The order's total.
        amount: Cents,
        /// The order's shipment, carried to the saga's next step.
        shipment_id: String,
        /// The order's stock reservation, carried to the saga's next step.
        reservation_id: String,
        /// Event time, Unix milliseconds.
        at_ms: i64,
    },
    /// Refunds an order's captured payment (once: the order's
    /// [`Payment`](super::Payment) says whether it is due, and what it was).
    Reverse {
        /// The order whose payment is reversed.
        order_id: OrderId,
        /// The captured payment's transaction.
        transaction_id: String,
        /// The amount captured.
        amount: Cents,
        /// Event time, Unix milliseconds.
        at_ms: i64,
    },
}

/// Why a balance command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BalanceError {
    /// The customer has no balance.
    #[error("no balance for this customer")]
    NotFound,
    /// The balance was closed.
    #[error("the balance is closed")]
    Closed,
    /// A top-up of nothing.
    #[error("the amount must be more than zero")]
    ZeroAmount,
    /// The balance cannot hold that much.
    #[error("the balance cannot grow by {amount}")]
    Overflow {
        /// The amount asked for.
        amount: Cents,
    },
}

/// Where a balance is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BalanceStatus {
    /// Never opened.
    #[default]
    Unopened,
    /// Open: it can be credited and debited.
    Open,
    /// Closed for good.
    Closed,
}

/// A customer's balance: the fold of its events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Balance {
    status: BalanceStatus,
    customer_id: Option<CustomerId>,
    balance: Cents,
    opened_at_ms: i64,
}

impl Balance {
    /// Where the balance is in its life.
    pub fn status(&self) -> BalanceStatus {
        self.status
    }

    /// The customer (user id), once the balance was opened or closed.
    pub fn customer_id(&self) -> Option<&CustomerId> {
        self.customer_id.as_ref()
    }

    /// The customer's id as the events spell it: empty if never opened.
    fn customer_id_str(&self) -> &str {
        self.customer_id.as_ref().map_or("", CustomerId::as_str)
    }

    /// When the balance was opened, Unix milliseconds; zero if never.
    pub fn opened_at_ms(&self) -> i64 {
        self.opened_at_ms
    }

    /// The money available.
    pub fn balance(&self) -> Cents {
        self.balance
    }

    /// The money available, in cents.
    pub fn balance_cents(&self) -> i64 {
        self.balance.get()
    }

    fn open(&self) -> Result<(), BalanceError> {
        match self.status {
            BalanceStatus::Open => Ok(()),
            BalanceStatus::Unopened => Err(BalanceError::NotFound),
            BalanceStatus::Closed => Err(BalanceError::Closed),
        }
    }

    fn debit(&self, command: &BalanceCommand) -> Vec<BalanceEvent> {
        let BalanceCommand::Debit {
            transaction_id,
            customer_id,
            order_id,
            amount,
            shipment_id,
            reservation_id,
            at_ms,
        } = command
        else {
            return Vec::new();
        };
        let left = match self.status {
            BalanceStatus::Open => self
                .balance
                .checked_sub(*amount)
                .ok_or(pb::PaymentFailureReason::InsufficientBalance),
            BalanceStatus::Unopened | BalanceStatus::Closed => {
                Err(pb::PaymentFailureReason::NoBalance)
            }
        };
        let left = match left {
            Ok(left) => left,
            Err(reason) => {
                let balance_cents = if self.status == BalanceStatus::Open {
                    self.balance.get()
                } else {
                    0
                };
                return vec![
                    pb::PaymentFailed {
                        order_id: order_id.to_string(),
                        customer_id: customer_id.to_string(),
                        amount_cents: amount.get(),
                        reason: reason.into(),
                        balance_cents,
                        shipment_id: shipment_id.clone(),
                        reservation_id: reservation_id.clone(),
                        occurred_at_ms: *at_ms,
                    }
                    .into(),
                ];
            }
        };
        vec![
            pb::BalanceDebited {
                customer_id: customer_id.to_string(),
                amount_cents: amount.get(),
                balance_cents: left.get(),
                transaction_id: transaction_id.clone(),
                order_id: order_id.to_string(),
                occurred_at_ms: *at_ms,
            }
            .into(),
            pb::PaymentCaptured {
                transaction_id: transaction_id.clone(),
                order_id: order_id.to_string(),
                customer_id: customer_id.to_string(),
                amount_cents: amount.get(),
                shipment_id: shipment_id.clone(),
                reservation_id: reservation_id.clone(),
                occurred_at_ms: *at_ms,
            }
            .into(),
        ]
    }

    fn reverse(
        &self,
        order_id: &OrderId,
        transaction_id: &str,
        amount: Cents,
        at_ms: i64,
    ) -> Vec<BalanceEvent> {
        // The money was taken from this balance, so giving it back cannot
        // overflow past what it held before.
        let balance_cents = self.balance.saturating_add(amount).get();
        vec![
            pb::TransactionReversed {
                transaction_id: transaction_id.to_owned(),
                order_id: order_id.to_string(),
                customer_id: self.customer_id_str().to_owned(),
                amount_cents: amount.get(),
                occurred_at_ms: at_ms,
            }
            .into(),
            pb::BalanceCredited {
                customer_id: self.customer_id_str().to_owned(),
                amount_cents: amount.get(),
                balance_cents,
                reason: pb::BalanceCreditReason::Refund.into(),
                transaction_id: transaction_id.to_owned(),
                occurred_at_ms: at_ms,
            }
            .into(),
        ]
    }
}

impl es_core::Aggregate for Balance {
    const TYPE: &'static str = "balance";
    type Command = BalanceCommand;
    type Event = BalanceEvent;
    type Error = BalanceError;

    fn decide(&self, command: &BalanceCommand) -> Result<Vec<BalanceEvent>, BalanceError> {
        match command {
            BalanceCommand::Open { customer_id, at_ms } => match self.status {
                BalanceStatus::Unopened => Ok(vec![
                    pb::BalanceOpened {
                        customer_id: customer_id.to_string(),
                        occurred_at_ms: *at_ms,
                    }
                    .into(),
                ]),
                BalanceStatus::Open | BalanceStatus::Closed => Ok(Vec::new()),
            },
            BalanceCommand::Close { customer_id, at_ms } => match self.status {
                BalanceStatus::Closed => Ok(Vec::new()),
                BalanceStatus::Unopened | BalanceStatus::Open => Ok(vec![
                    pb::BalanceClosed {
                        customer_id: customer_id.to_string(),
                        balance_cents: self.balance.get(),
                        occurred_at_ms: *at_ms,
                    }
                    .into(),
                ]),
            },
            BalanceCommand::Credit {
                transaction_id,
                amount,
                at_ms,
            } => {
                self.open()?;
                if amount.is_zero() {
                    return Err(BalanceError::ZeroAmount);
                }
                let balance = self
                    .balance
                    .checked_add(*amount)
                    .ok_or(BalanceError::Overflow { amount: *amount })?;
                Ok(vec![
                    pb::BalanceCredited {
                        customer_id: self.customer_id_str().to_owned(),
                        amount_cents: amount.get(),
                        balance_cents: balance.get(),
                        reason: pb::BalanceCreditReason::TopUp.into(),
                        transaction_id: transaction_id.clone(),
                        occurred_at_ms: *at_ms,
                    }
                    .into(),
                ])
            }
            BalanceCommand::Debit { .. } => Ok(self.debit(command)),
            BalanceCommand::Reverse {
                order_id,
                transaction_id,
                amount,
                at_ms,
            } => Ok(self.reverse(order_id, transaction_id, *amount, *at_ms)),
        }
    }

    fn apply(&mut self, event: &BalanceEvent) {
        match event {
            BalanceEvent::Opened(e) => {
                self.status = BalanceStatus::Open;
                self.customer_id = Some(CustomerId::from_recorded(&e.customer_id));
                self.opened_at_ms = e.occurred_at_ms;
            }
            BalanceEvent::Credited(e) => self.balance = Cents::from_recorded(e.balance_cents),
            BalanceEvent::Debited(e) => self.balance = Cents::from_recorded(e.balance_cents),
            BalanceEvent::Closed(e) => {
                self.status = BalanceStatus::Closed;
                self.customer_id = Some(CustomerId::from_recorded(&e.customer_id));
            }
            // Saga outcomes: the money moved in the events around them, and
            // the order's record is its Payment.
            BalanceEvent::Captured(_) | BalanceEvent::Failed(_) | BalanceEvent::Reversed(_) => {}
        }
    }
}

/// A balance's state as a snapshot stores it.
#[derive(Clone, PartialEq, prost::Message)]
struct BalanceSnapshot {
    /// 0 unopened, 1 open, 2 closed.
    #[prost(uint32, tag = "1")]
    status: u32,
    /// Empty until opened or closed.
    #[prost(string, tag = "2")]
    customer_id: String,
    #[prost(int64, tag = "3")]
    balance_cents: i64,
    #[prost(int64, tag = "4")]
    opened_at_ms: i64,
}

impl SnapshotState for Balance {
    const SNAPSHOT_VERSION: u32 = 1;

    fn to_snapshot(&self) -> Vec<u8> {
        BalanceSnapshot {
            status: match self.status {
                BalanceStatus::Unopened => 0,
                BalanceStatus::Open => 1,
                BalanceStatus::Closed => 2,
            },
            customer_id: self.customer_id_str().to_owned(),
            balance_cents: self.balance.get(),
            opened_at_ms: self.opened_at_ms,
        }
        .encode_to_vec()
    }

    fn from_snapshot(bytes: &[u8]) -> Option<Self> {
        let snapshot = BalanceSnapshot::decode(bytes).ok()?;
        let status = match snapshot.status {
            0 => BalanceStatus::Unopened,
            1 => BalanceStatus::Open,
            2 => BalanceStatus::Closed,
            _ => return None,
        };
        Some(Self {
            status,
            customer_id: Some(snapshot.customer_id)
                .filter(|id| !id.is_empty())
                .map(|id| CustomerId::from_recorded(&id)),
            balance: Cents::from_recorded(snapshot.balance_cents),
            opened_at_ms: snapshot.opened_at_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use es_core::Aggregate;
    use es_core::testing::{given, given_no_events};
    use proptest::prelude::*;

    use super::*;

    const C: &str = "c1";
    const AT: i64 = 1_700_000_000_000;

    fn cents(n: i64) -> Cents {
        Cents::parse(n).unwrap()
    }

    fn customer() -> CustomerId {
        CustomerId::parse(C).unwrap()
    }

    /// Test orders are named `o1`, `o2`..., as the events record them.
    fn order(id: &str) -> OrderId {
        OrderId::from_recorded(id)
    }

    fn opened() -> BalanceEvent {
        pb::BalanceOpened {
            customer_id: C.into(),
            occurred_at_ms: AT,
        }
        .into()
    }

    fn credited(amount: i64, balance: i64, tx: &str) -> BalanceEvent {
        pb::BalanceCredited {
            customer_id: C.into(),
            amount_cents: amount,
            balance_cents: balance,
            reason: pb::BalanceCreditReason::TopUp.into(),
            transaction_id: tx.into(),
            occurred_at_ms: AT,
        }
        .into()
    }

    fn refunded(amount: i64, balance: i64, tx: &str) -> BalanceEvent {
        pb::BalanceCredited {
            reason: pb::BalanceCreditReason::Refund.into(),
            ..match credited(amount, balance, tx) {
                BalanceEvent::Credited(e) => e,
                _ => unreachable!(),
            }
        }
        .into()
    }

    fn credit(amount: i64, tx: &str) -> BalanceCommand {
        BalanceCommand::Credit {
            transaction_id: tx.into(),
            amount: cents(amount),
            at_ms: AT,
        }
    }

    fn debit(id: &str, amount: i64) -> BalanceCommand {
        BalanceCommand::Debit {
            transaction_id: format!("t-{id}"),
            customer_id: customer(),
            order_id: order(id),
            amount: cents(amount),
            shipment_id: format!("s-{id}"),
            reservation_id: format!("r-{id}"),
            at_ms: AT,
        }
    }

    fn debited(order: &str, amount: i64, balance: i64) -> [BalanceEvent; 2] {
        [
            pb::BalanceDebited {
                customer_id: C.into(),
                amount_cents: amount,
                balance_cents: balance,
                transaction_id: format!("t-{order}"),
                order_id: order.into(),
                occurred_at_ms: AT,
            }
            .into(),
            pb::PaymentCaptured {
                transaction_id: format!("t-{order}"),
                order_id: order.into(),
                customer_id: C.into(),
                amount_cents: amount,
                shipment_id: format!("s-{order}"),
                reservation_id: format!("r-{order}"),
                occurred_at_ms: AT,
            }
            .into(),
        ]
    }

    fn failed(
        order: &str,
        amount: i64,
        reason: pb::PaymentFailureReason,
        balance: i64,
    ) -> BalanceEvent {
        pb::PaymentFailed {
            order_id: order.into(),
            customer_id: C.into(),
            amount_cents: amount,
            reason: reason.into(),
            balance_cents: balance,
            shipment_id: format!("s-{order}"),
            reservation_id: format!("r-{order}"),
            occurred_at_ms: AT,
        }
        .into()
    }

    fn reverse(id: &str, amount: i64) -> BalanceCommand {
        BalanceCommand::Reverse {
            order_id: order(id),
            transaction_id: format!("t-{id}"),
            amount: cents(amount),
            at_ms: AT,
        }
    }

    #[test]
    fn opening_starts_at_zero_and_happens_once() {
        let balance = given_no_events::<Balance>()
            .when(BalanceCommand::Open {
                customer_id: customer(),
                at_ms: AT,
            })
            .then_expect_events([opened()]);
        assert_eq!(
            (balance.status(), balance.balance_cents()),
            (BalanceStatus::Open, 0)
        );
        given::<Balance>([opened()])
            .when(BalanceCommand::Open {
                customer_id: customer(),
                at_ms: AT,
            })
            .then_expect_events([]);
    }

    #[test]
    fn closing_is_final_even_before_opening() {
        let closed = |balance| -> BalanceEvent {
            pb::BalanceClosed {
                customer_id: C.into(),
                balance_cents: balance,
                occurred_at_ms: AT,
            }
            .into()
        };
        let close = || BalanceCommand::Close {
            customer_id: customer(),
            at_ms: AT,
        };
        given::<Balance>([opened(), credited(500, 500, "t0")])
            .when(close())
            .then_expect_events([closed(500)]);
        // UserDeleted overtook UserRegistered: close anyway, then ignore the open.
        given_no_events::<Balance>()
            .when(close())
            .then_expect_events([closed(0)]);
        given::<Balance>([closed(0)])
            .when(BalanceCommand::Open {
                customer_id: customer(),
                at_ms: AT,
            })
            .then_expect_events([]);
        given::<Balance>([closed(0)])
            .when(close())
            .then_expect_events([]);
        given::<Balance>([opened(), closed(0)])
            .when(credit(100, "t1"))
            .then_expect_error(|e| *e == BalanceError::Closed);
    }

    #[test]
    fn crediting_tops_up_an_open_balance() {
        let balance = given::<Balance>([opened(), credited(500, 500, "t0")])
            .when(credit(250, "t1"))
            .then_expect_events([credited(250, 750, "t1")]);
        assert_eq!(balance.balance_cents(), 750);
        given_no_events::<Balance>()
            .when(credit(250, "t1"))
            .then_expect_error(|e| *e == BalanceError::NotFound);
        given::<Balance>([opened()])
            .when(BalanceCommand::Credit {
                transaction_id: "t1".into(),
                amount: Cents::ZERO,
                at_ms: AT,
            })
            .then_expect_error(|e| *e == BalanceError::ZeroAmount);
    }

    #[test]
    fn one_command_moves_at_most_max_cents() {
        let top_up = |n| Cents::parse_positive_at_most(n, MAX_CENTS).map_err(|e| e.to_string());
        assert_eq!(top_up(MAX_CENTS).map(Cents::get), Ok(MAX_CENTS));
        assert_eq!(
            top_up(MAX_CENTS + 1),
            Err("must be at most 1000000000000 cents".into())
        );
        assert_eq!(top_up(0), Err("must be more than zero".into()));
        assert_eq!(top_up(-1), Err("must not be negative".into()));
    }

    #[test]
    fn crediting_cannot_overflow() {
        given::<Balance>([opened(), credited(1, i64::MAX - 10, "t0")])
            .when(credit(11, "t1"))
            .then_expect_error(|e| matches!(e, BalanceError::Overflow { .. }));
    }

    #[test]
    fn debiting_captures_a_payment() {
        let balance = given::<Balance>([opened(), credited(1000, 1000, "t0")])
            .when(debit("o1", 600))
            .then_expect_events(debited("o1", 600, 400));
        assert_eq!(balance.balance_cents(), 400);
    }

    #[test]
    fn debiting_more_than_the_balance_fails_the_payment() {
        use pb::PaymentFailureReason::{InsufficientBalance, NoBalance};
        let balance = given::<Balance>([opened(), credited(500, 500, "t0")])
            .when(debit("o1", 600))
            .then_expect_events([failed("o1", 600, InsufficientBalance, 500)]);
        assert_eq!(balance.balance_cents(), 500);
        given_no_events::<Balance>()
            .when(debit("o1", 600))
            .then_expect_events([failed("o1", 600, NoBalance, 0)]);
    }

    #[test]
    fn a_free_order_is_captured_for_zero() {
        given::<Balance>([opened()])
            .when(debit("o1", 0))
            .then_expect_events(debited("o1", 0, 0));
    }

    #[test]
    fn reversing_refunds_the_payment_it_is_handed() {
        let mut history = vec![opened(), credited(1000, 1000, "t0")];
        history.extend(debited("o1", 600, 400));
        let balance = given::<Balance>(history)
            .when(reverse("o1", 600))
            .then_expect_events([
                pb::TransactionReversed {
                    transaction_id: "t-o1".into(),
                    order_id: "o1".into(),
                    customer_id: C.into(),
                    amount_cents: 600,
                    occurred_at_ms: AT,
                }
                .into(),
                refunded(600, 1000, "t-o1"),
            ]);
        assert_eq!(balance.balance_cents(), 1000);
    }

    fn balance_events_of_reverse() -> Vec<BalanceEvent> {
        let mut history = vec![opened(), credited(1000, 1000, "t0")];
        history.extend(debited("o1", 600, 400));
        Balance::from_events(&history)
            .decide(&reverse("o1", 600))
            .unwrap()
    }

    #[test]
    fn the_snapshot_round_trips() {
        let closed: BalanceEvent = pb::BalanceClosed {
            customer_id: C.into(),
            balance_cents: 5,
            occurred_at_ms: AT,
        }
        .into();
        for balance in [
            Balance::default(),
            Balance::from_events(&[opened(), credited(500, 500, "t0")]),
            Balance::from_events(&[opened(), closed]),
        ] {
            assert_eq!(
                Balance::from_snapshot(&balance.to_snapshot()),
                Some(balance)
            );
        }
        assert_eq!(Balance::from_snapshot(&[0xff]), None);
    }

    #[test]
    fn events_round_trip_through_protobuf() {
        use es_core::DomainEvent;
        let mut events = vec![opened(), credited(1, 1, "t")];
        events.extend(debited("o1", 1, 0));
        events.push(failed("o2", 5, pb::PaymentFailureReason::NoBalance, 0));
        events.extend(balance_events_of_reverse());
        for event in events {
            assert_eq!(BalanceEvent::decode(&event.to_raw()).unwrap(), event);
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Credit(i64),
        Debit(u8, i64),
        Reverse(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1i64..1_000).prop_map(Op::Credit),
            (0u8..6, 0i64..1_500).prop_map(|(o, n)| Op::Debit(o, n)),
            (0u8..6).prop_map(Op::Reverse),
        ]
    }

    proptest! {
        /// Driven the way the saga drives it (each order debited at most
        /// once and refunded at most once, as its Payment allows), the
        /// balance never goes negative and is exactly credits minus net
        /// payments.
        #[test]
        fn balance_never_goes_negative(ops in proptest::collection::vec(op(), 0..60)) {
            use std::collections::BTreeMap;
            let mut balance = Balance::from_events(&[opened()]);
            let mut credits = 0i64;
            // Per order: Some(amount) captured and not refunded, None settled.
            let mut payments: BTreeMap<u8, Option<i64>> = BTreeMap::new();
            for (i, op) in ops.into_iter().enumerate() {
                let command = match op {
                    Op::Credit(n) => credit(n, &format!("t{i}")),
                    Op::Debit(o, n) if !payments.contains_key(&o) => debit(&format!("o{o}"), n),
                    Op::Reverse(o) => match payments.get(&o) {
                        Some(Some(n)) => reverse(&format!("o{o}"), *n),
                        _ => continue,
                    },
                    Op::Debit(..) => continue,
                };
                if let Ok(events) = balance.decide(&command) {
                    for event in &events {
                        balance.apply(event);
                        match event {
                            BalanceEvent::Captured(e) => {
                                payments.insert(op_order(&e.order_id), Some(e.amount_cents));
                            }
                            BalanceEvent::Failed(e) => {
                                payments.insert(op_order(&e.order_id), None);
                            }
                            BalanceEvent::Reversed(e) => {
                                payments.insert(op_order(&e.order_id), None);
                            }
                            _ => {}
                        }
                    }
                    if let Op::Credit(n) = op { credits += n; }
                }
                prop_assert!(balance.balance_cents() >= 0);
                let paid: i64 = payments.values().flatten().sum();
                prop_assert_eq!(balance.balance_cents(), credits - paid);
            }
        }
    }

    fn op_order(order_id: &str) -> u8 {
        order_id.trim_start_matches('o').parse().unwrap()
    }
}
