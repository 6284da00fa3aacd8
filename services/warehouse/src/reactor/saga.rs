//! The warehouse's steps of the place-order saga.
//!
//! - `ORDER`: `OrderPriced` reserves every line, all or nothing;
//!   `OrderCancelled` of a paid order returns the consumed reservation's units
//!   ("not yet" until the `PaymentCaptured` consumption has happened, which
//!   may take as long as the payment consumer lags).
//! - `SHIPPING`: `ShipmentAllocationFailed` releases the reservation.
//! - `PAYMENT`: `PaymentFailed` releases the reservation; `PaymentCaptured`
//!   consumes it.
//!
//! # Why an atomic batch for the reservation
//!
//! "Never oversell" is a per-product invariant, kept by each product's
//! [`Stock`] aggregate (`reserved <= on_hand`, checked in `decide` against
//! the subject's expected sequence). "Never a partial reservation" spans the
//! products of one order. We write the holds on every product *and* the
//! order-level outcome on the order's [`Reservation`] in one JetStream 2.12
//! atomic batch (`EventStore::append_atomic`), each commit carrying its
//! aggregate's expected last sequence: either every product still had the
//! units we saw and everything is stored, or nothing is and we reload and
//! decide again. No reader ever sees a partial reservation, and no
//! compensation is needed when a later line is short.
//!
//! The cheaper alternative, reserving product by product with ordinary
//! appends and releasing the earlier holds when a later line is short, costs
//! one ~0.3 ms publish per line instead of one ~2.2 ms batch, but it exposes
//! partial holds to readers and to racing orders (which can then be
//! rejected for stock that is about to be released), and it needs a
//! compensation path that must itself survive crashes. At the saga's rate
//! (one reservation per order, a few lines each) the batch's fixed ~2 ms is
//! a small part of an order's cost, so we chose the simple, strictly
//! all-or-nothing design. Failures (a short product) touch one aggregate
//! only and use an ordinary append.
//!
//! Idempotency: an atomic batch carries no `Nats-Msg-Id`, so a repeated
//! event is recognised by the order's [`Reservation`], which is in every
//! batch. `OrderPriced` finds it decided already; a release, consumption
//! or return finds its step recorded (`ReservationReleased`,
//! `ReservationConsumed`, `ReservationReturned`), because the step is
//! written on the reservation in the same batch as the stock it moves, so
//! a failure or a kill half way never leaves an order half returned. This
//! holds however late the repeat comes: it does not depend on any dedupe
//! key being remembered, only on the order's own short history. Two
//! deliveries racing for one step are decided by the reservation's expected
//! sequence: one batch is stored, the other is refused whole, decides
//! again and finds the step done.
//!
//! # Why the stocks stay cheap to load
//!
//! A [`Stock`] keeps counts only (on hand, reserved) and trusts the units
//! the reservation hands it, so its state does not grow with the orders it
//! served; its repository snapshots it every [`STOCK_SNAPSHOT_EVERY`]
//! events, and since stocks change mostly through these atomic batches
//! (which [`Repository::execute`] does not see), each decision here asks
//! for the snapshot its load made due ([`Repository::snapshot_if_due`]).
//! A reservation on a product with ten thousand past orders thus loads a
//! snapshot and a tail of fewer than [`STOCK_SNAPSHOT_EVERY`] events
//! (`make bench` measures it).

use std::collections::BTreeMap;

use es_core::envelope::EventMeta;
use es_core::reactor::{Reaction, ReactionError};
use es_core::repository::Loaded;
use es_core::{
    Aggregate, AggregateId, AtomicDecision, AtomicExecuted, CommandContext, ExecuteError,
    JetStreamEventStore, Recorded, Repository, RetryPolicy,
};
use stocklet_proto::stocklet::events::v1 as events;

use crate::domain::{
    Quantity, Reservation, ReservationCommand, ReservationError, ReservationState, Stock,
    StockCommand, StockError,
};

/// The handler name in the dedupe key of an order's reservation.
pub const RESERVE: &str = "warehouse.reserve";
/// The handler name in the dedupe key of a released reservation.
pub const RELEASE: &str = "warehouse.release";
/// The handler name in the dedupe key of a consumed reservation.
pub const CONSUME: &str = "warehouse.consume";
/// The handler name in the dedupe key of returned stock.
pub const RETURN: &str = "warehouse.return";

/// How often a step refused by a product is decided again because the
/// reservation moved meanwhile (a concurrent delivery of the same step).
const STALE_RESERVATION_RETRIES: u32 = 3;
/// Attempts at the atomic reservation before the event is retried later:
/// popular products make reservations race often.
const RESERVE_ATTEMPTS: u32 = 30;

