//! Values of the order context, parsed once at the edge ("parse, don't
//! validate"): once a [`Cart`] exists it has 1 to 50 distinct lines, each
//! with a product id and a quantity of 1 to [`CartLine::MAX_QUANTITY`].
//!
//! Money, quantities and ids are the shared `stocklet-values` types; what
//! is the order's own is here: how many units one line may hold, how many
//! lines a cart may have, and why an order is cancelled.

use std::borrow::Cow;
use std::collections::BTreeSet;

use stocklet_values::{InvalidCents, InvalidId, InvalidQuantity, ProductId, Quantity};

/// Why a raw value is not a valid domain value. The message is meant for
/// the client (it becomes a field violation).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub Cow<'static, str>);

impl InvalidValue {
    const fn new(message: &'static str) -> Self {
        Self(Cow::Borrowed(message))
    }
}

impl From<InvalidId> for InvalidValue {
    fn from(error: InvalidId) -> Self {
        Self(error.to_string().into())
    }
}

impl From<InvalidQuantity> for InvalidValue {
    fn from(error: InvalidQuantity) -> Self {
        Self(error.to_string().into())
    }
}

impl From<InvalidCents> for InvalidValue {
    fn from(error: InvalidCents) -> Self {
        Self(error.to_string().into())
    }
}

/// One line of a cart: a product and how many of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CartLine {
    /// The product.
    pub product_id: ProductId,
    /// How many units: 1 to [`CartLine::MAX_QUANTITY`].
    pub quantity: Quantity,
}

impl CartLine {
    /// Most units of one product in one order: the order's own rule, on top
    /// of what any [`Quantity`] allows.
    pub const MAX_QUANTITY: i64 = 100;

    /// Parses the units of one line.
    pub fn parse_quantity(raw: i64) -> Result<Quantity, InvalidValue> {
        Ok(Quantity::parse_at_most(raw, Self::MAX_QUANTITY)?)
    }
}

/// Why a cart is invalid: every bad entry at once, so the client can fix
/// them all. Each problem names the product id as the client spelled it.
#[derive(Clone, Debug, Default, PartialEq, Eq, thiserror::Error)]
#[error("invalid cart ({} problems)", .problems.len())]
pub struct InvalidCart {
    /// `(product id as given or empty, what is wrong)`.
    pub problems: Vec<(Option<String>, InvalidValue)>,
}

/// What a customer orders: 1 to [`Cart::MAX_LINES`] lines, one per product,
/// sorted by product id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cart(Vec<CartLine>);

impl Cart {
    /// Most distinct products in one order.
    pub const MAX_LINES: usize = 50;

    /// Parses a cart from `(product id, quantity)` entries. Ids that name
    /// the same product in two spellings are duplicates.
    pub fn parse<'a>(
        entries: impl IntoIterator<Item = (&'a str, i64)>,
    ) -> Result<Self, InvalidCart> {
        let mut problems = Vec::new();
        let mut lines = Vec::new();
        let mut seen = BTreeSet::new();
        let mut count = 0usize;
        for (raw_id, raw_quantity) in entries {
            count += 1;
            let id = ProductId::parse(raw_id).map_err(InvalidValue::from);
            let quantity = CartLine::parse_quantity(raw_quantity);
            if let Err(e) = &id {
                problems.push((Some(raw_id.to_owned()), e.clone()));
            }
            if let Err(e) = &quantity {
                problems.push((Some(raw_id.to_owned()), e.clone()));
            }
            if let (Ok(product_id), Ok(quantity)) = (id, quantity) {
                if seen.insert(product_id.clone()) {
                    lines.push(CartLine {
                        product_id,
                        quantity,
                    });
                } else {
                    problems.push((
                        Some(raw_id.to_owned()),
                        InvalidValue::new("names a product already in the cart"),
                    ));
                }
            }
        }
        if count == 0 {
            problems.push((None, InvalidValue::new("must hold at least one product")));
        }
        if count > Self::MAX_LINES {
            problems.push((None, InvalidValue::new("must hold at most 50 products")));
        }
        if !problems.is_empty() {
            return Err(InvalidCart { problems });
        }
        lines.sort_by(|a, b| a.product_id.cmp(&b.product_id));
        Ok(Self(lines))
    }

    /// The lines, sorted by product id.
    pub fn lines(&self) -> &[CartLine] {
        &self.0
    }
}

/// Why an order was cancelled, as the caller gave it: at most 200
/// characters, no control characters; may be empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CancellationReason(String);

