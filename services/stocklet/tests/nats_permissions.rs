//! The NATS server as an outsider or a compromised neighbour meets it.
//!
//! nats-server runs the shipped `nats/nats-server.conf` with its
//! `permissions.conf`, provisioned as `stocklet provision` does. Each
//! user then tries what it must not do, over the raw protocol, the way an
//! attacker holding its password would: forge events on another service's
//! stream (a `CredentialsCreated` on AUTH, say), delete, purge, create or
//! reconfigure streams, read streams it does not consume, take over
//! another service's consumer, and listen to subjects. Each refusal is
//! checked twice: no answer came, and the server logged the violation for
//! that user and subject. Beside each refusal, a positive control (the
//! same kind of request on what the user may use) proves the probe would
//! have seen an answer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt as _;
use stocklet_service_kit::config::{PROVISION_NATS_USER, SUBSCRIBER_NATS_USER};
use stocklet_service_kit::streams::{self, Stream};
use stocklet_test_support::{NatsServer, connect_as, nats_credentials};
use tokio::task::JoinSet;

/// How long a probe waits for an answer: a refused request gets none.
const WAIT: Duration = Duration::from_secs(2);

/// The durable consumers each service's user reads other streams through
/// (the services' own constants: the permissions must agree with them).
fn consumers_of(user: &str) -> Vec<(Stream, &'static str)> {
    match user {
        "auth" => vec![(streams::USER, stocklet_auth::reactor::DURABLE_NAME)],
        "user" => vec![],
        "product" => vec![(streams::ORDER, stocklet_product::ORDER_CONSUMER)],
        "warehouse" => [
            vec![(streams::PRODUCT, stocklet_warehouse::PRODUCT_CONSUMER)],
            stocklet_warehouse::SAGA_CONSUMERS.to_vec(),
        ]
        .concat(),
        "order" => stocklet_order::SAGA_CONSUMERS.to_vec(),
        "payment" => [
            vec![(streams::USER, stocklet_payment::USER_CONSUMER)],
            stocklet_payment::SAGA_CONSUMERS.to_vec(),
        ]
        .concat(),
        "shipping" => stocklet_shipping::SAGA_CONSUMERS.to_vec(),
        other => panic!("no service {other}"),
    }
}

/// The other streams a service's user projects into its read models: a
/// projection fills a gap in its redeliveries by direct get, so it may
/// read those streams that way too (the order service's timeline).
fn projects(user: &str) -> Vec<Stream> {
    match user {
        "order" => stocklet_order::SAGA_CONSUMERS
            .iter()
            .map(|(s, _)| *s)
            .collect(),
        _ => vec![],
    }
}

/// Each service's user and the stream it owns.
const SERVICES: [(&str, Stream); 7] = [
    ("auth", streams::AUTH),
    ("user", streams::USER),
    ("product", streams::PRODUCT),
    ("warehouse", streams::WAREHOUSE),
    ("order", streams::ORDER),
    ("payment", streams::PAYMENT),
    ("shipping", streams::SHIPPING),
];

/// A durable consumer of a service on another service's stream, for the
/// take-over attempts: the product service's on ORDER.
const VICTIM_CONSUMER: (&str, &str) = ("ORDER", stocklet_product::ORDER_CONSUMER);

/// One request a user sends, and whether it must be answered.
#[derive(Clone, Debug)]
struct Probe {
    subject: String,
    body: String,
    allowed: bool,
}

impl Probe {
    fn denied(subject: impl Into<String>, body: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            body: body.into(),
            allowed: false,
        }
    }

    fn allowed(subject: impl Into<String>, body: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            body: body.into(),
            allowed: true,
        }
    }
}

