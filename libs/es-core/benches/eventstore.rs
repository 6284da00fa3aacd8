//! Event-store benchmark: `make bench` (`cargo bench -p es-core --bench eventstore`).
//!
//! It measures what es-core adds on top of NATS JetStream, on real
//! infrastructure: a private `nats-server` running the project's shipped
//! `nats/nats-server.conf` (so `sync_interval: always`: every ack means the
//! write was fsynced) and a fresh PostgreSQL database, both from
//! `stocklet-test-support`.
//!
//! Figures, each es-core figure next to the raw JetStream operation under it:
//! - **Sequential append**: raw `publish(..).await?.await?` (same payload, no
//!   headers) against [`JetStreamEventStore::append`] of one event with the
//!   concurrency check (`expected_sequence` tracked from the previous ack),
//!   and against [`Repository::execute`] (load + decide + append) on
//!   aggregates of at most ten events. A fourth row, a raw publish carrying
//!   only the two checks es-core asks the server for (`Nats-Msg-Id` and the
//!   expected last subject sequence), separates the server's price for them
//!   from es-core's own client-side cost.
//! - **Pipelined append**: 64 publishes in flight over 256 subjects, against
//!   64 concurrent es-core appends over 256 aggregates, each with its own
//!   expected sequence.
//! - **Load**: [`Repository::load`] (batch direct get, decode, fold) of
//!   aggregates with 10, 100 and 1,000 events, p50 and p99, against the same
//!   batch direct get with the replies only counted.
//! - **Projection catch-up**: a [`ProjectionRunner`] whose projection inserts
//!   each batch with one `INSERT .. SELECT * FROM UNNEST(..)` in the runner's
//!   transaction, timed over `catch_up` of a pre-published stream (50,000
//!   events, or what 45 s of writing gets in), against a pull consumer with
//!   the runner's settings that does no database work.
//!
//! The machine is small and noisy (two cores shared by client, nats-server and
//! PostgreSQL), so absolute numbers drift from run to run. What is meant to be
//! stable is the *ratio* of es-core to raw JetStream: both are measured side by
//! side in one run, in short alternating rounds (raw/es-core, then
//! es-core/raw, ...) against the same server and stream, so noise hits both
//! alike. Each figure is the median over its rounds; `ratio` divides the two
//! medians and `paired_ratio` is the median of the per-round ratios.
//!
//! Output: a table, PASS/FAIL per target (the exit code stays 0), then one JSON
//! object per figure per line on stdout. Progress goes to stderr.
//! `STOCKLET_BENCH_SCALE` (default 1.0) scales every count.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use async_nats::{HeaderMap, header};
use bytes::Bytes;
use es_core::Recorded;
use es_core::projection::{Projection, ProjectionConfig, ProjectionError, ProjectionRunner};
use es_core::snapshot::SnapshotStore;
use es_core::streams::StreamDefinition;
use es_core::{
    Aggregate, AggregateId, CommandContext, DomainEvent, EventStore as _, JetStreamEventStore,
    Repository, StreamRef,
};
use futures::{FutureExt as _, StreamExt as _};
use serde_json::json;
use sqlx::PgConnection;
use stocklet_test_support::{NatsServer, TestDb, workspace_root};

// ---------------------------------------------------------------------------
// The benchmark's domain: a ledger that records deposits.

/// A deposit: the bench's only event, about 200 bytes of protobuf.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Deposited {
    /// Amount in cents.
    #[prost(int64, tag = "1")]
    pub amount_cents: i64,
    /// Free text, to give the payload a realistic size.
    #[prost(string, tag = "2")]
    pub memo: String,
}

impl prost::Name for Deposited {
    const NAME: &'static str = "Deposited";
    const PACKAGE: &'static str = "stocklet.bench.v1";
}

es_core::domain_events! {
    /// The ledger's events.
    pub enum LedgerEvent {
        Deposited(Deposited),
    }
}

/// Balance and number of entries.
#[derive(Clone, Debug, Default)]
struct Ledger {
    balance_cents: i64,
    entries: u64,
}

/// Deposit this many cents.
struct Deposit {
    amount_cents: i64,
}

impl Aggregate for Ledger {
    const TYPE: &'static str = "ledger";
    type Command = Deposit;
    type Event = LedgerEvent;
    type Error = Infallible;

    fn decide(&self, command: &Deposit) -> Result<Vec<LedgerEvent>, Infallible> {
        Ok(vec![deposited(command.amount_cents, self.entries + 1)])
    }

    fn apply(&mut self, event: &LedgerEvent) {
        match event {
            LedgerEvent::Deposited(d) => {
                self.balance_cents += d.amount_cents;
                self.entries += 1;
            }
        }
    }
}

impl es_core::snapshot::SnapshotState for Ledger {
    const SNAPSHOT_VERSION: u32 = 1;

    fn to_snapshot(&self) -> Vec<u8> {
        let mut bytes = self.balance_cents.to_le_bytes().to_vec();
        bytes.extend_from_slice(&self.entries.to_le_bytes());
        bytes
    }

