//! Reactors: durable consumers that turn other services' events into
//! commands on this service's own aggregates.
//!
//! This is the choreography half of the saga. Each service has one durable
//! consumer per source stream. For each event, a [`Reaction`] runs commands
//! whose dedupe key is derived from the source event id (see
//! [`CommandContext::caused_by`](crate::envelope::CommandContext::caused_by)),
//! so a redelivered or duplicated event changes nothing the second time.
//!
//! - The message is acked only after the reaction succeeded, i.e. after its
//!   appends were acknowledged by JetStream.
//! - A failure says what kind it is ([`ReactionError`]), and each kind has
//!   its own budget. **Not yet** (the event depends on another consumer
//!   catching up) is retried with capped backoff until
//!   [`ReactorConfig::not_yet_deadline`], hours by default, so a consumer
//!   that lags behind never turns a saga step into a dead letter.
//!   **Transient** (the store or a dependency is down) is retried for as
//!   long as the server delivers it, which is [`ReactorConfig::max_deliveries`]
//!   times (a bound, never unlimited: about two months at the default
//!   backoff). **Permanent** goes to the dead-letter stream at once.
//! - Dead-lettering never loses an event: the message is acked only after
//!   its dead-letter copy is stored, and the server's `max_deliver` is
//!   [`DEAD_LETTER_ROOM`] deliveries above ours, so a dead-letter publish
//!   that fails is retried too.
//! - While a reaction runs, the reactor tells the server it is still working
//!   (an in-progress ack every half `ack_wait`), so the ack wait can be
//!   short: an event pulled by an instance that was killed comes back to
//!   another within `ack_wait` (5 s by default), not after minutes.
//! - Events are handled `concurrency` at a time. Reactions must not assume
//!   that events of different aggregates arrive in stream order; the domain
//!   tolerates reordering (the saga issue proves that).
//! - On shutdown it stops pulling, finishes the events in hand, acks them,
//!   naks the events it had pulled but not started (so another instance gets
//!   them at once instead of after `ack_wait`) and returns.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer, message::Message};
use futures::StreamExt;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::consumer::{
    Deliveries, decode_delivery, event_span, is_wanted, keep_alive, record_delivery, upcast,
};
use crate::deadletter;
use crate::envelope::{Conventions, Header};
use crate::event::{EventSet, Upcasters};
use crate::jetstream::JetStreamEventStore;
use crate::store::EventStore as _;
use crate::store::{Recorded, StoredEvent, StreamRef};

/// How soon an event released on shutdown is redelivered.
pub const RELEASE_DELAY: Duration = Duration::from_millis(250);

/// Deliveries the server allows above [`ReactorConfig::max_deliveries`]:
/// room to store the dead-letter copy of an event that used up its budget
/// (and to retry that publish) before the server stops delivering it.
pub const DEAD_LETTER_ROOM: u32 = 1000;

/// Why a reaction failed, which decides how long it is retried.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReactionError {
    /// Infrastructure: the store or a dependency was unavailable, or a race
    /// outlived its retries. Retried for as long as the server delivers the
    /// event ([`ReactorConfig::max_deliveries`]).
    #[error("transient: {0}")]
    Transient(String),
    /// Too early: the event depends on something another consumer has not
    /// done yet (a refund before its payment is recorded, a return before
    /// the consumption). Retried until [`ReactorConfig::not_yet_deadline`].
    #[error("not yet: {0}")]
    NotYet(String),
    /// Will never succeed: straight to the dead-letter stream.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl<E: std::error::Error + 'static> From<crate::ExecuteError<E>> for ReactionError {
    /// A command's failure as a reaction's: a rejection is permanent, a lost
    /// race or a store failure transient. A reaction that knows a rejection
    /// means "not yet" matches it before converting.
    fn from(error: crate::ExecuteError<E>) -> Self {
        match error {
            crate::ExecuteError::Rejected(rejected) => Self::Permanent(rejected.to_string()),
            other => Self::Transient(other.to_string()),
        }
    }
}

