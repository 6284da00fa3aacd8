//! Read models of the user service, built from the `USER` stream.
//!
//! - [`Directory`]: the `users` table behind ViewUser and ListUsers. Email
//!   claims are not projected: uniqueness is decided by the claim
//!   aggregates themselves, never by a read model that lags.

mod directory;

pub use directory::{Directory, UserRow};
