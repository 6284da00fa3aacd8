//! The edge policy: which methods need no token, and which are rate-limited.
//!
//! This is the only hand-kept list in the gateway, and it is about access,
//! not routing. It is explicit code rather than parsed from comments, and a
//! test checks it against the proto: a method is listed here exactly when
//! its proto comment says "Public.". The services enforce the same rules on
//! every call; this list lets the gateway refuse unauthenticated calls to
//! private routes before they reach a service.

use prost_reflect::MethodDescriptor;

/// Methods that anyone may call without a token: every service's
/// description, the JWKS, login, registration, catalogue and stock reads.
pub const PUBLIC_METHODS: &[&str] = &[
    "stocklet.auth.v1.AuthService.GetServiceInfo",
    "stocklet.auth.v1.AuthService.GetJwks",
    "stocklet.auth.v1.AuthService.LoginPassword",
    "stocklet.user.v1.UserService.GetServiceInfo",
    "stocklet.user.v1.UserService.RegisterUser",
    "stocklet.product.v1.ProductService.GetServiceInfo",
    "stocklet.product.v1.ProductService.ViewProduct",
    "stocklet.product.v1.ProductService.ViewProducts",
    "stocklet.warehouse.v1.WarehouseService.GetServiceInfo",
    "stocklet.warehouse.v1.WarehouseService.ViewProductStock",
    "stocklet.order.v1.OrderService.GetServiceInfo",
    "stocklet.payment.v1.PaymentService.GetServiceInfo",
    "stocklet.shipping.v1.ShippingService.GetServiceInfo",
];

/// Methods limited per client: guessing passwords and flooding orders.
pub const RATE_LIMITED_METHODS: &[&str] = &[
    "stocklet.auth.v1.AuthService.LoginPassword",
    "stocklet.order.v1.OrderService.PlaceOrder",
];

/// Whether `method` (a full name) needs no token.
pub fn is_public(method: &str) -> bool {
    PUBLIC_METHODS.contains(&method)
}

/// Whether `method` (a full name) is rate-limited per client.
pub fn is_rate_limited(method: &str) -> bool {
    RATE_LIMITED_METHODS.contains(&method)
}

/// The comment above `method` in its .proto file, if any.
pub fn leading_comment(method: &MethodDescriptor) -> Option<String> {
    let file = method.parent_file();
    file.file_descriptor_proto()
        .source_code_info
        .as_ref()?
        .location
        .iter()
        .find(|location| location.path == method.path())
        .and_then(|location| location.leading_comments.clone())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use prost_reflect::DescriptorPool;

    use super::*;

    #[test]
    fn public_methods_are_exactly_those_the_proto_calls_public() {
        let pool = DescriptorPool::decode(stocklet_proto::FILE_DESCRIPTOR_SET).unwrap();
        let mut said_public = Vec::new();
        for service in pool
            .services()
            .filter(|s| s.package_name().starts_with("stocklet."))
        {
            for method in service.methods() {
                let comment = leading_comment(&method).unwrap_or_default();
                let words: Vec<&str> = comment.split_whitespace().collect();
                if words.contains(&"Public.") {
                    said_public.push(method.full_name().to_owned());
                }
            }
        }
        said_public.sort();
        let mut listed: Vec<String> = PUBLIC_METHODS.iter().map(|m| (*m).to_owned()).collect();
        listed.sort();
        assert_eq!(listed, said_public);
        for method in RATE_LIMITED_METHODS {
            assert!(
                pool.get_service_by_name(method.rsplit_once('.').unwrap().0)
                    .is_some()
            );
        }
    }
}