    fn from_snapshot(bytes: &[u8]) -> Option<Self> {
        let (balance, entries) = bytes.split_at_checked(8)?;
        Some(Ledger {
            balance_cents: i64::from_le_bytes(balance.try_into().ok()?),
            entries: u64::from_le_bytes(entries.try_into().ok()?),
        })
    }
}

fn deposited(amount_cents: i64, entry: u64) -> LedgerEvent {
    LedgerEvent::Deposited(Deposited {
        amount_cents,
        memo: format!("entry {entry:010}: {}", "m".repeat(170)),
    })
}

type Repo = Repository<Ledger, JetStreamEventStore>;

// ---------------------------------------------------------------------------
// Measurements.

/// One timed run of `ops` operations.
struct Run {
    ops: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// The `q` quantile (0..=1) of `latencies`, in microseconds.
fn percentile_us(latencies: &[Duration], q: f64) -> f64 {
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index].as_secs_f64() * 1e6
}

/// What a figure must reach.
#[derive(Clone, Copy)]
enum Target {
    /// `value / baseline_value` at least this.
    MinRatio(f64),
    /// `value` at least this.
    Min(f64),
    /// `value` below this.
    Below(f64),
}

/// One reported number.
struct Figure {
    bench: String,
    value: f64,
    unit: &'static str,
    baseline: Option<(String, f64)>,
    target: Option<Target>,
    /// Median over rounds of (es-core / raw) measured back to back.
    paired_ratio: Option<f64>,
    note: String,
}

impl Figure {
    fn new(bench: impl Into<String>, value: f64, unit: &'static str) -> Self {
        Self {
            bench: bench.into(),
            value,
            unit,
            baseline: None,
            target: None,
            paired_ratio: None,
            note: String::new(),
        }
    }

    fn against(mut self, baseline: &Figure) -> Self {
        self.baseline = Some((baseline.bench.clone(), baseline.value));
        self
    }

    fn target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self
    }

    fn paired(mut self, ratios: &[f64]) -> Self {
        self.paired_ratio = Some(median(ratios));
        self
    }

    fn note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }

    fn ratio(&self) -> Option<f64> {
        self.baseline.as_ref().map(|(_, base)| self.value / base)
    }

    fn target_text(&self) -> Option<String> {
        self.target.map(|target| match target {
            Target::MinRatio(r) => format!(">= {r}x baseline"),
            Target::Min(v) => format!(">= {v} {}", self.unit),
            Target::Below(v) => format!("< {v} {}", self.unit),
        })
    }

    fn pass(&self) -> Option<bool> {
        self.target.map(|target| match target {
            Target::MinRatio(r) => self.ratio().is_some_and(|ratio| ratio >= r),
            Target::Min(v) => self.value >= v,
            Target::Below(v) => self.value < v,
        })
    }

    /// One JSON object, keys in a fixed order (bench, value, unit, baseline..).
    fn json(&self) -> String {
        let mut fields = vec![
            ("bench", json!(self.bench)),
            ("value", json!(round(self.value))),
            ("unit", json!(self.unit)),
        ];
        if let Some((name, value)) = &self.baseline {
            fields.push(("baseline", json!(name)));
            fields.push(("baseline_value", json!(round(*value))));
            let ratio = self.ratio().unwrap_or(f64::NAN);
            fields.push(("ratio", json!((ratio * 1000.0).round() / 1000.0)));
        }
        if let Some(paired) = self.paired_ratio {
            fields.push(("paired_ratio", json!((paired * 1000.0).round() / 1000.0)));
        }
        if let (Some(target), Some(pass)) = (self.target_text(), self.pass()) {
            fields.push(("target", json!(target)));
            fields.push(("pass", json!(pass)));
        }
        let body: Vec<String> = fields
            .into_iter()
            .map(|(key, value)| format!("{}:{value}", json!(key)))
            .collect();
        format!("{{{}}}", body.join(","))
    }
}

fn round(value: f64) -> f64 {
    if value.abs() >= 100.0 {
        value.round()
    } else {
        (value * 100.0).round() / 100.0
    }
}

