//! The order context's pure domain: the [`Order`] aggregate, which is the
//! state machine of the place-order saga, and the values it is made of
//! (money, quantities and ids from `stocklet-values`, the cart's own rules
//! here).
//! No I/O here: the API and the reactors load and store orders through the
//! es-core repository, and the clock is read by callers and passed in.

mod order;
mod values;

#[cfg(test)]
mod tests;

pub use order::{
    Order, OrderCommand, OrderError, OrderEvent, OrderLine, OrderStatus, PaymentFailure,
    QuotedLine, Rejection, RejectionReason, SagaInput, StatusChange,
};
pub use stocklet_values::{Cents, CustomerId, OrderId, ProductId, Quantity};
pub use values::{CancellationReason, Cart, CartLine, InvalidCart, InvalidValue};
