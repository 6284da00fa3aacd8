//! The repository: load, decide, append, with concurrency control and
//! idempotency done once for every aggregate.
//!
//! [`Repository::execute`] is the only write path. It loads the aggregate,
//! asks it to decide, and appends the events with the subject's last stream
//! sequence as the expected sequence. A lost race reloads and decides again,
//! a bounded number of times. A command with a dedupe key takes effect once:
//! the key is the `Nats-Msg-Id` (so the server drops a repeat inside its
//! duplicate window) and it is stored in the events' headers (so a repeat
//! long after the window is still recognised in the loaded history and
//! answered with the original outcome).

use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;

use tokio::sync::watch;

use tracing::Instrument;

use crate::aggregate::Aggregate;
use crate::envelope::{AggregateId, CommandContext, now_ms, record_trace_id};
use crate::event::{DomainEvent, Upcasters};
use crate::snapshot::{DedupeEntry, RECENT_KEYS, SnapshotRecord, SnapshotState, SnapshotStore};
use crate::store::{Appended, Commit, EventStore, NewEvent, Recorded, StoreError, StreamRef};

/// How hard [`Repository::execute`] tries before giving up.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts when the aggregate keeps changing under us.
    pub max_attempts: u32,
    /// Re-sends of one append whose ack timed out (same message id).
    pub max_publish_retries: u32,
}

impl RetryPolicy {
    /// Decides at most `attempts` times when the aggregate keeps changing
    /// (at least once).
    #[must_use]
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Re-sends one append whose ack timed out at most `resends` times.
    #[must_use]
    pub fn with_max_publish_retries(mut self, resends: u32) -> Self {
        self.max_publish_retries = resends;
        self
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 20,
            max_publish_retries: 3,
        }
    }
}

/// An aggregate as loaded from its history.
#[derive(Clone, Debug)]
pub struct Loaded<A: Aggregate> {
    /// Which instance.
    pub id: AggregateId,
    /// The fold of its events.
    pub state: A,
    /// Stream sequence of its last message; `0` when it has none.
    pub version: u64,
    /// Its events, oldest first: all of them, or those after the snapshot
    /// it was loaded from.
    pub history: Vec<Recorded<A::Event>>,
    /// Recent dedupe keys remembered by that snapshot.
    pub snapshot_keys: Vec<DedupeEntry>,
}

impl<A: Aggregate> Loaded<A> {
    /// Whether any event exists for this aggregate.
    pub fn exists(&self) -> bool {
        self.version > 0
    }

    /// The outcome of the earlier command with this dedupe key, if any.
    fn replay(&self, dedupe_key: &str) -> Option<Executed<A>> {
        let original: Vec<&Recorded<A::Event>> = self
            .history
            .iter()
            .filter(|r| r.meta.dedupe_key.as_deref() == Some(dedupe_key))
            .collect();
        if let Some(last) = original.last() {
            let position = last.meta.stream_sequence;
            return Some(Executed::new(
                original.into_iter().map(|r| r.event.clone()).collect(),
                position,
                self.state.clone(),
                true,
            ));
        }
        // Folded into a snapshot: the position is known, the events are not
        // kept.
        let entry = self.snapshot_keys.iter().find(|e| e.key == dedupe_key)?;
        Some(Executed::new(
            Vec::new(),
            entry.sequence,
            self.state.clone(),
            true,
        ))
    }

    /// The dedupe keys a new snapshot should remember, newest last.
    fn recent_keys(&self, new: Option<(&str, u64)>) -> Vec<DedupeEntry> {
        let mut keys = self.snapshot_keys.clone();
        let mut seen_in_history = None;
        for recorded in &self.history {
            if let Some(key) = &recorded.meta.dedupe_key
                && seen_in_history != Some((key.as_str(), recorded.meta.stream_sequence))
            {
                keys.push(DedupeEntry {
                    key: key.clone(),
                    sequence: recorded.meta.stream_sequence,
                });
                seen_in_history = Some((key.as_str(), recorded.meta.stream_sequence));
            }
        }
        if let Some((key, sequence)) = new {
            keys.push(DedupeEntry {
                key: key.to_owned(),
                sequence,
            });
        }
        let excess = keys.len().saturating_sub(RECENT_KEYS);
        keys.drain(..excess);
        keys
    }
}

