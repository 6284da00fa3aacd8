//! Values of the catalogue, parsed once at the edge ("parse, don't
//! validate"): once a `ProductName` exists it is valid. Prices are the
//! shared [`Cents`](stocklet_values::Cents), at most `Cents::MAX` as
//! `Cents::parse` takes them.

use std::fmt;

/// Why a raw value is not a valid domain value. The message is meant for
/// the client (it becomes a field violation).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub &'static str);

/// A product name: 1 to 100 characters, not blank, no control characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductName(String);

impl ProductName {
    /// Longest name, in characters.
    pub const MAX_CHARS: usize = 100;

    /// Parses a name, trimming surrounding whitespace.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(InvalidValue("must not be empty"));
        }
        if name.chars().count() > Self::MAX_CHARS {
            return Err(InvalidValue("must be at most 100 characters"));
        }
        if name.chars().any(char::is_control) {
            return Err(InvalidValue("must not contain control characters"));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProductName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A product description: at most 2000 characters (may be empty).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Description(String);

impl Description {
    /// Longest description, in characters.
    pub const MAX_CHARS: usize = 2000;

    /// Parses a description, trimming surrounding whitespace.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let description = raw.trim();
        if description.chars().count() > Self::MAX_CHARS {
            return Err(InvalidValue("must be at most 2000 characters"));
        }
        Ok(Self(description.to_owned()))
    }

    /// The description.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn names_within_bounds_parse_and_keep_their_text(name in "[a-zA-Z0-9][a-zA-Z0-9 ]{0,98}[a-zA-Z0-9]") {
            let parsed = ProductName::parse(&name).unwrap();
            prop_assert_eq!(parsed.as_str(), name.trim());
        }

        #[test]
        fn overlong_names_are_rejected(name in "[a-z]{101,300}") {
            prop_assert!(ProductName::parse(&name).is_err());
        }

    }

    #[test]
    fn blank_and_control_names_are_rejected() {
        assert!(ProductName::parse("   ").is_err());
        assert!(ProductName::parse("bad\u{7}name").is_err());
        assert!(Description::parse("").is_ok());
        assert!(Description::parse(&"x".repeat(2001)).is_err());
    }
}
