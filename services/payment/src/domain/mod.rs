//! The payment service's pure domain: the [`Balance`] aggregate and the
//! [`Cents`] it counts in.
//!
//! No I/O here: the API and the reactors parse their input into these types,
//! run commands through the es-core repository, and map [`BalanceError`] to
//! gRPC status in one place.

pub mod balance;
pub mod cents;

pub use balance::{
    Balance, BalanceCommand, BalanceError, BalanceEvent, BalanceStatus, PaymentOutcome,
};
pub use cents::{Cents, InvalidCents, MAX_CENTS};
