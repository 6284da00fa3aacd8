//! Read models of the auth service, built from the `AUTH` stream.
//!
//! - [`Logins`]: the `logins` table that finds the user id behind an email
//!   address at login.

mod logins;

pub use logins::{LoginRow, Logins};
