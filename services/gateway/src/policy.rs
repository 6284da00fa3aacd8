//! The edge policy: which methods need no token, and which are rate-limited.
//!
//! Which methods are public is not the gateway's own list: it is
//! service-kit's [`access`](stocklet_service_kit::access), which every
//! service enforces too, so a client that calls a service directly with a
//! bearer token (or none) is refused exactly what the gateway refuses. The
//! gateway checks it first only to refuse an unauthenticated call to a
//! private route before it reaches a service.
//!
//! Rate limits are the gateway's alone: they guard the edge (password
//! guessing, order floods per client) and are not repeated behind it.

pub use stocklet_service_kit::access::{PUBLIC_METHODS, is_public, leading_comment};

/// Methods limited per client: guessing passwords and flooding orders.
pub const RATE_LIMITED_METHODS: &[&str] = &[
    "stocklet.auth.v1.AuthService.LoginPassword",
    "stocklet.order.v1.OrderService.PlaceOrder",
];

/// Whether `method` (a full name) is rate-limited per client.
pub fn is_rate_limited(method: &str) -> bool {
    RATE_LIMITED_METHODS.contains(&method)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use prost_reflect::DescriptorPool;

    use super::*;

    #[test]
    fn rate_limited_methods_exist() {
        let pool = DescriptorPool::decode(stocklet_proto::FILE_DESCRIPTOR_SET).unwrap();
        for method in RATE_LIMITED_METHODS {
            let (service, name) = method.rsplit_once('.').unwrap();
            let service = pool.get_service_by_name(service).unwrap();
            assert!(service.methods().any(|m| m.name() == name), "{method}");
        }
    }
}
