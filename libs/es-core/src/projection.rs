//! Projections: durable consumers that build PostgreSQL read models.
//!
//! A [`ProjectionRunner`] pulls a stream through a durable consumer and hands
//! events to a [`Projection`] in batches. Each batch is applied in one
//! transaction that also moves the projection's checkpoint (the stream
//! sequence of the last event applied). Because the checkpoint and the rows
//! commit together, a crash between the commit and the ack can only cause a
//! redelivery, and the redelivered events are skipped by the checkpoint:
//! every event is applied exactly once.
//!
//! - When it is behind, it applies up to `batch_size` events per transaction.
//! - Events are applied in stream order, always. A durable consumer does not
//!   promise that order after a redelivery: a crashed instance's unacked
//!   messages come back later than newer ones. So a batch that starts past
//!   `checkpoint + 1` first reads the missing range straight from the stream
//!   (a batch direct get) and applies it, in the same transaction. The
//!   projection consumes its whole stream, so "missing" is well defined.
//! - The checkpoint row is locked for the transaction, so instances that
//!   share the durable consumer serialise their batches, and one that got a
//!   batch the other already applied skips it.
//! - A failure to reach PostgreSQL or NATS is retried forever with backoff,
//!   and never ends the runner: a running service's read models catch up by
//!   themselves once the database is back. Any other failure has its own
//!   budget: it is retried a few times, then the batch (with any gap it
//!   filled) is applied one stream sequence at a time, and exactly the
//!   event that keeps failing goes to the dead-letter stream while every
//!   good event is applied, so one poison event cannot stop a read model.
//! - While a batch is being applied (or retried), the runner tells the
//!   server it is in progress, so the ack wait can be short and a killed
//!   instance's batch comes back to another quickly.
//! - [`ProjectionRunner::rebuild`] resets the read model and replays the
//!   stream from sequence 1. A read model that is behind its consumer (for
//!   example after its tables were dropped) is detected at start and the
//!   consumer is recreated from the checkpoint.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, message::Message};
use sqlx::{PgConnection, PgPool};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::consumer::{
    Deliveries, decode_delivery, decode_wanted, event_span, keep_alive, pause, record_delivery,
};
use crate::deadletter;
use crate::event::{DecodeError, EventSet, Upcasters};
use crate::jetstream::JetStreamEventStore;
use crate::repository::ReadModel;
use crate::store::{EventStore as _, Recorded, StoreError, StreamRef};

/// A read model built from one stream.
pub trait Projection: Send + Sync + 'static {
    /// The events it shows. The runner skips every other event of the
    /// stream (still moving the checkpoint past it) and hands
    /// [`apply`](Self::apply) only these, decoded.
    type Event: EventSet;

    /// Unique name: the durable consumer's name and the checkpoint's key.
    fn name(&self) -> &str;

    /// Applies events, in stream order, inside the runner's transaction.
    fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[Recorded<Self::Event>],
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send;

    /// Deletes every row of the read model, before a rebuild.
    fn reset(
        &self,
        conn: &mut PgConnection,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
}

/// Why a projection could not apply events.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectionError {
    /// PostgreSQL failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// An event could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// NATS failed.
    #[error("nats: {0}")]
    Nats(String),
    /// Reading a gap from the stream failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The event contradicts the read model (a bug or a poison event).
    #[error("invalid event: {0}")]
    Invalid(String),
    /// A test asked the runner to die right after a commit, before the ack.
    #[error("injected crash after committing up to sequence {0}")]
    InjectedCrash(u64),
}

impl ProjectionError {
    /// Errors that say nothing about the event: retry them forever.
    fn is_transient(&self) -> bool {
        match self {
            Self::Database(error) => matches!(
                error,
                sqlx::Error::Io(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
            ),
            Self::Nats(_) => true,
            Self::Store(error) => !matches!(error, StoreError::Decode(_)),
            Self::Decode(_) | Self::Invalid(_) | Self::InjectedCrash(_) => false,
        }
    }
}

/// Tuning of a [`ProjectionRunner`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ProjectionConfig {
    /// Most events applied in one transaction.
    pub batch_size: usize,
    /// Attempts at a failing batch before isolating the poison event.
    pub max_attempts: u32,
    /// How long the server waits for an ack before redelivering.
    pub ack_wait: Duration,
}