/// `STOCKLET_BENCH_SCALE` times `base`, at least `min`.
fn scaled(base: usize, min: usize) -> usize {
    let scale = std::env::var("STOCKLET_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(1.0);
    ((base as f64 * scale).round() as usize).max(min)
}

fn ids(tag: &str, count: usize) -> Vec<AggregateId> {
    (0..count)
        .map(|k| AggregateId::parse(format!("{tag}-{k}")).unwrap())
        .collect()
}

// ---------------------------------------------------------------------------
// Sequential: one operation at a time.

/// Raw JetStream: publish and await the ack, round-robin over `subjects`.
async fn raw_sequential(
    js: &jetstream::Context,
    subjects: &[String],
    payload: &Bytes,
    ops: usize,
) -> Run {
    let mut latencies = Vec::with_capacity(ops);
    let start = Instant::now();
    for i in 0..ops {
        let t = Instant::now();
        js.publish(subjects[i % subjects.len()].clone(), payload.clone())
            .await
            .unwrap()
            .await
            .unwrap();
        latencies.push(t.elapsed());
    }
    Run {
        ops,
        elapsed: start.elapsed(),
        latencies,
    }
}

/// Raw JetStream with the two server-side checks es-core asks for: a
/// `Nats-Msg-Id` (dedupe) and `Nats-Expected-Last-Subject-Sequence` taken
/// from the previous ack; no envelope headers. Separates what the server
/// charges for the checks from what es-core costs on the client.
async fn raw_checked_sequential(
    js: &jetstream::Context,
    subjects: &[String],
    payload: &Bytes,
    ops: usize,
) -> Run {
    let mut last = vec![0u64; subjects.len()];
    let mut latencies = Vec::with_capacity(ops);
    let start = Instant::now();
    for i in 0..ops {
        let k = i % subjects.len();
        let t = Instant::now();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::NATS_MESSAGE_ID,
            uuid::Uuid::now_v7().to_string().as_str(),
        );
        headers.insert(
            header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            last[k].to_string().as_str(),
        );
        let ack = js
            .publish_with_headers(subjects[k].clone(), headers, payload.clone())
            .await
            .unwrap()
            .await
            .unwrap();
        last[k] = ack.sequence;
        latencies.push(t.elapsed());
    }
    Run {
        ops,
        elapsed: start.elapsed(),
        latencies,
    }
}

/// es-core: one-event commits with the concurrency check, round-robin over
/// `aggregates`, each aggregate's expected sequence taken from its last ack.
async fn append_sequential(repo: &Repo, aggregates: &[AggregateId], ops: usize) -> Run {
    let context = CommandContext::default();
    let mut expected = vec![0u64; aggregates.len()];
    let mut latencies = Vec::with_capacity(ops);
    let start = Instant::now();
    for i in 0..ops {
        let k = i % aggregates.len();
        let t = Instant::now();
        let event = deposited(100, expected[k]);
        let commit = repo.commit(&aggregates[k], expected[k], &[event], &context);
        let appended = repo.store().append(repo.stream(), &commit).await.unwrap();
        expected[k] = appended.sequence;
        latencies.push(t.elapsed());
    }
    Run {
        ops,
        elapsed: start.elapsed(),
        latencies,
    }
}

/// es-core: `Repository::execute` (load, decide, append), round-robin.
async fn execute_sequential(repo: &Repo, aggregates: &[AggregateId], ops: usize) -> Run {
    let context = CommandContext::default();
    let command = Deposit { amount_cents: 100 };
    let mut latencies = Vec::with_capacity(ops);
    let start = Instant::now();
    for i in 0..ops {
        let t = Instant::now();
        repo.execute(&aggregates[i % aggregates.len()], &command, &context)
            .await
            .unwrap();
        latencies.push(t.elapsed());
    }
    Run {
        ops,
        elapsed: start.elapsed(),
        latencies,
    }
}

// ---------------------------------------------------------------------------
// Pipelined: many operations in flight.

/// Subjects (aggregates) each in-flight worker cycles through.
const SUBJECTS_PER_WORKER: usize = 4;

/// Events between snapshots in the snapshot load figures.
const SNAPSHOT_EVERY: usize = 100;

/// Raw JetStream: `inflight` workers, each publishing and awaiting acks one
/// after another over its own subjects.
async fn raw_pipelined(
    js: &jetstream::Context,
    prefix: &str,
    tag: &str,
    payload: &Bytes,
    inflight: usize,
    ops: usize,
) -> Run {
    let per_worker = ops.div_ceil(inflight);
    let workers: Vec<Vec<String>> = (0..inflight)
        .map(|w| {
            (0..SUBJECTS_PER_WORKER)
                .map(|k| format!("{prefix}.raw.{tag}-{w}-{k}"))
                .collect()
        })
        .collect();
    let mut set = tokio::task::JoinSet::new();
    let start = Instant::now();
    for subjects in workers {
        let js = js.clone();
        let payload = payload.clone();
        set.spawn(async move {
            for i in 0..per_worker {
                js.publish(subjects[i % subjects.len()].clone(), payload.clone())
                    .await
                    .unwrap()
                    .await
                    .unwrap();
            }
        });
    }
    set.join_all().await;
    Run {
        ops: per_worker * inflight,
        elapsed: start.elapsed(),
        latencies: Vec::new(),
    }
}

/// es-core: `inflight` workers, each appending one-event commits over its
/// own aggregates, tracking each aggregate's expected sequence.
async fn append_pipelined(repo: &Repo, tag: &str, inflight: usize, ops: usize) -> Run {
    let per_worker = ops.div_ceil(inflight);
    let workers: Vec<Vec<AggregateId>> = (0..inflight)
        .map(|w| ids(&format!("{tag}-{w}"), SUBJECTS_PER_WORKER))
        .collect();
    let mut set = tokio::task::JoinSet::new();
    let start = Instant::now();
    for aggregates in workers {
        let repo = repo.clone();
        set.spawn(async move {
            append_sequential(&repo, &aggregates, per_worker).await;
        });
    }
    set.join_all().await;
    Run {
        ops: per_worker * inflight,
        elapsed: start.elapsed(),
        latencies: Vec::new(),
    }
}

