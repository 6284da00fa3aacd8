//! Fixtures for Stocklet's integration tests, on **real infrastructure**.
//!
//! Stocklet's guarantees live at the boundary with its infrastructure: a JetStream
//! publish ack that must mean "durable", optimistic concurrency through expected
//! stream sequences, PostgreSQL transactions around projections. Mocks of NATS or
//! PostgreSQL would test our assumptions about them, not them. So every test that
//! needs them gets the real thing, isolated:
//!
//! - [`NatsServer`]: a private `nats-server` process per test (a free port below the
//!   ephemeral range, kept across restarts; JetStream
//!   store in a temp dir, the project's own `nats/nats-server.conf` with its users and
//!   permissions), which the test can restart, pause (SIGSTOP) or kill to exercise
//!   failure paths. Services connect as their own users ([`nats_passwords`]); the
//!   test's own clients as the provisioner. A server that refused a confined user
//!   fails the test when dropped, unless the test attacks on purpose.
//! - [`NatsCluster`]: several such servers clustered over loopback routes, for
//!   R3 streams and failover (a node can be killed and restarted).
//! - [`TestDb`]: a fresh, uniquely named database per test on the PostgreSQL named by
//!   `DATABASE_URL`, dropped again afterwards.
//! - [`PostgresServer`]: a private PostgreSQL cluster for a test that stops or
//!   kills its database (an outage must not take the other tests' down).
//! - [`RunningService`]: a service's `run` on a port-0 listener, with a gRPC channel
//!   to it and a graceful stop.
//! - [`ServiceHarness`]: one service under test on its own nats-server and
//!   database, with its client, an event store to play other services, and
//!   restarts; every service's `TestApp` wraps one. The [`harness`] module
//!   also holds what the multi-service harnesses share: [`common_config`],
//!   the test identities and [`as_user`], [`eventually`].
//!
//! **Tests never skip.** A missing `nats-server` binary or an unreachable PostgreSQL
//! is a panic with instructions, not a silently green test: `make test` (and CI)
//! installs the pinned nats-server into `.tools/bin` (`make tools`) and finds or starts
//! PostgreSQL (`scripts/ensure-postgres.sh`), exporting `NATS_SERVER_BIN` and
//! `DATABASE_URL` for the tests.
//!
//! ```no_run
//! use stocklet_test_support::{NatsServer, TestDb};
//!
//! # async fn example() {
//! let nats = NatsServer::start().await;
//! let js = async_nats::jetstream::new(nats.client().await);
//! let db = TestDb::create().await;
//! sqlx::query("SELECT 1").execute(&db.pool).await.unwrap();
//! # }
//! ```
//!
//! Both fixtures need a Tokio runtime with time and IO enabled (`#[tokio::test]`).

mod cluster;
mod credentials;
pub mod harness;
mod nats;
mod pg_server;
mod postgres;
mod service;

pub use cluster::NatsCluster;
pub use credentials::{
    connect_as, connect_as_provisioner, nats_credentials, nats_password_env, nats_passwords,
};
pub use harness::{
    INTERNAL_TOKEN, ServiceHarness, admin, as_user, common_config, customer, eventually,
    other_customer, violated_fields,
};
pub use nats::{NatsServer, NatsServerOptions};
pub use pg_server::PostgresServer;
pub use postgres::{DEFAULT_DATABASE_URL, TestDb, redact_url};
pub use service::RunningService;

use std::path::PathBuf;

/// The workspace root (two levels above this crate's manifest).
pub fn workspace_root() -> PathBuf {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    root.canonicalize().unwrap_or(root)
}

/// A loopback port that is free now and lies below the kernel's ephemeral
/// range (32768-60999 on Linux), for a server a test restarts on the same
/// port. An ephemeral port can be taken while the server is down, by any
/// outgoing connection, even by a client's own TCP self-connect while it
/// keeps dialling that port, and the restart then fails to bind; a port
/// below the range is never handed out that way.
pub(crate) fn stable_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new();
    for attempt in 0u64..1000 {
        let mut hasher = random.build_hasher();
        hasher.write_u64(attempt);
        hasher.write_u32(std::process::id());
        let port = 20_000 + u16::try_from(hasher.finish() % 12_000).unwrap_or(0);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between 20000 and 32000");
}
