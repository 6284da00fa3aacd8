//! The gateway's integration tests: the gateway started exactly as its
//! binary starts it, in front of the real services on a real nats-server
//! and PostgreSQL. The token and limit tests run product and order with a
//! test double of the auth service's JWKS; the route, matrix,
//! mass-assignment and schemathesis tests run every real service. Everything
//! is exercised over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod app;
mod coverage;
mod fuzz;
mod idempotency;
mod limits;
mod mass_assignment;
mod matrix;
mod original_client;
mod routes_auth;
mod routes_deadletters;
mod routes_order;
mod routes_payment;
mod routes_product;
mod routes_shipping;
mod routes_user;
mod routes_warehouse;
mod routing;
mod schemathesis;
mod tokens;
