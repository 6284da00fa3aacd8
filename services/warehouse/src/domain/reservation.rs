//! The `Reservation` aggregate: the warehouse's record of one order, keyed
//! by the order id (`warehouse.reservation.<order id>`), from its
//! reservation to its last step.
//!
//! The units themselves are counted on each product's [`Stock`](super::Stock).
//! This aggregate holds what the other services react to (one
//! `StockReserved` with every line and the order's totals, or one
//! `StockReservationFailed` listing the short products) and where the
//! order's hold stands: reserved, then released, or consumed and perhaps
//! returned (`ReservationReleased`, `ReservationConsumed`,
//! `ReservationReturned`).
//!
//! Why the per-order state lives here and not on the stocks: an order has
//! a handful of events, a popular product one per step of every order that
//! ever contained it. Keyed by order, "is this step done?" is answered by a
//! short history, forever, so a saga event redelivered long after the fact
//! (after its dedupe key is gone from any snapshot's memory) still finds
//! its step done and changes nothing. Every transition is written in the
//! same atomic batch as the stock moves it causes, each commit at its
//! aggregate's expected sequence: the record says "done" exactly when the
//! units moved, and two deliveries racing for the same step cannot both
//! store it.

use std::collections::BTreeMap;

use stocklet_proto::stocklet::events::v1 as pb;

es_core::domain_events! {
    /// Everything that happens to an order's reservation.
    pub enum ReservationEvent {
        // Every line of the order is held.
        Reserved(pb::StockReserved),
        // Some products are short; nothing is held.
        Failed(pb::StockReservationFailed),
        // The hold was given up.
        Released(pb::ReservationReleased),
        // The held units left the stock on hand.
        Consumed(pb::ReservationConsumed),
        // The consumed units came back on hand.
        Returned(pb::ReservationReturned),
    }
}

/// What can be asked of an order's reservation. `at_ms` is the time the
/// caller stamps on the events, so deciding stays pure.
#[derive(Clone, Debug, PartialEq)]
pub enum ReservationCommand {
    /// Records the outcome of reserving the order's lines.
    Decide {
        /// The reservation's id, shared with the per-product holds.
        reservation_id: String,
        /// The priced order, as `OrderPriced` described it.
        order: pb::OrderPriced,
        /// The products short of stock; empty when every line could be held.
        short_product_ids: Vec<String>,
        /// Event time, Unix milliseconds.
        at_ms: i64,
    },
    /// Gives the hold up (shipping or payment failed).
    Release {
        /// Event time, Unix milliseconds.
        at_ms: i64,
    },
    /// The order was paid: its units leave the stock on hand.
    Consume {
        /// Event time, Unix milliseconds.
        at_ms: i64,
    },
    /// A paid order was cancelled: its units come back.
    Return {
        /// Event time, Unix milliseconds.
        at_ms: i64,
    },
}

/// Why a reservation command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReservationError {
    /// A step before the reservation was decided (the step's event overtook
    /// the order's `OrderPriced` handling).
    #[error("the order has no reservation yet")]
    Undecided,
    /// The step does not follow from where the reservation is.
    #[error("the reservation is {state:?}")]
    State {
        /// Where the reservation is.
        state: ReservationState,
    },
}

/// Where an order's reservation stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReservationState {
    /// Not decided yet.
    #[default]
    Undecided,
    /// Some product was short; nothing was ever held.
    Failed,
    /// The units are held.
    Reserved,
    /// The hold was given up; the units are available again.
    Released,
    /// The units left the stock on hand.
    Consumed,
    /// The consumed units came back on hand.
    Returned,
}

/// An order's reservation: the fold of its events.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reservation {
    state: ReservationState,
    reserved: Option<pb::StockReserved>,
}

impl Reservation {
    /// Whether the order was already answered.
    pub fn decided(&self) -> bool {
        self.state != ReservationState::Undecided
    }

    /// Where the reservation stands.
    pub fn state(&self) -> ReservationState {
        self.state
    }

    /// The successful reservation, if it was one.
    pub fn reserved(&self) -> Option<&pb::StockReserved> {
        self.reserved.as_ref()
    }

    /// The units held of each product, one entry per product (an order may
    /// name a product on several lines); empty unless the reservation
    /// succeeded.
    pub fn units_by_product(&self) -> BTreeMap<String, i64> {
        let mut units = BTreeMap::new();
        for line in self.reserved.iter().flat_map(|r| &r.lines) {
            let entry: &mut i64 = units.entry(line.product_id.clone()).or_default();
            *entry = entry.saturating_add(line.quantity);
        }
        units
    }

