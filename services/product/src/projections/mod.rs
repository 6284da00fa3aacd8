//! Read models of the product service, built from the `PRODUCT` stream.
//!
//! - [`Catalogue`]: the `products` table behind ViewProduct and
//!   ViewProducts.

mod catalogue;

pub use catalogue::{Catalogue, ProductRow};