impl From<crate::StoreError> for ReactionError {
    /// A read's failure as a reaction's: what was stored cannot be decoded
    /// (permanent), or the store did not answer (transient).
    fn from(error: crate::StoreError) -> Self {
        match error {
            crate::StoreError::Decode(_) => Self::Permanent(error.to_string()),
            other => Self::Transient(other.to_string()),
        }
    }
}

/// What a service does when another service's event arrives.
pub trait Reaction: Send + Sync + 'static {
    /// The events it reacts to; the reactor acknowledges every other event
    /// without calling [`react`](Self::react).
    type Event: EventSet;

    /// Handles one event of [`Event`](Self::Event).
    fn react(
        &self,
        event: &Recorded<Self::Event>,
    ) -> impl Future<Output = Result<(), ReactionError>> + Send;
}

/// Tuning of a [`Reactor`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ReactorConfig {
    /// Durable consumer name, e.g. `warehouse-from-order`.
    pub durable_name: String,
    /// Subjects of the source stream to receive; empty for all.
    pub filter_subjects: Vec<String>,
    /// Deliveries of an event that keeps failing transiently before it is
    /// dead-lettered. The server's own `max_deliver` is
    /// [`DEAD_LETTER_ROOM`] above it, so it is bounded but never reached
    /// before the dead-letter copy is stored.
    pub max_deliveries: u32,
    /// How long an event that is not yet applicable is retried before it is
    /// dead-lettered, counted as the sum of the backoff delays it waited.
    pub not_yet_deadline: Duration,
    /// Delay before the n-th retry; the last entry repeats (the cap).
    pub backoff: Vec<Duration>,
    /// Events handled at once.
    pub concurrency: usize,
    /// How long the server waits for an ack before redelivering.
    pub ack_wait: Duration,
}

impl ReactorConfig {
    /// Defaults for a durable consumer named `durable_name`.
    pub fn new(durable_name: impl Into<String>) -> Self {
        Self {
            durable_name: durable_name.into(),
            filter_subjects: Vec::new(),
            max_deliveries: 1_000_000,
            not_yet_deadline: Duration::from_secs(6 * 60 * 60),
            backoff: vec![
                Duration::from_millis(100),
                Duration::from_millis(250),
                Duration::from_millis(500),
                Duration::from_secs(1),
                Duration::from_secs(2),
                Duration::from_secs(5),
            ],
            concurrency: 16,
            ack_wait: Duration::from_secs(5),
        }
    }

    /// Receives only these subjects of the source stream.
    #[must_use]
    pub fn with_filter_subjects(
        mut self,
        subjects: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.filter_subjects = subjects.into_iter().map(Into::into).collect();
        self
    }

    /// Gives up on an event after `attempts` deliveries.
    #[must_use]
    pub fn with_max_deliveries(mut self, attempts: u32) -> Self {
        self.max_deliveries = attempts;
        self
    }

    /// Retries an event that is not yet applicable for `deadline` (the sum
    /// of the delays it waited) before dead-lettering it.
    #[must_use]
    pub fn with_not_yet_deadline(mut self, deadline: Duration) -> Self {
        self.not_yet_deadline = deadline;
        self
    }

    /// Waits `backoff[n]` before the n-th retry; the last entry repeats.
    #[must_use]
    pub fn with_backoff(mut self, backoff: Vec<Duration>) -> Self {
        self.backoff = backoff;
        self
    }

    /// Handles `events` events at once.
    #[must_use]
    pub fn with_concurrency(mut self, events: usize) -> Self {
        self.concurrency = events;
        self
    }

