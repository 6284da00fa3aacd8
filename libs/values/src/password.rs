//! Passwords and their hashes as values: a new password parsed once at the
//! edge against the password policy, a password offered at login, and the
//! PHC string a password is stored as.
//!
//! Why here and not beside the hasher: the user aggregate holds a
//! [`PasswordHash`] in its commands and the auth aggregate in its state,
//! and domain code should not depend on Argon2 or a thread pool to name
//! them. The hashing itself (Argon2id on the blocking pool) is
//! `stocklet_service_kit::password`.
//!
//! # The policy (NIST SP 800-63B, section 5.1.1.2)
//!
//! A new [`Password`] (registration, a password change, the bootstrap
//! admin's) has at least [`Password::MIN_CHARS`] (8) and at most
//! [`Password::MAX_CHARS`] (128) characters, counted as Unicode code
//! points, and is not one of the most common passwords. NIST asks for at
//! least 8 characters, for allowing at least 64, and for checking new
//! passwords against a list of commonly used or compromised ones; it asks
//! for no composition rules (no "one digit, one symbol") and for no
//! periodic changes, and there are none. Every character is allowed,
//! spaces included, and the password is kept as given: the common-password
//! check compares a normalised copy (NFC, lower case), so `PASSWORD1` and
//! `Password1` are refused like `password1`. The maximum bounds the work a
//! request can cause; 128 leaves room for passphrases and password
//! managers.
//!
//! The list (`common_passwords.txt`, shipped with the code, one a line) is
//! the 20,000 most common passwords of Royce Williams' list as Django
//! ships it (`django/contrib/auth/common-passwords.txt.gz`, BSD-3-Clause;
//! derived from public password leaks), in order of frequency, keeping the
//! 8,346 ASCII entries of at least 8 characters: the shorter ones are
//! refused for their length anyway.
//!
//! A password offered at login or as the current password is a
//! [`PasswordAttempt`]: only its length is bounded (1 to
//! [`Password::MAX_CHARS`]), because accounts made under an older policy
//! must still log in, and because a login must not tell a guesser which
//! passwords the policy refuses. Only a [`Password`] can be hashed for
//! storage.
//!
//! None of these types has `Display`, and all print `***` with `Debug`, so
//! a password or a hash cannot end up in a log by accident.

use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;

use unicode_normalization::UnicodeNormalization;

/// Why a raw string is not a [`Password`] or a [`PasswordAttempt`]. The
/// message is meant for the client (it becomes a field violation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPassword {
    /// The empty string.
    #[error("must not be empty")]
    Empty,
    /// Shorter than [`Password::MIN_CHARS`].
    #[error("must be at least 8 characters")]
    TooShort,
    /// Longer than [`Password::MAX_CHARS`].
    #[error("must be at most 128 characters")]
    TooLong,
    /// On the list of the most common passwords.
    #[error("is one of the most commonly used passwords; choose another")]
    Common,
}

/// The most common passwords, normalised (see [`normalised`]).
static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common_passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect()
});

/// How a password is compared with the common list: NFC, then lower case.
fn normalised(raw: &str) -> String {
    raw.nfc().collect::<String>().to_lowercase()
}

/// Whether `raw` is one of the most common passwords (compared after NFC
/// normalisation, case-insensitively).
pub fn is_common_password(raw: &str) -> bool {
    COMMON.contains(normalised(raw).as_str())
}

/// The length bounds every password shares: 1 to [`Password::MAX_CHARS`].
fn check_length(raw: &str) -> Result<usize, InvalidPassword> {
    if raw.is_empty() {
        return Err(InvalidPassword::Empty);
    }
    let count = raw.chars().count();
    if count > Password::MAX_CHARS {
        return Err(InvalidPassword::TooLong);
    }
    Ok(count)
}

