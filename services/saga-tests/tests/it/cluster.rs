//! The scaled-out deployment of `compose.cluster.yaml`, proven without
//! Docker: a 3-node NATS cluster with R3 streams and two instances of the
//! payment service sharing its durable consumers.
//!
//! The payment service's `payment-from-user` reactor opens a balance for
//! every `UserRegistered`. The test registers users while both instances
//! run (instance `a` on node 1, `b` on node 0), shows that both take a
//! share of the work, kills `a` abruptly mid-run (its runtime dropped: no
//! acks, no goodbye), keeps registering, then kills NATS node 2 and
//! registers more.
//! Every user must end up with exactly one `BalanceOpened` event and a
//! balance in the read model, with nothing dead-lettered.
//!
//! Who handled what is observed with no hook in the service: each instance
//! runs on its own Tokio runtime whose threads carry their own `tracing`
//! dispatcher, which counts the async-nats trace event of every JetStream
//! message the instance pulled (its reactors' and projection's consumers).
//! The acks of the consumer under test are watched on the wire
//! (`$JS.ACK.USER.payment-from-user.>`) to count redeliveries.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use es_core::store::{Commit, NewEvent};
use es_core::{CommandContext, EventStore, JetStreamEventStore, RawEvent};
use futures::StreamExt;
use prost::{Message, Name};
use stocklet_proto::stocklet::events::v1 as events;
use stocklet_proto::stocklet::payment::v1 as payment;
use stocklet_proto::stocklet::payment::v1::payment_service_client::PaymentServiceClient;
use stocklet_service_kit::config::CommonConfig;
use stocklet_service_kit::lifecycle::RunError;
use stocklet_service_kit::streams;
use stocklet_test_support::harness::eventually;
use stocklet_test_support::{NatsCluster, TestDb, common_config};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tracing::Dispatch;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

use crate::app::{admin, as_user};

/// Users registered in each of the three phases.
const PER_PHASE: usize = 100;
/// How long the surviving instance may take to finish: events the killed
/// instance held come back only after the consumer's ack wait (30 s).
const SETTLE: Duration = Duration::from_secs(90);

/// One payment instance on its own Tokio runtime, so that it can be killed
/// as a whole: dropping the runtime drops every task the service spawned
/// (reactors, projection, NATS connection) without a graceful shutdown.
struct Instance {
    runtime: Option<tokio::runtime::Runtime>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), RunError>>>,
    client: PaymentServiceClient<Channel>,
    pulled: PulledCounter,
}

impl Instance {
    async fn start(nats_url: String, db: &TestDb) -> Instance {
        let pulled = PulledCounter::default();
        let dispatch = Dispatch::new(tracing_subscriber::registry().with(pulled.clone()));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .on_thread_start(move || {
                // For the thread's whole life: the runtime's threads are its.
                std::mem::forget(tracing::dispatcher::set_default(&dispatch));
            })
            .build()
            .unwrap();
        let shutdown = CancellationToken::new();
        let config = stocklet_payment::Config {
            common: CommonConfig {
                stream_replicas: 3,
                ..common_config(nats_url, db)
            },
            listen_addr: "127.0.0.1:0".into(),
        };
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel::<SocketAddr>();
        let task = runtime.spawn({
            let shutdown = shutdown.clone();
            async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                stocklet_payment::run(config, listener, shutdown).await
            }
        });
        let addr = addr_rx.await.unwrap();
        // Serving gRPC comes after streams, consumers and migrations.
        let deadline = Instant::now() + Duration::from_secs(60);
        let channel = loop {
            match Channel::from_shared(format!("http://{addr}"))
                .unwrap()
                .connect()
                .await
            {
                Ok(channel) => break channel,
                Err(error) => {
                    assert!(!task.is_finished(), "the payment instance stopped");
                    assert!(Instant::now() < deadline, "payment never served: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        let mut client = PaymentServiceClient::new(channel);
        client
            .get_service_info(payment::GetServiceInfoRequest {})
            .await
            .unwrap();
        Instance {
            runtime: Some(runtime),
            shutdown,
            task: Some(task),
            client,
            pulled,
        }
    }

    /// A crash: every task of the instance is dropped where it stands.
    /// Waits until the runtime's threads are gone, so that nothing the
    /// instance does can be observed afterwards.
    async fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            tokio::task::spawn_blocking(move || runtime.shutdown_timeout(Duration::from_secs(5)))
                .await
                .unwrap();
        }
    }

    /// A graceful stop, which must succeed.
    async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap().expect("the instance stops cleanly");
        }
        self.kill().await;
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Counts the JetStream messages pulled on the threads it is the
/// dispatcher of: async-nats traces "message received" for each.
#[derive(Clone, Default)]
struct PulledCounter(Arc<AtomicUsize>);

impl PulledCounter {
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl<S: tracing::Subscriber> Layer<S> for PulledCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        struct IsReceived(bool);
        impl Visit for IsReceived {
            fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" && format!("{value:?}") == "message received" {
                    self.0 = true;
                }
            }
        }
        if event.metadata().target() != "async_nats::jetstream::consumer::pull" {
            return;
        }
        let mut received = IsReceived(false);
        event.record(&mut received);
        if received.0 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Acks of the consumer under test, seen on the wire.