    /// Lets the server wait `ack_wait` for an ack before redelivering.
    #[must_use]
    pub fn with_ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }

    fn delay_after(&self, deliveries: u32) -> Duration {
        let index = usize::try_from(deliveries.saturating_sub(1)).unwrap_or(usize::MAX);
        self.backoff
            .get(index)
            .or(self.backoff.last())
            .copied()
            .unwrap_or(Duration::from_secs(1))
    }

    /// The time an event has spent waiting between its first `deliveries`
    /// deliveries: the sum of the backoff delays before each retry.
    fn waited_before(&self, deliveries: u32) -> Duration {
        let delays = deliveries.saturating_sub(1);
        let listed = u32::try_from(self.backoff.len()).unwrap_or(u32::MAX);
        let early: Duration = self
            .backoff
            .iter()
            .take(usize::try_from(delays).unwrap_or(usize::MAX))
            .sum();
        let cap = self
            .backoff
            .last()
            .copied()
            .unwrap_or(Duration::from_secs(1));
        early.saturating_add(cap.saturating_mul(delays.saturating_sub(listed)))
    }

    /// What to do with an event that failed with `error` on its
    /// `deliveries`-th delivery.
    fn after_failure(&self, error: &ReactionError, deliveries: u32) -> AfterFailure {
        let retry = match error {
            ReactionError::Permanent(_) => false,
            ReactionError::Transient(_) => deliveries < self.max_deliveries,
            ReactionError::NotYet(_) => {
                deliveries < self.max_deliveries
                    && self.waited_before(deliveries.saturating_add(1)) <= self.not_yet_deadline
            }
        };
        if retry {
            AfterFailure::Retry(self.delay_after(deliveries))
        } else {
            AfterFailure::DeadLetter
        }
    }
}

/// What a failed delivery leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AfterFailure {
    /// Redeliver after this delay.
    Retry(Duration),
    /// Store a dead-letter copy, then ack.
    DeadLetter,
}

/// Why the reactor itself stopped.
#[derive(Debug, thiserror::Error)]
#[error("reactor {consumer}: {reason}")]
pub struct ReactorError {
    consumer: String,
    reason: String,
}

/// Feeds one source stream into one [`Reaction`].
pub struct Reactor<R> {
    reaction: Arc<R>,
    context: jetstream::Context,
    conventions: Conventions,
    source: StreamRef,
    config: ReactorConfig,
    upcasters: Upcasters,
}

impl<R: Reaction> Reactor<R> {
    /// A reactor from `source` (read through `store`'s connection) into
    /// `reaction`.
    pub fn new(
        reaction: R,
        store: &JetStreamEventStore,
        source: StreamRef,
        config: ReactorConfig,
    ) -> Self {
        Self {
            reaction: Arc::new(reaction),
            context: store.context().clone(),
            conventions: store.conventions().clone(),
            source,
            config,
            upcasters: Upcasters::default(),
        }
    }

    /// Upgrades old event versions with `upcasters` before the reaction
    /// sees them (and before events of other types are skipped): the chain
    /// of the source stream's owner.
    #[must_use]
    pub fn with_upcasters(mut self, upcasters: Upcasters) -> Self {
        self.upcasters = upcasters;
        self
    }

    /// The durable consumer's name.
    pub fn durable_name(&self) -> &str {
        &self.config.durable_name
    }

    fn error(&self, reason: impl std::fmt::Display) -> ReactorError {
        ReactorError {
            consumer: self.config.durable_name.clone(),
            reason: reason.to_string(),
        }
    }

    /// Creates (or updates) the durable consumer, and the one that takes
    /// its replayed dead letters (see [`replay_consumer`](Self::replay_consumer)).
    pub async fn ensure_consumer(&self) -> Result<consumer::PullConsumer, ReactorError> {
        self.replay_consumer().await?;
        self.source_consumer().await
    }

