//! Reactions to other services' events: the warehouse follows the catalogue.
//!
//! One durable consumer per source stream. Each reaction runs a command
//! whose dedupe key comes from the source event
//! ([`CommandContext::caused_by`]), and each is idempotent in the state it
//! writes too (opening an open stock, a step the order's `Reservation` has
//! recorded decides nothing), so a redelivered event changes
//! nothing however late it comes, even after its key has left a
//! snapshot's memory.
//!
//! - `PRODUCT`: `ProductCreated` opens the product's stock at zero.
//!
//! - `ORDER`, `SHIPPING`, `PAYMENT`: the saga's steps (reserve on
//!   `OrderPriced`, release, consume and return), in [`saga`], which also
//!   explains why a reservation is one atomic batch.

pub mod saga;

pub use saga::SagaReaction;

use es_core::reactor::{Reaction, ReactionError};
use es_core::{AggregateId, CommandContext, JetStreamEventStore, Recorded, Repository};
use stocklet_proto::stocklet::events::v1 as events;

use crate::domain::{Stock, StockCommand};

/// The handler name in the dedupe key of stock opened for a new product.
pub const OPEN_STOCK: &str = "warehouse.open-stock";

es_core::domain_events! {
    /// The catalogue events the warehouse follows.
    pub enum ProductEvent {
        /// A product was created: open its stock at zero.
        ProductCreated(events::ProductCreated),
    }
}

/// Opens a product's stock when the product is created.
#[derive(Clone)]
pub struct ProductReaction {
    stocks: Repository<Stock, JetStreamEventStore>,
}

impl ProductReaction {
    /// A reaction writing through `stocks`.
    pub fn new(stocks: Repository<Stock, JetStreamEventStore>) -> Self {
        Self { stocks }
    }
}

impl Reaction for ProductReaction {
    type Event = ProductEvent;

    async fn react(&self, stored: &Recorded<ProductEvent>) -> Result<(), ReactionError> {
        let ProductEvent::ProductCreated(created) = stored.event.clone();
        let id = AggregateId::parse(created.product_id.clone())
            .map_err(|e| ReactionError::Permanent(format!("bad product id: {e}")))?;
        let command = StockCommand::Create {
            product_id: created.product_id,
            at_ms: es_core::envelope::now_ms(),
        };
        let context = CommandContext::caused_by(&stored.meta, OPEN_STOCK);
        match self.stocks.execute(&id, &command, &context).await {
            Ok(executed) => {
                tracing::debug!(product_id = %id, events = executed.events.len(), "stock opened");
                Ok(())
            }
            Err(error) => Err(error.into()),
        }
    }
}
