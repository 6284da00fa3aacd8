//! The shipping service's pure domain: the [`Shipment`] aggregate, the
//! [`Capacity`] that makes allocation fail for orders too big to ship, and
//! the [`Quantity`] it counts in (shared: `stocklet-values`).
//!
//! No I/O here: the API and the reactors parse their input into these types,
//! run commands through the es-core repository, and map [`ShipmentError`]
//! to gRPC status in one place.

pub mod shipment;

pub use shipment::{
    Capacity, DEFAULT_CAPACITY, InvalidCapacity, ManifestLine, Shipment, ShipmentCommand,
    ShipmentError, ShipmentEvent, ShipmentStatus,
};
pub use stocklet_values::{InvalidQuantity, Quantity};