/// What a command did.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Executed<A: Aggregate> {
    /// The events it recorded; for a replayed command, the ones the original
    /// recorded.
    pub events: Vec<A::Event>,
    /// Stream sequence of the commit (the aggregate's version when the
    /// command decided nothing). Queries wait for projections to reach it.
    pub position: u64,
    /// The aggregate's state afterwards.
    pub state: A,
    /// `true` when the dedupe key had been seen and nothing new was written.
    pub replayed: bool,
    /// How many times the command decided: 1 unless it lost races.
    pub attempts: u32,
    /// The snapshot this commit triggered, being written in the background.
    pub snapshot: Option<PendingSnapshot>,
}

impl<A: Aggregate> Executed<A> {
    fn after(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }

    fn new(events: Vec<A::Event>, position: u64, state: A, replayed: bool) -> Self {
        Self {
            events,
            position,
            state,
            replayed,
            attempts: 1,
            snapshot: None,
        }
    }
}

/// A snapshot being stored in the background after a commit. A command
/// never waits for its snapshot; whoever needs it stored (a test, a
/// benchmark, a shutdown) can.
#[derive(Clone, Debug)]
pub struct PendingSnapshot(watch::Receiver<Option<Result<(), String>>>);

impl PendingSnapshot {
    /// Waits until the snapshot is stored, or says why it was not.
    pub async fn wait(mut self) -> Result<(), String> {
        match self.0.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().unwrap_or(Ok(())),
            Err(_) => Err("the snapshot task ended without an outcome".into()),
        }
    }
}

/// A read model that a command can wait for, so that the caller's next
/// query reads its write. [`ProjectionRunner`](crate::projection::ProjectionRunner)
/// is one; anything that knows the last stream sequence it holds can be one
/// (see [read your writes](crate#read-your-writes) in the crate docs).
pub trait ReadModel: Send + Sync {
    /// Waits until the read model holds stream sequence `position`, at most
    /// `timeout`; says whether it got there.
    fn wait_for(&self, position: u64, timeout: Duration) -> impl Future<Output = bool> + Send;
}

/// What one attempt of a multi-aggregate command decided
/// (see [`Repository::execute_atomic`]).
#[derive(Clone, Debug)]
pub enum AtomicDecision<T> {
    /// Nothing to store: the work is done already, or is not this
    /// command's to do.
    Done(T),
    /// Store these commits together, all or none. Build each with
    /// [`Repository::commit`] from the version it was decided on.
    Commit {
        /// One commit per aggregate, all in the repository's stream.
        commits: Vec<Commit>,
        /// What the caller gets back once they are stored.
        outcome: T,
    },
}

/// What a multi-aggregate command did.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AtomicExecuted<T> {
    /// What the deciding attempt returned.
    pub outcome: T,
    /// Stream sequence of each stored commit, in order; empty for
    /// [`AtomicDecision::Done`].
    pub positions: Vec<u64>,
    /// How many times it decided.
    pub attempts: u32,
}

/// Why a command did not go through.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecuteError<E: std::error::Error + 'static> {
    /// The aggregate refused: a business rule.
    #[error(transparent)]
    Rejected(E),
    /// The aggregate kept changing under us; every attempt lost its race.
    #[error("concurrency conflict persisted after {attempts} attempts")]
    Conflict {
        /// How many times we tried.
        attempts: u32,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// When and how to snapshot aggregates of type `A`.
struct SnapshotPolicy<A> {
    store: SnapshotStore,
    every: usize,
    format_version: u32,
    encode: fn(&A) -> Vec<u8>,
    decode: fn(&[u8]) -> Option<A>,
}

impl<A> Clone for SnapshotPolicy<A> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            every: self.every,
            format_version: self.format_version,
            encode: self.encode,
            decode: self.decode,
        }
    }
}

impl<A> std::fmt::Debug for SnapshotPolicy<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SnapshotPolicy(every {} events)", self.every)
    }
}