/// A product's stock is snapshotted once this many events follow its last
/// snapshot: a load is one snapshot get plus at most this many events.
/// Small, because a snapshot of three counts is cheap to write (in the
/// background) and a hot product's every command loads the tail.
pub const STOCK_SNAPSHOT_EVERY: usize = 32;

es_core::domain_events! {
    /// The saga events that move stock.
    pub enum SagaEvent {
        /// The order was priced: reserve every line, all or nothing.
        OrderPriced(events::OrderPriced),
        /// No shipment could be allocated: release the reservation.
        ShipmentAllocationFailed(events::ShipmentAllocationFailed),
        /// The payment failed: release the reservation.
        PaymentFailed(events::PaymentFailed),
        /// The payment was captured: consume the reservation.
        PaymentCaptured(events::PaymentCaptured),
        /// The order was cancelled: return a paid order's units.
        OrderCancelled(events::OrderCancelled),
    }
}

/// Reserves, releases, consumes and returns stock for orders.
#[derive(Clone)]
pub struct SagaReaction {
    stocks: Repository<Stock, JetStreamEventStore>,
    reservations: Repository<Reservation, JetStreamEventStore>,
}

/// What to do with each product of an order's reservation.
#[derive(Clone, Copy, Debug)]
enum Step {
    Release,
    Consume,
    Return,
}

/// A reservation's decision that can never succeed (a bug or a poison event).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

/// The order's lines as one hold per product: units and unit price.
type Wanted<'a> = BTreeMap<&'a str, (i64, i64)>;

impl SagaReaction {
    /// A reaction writing through `stocks` and `reservations` (one stream).
    pub fn new(
        stocks: Repository<Stock, JetStreamEventStore>,
        reservations: Repository<Reservation, JetStreamEventStore>,
    ) -> Self {
        Self {
            stocks,
            reservations: reservations
                .with_retry_policy(RetryPolicy::default().with_max_attempts(RESERVE_ATTEMPTS)),
        }
    }

    async fn reserve(
        &self,
        source: &EventMeta,
        order: events::OrderPriced,
    ) -> Result<(), ReactionError> {
        let order_id = parse_id(&order.order_id)?;
        let context = CommandContext::caused_by(source, RESERVE);
        // One hold per product, even if a product appears on several lines.
        let mut wanted: Wanted<'_> = BTreeMap::new();
        for line in &order.lines {
            let entry = wanted
                .entry(line.product_id.as_str())
                .or_insert((0, line.unit_price_cents));
            entry.0 = entry.0.saturating_add(line.quantity);
        }
        let decided = self
            .reservations
            .execute_atomic(|| self.decide_reservation(&order_id, &order, &wanted, &context))
            .await;
        let short = match decided {
            Ok(AtomicExecuted {
                outcome: Some(short),
                ..
            }) => short,
            Ok(_) => return Ok(()),
            Err(ExecuteError::Rejected(Refused(reason))) => {
                return Err(ReactionError::Permanent(reason));
            }
            Err(ExecuteError::Conflict { .. }) => {
                return Err(ReactionError::Transient(format!(
                    "reservation of order {order_id} kept losing races"
                )));
            }
            Err(error) => return Err(transient(error)),
        };
        // A failed reservation touches one aggregate only: an ordinary,
        // deduplicated append.
        match self.reservations.execute(&order_id, &short, &context).await {
            Ok(_) => Ok(()),
            Err(ExecuteError::Rejected(error)) => Err(ReactionError::Permanent(error.to_string())),
            Err(error) => Err(transient(error)),
        }
    }

