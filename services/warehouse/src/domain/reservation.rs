//! The `Reservation` aggregate: the warehouse's order-level answer to one
//! priced order, keyed by the order id (`warehouse.reservation.<order id>`).
//!
//! The units themselves are held on each product's [`Stock`](super::Stock).
//! This aggregate holds what the other services react to: one
//! `StockReserved` with every line and the order's totals, or one
//! `StockReservationFailed` listing the short products. A successful
//! reservation is written in the same atomic batch as the per-product holds,
//! so the order-level event exists exactly when every hold does.

use stocklet_proto::stocklet::events::v1 as pb;

es_core::domain_events! {
    /// The order-level outcome of a reservation.
    pub enum ReservationEvent {
        // Every line of the order is held.
        Reserved(pb::StockReserved),
        // Some products are short; nothing is held.
        Failed(pb::StockReservationFailed),
    }
}

/// Records the outcome of reserving an order's lines.
#[derive(Clone, Debug, PartialEq)]
pub struct ReservationCommand {
    /// The reservation's id, shared with the per-product holds.
    pub reservation_id: String,
    /// The priced order, as `OrderPriced` described it.
    pub order: pb::OrderPriced,
    /// The products short of stock; empty when every line could be held.
    pub short_product_ids: Vec<String>,
    /// Event time, Unix milliseconds.
    pub at_ms: i64,
}

/// Why a reservation outcome cannot be recorded. Nothing refuses today:
/// recording twice decides nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReservationError {}

/// An order's reservation, once decided.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reservation {
    decided: bool,
    reserved: Option<pb::StockReserved>,
}

impl Reservation {
    /// Whether the order was already answered.
    pub fn decided(&self) -> bool {
        self.decided
    }

    /// The successful reservation, if it was one.
    pub fn reserved(&self) -> Option<&pb::StockReserved> {
        self.reserved.as_ref()
    }
}

impl es_core::Aggregate for Reservation {
    const TYPE: &'static str = "reservation";
    type Command = ReservationCommand;
    type Event = ReservationEvent;
    type Error = ReservationError;

    fn decide(&self, command: &ReservationCommand) -> Result<Vec<ReservationEvent>, Self::Error> {
        if self.decided {
            return Ok(Vec::new());
        }
        let order = &command.order;
        if !command.short_product_ids.is_empty() {
            return Ok(vec![
                pb::StockReservationFailed {
                    order_id: order.order_id.clone(),
                    customer_id: order.customer_id.clone(),
                    short_product_ids: command.short_product_ids.clone(),
                    occurred_at_ms: command.at_ms,
                }
                .into(),
            ]);
        }
        Ok(vec![
            pb::StockReserved {
                reservation_id: command.reservation_id.clone(),
                order_id: order.order_id.clone(),
                customer_id: order.customer_id.clone(),
                lines: order.lines.clone(),
                items_price_cents: order.items_price_cents,
                shipping_fee_cents: order.shipping_fee_cents,
                total_cents: order.total_cents,
                occurred_at_ms: command.at_ms,
            }
            .into(),
        ])
    }

    fn apply(&mut self, event: &ReservationEvent) {
        self.decided = true;
        if let ReservationEvent::Reserved(reserved) = event {
            self.reserved = Some(reserved.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use es_core::Aggregate;

    use super::*;

    fn command(short: &[&str]) -> ReservationCommand {
        ReservationCommand {
            reservation_id: "r1".into(),
            order: pb::OrderPriced {
                order_id: "o1".into(),
                customer_id: "c1".into(),
                lines: vec![pb::PricedOrderLine {
                    product_id: "p1".into(),
                    quantity: 2,
                    unit_price_cents: 100,
                }],
                items_price_cents: 200,
                shipping_fee_cents: 10,
                total_cents: 210,
                occurred_at_ms: 1,
            },
            short_product_ids: short.iter().map(|s| (*s).to_owned()).collect(),
            at_ms: 2,
        }
    }

    #[test]
    fn a_full_reservation_carries_the_order_totals() {
        let events = Reservation::default().decide(&command(&[])).unwrap();
        let [ReservationEvent::Reserved(reserved)] = events.as_slice() else {
            panic!("expected a reservation, got {events:?}");
        };
        assert_eq!(reserved.total_cents, 210);
        assert_eq!(reserved.lines.len(), 1);
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
        let mut reservation = Reservation::default();
        for event in reservation.decide(&command(&[])).unwrap() {
            reservation.apply(&event);
        }
        assert!(reservation.decided());
        assert!(reservation.decide(&command(&["p1"])).unwrap().is_empty());
    }
}
