//! The `Stock` aggregate: one product's units on hand and how many of them
//! are held by reservations.
//!
//! Why a product's stock is one aggregate: the invariant "never reserve or
//! remove more than is available" (`available = on_hand - reserved`) spans
//! the units on hand and every open hold of that product, so one aggregate
//! must see both to keep it under concurrency. An order that spans several
//! products reserves on each product's `Stock`; all-or-nothing across
//! products is the saga's job (one atomic batch over several aggregates),
//! not this type's.
//!
//! Why it keeps only counts: a popular product sees an event for every
//! step of every order that contains it, for as long as the shop runs. A
//! stock that remembered each order's hold would grow without bound, and
//! so would the cost of loading it for every reservation. Which step of
//! which order is done is the order-keyed
//! [`Reservation`](super::Reservation)'s to know (a handful of events per
//! order); every step writes the reservation and the stocks it moves in one
//! atomic batch, each at its expected sequence. The stock trusts the
//! quantities that batch hands it and checks only what its counts can
//! check: no hold beyond what is available, no release or consumption of
//! more than is reserved. So its state is three fields, it snapshots in a
//! few bytes ([`SnapshotState`]), and a load is a snapshot plus a short
//! tail, however long the history.
//!
//! On a `Stock` subject (`warehouse.stock.<product id>`) a hold is
//! `StockHeld`, and `StockReleased`, `StockConsumed` and `StockReturned`
//! carry exactly one line, this product's. The order-level `StockReserved`
//! (every line, the order's totals) is the order-keyed reservation's event,
//! written in the same atomic batch, so one event type keeps one meaning.
//! Stock written before `StockHeld` existed has a per-product
//! `StockReserved` there instead; the warehouse's upcaster
//! ([`crate::upcasters`]) turns it into a `StockHeld` as it is read, so
//! this type only ever sees the current schema.

use es_core::snapshot::SnapshotState;
use prost::Message as _;
use stocklet_proto::stocklet::events::v1 as pb;

use stocklet_values::{Cents, Quantity};

es_core::domain_events! {
    /// Everything that happens to a product's stock.
    pub enum StockEvent {
        // The stock was opened when its product was created.
        Created(pb::StockCreated),
        // An admin added units on hand.
        Added(pb::StockAdded),
        // An admin removed available units.
        Removed(pb::StockRemoved),
        // Units were held for an order.
        Held(pb::StockHeld),
        // An order's reserved units were freed.
        Released(pb::StockReleased),
        // An order's reserved units left the stock on hand.
        Consumed(pb::StockConsumed),
        // A cancelled order's consumed units came back on hand.
        Returned(pb::StockReturned),
    }
}

/// What can be asked of a product's stock. `at_ms` is the time the caller
/// stamps on the events, so deciding stays pure.
///
/// The saga's steps (`Release`, `Consume`, `Return`) name the order's
/// reservation and the units it holds of this product: the order's
/// [`Reservation`](super::Reservation) knows them and decides whether the
/// step is due; the stock only moves its counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StockCommand {
    /// Opens the stock at zero units (reacting to `ProductCreated`).
    Create {
        /// The product's id.
        product_id: String,
        /// Event time, Unix milliseconds.
        at_ms: i64,
    },
    /// Adds units on hand.
    Add {
        /// Units to add.
        quantity: Quantity,
        /// Event time, Unix milliseconds.
        at_ms: i64,
    },
    /// Removes available (unreserved) units on hand.
    Remove {
        /// Units to remove.
        quantity: Quantity,
        /// Event time, Unix milliseconds.
        at_ms: i64,
    },
    /// Holds units for an order.
    Reserve {
        /// The reservation's id, shared by every product of the order.
        reservation_id: String,
        /// The order's id.
        order_id: String,
        /// The order's customer.
        customer_id: String,
        /// Units to hold.
        quantity: Quantity,
        /// The order's quoted unit price for this product.
        unit_price: Cents,
        /// Event time, Unix milliseconds.
        at_ms: i64,
    },
    /// Frees units an order held (shipping or payment failed).
    Release {
        /// The order's reservation.
        reservation_id: String,
        /// The order's id.
        order_id: String,
        /// The units the order held of this product.
        quantity: Quantity,
        /// Event time, Unix milliseconds.
        at_ms: i64,
    },
    /// Takes units an order held out of the stock on hand (it was paid).
    Consume {
        /// The order's reservation.
        reservation_id: String,
        /// The order's id.
        order_id: String,
        /// The units the order held of this product.
        quantity: Quantity,
        /// Event time, Unix milliseconds.
        at_ms: i64,
    },
    /// Puts a cancelled order's consumed units back on hand.
    Return {
        /// The order's reservation.
        reservation_id: String,
        /// The order's id.
        order_id: String,
        /// The units the order consumed of this product.
        quantity: Quantity,
        /// Event time, Unix milliseconds.
        at_ms: i64,
    },
}

