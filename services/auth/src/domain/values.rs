//! Values of the auth context, parsed once at the edge.

use std::fmt;

/// Why a raw value is not a valid domain value. The message is meant for
/// the client (it becomes a field violation).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub &'static str);

/// What a set of credentials lets its holder do. Tokens carry it as the
/// `role` claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A shopper.
    Customer,
    /// An operator.
    Admin,
}

impl Role {
    /// The claim and metadata spelling (`customer`, `admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Admin => "admin",
        }
    }

    /// The event's enum number.
    pub fn to_event(self) -> i32 {
        use stocklet_proto::stocklet::events::v1::Role as Pb;
        match self {
            Self::Customer => Pb::Customer as i32,
            Self::Admin => Pb::Admin as i32,
        }
    }

    /// From the event's enum number; unknown or unset is the least
    /// privileged role.
    pub fn from_event(value: i32) -> Self {
        use stocklet_proto::stocklet::events::v1::Role as Pb;
        match Pb::try_from(value) {
            Ok(Pb::Admin) => Self::Admin,
            _ => Self::Customer,
        }
    }
}

/// A plain password: 1 to 64 characters, kept as given. No `Display`, and
/// its `Debug` prints `***`, so it cannot end up in a log by accident.
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

/// An Argon2id hash in PHC string format. Its `Debug` prints `***`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a PHC string.
    pub fn from_phc(phc: impl Into<String>) -> Self {
        Self(phc.into())
    }

    /// The PHC string.
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
        fn passwords_parse_exactly_when_1_to_64_characters(password in "\\PC{0,100}") {
            let count = password.chars().count();
            prop_assert_eq!(Password::parse(&password).is_ok(), (1..=64).contains(&count));
        }

        #[test]
        fn roles_round_trip_through_events(admin in any::<bool>()) {
            let role = if admin { Role::Admin } else { Role::Customer };
            prop_assert_eq!(Role::from_event(role.to_event()), role);
        }

        #[test]
        fn unknown_role_numbers_are_customers(value in 3i32..) {
            prop_assert_eq!(Role::from_event(value), Role::Customer);
        }
    }

    #[test]
    fn secrets_do_not_print() {
        let password = Password::parse("hunter2").unwrap();
        assert!(!format!("{password:?}").contains("hunter2"));
        let hash = PasswordHash::from_phc("$argon2id$v=19$secret");
        assert!(!format!("{hash:?}").contains("argon2"));
        assert_eq!(Role::from_event(0), Role::Customer);
    }
}