impl ProjectionConfig {
    /// Applies at most `events` events per transaction.
    #[must_use]
    pub fn with_batch_size(mut self, events: usize) -> Self {
        self.batch_size = events;
        self
    }

    /// Isolates a poison event after `attempts` failed batches.
    #[must_use]
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Lets the server wait `ack_wait` for an ack before redelivering.
    #[must_use]
    pub fn with_ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }
}

impl Default for ProjectionConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            max_attempts: 5,
            ack_wait: Duration::from_secs(10),
        }
    }
}

/// Runs one [`Projection`] against one stream.
pub struct ProjectionRunner<P> {
    projection: Arc<P>,
    pool: PgPool,
    store: JetStreamEventStore,
    context: jetstream::Context,
    stream: StreamRef,
    config: ProjectionConfig,
    upcasters: Upcasters,
    position: watch::Sender<u64>,
    crash_after_commit: Option<u64>,
}

/// How long to wait for more events to fill a batch once one has arrived.
const BATCH_GATHER: Duration = Duration::from_millis(2);

/// Batches the server may deliver ahead of the one being applied, so it
/// keeps sending while a transaction commits. Order does not depend on it:
/// a batch that starts past the checkpoint reads the gap from the stream.
const BATCHES_IN_FLIGHT: usize = 4;

const CREATE_CHECKPOINTS: &str = "CREATE TABLE IF NOT EXISTS es_checkpoints (
    projection TEXT PRIMARY KEY,
    stream_sequence BIGINT NOT NULL DEFAULT 0 CHECK (stream_sequence >= 0),
    stream_created TEXT,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
)";

impl<P: Projection> ProjectionRunner<P> {
    /// A runner for `projection` over `stream`, writing through `pool`.
    pub fn new(
        projection: P,
        pool: PgPool,
        store: JetStreamEventStore,
        stream: StreamRef,
        config: ProjectionConfig,
    ) -> Self {
        Self {
            projection: Arc::new(projection),
            pool,
            context: store.context().clone(),
            store,
            stream,
            config,
            upcasters: Upcasters::default(),
            position: watch::Sender::new(0),
            crash_after_commit: None,
        }
    }

    /// Upgrades old event versions with `upcasters` before the projection
    /// sees them (and before events of other types are skipped, so an old
    /// type that became a wanted one is applied): the same chain the
    /// stream's repositories load with.
    #[must_use]
    pub fn with_upcasters(mut self, upcasters: Upcasters) -> Self {
        self.upcasters = upcasters;
        self
    }

    /// Fault injection for crash-safety tests (feature `fault-injection`):
    /// once a batch reaching `sequence` has committed, the runner stops with
    /// [`ProjectionError::InjectedCrash`] before acking it, as a process
    /// killed at that instant would.
    #[cfg(feature = "fault-injection")]
    pub fn crash_after_commit(mut self, sequence: u64) -> Self {
        self.crash_after_commit = Some(sequence);
        self
    }

    /// The last stream sequence this runner knows the read model holds.
    pub fn position(&self) -> u64 {
        *self.position.borrow()
    }

    /// Waits until the read model holds `sequence`, at most `timeout`, and
    /// says whether it got there: the read-your-writes wait (see
    /// [`Repository::execute_and_wait`](crate::Repository::execute_and_wait)).
    /// Watches this instance's progress and, since another instance sharing
    /// the durable consumer may have applied it, the shared checkpoint too.
    pub async fn wait_for(&self, sequence: u64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut position = self.position.subscribe();
        loop {
            if *position.borrow_and_update() >= sequence {
                return true;
            }
            // Bounded by the deadline too: with the database down, a query
            // waits for a connection far longer than a caller should.
            if let Ok(Ok(checkpoint)) = tokio::time::timeout_at(deadline, self.checkpoint()).await
                && checkpoint >= sequence
            {
                self.advance(checkpoint);
                return true;
            }
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining.is_zero() {
                return false;
            }
            let _ = tokio::time::timeout(
                remaining.min(Duration::from_millis(100)),
                position.changed(),
            )
            .await;
        }
    }

