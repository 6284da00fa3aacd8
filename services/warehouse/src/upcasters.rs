//! Old versions of the warehouse's events, and how they become current.
//!
//! Stored events never change, so when an event's meaning or shape moves
//! on, the old messages stay in the `WAREHOUSE` stream and are upgraded as
//! they are read. [`upcasters`] is the whole chain. The service registers
//! it once ([`Service::with_upcasters`](stocklet_service_kit::service::Service::with_upcasters)
//! in [`run`](crate::run)), and from there every reader of the stream
//! applies it: the `Stock` and `Reservation` repositories as they load, and
//! the [`Inventory`](crate::projections::Inventory) projection before it
//! matches event types. The domain and the read model therefore only ever
//! see the current schema.
//!
//! # A hold stored as `StockReserved` (before `StockHeld`)
//!
//! Until `StockHeld` existed, a product's hold for one order was a
//! `StockReserved` on the product's stock subject (`warehouse.stock.<id>`),
//! carrying that product's line and totals priced for it alone (the line's
//! price, no shipping fee). The same type on the order's reservation subject
//! (`warehouse.reservation.<order id>`) was, and still is, the order-level
//! reservation. So the upcaster is registered for the `stock` aggregate
//! only ([`Upcasters::with_for_aggregate`]): a `StockReserved` v1 that a
//! stock stored becomes the `StockHeld` the current code would have written
//! (same reservation, order, customer, line and time; the per-product
//! totals are dropped, since the line carries its price), at the schema
//! version `StockHeld` is written at. An order-level `StockReserved` is left
//! untouched.
//!
//! `services/warehouse/tests/fixtures/legacy-stock-reserved` holds such a
//! history as the code before `StockHeld` stored it, and the `legacy`
//! integration tests prove it still loads and projects.

use es_core::{Aggregate as _, DecodeError, DomainEvent as _, RawEvent, Upcasters};
use prost::{Message as _, Name as _};
use stocklet_proto::stocklet::events::v1 as pb;

use crate::domain::{Stock, StockEvent};

/// Every upcaster of the warehouse's events, in order.
pub fn upcasters() -> Upcasters {
    Upcasters::default().with_for_aggregate(Stock::TYPE, hold_stored_as_stock_reserved)
}

/// A stock's `StockReserved` v1 as the `StockHeld` it stands for; `None`
/// for any other event.
fn hold_stored_as_stock_reserved(raw: &RawEvent) -> Result<Option<RawEvent>, DecodeError> {
    if raw.schema_version != 1 || raw.event_type != pb::StockReserved::full_name() {
        return Ok(None);
    }
    let reserved =
        pb::StockReserved::decode(raw.payload.clone()).map_err(|e| DecodeError::Malformed {
            event_type: raw.event_type.clone(),
            reason: e.to_string(),
        })?;
    let held = pb::StockHeld {
        reservation_id: reserved.reservation_id,
        order_id: reserved.order_id,
        customer_id: reserved.customer_id,
        lines: reserved.lines,
        occurred_at_ms: reserved.occurred_at_ms,
    };
    Ok(Some(StockEvent::from(held).to_raw()))
}

#[cfg(test)]
mod tests {
    use es_core::Aggregate;
    use stocklet_values::{Cents, Quantity};

    use super::*;
    use crate::domain::{Reservation, StockCommand};

    /// A hold as the code before `StockHeld` wrote it on a stock subject.
    fn stored_hold(quantity: i64) -> RawEvent {
        RawEvent {
            event_type: pb::StockReserved::full_name(),
            schema_version: 1,
            payload: pb::StockReserved {
                reservation_id: "r1".into(),
                order_id: "o1".into(),
                customer_id: "c1".into(),
                lines: vec![pb::PricedOrderLine {
                    product_id: "p1".into(),
                    quantity,
                    unit_price_cents: 250,
                }],
                items_price_cents: quantity * 250,
                shipping_fee_cents: 0,
                total_cents: quantity * 250,
                occurred_at_ms: 7,
            }
            .encode_to_vec()
            .into(),
        }
    }

    #[test]
    fn a_hold_stored_as_stock_reserved_becomes_the_stock_held_of_today() {
        let mut stock = Stock::default();
        for command in [
            StockCommand::Create {
                product_id: "p1".into(),
                at_ms: 1,
            },
            StockCommand::Add {
                quantity: Quantity::parse(10).unwrap(),
                at_ms: 2,
            },
        ] {
            for event in stock.decide(&command).unwrap() {
                stock.apply(&event);
            }
        }
        let today = stock
            .decide(&StockCommand::Reserve {
                reservation_id: "r1".into(),
                order_id: "o1".into(),
                customer_id: "c1".into(),
                quantity: Quantity::parse(3).unwrap(),
                unit_price: Cents::parse(250).unwrap(),
                at_ms: 7,
            })
            .unwrap();

        let upcast = upcasters().apply(Stock::TYPE, stored_hold(3)).unwrap();
        assert_eq!(upcast.event_type, pb::StockHeld::full_name());
        assert_eq!(upcast.schema_version, today[0].schema_version());
        let event = StockEvent::decode(&upcast).unwrap();
        assert_eq!(vec![event.clone()], today);
        stock.apply(&event);
        assert_eq!(
            (stock.on_hand(), stock.reserved(), stock.available()),
            (10, 3, 7)
        );
    }

    #[test]
    fn without_the_upcaster_the_stock_cannot_read_the_old_hold() {
        assert!(StockEvent::decode(&stored_hold(3)).is_err());
    }

    #[test]
    fn the_order_level_stock_reserved_of_a_reservation_is_left_alone() {
        let order_level = stored_hold(3);
        assert_eq!(
            upcasters()
                .apply(Reservation::TYPE, order_level.clone())
                .unwrap(),
            order_level
        );
    }

    #[test]
    fn a_malformed_old_hold_is_a_decode_error() {
        let broken = RawEvent {
            payload: vec![0xff, 0xff].into(),
            ..stored_hold(1)
        };
        assert!(matches!(
            upcasters().apply(Stock::TYPE, broken),
            Err(DecodeError::Malformed { .. })
        ));
    }
}
