//! Units of a product, parsed once at the edge so no aggregate sees a
//! zero, negative or absurd quantity.

use std::fmt;

/// A number of units, more than zero and at most [`Quantity::MAX`].
///
/// A context with a tighter rule (an order line holds at most 100 units)
/// parses with [`Quantity::parse_at_most`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity(i64);

/// Why a number is not a [`Quantity`]. The message is meant for the client
/// (it becomes a field violation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidQuantity {
    /// Zero or less.
    #[error("must be more than zero")]
    NotPositive,
    /// More than the bound the quantity was parsed against.
    #[error("must be at most {max}")]
    TooLarge {
        /// The bound, in units.
        max: i64,
    },
}

impl Quantity {
    /// The most units one command may move: far above any real delivery,
    /// low enough that sums of many of them stay far from `i64::MAX`.
    pub const MAX: i64 = 1_000_000_000;

    /// Parses a quantity: 1 to [`Quantity::MAX`].
    pub fn parse(units: i64) -> Result<Self, InvalidQuantity> {
        Self::parse_at_most(units, Self::MAX)
    }

    /// Parses a quantity of 1 to `max` units (and never more than
    /// [`Quantity::MAX`]).
    pub fn parse_at_most(units: i64, max: i64) -> Result<Self, InvalidQuantity> {
        let max = max.min(Self::MAX);
        if units <= 0 {
            Err(InvalidQuantity::NotPositive)
        } else if units > max {
            Err(InvalidQuantity::TooLarge { max })
        } else {
            Ok(Self(units))
        }
    }

    /// A quantity read back from an event this system recorded after
    /// parsing it, when folding events (which cannot fail). A record out of
    /// range, which no command can produce, is brought into 1 to
    /// [`Quantity::MAX`] so that the type keeps its invariant.
    pub fn from_recorded(units: i64) -> Self {
        Self(units.clamp(1, Self::MAX))
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
            if (1..=Quantity::MAX).contains(&units) {
                prop_assert_eq!(parsed.map(Quantity::get), Ok(units));
            } else {
                prop_assert!(parsed.is_err());
            }
        }

        #[test]
        fn a_tighter_bound_accepts_exactly_one_to_it(units in any::<i64>(), max in 1..=200i64) {
            prop_assert_eq!(Quantity::parse_at_most(units, max).is_ok(), (1..=max).contains(&units));
        }

        #[test]
        fn a_looser_bound_is_still_max(units in any::<i64>(), max in Quantity::MAX..) {
            prop_assert_eq!(Quantity::parse_at_most(units, max), Quantity::parse(units));
        }

        #[test]
        fn recorded_quantities_stay_in_range(units in any::<i64>()) {
            let recorded = Quantity::from_recorded(units).get();
            prop_assert!((1..=Quantity::MAX).contains(&recorded));
            if (1..=Quantity::MAX).contains(&units) {
                prop_assert_eq!(recorded, units);
            }
        }
    }

    #[test]
    fn bounds_and_messages() {
        assert_eq!(Quantity::parse(0), Err(InvalidQuantity::NotPositive));
        assert_eq!(Quantity::parse(-3), Err(InvalidQuantity::NotPositive));
        assert_eq!(
            Quantity::parse(Quantity::MAX + 1),
            Err(InvalidQuantity::TooLarge { max: Quantity::MAX })
        );
        assert_eq!(
            Quantity::parse(Quantity::MAX).map(Quantity::get),
            Ok(Quantity::MAX)
        );
        assert_eq!(
            InvalidQuantity::NotPositive.to_string(),
            "must be more than zero"
        );
        assert_eq!(
            Quantity::parse(Quantity::MAX + 1).map_err(|e| e.to_string()),
            Err("must be at most 1000000000".to_owned())
        );
        assert_eq!(
            Quantity::parse_at_most(101, 100).map_err(|e| e.to_string()),
            Err("must be at most 100".to_owned())
        );
        assert_eq!(Quantity::parse(7).map(|q| q.to_string()), Ok("7".into()));
    }
}
