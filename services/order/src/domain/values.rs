//! Values of the order context, parsed once at the edge ("parse, don't
//! validate"): once a [`Cart`] exists it has 1 to 50 distinct lines, each
//! with a product id and a quantity of 1 to 100.

use std::collections::BTreeSet;
use std::fmt;

/// Why a raw value is not a valid domain value. The message is meant for
/// the client (it becomes a field violation).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub &'static str);

/// Parses a UUID in any of the spellings `uuid` accepts and keeps its
/// canonical form (lowercase, hyphenated), so one id has one spelling.
fn canonical_uuid(raw: &str) -> Result<String, InvalidValue> {
    uuid::Uuid::parse_str(raw.trim())
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| InvalidValue("must be a UUID"))
}

/// An order's id: a UUID.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderId(String);

impl OrderId {
    /// Parses an order id.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        canonical_uuid(raw).map(Self)
    }

    /// A fresh, time-ordered id (UUIDv7).
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().hyphenated().to_string())
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A product's id: a UUID.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProductId(String);

impl ProductId {
    /// Parses a product id.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        canonical_uuid(raw).map(Self)
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProductId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The customer who places an order: the caller's verified user id, never
/// a request field. Non-empty, at most 128 bytes, no control characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomerId(String);

impl CustomerId {
    /// Longest id, in bytes.
    pub const MAX_BYTES: usize = 128;

    /// Parses a customer id.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        if raw.is_empty() {
            return Err(InvalidValue("must not be empty"));
        }
        if raw.len() > Self::MAX_BYTES {
            return Err(InvalidValue("must be at most 128 bytes"));
        }
        if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(InvalidValue(
                "must not contain whitespace or control characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Units of one product in one order line: 1 to [`Quantity::MAX`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(i64);

impl Quantity {
    /// Most units of one product in one order.
    pub const MAX: i64 = 100;

    /// Parses a quantity.
    pub fn parse(raw: i64) -> Result<Self, InvalidValue> {
        match raw {
            ..=0 => Err(InvalidValue("must be more than zero")),
            1..=Self::MAX => Ok(Self(raw)),
            _ => Err(InvalidValue("must be at most 100")),
        }
    }

    /// The number of units.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// An amount of money in minor units (cents): zero or more, never a float.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cents(i64);

impl Cents {
    /// The largest amount we accept anywhere (a billion currency units).
    /// Order totals stay far below overflow: 50 lines of 100 units each at
    /// this price still fit in an `i64`.
    pub const MAX: i64 = 100_000_000_000;

    /// Zero.
    pub const ZERO: Self = Self(0);

    /// Parses an amount.
    pub fn parse(raw: i64) -> Result<Self, InvalidValue> {
        match raw {
            ..0 => Err(InvalidValue("must be zero or more")),
            0..=Self::MAX => Ok(Self(raw)),
            _ => Err(InvalidValue("must be at most 100000000000 cents")),
        }
    }

    /// The amount in cents.
    pub fn get(self) -> i64 {
        self.0
    }

    /// `self * quantity`, or `None` on overflow.
    pub fn times(self, quantity: Quantity) -> Option<i64> {
        self.0.checked_mul(quantity.get())
    }
}

/// One line of a cart: a product and how many of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CartLine {
    /// The product.
    pub product_id: ProductId,
    /// How many units.
    pub quantity: Quantity,
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
            let id = ProductId::parse(raw_id);
            let quantity = Quantity::parse(raw_quantity);
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
                        InvalidValue("names a product already in the cart"),
                    ));
                }
            }
        }
        if count == 0 {
            problems.push((None, InvalidValue("must hold at least one product")));
        }
        if count > Self::MAX_LINES {
            problems.push((None, InvalidValue("must hold at most 50 products")));
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
            return Err(InvalidValue("must be at most 200 characters"));
        }
        if reason.chars().any(char::is_control) {
            return Err(InvalidValue("must not contain control characters"));
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
    use super::*;
    use proptest::prelude::*;

    fn uuid_strategy() -> impl Strategy<Value = String> {
        any::<u128>().prop_map(|bits| uuid::Uuid::from_u128(bits).to_string())
    }

    proptest! {
        #[test]
        fn quantities_parse_exactly_when_in_range(raw in any::<i64>()) {
            prop_assert_eq!(Quantity::parse(raw).is_ok(), (1..=Quantity::MAX).contains(&raw));
        }

        #[test]
        fn amounts_parse_exactly_when_in_range(raw in any::<i64>()) {
            prop_assert_eq!(Cents::parse(raw).is_ok(), (0..=Cents::MAX).contains(&raw));
        }

        #[test]
        fn line_totals_never_overflow(price in 0..=Cents::MAX, quantity in 1..=Quantity::MAX) {
            let total = Cents::parse(price).unwrap().times(Quantity::parse(quantity).unwrap());
            prop_assert_eq!(total, Some(price * quantity));
        }

        #[test]
        fn product_ids_have_one_spelling(id in uuid_strategy()) {
            let lower = ProductId::parse(&id).unwrap();
            let upper = ProductId::parse(&id.to_uppercase()).unwrap();
            prop_assert_eq!(&lower, &upper);
            prop_assert_eq!(lower.as_str(), id.as_str());
        }

        #[test]
        fn non_uuids_are_not_ids(raw in "[g-z ._*>-]{0,40}") {
            prop_assert!(ProductId::parse(&raw).is_err());
            prop_assert!(OrderId::parse(&raw).is_err());
        }

        #[test]
        fn valid_carts_parse_sorted_and_complete(
            entries in proptest::collection::btree_map(uuid_strategy(), 1..=Quantity::MAX, 1..=Cart::MAX_LINES)
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
            entries in proptest::collection::btree_map(uuid_strategy(), 1..=Quantity::MAX, 1..10),
            bad in prop_oneof![i64::MIN..=0, (Quantity::MAX + 1)..=i64::MAX],
        ) {
            let mut entries: Vec<(String, i64)> = entries.into_iter().collect();
            entries[0].1 = bad;
            let error = Cart::parse(entries.iter().map(|(id, q)| (id.as_str(), *q))).unwrap_err();
            prop_assert_eq!(error.problems.len(), 1);
            prop_assert_eq!(error.problems[0].0.as_deref(), Some(entries[0].0.as_str()));
        }

        #[test]
        fn customer_ids_without_whitespace_parse(raw in "[a-zA-Z0-9_-]{1,128}") {
            let parsed = CustomerId::parse(&raw).unwrap();
            prop_assert_eq!(parsed.as_str(), raw.as_str());
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
            [(None, InvalidValue("must hold at most 50 products"))]
        );

        let id = "0192f0c1-0000-7000-8000-000000000001";
        let twice = Cart::parse([(id, 1), (&*id.to_uppercase(), 2)]).unwrap_err();
        assert_eq!(twice.problems.len(), 1);
    }

    #[test]
    fn bad_ids_and_quantities_are_all_reported() {
        let error = Cart::parse([("nope", 0), ("", 101)]).unwrap_err();
        assert_eq!(error.problems.len(), 4);
    }

    #[test]
    fn reasons_and_customers_are_bounded() {
        assert!(CancellationReason::parse("").is_ok());
        assert!(CancellationReason::parse(&"x".repeat(200)).is_ok());
        assert!(CancellationReason::parse(&"x".repeat(201)).is_err());
        assert!(CancellationReason::parse("a\u{0}b").is_err());
        assert!(CustomerId::parse("").is_err());
        assert!(CustomerId::parse("a b").is_err());
        assert!(CustomerId::parse(&"x".repeat(129)).is_err());
    }
}
