//! The catalogue's pure domain: the [`Product`] aggregate and the values it
//! is made of. No I/O here; the API layer loads and stores through the
//! es-core repository.

mod product;
mod quote;
mod values;

pub use product::{Product, ProductCommand, ProductError, ProductEvent};
pub use quote::{LineToQuote, Quote, QuoteCommand, QuoteError, QuoteEvent};
pub use stocklet_values::Cents;
pub use values::{Description, InvalidValue, ProductName};
