//! The gateway's integration tests: the gateway started exactly as its
//! binary starts it, in front of the real product and order services on a
//! real nats-server and PostgreSQL, with a test double of the auth service's
//! JWKS. Everything is exercised over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod app;
mod fuzz;
mod limits;
mod routing;
mod tokens;
