//! Money: whole cents in an `i64`, never a float, parsed once at the edge.

use std::fmt;

/// The largest amount one command may move: ten billion currency units.
/// Sums of a few million of them still fit in an `i64`.
pub const MAX_CENTS: i64 = 1_000_000_000_000;

/// An amount of money in cents, zero or more and at most [`MAX_CENTS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cents(i64);

/// Why a number is not an acceptable amount.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidCents {
    /// Below zero.
    #[error("must not be negative")]
    Negative,
    /// Zero where an amount must be more than zero.
    #[error("must be more than zero")]
    Zero,
    /// More than [`MAX_CENTS`].
    #[error("must be at most {MAX_CENTS} cents")]
    TooLarge,
}

impl Cents {
    /// Zero cents.
    pub const ZERO: Self = Self(0);

    /// Parses an amount that may be zero (an order total).
    pub fn parse(cents: i64) -> Result<Self, InvalidCents> {
        if cents < 0 {
            Err(InvalidCents::Negative)
        } else if cents > MAX_CENTS {
            Err(InvalidCents::TooLarge)
        } else {
            Ok(Self(cents))
        }
    }

    /// Parses an amount that must be more than zero (a top-up).
    pub fn parse_positive(cents: i64) -> Result<Self, InvalidCents> {
        match Self::parse(cents)? {
            Self(0) => Err(InvalidCents::Zero),
            amount => Ok(amount),
        }
    }

    /// The amount in cents.
    pub fn get(self) -> i64 {
        self.0
    }

    /// Whether the amount is zero.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} cents", self.0)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn parse_accepts_exactly_zero_to_max(cents in any::<i64>()) {
            let parsed = Cents::parse(cents);
            if (0..=MAX_CENTS).contains(&cents) {
                prop_assert_eq!(parsed.map(Cents::get), Ok(cents));
            } else {
                prop_assert!(parsed.is_err());
            }
        }

        #[test]
        fn positive_amounts_exclude_zero(cents in -10i64..10) {
            prop_assert_eq!(Cents::parse_positive(cents).is_ok(), cents > 0);
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(Cents::parse(-1), Err(InvalidCents::Negative));
        assert_eq!(Cents::parse_positive(0), Err(InvalidCents::Zero));
        assert_eq!(Cents::parse(MAX_CENTS + 1), Err(InvalidCents::TooLarge));
    }
}
