//! Values of the auth context, parsed once at the edge. Passwords and
//! their hashes are the shared ones (`stocklet-values`), as the user
//! context hashes them.

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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
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
    fn an_unset_role_is_a_customer() {
        assert_eq!(Role::from_event(0), Role::Customer);
    }
}
