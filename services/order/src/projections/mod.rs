//! Read models of the order service.
//!
//! - [`Orders`]: the `orders` and `order_items` tables behind ViewOrder and
//!   ViewOrders, with each order's status history, built from the `ORDER`
//!   stream. They are written only here, so every order shown is the fold
//!   of its events.
//! - [`Timeline`]: `saga_events`, every service's events of each order's
//!   saga, behind ViewOrderTimeline and ListStuckSagas; one projection per
//!   source stream.

mod orders;
pub mod timeline;

pub use orders::{ItemRow, OrderRow, OrderView, Orders, find, page_of_customer};
pub use timeline::Timeline;