/// Loads and changes aggregates of type `A` kept in `S`.
#[derive(Clone, Debug)]
pub struct Repository<A, S> {
    store: S,
    stream: StreamRef,
    upcasters: Upcasters,
    policy: RetryPolicy,
    snapshots: Option<SnapshotPolicy<A>>,
    aggregate: PhantomData<fn() -> A>,
}

impl<A: SnapshotState, S: EventStore> Repository<A, S> {
    /// Snapshots each aggregate once `every` events have followed its last
    /// snapshot, and loads from the snapshot (see [`crate::snapshot`]).
    pub fn with_snapshots(mut self, store: SnapshotStore, every: usize) -> Self {
        self.snapshots = Some(SnapshotPolicy {
            store,
            every: every.max(1),
            format_version: A::SNAPSHOT_VERSION,
            encode: A::to_snapshot,
            decode: A::from_snapshot,
        });
        self
    }
}

impl<A: Aggregate, S: EventStore> Repository<A, S> {
    /// A repository for aggregates of type `A` in `stream`.
    pub fn new(store: S, stream: StreamRef) -> Self {
        Self {
            store,
            stream,
            upcasters: Upcasters::default(),
            policy: RetryPolicy::default(),
            snapshots: None,
            aggregate: PhantomData,
        }
    }

    /// Upgrades old event versions on load with `upcasters`.
    pub fn with_upcasters(mut self, upcasters: Upcasters) -> Self {
        self.upcasters = upcasters;
        self
    }

    /// Replaces the retry policy.
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The stream this repository writes to.
    pub fn stream(&self) -> &StreamRef {
        &self.stream
    }

    /// The store behind this repository.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The subject of one aggregate instance.
    pub fn subject(&self, id: &AggregateId) -> String {
        self.stream.subject(A::TYPE, id.as_str())
    }

    /// Loads an aggregate by folding its whole history.
    pub async fn load(&self, id: &AggregateId) -> Result<Loaded<A>, StoreError> {
        let start = match &self.snapshots {
            Some(policy) => self.load_snapshot(policy, id).await,
            None => None,
        };
        let start = start.unwrap_or_else(|| Loaded {
            id: id.clone(),
            state: A::default(),
            version: 0,
            history: Vec::new(),
            snapshot_keys: Vec::new(),
        });
        self.refresh(start).await
    }

    /// The aggregate as its snapshot left it, if there is a usable one. A
    /// snapshot is a cache: any problem with it means a full load.
    async fn load_snapshot(
        &self,
        policy: &SnapshotPolicy<A>,
        id: &AggregateId,
    ) -> Option<Loaded<A>> {
        let record = match policy.store.get(A::TYPE, id.as_str()).await {
            Ok(record) => record?,
            Err(error) => {
                tracing::warn!(aggregate = A::TYPE, %id, %error, "snapshot unavailable; loading the full history");
                return None;
            }
        };
        if record.format_version != policy.format_version {
            return None;
        }
        Some(Loaded {
            id: id.clone(),
            state: (policy.decode)(&record.state)?,
            version: record.sequence,
            history: Vec::new(),
            snapshot_keys: record.recent_keys,
        })
    }

    /// Stores a snapshot of the state after a commit, when enough events
    /// have followed the last one. It runs in the background: a command
    /// never waits for, or fails because of, its snapshot.
    fn maybe_snapshot(
        &self,
        loaded: &Loaded<A>,
        state: &A,
        position: u64,
        new_events: usize,
        key: Option<&str>,
    ) -> Option<PendingSnapshot> {
        let policy = self.snapshots.as_ref()?;
        if loaded.history.len() + new_events < policy.every {
            return None;
        }
        let record = SnapshotRecord {
            format_version: policy.format_version,
            sequence: position,
            state: (policy.encode)(state).into(),
            recent_keys: loaded.recent_keys(key.map(|k| (k, position))),
        };
        let store = policy.store.clone();
        let id = loaded.id.clone();
        let (done, pending) = watch::channel(None);
        tokio::spawn(async move {
            let outcome = store.put(A::TYPE, id.as_str(), &record).await;
            if let Err(error) = &outcome {
                tracing::warn!(aggregate = A::TYPE, %id, %error, "could not store snapshot");
            }
            done.send_replace(Some(outcome.map_err(|e| e.to_string())));
        });
        Some(PendingSnapshot(pending))
    }

