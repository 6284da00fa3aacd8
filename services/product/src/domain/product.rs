//! The product aggregate: one product of the catalogue and its price.

use es_core::Aggregate;
use stocklet_proto::stocklet::events::v1 as events;

use stocklet_values::{Cents, ProductId};

use super::values::{Description, ProductName};

es_core::domain_events! {
    /// What happens to a product.
    pub enum ProductEvent {
        Created(events::ProductCreated),
        PriceUpdated(events::ProductPriceUpdated),
        DetailsUpdated(events::ProductDetailsUpdated),
        Deleted(events::ProductDeleted),
    }
}

/// What an admin asks of a product. Times are given by the caller so that
/// deciding stays pure.
#[derive(Clone, Debug)]
pub enum ProductCommand {
    /// Adds the product to the catalogue.
    Create {
        /// Its id (the aggregate id).
        id: ProductId,
        /// Its name.
        name: ProductName,
        /// Its description.
        description: Description,
        /// Its unit price.
        price: Cents,
        /// Now, in Unix milliseconds.
        at_ms: i64,
    },
    /// Changes the price.
    UpdatePrice {
        /// The new unit price.
        price: Cents,
        /// Now, in Unix milliseconds.
        at_ms: i64,
    },
    /// Changes the name, the description, or both.
    UpdateDetails {
        /// The new name, if it changes.
        name: Option<ProductName>,
        /// The new description, if it changes.
        description: Option<Description>,
        /// Now, in Unix milliseconds.
        at_ms: i64,
    },
    /// Removes the product from the catalogue.
    Delete {
        /// Now, in Unix milliseconds.
        at_ms: i64,
    },
}

/// Why a product command is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProductError {
    /// Create on an id that exists.
    #[error("product already exists")]
    AlreadyExists,
    /// Any other command on an id that was never created.
    #[error("product not found")]
    NotFound,
    /// Any command on a deleted product.
    #[error("product was deleted")]
    Deleted,
    /// UpdateDetails without a field.
    #[error("give a name or a description to change")]
    NothingToChange,
}

/// A product's state, folded from its events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Product {
    /// Its id, once created.
    pub id: Option<ProductId>,
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its unit price.
    pub price: Cents,
    /// Whether it was created.
    pub created: bool,
    /// Whether it was deleted.
    pub deleted: bool,
    /// Creation time.
    pub created_at_ms: i64,
    /// Last change.
    pub updated_at_ms: i64,
}

impl Product {
    fn require_live(&self) -> Result<(), ProductError> {
        match (self.created, self.deleted) {
            (false, _) => Err(ProductError::NotFound),
            (true, true) => Err(ProductError::Deleted),
            (true, false) => Ok(()),
        }
    }
}

impl Aggregate for Product {
    const TYPE: &'static str = "product";
    type Command = ProductCommand;
    type Event = ProductEvent;
    type Error = ProductError;

    fn decide(&self, command: &ProductCommand) -> Result<Vec<ProductEvent>, ProductError> {
        let product_id = self
            .id
            .as_ref()
            .map(ProductId::to_string)
            .unwrap_or_default();
        match command {
            ProductCommand::Create {
                id,
                name,
                description,
                price,
                at_ms,
            } => {
                if self.created {
                    return Err(ProductError::AlreadyExists);
                }
                Ok(vec![
                    events::ProductCreated {
                        product_id: id.to_string(),
                        name: name.as_str().to_owned(),
                        description: description.as_str().to_owned(),
                        price_cents: price.get(),
                        occurred_at_ms: *at_ms,
                    }
                    .into(),
                ])
            }
            ProductCommand::UpdatePrice { price, at_ms } => {
                self.require_live()?;
                if *price == self.price {
                    return Ok(Vec::new());
                }
                Ok(vec![
                    events::ProductPriceUpdated {
                        product_id,
                        price_cents: price.get(),
                        previous_price_cents: self.price.get(),
                        occurred_at_ms: *at_ms,
                    }
                    .into(),
                ])
            }
            ProductCommand::UpdateDetails {
                name,
                description,
                at_ms,
            } => {
                self.require_live()?;
                if name.is_none() && description.is_none() {
                    return Err(ProductError::NothingToChange);
                }
                let name = name
                    .as_ref()
                    .map_or(self.name.clone(), |n| n.as_str().to_owned());
                let description = description
                    .as_ref()
                    .map_or(self.description.clone(), |d| d.as_str().to_owned());
                if name == self.name && description == self.description {
                    return Ok(Vec::new());
                }
                Ok(vec![
                    events::ProductDetailsUpdated {
                        product_id,
                        name,
                        description,
                        occurred_at_ms: *at_ms,
                    }
                    .into(),
                ])
            }
            ProductCommand::Delete { at_ms } => {
                self.require_live()?;
                Ok(vec![
                    events::ProductDeleted {
                        product_id,
                        occurred_at_ms: *at_ms,
                    }
                    .into(),
                ])
            }
        }
    }

