//! Who is calling: the [`Identity`] of a call, and the identity metadata
//! contract between the gateway and the services.
//!
//! A service learns its caller in one place, the
//! [`authentication`](crate::authentication) layer: from a bearer token
//! the caller sends itself (verified as the gateway verifies it), or from
//! the metadata below. Handlers read the result with [`Identity::of`].
//!
//! The gateway verifies the caller's JWT and forwards the result as gRPC
//! metadata:
//!
//! | key | value |
//! | --- | --- |
//! | `x-stocklet-user-id` | the verified `sub` claim |
//! | `x-stocklet-role` | `customer` or `admin` |
//! | `x-stocklet-internal-token` | the shared secret `STOCKLET_INTERNAL_TOKEN` |
//!
//! A service trusts the identity keys only when the internal token matches
//! its own (compared in constant time). A caller that reaches a service's
//! gRPC port directly and does not know the token is anonymous, whatever it
//! claims: it can still call public methods, and with a bearer token what
//! that token's user may, nothing else. Services never
//! read identity from request bodies, so mass assignment of `customer_id` or
//! `role` has nothing to bind to.

use tonic::Request;
use tonic::metadata::MetadataMap;

use crate::authentication::Caller;
use crate::config::Secret;
use crate::error::ApiError;

/// Metadata key of the user id.
pub const USER_ID: &str = "x-stocklet-user-id";
/// Metadata key of the role.
pub const ROLE: &str = "x-stocklet-role";
/// Metadata key of the internal token.
pub const INTERNAL_TOKEN: &str = "x-stocklet-internal-token";

/// What a caller may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A shopper: sees only their own orders, balance and records.
    Customer,
    /// An operator: runs admin commands and sees everything.
    Admin,
}

impl Role {
    /// The metadata and JWT spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Admin => "admin",
        }
    }

    /// Parses the metadata and JWT spelling.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "customer" => Some(Self::Customer),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

/// The caller of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// No (trusted) identity.
    Anonymous,
    /// A verified user.
    User {
        /// Their id.
        user_id: String,
        /// Their role.
        role: Role,
    },
}

impl Identity {
    /// Who is calling: the identity the
    /// [`authentication`](crate::authentication) layer resolved for
    /// `request`. A request that did not pass that layer is anonymous.
    pub fn of<T>(request: &Request<T>) -> Self {
        request
            .extensions()
            .get::<Caller>()
            .map_or(Self::Anonymous, |caller| caller.0.clone())
    }

    /// [`of`](Self::of) for a request not yet decoded (a tower layer's).
    pub(crate) fn of_http(extensions: &http::Extensions) -> Self {
        extensions
            .get::<Caller>()
            .map_or(Self::Anonymous, |caller| caller.0.clone())
    }

    /// Reads the identity from request metadata, trusting it only next to
    /// the right internal token (what the
    /// [`authentication`](crate::authentication) layer does for a call
    /// without a bearer token).
    pub fn from_metadata(metadata: &MetadataMap, internal_token: &Secret) -> Self {
        let text = |key: &str| metadata.get(key).and_then(|v| v.to_str().ok());
        let trusted = !internal_token.is_empty()
            && text(INTERNAL_TOKEN).is_some_and(|given| {
                constant_time_eq(given.as_bytes(), internal_token.expose().as_bytes())
            });
        if !trusted {
            return Self::Anonymous;
        }
        match (text(USER_ID), text(ROLE).and_then(Role::parse)) {
            (Some(user_id), Some(role)) if !user_id.is_empty() => Self::User {
                user_id: user_id.to_owned(),
                role,
            },
            _ => Self::Anonymous,
        }
    }

    /// Writes this identity and the internal token into outgoing metadata
    /// (what the gateway and tests do).
    pub fn write_metadata(&self, metadata: &mut MetadataMap, internal_token: &Secret) {
        let Self::User { user_id, role } = self else {
            return;
        };
        for (key, value) in [
            (USER_ID, user_id.as_str()),
            (ROLE, role.as_str()),
            (INTERNAL_TOKEN, internal_token.expose()),
        ] {
            if let Ok(value) = value.parse() {
                metadata.insert(key, value);
            }
        }
    }

