//! The edge policy: which methods need no token, and which rate-limit
//! budgets each method spends.
//!
//! Which methods are public is not the gateway's own list: it is
//! service-kit's [`access`](stocklet_service_kit::access), which every
//! service enforces too, so a client that calls a service directly with a
//! bearer token (or none) is refused exactly what the gateway refuses. The
//! gateway checks it first only to refuse an unauthenticated call to a
//! private route before it reaches a service.
//!
//! Rate limits are the gateway's alone (see `ratelimit`): a password guess
//! spends the client address's budget whatever token comes with it, and
//! the target account's budget whoever sends it.

use prost_reflect::{DynamicMessage, ReflectMessage};
use stocklet_service_kit::Identity;
use stocklet_values::normalise_email;

pub use stocklet_service_kit::access::{PUBLIC_METHODS, is_public, leading_comment};

/// A budget a rate-limited method spends (see [`RATE_LIMITED_METHODS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// Per method and client address, whatever token comes with the
    /// request (`STOCKLET_GATEWAY_RATE_LIMIT_PER_MINUTE`, `_BURST`).
    Address,
    /// Per method and signed-in caller (the address without a token):
    /// the same settings as [`Budget::Address`].
    Caller,
    /// Per target account, whoever asks and from wherever: the account a
    /// login or a password change names ([`target_account`]). Only failures
    /// count: a success is refunded. Login and SetPassword share it
    /// (`STOCKLET_GATEWAY_ACCOUNT_RATE_LIMIT_PER_HOUR`, `_BURST`).
    Account,
    /// Registrations per client address
    /// (`STOCKLET_GATEWAY_REGISTER_RATE_LIMIT_PER_HOUR`, `_BURST`).
    Registration,
}

/// Methods limited at the edge, and the budgets each spends in order:
/// password guesses per address and per victim (a token changes neither,
/// so throwaway accounts gain nothing), account creation per address, and
/// order floods per customer.
pub const RATE_LIMITED_METHODS: &[(&str, &[Budget])] = &[
    (
        "stocklet.auth.v1.AuthService.LoginPassword",
        &[Budget::Address, Budget::Account],
    ),
    (
        "stocklet.auth.v1.AuthService.SetPassword",
        &[Budget::Address, Budget::Account],
    ),
    (
        "stocklet.user.v1.UserService.RegisterUser",
        &[Budget::Registration],
    ),
    (
        "stocklet.order.v1.OrderService.PlaceOrder",
        &[Budget::Caller],
    ),
];

/// The longest email address the auth service takes at login.
const MAX_EMAIL_BYTES: usize = 254;
/// The longest user id the auth service takes (es-core's aggregate ids).
const MAX_ID_BYTES: usize = 128;

/// The budgets `method` (a full name) spends; empty when not limited.
pub fn rate_limits(method: &str) -> &'static [Budget] {
    RATE_LIMITED_METHODS
        .iter()
        .find(|(name, _)| *name == method)
        .map_or(&[], |(_, budgets)| budgets)
}