    /// The durable consumer of the source stream.
    async fn source_consumer(&self) -> Result<consumer::PullConsumer, ReactorError> {
        let stream = self
            .context
            .get_stream(&self.source.name)
            .await
            .map_err(|e| self.error(e))?;
        // Events waiting for a retry stay ack-pending; room for many of them
        // keeps a few early events from holding up everything behind them.
        let in_flight = i64::try_from(self.config.concurrency.max(1) * 64).unwrap_or(i64::MAX);
        stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some(self.config.durable_name.clone()),
                description: Some(format!("reactor {}", self.config.durable_name)),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: self.config.ack_wait,
                max_deliver: i64::from(self.config.max_deliveries) + i64::from(DEAD_LETTER_ROOM),
                max_ack_pending: in_flight,
                filter_subjects: self.config.filter_subjects.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| self.error(e))
    }

    /// The durable consumer `<durable name>-replay` of the dead-letter
    /// stream, on `<prefix>.<durable name>.replay`: letters an operator
    /// replays ([`DeadLetters::replay`](crate::deadletter::DeadLetters::replay))
    /// come back this way and are handled like any delivery.
    pub async fn replay_consumer(&self) -> Result<consumer::PullConsumer, ReactorError> {
        let stream = self
            .context
            .get_stream(deadletter::STREAM_NAME)
            .await
            .map_err(|e| self.error(format!("the dead-letter stream: {e}")))?;
        let name = format!("{}-replay", self.config.durable_name);
        stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some(name.clone()),
                description: Some(format!(
                    "replayed dead letters of {}",
                    self.config.durable_name
                )),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: self.config.ack_wait,
                max_deliver: i64::from(self.config.max_deliveries) + i64::from(DEAD_LETTER_ROOM),
                filter_subject: deadletter::replay_subject(
                    &self.conventions,
                    &self.config.durable_name,
                ),
                // Replays are rare operator actions: one replica keeps a
                // cluster from running a Raft group per reactor for them.
                num_replicas: 1,
                ..Default::default()
            })
            .await
            .map_err(|e| self.error(e))
    }

    /// Reacts to events (and replayed dead letters) until `shutdown`, then
    /// finishes the ones in hand.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), ReactorError> {
        let concurrency = self.config.concurrency.max(1);
        let events = Deliveries::new(self.config.durable_name.clone(), concurrency * 2, || {
            self.source_consumer()
        });
        let replays = Deliveries::new(format!("{}-replay", self.config.durable_name), 1, || {
            self.replay_consumer()
        });
        tokio::join!(
            self.consume(events, concurrency, &shutdown),
            self.consume(replays, 1, &shutdown)
        );
        Ok(())
    }

    /// Handles what `deliveries` brings, `concurrency` at a time, until
    /// `shutdown`.
    async fn consume<F, Fut>(
        &self,
        mut deliveries: Deliveries<F>,
        concurrency: usize,
        shutdown: &CancellationToken,
    ) where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<consumer::PullConsumer, ReactorError>>,
    {
        let mut in_flight = JoinSet::new();
        loop {
            // Keep at most `concurrency` events in hand.
            while in_flight.len() >= concurrency {
                in_flight.join_next().await;
            }
            // Opening the consumer is retried for as long as the service runs.
            let Ok(Some(message)) = deliveries.next(shutdown, |_| true).await else {
                break;
            };
            let handler = self.handler();
            in_flight.spawn(async move { handler.handle(message).await });
        }
        if let Some(messages) = deliveries.open_pull_mut() {
            self.release_unstarted(messages).await;
        }
        while in_flight.join_next().await.is_some() {}
    }

    /// Naks what the pull already delivered but no handler started, so the
    /// server redelivers it within [`RELEASE_DELAY`] (to another instance)
    /// rather than after `ack_wait`. The delay keeps this still-open pull
    /// from taking the events straight back; a naked event stays ack-pending
    /// until then, so the loop ends after at most the consumer's
    /// `max_ack_pending` events.
    async fn release_unstarted(&self, messages: &mut consumer::pull::Stream) {
        let consumer = self.config.durable_name.as_str();
        let limit = self.config.concurrency.max(1) * 4;
        let mut released = 0usize;
        while released < limit {
            // Long enough for a message already on its way under load.
            let next = tokio::time::timeout(Duration::from_millis(100), messages.next()).await;
            let Ok(Some(Ok(message))) = next else { break };
            if let Err(error) = message.ack_with(AckKind::Nak(Some(RELEASE_DELAY))).await {
                tracing::warn!(consumer, %error, "nak on shutdown failed; the server redelivers after ack_wait");
            }
            released += 1;
        }
        if released > 0 {
            tracing::debug!(consumer, released, "released unstarted events on shutdown");
        }
    }

    fn handler(&self) -> Handler<R> {
        Handler {
            reaction: Arc::clone(&self.reaction),
            context: self.context.clone(),
            conventions: self.conventions.clone(),
            config: self.config.clone(),
            upcasters: self.upcasters.clone(),
        }
    }
}

