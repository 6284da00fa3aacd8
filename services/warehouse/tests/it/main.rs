//! The warehouse service's integration tests: the service started exactly
//! as its binary starts it, against a real nats-server and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod app;
mod history;
mod legacy;
mod stock;
