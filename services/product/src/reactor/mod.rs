//! Reactions to other services' events: the catalogue prices placed orders.
//!
//! One durable consumer per source stream, with a dedupe key derived from
//! the source event ([`CommandContext::caused_by`]), so a redelivered event
//! changes nothing.
//!
//! - `ORDER`: `OrderPlaced` loads every ordered product from its history
//!   (not from the read model, which may lag) and records one answer per
//!   order on the [`Quote`] aggregate: `PriceQuoted`, or `PriceQuoteFailed`
//!   listing the unknown or deleted products.
//!
//! The order's ids are taken as the order service recorded them
//! (`from_recorded`: it parsed them before it wrote the event), so an
//! unknown product id is reported back as spelled. Quantities are parsed:
//! a malformed one fails the event for good rather than being priced.

use es_core::reactor::{Reaction, ReactionError};
use es_core::{AggregateId, CommandContext, JetStreamEventStore, Recorded, Repository};
use stocklet_proto::stocklet::events::v1 as events;

use crate::domain::{
    Cents, CustomerId, LineToQuote, OrderId, Product, ProductId, Quantity, Quote, QuoteCommand,
};

/// The handler name in the dedupe key of an order's quote.
pub const QUOTE_ORDER: &str = "product.quote-order";

es_core::domain_events! {
    /// The order events the catalogue answers.
    pub enum OrderEvent {
        /// A customer placed an order: quote its lines.
        OrderPlaced(events::OrderPlaced),
    }
}

/// Prices placed orders.
#[derive(Clone)]
pub struct OrderReaction {
    products: Repository<Product, JetStreamEventStore>,
    quotes: Repository<Quote, JetStreamEventStore>,
}

impl OrderReaction {
    /// A reaction reading `products` and writing `quotes`.
    pub fn new(
        products: Repository<Product, JetStreamEventStore>,
        quotes: Repository<Quote, JetStreamEventStore>,
    ) -> Self {
        Self { products, quotes }
    }

    async fn price(&self, product_id: &ProductId) -> Result<Option<Cents>, ReactionError> {
        let Ok(id) = AggregateId::parse(product_id.as_str()) else {
            return Ok(None);
        };
        let loaded = self
            .products
            .load(&id)
            .await
            .map_err(|e| ReactionError::Transient(e.to_string()))?;
        let product = loaded.state;
        Ok((product.created && !product.deleted).then_some(product.price))
    }
}

impl Reaction for OrderReaction {
    type Event = OrderEvent;

    async fn react(&self, stored: &Recorded<OrderEvent>) -> Result<(), ReactionError> {
        let OrderEvent::OrderPlaced(placed) = stored.event.clone();
        let id = AggregateId::parse(placed.order_id.clone())
            .map_err(|e| ReactionError::Permanent(format!("bad order id: {e}")))?;
        let mut lines = Vec::with_capacity(placed.lines.len());
        for line in &placed.lines {
            let product_id = ProductId::from_recorded(&line.product_id);
            let quantity = Quantity::parse(line.quantity)
                .map_err(|e| ReactionError::Permanent(format!("bad quantity: {e}")))?;
            lines.push(LineToQuote {
                unit_price: self.price(&product_id).await?,
                product_id,
                quantity,
            });
        }
        let command = QuoteCommand {
            order_id: OrderId::from_recorded(&placed.order_id),
            customer_id: CustomerId::from_recorded(&placed.customer_id),
            lines,
            at_ms: es_core::envelope::now_ms(),
        };
        let context = CommandContext::caused_by(&stored.meta, QUOTE_ORDER);
        match self.quotes.execute(&id, &command, &context).await {
            Ok(_) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}
