//! The auth context's pure domain: the [`Credentials`] aggregate and the
//! values it is made of, its own ([`Role`]) and the shared ones
//! (`stocklet-values`: [`Email`], [`Password`], [`PasswordAttempt`],
//! [`PasswordHash`]). No I/O
//! here: hashing lives in `stocklet_service_kit::password`, signing in
//! `crate::tokens`, and the API layer loads and stores through the es-core
//! repository.

mod credentials;
mod values;

pub use credentials::{Credentials, CredentialsCommand, CredentialsError, CredentialsEvent};
/// Logins compare addresses in the shared normalised form. The user service
/// validated the address; here it only needs that form.
pub use stocklet_values::normalise_email;
pub use stocklet_values::{Email, InvalidPassword, Password, PasswordAttempt, PasswordHash};
pub use values::{InvalidValue, Role};