/// The server with the shipped permissions, its streams provisioned and
/// one event on each, so that a read that got through would return one.
async fn provisioned_server() -> NatsServer {
    let mut nats = NatsServer::start().await;
    nats.expect_permission_violations();
    nats.provision().await;
    let js = nats.jetstream().await;
    for stream in streams::EVENT_STREAMS {
        let prefix = stream.stream_ref().subject_prefix;
        js.publish(format!("{prefix}.seed.1"), "seed".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    nats
}

/// Sends every probe as `user` at once; returns the ones whose outcome was
/// not the expected one (an answer where none may come, or the reverse),
/// with what happened.
async fn run_probes(nats: &NatsServer, user: &str, probes: Vec<Probe>) -> Vec<String> {
    let client = connect_as(&[nats.url()], user).await.unwrap();
    let mut sent = JoinSet::new();
    for probe in probes {
        let client = client.clone();
        sent.spawn(async move {
            let answer = tokio::time::timeout(
                WAIT,
                client.request(probe.subject.clone(), probe.body.clone().into()),
            )
            .await;
            let answered = match answer {
                Ok(Ok(reply)) => Some(String::from_utf8_lossy(&reply.payload).into_owned()),
                Ok(Err(error)) => Some(format!("error: {error}")),
                Err(_) => None,
            };
            (probe, answered)
        });
    }
    let mut wrong = Vec::new();
    let mut refused = Vec::new();
    while let Some(done) = sent.join_next().await {
        let (probe, answered) = done.unwrap();
        match (probe.allowed, answered) {
            (true, Some(reply)) if reply.starts_with("error") => {
                wrong.push(format!("{user} was refused {}: {reply}", probe.subject))
            }
            (true, None) => wrong.push(format!("{user} got no answer on {}", probe.subject)),
            (false, Some(reply)) => wrong.push(format!(
                "{user} was answered on {}: {}",
                probe.subject,
                reply.chars().take(160).collect::<String>()
            )),
            (false, None) => refused.push(probe.subject),
            (true, Some(_)) => {}
        }
    }
    // No answer because the server refused it, not for another reason.
    let violations = nats.permission_violations().join("\n");
    for subject in refused {
        let logged = format!("user:{user}\" - Publish Violation - Subject \"{subject}\"");
        if !violations.contains(&logged) {
            wrong.push(format!(
                "{user} got no answer on {subject}, but the server logged no violation"
            ));
        }
    }
    wrong
}

/// What every confined user must be refused on `stream`, whichever it is:
/// changing the stream itself.
fn stream_admin_probes(stream: &str) -> Vec<Probe> {
    let config = format!(
        r#"{{"name":"{stream}","subjects":["{}.>"]}}"#,
        stream.to_lowercase()
    );
    vec![
        Probe::denied(format!("$JS.API.STREAM.DELETE.{stream}"), ""),
        Probe::denied(format!("$JS.API.STREAM.PURGE.{stream}"), ""),
        Probe::denied(format!("$JS.API.STREAM.UPDATE.{stream}"), config),
        Probe::denied(
            format!("$JS.API.STREAM.MSG.DELETE.{stream}"),
            r#"{"seq":1}"#,
        ),
    ]
}

/// Reading `stream` by every way but a consumer of one's own.
fn read_probes(stream: &str) -> Vec<Probe> {
    vec![
        Probe::denied(format!("$JS.API.DIRECT.GET.{stream}"), r#"{"seq":1}"#),
        Probe::denied(
            format!(
                "$JS.API.DIRECT.GET.{stream}.{}.seed.1",
                stream.to_lowercase()
            ),
            "",
        ),
        Probe::denied(format!("$JS.API.STREAM.MSG.GET.{stream}"), r#"{"seq":1}"#),
        Probe::denied(
            format!("$JS.API.CONSUMER.CREATE.{stream}"),
            format!(r#"{{"stream_name":"{stream}","config":{{"ack_policy":"none"}}}}"#),
        ),
        Probe::denied(
            format!("$JS.API.CONSUMER.CREATE.{stream}.spy"),
            format!(
                r#"{{"stream_name":"{stream}","config":{{"name":"spy","durable_name":"spy","ack_policy":"none"}}}}"#
            ),
        ),
    ]
}

#[tokio::test]
async fn anonymous_clients_and_wrong_passwords_are_refused() {
    let nats = provisioned_server().await;
    let refused = |result: Result<async_nats::Client, async_nats::ConnectError>| {
        let error = result.expect_err("the server refuses the connection");
        assert!(
            error.to_string().to_lowercase().contains("authorization"),
            "{error}"
        );
    };
    let options = || async_nats::ConnectOptions::new().connection_timeout(WAIT);
    refused(options().connect(nats.url()).await);
    refused(
        async_nats::ConnectOptions::with_user_and_password("order".into(), "guess".into())
            .connection_timeout(WAIT)
            .connect(nats.url())
            .await,
    );
    // Another user's password is no key either.
    let provision = nats_credentials(PROVISION_NATS_USER);
    refused(
        async_nats::ConnectOptions::with_user_and_password(
            "order".into(),
            provision.password.expose().to_owned(),
        )
        .connection_timeout(WAIT)
        .connect(nats.url())
        .await,
    );
    // The right one is.
    assert!(connect_as(&[nats.url()], "order").await.is_ok());
}

#[tokio::test]
async fn a_service_writes_only_its_own_stream_and_reads_only_what_it_consumes() {
    let nats = provisioned_server().await;
    let mut wrong = Vec::new();
    for (user, own) in SERVICES {
        let own_prefix = own.stream_ref().subject_prefix;
        let mut probes = vec![
            // Its own events: stored (a publish ack answers).
            Probe::allowed(format!("{own_prefix}.probe.{user}"), "probe"),
            // Its own aggregates: loaded by direct get.
            Probe::allowed(format!("$JS.API.DIRECT.GET.{}", own.name), r#"{"seq":1}"#),
            // A stream of its own making, or the snapshot bucket removed.
            Probe::denied(
                "$JS.API.STREAM.CREATE.EVIL",
                r#"{"name":"EVIL","subjects":["evil.>"]}"#,
            ),
            Probe::denied("$JS.API.STREAM.DELETE.KV_snapshots", ""),
        ];
        // Another service's consumer, taken over or deleted, and dead
        // letters filed in its name.
        let (victim_stream, victim) = VICTIM_CONSUMER;
        if user != "product" {
            probes.extend([
                Probe::denied(
                    format!("$JS.API.CONSUMER.MSG.NEXT.{victim_stream}.{victim}"),
                    r#"{"batch":1,"expires":500000000}"#,
                ),
                Probe::denied(
                    format!("$JS.API.CONSUMER.DELETE.{victim_stream}.{victim}"),
                    "",
                ),
                Probe::denied(format!("deadletter.{victim}"), "forged"),
            ]);
        }
        // A replay fed to another consumer: only the dead-letter API the
        // order service serves to admins may.
        if user != "order" {
            probes.push(Probe::denied(
                format!("deadletter.{victim}.replay"),
                "forged",
            ));
        }
        // Its own consumers it may inspect (and create: the service does).
        for (stream, durable) in consumers_of(user) {
            probes.push(Probe::allowed(
                format!("$JS.API.CONSUMER.INFO.{}.{durable}", stream.name),
                "",
            ));
        }
        for stream in streams::EVENT_STREAMS
            .into_iter()
            .chain([streams::DEADLETTER])
        {
            let mut admin = stream_admin_probes(stream.name);
            if stream == streams::DEADLETTER && !consumers_of(user).is_empty() {
                // A reactor removes a replayed letter once it handled it
                // (and the order service's dead-letter API discards them).
                admin.retain(|p| !p.subject.starts_with("$JS.API.STREAM.MSG.DELETE"));
            }
            probes.extend(admin);
            if stream == own {
                continue;
            }
            let prefix = stream.stream_ref().subject_prefix;
            // Forged events on another service's stream.
            if stream == streams::AUTH && user == "user" {
                // The one hand-over it makes, and nothing else there.
                probes.push(Probe::allowed("auth.registration.probe", "probe"));
                probes.push(Probe::denied("auth.credentials.forged", "forged"));
            } else if stream != streams::DEADLETTER {
                probes.push(Probe::denied(format!("{prefix}.forged.1"), "forged"));
            }
            // Reads: none but through its own durable consumers, on the
            // streams it consumes and on no other (and direct gets on the
            // streams it projects).
            if projects(user).contains(&stream) {
                probes.push(Probe::allowed(
                    format!("$JS.API.DIRECT.GET.{}", stream.name),
                    r#"{"seq":1}"#,
                ));
                probes.extend(
                    read_probes(stream.name)
                        .into_iter()
                        .filter(|p| p.subject != format!("$JS.API.DIRECT.GET.{}", stream.name)),
                );
            } else if stream != streams::DEADLETTER || user != "order" {
                probes.extend(read_probes(stream.name));
            }
        }
        wrong.extend(run_probes(&nats, user, probes).await);
    }

    // Nor may it listen to the subjects themselves below JetStream, or to
    // the replies meant for another service.
    for (user, _) in SERVICES {
        let client = connect_as(&[nats.url()], user).await.unwrap();
        let mut everything = client.subscribe(">").await.unwrap();
        let stolen = if user == "auth" {
            "_INBOX_order.>"
        } else {
            "_INBOX_auth.>"
        };
        let _replies = client.subscribe(stolen).await.unwrap();
        client.flush().await.unwrap();
        let provisioner = nats.client().await;
        provisioner
            .publish("order.overheard.1", "secret".into())
            .await
            .unwrap();
        provisioner.flush().await.unwrap();
        let heard = tokio::time::timeout(Duration::from_millis(300), everything.next()).await;
        assert!(heard.is_err(), "{user} overheard {heard:?}");
        let violations = nats.permission_violations().join("\n");
        for subject in [">", stolen] {
            let logged = format!("user:{user}\" - Subscription Violation - Subject \"{subject}\"");
            assert!(
                violations.contains(&logged),
                "the server logged no subscription violation for {user} on {subject}"
            );
        }
    }

    assert!(
        wrong.is_empty(),
        "{} wrong outcomes:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // And nothing changed: every stream is there, as provisioned, holding
    // its seed and its owner's probe only (and the one hand-over on AUTH,
    // and on ORDER what nobody overheard).
    let js = nats.jetstream().await;
    for stream in streams::EVENT_STREAMS {
        let info = js
            .get_stream(stream.name)
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .clone();
        let shipped = stream.definition().unwrap().config().clone();
        assert_eq!(info.config.subjects, shipped.subjects, "{}", stream.name);
        assert!(
            info.config.deny_delete && info.config.deny_purge,
            "{}",
            stream.name
        );
        let expected = match stream {
            streams::AUTH => 3,
            // And what the provisioner published for each to overhear.
            streams::ORDER => 2 + SERVICES.len() as u64,
            _ => 2,
        };
        assert_eq!(info.state.messages, expected, "{}", stream.name);
    }
    assert!(js.get_stream("EVIL").await.is_err());
    assert!(js.get_stream("KV_snapshots").await.is_ok());
}

#[tokio::test]
async fn the_subscriber_reads_the_public_streams_and_writes_nothing() {
    let nats = provisioned_server().await;
    let mut probes = vec![Probe::allowed("$JS.API.INFO", "")];
    for stream in streams::EVENT_STREAMS
        .into_iter()
        .chain([streams::DEADLETTER])
    {
        let name = stream.name;
        let prefix = stream.stream_ref().subject_prefix;
        probes.extend(stream_admin_probes(name));
        if stream != streams::DEADLETTER {
            probes.push(Probe::denied(format!("{prefix}.forged.1"), "forged"));
        }
        if streams::PUBLIC_STREAMS.contains(&stream) {
            probes.push(Probe::allowed(format!("$JS.API.STREAM.INFO.{name}"), ""));
            probes.push(Probe::allowed(
                format!("$JS.API.DIRECT.GET.{name}"),
                r#"{"seq":1}"#,
            ));
        } else {
            // AUTH (credentials) and the dead letters (copies of any event).
            probes.push(Probe::denied(format!("$JS.API.STREAM.INFO.{name}"), ""));
            probes.extend(read_probes(name));
        }
    }
    // The services' consumers stay theirs: not pulled, changed or removed.
    let (stream, durable) = VICTIM_CONSUMER;
    probes.push(Probe::denied(
        format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"),
        r#"{"batch":1,"expires":500000000}"#,
    ));
    probes.push(Probe::denied(
        format!("$JS.API.CONSUMER.DELETE.{stream}.{durable}"),
        "",
    ));
    probes.push(Probe::denied(
        format!("$JS.API.CONSUMER.CREATE.{stream}.{durable}"),
        format!(r#"{{"stream_name":"{stream}","config":{{"durable_name":"{durable}","ack_policy":"none"}}}}"#),
    ));
    probes.push(Probe::denied(
        "$JS.API.DIRECT.GET.KV_snapshots",
        r#"{"seq":1}"#,
    ));
    let wrong = run_probes(&nats, SUBSCRIBER_NATS_USER, probes).await;
    assert!(
        wrong.is_empty(),
        "{} wrong outcomes:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // What an outside program does: a durable consumer of its own on a
    // public stream, pulled and acked.
    let client = connect_as(&[nats.url()], SUBSCRIBER_NATS_USER)
        .await
        .unwrap();
    let js = jetstream::new(client);
    let orders = js.get_stream("ORDER").await.unwrap();
    let consumer = orders
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("analytics".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.fetch().max_messages(1).messages().await.unwrap();
    let message = messages.next().await.unwrap().unwrap();
    assert_eq!(message.subject.as_str(), "order.seed.1");
    message.ack().await.unwrap();
    // And an ordered consumer (ephemeral, named by the client).
    let ordered = orders
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subject: "order.>".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = ordered.messages().await.unwrap();
    let message = messages.next().await.unwrap().unwrap();
    assert_eq!(message.subject.as_str(), "order.seed.1");
}