/// Raw JetStream: the batch direct get `Repository::load` sends, counting
/// the replies without decoding them.
async fn raw_direct_get(client: &async_nats::Client, stream: &str, subject: &str) -> usize {
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await.unwrap();
    let request = json!({"seq": 1, "next_by_subj": subject, "batch": 10_000});
    client
        .publish_with_reply(
            format!("$JS.API.DIRECT.GET.{stream}"),
            inbox,
            Bytes::from(request.to_string()),
        )
        .await
        .unwrap();
    let mut count = 0;
    while let Some(reply) = replies.next().await {
        match reply.status {
            None => count += 1,
            Some(_) => break,
        }
    }
    count
}

/// Raw JetStream: what the projection runner's consumer delivers without
/// PostgreSQL: a new durable pull consumer with the runner's settings (ack
/// all, `max_ack_pending` = batch size), draining what has arrived into a
/// batch and acking its last message, until `total` messages.
async fn raw_consume(
    js: &jetstream::Context,
    stream: &str,
    name: &str,
    batch_size: usize,
    total: usize,
) -> Duration {
    let stream = js.get_stream(stream).await.unwrap();
    let start = Instant::now();
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some(name.to_owned()),
            ack_policy: consumer::AckPolicy::All,
            max_ack_pending: i64::try_from(batch_size).unwrap(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(batch_size)
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .unwrap();
    let mut seen = 0;
    while seen < total {
        let mut batch = vec![messages.next().await.unwrap().unwrap()];
        while batch.len() < batch_size {
            match messages.next().now_or_never() {
                Some(Some(Ok(message))) => batch.push(message),
                _ => break,
            }
        }
        seen += batch.len();
        batch.last().unwrap().ack().await.unwrap();
    }
    let elapsed = start.elapsed();
    stream.delete_consumer(name).await.unwrap();
    elapsed
}

/// Like [`populate`], but stops early once `budget` has passed (the disk may
/// be busy with other work). Returns the number of events written.
async fn populate_within(
    repo: &Repo,
    aggregates: &[AggregateId],
    events_each: usize,
    inflight: usize,
    budget: Duration,
) -> usize {
    let deadline = Instant::now() + budget;
    let inflight = inflight.clamp(1, aggregates.len().max(1));
    let mut set = tokio::task::JoinSet::new();
    for w in 0..inflight {
        let mine: Vec<AggregateId> = aggregates
            .iter()
            .skip(w)
            .step_by(inflight)
            .cloned()
            .collect();
        let repo = repo.clone();
        set.spawn(async move {
            let context = CommandContext::default();
            let mut written = 0;
            'aggregates: for id in mine {
                let mut expected = 0;
                for entry in 0..events_each {
                    if Instant::now() > deadline {
                        break 'aggregates;
                    }
                    let event = deposited(100, entry as u64);
                    let commit = repo.commit(&id, expected, &[event], &context);
                    expected = repo
                        .store()
                        .append(repo.stream(), &commit)
                        .await
                        .unwrap()
                        .sequence;
                    written += 1;
                }
            }
            written
        });
    }
    set.join_all().await.into_iter().sum()
}

/// Writes `events_each` one-event commits to each aggregate, `inflight`
/// aggregates at a time. Returns the number of events written.
async fn populate(
    repo: &Repo,
    aggregates: &[AggregateId],
    events_each: usize,
    inflight: usize,
) -> usize {
    let inflight = inflight.clamp(1, aggregates.len().max(1));
    let mut set = tokio::task::JoinSet::new();
    for w in 0..inflight {
        let mine: Vec<AggregateId> = aggregates
            .iter()
            .skip(w)
            .step_by(inflight)
            .cloned()
            .collect();
        let repo = repo.clone();
        set.spawn(async move {
            for id in mine {
                append_sequential(&repo, std::slice::from_ref(&id), events_each).await;
            }
        });
    }
    set.join_all().await;
    aggregates.len() * events_each
}

// ---------------------------------------------------------------------------
// Projection: one multi-row INSERT per batch.

const CREATE_ENTRIES: &str = "CREATE TABLE bench_ledger_entries (
    stream_sequence BIGINT PRIMARY KEY,
    event_id TEXT NOT NULL,
    aggregate_id TEXT NOT NULL,
    amount_cents BIGINT NOT NULL,
    recorded_at_ms BIGINT NOT NULL
)";

const INSERT_ENTRIES: &str = "INSERT INTO bench_ledger_entries
    (stream_sequence, event_id, aggregate_id, amount_cents, recorded_at_ms)
    SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[])";

/// Ledger entries as rows; counts the batches it is handed.
struct LedgerEntries {
    name: String,
    batches: AtomicU64,
    events: AtomicU64,
}

