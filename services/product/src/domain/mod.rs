//! The catalogue's pure domain: the [`Product`] aggregate, the [`Quote`]
//! that answers each placed order, and the values they are made of: the
//! catalogue's own ([`ProductName`], [`Description`]) and the shared ones
//! (`stocklet-values`: [`Cents`], [`Quantity`], [`ProductId`], [`OrderId`],
//! [`CustomerId`]). No I/O here; the API layer loads and stores through the
//! es-core repository.

mod product;
mod quote;
mod values;

pub use product::{Product, ProductCommand, ProductError, ProductEvent};
pub use quote::{LineToQuote, Quote, QuoteCommand, QuoteError, QuoteEvent};
pub use stocklet_values::{Cents, CustomerId, OrderId, ProductId, Quantity};
pub use values::{Description, InvalidValue, ProductName};