/// Why a stock command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StockError {
    /// The product's stock was never opened (unknown product).
    #[error("no stock for this product")]
    NotFound,
    /// Fewer units are available than asked for.
    #[error("only {available} units available, {requested} requested")]
    Insufficient {
        /// Units asked for.
        requested: i64,
        /// Units on hand and not reserved.
        available: i64,
    },
    /// Adding would overflow the units on hand.
    #[error("the stock on hand cannot grow by {requested} units")]
    Overflow {
        /// Units asked for.
        requested: i64,
    },
    /// A release or consumption of more units than are reserved: the
    /// caller's record of the hold disagrees with the stock.
    #[error("only {reserved} units are reserved, {requested} to free")]
    NotReserved {
        /// Units asked for.
        requested: i64,
        /// Units reserved.
        reserved: i64,
    },
}

/// A product's stock: the fold of its events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stock {
    product_id: Option<String>,
    on_hand: i64,
    reserved: i64,
}

impl Stock {
    /// Whether the stock was opened.
    pub fn exists(&self) -> bool {
        self.product_id.is_some()
    }

    /// The product's id, once opened.
    pub fn product_id(&self) -> Option<&str> {
        self.product_id.as_deref()
    }

    /// Units in the warehouse, reserved or not.
    pub fn on_hand(&self) -> i64 {
        self.on_hand
    }

    /// Units held by open reservations.
    pub fn reserved(&self) -> i64 {
        self.reserved
    }

    /// Units that can be reserved or removed.
    pub fn available(&self) -> i64 {
        self.on_hand - self.reserved
    }

    fn opened(&self) -> Result<&str, StockError> {
        self.product_id.as_deref().ok_or(StockError::NotFound)
    }

    fn ensure_available(&self, quantity: Quantity) -> Result<(), StockError> {
        if quantity.get() > self.available() {
            return Err(StockError::Insufficient {
                requested: quantity.get(),
                available: self.available(),
            });
        }
        Ok(())
    }

    fn ensure_reserved(&self, quantity: Quantity) -> Result<(), StockError> {
        if quantity.get() > self.reserved {
            return Err(StockError::NotReserved {
                requested: quantity.get(),
                reserved: self.reserved,
            });
        }
        Ok(())
    }

    fn line(product_id: &str, quantity: Quantity) -> Vec<pb::OrderLine> {
        vec![pb::OrderLine {
            product_id: product_id.to_owned(),
            quantity: quantity.get(),
        }]
    }

    /// The units of this product in an event's lines.
    fn units_in<'a>(&self, lines: impl IntoIterator<Item = (&'a str, i64)>) -> i64 {
        let Some(me) = self.product_id.as_deref() else {
            return 0;
        };
        lines
            .into_iter()
            .filter(|(product, _)| *product == me)
            .map(|(_, quantity)| quantity)
            .fold(0i64, i64::saturating_add)
    }

    fn units_of(&self, lines: &[pb::OrderLine]) -> i64 {
        self.units_in(lines.iter().map(|l| (l.product_id.as_str(), l.quantity)))
    }
}

impl es_core::Aggregate for Stock {
    const TYPE: &'static str = "stock";
    type Command = StockCommand;
    type Event = StockEvent;
    type Error = StockError;