impl CancellationReason {
    /// Longest reason, in characters.
    pub const MAX_CHARS: usize = 200;

    /// Parses a reason, trimming surrounding whitespace.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let reason = raw.trim();
        if reason.chars().count() > Self::MAX_CHARS {
            return Err(InvalidValue::new("must be at most 200 characters"));
        }
        if reason.chars().any(char::is_control) {
            return Err(InvalidValue::new("must not contain control characters"));
        }
        Ok(Self(reason.to_owned()))
    }

    /// The reason.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use stocklet_values::Cents;

    use super::*;

    fn uuid_strategy() -> impl Strategy<Value = String> {
        any::<u128>().prop_map(|bits| uuid::Uuid::from_u128(bits).to_string())
    }

    proptest! {
        #[test]
        fn line_quantities_parse_exactly_when_in_range(raw in any::<i64>()) {
            prop_assert_eq!(
                CartLine::parse_quantity(raw).is_ok(),
                (1..=CartLine::MAX_QUANTITY).contains(&raw)
            );
        }

        #[test]
        fn line_totals_never_overflow(price in 0..=Cents::MAX, quantity in 1..=CartLine::MAX_QUANTITY) {
            let total = Cents::parse(price).unwrap().times(CartLine::parse_quantity(quantity).unwrap());
            prop_assert_eq!(total.map(Cents::get), Some(price * quantity));
        }

        #[test]
        fn valid_carts_parse_sorted_and_complete(
            entries in proptest::collection::btree_map(uuid_strategy(), 1..=CartLine::MAX_QUANTITY, 1..=Cart::MAX_LINES)
        ) {
            let cart = Cart::parse(entries.iter().map(|(id, q)| (id.as_str(), *q))).unwrap();
            prop_assert_eq!(cart.lines().len(), entries.len());
            prop_assert!(cart.lines().windows(2).all(|w| w[0].product_id < w[1].product_id));
            for line in cart.lines() {
                prop_assert_eq!(entries.get(line.product_id.as_str()), Some(&line.quantity.get()));
            }
        }

        #[test]
        fn carts_with_a_bad_quantity_are_rejected(
            entries in proptest::collection::btree_map(uuid_strategy(), 1..=CartLine::MAX_QUANTITY, 1..10),
            bad in prop_oneof![i64::MIN..=0, (CartLine::MAX_QUANTITY + 1)..=i64::MAX],
        ) {
            let mut entries: Vec<(String, i64)> = entries.into_iter().collect();
            entries[0].1 = bad;
            let error = Cart::parse(entries.iter().map(|(id, q)| (id.as_str(), *q))).unwrap_err();
            prop_assert_eq!(error.problems.len(), 1);
            prop_assert_eq!(error.problems[0].0.as_deref(), Some(entries[0].0.as_str()));
        }
    }

    #[test]
    fn empty_oversized_and_duplicate_carts_are_rejected() {
        let none: [(&str, i64); 0] = [];
        assert_eq!(Cart::parse(none).unwrap_err().problems.len(), 1);

        let ids: Vec<String> = (0..51u128)
            .map(|n| uuid::Uuid::from_u128(n + 1).to_string())
            .collect();
        let too_many = Cart::parse(ids.iter().map(|id| (id.as_str(), 1))).unwrap_err();
        assert_eq!(
            too_many.problems,
            [(None, InvalidValue("must hold at most 50 products".into()))]
        );

        let id = "0192f0c1-0000-7000-8000-000000000001";
        let twice = Cart::parse([(id, 1), (&*id.to_uppercase(), 2)]).unwrap_err();
        assert_eq!(twice.problems.len(), 1);
    }

    #[test]
    fn bad_ids_and_quantities_are_all_reported() {
        let error = Cart::parse([("nope", 0), ("", 101)]).unwrap_err();
        assert_eq!(error.problems.len(), 4);
        let messages: Vec<String> = error.problems.iter().map(|(_, e)| e.to_string()).collect();
        assert_eq!(
            messages,
            [
                "must be a UUID",
                "must be more than zero",
                "must be a UUID",
                "must be at most 100"
            ]
        );
    }

    #[test]
    fn reasons_are_bounded() {
        assert!(CancellationReason::parse("").is_ok());
        assert!(CancellationReason::parse(&"x".repeat(200)).is_ok());
        assert!(CancellationReason::parse(&"x".repeat(201)).is_err());
        assert!(CancellationReason::parse("a\u{0}b").is_err());
    }
}
