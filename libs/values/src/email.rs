//! Email addresses, known to be well formed, with the one normalised form
//! that uniqueness and logins are decided on.

use std::fmt;

/// Why a raw string is not an [`Email`]. The message is meant for the
/// client (it becomes a field violation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEmail {
    /// Empty after trimming.
    #[error("must not be empty")]
    Empty,
    /// Longer than [`Email::MAX_LEN`].
    #[error("must be at most 254 characters")]
    TooLong,
    /// Not `local@domain`.
    #[error("must be an email address")]
    Malformed,
}

/// The form an address is compared in: trimmed and lower-cased, so
/// `Ann@Example.com` and ` ann@example.com` are one address. Services that
/// only receive addresses another context validated (auth's logins) use it
/// on the raw text.
pub fn normalise_email(raw: &str) -> String {
    raw.trim().to_lowercase()
}

/// An email address as the user typed it (trimmed), known to be well formed.
///
/// Equality of addresses is decided on [`Email::normalised`]; the derived
/// `PartialEq` compares the address as typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Longest address, in bytes (RFC 5321's path limit).
    pub const MAX_LEN: usize = 254;
    /// Longest local part (before the `@`), in bytes.
    pub const MAX_LOCAL_LEN: usize = 64;

    /// Parses an address: `local@domain`, the domain made of dot-separated
    /// labels of letters, digits and hyphens, with at least two labels.
    pub fn parse(raw: &str) -> Result<Self, InvalidEmail> {
        let email = raw.trim();
        if email.is_empty() {
            return Err(InvalidEmail::Empty);
        }
        if email.len() > Self::MAX_LEN {
            return Err(InvalidEmail::TooLong);
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err(InvalidEmail::Malformed);
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
            Err(InvalidEmail::Malformed)
        }
    }

    /// An address read back from an event this system recorded after
    /// parsing it, when folding events (which cannot fail): the record is
    /// trusted as written, so a rule tightened later never makes history
    /// unreadable.
    pub fn from_recorded(raw: &str) -> Self {
        Self(raw.to_owned())
    }

    /// The address as typed (trimmed).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address in the form uniqueness is decided on: lower-cased.
    pub fn normalised(&self) -> String {
        normalise_email(&self.0)
    }

    /// Whether two addresses are the same address.
    pub fn same_address(&self, other: &str) -> bool {
        self.normalised() == normalise_email(other)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

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
            prop_assert_eq!(email.to_string(), raw.trim());
            prop_assert_eq!(email.normalised(), raw.trim().to_lowercase());
            prop_assert_eq!(normalise_email(&raw), email.normalised());
            prop_assert!(email.same_address(&raw.to_uppercase()));
        }

        #[test]
        fn strings_without_an_at_sign_are_not_emails(raw in "[^@]{0,80}") {
            prop_assert!(Email::parse(&raw).is_err());
        }

        #[test]
        fn parsing_never_panics(raw in "\\PC*") {
            let _ = Email::parse(&raw);
        }

        #[test]
        fn normalising_is_idempotent(raw in "\\PC{0,80}") {
            let once = normalise_email(&raw);
            prop_assert_eq!(normalise_email(&once), once.clone());
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
        assert_eq!(Email::parse(&long), Err(InvalidEmail::TooLong));
    }

    #[test]
    fn messages_are_the_clients() {
        assert_eq!(
            Email::parse("  ").unwrap_err().to_string(),
            "must not be empty"
        );
        assert_eq!(
            Email::parse("ann").unwrap_err().to_string(),
            "must be an email address"
        );
        assert_eq!(
            InvalidEmail::TooLong.to_string(),
            "must be at most 254 characters"
        );
        assert_eq!(normalise_email(" Ann@Example.COM "), "ann@example.com");
    }
}