impl LedgerEntries {
    fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            batches: AtomicU64::new(0),
            events: AtomicU64::new(0),
        }
    }
}

impl Projection for LedgerEntries {
    type Event = LedgerEvent;

    fn name(&self) -> &str {
        &self.name
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[Recorded<LedgerEvent>],
    ) -> Result<(), ProjectionError> {
        let mut sequences = Vec::with_capacity(events.len());
        let mut event_ids = Vec::with_capacity(events.len());
        let mut aggregate_ids = Vec::with_capacity(events.len());
        let mut amounts = Vec::with_capacity(events.len());
        let mut timestamps = Vec::with_capacity(events.len());
        for stored in events {
            let LedgerEvent::Deposited(deposit) = &stored.event;
            sequences.push(i64::try_from(stored.meta.stream_sequence).unwrap_or(i64::MAX));
            event_ids.push(stored.meta.event_id.clone());
            aggregate_ids.push(stored.meta.aggregate_id.clone());
            amounts.push(deposit.amount_cents);
            timestamps.push(stored.meta.timestamp_ms);
        }
        sqlx::query(INSERT_ENTRIES)
            .bind(sequences)
            .bind(event_ids)
            .bind(aggregate_ids)
            .bind(amounts)
            .bind(timestamps)
            .execute(&mut *conn)
            .await?;
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.events
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    async fn reset(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("TRUNCATE bench_ledger_entries")
            .execute(&mut *conn)
            .await
            .map(|_| ())
    }
}

// ---------------------------------------------------------------------------

/// The `sync_interval` set in the config file, if any.
fn sync_interval(config: &str) -> Option<String> {
    config.lines().find_map(|line| {
        let rest = line.trim_start().strip_prefix("sync_interval")?;
        let value = rest
            .trim_start_matches([' ', '\t', ':', '='])
            .split('#')
            .next()?
            .trim()
            .trim_matches('"');
        Some(value.to_owned())
    })
}

fn progress(message: impl AsRef<str>) {
    eprintln!("[bench] {}", message.as_ref());
}

#[tokio::main]
async fn main() {
    let started = Instant::now();

    // Infrastructure: the project's nats-server config, a fresh database.
    let config_path = workspace_root().join("nats").join("nats-server.conf");
    let config_text = std::fs::read_to_string(&config_path).unwrap();
    let sync = sync_interval(&config_text);
    let nats = NatsServer::start().await;
    let db = TestDb::create().await;
    let client = nats.client().await;
    let server = client.server_info();
    let (pg_version,): (String,) = sqlx::query_as("SHOW server_version")
        .fetch_one(&db.pool)
        .await
        .unwrap();

    let store = JetStreamEventStore::new(client.clone());
    let js = store.context().clone();
    let stream = StreamDefinition::new("ORDER", "order")
        .ensure(&js)
        .await
        .unwrap();
    let repo: Repo = Repository::new(store.clone(), stream.clone());
    let payload = deposited(100, 0).encode();

    println!("Stocklet event-store benchmark");
    println!(
        "nats-server config: {} (sync_interval: {}), run by stocklet-test-support with the store in a temp dir",
        config_path.display(),
        sync.as_deref().unwrap_or("not set, server default 2m")
    );
    if sync.as_deref() != Some("always") {
        println!(
            "WARNING: sync_interval is not `always`: acks are not fsynced and figures are not comparable"
        );
    }
    println!(
        "nats-server version: {} (go {}), PostgreSQL {pg_version}, {} cores, scale {}",
        server.version,
        server.go,
        std::thread::available_parallelism().map_or(0, usize::from),
        std::env::var("STOCKLET_BENCH_SCALE").unwrap_or_else(|_| "1".into()),
    );
    println!(
        "stream {} (file storage, allow_direct, allow_atomic), event payload {} bytes\n",
        stream.name,
        payload.len()
    );

    let mut figures = Vec::new();
    let prefix = stream.subject_prefix.clone();

    // Warm-up: connections, stream files, allocator.
    progress("warming up");
    {
        let subjects: Vec<String> = (0..8).map(|k| format!("{prefix}.raw.warm-{k}")).collect();
        raw_sequential(&js, &subjects, &payload, scaled(200, 20)).await;
        append_sequential(&repo, &ids("warm", 8), scaled(200, 20)).await;
    }

    // 1. Sequential: short rounds, the order of the three rotating each round.
    let rounds = scaled(21, 5) | 1;
    let ops = scaled(150, 30);
    let aggregates_per_round = 16;
    progress(format!(
        "sequential: {rounds} rounds x {ops} ops per variant"
    ));
    let (mut raw_rates, mut append_rates, mut execute_rates) = (Vec::new(), Vec::new(), Vec::new());
    let mut checked_rates = Vec::new();
    let (mut append_pairs, mut execute_pairs, mut checked_pairs) =
        (Vec::new(), Vec::new(), Vec::new());
    let (mut raw_lat, mut append_lat, mut execute_lat) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let subjects: Vec<String> = (0..aggregates_per_round)
            .map(|k| format!("{prefix}.raw.seq{round}-{k}"))
            .collect();
        let checked_subjects: Vec<String> = (0..aggregates_per_round)
            .map(|k| format!("{prefix}.raw.chk{round}-{k}"))
            .collect();
        let append_ids = ids(&format!("seq{round}"), aggregates_per_round);
        // At most ten events per aggregate, so each execute loads a short history.
        let execute_ids = ids(&format!("exe{round}"), ops.div_ceil(10));
        let (mut raw, mut checked, mut append, mut execute) = (None, None, None, None);
        for step in 0..4 {
            match (step + round) % 4 {
                0 => raw = Some(raw_sequential(&js, &subjects, &payload, ops).await),
                1 => append = Some(append_sequential(&repo, &append_ids, ops).await),
                2 => {
                    checked =
                        Some(raw_checked_sequential(&js, &checked_subjects, &payload, ops).await);
                }
                _ => execute = Some(execute_sequential(&repo, &execute_ids, ops).await),
            }
        }
        let (raw, checked) = (raw.unwrap(), checked.unwrap());
        let (append, execute) = (append.unwrap(), execute.unwrap());
        progress(format!(
            "  round {round}: raw {:.0}/s, raw checked {:.0}/s, append {:.0}/s, execute {:.0}/s",
            raw.rate(),
            checked.rate(),
            append.rate(),
            execute.rate()
        ));
        checked_rates.push(checked.rate());
        checked_pairs.push(checked.rate() / raw.rate());
        raw_rates.push(raw.rate());
        append_rates.push(append.rate());
        execute_rates.push(execute.rate());
        append_pairs.push(append.rate() / raw.rate());
        execute_pairs.push(execute.rate() / raw.rate());
        raw_lat.extend(raw.latencies);
        append_lat.extend(append.latencies);
        execute_lat.extend(execute.latencies);
    }
    let latency_note = |lat: &[Duration]| {
        format!(
            "p50 {:.0} us, p99 {:.0} us",
            percentile_us(lat, 0.5),
            percentile_us(lat, 0.99)
        )
    };
    let raw_seq = Figure::new("raw_publish_seq", median(&raw_rates), "ops/s")
        .note(format!("publish + ack, {}", latency_note(&raw_lat)));
    let checked_seq = Figure::new("raw_publish_checked_seq", median(&checked_rates), "ops/s")
        .against(&raw_seq)
        .paired(&checked_pairs)
        .note("raw publish + Nats-Msg-Id + expected last subject sequence");
    let append_seq = Figure::new("append_seq", median(&append_rates), "ops/s")
        .against(&raw_seq)
        .paired(&append_pairs)
        .target(Target::MinRatio(0.9))
        .note(format!(
            "JetStreamEventStore::append, {}; {:.3}x raw_publish_checked_seq",
            latency_note(&append_lat),
            median(&append_rates) / checked_seq.value
        ));
    let execute_seq = Figure::new("execute_seq", median(&execute_rates), "ops/s")
        .against(&raw_seq)
        .paired(&execute_pairs)
        .note(format!(
            "Repository::execute (load <=10 events + append), {}",
            latency_note(&execute_lat)
        ));
    figures.extend([raw_seq, checked_seq, append_seq, execute_seq]);

