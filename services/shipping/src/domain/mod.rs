//! The shipping service's pure domain: the [`Shipment`] aggregate, the
//! [`Capacity`] that makes allocation fail for orders too big to ship, and
//! the values it holds (shared: `stocklet-values`): the [`Quantity`] it
//! counts in, the order's [`Cents`] total it carries to payment, and the
//! [`OrderId`], [`CustomerId`] and [`ProductId`]s of what it ships.
//!
//! No I/O here: the API and the reactors parse their input into these types,
//! run commands through the es-core repository, and map [`ShipmentError`]
//! to gRPC status in one place.

pub mod shipment;

pub use shipment::{
    Capacity, DEFAULT_CAPACITY, InvalidCapacity, ManifestLine, Shipment, ShipmentCommand,
    ShipmentError, ShipmentEvent, ShipmentStatus,
};
pub use stocklet_values::{Cents, CustomerId, InvalidQuantity, OrderId, ProductId, Quantity};