    fn decide(&self, command: &StockCommand) -> Result<Vec<StockEvent>, StockError> {
        match command {
            StockCommand::Create { product_id, at_ms } => {
                if self.exists() {
                    return Ok(Vec::new());
                }
                Ok(vec![
                    pb::StockCreated {
                        product_id: product_id.clone(),
                        on_hand: 0,
                        occurred_at_ms: *at_ms,
                    }
                    .into(),
                ])
            }
            StockCommand::Add { quantity, at_ms } => {
                let product_id = self.opened()?;
                let on_hand =
                    self.on_hand
                        .checked_add(quantity.get())
                        .ok_or(StockError::Overflow {
                            requested: quantity.get(),
                        })?;
                Ok(vec![
                    pb::StockAdded {
                        product_id: product_id.to_owned(),
                        quantity: quantity.get(),
                        on_hand,
                        occurred_at_ms: *at_ms,
                    }
                    .into(),
                ])
            }
            StockCommand::Remove { quantity, at_ms } => {
                let product_id = self.opened()?;
                self.ensure_available(*quantity)?;
                Ok(vec![
                    pb::StockRemoved {
                        product_id: product_id.to_owned(),
                        quantity: quantity.get(),
                        on_hand: self.on_hand - quantity.get(),
                        occurred_at_ms: *at_ms,
                    }
                    .into(),
                ])
            }
            StockCommand::Reserve {
                reservation_id,
                order_id,
                customer_id,
                quantity,
                unit_price,
                at_ms,
            } => {
                let product_id = self.opened()?;
                self.ensure_available(*quantity)?;
                Ok(vec![
                    pb::StockHeld {
                        reservation_id: reservation_id.clone(),
                        order_id: order_id.clone(),
                        customer_id: customer_id.clone(),
                        lines: vec![pb::PricedOrderLine {
                            product_id: product_id.to_owned(),
                            quantity: quantity.get(),
                            unit_price_cents: unit_price.get(),
                        }],
                        occurred_at_ms: *at_ms,
                    }
                    .into(),
                ])
            }
            StockCommand::Release {
                reservation_id,
                order_id,
                quantity,
                at_ms,
            } => {
                let product_id = self.opened()?;
                self.ensure_reserved(*quantity)?;
                Ok(vec![
                    pb::StockReleased {
                        reservation_id: reservation_id.clone(),
                        order_id: order_id.clone(),
                        lines: Self::line(product_id, *quantity),
                        occurred_at_ms: *at_ms,
                    }
                    .into(),
                ])
            }
            StockCommand::Consume {
                reservation_id,
                order_id,
                quantity,
                at_ms,
            } => {
                let product_id = self.opened()?;
                self.ensure_reserved(*quantity)?;
                Ok(vec![
                    pb::StockConsumed {
                        reservation_id: reservation_id.clone(),
                        order_id: order_id.clone(),
                        lines: Self::line(product_id, *quantity),
                        occurred_at_ms: *at_ms,
                    }
                    .into(),
                ])
            }
            StockCommand::Return {
                reservation_id,
                order_id,
                quantity,
                at_ms,
            } => {
                let product_id = self.opened()?;
                self.on_hand
                    .checked_add(quantity.get())
                    .ok_or(StockError::Overflow {
                        requested: quantity.get(),
                    })?;
                Ok(vec![
                    pb::StockReturned {
                        reservation_id: reservation_id.clone(),
                        order_id: order_id.clone(),
                        lines: Self::line(product_id, *quantity),
                        occurred_at_ms: *at_ms,
                    }
                    .into(),
                ])
            }
        }
    }

    fn apply(&mut self, event: &StockEvent) {
        match event {
            StockEvent::Created(e) => {
                self.product_id = Some(e.product_id.clone());
                self.on_hand = e.on_hand;
            }
            StockEvent::Added(e) => self.on_hand = e.on_hand,
            StockEvent::Removed(e) => self.on_hand = e.on_hand,
            StockEvent::Held(e) => {
                let quantity =
                    self.units_in(e.lines.iter().map(|l| (l.product_id.as_str(), l.quantity)));
                self.reserved = self.reserved.saturating_add(quantity);
            }
            StockEvent::Released(e) => {
                let quantity = self.units_of(&e.lines);
                self.reserved = self.reserved.saturating_sub(quantity);
            }
            StockEvent::Consumed(e) => {
                let quantity = self.units_of(&e.lines);
                self.reserved = self.reserved.saturating_sub(quantity);
                self.on_hand = self.on_hand.saturating_sub(quantity);
            }
            StockEvent::Returned(e) => {
                let quantity = self.units_of(&e.lines);
                self.on_hand = self.on_hand.saturating_add(quantity);
            }
        }
    }
}

