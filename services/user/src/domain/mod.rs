//! The user context's pure domain: the [`User`] aggregate, the
//! [`EmailClaim`] aggregate that makes addresses unique, and the values they
//! are made of. No I/O here; the API layer loads and stores through the
//! es-core repository.

mod email_claim;
mod user;
mod values;

pub use email_claim::{EmailClaim, EmailClaimCommand, EmailClaimError, EmailClaimEvent, claim_id};
pub use stocklet_values::{
    CustomerId, Email, InvalidEmail, InvalidPassword, Password, PasswordHash,
};
pub use user::{User, UserCommand, UserError, UserEvent};
pub use values::{InvalidValue, PersonName};
