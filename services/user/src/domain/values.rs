//! Values of the user context, parsed once at the edge ("parse, don't
//! validate"): once a `PersonName` or a `Password` exists it is valid. Email
//! addresses are the shared [`Email`](stocklet_values::Email), which the
//! auth context normalises the same way.

use std::fmt;

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

/// A plain password on its way to being hashed: 1 to 64 characters, kept as
/// given (spaces count). It has no `Display`, and its `Debug` prints `***`,
/// so it cannot end up in a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Longest password, in characters.
    pub const MAX_CHARS: usize = 64;

    /// Parses a password.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        if raw.is_empty() {
            return Err(InvalidValue("must not be empty"));
        }
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(InvalidValue("must be at most 64 characters"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The password, for the hasher only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// An Argon2id hash in PHC string format. Its `Debug` prints `***`: hashes
/// never appear in logs.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a PHC string made by the hasher.
    pub fn from_phc(phc: String) -> Self {
        Self(phc)
    }

    /// The PHC string, for the event that carries it to the auth service.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(***)")
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
        fn passwords_parse_exactly_when_1_to_64_characters(password in "\\PC{0,100}") {
            let count = password.chars().count();
            prop_assert_eq!(Password::parse(&password).is_ok(), (1..=64).contains(&count));
        }

        #[test]
        fn parsing_never_panics(raw in "\\PC*") {
            let _ = PersonName::parse(&raw);
            let _ = Password::parse(&raw);
        }
    }

    #[test]
    fn secrets_do_not_print() {
        let password = Password::parse("hunter2").unwrap();
        assert!(!format!("{password:?}").contains("hunter2"));
        let hash = PasswordHash::from_phc("$argon2id$v=19$secret".into());
        assert!(!format!("{hash:?}").contains("argon2"));
    }

    #[test]
    fn names_are_trimmed_and_control_characters_rejected() {
        assert_eq!(PersonName::parse("  Ann ").unwrap().as_str(), "Ann");
        assert!(PersonName::parse("   ").is_err());
        assert!(PersonName::parse("A\u{0}nn").is_err());
    }
}
