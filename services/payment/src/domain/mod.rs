//! The payment service's pure domain: the [`Balance`] aggregate and the
//! values it holds (shared: `stocklet-values`): the [`Cents`] it counts
//! in, at most [`MAX_CENTS`] per command, the [`CustomerId`] it belongs to
//! and the [`OrderId`] each payment is kept under.
//!
//! No I/O here: the API and the reactors parse their input into these types,
//! run commands through the es-core repository, and map [`BalanceError`] to
//! gRPC status in one place.

pub mod balance;

pub use balance::{
    Balance, BalanceCommand, BalanceError, BalanceEvent, BalanceStatus, MAX_CENTS, PaymentOutcome,
};
pub use stocklet_values::{Cents, CustomerId, InvalidCents, OrderId};