    fn apply(&mut self, event: &ProductEvent) {
        match event {
            ProductEvent::Created(e) => {
                self.id = Some(ProductId::from_recorded(&e.product_id));
                self.name.clone_from(&e.name);
                self.description.clone_from(&e.description);
                self.price = Cents::from_recorded(e.price_cents);
                self.created = true;
                self.created_at_ms = e.occurred_at_ms;
                self.updated_at_ms = e.occurred_at_ms;
            }
            ProductEvent::PriceUpdated(e) => {
                self.price = Cents::from_recorded(e.price_cents);
                self.updated_at_ms = e.occurred_at_ms;
            }
            ProductEvent::DetailsUpdated(e) => {
                self.name.clone_from(&e.name);
                self.description.clone_from(&e.description);
                self.updated_at_ms = e.occurred_at_ms;
            }
            ProductEvent::Deleted(e) => {
                self.deleted = true;
                self.updated_at_ms = e.occurred_at_ms;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use es_core::testing::{given, given_no_events};

    use super::*;

    const ID: &str = "p1";

    /// The test product's id, as its events record it.
    fn id() -> ProductId {
        ProductId::from_recorded(ID)
    }

    fn created() -> ProductEvent {
        events::ProductCreated {
            product_id: ID.into(),
            name: "Mug".into(),
            description: "A mug".into(),
            price_cents: 1299,
            occurred_at_ms: 1,
        }
        .into()
    }

    #[test]
    fn a_product_is_created_once() {
        let create = ProductCommand::Create {
            id: id(),
            name: ProductName::parse("Mug").unwrap(),
            description: Description::parse("A mug").unwrap(),
            price: Cents::parse(1299).unwrap(),
            at_ms: 1,
        };
        given_no_events::<Product>()
            .when(create.clone())
            .then_expect_events([created()]);
        given::<Product>([created()])
            .when(create)
            .then_expect_error(|e| *e == ProductError::AlreadyExists);
    }

    #[test]
    fn price_changes_record_the_previous_price_and_same_price_is_a_no_op() {
        given::<Product>([created()])
            .when(ProductCommand::UpdatePrice {
                price: Cents::parse(999).unwrap(),
                at_ms: 2,
            })
            .then_expect_events([events::ProductPriceUpdated {
                product_id: ID.into(),
                price_cents: 999,
                previous_price_cents: 1299,
                occurred_at_ms: 2,
            }
            .into()]);
        given::<Product>([created()])
            .when(ProductCommand::UpdatePrice {
                price: Cents::parse(1299).unwrap(),
                at_ms: 2,
            })
            .then_expect_events([]);
    }

    #[test]
    fn details_change_keeps_what_is_not_given() {
        let after = given::<Product>([created()])
            .when(ProductCommand::UpdateDetails {
                name: Some(ProductName::parse("Big mug").unwrap()),
                description: None,
                at_ms: 3,
            })
            .then_expect_events([events::ProductDetailsUpdated {
                product_id: ID.into(),
                name: "Big mug".into(),
                description: "A mug".into(),
                occurred_at_ms: 3,
            }
            .into()]);
        assert_eq!(after.updated_at_ms, 3);
        given::<Product>([created()])
            .when(ProductCommand::UpdateDetails {
                name: None,
                description: None,
                at_ms: 3,
            })
            .then_expect_error(|e| *e == ProductError::NothingToChange);
    }

    #[test]
    fn deleted_or_unknown_products_refuse_commands() {
        let deleted: ProductEvent = events::ProductDeleted {
            product_id: ID.into(),
            occurred_at_ms: 4,
        }
        .into();
        given::<Product>([created(), deleted])
            .when(ProductCommand::Delete { at_ms: 5 })
            .then_expect_error(|e| *e == ProductError::Deleted);
        given_no_events::<Product>()
            .when(ProductCommand::UpdatePrice {
                price: Cents::parse(1).unwrap(),
                at_ms: 5,
            })
            .then_expect_error(|e| *e == ProductError::NotFound);
    }
}
