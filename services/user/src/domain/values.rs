//! Values of the user context, parsed once at the edge ("parse, don't
//! validate"): once an `Email` or a `PersonName` exists it is valid.

use std::fmt;

/// Why a raw value is not a valid domain value. The message is meant for
/// the client (it becomes a field violation).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub &'static str);

/// An email address as the user typed it (trimmed), known to be well formed.
///
/// Equality of addresses is decided on [`Email::normalised`]: trimmed and
/// lower-cased, so `Ann@Example.com` and `ann@example.com` are one address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Longest address, in bytes (RFC 5321's path limit).
    pub const MAX_LEN: usize = 254;
    /// Longest local part (before the `@`), in bytes.
    pub const MAX_LOCAL_LEN: usize = 64;

    /// Parses an address: `local@domain`, the domain made of dot-separated
    /// labels of letters, digits and hyphens, with at least two labels.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let email = raw.trim();
        if email.is_empty() {
            return Err(InvalidValue("must not be empty"));
        }
        if email.len() > Self::MAX_LEN {
            return Err(InvalidValue("must be at most 254 characters"));
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err(InvalidValue("must be an email address"));
        };
        let local_ok = !local.is_empty()
            && local.len() <= Self::MAX_LOCAL_LEN
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if local_ok && domain_ok {
            Ok(Self(email.to_owned()))
        } else {
            Err(InvalidValue("must be an email address"))
        }
    }

    /// The address as typed (trimmed).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address in the form uniqueness is decided on: lower-cased.
    pub fn normalised(&self) -> String {
        self.0.to_lowercase()
    }

    /// Whether two addresses are the same address.
    pub fn same_address(&self, other: &str) -> bool {
        self.normalised() == other.trim().to_lowercase()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

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
        fn well_formed_addresses_parse_and_normalise_to_lowercase(
            local in "[a-zA-Z0-9_+-]{1,20}",
            domain in "[a-zA-Z0-9]{1,20}",
            tld in "[a-zA-Z]{2,6}",
        ) {
            let raw = format!("  {local}@{domain}.{tld} ");
            let email = Email::parse(&raw).unwrap();
            prop_assert_eq!(email.as_str(), raw.trim());
            prop_assert_eq!(email.normalised(), raw.trim().to_lowercase());
            prop_assert!(email.same_address(&raw.to_uppercase()));
        }

        #[test]
        fn strings_without_an_at_sign_are_not_emails(raw in "[^@]{0,80}") {
            prop_assert!(Email::parse(&raw).is_err());
        }

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
            let _ = Email::parse(&raw);
            let _ = PersonName::parse(&raw);
            let _ = Password::parse(&raw);
        }
    }

    #[test]
    fn malformed_addresses_are_rejected() {
        for bad in [
            "",
            "ann",
            "@example.com",
            "ann@",
            "ann@example",
            "ann@@example.com",
            "ann@exa mple.com",
            "an n@example.com",
            "ann@-example.com",
            "ann@example..com",
            ".ann@example.com",
            "ann..lee@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} parsed");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert!(Email::parse(&long_local).is_err());
        let long = format!("a@{}.com", "b".repeat(250));
        assert!(Email::parse(&long).is_err());
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