#[derive(Default)]
struct Acks {
    acks: usize,
    /// Acks of events delivered more than once.
    redelivered: usize,
}

async fn watch_acks(url: &str, stream: &str, consumer: &str) -> Arc<Mutex<Acks>> {
    let client = stocklet_test_support::connect_as_provisioner(&[url.to_owned()]).await;
    let prefix = format!("$JS.ACK.{stream}.{consumer}.");
    let mut acks = client.subscribe(format!("{prefix}>")).await.unwrap();
    client.flush().await.unwrap();
    let seen = Arc::new(Mutex::new(Acks::default()));
    tokio::spawn({
        let seen = Arc::clone(&seen);
        async move {
            let _client = client;
            while let Some(ack) = acks.next().await {
                if !(ack.payload.is_empty() || ack.payload.as_ref() == b"+ACK") {
                    continue;
                }
                // <delivered>.<stream seq>.<consumer seq>.<timestamp>.<pending>
                let delivered: u64 = ack
                    .subject
                    .strip_prefix(prefix.as_str())
                    .and_then(|rest| rest.split('.').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                let mut seen = seen.lock().unwrap();
                seen.acks += 1;
                if delivered > 1 {
                    seen.redelivered += 1;
                }
            }
        }
    });
    seen
}

/// Registers a user the way the user service would, retrying through a
/// NATS failover (the event id makes a retried append a duplicate).
async fn register(store: &JetStreamEventStore, user_id: &str) {
    let stream = streams::USER.definition().unwrap().stream_ref();
    let event = events::UserRegistered {
        user_id: user_id.to_owned(),
        email: format!("{user_id}@example.com"),
        first_name: "Grace".into(),
        last_name: "Hopper".into(),
        occurred_at_ms: es_core::envelope::now_ms(),
        ..Default::default()
    };
    let commit = Commit {
        subject: stream.subject("user", user_id),
        expected_sequence: 0,
        aggregate_type: "user".into(),
        aggregate_id: user_id.to_owned(),
        events: vec![NewEvent {
            event_id: uuid::Uuid::now_v7().to_string(),
            raw: RawEvent {
                event_type: events::UserRegistered::full_name(),
                schema_version: 1,
                payload: event.encode_to_vec().into(),
            },
        }],
        context: CommandContext::default(),
        timestamp_ms: es_core::envelope::now_ms(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match store.append(&stream, &commit).await {
            Ok(_) => return,
            Err(error) => {
                // A first attempt may have landed before its ack was lost.
                let stored = store.load(&stream, &commit.subject, 0).await;
                if stored.is_ok_and(|events| events.len() == 1) {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "cannot register {user_id}: {error}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Registers `count` users from four concurrent publishers, in the
/// background, so that the instances hold events in flight.
fn register_many(store: JetStreamEventStore, count: usize) -> JoinHandle<Vec<String>> {
    const PUBLISHERS: usize = 4;
    tokio::spawn(async move {
        let publishers: Vec<_> = (0..PUBLISHERS)
            .map(|publisher| {
                let store = store.clone();
                let share = count / PUBLISHERS + usize::from(publisher < count % PUBLISHERS);
                tokio::spawn(async move {
                    let mut users = Vec::with_capacity(share);
                    for _ in 0..share {
                        let id = uuid::Uuid::now_v7().to_string();
                        register(&store, &id).await;
                        users.push(id);
                    }
                    users
                })
            })
            .collect();
        let mut users = Vec::with_capacity(count);
        for publisher in publishers {
            users.extend(publisher.await.unwrap());
        }
        users
    })
}

/// Waits until a clustered stream and, if given, one of its consumers have
/// a leader again (after a node was killed).
async fn await_leaders(js: &async_nats::jetstream::Context, streams: &[&str], consumer: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for name in streams {
        loop {
            let led = match js.get_stream(*name).await {
                Ok(mut stream) => match stream.info().await {
                    Ok(info) => info.cluster.as_ref().is_some_and(|c| c.leader.is_some()),
                    Err(_) => false,
                },
                Err(_) => false,
            };
            if led {
                break;
            }
            assert!(Instant::now() < deadline, "stream {name} has no leader");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    loop {
        let led = match js.get_stream(streams[0]).await {
            Ok(stream) => {
                match stream
                    .get_consumer::<async_nats::jetstream::consumer::pull::Config>(consumer)
                    .await
                {
                    Ok(mut consumer) => consumer.info().await.is_ok_and(|info| {
                        info.cluster.as_ref().is_some_and(|c| c.leader.is_some())
                    }),
                    Err(_) => false,
                }
            }
            Err(_) => false,
        };
        if led {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "consumer {consumer} has no leader"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn user_consumer_info(
    js: &async_nats::jetstream::Context,
    consumer: &str,
) -> async_nats::jetstream::consumer::Info {
    let mut consumer: async_nats::jetstream::consumer::PullConsumer = js
        .get_stream("USER")
        .await
        .unwrap()
        .get_consumer(consumer)
        .await
        .unwrap();
    consumer.info().await.unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_a_durable_consumer_on_a_three_node_cluster() {
    let mut cluster = NatsCluster::start(3).await;
    cluster.provision().await;
    let urls = cluster.urls();
    let db = TestDb::create().await;
    let consumer = stocklet_payment::USER_CONSUMER;
    let acks = watch_acks(&urls[0], "USER", consumer).await;
    let mut a = Instance::start(urls[1].clone(), &db).await;
    let mut b = Instance::start(urls[0].clone(), &db).await;

    let js = cluster.jetstream().await;
    for name in ["USER", "PAYMENT"] {
        let info = js
            .get_stream(name)
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .clone();
        let replicas = info.cluster.map_or(0, |c| c.replicas.len() + 1);
        assert_eq!(replicas, 3, "{name} is not R3");
    }
    let store = stocklet_service_kit::lifecycle::event_store(cluster.client().await);

    // Phase 1: both instances run. Kill `a` once both have handled some.
    let phase1 = register_many(store.clone(), PER_PHASE);
    let deadline = Instant::now() + SETTLE;
    let (split_a, split_b) = loop {
        let (to_a, to_b) = (a.pulled.get(), b.pulled.get());
        if to_a >= 10 && to_b >= 10 {
            break (to_a, to_b);
        }
        let all_delivered = phase1.is_finished() && to_a + to_b >= PER_PHASE;
        assert!(
            !all_delivered && Instant::now() < deadline,
            "the work was not split: a pulled {to_a}, b {to_b} messages for {PER_PHASE} users"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    a.kill().await;
    let pulled_by_a = a.pulled.get();
    let in_flight = user_consumer_info(&js, consumer).await.num_ack_pending;
    let mut users = phase1.await.unwrap();

    // Phase 2: `b` alone, after the crash.
    users.extend(register_many(store.clone(), PER_PHASE).await.unwrap());

    // Phase 3: a NATS node dies too (not the one `b` and the test use).
    cluster.kill_node(2);
    await_leaders(&js, &["USER", "PAYMENT"], consumer).await;
    users.extend(register_many(store.clone(), PER_PHASE).await.unwrap());

    // Nothing lost: each user's balance opened exactly once and readable.
    let payment_stream = streams::PAYMENT.definition().unwrap().stream_ref();
    let deadline = Instant::now() + SETTLE;
    for user in &users {
        let subject = payment_stream.subject("balance", user);
        let opened = loop {
            let opened = store
                .load(&payment_stream, &subject, 0)
                .await
                .unwrap()
                .iter()
                .filter(|e| e.raw.event_type == events::BalanceOpened::full_name())
                .count();
            if opened > 0 || Instant::now() > deadline {
                break opened;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(opened, 1, "balance of {user} opened {opened} times");
        loop {
            let viewed = b
                .client
                .view_balance(as_user(
                    &admin(),
                    payment::ViewBalanceRequest {
                        customer_id: user.clone(),
                    },
                ))
                .await;
            match viewed {
                Ok(_) => break,
                Err(status) => {
                    assert!(
                        Instant::now() < deadline,
                        "balance of {user} not in the read model: {status}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    loop {
        let info = user_consumer_info(&js, consumer).await;
        if (info.num_pending, info.num_ack_pending) == (0, 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{consumer} never caught up: {} pending, {} unacked",
            info.num_pending,
            info.num_ack_pending
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every event was acked at least once; those `a` held when it died
    // were delivered again (to `b`) after the ack wait. The watcher sees
    // the last acks a moment after the server has counted them.
    let (acked, redelivered) = loop {
        let (acked, redelivered) = {
            let acks = acks.lock().unwrap();
            (acks.acks, acks.redelivered)
        };
        if acked >= users.len() || Instant::now() > deadline {
            break (acked, redelivered);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (pulled_a, pulled_b) = (a.pulled.get(), b.pulled.get());
    eprintln!(
        "cluster: {} users; messages pulled by a {pulled_a} (killed after a/b {split_a}/{split_b}, \
         {in_flight} unacked then), by b {pulled_b}; {consumer} acks {acked}, of redelivered events {redelivered}",
        users.len()
    );
    assert_eq!(pulled_a, pulled_by_a, "a killed instance pulled messages");
    assert!(
        acked >= users.len(),
        "only {acked} acks for {} users",
        users.len()
    );

    // Asked until the cluster answers: a node was just killed.
    let dead = eventually(SETTLE, "the dead-letter stream's state", async || {
        let mut stream = js
            .get_stream("DEADLETTER")
            .await
            .map_err(|e| e.to_string())?;
        let info = stream.info().await.map_err(|e| e.to_string())?;
        Ok::<u64, String>(info.state.messages)
    })
    .await;
    assert_eq!(dead, 0, "events were dead-lettered");

    b.stop().await;
}