    /// A customer identity.
    pub fn customer(user_id: impl Into<String>) -> Self {
        Self::User {
            user_id: user_id.into(),
            role: Role::Customer,
        }
    }

    /// An admin identity.
    pub fn admin(user_id: impl Into<String>) -> Self {
        Self::User {
            user_id: user_id.into(),
            role: Role::Admin,
        }
    }

    /// The caller's user id, or `Unauthenticated`.
    pub fn require_user(&self) -> Result<&str, ApiError> {
        match self {
            Self::User { user_id, .. } => Ok(user_id),
            Self::Anonymous => Err(ApiError::Unauthenticated),
        }
    }

    /// Succeeds only for admins.
    pub fn require_admin(&self) -> Result<&str, ApiError> {
        match self {
            Self::User {
                user_id,
                role: Role::Admin,
            } => Ok(user_id),
            Self::User { .. } => Err(ApiError::PermissionDenied),
            Self::Anonymous => Err(ApiError::Unauthenticated),
        }
    }

    /// Whether the caller is an admin.
    pub fn is_admin(&self) -> bool {
        matches!(
            self,
            Self::User {
                role: Role::Admin,
                ..
            }
        )
    }

    /// Succeeds when the caller owns `owner_id` or is an admin. A customer
    /// asking for someone else's object gets `NotFound`, so ids of other
    /// customers' objects cannot be probed.
    pub fn require_owner_or_admin(&self, owner_id: &str, what: &str) -> Result<(), ApiError> {
        match self {
            Self::Anonymous => Err(ApiError::Unauthenticated),
            Self::User {
                role: Role::Admin, ..
            } => Ok(()),
            Self::User { user_id, .. } if user_id == owner_id => Ok(()),
            Self::User { .. } => Err(ApiError::NotFound(what.to_owned())),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(pairs: &[(&'static str, &str)]) -> MetadataMap {
        let mut map = MetadataMap::new();
        for (key, value) in pairs {
            map.insert(*key, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn identity_is_trusted_only_with_the_internal_token() {
        let token = Secret::new("s3cret");
        let claims = [(USER_ID, "u1"), (ROLE, "admin")];
        assert_eq!(
            Identity::from_metadata(&metadata(&claims), &token),
            Identity::Anonymous
        );
        let forged = [(USER_ID, "u1"), (ROLE, "admin"), (INTERNAL_TOKEN, "guess")];
        assert_eq!(
            Identity::from_metadata(&metadata(&forged), &token),
            Identity::Anonymous
        );
        let mut real = MetadataMap::new();
        Identity::admin("u1").write_metadata(&mut real, &token);
        assert_eq!(
            Identity::from_metadata(&real, &token),
            Identity::admin("u1")
        );
    }

    #[test]
    fn a_request_is_who_the_authentication_layer_says_and_anonymous_otherwise() {
        let mut request = Request::new(());
        Identity::admin("u1").write_metadata(request.metadata_mut(), &Secret::new("s3cret"));
        assert_eq!(Identity::of(&request), Identity::Anonymous);
        request
            .extensions_mut()
            .insert(Caller(Identity::customer("u2")));
        assert_eq!(Identity::of(&request), Identity::customer("u2"));
    }

    #[test]
    fn customers_reach_only_their_own_objects() {
        let alice = Identity::customer("alice");
        assert!(alice.require_owner_or_admin("alice", "order").is_ok());
        assert!(matches!(
            alice.require_owner_or_admin("bob", "order"),
            Err(ApiError::NotFound(_))
        ));
        assert!(matches!(
            alice.require_admin(),
            Err(ApiError::PermissionDenied)
        ));
        assert!(
            Identity::admin("root")
                .require_owner_or_admin("bob", "order")
                .is_ok()
        );
        assert!(matches!(
            Identity::Anonymous.require_user(),
            Err(ApiError::Unauthenticated)
        ));
    }
}