    /// One attempt at an order's reservation: the holds on every product
    /// and the order-level outcome, to be stored in one atomic batch; done
    /// already if the reservation is decided; or, when a product is short,
    /// the failed reservation to record instead (`Done(Some(..))`).
    async fn decide_reservation(
        &self,
        order_id: &AggregateId,
        order: &events::OrderPriced,
        wanted: &Wanted<'_>,
        context: &CommandContext,
    ) -> Result<AtomicDecision<Option<ReservationCommand>>, ExecuteError<Refused>> {
        let reservation = self.reservations.load(order_id).await?;
        if reservation.state.decided() {
            return Ok(AtomicDecision::Done(None));
        }
        let reservation_id = AggregateId::new_v7().to_string();
        let at_ms = es_core::envelope::now_ms();
        let mut short = Vec::new();
        let mut commits = Vec::new();
        for (&product_id, &(units, unit_price_cents)) in wanted {
            let Ok(id) = AggregateId::parse(product_id) else {
                short.push(product_id.to_owned());
                continue;
            };
            let quantity = Quantity::parse(units)
                .map_err(|e| ExecuteError::Rejected(Refused(format!("bad quantity: {e}"))))?;
            let stock = self.stocks.load(&id).await?;
            self.stocks.snapshot_if_due(&stock);
            let command = StockCommand::Reserve {
                reservation_id: reservation_id.clone(),
                order_id: order.order_id.clone(),
                customer_id: order.customer_id.clone(),
                quantity,
                unit_price: crate::domain::Cents::from_recorded(unit_price_cents),
                at_ms,
            };
            match stock.state.decide(&command) {
                Ok(decided) if decided.is_empty() => {}
                Ok(decided) => {
                    commits.push(self.stocks.commit(&id, stock.version, &decided, context));
                }
                Err(StockError::Insufficient { .. } | StockError::NotFound) => {
                    short.push(product_id.to_owned());
                }
                Err(error) => return Err(ExecuteError::Rejected(Refused(error.to_string()))),
            }
        }
        if !short.is_empty() {
            return Ok(AtomicDecision::Done(Some(ReservationCommand::Decide {
                reservation_id,
                order: order.clone(),
                short_product_ids: short,
                at_ms,
            })));
        }
        let command = ReservationCommand::Decide {
            reservation_id,
            order: order.clone(),
            short_product_ids: short,
            at_ms,
        };
        let outcome = reservation
            .state
            .decide(&command)
            .map_err(|e| ExecuteError::Rejected(Refused(e.to_string())))?;
        commits.push(
            self.reservations
                .commit(order_id, reservation.version, &outcome, context),
        );
        Ok(AtomicDecision::Commit {
            commits,
            outcome: None,
        })
    }

    /// Applies `step` to the order's reservation and every product it
    /// holds, in one atomic commit: either the reservation records the step
    /// and every product moves, or nothing is stored, so a failure (or a
    /// kill) half way can never leave an order's stock half returned.
    async fn follow(
        &self,
        source: &EventMeta,
        order_id: &str,
        step: Step,
        handler: &str,
    ) -> Result<(), ReactionError> {
        let id = parse_id(order_id)?;
        let context = CommandContext::caused_by(source, handler);
        let decided = self
            .reservations
            .execute_atomic(|| self.decide_step(&id, step, &context))
            .await;
        match decided {
            Ok(_) => Ok(()),
            Err(ExecuteError::Rejected(FollowError::NotYet(reason))) => {
                Err(ReactionError::NotYet(reason))
            }
            Err(ExecuteError::Rejected(FollowError::Refused(reason))) => {
                Err(ReactionError::Permanent(reason))
            }
            Err(error) => Err(transient(error)),
        }
    }

    /// One attempt at a step of an order: nothing when the reservation has
    /// taken it already (which makes a redelivery harmless, however late),
    /// else the reservation's step and each product's move, decided on
    /// fresh state.
    ///
    /// The reservation is read before its products, so a concurrent
    /// delivery of the same step can land in between: the products then
    /// show the step done while the reservation read says it is not. A
    /// product's refusal is therefore final only if the reservation has not
    /// moved since it was read; otherwise the step is decided again.
    async fn decide_step(
        &self,
        order_id: &AggregateId,
        step: Step,
        context: &CommandContext,
    ) -> Result<AtomicDecision<()>, ExecuteError<FollowError>> {
        let mut attempts = 0;
        loop {
            let reservation = self.reservations.load(order_id).await?;
            let read = reservation.version;
            match self
                .decide_step_once(order_id, reservation, step, context)
                .await
            {
                Err(ExecuteError::Rejected(FollowError::Refused(reason)))
                    if attempts < STALE_RESERVATION_RETRIES =>
                {
                    let now = self.reservations.load(order_id).await?.version;
                    if now == read {
                        return Err(ExecuteError::Rejected(FollowError::Refused(reason)));
                    }
                    attempts += 1;
                }
                decided => return decided,
            }
        }
    }