    fn lines(&self) -> Vec<pb::OrderLine> {
        self.units_by_product()
            .into_iter()
            .map(|(product_id, quantity)| pb::OrderLine {
                product_id,
                quantity,
            })
            .collect()
    }

    fn ids(&self) -> (String, String) {
        self.reserved.as_ref().map_or_else(Default::default, |r| {
            (r.reservation_id.clone(), r.order_id.clone())
        })
    }

    fn decide_outcome(
        reservation_id: &str,
        order: &pb::OrderPriced,
        short_product_ids: &[String],
        at_ms: i64,
    ) -> ReservationEvent {
        if !short_product_ids.is_empty() {
            return pb::StockReservationFailed {
                order_id: order.order_id.clone(),
                customer_id: order.customer_id.clone(),
                short_product_ids: short_product_ids.to_vec(),
                occurred_at_ms: at_ms,
            }
            .into();
        }
        pb::StockReserved {
            reservation_id: reservation_id.to_owned(),
            order_id: order.order_id.clone(),
            customer_id: order.customer_id.clone(),
            lines: order.lines.clone(),
            items_price_cents: order.items_price_cents,
            shipping_fee_cents: order.shipping_fee_cents,
            total_cents: order.total_cents,
            occurred_at_ms: at_ms,
        }
        .into()
    }

    /// The step's event when it is due, nothing when it is done already
    /// (or nothing was ever held), an error when it cannot follow.
    fn step(
        &self,
        due_from: ReservationState,
        done: &[ReservationState],
        event: impl FnOnce(String, String, Vec<pb::OrderLine>) -> ReservationEvent,
    ) -> Result<Vec<ReservationEvent>, ReservationError> {
        match self.state {
            ReservationState::Undecided => Err(ReservationError::Undecided),
            ReservationState::Failed => Ok(Vec::new()),
            state if state == due_from => {
                let (reservation_id, order_id) = self.ids();
                Ok(vec![event(reservation_id, order_id, self.lines())])
            }
            state if done.contains(&state) => Ok(Vec::new()),
            state => Err(ReservationError::State { state }),
        }
    }
}

impl es_core::Aggregate for Reservation {
    const TYPE: &'static str = "reservation";
    type Command = ReservationCommand;
    type Event = ReservationEvent;
    type Error = ReservationError;

    fn decide(&self, command: &ReservationCommand) -> Result<Vec<ReservationEvent>, Self::Error> {
        use ReservationState as S;
        match command {
            ReservationCommand::Decide {
                reservation_id,
                order,
                short_product_ids,
                at_ms,
            } => {
                if self.decided() {
                    return Ok(Vec::new());
                }
                Ok(vec![Self::decide_outcome(
                    reservation_id,
                    order,
                    short_product_ids,
                    *at_ms,
                )])
            }
            ReservationCommand::Release { at_ms } => self.step(
                S::Reserved,
                &[S::Released],
                |reservation_id, order_id, lines| {
                    pb::ReservationReleased {
                        reservation_id,
                        order_id,
                        lines,
                        occurred_at_ms: *at_ms,
                    }
                    .into()
                },
            ),
            ReservationCommand::Consume { at_ms } => self.step(
                S::Reserved,
                &[S::Consumed, S::Returned],
                |reservation_id, order_id, lines| {
                    pb::ReservationConsumed {
                        reservation_id,
                        order_id,
                        lines,
                        occurred_at_ms: *at_ms,
                    }
                    .into()
                },
            ),
            ReservationCommand::Return { at_ms } => self.step(
                S::Consumed,
                &[S::Returned],
                |reservation_id, order_id, lines| {
                    pb::ReservationReturned {
                        reservation_id,
                        order_id,
                        lines,
                        occurred_at_ms: *at_ms,
                    }
                    .into()
                },
            ),
        }
    }

