//! One service under test, with everything its integration tests share.
//!
//! Every service's tests need the same scaffolding: a private nats-server and
//! database, the service's `run` started with settings pointing at them, a
//! typed gRPC client once the service has provisioned its streams and tables,
//! an event store to play other services (or the saga) on the same streams,
//! and a way to stop the service and start it again on the same
//! infrastructure. [`ServiceHarness`] is that scaffolding once, generic over
//! the service's tonic client; a service's `TestApp` wraps one and adds only
//! what is its own (its `Config`, its client calls, its domain helpers).
//!
//! The free functions are the pieces the multi-service harnesses (the saga
//! tests, the gateway) share too: [`common_config`], the test identities and
//! [`as_user`], [`eventually`] for read models that catch up asynchronously,
//! and [`violated_fields`] for validation answers.

use std::fmt::{Debug, Display};
use std::future::Future;
use std::time::Duration;

use es_core::{Aggregate, JetStreamEventStore, Repository};
use stocklet_service_kit::config::{CommonConfig, DEFAULT_DB_POOL_SIZE};
use stocklet_service_kit::jwt::JwtSettings;
use stocklet_service_kit::lifecycle::RunError;
use stocklet_service_kit::streams::Stream;
use stocklet_service_kit::{Identity, Secret};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::{NatsServer, RunningService, TestDb};

/// The internal token the services under test and their callers share.
pub const INTERNAL_TOKEN: &str = "test-internal-token-0123456789abcdef";

/// A port-0 address for a test's service `Config` (the service serves on
/// the listener the test hands it).
pub const LISTEN_ADDR: &str = "127.0.0.1:0";

/// How long a service's tests wait for an asynchronous effect (a
/// projection or reactor catching up) before they fail.
pub const SETTLE: Duration = Duration::from_secs(10);

/// How often [`eventually`] tries again.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Where the services under test look for the auth service's JWKS unless a
/// test starts one: a closed port, so a bearer token is refused as
/// `UNAVAILABLE` rather than verified against anything else.
pub const NO_AUTH_URL: &str = "http://127.0.0.1:9";

/// The settings every service shares, pointed at this test's nats-server
/// (or cluster, `nats_url`) and database, on one replica. Bearer tokens
/// are checked against the default issuer and audience, with keys from
/// [`NO_AUTH_URL`]: a test that sends tokens sets `auth_url`.
pub fn common_config(nats_url: String, db: &TestDb) -> CommonConfig {
    CommonConfig {
        nats_url,
        nats_passwords: crate::nats_passwords(),
        database_url: Secret::new(db.url.clone()),
        internal_token: Secret::new(INTERNAL_TOKEN),
        stream_replicas: 1,
        db_pool_size: DEFAULT_DB_POOL_SIZE,
        idempotency_ttl: stocklet_service_kit::idempotency::DEFAULT_TTL,
        auth_url: NO_AUTH_URL.to_owned(),
        jwt: JwtSettings::default(),
    }
}

/// The administrator the services' tests act as.
pub fn admin() -> Identity {
    Identity::admin("admin-1")
}

/// A customer (`customer-1`).
pub fn customer() -> Identity {
    Identity::customer("customer-1")
}

/// Another customer (`customer-2`), for what one customer may not see.
pub fn other_customer() -> Identity {
    Identity::customer("customer-2")
}

/// A request carrying `identity` the way the gateway sends it.
pub fn as_user<T>(identity: &Identity, message: T) -> Request<T> {
    let mut request = Request::new(message);
    identity.write_metadata(request.metadata_mut(), &Secret::new(INTERNAL_TOKEN));
    request
}

