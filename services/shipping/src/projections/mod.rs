//! Read models of the shipping service, built from the `SHIPPING` stream.
//!
//! - [`Shipments`]: the `shipments` and `shipment_items` tables behind
//!   ViewShipment, ViewShipmentManifest, ViewShipments, and the lookup of a
//!   shipment's order for DispatchShipment.

mod shipments;

pub use shipments::{ShipmentRow, Shipments};