/// Everything one in-flight event needs, owned so it can run in a task.
struct Handler<R> {
    reaction: Arc<R>,
    context: jetstream::Context,
    conventions: Conventions,
    config: ReactorConfig,
    upcasters: Upcasters,
}

impl<R: Reaction> Handler<R> {
    async fn handle(self, message: Message) {
        let consumer = self.config.durable_name.as_str();
        let (sequence, deliveries, replay) = match message.info() {
            Ok(info) => {
                record_delivery(consumer, info.pending, info.delivered);
                // A replayed dead letter: the event's position is where it
                // was first stored.
                let replay =
                    (info.stream == deadletter::STREAM_NAME).then_some(info.stream_sequence);
                let original = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(self.conventions.header(Header::DeadLetterSequence)))
                    .and_then(|v| v.as_str().parse().ok());
                (
                    replay.and(original).unwrap_or(info.stream_sequence),
                    u32::try_from(info.delivered).unwrap_or(u32::MAX),
                    replay,
                )
            }
            Err(error) => {
                tracing::error!(consumer, %error, "message without JetStream info");
                return;
            }
        };
        let reacting = async {
            match decode_delivery(&self.conventions, &message, sequence) {
                Ok(events) => self.react_all(events).await,
                Err(error) => Err(ReactionError::Permanent(error.to_string())),
            }
        };
        let outcome = keep_alive(&message, self.config.ack_wait, reacting).await;
        let (ack, done) = match outcome {
            // A replay is deleted once handled: wait until the ack is stored.
            Ok(()) if replay.is_some() => (message.double_ack().await, true),
            Ok(()) => (message.ack().await, true),
            Err(error) => match self.config.after_failure(&error, deliveries) {
                AfterFailure::Retry(delay) => {
                    tracing::warn!(consumer, sequence, deliveries, ?delay, %error, "reaction failed; will retry");
                    (message.ack_with(AckKind::Nak(Some(delay))).await, false)
                }
                AfterFailure::DeadLetter => {
                    match self
                        .dead_letter(&message, &error, sequence, deliveries)
                        .await
                    {
                        Ok(filed) => (Ok(()), filed),
                        Err(error) => (Err(error), false),
                    }
                }
            },
        };
        if let Err(error) = ack {
            // The server will redeliver; the dedupe key makes that harmless.
            tracing::warn!(consumer, sequence, %error, "ack failed");
        } else if done && let Some(replay) = replay {
            // A handled replay leaves the dead-letter stream.
            if let Ok(stream) = self.context.get_stream(deadletter::STREAM_NAME).await
                && let Err(error) = stream.delete_message(replay).await
            {
                tracing::warn!(consumer, replay, %error, "cannot delete a handled replay");
            }
        }
    }

    /// Stores the dead-letter copy of `message`, then acks it (`true`);
    /// when the copy cannot be stored, naks it so that it comes back
    /// (`false`; the server leaves [`DEAD_LETTER_ROOM`] deliveries for this).
    async fn dead_letter(
        &self,
        message: &Message,
        error: &ReactionError,
        sequence: u64,
        deliveries: u32,
    ) -> Result<bool, async_nats::Error> {
        let consumer = self.config.durable_name.as_str();
        tracing::error!(consumer, sequence, deliveries, %error, "giving up on event; dead-lettering it");
        match deadletter::publish(
            &self.context,
            &self.conventions,
            consumer,
            message,
            &error.to_string(),
        )
        .await
        {
            Ok(()) => {
                crate::metrics::dead_letter(consumer);
                message.ack_with(AckKind::Term).await.map(|()| true)
            }
            Err(dlq_error) => {
                tracing::error!(consumer, sequence, %dlq_error, "dead-letter publish failed; will retry");
                message
                    .ack_with(AckKind::Nak(Some(self.config.delay_after(deliveries))))
                    .await
                    .map(|()| false)
            }
        }
    }

    /// Reacts to the wanted events of one message (upcast first), in order.
    async fn react_all(&self, events: Vec<StoredEvent>) -> Result<(), ReactionError> {
        for stored in events {
            let stored = upcast(&self.upcasters, stored)
                .map_err(|error| ReactionError::Permanent(error.to_string()))?;
            if !is_wanted::<R::Event>(&stored) {
                continue;
            }
            let span = event_span("react", &self.config.durable_name, &stored);
            let event = R::Event::decode_stored(&stored.raw)
                .map_err(|error| ReactionError::Permanent(error.to_string()))?;
            let recorded = Recorded {
                meta: stored.meta,
                event,
            };
            self.reaction.react(&recorded).instrument(span).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ReactorConfig {
        ReactorConfig::new("test")
            .with_backoff(vec![Duration::from_secs(1), Duration::from_secs(5)])
            .with_not_yet_deadline(Duration::from_secs(60))
            .with_max_deliveries(100)
    }

    #[test]
    fn waiting_time_is_the_sum_of_the_delays_with_the_last_one_repeating() {
        let config = config();
        assert_eq!(config.waited_before(1), Duration::ZERO);
        assert_eq!(config.waited_before(2), Duration::from_secs(1));
        assert_eq!(config.waited_before(3), Duration::from_secs(6));
        assert_eq!(config.waited_before(5), Duration::from_secs(16));
    }

    #[test]
    fn each_kind_of_failure_has_its_own_budget() {
        let config = config();
        let permanent = ReactionError::Permanent("bad".into());
        let transient = ReactionError::Transient("down".into());
        let not_yet = ReactionError::NotYet("early".into());
        assert_eq!(
            config.after_failure(&permanent, 1),
            AfterFailure::DeadLetter
        );
        assert_eq!(
            config.after_failure(&transient, 99),
            AfterFailure::Retry(Duration::from_secs(5))
        );
        assert_eq!(
            config.after_failure(&transient, 100),
            AfterFailure::DeadLetter
        );
        // 1 + 5 * 11 = 56 s waited before the 13th delivery, 61 s before the 14th.
        assert_eq!(
            config.after_failure(&not_yet, 12),
            AfterFailure::Retry(Duration::from_secs(5))
        );
        assert_eq!(config.after_failure(&not_yet, 13), AfterFailure::DeadLetter);
        assert_eq!(
            config.after_failure(&not_yet, 1),
            AfterFailure::Retry(Duration::from_secs(1))
        );
    }

    #[test]
    fn the_defaults_retry_not_yet_for_hours_and_transient_for_weeks() {
        let config = ReactorConfig::new("defaults");
        assert!(config.not_yet_deadline >= Duration::from_secs(60 * 60));
        assert!(config.waited_before(config.max_deliveries) > Duration::from_secs(30 * 24 * 3600));
        assert!(config.backoff.iter().all(|d| *d <= Duration::from_secs(5)));
        assert!(config.ack_wait <= Duration::from_secs(10));
    }
}
