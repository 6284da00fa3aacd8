#![doc = include_str!("../README.md")]
//!
//! # Why one crate
//!
//! Every service, the gateway and the tests share these types, so they are
//! generated once, here, from one descriptor set. Each protobuf package is a
//! module at the same path (`stocklet.order.v1` is [`stocklet::order::v1`]),
//! because prost refers to other packages by relative module paths.
//!
//! Each `stocklet` module holds, for every message and enum:
//! - the prost type, for the protobuf wire format (gRPC and events);
//! - serde impls that follow the proto3 JSON mapping (pbjson): lowerCamelCase
//!   names, int64 as strings, enums as names, and unknown fields rejected;
//! - for services, a tonic client (`<service>_client`) and server
//!   (`<service>_server`).
//!
//! [`FILE_DESCRIPTOR_SET`] is the encoded descriptor set of every file, with
//! comments and with the `(google.api.http)` options, for gRPC reflection and
//! for a REST gateway that reads the routes.

/// Includes the prost and pbjson output of one protobuf package.
macro_rules! include_package {
    ($package:literal) => {
        include!(concat!(env!("OUT_DIR"), "/", $package, ".rs"));
        include!(concat!(env!("OUT_DIR"), "/", $package, ".serde.rs"));
    };
}

/// The encoded `google.protobuf.FileDescriptorSet` of every `.proto` file in
/// this crate and its imports, with source info and custom options.
///
/// These are the bytes protox encoded, never a re-encoding, so the
/// `(google.api.http)` method options (extension 72295728) are kept. Hand it
/// to tonic-reflection, or read the HTTP rules from it.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/stocklet_descriptor.bin"));

/// Stocklet's own packages: one module per service API, and the events.
pub mod stocklet {
    /// `stocklet.auth.v1`: passwords, login and the JWKS.
    pub mod auth {
        /// Generated code of `stocklet/auth/v1/auth.proto`.
        #[allow(clippy::all, clippy::unwrap_used, clippy::expect_used)]
        pub mod v1 {
            include_package!("stocklet.auth.v1");
        }
    }

    /// `stocklet.user.v1`: user profiles and registration.
    pub mod user {
        /// Generated code of `stocklet/user/v1/user.proto`.
        #[allow(clippy::all, clippy::unwrap_used, clippy::expect_used)]
        pub mod v1 {
            include_package!("stocklet.user.v1");
        }
    }

    /// `stocklet.product.v1`: the catalogue and its prices.
    pub mod product {
        /// Generated code of `stocklet/product/v1/product.proto`.
        #[allow(clippy::all, clippy::unwrap_used, clippy::expect_used)]
        pub mod v1 {
            include_package!("stocklet.product.v1");
        }
    }

    /// `stocklet.warehouse.v1`: stock levels and reservations.
    pub mod warehouse {
        /// Generated code of `stocklet/warehouse/v1/warehouse.proto`.
        #[allow(clippy::all, clippy::unwrap_used, clippy::expect_used)]
        pub mod v1 {
            include_package!("stocklet.warehouse.v1");
        }
    }

    /// `stocklet.order.v1`: orders, saga timelines and stuck sagas.
    pub mod order {
        /// Generated code of `stocklet/order/v1/order.proto`.
        #[allow(clippy::all, clippy::unwrap_used, clippy::expect_used)]
        pub mod v1 {
            include_package!("stocklet.order.v1");
        }
    }

    /// `stocklet.payment.v1`: balances and transactions.
    pub mod payment {
        /// Generated code of `stocklet/payment/v1/payment.proto`.
        #[allow(clippy::all, clippy::unwrap_used, clippy::expect_used)]
        pub mod v1 {
            include_package!("stocklet.payment.v1");
        }
    }

    /// `stocklet.shipping.v1`: shipments and dispatch.
    pub mod shipping {
        /// Generated code of `stocklet/shipping/v1/shipping.proto`.
        #[allow(clippy::all, clippy::unwrap_used, clippy::expect_used)]
        pub mod v1 {
            include_package!("stocklet.shipping.v1");
        }
    }

    /// `stocklet.events.v1`: every domain event, and the batch envelope.
    pub mod events {
        /// Generated code of `stocklet/events/v1/*.proto`. An event's type
        /// string is its full protobuf name, which prost exposes through
        /// `prost::Name::full_name()`.
        #[allow(clippy::all, clippy::unwrap_used, clippy::expect_used)]
        pub mod v1 {
            include_package!("stocklet.events.v1");
        }
    }
}

/// Google's API annotations, as generated from the minimal copies in
/// `google/api/`.
pub mod google {
    /// `google.api`: `HttpRule` and friends, to read the REST routes out of
    /// [`FILE_DESCRIPTOR_SET`](crate::FILE_DESCRIPTOR_SET).
    #[allow(clippy::all, clippy::unwrap_used, clippy::expect_used)]
    pub mod api {
        include!(concat!(env!("OUT_DIR"), "/google.api.rs"));
    }
}