    /// Stores a snapshot of `loaded` (in the background) when `every` or
    /// more events have followed its last snapshot; `None` when none is due
    /// or snapshots are off.
    ///
    /// [`execute`](Self::execute) snapshots after its own commits. A write
    /// path that loads and commits by itself, such as the `decide` closure
    /// of [`execute_atomic`](Self::execute_atomic), calls this after its
    /// load, so that an aggregate changed only by atomic commands still
    /// loads from a snapshot plus a short tail. `loaded` must come from
    /// [`load`](Self::load) or [`refresh`](Self::refresh): its state is then
    /// exactly its version's, which is what the snapshot records.
    pub fn snapshot_if_due(&self, loaded: &Loaded<A>) -> Option<PendingSnapshot> {
        if loaded.version == 0 {
            return None;
        }
        self.maybe_snapshot(loaded, &loaded.state, loaded.version, 0, None)
    }

    /// Brings a loaded aggregate up to date by folding only the events
    /// appended since it was loaded: a lost race costs one small read.
    pub async fn refresh(&self, mut loaded: Loaded<A>) -> Result<Loaded<A>, StoreError> {
        let subject = self.subject(&loaded.id);
        let newer = self
            .store
            .load(&self.stream, &subject, loaded.version)
            .await?;
        for stored_event in newer {
            let raw = self
                .upcasters
                .apply(&stored_event.meta.aggregate_type, stored_event.raw)?;
            let event = A::Event::decode(&raw)?;
            loaded.state.apply(&event);
            loaded.version = stored_event.meta.stream_sequence;
            loaded.history.push(Recorded {
                meta: stored_event.meta,
                event,
            });
        }
        Ok(loaded)
    }

    /// Runs a command against an aggregate: load, decide, append, retrying
    /// lost races. A command whose dedupe key this aggregate has already
    /// seen writes nothing and returns the original outcome.
    ///
    /// Runs in a `command` span (a child of the caller's), whose trace
    /// context the events carry in their headers, and records
    /// `<prefix>_commands_total` and `<prefix>_command_duration_seconds` (see [`crate::metrics`]) by
    /// aggregate type and outcome.
    pub async fn execute(
        &self,
        id: &AggregateId,
        command: &A::Command,
        context: &CommandContext,
    ) -> Result<Executed<A>, ExecuteError<A::Error>> {
        let span = tracing::info_span!(
            "command",
            otel.name = format!("{} command", A::TYPE),
            aggregate_type = A::TYPE,
            aggregate_id = %id,
            trace_id = tracing::field::Empty,
        );
        record_trace_id(&span, context.traceparent.as_deref());
        let started = std::time::Instant::now();
        let result = self
            .execute_in_span(id, command, context)
            .instrument(span)
            .await;
        let outcome = match &result {
            Ok(executed) if executed.replayed => "replayed",
            Ok(_) => "executed",
            Err(ExecuteError::Rejected(_)) => "rejected",
            Err(ExecuteError::Conflict { .. }) => "conflict",
            Err(ExecuteError::Store(_)) => "failed",
        };
        crate::metrics::command(A::TYPE, outcome, started.elapsed().as_secs_f64());
        result
    }

