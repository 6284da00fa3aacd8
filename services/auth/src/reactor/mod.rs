//! Reactions of the auth service to other services' events.
//!
//! - [`UserReactions`]: credentials follow the user service's users
//!   (durable consumer `auth-from-user` on the `USER` stream, user
//!   aggregates only).

mod users;

pub use users::{DURABLE_NAME, UserReactions};