    fn apply(&mut self, event: &ReservationEvent) {
        match event {
            ReservationEvent::Reserved(reserved) => {
                self.state = ReservationState::Reserved;
                self.reserved = Some(reserved.clone());
            }
            ReservationEvent::Failed(_) => self.state = ReservationState::Failed,
            ReservationEvent::Released(_) => self.state = ReservationState::Released,
            ReservationEvent::Consumed(_) => self.state = ReservationState::Consumed,
            ReservationEvent::Returned(_) => self.state = ReservationState::Returned,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use es_core::Aggregate;

    use super::*;
    use ReservationState as S;

    fn command(short: &[&str]) -> ReservationCommand {
        ReservationCommand::Decide {
            reservation_id: "r1".into(),
            order: pb::OrderPriced {
                order_id: "o1".into(),
                customer_id: "c1".into(),
                lines: vec![
                    pb::PricedOrderLine {
                        product_id: "p1".into(),
                        quantity: 2,
                        unit_price_cents: 100,
                    },
                    pb::PricedOrderLine {
                        product_id: "p1".into(),
                        quantity: 1,
                        unit_price_cents: 100,
                    },
                ],
                items_price_cents: 300,
                shipping_fee_cents: 10,
                total_cents: 310,
                occurred_at_ms: 1,
            },
            short_product_ids: short.iter().map(|s| (*s).to_owned()).collect(),
            at_ms: 2,
        }
    }

    fn run(reservation: &mut Reservation, command: &ReservationCommand) -> usize {
        let events = reservation.decide(command).unwrap();
        for event in &events {
            reservation.apply(event);
        }
        events.len()
    }

    fn reserved() -> Reservation {
        let mut reservation = Reservation::default();
        run(&mut reservation, &command(&[]));
        reservation
    }

    #[test]
    fn a_full_reservation_carries_the_order_totals() {
        let events = Reservation::default().decide(&command(&[])).unwrap();
        let [ReservationEvent::Reserved(reserved)] = events.as_slice() else {
            panic!("expected a reservation, got {events:?}");
        };
        assert_eq!(reserved.total_cents, 310);
        assert_eq!(reserved.lines.len(), 2);
    }

    #[test]
    fn short_products_fail_the_reservation() {
        let events = Reservation::default().decide(&command(&["p1"])).unwrap();
        let [ReservationEvent::Failed(failed)] = events.as_slice() else {
            panic!("expected a failure, got {events:?}");
        };
        assert_eq!(failed.short_product_ids, vec!["p1".to_owned()]);
    }

    #[test]
    fn a_decided_reservation_decides_nothing() {
        let reservation = reserved();
        assert!(reservation.decided());
        assert!(reservation.decide(&command(&["p1"])).unwrap().is_empty());
    }

    #[test]
    fn steps_name_every_product_once_with_its_units() {
        let events = reserved()
            .decide(&ReservationCommand::Release { at_ms: 3 })
            .unwrap();
        let [ReservationEvent::Released(released)] = events.as_slice() else {
            panic!("expected a release, got {events:?}");
        };
        assert_eq!(
            (released.order_id.as_str(), released.reservation_id.as_str()),
            ("o1", "r1")
        );
        assert_eq!(
            released.lines,
            [pb::OrderLine {
                product_id: "p1".into(),
                quantity: 3
            }]
        );
    }

    #[test]
    fn each_step_happens_once_and_only_in_order() {
        let release = ReservationCommand::Release { at_ms: 3 };
        let consume = ReservationCommand::Consume { at_ms: 3 };
        let give_back = ReservationCommand::Return { at_ms: 3 };

        // Before the reservation: not yet.
        for step in [&release, &consume, &give_back] {
            assert_eq!(
                Reservation::default().decide(step),
                Err(ReservationError::Undecided)
            );
        }
        // A failed reservation holds nothing: every step is a no-op.
        let mut failed = Reservation::default();
        run(&mut failed, &command(&["p1"]));
        for step in [&release, &consume, &give_back] {
            assert_eq!(failed.decide(step), Ok(Vec::new()));
        }

        let mut paid = reserved();
        assert_eq!(
            paid.decide(&give_back),
            Err(ReservationError::State { state: S::Reserved }),
            "a return before the consumption waits"
        );
        assert_eq!(run(&mut paid, &consume), 1);
        assert_eq!(run(&mut paid, &consume), 0, "consumed once");
        assert_eq!(
            paid.decide(&release),
            Err(ReservationError::State { state: S::Consumed })
        );
        assert_eq!(run(&mut paid, &give_back), 1);
        assert_eq!(run(&mut paid, &give_back), 0, "returned once");
        assert_eq!(run(&mut paid, &consume), 0, "a late consumption is done");
        assert_eq!(paid.state(), S::Returned);

        let mut freed = reserved();
        assert_eq!(run(&mut freed, &release), 1);
        assert_eq!(run(&mut freed, &release), 0, "released once");
        for step in [&consume, &give_back] {
            assert_eq!(
                freed.decide(step),
                Err(ReservationError::State { state: S::Released })
            );
        }
    }
}