    // 2. Pipelined.
    let inflight = 64;
    let rounds = scaled(7, 3) | 1;
    let ops = scaled(1280, 256);
    progress(format!(
        "pipelined: {rounds} rounds x {ops} ops per variant, {inflight} in flight"
    ));
    let (mut raw_rates, mut append_rates, mut pairs) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let tag = format!("pipe{round}");
        let (raw, append) = if round % 2 == 0 {
            let raw = raw_pipelined(&js, &prefix, &tag, &payload, inflight, ops).await;
            (raw, append_pipelined(&repo, &tag, inflight, ops).await)
        } else {
            let append = append_pipelined(&repo, &tag, inflight, ops).await;
            (
                raw_pipelined(&js, &prefix, &tag, &payload, inflight, ops).await,
                append,
            )
        };
        progress(format!(
            "  round {round}: raw {:.0}/s, append {:.0}/s",
            raw.rate(),
            append.rate()
        ));
        raw_rates.push(raw.rate());
        append_rates.push(append.rate());
        pairs.push(append.rate() / raw.rate());
    }
    let raw_pipe = Figure::new("raw_publish_pipelined", median(&raw_rates), "ops/s").note(format!(
        "{inflight} acks in flight, {} subjects",
        inflight * SUBJECTS_PER_WORKER
    ));
    let append_pipe = Figure::new("append_pipelined", median(&append_rates), "ops/s")
        .against(&raw_pipe)
        .paired(&pairs)
        .target(Target::MinRatio(0.8))
        .note(format!(
            "{inflight} concurrent appends, {} aggregates",
            inflight * SUBJECTS_PER_WORKER
        ));
    figures.extend([raw_pipe, append_pipe]);

    // 3. Load, each es-core load next to a raw batch direct get of the same
    // subject. The aggregates are written concurrently, so their events are
    // interleaved in the stream as in production.
    for (size, aggregates, loads) in [
        (10, scaled(20, 2), scaled(300, 20)),
        (100, scaled(20, 2), scaled(200, 20)),
        (1000, scaled(6, 1), scaled(30, 6)),
    ] {
        progress(format!(
            "load: writing {aggregates} aggregates x {size} events"
        ));
        let load_ids = ids(&format!("load{size}"), aggregates);
        populate(&repo, &load_ids, size, 64).await;
        progress(format!(
            "load: {loads} loads of {size} events, each also raw"
        ));
        let (mut raw, mut es) = (Vec::with_capacity(loads), Vec::with_capacity(loads));
        for i in 0..loads {
            let id = &load_ids[i % aggregates];
            let subject = repo.subject(id);
            for step in 0..2 {
                let t = Instant::now();
                if (step + i) % 2 == 0 {
                    let count = raw_direct_get(&client, &stream.name, &subject).await;
                    raw.push(t.elapsed());
                    assert_eq!(count, size);
                } else {
                    let loaded = repo.load(id).await.unwrap();
                    es.push(t.elapsed());
                    assert_eq!(loaded.state.entries, size as u64);
                    assert_eq!(loaded.state.balance_cents, 100 * size as i64);
                }
            }
        }
        let raw_p50 = Figure::new(
            format!("raw_direct_get_{size}_p50"),
            percentile_us(&raw, 0.5),
            "us",
        )
        .note("batch direct get, replies counted, not decoded");
        let raw_p99 = Figure::new(
            format!("raw_direct_get_{size}_p99"),
            percentile_us(&raw, 0.99),
            "us",
        );
        let mut load_p50 = Figure::new(format!("load_{size}_p50"), percentile_us(&es, 0.5), "us")
            .against(&raw_p50)
            .note(format!("Repository::load of {size} events, {loads} loads"));
        if size == 100 {
            load_p50 = load_p50.target(Target::Below(2000.0));
        }
        let load_p99 = Figure::new(format!("load_{size}_p99"), percentile_us(&es, 0.99), "us")
            .against(&raw_p99);

        // The same aggregates with snapshots every SNAPSHOT_EVERY events: a
        // load is one snapshot get plus the tail since it (here half an
        // interval, the average).
        let mut snapshot_figures = Vec::new();
        if size >= SNAPSHOT_EVERY {
            let snapshots = SnapshotStore::ensure(client.clone(), 1).await.unwrap();
            let snapshotting = repo
                .clone()
                .with_snapshots(snapshots.clone(), SNAPSHOT_EVERY);
            let tail = SNAPSHOT_EVERY / 2;
            for id in &load_ids {
                let taken = snapshotting
                    .execute(
                        id,
                        &Deposit { amount_cents: 100 },
                        &CommandContext::default(),
                    )
                    .await
                    .unwrap();
                while snapshots
                    .get(Ledger::TYPE, id.as_str())
                    .await
                    .unwrap()
                    .is_none_or(|s| s.sequence < taken.position)
                {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                for _ in 0..tail {
                    repo.execute(
                        id,
                        &Deposit { amount_cents: 100 },
                        &CommandContext::default(),
                    )
                    .await
                    .unwrap();
                }
            }
            let mut snap = Vec::with_capacity(loads);
            for i in 0..loads {
                let t = Instant::now();
                let loaded = snapshotting.load(&load_ids[i % aggregates]).await.unwrap();
                snap.push(t.elapsed());
                assert_eq!(loaded.state.entries, (size + 1 + tail) as u64);
                assert_eq!(loaded.history.len(), tail);
            }
            let mut snap_p50 = Figure::new(
                format!("load_{size}_snapshot_p50"),
                percentile_us(&snap, 0.5),
                "us",
            )
            .against(&load_p50)
            .note(format!(
                "snapshot every {SNAPSHOT_EVERY} events: snapshot + {tail}-event tail"
            ));
            if size == 100 {
                snap_p50 = snap_p50.target(Target::Below(2000.0));
            }
            snapshot_figures.push(snap_p50);
        }
        figures.extend([raw_p50, raw_p99, load_p50, load_p99]);
        figures.extend(snapshot_figures);
    }

    // 4. Projection catch-up, on its own stream with the ORDER settings. Each
    // round a new projection (own checkpoint and durable consumer) catches up
    // from sequence 1 into the truncated table, next to a raw consumer with
    // the runner's settings that does no database work.
    let mut config = StreamDefinition::new("ORDER", "order").config().clone();
    config.name = "BENCH_PROJECTION".into();
    config.subjects = vec!["benchproj.>".into()];
    config.description = Some("es-core bench: projection catch-up".into());
    js.create_stream(config).await.unwrap();
    let projection_stream = StreamRef::new("BENCH_PROJECTION", "benchproj");
    let projection_repo: Repo = Repository::new(store.clone(), projection_stream.clone());
    let events_each = 100;
    let aggregates = scaled(500, 10);
    progress(format!(
        "projection: writing {aggregates} aggregates x {events_each} events"
    ));
    let write_start = Instant::now();
    let budget = Duration::from_secs(45);
    let events = populate_within(
        &projection_repo,
        &ids("proj", aggregates),
        events_each,
        256,
        budget,
    )
    .await;
    if events < aggregates * events_each {
        progress(format!(
            "projection: the write budget of {budget:?} ran out after {events} events"
        ));
    }
    let write_rate = events as f64 / write_start.elapsed().as_secs_f64();
    sqlx::query(CREATE_ENTRIES).execute(&db.pool).await.unwrap();
    let batch_size = ProjectionConfig::default().batch_size;
    let rounds = scaled(3, 1);
    let (mut raw_rates, mut runner_rates, mut pairs) = (Vec::new(), Vec::new(), Vec::new());
    let (mut batches, mut applied) = (0, 0);
    for round in 0..rounds {
        let mut raw_rate = 0.0;
        let mut runner_rate = 0.0;
        for step in 0..2 {
            if (step + round) % 2 == 0 {
                let elapsed = raw_consume(
                    &js,
                    &projection_stream.name,
                    &format!("bench_raw_{round}"),
                    batch_size,
                    events,
                )
                .await;
                raw_rate = events as f64 / elapsed.as_secs_f64();
            } else {
                sqlx::query("TRUNCATE bench_ledger_entries")
                    .execute(&db.pool)
                    .await
                    .unwrap();
                let runner = ProjectionRunner::new(
                    LedgerEntries::new(format!("bench_ledger_{round}")),
                    db.pool.clone(),
                    store.clone(),
                    projection_stream.clone(),
                    ProjectionConfig::default(),
                );
                let start = Instant::now();
                let checkpoint = runner.catch_up(false).await.unwrap();
                runner_rate = events as f64 / start.elapsed().as_secs_f64();
                let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM bench_ledger_entries")
                    .fetch_one(&db.pool)
                    .await
                    .unwrap();
                assert_eq!(rows, events as i64);
                assert_eq!(checkpoint, events as u64);
                batches += runner.projection().batches.load(Ordering::Relaxed);
                applied += runner.projection().events.load(Ordering::Relaxed);
            }
        }
        progress(format!(
            "  round {round}: raw consume {raw_rate:.0}/s, catch-up {runner_rate:.0}/s"
        ));
        raw_rates.push(raw_rate);
        runner_rates.push(runner_rate);
        pairs.push(runner_rate / raw_rate);
    }
    let raw_consume_figure = Figure::new("raw_consume", median(&raw_rates), "events/s").note(
        format!("pull consumer, ack all, max_ack_pending {batch_size}, no database"),
    );
    let catch_up_figure = Figure::new("projection_catch_up", median(&runner_rates), "events/s")
        .against(&raw_consume_figure)
        .paired(&pairs)
        .target(Target::Min(20_000.0))
        .note(format!(
            "ProjectionRunner::catch_up of {events} events; {:.0} events per transaction (batch_size {batch_size})",
            applied as f64 / batches.max(1) as f64,
        ));
    figures.extend([raw_consume_figure, catch_up_figure]);
    figures.push(
        Figure::new("projection_prepublish", write_rate, "ops/s")
            .note("setup: es-core appends, 256 aggregates in flight"),
    );

    // Report.
    println!(
        "{:<24} {:>9} {:<8} {:<24} {:>6} {:>6} {:<19} {:<6} notes",
        "figure", "value", "unit", "baseline", "ratio", "paired", "target", "result"
    );
    println!("{}", "-".repeat(140));
    for figure in &figures {
        println!(
            "{:<24} {:>9.0} {:<8} {:<24} {:>6} {:>6} {:<19} {:<6} {}",
            figure.bench,
            figure.value,
            figure.unit,
            figure
                .baseline
                .as_ref()
                .map_or("", |(name, _)| name.as_str()),
            figure.ratio().map_or(String::new(), |r| format!("{r:.3}")),
            figure
                .paired_ratio
                .map_or(String::new(), |r| format!("{r:.3}")),
            figure.target_text().unwrap_or_default(),
            match figure.pass() {
                Some(true) => "PASS",
                Some(false) => "FAIL",
                None => "",
            },
            figure.note
        );
    }
    println!();
    for figure in &figures {
        if let (Some(target), Some(pass)) = (figure.target_text(), figure.pass()) {
            let measured = match figure.target {
                Some(Target::MinRatio(_)) => {
                    format!("{:.3}x", figure.ratio().unwrap_or(f64::NAN))
                }
                _ => format!("{:.0} {}", figure.value, figure.unit),
            };
            println!(
                "{} {}: {measured} (target {target})",
                if pass { "PASS" } else { "FAIL" },
                figure.bench,
            );
        }
    }
    println!();
    for figure in &figures {
        println!("{}", figure.json());
    }
    progress(format!("done in {:.1} s", started.elapsed().as_secs_f64()));
    drop(client);
    drop(nats);
    drop(db);
}
