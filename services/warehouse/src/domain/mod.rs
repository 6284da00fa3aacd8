//! The warehouse's pure domain: the [`Stock`] aggregate (a product's
//! counts), the order-keyed [`Reservation`] (one order's hold, step by
//! step) and the [`Quantity`] they count in, with reserved lines priced in
//! [`Cents`] (both shared: `stocklet-values`).
//!
//! No I/O here: the API and the reactors parse their input into these types,
//! run commands through the es-core repository, and map [`StockError`] to
//! gRPC status in one place.

pub mod reservation;
pub mod stock;

pub use reservation::{
    Reservation, ReservationCommand, ReservationError, ReservationEvent, ReservationState,
};
pub use stock::{Stock, StockCommand, StockError, StockEvent};
pub use stocklet_values::{Cents, InvalidQuantity, Quantity};