/// A new password that meets the policy (see the module docs): 8 to 128
/// characters, kept as given (spaces count), and not a common password.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Shortest new password, in characters (NIST SP 800-63B: 8).
    pub const MIN_CHARS: usize = 8;
    /// Longest password, in characters (NIST SP 800-63B: allow at least
    /// 64).
    pub const MAX_CHARS: usize = 128;

    /// Parses a new password against the policy.
    pub fn parse(raw: &str) -> Result<Self, InvalidPassword> {
        if check_length(raw)? < Self::MIN_CHARS {
            return Err(InvalidPassword::TooShort);
        }
        if is_common_password(raw) {
            return Err(InvalidPassword::Common);
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

/// A password offered to be checked against a stored hash (a login, the
/// current password of a change): 1 to [`Password::MAX_CHARS`] characters,
/// kept as given, and never hashed for storage.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordAttempt(String);

impl PasswordAttempt {
    /// Parses an offered password: only its length is bounded.
    pub fn parse(raw: &str) -> Result<Self, InvalidPassword> {
        check_length(raw)?;
        Ok(Self(raw.to_owned()))
    }

    /// The password, for the verifier only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&Password> for PasswordAttempt {
    fn from(password: &Password) -> Self {
        Self(password.0.clone())
    }
}

impl fmt::Debug for PasswordAttempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordAttempt(***)")
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
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn new_passwords_parse_exactly_when_8_to_128_characters_and_not_common(password in "\\PC{0,140}") {
            let count = password.chars().count();
            let expected = (8..=128).contains(&count) && !is_common_password(&password);
            prop_assert_eq!(Password::parse(&password).is_ok(), expected);
        }

        #[test]
        fn new_passwords_are_kept_as_given(password in "[a-z ]{1,4}\\PC{20,120}") {
            prop_assert_eq!(Password::parse(&password).map(|p| p.expose().to_owned()), Ok(password));
        }

        #[test]
        fn attempts_parse_exactly_when_1_to_128_characters(password in "\\PC{0,140}") {
            let count = password.chars().count();
            prop_assert_eq!(PasswordAttempt::parse(&password).is_ok(), (1..=128).contains(&count));
        }
    }

    #[test]
    fn the_shipped_list_is_normalised_and_only_holds_passwords_long_enough() {
        let raw = include_str!("common_passwords.txt");
        let entries: Vec<&str> = raw.lines().collect();
        assert!(entries.len() > 8_000, "{}", entries.len());
        assert_eq!(COMMON.len(), entries.len(), "no duplicates, no blanks");
        for entry in entries {
            assert_eq!(normalised(entry), entry);
            assert!(entry.chars().count() >= Password::MIN_CHARS, "{entry}");
            assert_eq!(entry.trim(), entry);
        }
    }

    #[test]
    fn common_passwords_are_refused_in_any_case() {
        for common in [
            "password",
            "12345678",
            "Password1",
            "QWERTY123",
            "iloveyou",
            "1q2w3e4r5t",
            "sunshine",
            "football",
            "baseball",
            "superman",
        ] {
            assert_eq!(
                Password::parse(common),
                Err(InvalidPassword::Common),
                "{common}"
            );
            // A login may still offer it: the account may predate the list.
            assert!(PasswordAttempt::parse(common).is_ok());
        }
        // NFC: a decomposed "é" compares like the composed one.
        assert_eq!(normalised("cafe\u{301}cafe"), normalised("caf\u{e9}cafe"));
    }

    #[test]
    fn the_projects_own_passwords_meet_the_policy() {
        // The demo data, the tour and the tests register with these.
        for ours in [
            "stocklet-admin",
            "stocklet-ada",
            "stocklet-grace",
            "tour-password",
            "correct horse",
            "correct horse battery",
            "correct horse battery staple",
            "admin password 1",
        ] {
            assert!(Password::parse(ours).is_ok(), "{ours}");
        }
    }

    #[test]
    fn secrets_do_not_print() {
        let password = Password::parse("hunter2 hunter2").unwrap();
        assert!(!format!("{password:?}").contains("hunter2"));
        let attempt = PasswordAttempt::parse("hunter2").unwrap();
        assert!(!format!("{attempt:?}").contains("hunter2"));
        let hash = PasswordHash::from_phc("$argon2id$v=19$secret");
        assert!(!format!("{hash:?}").contains("argon2"));
    }

    #[test]
    fn messages_are_the_clients() {
        let message = |raw: &str| Password::parse(raw).unwrap_err().to_string();
        assert_eq!(message(""), "must not be empty");
        assert_eq!(message("seven c"), "must be at least 8 characters");
        assert_eq!(message(&"x".repeat(129)), "must be at most 128 characters");
        assert_eq!(
            message("password1"),
            "is one of the most commonly used passwords; choose another"
        );
        assert!(Password::parse(&"x".repeat(128)).is_ok());
        // Characters, not bytes: eight two-byte characters are enough.
        assert!(Password::parse("ééééééé").is_err());
        assert!(Password::parse("éééééééé").is_ok());
        assert_eq!(
            Password::parse("        ").map(|p| p.expose().to_owned()),
            Ok("        ".into())
        );
        assert_eq!(
            PasswordAttempt::parse("x").map(|p| p.expose().to_owned()),
            Ok("x".into())
        );
        assert_eq!(
            PasswordAttempt::parse(&"x".repeat(129)),
            Err(InvalidPassword::TooLong)
        );
    }
}
