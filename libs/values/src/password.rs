//! Passwords and their hashes as values: a plain password parsed once at
//! the edge, and the PHC string it is stored as.
//!
//! Why here and not beside the hasher: the user aggregate holds a
//! [`PasswordHash`] in its commands and the auth aggregate in its state,
//! and domain code should not depend on Argon2 or a thread pool to name
//! them. The hashing itself (Argon2id on the blocking pool) is
//! `stocklet_service_kit::password`.
//!
//! Neither type has `Display`, and both print `***` with `Debug`, so a
//! password or a hash cannot end up in a log by accident.

use std::fmt;

/// Why a raw string is not a [`Password`]. The message is meant for the
/// client (it becomes a field violation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPassword {
    /// The empty string.
    #[error("must not be empty")]
    Empty,
    /// Longer than [`Password::MAX_CHARS`].
    #[error("must be at most 64 characters")]
    TooLong,
}

/// A plain password: 1 to [`Password::MAX_CHARS`] characters, kept as
/// given (spaces count).
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Longest password, in characters.
    pub const MAX_CHARS: usize = 64;

    /// Parses a password.
    pub fn parse(raw: &str) -> Result<Self, InvalidPassword> {
        if raw.is_empty() {
            return Err(InvalidPassword::Empty);
        }
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(InvalidPassword::TooLong);
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

/// An Argon2id hash in PHC string format. The default is the empty string,
/// which matches no password.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a PHC string: made by the hasher, or read back from an event.
    pub fn from_phc(phc: impl Into<String>) -> Self {
        Self(phc.into())
    }

    /// The PHC string, for the verifier and for the event that carries it.
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
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn passwords_parse_exactly_when_1_to_64_characters(password in "\\PC{0,100}") {
            let count = password.chars().count();
            prop_assert_eq!(Password::parse(&password).is_ok(), (1..=64).contains(&count));
        }

        #[test]
        fn passwords_are_kept_as_given(password in "\\PC{1,64}") {
            prop_assert_eq!(Password::parse(&password).map(|p| p.expose().to_owned()), Ok(password));
        }
    }

    #[test]
    fn secrets_do_not_print() {
        let password = Password::parse("hunter2").unwrap();
        assert!(!format!("{password:?}").contains("hunter2"));
        let hash = PasswordHash::from_phc("$argon2id$v=19$secret");
        assert!(!format!("{hash:?}").contains("argon2"));
    }

    #[test]
    fn messages_are_the_clients() {
        assert_eq!(
            Password::parse("").unwrap_err().to_string(),
            "must not be empty"
        );
        assert_eq!(
            Password::parse(&"x".repeat(65)).unwrap_err().to_string(),
            "must be at most 64 characters"
        );
        assert_eq!(
            Password::parse(" ").map(|p| p.expose().to_owned()),
            Ok(" ".into())
        );
    }
}