    async fn decide_step_once(
        &self,
        order_id: &AggregateId,
        reservation: Loaded<Reservation>,
        step: Step,
        context: &CommandContext,
    ) -> Result<AtomicDecision<()>, ExecuteError<FollowError>> {
        let at_ms = es_core::envelope::now_ms();
        let command = match step {
            Step::Release => ReservationCommand::Release { at_ms },
            Step::Consume => ReservationCommand::Consume { at_ms },
            Step::Return => ReservationCommand::Return { at_ms },
        };
        let recorded = match reservation.state.decide(&command) {
            Ok(recorded) => recorded,
            Err(ReservationError::Undecided) => {
                return Err(ExecuteError::Rejected(FollowError::NotYet(format!(
                    "order {order_id} has no reservation yet"
                ))));
            }
            // The cancellation overtook the payment's consumption (they
            // come from different streams): return once it is consumed.
            Err(ReservationError::State {
                state: ReservationState::Reserved,
            }) if matches!(step, Step::Return) => {
                return Err(ExecuteError::Rejected(FollowError::NotYet(format!(
                    "order {order_id}: not consumed yet, so not returnable yet"
                ))));
            }
            Err(error) => {
                return Err(ExecuteError::Rejected(FollowError::Refused(format!(
                    "{step:?} of order {order_id}: {error}"
                ))));
            }
        };
        if recorded.is_empty() {
            return Ok(AtomicDecision::Done(()));
        }
        let reservation_id = reservation
            .state
            .reserved()
            .map(|r| r.reservation_id.clone())
            .unwrap_or_default();
        let mut commits = Vec::new();
        for (product_id, units) in reservation.state.units_by_product() {
            let product = AggregateId::parse(product_id.as_str()).map_err(|e| {
                ExecuteError::Rejected(FollowError::Refused(format!(
                    "order {order_id} holds a bad product id {product_id:?}: {e}"
                )))
            })?;
            let quantity = Quantity::parse(units).map_err(|e| {
                ExecuteError::Rejected(FollowError::Refused(format!(
                    "order {order_id} holds a bad quantity of {product_id}: {e}"
                )))
            })?;
            let stock = self.stocks.load(&product).await?;
            self.stocks.snapshot_if_due(&stock);
            let order = order_id.to_string();
            let reservation_id = reservation_id.clone();
            let moved = match step {
                Step::Release => StockCommand::Release {
                    reservation_id,
                    order_id: order,
                    quantity,
                    at_ms,
                },
                Step::Consume => StockCommand::Consume {
                    reservation_id,
                    order_id: order,
                    quantity,
                    at_ms,
                },
                Step::Return => StockCommand::Return {
                    reservation_id,
                    order_id: order,
                    quantity,
                    at_ms,
                },
            };
            match stock.state.decide(&moved) {
                Ok(decided) => {
                    commits.push(
                        self.stocks
                            .commit(&product, stock.version, &decided, context),
                    );
                }
                Err(error) => {
                    return Err(ExecuteError::Rejected(FollowError::Refused(format!(
                        "{step:?} of order {order_id} on {product}: {error}"
                    ))));
                }
            }
        }
        commits.push(
            self.reservations
                .commit(order_id, reservation.version, &recorded, context),
        );
        Ok(AtomicDecision::Commit {
            commits,
            outcome: (),
        })
    }
}

/// Why a step on an order's stock cannot be stored now.
#[derive(Debug, thiserror::Error)]
enum FollowError {
    /// It depends on an event not handled yet.
    #[error("{0}")]
    NotYet(String),
    /// It can never succeed.
    #[error("{0}")]
    Refused(String),
}

impl Reaction for SagaReaction {
    type Event = SagaEvent;

    async fn react(&self, stored: &Recorded<SagaEvent>) -> Result<(), ReactionError> {
        let source = &stored.meta;
        match stored.event.clone() {
            SagaEvent::OrderPriced(priced) => self.reserve(source, priced).await,
            SagaEvent::ShipmentAllocationFailed(failed) => {
                self.follow(source, &failed.order_id, Step::Release, RELEASE)
                    .await
            }
            SagaEvent::PaymentFailed(failed) => {
                self.follow(source, &failed.order_id, Step::Release, RELEASE)
                    .await
            }
            SagaEvent::PaymentCaptured(captured) => {
                self.follow(source, &captured.order_id, Step::Consume, CONSUME)
                    .await
            }
            SagaEvent::OrderCancelled(cancelled) => {
                // Only a paid order consumed its reservation; an order
                // cancelled before payment holds nothing (its failure path
                // released it).
                if cancelled.transaction_id.is_empty() {
                    return Ok(());
                }
                self.follow(source, &cancelled.order_id, Step::Return, RETURN)
                    .await
            }
        }
    }
}

fn parse_id(raw: &str) -> Result<AggregateId, ReactionError> {
    AggregateId::parse(raw).map_err(|e| ReactionError::Permanent(format!("bad id {raw:?}: {e}")))
}

fn transient(error: impl std::fmt::Display) -> ReactionError {
    ReactionError::Transient(error.to_string())
}
