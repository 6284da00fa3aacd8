#![allow(clippy::unwrap_used, clippy::expect_used)]
//! es-core's integration tests: one binary, real nats-server and PostgreSQL.
//!
//! Every test starts its own nats-server (with the project's shipped
//! config) and, where it needs one, its own database. See
//! `libs/test-support`.

mod common;
mod event_store;
mod memory;
mod projection;
mod reactor;
mod snapshot;
