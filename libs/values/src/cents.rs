//! Money: whole cents in an `i64`, never a float, never below zero.

use std::fmt;

use crate::Quantity;

/// An amount of money in cents: zero or more.
///
/// The type itself only rules out negative amounts, because sums (a
/// balance, an order's total) may grow past any one bound. What one
/// request may name is bounded when it is parsed: [`Cents::parse`] takes a
/// price or an order total (at most [`Cents::MAX`]), and a context with
/// another limit says so with [`Cents::parse_at_most`] or
/// [`Cents::parse_positive_at_most`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cents(i64);

/// Why a number is not an acceptable amount. The message is meant for the
/// client (it becomes a field violation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidCents {
    /// Below zero.
    #[error("{}", if *.zero_allowed { "must be zero or more" } else { "must not be negative" })]
    Negative {
        /// Whether zero would have been accepted, which decides the wording.
        zero_allowed: bool,
    },
    /// Zero where an amount must be more than zero.
    #[error("must be more than zero")]
    Zero,
    /// More than the bound the amount was parsed against.
    #[error("must be at most {max} cents")]
    TooLarge {
        /// The bound, in cents.
        max: i64,
    },
}

impl Cents {
    /// Zero cents.
    pub const ZERO: Self = Self(0);

    /// The largest price or order total we accept: a billion currency
    /// units. Order totals stay far below overflow: 50 lines of 100 units
    /// each at this price still fit in an `i64`.
    pub const MAX: i64 = 100_000_000_000;

    /// Parses a price or an order total: zero to [`Cents::MAX`].
    pub fn parse(cents: i64) -> Result<Self, InvalidCents> {
        Self::parse_at_most(cents, Self::MAX)
    }

    /// Parses an amount of zero to `max` cents.
    pub fn parse_at_most(cents: i64, max: i64) -> Result<Self, InvalidCents> {
        if cents < 0 {
            Err(InvalidCents::Negative { zero_allowed: true })
        } else if cents > max {
            Err(InvalidCents::TooLarge { max })
        } else {
            Ok(Self(cents))
        }
    }

    /// Parses an amount that must be more than zero, at most `max` cents
    /// (a top-up).
    pub fn parse_positive_at_most(cents: i64, max: i64) -> Result<Self, InvalidCents> {
        match Self::parse_at_most(cents, max) {
            Err(InvalidCents::Negative { .. }) => Err(InvalidCents::Negative {
                zero_allowed: false,
            }),
            Ok(Self(0)) => Err(InvalidCents::Zero),
            parsed => parsed,
        }
    }

    /// An amount read back from an event this system recorded after
    /// parsing it, when folding events (which cannot fail). Any size is
    /// kept; a negative record, which no command can produce, reads as zero
    /// so that the type never holds a negative amount.
    pub fn from_recorded(cents: i64) -> Self {
        Self(cents.max(0))
    }

    /// The amount in cents.
    pub fn get(self) -> i64 {
        self.0
    }

    /// Whether the amount is zero.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Self)
    }

    /// `self + other`, at most `i64::MAX` cents.
    pub fn saturating_add(self, other: Self) -> Self {
        Self(self.0.saturating_add(other.0))
    }

    /// `self - other`, or `None` if that would be below zero.
    pub fn checked_sub(self, other: Self) -> Option<Self> {
        (other.0 <= self.0).then(|| Self(self.0 - other.0))
    }

    /// `self * quantity`, or `None` on overflow.
    pub fn times(self, quantity: Quantity) -> Option<Self> {
        self.0.checked_mul(quantity.get()).map(Self)
    }

    /// `self * quantity`, at most `i64::MAX` cents.
    pub fn saturating_times(self, quantity: Quantity) -> Self {
        Self(self.0.saturating_mul(quantity.get()))
    }

    /// The sum of `amounts`, or `None` on overflow.
    pub fn checked_sum(amounts: impl IntoIterator<Item = Self>) -> Option<Self> {
        amounts
            .into_iter()
            .try_fold(Self::ZERO, |sum, amount| sum.checked_add(amount))
    }
}

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} cents", self.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn prices_parse_exactly_when_zero_to_max(cents in any::<i64>()) {
            let parsed = Cents::parse(cents);
            if (0..=Cents::MAX).contains(&cents) {
                prop_assert_eq!(parsed.map(Cents::get), Ok(cents));
            } else {
                prop_assert!(parsed.is_err());
            }
        }

        #[test]
        fn bounded_amounts_parse_exactly_when_zero_to_the_bound(
            cents in any::<i64>(),
            max in 0..=i64::MAX,
        ) {
            prop_assert_eq!(Cents::parse_at_most(cents, max).is_ok(), (0..=max).contains(&cents));
            prop_assert_eq!(
                Cents::parse_positive_at_most(cents, max).is_ok(),
                (1..=max).contains(&cents)
            );
        }

        #[test]
        fn recorded_amounts_are_never_negative(cents in any::<i64>()) {
            let recorded = Cents::from_recorded(cents);
            prop_assert!(recorded.get() >= 0);
            prop_assert_eq!(recorded.get(), cents.max(0));
        }

        #[test]
        fn arithmetic_is_checked(a in 0..=i64::MAX, b in 0..=i64::MAX) {
            let (a, b) = (Cents::from_recorded(a), Cents::from_recorded(b));
            prop_assert_eq!(a.checked_add(b).map(Cents::get), a.get().checked_add(b.get()));
            prop_assert_eq!(a.saturating_add(b).get(), a.get().saturating_add(b.get()));
            let difference = a.checked_sub(b);
            prop_assert_eq!(difference.is_some(), b <= a);
            if let Some(difference) = difference {
                prop_assert_eq!(difference.get(), a.get() - b.get());
            }
        }

        #[test]
        fn line_totals_of_prices_never_overflow(
            price in 0..=Cents::MAX,
            units in 1..=Quantity::MAX,
        ) {
            let price = Cents::parse(price).unwrap();
            let units = Quantity::parse(units).unwrap();
            let total = price.times(units);
            prop_assert_eq!(total.map(Cents::get), price.get().checked_mul(units.get()));
            if let Some(total) = total {
                prop_assert_eq!(price.saturating_times(units), total);
            }
        }

        #[test]
        fn sums_match_integer_sums(amounts in proptest::collection::vec(0..=Cents::MAX, 0..50)) {
            let sum = Cents::checked_sum(amounts.iter().map(|a| Cents::parse(*a).unwrap()));
            prop_assert_eq!(sum.map(Cents::get), Some(amounts.iter().sum::<i64>()));
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let message = |result: Result<Cents, InvalidCents>| result.unwrap_err().to_string();
        assert_eq!(message(Cents::parse(-1)), "must be zero or more");
        assert_eq!(
            message(Cents::parse(Cents::MAX + 1)),
            "must be at most 100000000000 cents"
        );
        assert_eq!(
            message(Cents::parse_positive_at_most(-1, 10)),
            "must not be negative"
        );
        assert_eq!(
            message(Cents::parse_positive_at_most(0, 10)),
            "must be more than zero"
        );
        assert_eq!(
            message(Cents::parse_positive_at_most(11, 10)),
            "must be at most 10 cents"
        );
        assert_eq!(Cents::parse(250).unwrap().to_string(), "250 cents");
    }
}
