//! Values of the user context, parsed once at the edge ("parse, don't
//! validate"): once a `PersonName` exists it is valid. Email addresses and
//! passwords are the shared [`Email`](stocklet_values::Email) and
//! [`Password`](stocklet_values::Password), which the auth context uses
//! too.

/// Why a raw value is not a valid domain value. The message is meant for
/// the client (it becomes a field violation).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub &'static str);

/// A first or last name: 1 to 35 characters after trimming, no control
/// characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonName(String);

impl PersonName {
    /// Longest name, in characters.
    pub const MAX_CHARS: usize = 35;

    /// Parses a name, trimming surrounding whitespace.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(InvalidValue("must not be empty"));
        }
        if name.chars().count() > Self::MAX_CHARS {
            return Err(InvalidValue("must be at most 35 characters"));
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn names_parse_exactly_when_1_to_35_characters(name in "[a-zA-Zéü]{0,60}") {
            let count = name.chars().count();
            prop_assert_eq!(PersonName::parse(&name).is_ok(), (1..=35).contains(&count));
        }

        #[test]
        fn parsing_never_panics(raw in "\\PC*") {
            let _ = PersonName::parse(&raw);
        }
    }

    #[test]
    fn names_are_trimmed_and_control_characters_rejected() {
        assert_eq!(PersonName::parse("  Ann ").unwrap().as_str(), "Ann");
        assert!(PersonName::parse("   ").is_err());
        assert!(PersonName::parse("A\u{0}nn").is_err());
    }
}
