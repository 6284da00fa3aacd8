//! Units to ship, parsed once at the edge so the aggregate never sees a
//! zero, negative or absurd quantity.

use std::fmt;

/// The most units one command may move: far above any real delivery, low
/// enough that sums of many of them stay far from `i64::MAX`.
pub const MAX_QUANTITY: i64 = 1_000_000_000;

/// A number of units, more than zero and at most [`MAX_QUANTITY`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity(i64);

/// Why a number is not a [`Quantity`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidQuantity {
    /// Zero or less.
    #[error("must be more than zero")]
    NotPositive,
    /// More than [`MAX_QUANTITY`].
    #[error("must be at most {MAX_QUANTITY}")]
    TooLarge,
}

impl Quantity {
    /// Parses a quantity.
    pub fn parse(units: i64) -> Result<Self, InvalidQuantity> {
        if units <= 0 {
            Err(InvalidQuantity::NotPositive)
        } else if units > MAX_QUANTITY {
            Err(InvalidQuantity::TooLarge)
        } else {
            Ok(Self(units))
        }
    }

    /// The number of units.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn accepts_exactly_one_to_max(units in any::<i64>()) {
            let parsed = Quantity::parse(units);
            if (1..=MAX_QUANTITY).contains(&units) {
                prop_assert_eq!(parsed.map(Quantity::get), Ok(units));
            } else {
                prop_assert!(parsed.is_err());
            }
        }
    }

    #[test]
    fn bounds() {
        assert_eq!(Quantity::parse(0), Err(InvalidQuantity::NotPositive));
        assert_eq!(Quantity::parse(-3), Err(InvalidQuantity::NotPositive));
        assert_eq!(
            Quantity::parse(MAX_QUANTITY + 1),
            Err(InvalidQuantity::TooLarge)
        );
        assert_eq!(
            Quantity::parse(MAX_QUANTITY).map(Quantity::get),
            Ok(MAX_QUANTITY)
        );
    }
}