    async fn execute_in_span(
        &self,
        id: &AggregateId,
        command: &A::Command,
        context: &CommandContext,
    ) -> Result<Executed<A>, ExecuteError<A::Error>> {
        let mut loaded = self.load(id).await?;
        let max_attempts = self.policy.max_attempts.max(1);
        for attempt in 1..=max_attempts {
            if let Some(key) = &context.dedupe_key
                && let Some(original) = loaded.replay(key)
            {
                return Ok(original.after(attempt));
            }
            let events = loaded
                .state
                .decide(command)
                .map_err(ExecuteError::Rejected)?;
            if events.is_empty() {
                return Ok(
                    Executed::new(events, loaded.version, loaded.state, false).after(attempt)
                );
            }
            let commit = self.commit(id, loaded.version, &events, context);
            let (appended, resent) = self.append(&commit).await;
            match appended {
                Ok(Appended {
                    duplicate: false,
                    sequence,
                }) => {
                    let mut state = loaded.state.clone();
                    for event in &events {
                        state.apply(event);
                    }
                    let snapshot = self.maybe_snapshot(
                        &loaded,
                        &state,
                        sequence,
                        events.len(),
                        context.dedupe_key.as_deref(),
                    );
                    let mut executed = Executed::new(events, sequence, state, false).after(attempt);
                    executed.snapshot = snapshot;
                    return Ok(executed);
                }
                // A plain conflict on the last attempt: our commit was sent
                // once and refused, and no twin can share its key, so there
                // is nothing to look up.
                Err(StoreError::Conflict { .. })
                    if attempt == max_attempts && !resent && context.dedupe_key.is_none() =>
                {
                    break;
                }
                // The server already holds this message id: either our own
                // earlier send whose ack we missed, or a concurrent twin of
                // this command. The history tells which outcome stands.
                Ok(Appended {
                    duplicate: true, ..
                })
                | Err(StoreError::Conflict { .. }) => {
                    loaded = self.refresh(loaded).await?;
                    if let Some(original) = find_commit(&loaded, &commit) {
                        return Ok(original.after(attempt));
                    }
                    if attempt < max_attempts {
                        tracing::debug!(subject = %commit.subject, attempt, "lost a race, deciding again");
                        backoff(attempt).await;
                    }
                }
                Err(other) => return Err(other.into()),
            }
        }
        Err(ExecuteError::Conflict {
            attempts: max_attempts,
        })
    }

    /// Runs a command like [`execute`](Self::execute), then waits (at most
    /// `timeout`) until `read_model` holds its commit, so that the caller's
    /// next query reads its write: the read-your-writes rule of an API.
    /// A read model still behind after `timeout` is logged and the command
    /// answers anyway: it is stored, only the view is late.
    ///
    /// The [crate docs](crate#read-your-writes) show it with an in-memory
    /// [`ReadModel`].
    pub async fn execute_and_wait(
        &self,
        id: &AggregateId,
        command: &A::Command,
        context: &CommandContext,
        read_model: &impl ReadModel,
        timeout: Duration,
    ) -> Result<Executed<A>, ExecuteError<A::Error>> {
        let executed = self.execute(id, command, context).await?;
        if !read_model.wait_for(executed.position, timeout).await {
            tracing::warn!(
                aggregate_type = A::TYPE,
                aggregate_id = %id,
                position = executed.position,
                "read model is lagging; answering before it caught up"
            );
        }
        Ok(executed)
    }

    /// Runs a command that spans several aggregates of this repository's
    /// stream (of any types), stored as one atomic batch: all of its
    /// commits or none (a decision that touches one aggregate after all is
    /// stored with a plain append). Each attempt calls `decide`, which loads what it
    /// needs (fresh each time), decides, and returns the commits with the
    /// versions they were decided on; a lost race on any of them (or an
    /// append in doubt) decides again, with the same bounded retries and
    /// backoff as [`execute`](Self::execute).
    ///
    /// An atomic batch carries no `Nats-Msg-Id` (JetStream refuses one), so
    /// idempotency is the decision's own: `decide` must recognise work that
    /// an earlier attempt or delivery already stored (from the state it
    /// loads) and answer [`AtomicDecision::Done`]. A retry after a timed-out
    /// batch relies on that too.
    ///
    /// Runs in a `command` span named after this repository's aggregate
    /// type (a child of the caller's), so the commits `decide` builds with
    /// [`commit`](Self::commit) name it as their writer.
    pub async fn execute_atomic<T, E, F, Fut>(
        &self,
        decide: F,
    ) -> Result<AtomicExecuted<T>, ExecuteError<E>>
    where
        E: std::error::Error + 'static,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<AtomicDecision<T>, ExecuteError<E>>>,
    {
        let span = tracing::info_span!(
            "command",
            otel.name = format!("{} atomic command", A::TYPE),
            aggregate_type = A::TYPE,
            atomic = true,
            trace_id = tracing::field::Empty,
        );
        record_trace_id(&span, None);
        self.execute_atomic_in_span(decide).instrument(span).await
    }

