//! The shipping service's pure domain: the [`Shipment`] aggregate, the
//! [`Capacity`] that makes allocation fail for orders too big to ship, and
//! the [`Quantity`] it counts in.
//!
//! No I/O here: the API and the reactors parse their input into these types,
//! run commands through the es-core repository, and map [`ShipmentError`]
//! to gRPC status in one place.

pub mod quantity;
pub mod shipment;

pub use quantity::{InvalidQuantity, MAX_QUANTITY, Quantity};
pub use shipment::{
    Capacity, DEFAULT_CAPACITY, InvalidCapacity, ManifestLine, Shipment, ShipmentCommand,
    ShipmentError, ShipmentEvent, ShipmentStatus,
};
