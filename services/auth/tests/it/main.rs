//! The auth service's integration tests: the service started exactly as its
//! binary starts it, against a real nats-server and PostgreSQL. The user
//! service's side is played by writing its events into the `USER` stream
//! exactly as it does (aggregate `user`, subject `user.user.<id>`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod app;
mod auth;
mod guesses;
