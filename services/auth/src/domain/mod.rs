//! The auth context's pure domain: the [`Credentials`] aggregate and the
//! values it is made of. No I/O here: hashing lives in `crate::password`,
//! signing in `crate::tokens`, and the API layer loads and stores through
//! the es-core repository.

mod credentials;
mod values;

pub use credentials::{Credentials, CredentialsCommand, CredentialsError, CredentialsEvent};
pub use values::{InvalidValue, Password, PasswordHash, Role, normalise_email};