/// Tries `attempt` every 50 ms until it gives `Ok`, and returns that.
///
/// # Panics
/// When `within` has passed, naming `what` was awaited and the last `Err`
/// (what the attempt saw instead).
pub async fn eventually<T, Seen: Debug>(
    within: Duration,
    what: impl Display,
    mut attempt: impl AsyncFnMut() -> Result<T, Seen>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let seen = match attempt().await {
            Ok(done) => return done,
            Err(seen) => seen,
        };
        if tokio::time::Instant::now() >= deadline {
            panic!("{what} did not happen within {within:?}; last seen: {seen:?}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The fields named in a status's BadRequest details.
pub fn violated_fields(status: &Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|details| {
            details
                .field_violations
                .into_iter()
                .map(|v| v.field)
                .collect()
        })
        .unwrap_or_default()
}

/// One service running on its own nats-server and database, with a client
/// `C` to it and an event store on the same nats-server.
pub struct ServiceHarness<C> {
    /// The service's nats-server (the test may kill or restart it).
    pub nats: NatsServer,
    /// The service's database.
    pub db: TestDb,
    /// The typed gRPC client, connected.
    pub client: C,
    /// An event store on `nats`, for what other services would write.
    pub store: JetStreamEventStore,
    service: RunningService<RunError>,
}

impl<C> ServiceHarness<C> {
    /// Starts a service on `nats` and `db`: `run` gets the shared settings
    /// ([`common_config`]) with a port-0 listener and the shutdown token,
    /// `connect` makes the client, and `ready` is one call the service must
    /// answer, proving it has provisioned its streams, consumers and tables
    /// (the listener accepts before that).
    ///
    /// # Panics
    /// If the service stops before it accepts or does not answer `ready`.
    pub async fn start<Run, Running, Answer>(
        nats: NatsServer,
        db: TestDb,
        run: Run,
        connect: impl FnOnce(Channel) -> C,
        ready: impl AsyncFnOnce(&mut C) -> Result<Answer, Status>,
    ) -> Self
    where
        Run: FnOnce(CommonConfig, TcpListener, CancellationToken) -> Running,
        Running: Future<Output = Result<(), RunError>> + Send + 'static,
    {
        // As `stocklet provision` would before the service starts.
        nats.provision().await;
        let common = common_config(nats.url(), &db);
        let (service, channel) =
            RunningService::start(|listener, shutdown| run(common, listener, shutdown)).await;
        let mut client = connect(channel);
        if let Err(status) = ready(&mut client).await {
            panic!("the service does not answer: {status}");
        }
        let store = stocklet_service_kit::lifecycle::event_store(nats.client().await);
        Self {
            nats,
            db,
            client,
            store,
            service,
        }
    }

    /// Stops the service gracefully and hands back its infrastructure, to
    /// inspect or to start the service on again.
    pub async fn stop(self) -> (NatsServer, TestDb) {
        self.service.stop().await;
        (self.nats, self.db)
    }

    /// Calls the service as `identity` ([`as_user`]): `call` gets a clone
    /// of the client and the request; returns the answer's message.
    pub async fn call_as<Message, Answer>(
        &self,
        identity: &Identity,
        message: Message,
        call: impl AsyncFnOnce(C, Request<Message>) -> Result<Response<Answer>, Status>,
    ) -> Result<Answer, Status>
    where
        C: Clone,
    {
        let answer = call(self.client.clone(), as_user(identity, message)).await?;
        Ok(answer.into_inner())
    }

    /// Publishes an event on another service's stream, as that service
    /// would (appended after the subject's last event).
    ///
    /// # Panics
    /// If the append fails.
    pub async fn publish<E: prost::Message + prost::Name>(
        &self,
        stream: Stream,
        aggregate_type: &str,
        aggregate_id: &str,
        event: E,
    ) {
        let stream = stream.stream_ref();
        if let Err(error) = es_core::testing::append_event(
            &self.store,
            &stream,
            aggregate_type,
            aggregate_id,
            event,
        )
        .await
        {
            panic!("cannot publish on {}: {error}", stream.name);
        }
    }

    /// A repository of `A` on `stream`, to drive aggregates directly the
    /// way another part of the system (the saga) will.
    pub fn repository<A: Aggregate>(&self, stream: Stream) -> Repository<A, JetStreamEventStore> {
        Repository::new(self.store.clone(), stream.stream_ref())
    }

    /// Every event in `stream`, in order: (event type, payload).
    ///
    /// # Panics
    /// If the stream cannot be read.
    pub async fn events(&self, stream: Stream) -> Vec<(String, Vec<u8>)> {
        let cannot_read = |error: &dyn Display| -> ! {
            panic!("cannot read the {} stream: {error}", stream.name)
        };
        let last = match self.store.context().get_stream(stream.name).await {
            Ok(found) => match found.get_info().await {
                Ok(info) => info.state.last_sequence,
                Err(error) => cannot_read(&error),
            },
            Err(error) => cannot_read(&error),
        };
        match self.store.read_range(&stream.stream_ref(), 1, last).await {
            Ok(events) => events
                .into_iter()
                .map(|e| (e.raw.event_type, e.raw.payload.to_vec()))
                .collect(),
            Err(error) => cannot_read(&error),
        }
    }
}

/// Declares a service's `TestApp`: a newtype around a [`ServiceHarness`]
/// of the service's client, which derefs to it (`app.client`, `app.nats`,
/// `app.publish(..)`, ...) and starts and stops the service:
/// `TestApp::spawn()` on a fresh nats-server and database,
/// `TestApp::spawn_on(nats, db)` on existing ones (for restarts), and
/// `app.stop()`, which hands them back.
///
/// A newtype rather than the harness itself, so that each service's tests
/// add their own client calls and helpers to it (`impl TestApp { .. }`).
/// `info` is the service's `GetServiceInfoRequest`: its answer is the
/// readiness call (see [`ServiceHarness::start`]). `start` gets the shared settings ([`common_config`]), the
/// listener and the shutdown token, and runs the service with its `Config`.
///
/// ```text
/// stocklet_test_support::service_test_app! {
///     /// The payment service under test.
///     pub struct TestApp(PaymentServiceClient);
///     info: pb::GetServiceInfoRequest {};
///     start: |common, listener, shutdown| {
///         let listen_addr = LISTEN_ADDR.into();
///         run(Config { common, listen_addr }, listener, shutdown)
///     };
/// }
/// ```
#[macro_export]
macro_rules! service_test_app {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident($client:ident);
        info: $info:expr;
        start: $start:expr $(;)?
    ) => {
        $(#[$meta])*
        $vis struct $name(
            $crate::ServiceHarness<$client<$crate::harness::__macro_support::Channel>>,
        );

        impl ::std::ops::Deref for $name {
            type Target =
                $crate::ServiceHarness<$client<$crate::harness::__macro_support::Channel>>;

            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }

        impl ::std::ops::DerefMut for $name {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.0
            }
        }

        impl $name {
            /// Starts the service on a fresh nats-server and database.
            pub async fn spawn() -> Self {
                let nats = $crate::NatsServer::start().await;
                Self::spawn_on(nats, $crate::TestDb::create().await).await
            }

            /// Starts the service on existing infrastructure (for restarts).
            pub async fn spawn_on(nats: $crate::NatsServer, db: $crate::TestDb) -> Self {
                let ready = async |client: &mut $client<_>| client.get_service_info($info).await;
                Self($crate::ServiceHarness::start(nats, db, $start, $client::new, ready).await)
            }

            /// Stops the service gracefully and hands back its infrastructure.
            pub async fn stop(self) -> ($crate::NatsServer, $crate::TestDb) {
                self.0.stop().await
            }
        }
    };
}

/// What [`service_test_app!`](crate::service_test_app) expands to needs.
#[doc(hidden)]
pub mod __macro_support {
    pub use tonic::transport::Channel;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn eventually_returns_the_first_ok() {
        let mut attempts = 0;
        let done = eventually(Duration::from_secs(5), "the third attempt", async || {
            attempts += 1;
            if attempts == 3 {
                Ok(attempts)
            } else {
                Err(attempts)
            }
        })
        .await;
        assert_eq!((done, attempts), (3, 3));
    }

    #[tokio::test]
    #[should_panic(expected = "never did not happen within 100ms; last seen: \"still not\"")]
    async fn eventually_gives_up_naming_what_it_saw_last() {
        let never = async || Err::<(), _>("still not");
        eventually(Duration::from_millis(100), "never", never).await;
    }

    #[test]
    fn a_request_as_a_user_carries_the_identity_next_to_the_internal_token() {
        let request = as_user(&customer(), ());
        let read = |token: &str| Identity::from_metadata(request.metadata(), &Secret::new(token));
        assert_eq!(read(INTERNAL_TOKEN), customer());
        assert_eq!(read("another token"), Identity::Anonymous);
    }
}