    async fn execute_atomic_in_span<T, E, F, Fut>(
        &self,
        mut decide: F,
    ) -> Result<AtomicExecuted<T>, ExecuteError<E>>
    where
        E: std::error::Error + 'static,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<AtomicDecision<T>, ExecuteError<E>>>,
    {
        let max_attempts = self.policy.max_attempts.max(1);
        for attempt in 1..=max_attempts {
            let (commits, outcome) = match decide().await? {
                AtomicDecision::Done(outcome) => {
                    return Ok(AtomicExecuted {
                        outcome,
                        positions: Vec::new(),
                        attempts: attempt,
                    });
                }
                AtomicDecision::Commit { commits, outcome } => (commits, outcome),
            };
            // One aggregate needs no batch: a plain append is several times
            // cheaper and checks the same expected sequence.
            let stored = match commits.as_slice() {
                [single] => self
                    .store
                    .append(&self.stream, single)
                    .await
                    .map(|appended| vec![appended.sequence]),
                several => self.store.append_atomic(&self.stream, several).await,
            };
            match stored {
                Ok(positions) => {
                    return Ok(AtomicExecuted {
                        outcome,
                        positions,
                        attempts: attempt,
                    });
                }
                Err(StoreError::Conflict { .. } | StoreError::Timeout)
                    if attempt < max_attempts =>
                {
                    tracing::debug!(stream = %self.stream.name, attempt, "atomic command lost a race or is in doubt; deciding again");
                    backoff(attempt).await;
                }
                Err(StoreError::Conflict { .. }) => break,
                Err(other) => return Err(other.into()),
            }
        }
        Err(ExecuteError::Conflict {
            attempts: max_attempts,
        })
    }

    /// Appends one commit, re-sending it with the same message id while the
    /// ack times out: the server's duplicate window makes that safe.
    /// Returns whether it was sent more than once.
    async fn append(&self, commit: &Commit) -> (Result<Appended, StoreError>, bool) {
        let mut resends = 0;
        loop {
            match self.store.append(&self.stream, commit).await {
                Err(StoreError::Timeout) if resends < self.policy.max_publish_retries => {
                    resends += 1;
                    tracing::warn!(subject = %commit.subject, resends, "append timed out; re-sending with the same message id");
                }
                result => return (result, resends > 0),
            }
        }
    }

    /// Builds the commit for `events` decided on version `expected`.
    pub fn commit(
        &self,
        id: &AggregateId,
        expected: u64,
        events: &[A::Event],
        context: &CommandContext,
    ) -> Commit {
        Commit {
            subject: self.subject(id),
            expected_sequence: expected,
            aggregate_type: A::TYPE.to_owned(),
            aggregate_id: id.to_string(),
            events: events
                .iter()
                .map(|event| NewEvent {
                    event_id: uuid::Uuid::now_v7().to_string(),
                    raw: event.to_raw(),
                })
                .collect(),
            // The span writing the commit is the events' parent.
            context: context.clone().with_current_trace(),
            timestamp_ms: now_ms(),
        }
    }
}

/// After a conflict or a duplicate ack: was this commit (or an earlier
/// command with its dedupe key) stored after all? `loaded` must be fresh.
fn find_commit<A: Aggregate>(loaded: &Loaded<A>, commit: &Commit) -> Option<Executed<A>> {
    if let Some(key) = &commit.context.dedupe_key {
        return loaded.replay(key);
    }
    let commit_id = commit.commit_id();
    let first = loaded
        .history
        .iter()
        .position(|r| r.meta.event_id == commit_id)?;
    let sequence = loaded.history[first].meta.stream_sequence;
    let events = loaded.history[first..]
        .iter()
        .take_while(|r| r.meta.stream_sequence == sequence)
        .map(|r| r.event.clone())
        .collect();
    Some(Executed::new(events, sequence, loaded.state.clone(), false))
}

/// A short, growing, jittered pause between attempts, so racing writers on a
/// hot aggregate spread out instead of colliding again.
async fn backoff(attempt: u32) {
    let spread = 500 * u64::from(attempt.min(8));
    let jitter = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos(),
    ) % spread.max(1);
    let micros = 100 + jitter;
    tokio::time::sleep(Duration::from_micros(micros)).await;
}
