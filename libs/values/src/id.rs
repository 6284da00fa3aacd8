//! Ids: UUIDs with one spelling each, and the customer's id as the caller's
//! verified identity carries it.

use std::fmt;

/// Why a raw string is not an id. The message is meant for the client (it
/// becomes a field violation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidId {
    /// Not a UUID in any spelling `uuid` accepts.
    #[error("must be a UUID")]
    NotUuid,
    /// The empty string.
    #[error("must not be empty")]
    Empty,
    /// Longer than [`CustomerId::MAX_BYTES`].
    #[error("must be at most 128 bytes")]
    TooLong,
    /// Whitespace or a control character inside.
    #[error("must not contain whitespace or control characters")]
    Unprintable,
}

/// Parses a UUID in any of the spellings `uuid` accepts and keeps its
/// canonical form (lowercase, hyphenated), so one id has one spelling.
fn canonical_uuid(raw: &str) -> Result<String, InvalidId> {
    uuid::Uuid::parse_str(raw.trim())
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| InvalidId::NotUuid)
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Parses the id: a UUID in any spelling, kept in its canonical
            /// one (lowercase, hyphenated).
            pub fn parse(raw: &str) -> Result<Self, InvalidId> {
                canonical_uuid(raw).map(Self)
            }

            /// A fresh, time-ordered id (UUIDv7).
            pub fn generate() -> Self {
                Self(uuid::Uuid::now_v7().hyphenated().to_string())
            }

            /// An id read back from an event this system recorded after
            /// parsing it, when folding events (which cannot fail): the
            /// record is trusted as written, so a rule tightened later never
            /// makes history unreadable.
            pub fn from_recorded(raw: &str) -> Self {
                Self(raw.to_owned())
            }

            /// The id.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

uuid_id! {
    /// An order's id: a UUID.
    OrderId
}

uuid_id! {
    /// A product's id: a UUID.
    ProductId
}

/// A customer: the caller's verified user id, never a request field.
/// Non-empty, at most [`CustomerId::MAX_BYTES`], no whitespace or control
/// characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomerId(String);

impl CustomerId {
    /// Longest id, in bytes.
    pub const MAX_BYTES: usize = 128;

    /// Parses a customer id.
    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        if raw.is_empty() {
            return Err(InvalidId::Empty);
        }
        if raw.len() > Self::MAX_BYTES {
            return Err(InvalidId::TooLong);
        }
        if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(InvalidId::Unprintable);
        }
        Ok(Self(raw.to_owned()))
    }

    /// A fresh, time-ordered id (UUIDv7): a user's, made when they
    /// register.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().hyphenated().to_string())
    }

    /// An id read back from an event this system recorded after parsing
    /// it, when folding events (which cannot fail): the record is trusted
    /// as written.
    pub fn from_recorded(raw: &str) -> Self {
        Self(raw.to_owned())
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    fn uuid_strategy() -> impl Strategy<Value = String> {
        any::<u128>().prop_map(|bits| uuid::Uuid::from_u128(bits).to_string())
    }

    proptest! {
        #[test]
        fn uuid_ids_have_one_spelling(id in uuid_strategy()) {
            let lower = ProductId::parse(&id).unwrap();
            let upper = ProductId::parse(&id.to_uppercase()).unwrap();
            prop_assert_eq!(&lower, &upper);
            prop_assert_eq!(lower.as_str(), id.as_str());
            let simple = id.replace('-', "");
            prop_assert_eq!(OrderId::parse(&simple).unwrap().to_string(), id.clone());
            prop_assert_eq!(OrderId::parse(&format!(" {id} ")).unwrap().to_string(), id);
        }

        #[test]
        fn non_uuids_are_not_ids(raw in "[g-z ._*>-]{0,40}") {
            prop_assert_eq!(ProductId::parse(&raw), Err(InvalidId::NotUuid));
            prop_assert_eq!(OrderId::parse(&raw), Err(InvalidId::NotUuid));
        }

        #[test]
        fn customer_ids_without_whitespace_parse(raw in "[a-zA-Z0-9_-]{1,128}") {
            let parsed = CustomerId::parse(&raw).unwrap();
            prop_assert_eq!(parsed.as_str(), raw.as_str());
            prop_assert_eq!(parsed.to_string(), raw);
        }

        #[test]
        fn recorded_ids_are_kept_as_written(raw in "\\PC{0,40}") {
            prop_assert_eq!(OrderId::from_recorded(&raw).to_string(), raw.clone());
            prop_assert_eq!(CustomerId::from_recorded(&raw).to_string(), raw);
        }
    }

    #[test]
    fn generated_ids_parse_as_themselves() {
        let id = OrderId::generate();
        assert_eq!(OrderId::parse(id.as_str()), Ok(id));
        let id = ProductId::generate();
        assert_eq!(ProductId::parse(id.as_str()), Ok(id));
        let id = CustomerId::generate();
        assert_eq!(CustomerId::parse(id.as_str()), Ok(id));
    }

    #[test]
    fn customer_ids_are_bounded() {
        assert_eq!(CustomerId::parse(""), Err(InvalidId::Empty));
        assert_eq!(CustomerId::parse("a b"), Err(InvalidId::Unprintable));
        assert_eq!(CustomerId::parse("a\u{0}b"), Err(InvalidId::Unprintable));
        assert_eq!(CustomerId::parse(&"x".repeat(129)), Err(InvalidId::TooLong));
        assert!(CustomerId::parse(&"x".repeat(128)).is_ok());
        assert_eq!(InvalidId::NotUuid.to_string(), "must be a UUID");
        assert_eq!(InvalidId::Empty.to_string(), "must not be empty");
        assert_eq!(InvalidId::TooLong.to_string(), "must be at most 128 bytes");
        assert_eq!(
            InvalidId::Unprintable.to_string(),
            "must not contain whitespace or control characters"
        );
    }
}
