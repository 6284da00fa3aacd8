//! Read models of the order service, built from the `ORDER` stream.
//!
//! - [`Orders`]: the `orders` and `order_items` tables behind ViewOrder and
//!   ViewOrders, with each order's status history. They are written only
//!   here, so every order shown is the fold of its events.

mod orders;

pub use orders::{ItemRow, OrderRow, OrderView, Orders, find, page_of_customer};