/// A stock's state as a snapshot stores it.
#[derive(Clone, PartialEq, prost::Message)]
struct StockSnapshot {
    /// The product's id; empty while the stock is not opened.
    #[prost(string, tag = "1")]
    product_id: String,
    #[prost(int64, tag = "2")]
    on_hand: i64,
    #[prost(int64, tag = "3")]
    reserved: i64,
}

impl SnapshotState for Stock {
    const SNAPSHOT_VERSION: u32 = 1;

    fn to_snapshot(&self) -> Vec<u8> {
        StockSnapshot {
            product_id: self.product_id.clone().unwrap_or_default(),
            on_hand: self.on_hand,
            reserved: self.reserved,
        }
        .encode_to_vec()
    }

    fn from_snapshot(bytes: &[u8]) -> Option<Self> {
        let snapshot = StockSnapshot::decode(bytes).ok()?;
        Some(Self {
            product_id: Some(snapshot.product_id).filter(|id| !id.is_empty()),
            on_hand: snapshot.on_hand,
            reserved: snapshot.reserved,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::BTreeMap;

    use es_core::Aggregate;
    use es_core::testing::{given, given_no_events};
    use proptest::prelude::*;

    use super::*;

    const P: &str = "p1";
    const AT: i64 = 1_700_000_000_000;

    fn q(units: i64) -> Quantity {
        Quantity::parse(units).unwrap()
    }

    fn created() -> StockEvent {
        pb::StockCreated {
            product_id: P.into(),
            on_hand: 0,
            occurred_at_ms: AT,
        }
        .into()
    }

    fn added(quantity: i64, on_hand: i64) -> StockEvent {
        pb::StockAdded {
            product_id: P.into(),
            quantity,
            on_hand,
            occurred_at_ms: AT,
        }
        .into()
    }

    fn reserved(order: &str, quantity: i64) -> StockEvent {
        pb::StockHeld {
            reservation_id: format!("r-{order}"),
            order_id: order.into(),
            customer_id: "c1".into(),
            lines: vec![pb::PricedOrderLine {
                product_id: P.into(),
                quantity,
                unit_price_cents: 250,
            }],
            occurred_at_ms: AT,
        }
        .into()
    }

    fn line(quantity: i64) -> Vec<pb::OrderLine> {
        vec![pb::OrderLine {
            product_id: P.into(),
            quantity,
        }]
    }

    fn released(order: &str, quantity: i64) -> StockEvent {
        pb::StockReleased {
            reservation_id: format!("r-{order}"),
            order_id: order.into(),
            lines: line(quantity),
            occurred_at_ms: AT,
        }
        .into()
    }

    fn consumed(order: &str, quantity: i64) -> StockEvent {
        pb::StockConsumed {
            reservation_id: format!("r-{order}"),
            order_id: order.into(),
            lines: line(quantity),
            occurred_at_ms: AT,
        }
        .into()
    }

    fn returned(order: &str, quantity: i64) -> StockEvent {
        pb::StockReturned {
            reservation_id: format!("r-{order}"),
            order_id: order.into(),
            lines: line(quantity),
            occurred_at_ms: AT,
        }
        .into()
    }

    fn reserve(order: &str, quantity: i64) -> StockCommand {
        StockCommand::Reserve {
            reservation_id: format!("r-{order}"),
            order_id: order.into(),
            customer_id: "c1".into(),
            quantity: q(quantity),
            unit_price: Cents::parse(250).unwrap(),
            at_ms: AT,
        }
    }

    fn release(order: &str, quantity: i64) -> StockCommand {
        StockCommand::Release {
            reservation_id: format!("r-{order}"),
            order_id: order.into(),
            quantity: q(quantity),
            at_ms: AT,
        }
    }

    fn consume(order: &str, quantity: i64) -> StockCommand {
        StockCommand::Consume {
            reservation_id: format!("r-{order}"),
            order_id: order.into(),
            quantity: q(quantity),
            at_ms: AT,
        }
    }

    fn give_back(order: &str, quantity: i64) -> StockCommand {
        StockCommand::Return {
            reservation_id: format!("r-{order}"),
            order_id: order.into(),
            quantity: q(quantity),
            at_ms: AT,
        }
    }

    #[test]
    fn creating_opens_the_stock_at_zero_once() {
        let stock = given_no_events::<Stock>()
            .when(StockCommand::Create {
                product_id: P.into(),
                at_ms: AT,
            })
            .then_expect_events([created()]);
        assert_eq!((stock.on_hand(), stock.reserved()), (0, 0));
        given::<Stock>([created()])
            .when(StockCommand::Create {
                product_id: P.into(),
                at_ms: AT,
            })
            .then_expect_events([]);
    }

    #[test]
    fn adding_needs_an_opened_stock() {
        given_no_events::<Stock>()
            .when(StockCommand::Add {
                quantity: q(1),
                at_ms: AT,
            })
            .then_expect_error(|e| *e == StockError::NotFound);
        let stock = given::<Stock>([created(), added(5, 5)])
            .when(StockCommand::Add {
                quantity: q(3),
                at_ms: AT,
            })
            .then_expect_events([added(3, 8)]);
        assert_eq!(stock.on_hand(), 8);
    }

    #[test]
    fn removing_cannot_take_reserved_units() {
        given::<Stock>([created(), added(10, 10), reserved("o1", 4)])
            .when(StockCommand::Remove {
                quantity: q(7),
                at_ms: AT,
            })
            .then_expect_error(|e| {
                *e == StockError::Insufficient {
                    requested: 7,
                    available: 6,
                }
            });
        let stock = given::<Stock>([created(), added(10, 10), reserved("o1", 4)])
            .when(StockCommand::Remove {
                quantity: q(6),
                at_ms: AT,
            })
            .then_expect_events([pb::StockRemoved {
                product_id: P.into(),
                quantity: 6,
                on_hand: 4,
                occurred_at_ms: AT,
            }
            .into()]);
        assert_eq!(
            (stock.on_hand(), stock.reserved(), stock.available()),
            (4, 4, 0)
        );
    }

    #[test]
    fn reserving_holds_available_units() {
        let stock = given::<Stock>([created(), added(10, 10)])
            .when(reserve("o1", 4))
            .then_expect_events([reserved("o1", 4)]);
        assert_eq!(
            (stock.on_hand(), stock.reserved(), stock.available()),
            (10, 4, 6)
        );
        given::<Stock>([created(), added(10, 10), reserved("o1", 4)])
            .when(reserve("o2", 7))
            .then_expect_error(|e| {
                *e == StockError::Insufficient {
                    requested: 7,
                    available: 6,
                }
            });
        given_no_events::<Stock>()
            .when(reserve("o1", 1))
            .then_expect_error(|e| *e == StockError::NotFound);
    }

    #[test]
    fn releasing_frees_the_units_it_is_handed() {
        let stock = given::<Stock>([created(), added(10, 10), reserved("o1", 4)])
            .when(release("o1", 4))
            .then_expect_events([released("o1", 4)]);
        assert_eq!((stock.on_hand(), stock.reserved()), (10, 0));
        // More than is reserved: the caller's record disagrees; refused.
        given::<Stock>([created(), added(10, 10), reserved("o1", 4)])
            .when(release("o1", 5))
            .then_expect_error(|e| {
                *e == StockError::NotReserved {
                    requested: 5,
                    reserved: 4,
                }
            });
    }

    #[test]
    fn consuming_takes_the_units_off_hand() {
        let stock = given::<Stock>([created(), added(10, 10), reserved("o1", 4)])
            .when(consume("o1", 4))
            .then_expect_events([consumed("o1", 4)]);
        assert_eq!(
            (stock.on_hand(), stock.reserved(), stock.available()),
            (6, 0, 6)
        );
        given::<Stock>([created(), added(10, 10)])
            .when(consume("o1", 1))
            .then_expect_error(|e| matches!(e, StockError::NotReserved { .. }));
        given_no_events::<Stock>()
            .when(consume("o1", 1))
            .then_expect_error(|e| *e == StockError::NotFound);
    }

    #[test]
    fn returning_puts_consumed_units_back() {
        let stock = given::<Stock>([
            created(),
            added(10, 10),
            reserved("o1", 4),
            consumed("o1", 4),
        ])
        .when(give_back("o1", 4))
        .then_expect_events([returned("o1", 4)]);
        assert_eq!((stock.on_hand(), stock.reserved()), (10, 0));
        given_no_events::<Stock>()
            .when(give_back("o1", 1))
            .then_expect_error(|e| *e == StockError::NotFound);
    }

    #[test]
    fn a_history_of_per_order_steps_folds_into_counts() {
        // Histories written when the stock still tracked orders fold to the
        // same counts: the events carry their lines.
        let stock = Stock::from_events(&[
            created(),
            added(10, 10),
            reserved("o1", 4),
            reserved("o2", 3),
            released("o2", 3),
            consumed("o1", 4),
            returned("o1", 4),
            reserved("o3", 2),
        ]);
        assert_eq!(
            (stock.on_hand(), stock.reserved(), stock.available()),
            (10, 2, 8)
        );
    }

    #[test]
    fn the_snapshot_round_trips() {
        for stock in [
            Stock::default(),
            Stock::from_events(&[created(), added(10, 10), reserved("o1", 4)]),
        ] {
            assert_eq!(Stock::from_snapshot(&stock.to_snapshot()), Some(stock));
        }
        assert_eq!(Stock::from_snapshot(&[0xff, 0xff]), None);
    }

    #[test]
    fn events_round_trip_through_protobuf() {
        use es_core::DomainEvent;
        for event in [
            created(),
            added(1, 1),
            reserved("o1", 1),
            released("o1", 1),
            consumed("o1", 1),
            returned("o1", 1),
        ] {
            let raw = event.to_raw();
            assert!(raw.event_type.starts_with("stocklet.events.v1.Stock"));
            assert_eq!(StockEvent::decode(&raw).unwrap(), event);
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Add(i64),
        Remove(i64),
        Reserve(u8, i64),
        Release(u8),
        Consume(u8),
        Return(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1i64..50).prop_map(Op::Add),
            (1i64..50).prop_map(Op::Remove),
            (0u8..5, 1i64..30).prop_map(|(o, n)| Op::Reserve(o, n)),
            (0u8..5).prop_map(Op::Release),
            (0u8..5).prop_map(Op::Consume),
            (0u8..5).prop_map(Op::Return),
        ]
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Hold {
        Reserved(i64),
        Done,
        Consumed(i64),
    }

    proptest! {
        /// Driven the way the saga drives it (each step once per order, as
        /// the order's reservation allows), whatever else is refused, stock
        /// never goes negative, never reserves more than it holds, and its
        /// `reserved` count is the sum of the open holds.
        #[test]
        fn stock_never_goes_negative(ops in proptest::collection::vec(op(), 0..60)) {
            let mut stock = Stock::from_events(&[created()]);
            let mut holds: BTreeMap<u8, Hold> = BTreeMap::new();
            for op in ops {
                let order = |o: u8| format!("o{o}");
                let (command, next) = match op {
                    Op::Add(n) => (StockCommand::Add { quantity: q(n), at_ms: AT }, None),
                    Op::Remove(n) => (StockCommand::Remove { quantity: q(n), at_ms: AT }, None),
                    Op::Reserve(o, n) if !holds.contains_key(&o) => {
                        (reserve(&order(o), n), Some((o, Hold::Reserved(n))))
                    }
                    Op::Release(o) => match holds.get(&o) {
                        Some(Hold::Reserved(n)) => (release(&order(o), *n), Some((o, Hold::Done))),
                        _ => continue,
                    },
                    Op::Consume(o) => match holds.get(&o) {
                        Some(Hold::Reserved(n)) => {
                            (consume(&order(o), *n), Some((o, Hold::Consumed(*n))))
                        }
                        _ => continue,
                    },
                    Op::Return(o) => match holds.get(&o) {
                        Some(Hold::Consumed(n)) => (give_back(&order(o), *n), Some((o, Hold::Done))),
                        _ => continue,
                    },
                    Op::Reserve(..) => continue,
                };
                if let Ok(events) = stock.decide(&command) {
                    for event in &events {
                        stock.apply(event);
                    }
                    if let Some((o, hold)) = next {
                        holds.insert(o, hold);
                    }
                }
                prop_assert!(stock.reserved() >= 0);
                prop_assert!(stock.available() >= 0);
                prop_assert!(stock.on_hand() >= stock.reserved());
                let held: i64 = holds
                    .values()
                    .map(|h| match h {
                        Hold::Reserved(n) => *n,
                        _ => 0,
                    })
                    .sum();
                prop_assert_eq!(held, stock.reserved());
            }
        }
    }
}
