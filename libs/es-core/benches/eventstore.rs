//! Event-store benchmark: `make bench` (`cargo bench -p es-core --bench eventstore`).
//!
//! It measures what es-core adds on top of NATS JetStream, on real
//! infrastructure: a private `nats-server` running the project's shipped
//! `nats/nats-server.conf` (so `sync_interval: always`: every ack means the
//! write was fsynced) and a fresh PostgreSQL database, both from
//! `stocklet-test-support`.
//!
//! Figures:
//! - **Sequential append**: raw `publish(..).await?.await?` (same payload, no
//!   headers) against [`JetStreamEventStore::append`] of one event with the
//!   concurrency check (`expected_sequence` tracked from the previous ack),
//!   and against [`Repository::execute`] (load + decide + append) on
//!   aggregates of at most ten events.
//! - **Pipelined append**: 64 publishes in flight over 256 subjects, against
//!   64 concurrent es-core appends over 256 aggregates, each with its own
//!   expected sequence.
//! - **Load**: [`Repository::load`] (batch direct get, decode, fold) of
//!   aggregates with 10, 100 and 1,000 events, p50 and p99.
//! - **Projection catch-up**: a [`ProjectionRunner`] whose projection inserts
//!   each batch with one `INSERT .. SELECT * FROM UNNEST(..)` in the runner's
//!   transaction, timed over `catch_up` of a pre-published stream.
//!
//! The machine is small and noisy (two cores shared by client, nats-server and
//! PostgreSQL), so absolute numbers drift from run to run. What is meant to be
//! stable is the *ratio* of es-core to raw JetStream: both are measured side by
//! side in one run, in alternating rounds (raw/es-core, then es-core/raw, ...)
//! against the same server and stream, and each figure is the median over the
//! rounds, so noise hits both alike.
//!
//! Output: a table, PASS/FAIL per target (the exit code stays 0), then one JSON
//! object per figure per line on stdout. Progress goes to stderr.
//! `STOCKLET_BENCH_SCALE` (default 1.0) scales every count.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use bytes::Bytes;
use es_core::projection::{Projection, ProjectionConfig, ProjectionError, ProjectionRunner};
use es_core::store::StoredEvent;
use es_core::streams::{StreamDefinition, definitions};
use es_core::{
    Aggregate, AggregateId, CommandContext, DomainEvent, EventStore as _, JetStreamEventStore,
    Repository, StreamRef,
};
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

    fn json(&self) -> serde_json::Value {
        let mut object = json!({
            "bench": self.bench,
            "value": round(self.value),
            "unit": self.unit,
        });
        if let Some((name, value)) = &self.baseline {
            object["baseline"] = json!(name);
            object["baseline_value"] = json!(round(*value));
            object["ratio"] = json!((self.ratio().unwrap_or(f64::NAN) * 1000.0).round() / 1000.0);
        }
        if let (Some(target), Some(pass)) = (self.target_text(), self.pass()) {
            object["target"] = json!(target);
            object["pass"] = json!(pass);
        }
        object
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
#[derive(Default)]
struct LedgerEntries {
    batches: AtomicU64,
    events: AtomicU64,
}

impl Projection for LedgerEntries {
    fn name(&self) -> &str {
        "bench_ledger_entries"
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        let mut sequences = Vec::with_capacity(events.len());
        let mut event_ids = Vec::with_capacity(events.len());
        let mut aggregate_ids = Vec::with_capacity(events.len());
        let mut amounts = Vec::with_capacity(events.len());
        let mut timestamps = Vec::with_capacity(events.len());
        for stored in events {
            let LedgerEvent::Deposited(deposit) = LedgerEvent::decode(&stored.raw)?;
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

// EXPERIMENT-BEGIN (temporary)
async fn raw_headers(
    js: &jetstream::Context,
    subjects: &[String],
    payload: &Bytes,
    ops: usize,
    envelope: bool,
    msg_id: bool,
    expected: bool,
) -> Run {
    use async_nats::{HeaderMap, header};
    let mut last = vec![0u64; subjects.len()];
    let mut latencies = Vec::with_capacity(ops);
    let start = Instant::now();
    for i in 0..ops {
        let k = i % subjects.len();
        let t = Instant::now();
        let mut headers = HeaderMap::new();
        if envelope {
            headers.insert(
                "Stocklet-Event-Id",
                uuid::Uuid::now_v7().to_string().as_str(),
            );
            headers.insert("Stocklet-Event-Type", "stocklet.bench.v1.Deposited");
            headers.insert("Stocklet-Schema-Version", "1");
            headers.insert("Stocklet-Aggregate-Type", "ledger");
            headers.insert("Stocklet-Aggregate-Id", "exp-aggregate-0000");
            headers.insert("Stocklet-Timestamp", "1764000000000");
        }
        if msg_id {
            headers.insert(
                header::NATS_MESSAGE_ID,
                uuid::Uuid::now_v7().to_string().as_str(),
            );
        }
        if expected {
            headers.insert(
                header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
                last[k].to_string().as_str(),
            );
        }
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

async fn raw_direct_get(client: &async_nats::Client, stream: &str, subject: &str) -> usize {
    use futures::StreamExt;
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

async fn experiments(
    client: &async_nats::Client,
    js: &jetstream::Context,
    repo: &Repo,
    payload: &Bytes,
) {
    let prefix = repo.stream().subject_prefix.clone();
    // Warm-up
    let subjects: Vec<String> = (0..16).map(|k| format!("{prefix}.raw.xwarm-{k}")).collect();
    raw_sequential(js, &subjects, payload, 300).await;
    append_sequential(repo, &ids("xwarm", 16), 300).await;
    let variants = [
        "raw",
        "raw+env",
        "raw+msgid",
        "raw+expected",
        "raw+env+msgid+expected",
        "es-core append",
    ];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut lats: Vec<Vec<Duration>> = vec![Vec::new(); variants.len()];
    for round in 0..9 {
        for step in 0..variants.len() {
            let v = (step + round) % variants.len();
            let subjects: Vec<String> = (0..16)
                .map(|k| format!("{prefix}.raw.x{round}v{v}-{k}"))
                .collect();
            let run = match v {
                0 => raw_sequential(js, &subjects, payload, 500).await,
                1 => raw_headers(js, &subjects, payload, 500, true, false, false).await,
                2 => raw_headers(js, &subjects, payload, 500, false, true, false).await,
                3 => raw_headers(js, &subjects, payload, 500, false, false, true).await,
                4 => raw_headers(js, &subjects, payload, 500, true, true, true).await,
                _ => append_sequential(repo, &ids(&format!("x{round}"), 16), 500).await,
            };
            rates[v].push(run.rate());
            lats[v].extend(run.latencies);
        }
    }
    for (v, name) in variants.iter().enumerate() {
        println!(
            "EXP seq {name:<26} median {:>6.0}/s  p50 {:>5.0} us p99 {:>5.0} us  rounds {:?}",
            median(&rates[v]),
            percentile_us(&lats[v], 0.5),
            percentile_us(&lats[v], 0.99),
            rates[v]
                .iter()
                .map(|r| r.round() as i64)
                .collect::<Vec<_>>()
        );
    }
    // Loads: interleaved (20 aggregates written concurrently) vs contiguous (one at a time).
    for (label, concurrent) in [("interleaved", 20usize), ("contiguous", 1)] {
        for size in [10usize, 100, 1000] {
            let n = if size == 1000 { 4 } else { 10 };
            let agg = ids(&format!("xl{label}{size}"), n);
            populate(repo, &agg, size, concurrent).await;
            let mut raw = Vec::new();
            let mut es = Vec::new();
            let loads = if size == 1000 { 40 } else { 200 };
            for i in 0..loads {
                let id = &agg[i % n];
                let subject = repo.subject(id);
                let t = Instant::now();
                let c = raw_direct_get(client, &repo.stream().name, &subject).await;
                raw.push(t.elapsed());
                assert_eq!(c, size);
                let t = Instant::now();
                let loaded = repo.load(id).await.unwrap();
                es.push(t.elapsed());
                assert_eq!(loaded.history.len(), size);
            }
            println!(
                "EXP load {label:<12} {size:>5}: raw direct get p50 {:>7.0} us p99 {:>7.0} | es-core load p50 {:>7.0} us p99 {:>7.0}",
                percentile_us(&raw, 0.5),
                percentile_us(&raw, 0.99),
                percentile_us(&es, 0.5),
                percentile_us(&es, 0.99)
            );
        }
    }
}
// EXPERIMENT-END

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
    let stream = StreamDefinition::from_json(definitions::ORDER)
        .unwrap()
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

    if std::env::var_os("STOCKLET_BENCH_EXPERIMENT").is_some() {
        experiments(&client, &js, &repo, &payload).await;
        return;
    }
    let mut figures = Vec::new();
    let prefix = stream.subject_prefix.clone();

    // Warm-up: connections, stream files, allocator.
    progress("warming up");
    {
        let subjects: Vec<String> = (0..8).map(|k| format!("{prefix}.raw.warm-{k}")).collect();
        raw_sequential(&js, &subjects, &payload, scaled(200, 20)).await;
        append_sequential(&repo, &ids("warm", 8), scaled(200, 20)).await;
    }

    // 1. Sequential.
    let rounds = scaled(7, 3) | 1;
    let ops = scaled(500, 50);
    let aggregates_per_round = 16;
    progress(format!(
        "sequential: {rounds} rounds x {ops} ops per variant"
    ));
    let (mut raw_rates, mut append_rates, mut execute_rates, mut pairs) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut raw_lat, mut append_lat, mut execute_lat) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let subjects: Vec<String> = (0..aggregates_per_round)
            .map(|k| format!("{prefix}.raw.seq{round}-{k}"))
            .collect();
        let append_ids = ids(&format!("seq{round}"), aggregates_per_round);
        // At most ten events per aggregate, so each execute loads a short history.
        let execute_ids = ids(&format!("exe{round}"), ops.div_ceil(10));
        let (mut raw, mut append, mut execute) = (None, None, None);
        for step in 0..3 {
            match (step + round) % 3 {
                0 => raw = Some(raw_sequential(&js, &subjects, &payload, ops).await),
                1 => append = Some(append_sequential(&repo, &append_ids, ops).await),
                _ => execute = Some(execute_sequential(&repo, &execute_ids, ops).await),
            }
        }
        let (raw, append, execute) = (raw.unwrap(), append.unwrap(), execute.unwrap());
        progress(format!(
            "  round {round}: raw {:.0}/s, append {:.0}/s, execute {:.0}/s",
            raw.rate(),
            append.rate(),
            execute.rate()
        ));
        raw_rates.push(raw.rate());
        append_rates.push(append.rate());
        execute_rates.push(execute.rate());
        pairs.push(append.rate() / raw.rate());
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
    let append_seq = Figure::new("append_seq", median(&append_rates), "ops/s")
        .against(&raw_seq)
        .target(Target::MinRatio(0.9))
        .note(format!(
            "JetStreamEventStore::append, {}; median paired ratio {:.3}",
            latency_note(&append_lat),
            median(&pairs)
        ));
    let execute_seq = Figure::new("execute_seq", median(&execute_rates), "ops/s")
        .against(&raw_seq)
        .note(format!(
            "Repository::execute (load <=10 events + append), {}",
            latency_note(&execute_lat)
        ));
    figures.extend([raw_seq, append_seq, execute_seq]);

    // 2. Pipelined.
    let inflight = 64;
    let rounds = scaled(5, 3) | 1;
    let ops = scaled(4000, 256);
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
        .target(Target::MinRatio(0.8))
        .note(format!(
            "{inflight} concurrent appends, {} aggregates; median paired ratio {:.3}",
            inflight * SUBJECTS_PER_WORKER,
            median(&pairs)
        ));
    figures.extend([raw_pipe, append_pipe]);

    // 3. Load.
    for (size, aggregates, loads) in [
        (10, scaled(20, 2), scaled(400, 20)),
        (100, scaled(20, 2), scaled(300, 20)),
        (1000, scaled(6, 1), scaled(60, 6)),
    ] {
        progress(format!(
            "load: writing {aggregates} aggregates x {size} events"
        ));
        let load_ids = ids(&format!("load{size}"), aggregates);
        populate(&repo, &load_ids, size, 64).await;
        progress(format!("load: {loads} loads of {size} events"));
        let mut latencies = Vec::with_capacity(loads);
        for i in 0..loads {
            let t = Instant::now();
            let loaded = repo.load(&load_ids[i % aggregates]).await.unwrap();
            latencies.push(t.elapsed());
            assert_eq!(loaded.state.entries, size as u64);
            assert_eq!(loaded.state.balance_cents, 100 * size as i64);
        }
        let p50 = percentile_us(&latencies, 0.5);
        let p99 = percentile_us(&latencies, 0.99);
        let mut p50_figure = Figure::new(format!("load_{size}_p50"), p50, "us")
            .note(format!("Repository::load of {size} events, {loads} loads"));
        if size == 100 {
            p50_figure = p50_figure.target(Target::Below(2000.0));
        }
        figures.push(p50_figure);
        figures.push(
            Figure::new(format!("load_{size}_p99"), p99, "us")
                .note(format!("Repository::load of {size} events")),
        );
    }

    // 4. Projection catch-up, on its own stream with the ORDER settings.
    let mut config = StreamDefinition::from_json(definitions::ORDER)
        .unwrap()
        .config()
        .clone();
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
    let events = populate(&projection_repo, &ids("proj", aggregates), events_each, 256).await;
    let write_rate = events as f64 / write_start.elapsed().as_secs_f64();
    sqlx::query(CREATE_ENTRIES).execute(&db.pool).await.unwrap();
    let runner = ProjectionRunner::new(
        LedgerEntries::default(),
        db.pool.clone(),
        store.clone(),
        projection_stream,
        ProjectionConfig::default(),
    );
    progress(format!("projection: catching up on {events} events"));
    let catch_up_start = Instant::now();
    let checkpoint = runner.catch_up(false).await.unwrap();
    let catch_up = catch_up_start.elapsed();
    let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM bench_ledger_entries")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(rows, events as i64);
    assert_eq!(checkpoint, events as u64);
    let batches = runner.projection().batches.load(Ordering::Relaxed);
    let applied = runner.projection().events.load(Ordering::Relaxed);
    figures.push(
        Figure::new(
            "projection_catch_up",
            events as f64 / catch_up.as_secs_f64(),
            "events/s",
        )
        .target(Target::Min(20_000.0))
        .note(format!(
            "{events} events in {:.2} s, {batches} transactions (avg {:.0} events), batch_size {}",
            catch_up.as_secs_f64(),
            applied as f64 / batches.max(1) as f64,
            ProjectionConfig::default().batch_size
        )),
    );
    figures.push(
        Figure::new("projection_prepublish", write_rate, "ops/s")
            .note("es-core appends, 256 aggregates in flight (setup, for reference)"),
    );

    // Report.
    println!(
        "{:<24} {:>12} {:<9} {:<22} {:>7} {:<18} {:<6} notes",
        "figure", "value", "unit", "baseline", "ratio", "target", "result"
    );
    println!("{}", "-".repeat(120));
    for figure in &figures {
        println!(
            "{:<24} {:>12.0} {:<9} {:<22} {:>7} {:<18} {:<6} {}",
            figure.bench,
            figure.value,
            figure.unit,
            figure
                .baseline
                .as_ref()
                .map_or("", |(name, _)| name.as_str()),
            figure.ratio().map_or(String::new(), |r| format!("{r:.3}")),
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
            println!(
                "{} {}: {:.3} {} (target {target})",
                if pass { "PASS" } else { "FAIL" },
                figure.bench,
                figure.ratio().unwrap_or(figure.value),
                if figure.ratio().is_some() {
                    "x"
                } else {
                    figure.unit
                },
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
