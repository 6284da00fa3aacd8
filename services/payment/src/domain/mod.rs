//! The payment service's pure domain: the [`Balance`] aggregate (a
//! customer's money) and the order-keyed [`Payment`] (what happened to one
//! order's payment), and the values they hold (shared: `stocklet-values`):
//! the [`Cents`] they count in, at most [`MAX_CENTS`] per command, the
//! [`CustomerId`] a balance belongs to and the [`OrderId`] each payment is
//! kept under.
//!
//! No I/O here: the API and the reactors parse their input into these types,
//! run commands through the es-core repository, and map [`BalanceError`] to
//! gRPC status in one place.

pub mod balance;
pub mod payment;

pub use balance::{Balance, BalanceCommand, BalanceError, BalanceEvent, BalanceStatus, MAX_CENTS};
pub use payment::{Payment, PaymentCommand, PaymentError, PaymentEvent, PaymentOutcome};
pub use stocklet_values::{Cents, CustomerId, InvalidCents, OrderId};
