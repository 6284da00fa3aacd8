//! The place-order saga end to end: all five services it spans, started as
//! their binaries start them, on one nats-server and one database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod app;
mod chaos;
mod checks;
mod cluster;
mod concurrency;
mod faults;
mod invariants;
mod lag;
mod metrics;
mod no_return;
mod outages;
mod paths;
mod redelivery;
mod traces;