    /// The projection itself.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// The checkpoint stored in PostgreSQL.
    pub async fn checkpoint(&self) -> Result<u64, ProjectionError> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT stream_sequence FROM es_checkpoints WHERE projection = $1")
                .bind(self.projection.name())
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map_or(0, |(sequence,)| sequence.unsigned_abs()))
    }

    /// Events the consumer has not yet had acknowledged: the projection's lag.
    pub async fn lag(&self) -> Result<u64, ProjectionError> {
        let consumer: consumer::PullConsumer = self
            .context
            .get_consumer_from_stream(self.projection.name(), &self.stream.name)
            .await
            .map_err(|e| ProjectionError::Nats(e.to_string()))?;
        let info = consumer
            .get_info()
            .await
            .map_err(|e| ProjectionError::Nats(e.to_string()))?;
        Ok(info.num_pending + info.num_ack_pending as u64)
    }

    /// Creates the checkpoint table and row if missing.
    async fn prepare_checkpoint(&self) -> Result<u64, ProjectionError> {
        // Concurrent `CREATE TABLE IF NOT EXISTS` can still collide on the
        // catalog (a unique violation, or the table or its row type "already
        // exists"); the loser just tries again.
        for attempt in 0..5 {
            match sqlx::query(CREATE_CHECKPOINTS).execute(&self.pool).await {
                Ok(_) => break,
                Err(sqlx::Error::Database(e))
                    if matches!(e.code().as_deref(), Some("23505" | "42710" | "42P07"))
                        && attempt < 4 => {}
                Err(e) => return Err(e.into()),
            }
        }
        // Tables made by es-core before the stream's identity was kept. Only
        // then: ALTER TABLE locks the table against every batch.
        let (has_identity,): (bool,) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = 'es_checkpoints'
               AND column_name = 'stream_created')",
        )
        .fetch_one(&self.pool)
        .await?;
        if !has_identity {
            sqlx::query("ALTER TABLE es_checkpoints ADD COLUMN IF NOT EXISTS stream_created TEXT")
                .execute(&self.pool)
                .await?;
        }
        sqlx::query("INSERT INTO es_checkpoints (projection) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(self.projection.name())
            .execute(&self.pool)
            .await?;
        let checkpoint = self.checkpoint().await?;
        self.position.send_if_modified(|at| {
            let moved = checkpoint > *at;
            *at = (*at).max(checkpoint);
            moved
        });
        Ok(checkpoint)
    }

    /// The stream, and the checkpoint in it (see `follow_stream`).
    async fn current_checkpoint(
        &self,
    ) -> Result<(jetstream::stream::Stream, u64), ProjectionError> {
        self.prepare_checkpoint().await?;
        let nats = |e: &dyn std::fmt::Display| {
            ProjectionError::Nats(format!("stream {}: {e}", self.stream.name))
        };
        let mut stream = self
            .context
            .get_stream(&self.stream.name)
            .await
            .map_err(|e| nats(&e))?;
        let created = stream
            .info()
            .await
            .map_err(|e| nats(&e))?
            .created
            .unix_timestamp_nanos()
            .to_string();
        let checkpoint = self.follow_stream(&created).await?;
        Ok((stream, checkpoint))
    }

    /// The checkpoint, once it is known to count positions in the stream as
    /// it exists now (`created` is its creation time). A stream deleted and
    /// created again under the same name starts again at sequence 1, so a
    /// checkpoint kept from the old one would skip the new stream's first
    /// events: the read model is reset instead and rebuilt from the new
    /// stream. The checkpoint row's lock makes one instance do it.
    async fn follow_stream(&self, created: &str) -> Result<u64, ProjectionError> {
        let name = self.projection.name();
        let mut tx = self.pool.begin().await?;
        let (checkpoint, known): (i64, Option<String>) = sqlx::query_as(
            "SELECT stream_sequence, stream_created FROM es_checkpoints WHERE projection = $1 FOR UPDATE",
        )
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        let checkpoint = match known.as_deref() {
            Some(known) if known == created => checkpoint.unsigned_abs(),
            None => {
                sqlx::query("UPDATE es_checkpoints SET stream_created = $2 WHERE projection = $1")
                    .bind(name)
                    .bind(created)
                    .execute(&mut *tx)
                    .await?;
                checkpoint.unsigned_abs()
            }
            Some(_) => {
                tracing::warn!(
                    projection = name,
                    stream = %self.stream.name,
                    checkpoint,
                    "the stream was created again; rebuilding the read model from it"
                );
                self.projection.reset(&mut tx).await?;
                sqlx::query(
                    "UPDATE es_checkpoints SET stream_sequence = 0, stream_created = $2, updated_at = now() WHERE projection = $1",
                )
                .bind(name)
                .bind(created)
                .execute(&mut *tx)
                .await?;
                self.position.send_replace(0);
                0
            }
        };
        tx.commit().await?;
        Ok(checkpoint)
    }

    /// Creates the checkpoint and the durable consumer if missing, so that a
    /// service has them before it serves (and a deployment's init can
    /// provision them without consuming anything).
    pub async fn ensure_consumer(&self) -> Result<(), ProjectionError> {
        self.consumer().await.map(drop)
    }

    /// The durable consumer, created from the checkpoint when missing, and
    /// recreated when the read model is behind it.
    async fn consumer(&self) -> Result<consumer::PullConsumer, ProjectionError> {
        let (stream, checkpoint) = self.current_checkpoint().await?;
        let name = self.projection.name();
        let nats =
            |e: &dyn std::fmt::Display| ProjectionError::Nats(format!("consumer {name}: {e}"));
        if let Ok(existing) = stream.get_consumer::<consumer::pull::Config>(name).await {
            let info = existing.get_info().await.map_err(|e| nats(&e))?;
            if info.ack_floor.stream_sequence <= checkpoint {
                return Ok(existing);
            }
            tracing::warn!(
                projection = name,
                checkpoint,
                ack_floor = info.ack_floor.stream_sequence,
                "read model is behind its consumer; replaying from the checkpoint"
            );
            stream.delete_consumer(name).await.map_err(|e| nats(&e))?;
        }
        let deliver_policy = if checkpoint == 0 {
            consumer::DeliverPolicy::All
        } else {
            consumer::DeliverPolicy::ByStartSequence {
                start_sequence: checkpoint + 1,
            }
        };
        let in_flight = i64::try_from(self.config.batch_size.saturating_mul(BATCHES_IN_FLIGHT))
            .unwrap_or(i64::MAX);
        stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some(name.to_owned()),
                description: Some(format!("projection {name}")),
                deliver_policy,
                ack_policy: consumer::AckPolicy::All,
                ack_wait: self.config.ack_wait,
                // Retries happen in-process; redelivery only follows a
                // crash or a hang, and is still bounded.
                max_deliver: 1000,
                max_ack_pending: in_flight,
                ..Default::default()
            })
            .await
            .map_err(|e| nats(&e))
    }

    /// Applies events until `shutdown`: the projection's life in a service.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), ProjectionError> {
        self.consume(None, &shutdown, false).await.map(|_| ())
    }

    /// Applies every event stored now, then returns the checkpoint.
    pub async fn catch_up(&self, progress: bool) -> Result<u64, ProjectionError> {
        let info = self
            .context
            .get_stream(&self.stream.name)
            .await
            .map_err(|e| ProjectionError::Nats(e.to_string()))?
            .get_info()
            .await
            .map_err(|e| ProjectionError::Nats(e.to_string()))?;
        let target = info.state.last_sequence;
        self.consume(Some(target), &CancellationToken::new(), progress)
            .await
    }

    /// Drops the read model and replays the stream from sequence 1. Other
    /// instances' runners notice the new consumer and follow it.
    pub async fn rebuild(&self, progress: bool) -> Result<u64, ProjectionError> {
        self.prepare_checkpoint().await?;
        let mut tx = self.pool.begin().await?;
        self.projection.reset(&mut tx).await?;
        sqlx::query("UPDATE es_checkpoints SET stream_sequence = 0, updated_at = now() WHERE projection = $1")
            .bind(self.projection.name())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.position.send_replace(0);
        // The consumer's ack floor is now ahead of the checkpoint, so
        // `consumer()` recreates it from sequence 1.
        self.catch_up(progress).await
    }

    /// The consuming loop. With `until`, it returns once the checkpoint
    /// reaches that sequence.
    async fn consume(
        &self,
        until: Option<u64>,
        shutdown: &CancellationToken,
        progress: bool,
    ) -> Result<u64, ProjectionError> {
        let progress = progress && std::io::stderr().is_terminal();
        let mut failures = 0u32;
        let checkpoint = loop {
            match self.current_checkpoint().await {
                Ok((_, checkpoint)) => break checkpoint,
                // A running service waits for the database or NATS to come
                // back, however long that takes.
                Err(error) if error.is_transient() && until.is_none() => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(projection = self.projection.name(), %error, failures, "cannot read the checkpoint; retrying");
                    pause(failures, shutdown).await;
                    if shutdown.is_cancelled() {
                        return Ok(self.position());
                    }
                }
                Err(error) => return Err(error),
            }
        };
        if until.is_some_and(|target| checkpoint >= target) || shutdown.is_cancelled() {
            return Ok(checkpoint);
        }
        let mut deliveries =
            Deliveries::new(self.projection.name(), self.config.batch_size, || {
                self.consumer()
            });
        // A running service retries what may pass; a one-off catch-up or
        // rebuild reports it.
        let retry = |error: &ProjectionError| error.is_transient() && until.is_none();
        loop {
            let Some(first) = deliveries.next(shutdown, retry).await? else {
                return Ok(self.position());
            };
            // Gather a batch: whatever arrives within a couple of
            // milliseconds of the first event, up to the batch size. When
            // caught up this adds at most that to a read-your-writes wait;
            // when behind it fills whole batches.
            let mut batch = vec![first];
            let gather_until = tokio::time::Instant::now() + BATCH_GATHER;
            while batch.len() < self.config.batch_size {
                match deliveries.next_before(gather_until).await {
                    Some(message) => batch.push(message),
                    None => break,
                }
            }
            let applied = match batch.last() {
                Some(last) => {
                    keep_alive(
                        last,
                        self.config.ack_wait,
                        self.apply_with_retries(&batch, shutdown),
                    )
                    .await?
                }
                None => self.position(),
            };
            if progress && let Some(target) = until {
                let percent = applied.saturating_mul(100) / target.max(1);
                eprint!(
                    "\r{}: {applied}/{target} events ({percent}%)",
                    self.projection.name()
                );
                let _ = std::io::stderr().flush();
            }
            if until.is_some_and(|target| applied >= target) {
                if progress {
                    eprintln!();
                }
                return Ok(applied);
            }
        }
    }

    /// Applies one batch, retrying as the module docs describe: transient
    /// failures for as long as they last (until shutdown), others
    /// `max_attempts` times before isolating the poison event. Returns the
    /// checkpoint afterwards.
    async fn apply_with_retries(
        &self,
        batch: &[Message],
        shutdown: &CancellationToken,
    ) -> Result<u64, ProjectionError> {
        let name = self.projection.name();
        let (mut transient, mut failed) = (0u32, 0u32);
        loop {
            let error = match self.apply_batch(batch).await {
                Ok(checkpoint) => return Ok(checkpoint),
                Err(error @ ProjectionError::InjectedCrash(_)) => return Err(error),
                Err(error) => error,
            };
            if error.is_transient() {
                transient = transient.saturating_add(1);
                tracing::warn!(projection = name, %error, attempt = transient, "transient failure; retrying the batch");
            } else {
                failed = failed.saturating_add(1);
                if failed >= self.config.max_attempts {
                    tracing::error!(projection = name, %error, "batch keeps failing; isolating the poison event");
                    match self.apply_one_by_one(batch).await {
                        Err(error) if error.is_transient() => {
                            transient = transient.saturating_add(1);
                            tracing::warn!(projection = name, %error, "transient failure while isolating; retrying");
                        }
                        done => return done,
                    }
                } else {
                    tracing::error!(projection = name, %error, attempt = failed, "batch failed; retrying");
                }
            }
            pause(transient.max(failed), shutdown).await;
            if shutdown.is_cancelled() {
                return Ok(self.position());
            }
        }
    }

    /// Applies the batch one stream sequence at a time, from the checkpoint
    /// to its newest message, each in its own transaction: sequences the
    /// batch holds from their messages, those of a gap read from the stream.
    /// An event that fails for good goes to the dead-letter stream and the
    /// checkpoint moves past it; every other event is applied. A transient
    /// failure stops it (what was applied stays applied).
    async fn apply_one_by_one(&self, batch: &[Message]) -> Result<u64, ProjectionError> {
        let mut delivered = std::collections::BTreeMap::new();
        for message in batch {
            delivered.insert(stream_sequence(message)?, message);
        }
        let Some((&newest, &last)) = delivered.last_key_value() else {
            return self.checkpoint().await;
        };
        let mut checkpoint = self.checkpoint().await?;
        for sequence in checkpoint + 1..=newest {
            let message = delivered.get(&sequence).copied();
            let events = match message {
                Some(message) => decode_delivery(self.store.conventions(), message, sequence)
                    .map_err(ProjectionError::from),
                None => self
                    .store
                    .read_range(&self.stream, sequence, sequence)
                    .await
                    .map_err(ProjectionError::from),
            };
            let applied = match events {
                Ok(events) => self.apply_at(sequence, events).await,
                Err(error) => Err(error),
            };
            match applied {
                Ok(()) => {}
                Err(error) if error.is_transient() => return Err(error),
                Err(error) => self.dead_letter(sequence, message, &error).await?,
            }
            checkpoint = sequence;
        }
        last.ack()
            .await
            .map_err(|e| ProjectionError::Nats(e.to_string()))?;
        Ok(checkpoint)
    }

    /// Applies the events stored at `sequence` in one transaction that
    /// moves the checkpoint to it; nothing when the checkpoint is there
    /// already (another instance applied it).
    async fn apply_at(
        &self,
        sequence: u64,
        events: Vec<crate::store::StoredEvent>,
    ) -> Result<(), ProjectionError> {
        let mut tx = self.pool.begin().await?;
        let checkpoint = self.lock_checkpoint(&mut tx).await?;
        if checkpoint >= sequence {
            return Ok(());
        }
        let wanted = decode_wanted::<P::Event>(events, &self.upcasters)?;
        if !wanted.is_empty() {
            self.projection.apply(&mut tx, &wanted).await?;
        }
        self.store_checkpoint(&mut tx, sequence).await?;
        tx.commit().await?;
        self.advance(sequence);
        Ok(())
    }

    /// Copies the event at `sequence` to the dead-letter stream (from its
    /// message when delivered, else from the stream), then moves the
    /// checkpoint past it.
    async fn dead_letter(
        &self,
        sequence: u64,
        message: Option<&Message>,
        error: &ProjectionError,
    ) -> Result<(), ProjectionError> {
        let name = self.projection.name();
        let reason = error.to_string();
        let conventions = self.store.conventions();
        let published = match message {
            Some(message) => {
                deadletter::publish(&self.context, conventions, name, message, &reason).await
            }
            None => {
                deadletter::publish_stored(
                    &self.context,
                    conventions,
                    name,
                    &self.stream.name,
                    sequence,
                    &reason,
                )
                .await
            }
        };
        published.map_err(|e| ProjectionError::Nats(e.to_string()))?;
        crate::metrics::dead_letter(name);
        tracing::error!(projection = name, sequence, %reason, "event dead-lettered");
        let mut tx = self.pool.begin().await?;
        if self.lock_checkpoint(&mut tx).await? < sequence {
            self.store_checkpoint(&mut tx, sequence).await?;
        }
        tx.commit().await?;
        self.advance(sequence);
        Ok(())
    }

    /// The checkpoint, locked until `tx` ends: instances sharing the
    /// consumer apply one batch at a time.
    async fn lock_checkpoint(&self, tx: &mut PgConnection) -> Result<u64, ProjectionError> {
        let (checkpoint,): (i64,) = sqlx::query_as(
            "SELECT stream_sequence FROM es_checkpoints WHERE projection = $1 FOR UPDATE",
        )
        .bind(self.projection.name())
        .fetch_one(&mut *tx)
        .await?;
        Ok(checkpoint.unsigned_abs())
    }

    /// Moves the checkpoint to `sequence` inside `tx`.
    async fn store_checkpoint(
        &self,
        tx: &mut PgConnection,
        sequence: u64,
    ) -> Result<(), ProjectionError> {
        sqlx::query(
            "UPDATE es_checkpoints SET stream_sequence = $2, updated_at = now() WHERE projection = $1",
        )
        .bind(self.projection.name())
        .bind(i64::try_from(sequence).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// One transaction: skip what the checkpoint has seen, apply the rest,
    /// move the checkpoint, commit, then ack the last message (which acks
    /// the whole batch).
    async fn apply_batch(&self, batch: &[Message]) -> Result<u64, ProjectionError> {
        let name = self.projection.name();
        let mut last = None;
        for message in batch {
            let sequence = stream_sequence(message)?;
            if let Ok(info) = message.info() {
                record_delivery(name, info.pending, info.delivered);
            }
            if last.is_none_or(|(at, _)| sequence > at) {
                last = Some((sequence, message));
            }
        }
        let Some((_, last)) = last else {
            return self.checkpoint().await;
        };
        let mut tx = self.pool.begin().await?;
        let checkpoint = self.lock_checkpoint(&mut tx).await?;
        let mut in_order = Vec::with_capacity(batch.len());
        for message in batch {
            in_order.push((stream_sequence(message)?, message));
        }
        in_order.sort_by_key(|(sequence, _)| *sequence);
        let mut next = checkpoint + 1;
        let mut events = Vec::with_capacity(batch.len());
        for (sequence, message) in in_order {
            if sequence < next {
                continue; // applied before: a redelivery
            }
            if sequence > next {
                // Older messages are still out (a redelivery will bring them
                // later): read them from the stream now, in order.
                let gap = self
                    .store
                    .read_range(&self.stream, next, sequence - 1)
                    .await?;
                tracing::debug!(
                    projection = self.projection.name(),
                    from = next,
                    to = sequence - 1,
                    events = gap.len(),
                    "filled a gap from the stream"
                );
                events.extend(gap);
            }
            events.extend(decode_delivery(
                self.store.conventions(),
                message,
                sequence,
            )?);
            next = sequence + 1;
        }
        let newest = events.last().map(|event| event.meta.timestamp_ms);
        // One span per event, each a child of the span that wrote it,
        // lasting as long as the batch that applies it.
        let spans: Vec<_> = events
            .iter()
            .map(|event| event_span("project", name, event))
            .collect();
        let wanted = decode_wanted::<P::Event>(events, &self.upcasters)?;
        if !wanted.is_empty() {
            self.projection.apply(&mut tx, &wanted).await?;
        }
        drop(spans);
        let new_checkpoint = next - 1;
        if new_checkpoint > checkpoint {
            self.store_checkpoint(&mut tx, new_checkpoint).await?;
        }
        tx.commit().await?;
        self.advance(new_checkpoint);
        if self
            .crash_after_commit
            .is_some_and(|at| new_checkpoint >= at)
        {
            return Err(ProjectionError::InjectedCrash(new_checkpoint));
        }
        // The highest sequence acks the whole batch (AckPolicy::All). If this
        // ack is lost the batch is redelivered and skipped above.
        last.ack()
            .await
            .map_err(|e| ProjectionError::Nats(e.to_string()))?;
        record_lag(name, last, newest);
        Ok(new_checkpoint)
    }

    fn advance(&self, sequence: u64) {
        self.position.send_if_modified(|at| {
            let moved = sequence > *at;
            *at = (*at).max(sequence);
            moved
        });
    }
}

/// Projection lag after a batch: events the consumer has yet to deliver,
/// and how old the newest applied event is.
#[allow(clippy::cast_precision_loss)] // gauges; precision past 2^53 is moot
fn record_lag(projection: &str, last: &Message, newest_timestamp_ms: Option<i64>) {
    let pending = last.info().ok().map(|info| info.pending);
    let age_seconds = newest_timestamp_ms.map(|timestamp_ms| {
        let age_ms = crate::envelope::now_ms()
            .saturating_sub(timestamp_ms)
            .max(0);
        age_ms as f64 / 1000.0
    });
    crate::metrics::projection_lag(projection, pending, age_seconds);
}

/// The stream sequence of a consumed message.
fn stream_sequence(message: &Message) -> Result<u64, ProjectionError> {
    crate::consumer::stream_sequence(message).map_err(ProjectionError::Nats)
}

impl<P: Projection> ReadModel for ProjectionRunner<P> {
    async fn wait_for(&self, position: u64, timeout: Duration) -> bool {
        ProjectionRunner::wait_for(self, position, timeout).await
    }
}
