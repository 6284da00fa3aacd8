//! The `Quote` aggregate: the product service's answer to one placed order,
//! keyed by the order id (`product.quote.<order id>`).
//!
//! Why an aggregate of its own: the saga needs exactly one answer per order,
//! whatever the redeliveries of `OrderPlaced`. Keyed by the order, the first
//! decision is final and every later one decides nothing.

use stocklet_proto::stocklet::events::v1 as pb;
use stocklet_values::{Cents, CustomerId, OrderId, ProductId, Quantity};

es_core::domain_events! {
    /// The answer to an order's request for prices.
    pub enum QuoteEvent {
        // Every line was priced.
        Quoted(pb::PriceQuoted),
        // Some products are unknown or deleted.
        Failed(pb::PriceQuoteFailed),
    }
}

/// One line to price: the product, its units, and its current unit price
/// (`None` when the product is unknown or deleted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineToQuote {
    /// The product's id.
    pub product_id: ProductId,
    /// Units ordered.
    pub quantity: Quantity,
    /// The live unit price, if the product can be sold.
    pub unit_price: Option<Cents>,
}

/// Prices an order (reacting to `OrderPlaced`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuoteCommand {
    /// The order's id.
    pub order_id: OrderId,
    /// The customer.
    pub customer_id: CustomerId,
    /// The lines with the prices found.
    pub lines: Vec<LineToQuote>,
    /// Event time, Unix milliseconds.
    pub at_ms: i64,
}

/// A quote is always decided: an order that cannot be priced is answered
/// with `PriceQuoteFailed`, never left without an answer.
pub type QuoteError = std::convert::Infallible;

/// Whether an order was already answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Quote {
    answered: bool,
}

impl es_core::Aggregate for Quote {
    const TYPE: &'static str = "quote";
    type Command = QuoteCommand;
    type Event = QuoteEvent;
    type Error = QuoteError;

    fn decide(&self, command: &QuoteCommand) -> Result<Vec<QuoteEvent>, QuoteError> {
        if self.answered {
            return Ok(Vec::new());
        }
        let unavailable: Vec<String> = command
            .lines
            .iter()
            .filter(|line| line.unit_price.is_none())
            .map(|line| line.product_id.to_string())
            .collect();
        if !unavailable.is_empty() {
            return Ok(vec![
                pb::PriceQuoteFailed {
                    order_id: command.order_id.to_string(),
                    customer_id: command.customer_id.to_string(),
                    unavailable_product_ids: unavailable,
                    failure: pb::PriceQuoteFailure::ProductUnavailable.into(),
                    occurred_at_ms: command.at_ms,
                }
                .into(),
            ]);
        }
        let mut items_price = Some(Cents::ZERO);
        let mut lines = Vec::with_capacity(command.lines.len());
        for line in &command.lines {
            let unit_price = line.unit_price.unwrap_or_default();
            items_price = items_price
                .zip(unit_price.times(line.quantity))
                .and_then(|(sum, price)| sum.checked_add(price))
                .filter(|sum| sum.get() <= Cents::MAX);
            lines.push(pb::PricedOrderLine {
                product_id: line.product_id.to_string(),
                quantity: line.quantity.get(),
                unit_price_cents: unit_price.get(),
            });
        }
        let Some(items_price) = items_price else {
            return Ok(vec![
                pb::PriceQuoteFailed {
                    order_id: command.order_id.to_string(),
                    customer_id: command.customer_id.to_string(),
                    unavailable_product_ids: Vec::new(),
                    failure: pb::PriceQuoteFailure::TotalTooLarge.into(),
                    occurred_at_ms: command.at_ms,
                }
                .into(),
            ]);
        };
        Ok(vec![
            pb::PriceQuoted {
                order_id: command.order_id.to_string(),
                customer_id: command.customer_id.to_string(),
                lines,
                items_price_cents: items_price.get(),
                occurred_at_ms: command.at_ms,
            }
            .into(),
        ])
    }

    fn apply(&mut self, _event: &QuoteEvent) {
        self.answered = true;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use es_core::Aggregate;

    use super::*;

    fn command(prices: &[Option<i64>]) -> QuoteCommand {
        QuoteCommand {
            order_id: OrderId::from_recorded("o1"),
            customer_id: CustomerId::parse("c1").unwrap(),
            lines: prices
                .iter()
                .enumerate()
                .map(|(i, price)| LineToQuote {
                    product_id: ProductId::from_recorded(&format!("p{i}")),
                    quantity: Quantity::parse(2).unwrap(),
                    unit_price: price.map(Cents::from_recorded),
                })
                .collect(),
            at_ms: 1,
        }
    }

    #[test]
    fn prices_every_line_and_sums_them() {
        let events = Quote::default()
            .decide(&command(&[Some(100), Some(250)]))
            .unwrap();
        let [QuoteEvent::Quoted(quoted)] = events.as_slice() else {
            panic!("expected a quote, got {events:?}");
        };
        assert_eq!(quoted.items_price_cents, 700);
        assert_eq!(quoted.lines.len(), 2);
    }

    #[test]
    fn an_unavailable_product_fails_the_quote() {
        let events = Quote::default()
            .decide(&command(&[Some(100), None]))
            .unwrap();
        let [QuoteEvent::Failed(failed)] = events.as_slice() else {
            panic!("expected a failure, got {events:?}");
        };
        assert_eq!(failed.unavailable_product_ids, vec!["p1".to_owned()]);
        assert_eq!(failed.failure(), pb::PriceQuoteFailure::ProductUnavailable);
    }

    #[test]
    fn an_answered_order_decides_nothing() {
        let mut quote = Quote::default();
        for event in quote.decide(&command(&[Some(1)])).unwrap() {
            quote.apply(&event);
        }
        assert!(quote.decide(&command(&[None])).unwrap().is_empty());
    }

    #[test]
    fn a_total_too_large_for_an_order_fails_the_quote() {
        for prices in [
            vec![Some(i64::MAX)],
            vec![Some(Cents::MAX), Some(1)],
            vec![Some(Cents::MAX / 2 + 1)],
        ] {
            let events = Quote::default().decide(&command(&prices)).unwrap();
            let [QuoteEvent::Failed(failed)] = events.as_slice() else {
                panic!("expected a failure for {prices:?}, got {events:?}");
            };
            assert_eq!(failed.failure(), pb::PriceQuoteFailure::TotalTooLarge);
            assert!(failed.unavailable_product_ids.is_empty());
        }
        // The largest total still quotes.
        let events = Quote::default()
            .decide(&command(&[Some(Cents::MAX / 2)]))
            .unwrap();
        assert!(
            matches!(events.as_slice(), [QuoteEvent::Quoted(q)] if q.items_price_cents == Cents::MAX)
        );
    }
}