/// The account a login or password change targets, as the key of its
/// [`Budget::Account`]: the email address in the auth service's
/// normalised form (trimmed, lower case: the auth service matches it so),
/// or the user id exactly as given (the auth service loads exactly that
/// id). For SetPassword an empty `user_id` is the caller's own, and an
/// admin's change is no guess (it needs no current password), so it spends
/// nothing. `None` when nothing is to be spent (a request that names no
/// account is refused as invalid anyway).
///
/// An account can be named by its email and by its id, so each name has a
/// budget: an attacker who knows both gets at most twice the budget. A name
/// longer than the auth service accepts (254 bytes of email, 128 of id) is
/// refused there as invalid, so it is no guess, and is not kept as a key.
pub fn target_account(message: &DynamicMessage, identity: &Identity) -> Option<String> {
    let is_set_password = message.descriptor().full_name() == "stocklet.auth.v1.SetPasswordRequest";
    if is_set_password && identity.is_admin() {
        return None;
    }
    let field = |name: &str| {
        message
            .descriptor()
            .get_field_by_name(name)
            .filter(|field| message.has_field(field))
            .and_then(|field| message.get_field(&field).as_str().map(str::to_owned))
    };
    if let Some(email) = field("email").filter(|e| !e.trim().is_empty()) {
        return (email.len() <= MAX_EMAIL_BYTES)
            .then(|| format!("email:{}", normalise_email(&email)));
    }
    match (field("user_id").filter(|id| !id.is_empty()), identity) {
        (Some(id), _) => (id.len() <= MAX_ID_BYTES).then(|| format!("id:{id}")),
        (None, Identity::User { user_id, .. }) if is_set_password => Some(format!("id:{user_id}")),
        (None, _) => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use prost_reflect::DescriptorPool;

    use super::*;

    #[test]
    fn rate_limited_methods_exist_with_the_fields_their_budgets_read() {
        let pool = DescriptorPool::decode(stocklet_proto::FILE_DESCRIPTOR_SET).unwrap();
        for (method, budgets) in RATE_LIMITED_METHODS {
            let (service, name) = method.rsplit_once('.').unwrap();
            let service = pool.get_service_by_name(service).unwrap();
            let method = service.methods().find(|m| m.name() == name).unwrap();
            if budgets.contains(&Budget::Account) {
                // The fields target_account reads are there.
                let input = method.input();
                assert!(input.get_field_by_name("user_id").is_some(), "{name}");
            }
        }
        assert_eq!(
            rate_limits("stocklet.product.v1.ProductService.ViewProducts"),
            &[]
        );
    }

    fn message(name: &str, json: &str) -> DynamicMessage {
        let pool = DescriptorPool::decode(stocklet_proto::FILE_DESCRIPTOR_SET).unwrap();
        let descriptor = pool.get_message_by_name(name).unwrap();
        let mut deserializer = serde_json::Deserializer::from_str(json);
        DynamicMessage::deserialize(descriptor, &mut deserializer).unwrap()
    }

    #[test]
    fn the_target_account_is_named_as_the_auth_service_reads_it() {
        let login = "stocklet.auth.v1.LoginPasswordRequest";
        let set = "stocklet.auth.v1.SetPasswordRequest";
        let me = Identity::customer("me");
        let key = |name: &str, json: &str| target_account(&message(name, json), &me);
        assert_eq!(
            key(login, r#"{"email": " Ann@Example.COM ", "password": "x"}"#),
            key(login, r#"{"email": "ann@example.com"}"#),
        );
        assert_eq!(
            key(login, r#"{"email": "ann@example.com"}"#).as_deref(),
            Some("email:ann@example.com")
        );
        assert_eq!(
            key(login, r#"{"userId": "u-1"}"#).as_deref(),
            Some("id:u-1")
        );
        assert_eq!(key(login, r#"{"password": "x"}"#), None);
        // Names the auth service refuses as invalid are not kept.
        let long = format!(r#"{{"email": "{}@example.com"}}"#, "a".repeat(300));
        assert_eq!(key(login, &long), None);
        let long = format!(r#"{{"userId": "{}"}}"#, "a".repeat(129));
        assert_eq!(key(login, &long), None);
        assert_eq!(
            key(set, r#"{"userId": "u-1", "password": "x"}"#).as_deref(),
            Some("id:u-1")
        );
        assert_eq!(key(set, r#"{"password": "x"}"#).as_deref(), Some("id:me"));
        assert_eq!(
            target_account(&message(set, "{}"), &Identity::Anonymous),
            None
        );
        // An admin's change checks no password: nothing to guess.
        let admin = Identity::admin("root");
        assert_eq!(
            target_account(&message(set, r#"{"userId": "u-1"}"#), &admin),
            None
        );
        assert_eq!(
            target_account(&message(login, r#"{"userId": "u-1"}"#), &admin).as_deref(),
            Some("id:u-1")
        );
    }
}
