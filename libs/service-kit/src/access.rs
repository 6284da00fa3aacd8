//! Who may call what without signing in: the one list of public methods.
//!
//! The gateway refuses an anonymous request to any other method before it
//! reaches a service (401), and every service refuses the same calls
//! itself ([`authentication`](crate::authentication)): a client that dials
//! a service's port directly can do no more than one that comes through
//! the gateway. Beyond "signed in or not", roles and ownership are checked
//! by each handler ([`Identity`](crate::Identity)'s `require_*`), so they
//! hold the same on both paths too.
//!
//! This is hand-kept code rather than read from comments, and a test checks
//! it against the proto: a method is listed here exactly when its proto
//! comment says "Public.".

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

/// Whether `method` (a full name, `stocklet.order.v1.OrderService.PlaceOrder`)
/// needs no token.
pub fn is_public(method: &str) -> bool {
    PUBLIC_METHODS.contains(&method)
}

/// Whether the gRPC call to `path` (`/stocklet.order.v1.OrderService/PlaceOrder`)
/// needs a signed-in caller: every Stocklet method but the public ones.
/// Health, reflection and anything else on the port are open.
pub fn needs_user(path: &str) -> bool {
    let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
        return false;
    };
    service.starts_with("stocklet.") && !is_public(&format!("{service}.{method}"))
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
    }

    #[test]
    fn every_stocklet_method_but_the_public_ones_needs_a_user() {
        assert!(needs_user("/stocklet.order.v1.OrderService/PlaceOrder"));
        assert!(needs_user(
            "/stocklet.order.v1.DeadLetterService/ListDeadLetters"
        ));
        assert!(!needs_user("/stocklet.auth.v1.AuthService/LoginPassword"));
        assert!(!needs_user(
            "/stocklet.product.v1.ProductService/ViewProducts"
        ));
        assert!(!needs_user("/grpc.health.v1.Health/Check"));
        assert!(!needs_user(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        ));
        assert!(!needs_user("/metrics"));
    }
}
