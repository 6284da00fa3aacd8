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
//! - A failure is retried with backoff (a delayed nak). After
//!   `max_deliveries` attempts, or at once for an error the reaction marks
//!   permanent, the event goes to the dead-letter stream with its error and
//!   is acked, and processing goes on. The server-side `max_deliver` is
//!   bounded too (one above ours, as a backstop if we crash mid-attempt).
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

use crate::consumer::{Deliveries, decode_delivery, event_span, is_wanted, record_delivery};
use crate::deadletter;
use crate::envelope::Conventions;
use crate::event::EventSet;
use crate::jetstream::JetStreamEventStore;
use crate::store::EventStore as _;
use crate::store::{Recorded, StoredEvent, StreamRef};

/// How soon an event released on shutdown is redelivered.
pub const RELEASE_DELAY: Duration = Duration::from_millis(250);

/// Why a reaction failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReactionError {
    /// Worth retrying: the store or a dependency was unavailable, or a race
    /// outlived its retries.
    #[error("transient: {0}")]
    Transient(String),
    /// Will never succeed: straight to the dead-letter stream.
    #[error("permanent: {0}")]
    Permanent(String),
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
    /// Attempts before an event is dead-lettered.
    pub max_deliveries: u32,
    /// Delay before the n-th retry; the last entry repeats.
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
            max_deliveries: 5,
            backoff: vec![
                Duration::from_millis(100),
                Duration::from_millis(500),
                Duration::from_secs(2),
                Duration::from_secs(5),
            ],
            concurrency: 16,
            ack_wait: Duration::from_secs(30),
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
        }
    }

    fn error(&self, reason: impl std::fmt::Display) -> ReactorError {
        ReactorError {
            consumer: self.config.durable_name.clone(),
            reason: reason.to_string(),
        }
    }

    /// Creates (or updates) the durable consumer.
    pub async fn ensure_consumer(&self) -> Result<consumer::PullConsumer, ReactorError> {
        let stream = self
            .context
            .get_stream(&self.source.name)
            .await
            .map_err(|e| self.error(e))?;
        let in_flight = i64::try_from(self.config.concurrency.max(1) * 4).unwrap_or(i64::MAX);
        stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some(self.config.durable_name.clone()),
                description: Some(format!("reactor {}", self.config.durable_name)),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: self.config.ack_wait,
                max_deliver: i64::from(self.config.max_deliveries) + 1,
                max_ack_pending: in_flight,
                filter_subjects: self.config.filter_subjects.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| self.error(e))
    }

    /// Reacts to events until `shutdown`, then finishes the ones in hand.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), ReactorError> {
        let concurrency = self.config.concurrency.max(1);
        let mut deliveries =
            Deliveries::new(self.config.durable_name.clone(), concurrency * 2, || {
                self.ensure_consumer()
            });
        let mut in_flight = JoinSet::new();
        loop {
            // Keep at most `concurrency` events in hand.
            while in_flight.len() >= concurrency {
                in_flight.join_next().await;
            }
            // Opening the consumer is retried for as long as the service runs.
            let Ok(Some(message)) = deliveries.next(&shutdown, |_| true).await else {
                break;
            };
            let handler = self.handler();
            in_flight.spawn(async move { handler.handle(message).await });
        }
        if let Some(messages) = deliveries.open_pull_mut() {
            self.release_unstarted(messages).await;
        }
        while in_flight.join_next().await.is_some() {}
        Ok(())
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
            let next = tokio::time::timeout(Duration::from_millis(20), messages.next()).await;
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
        }
    }
}

/// Everything one in-flight event needs, owned so it can run in a task.
struct Handler<R> {
    reaction: Arc<R>,
    context: jetstream::Context,
    conventions: Conventions,
    config: ReactorConfig,
}

impl<R: Reaction> Handler<R> {
    async fn handle(self, message: Message) {
        let consumer = self.config.durable_name.as_str();
        let (sequence, deliveries) = match message.info() {
            Ok(info) => {
                record_delivery(consumer, info.pending, info.delivered);
                (
                    info.stream_sequence,
                    u32::try_from(info.delivered).unwrap_or(u32::MAX),
                )
            }
            Err(error) => {
                tracing::error!(consumer, %error, "message without JetStream info");
                return;
            }
        };
        let outcome = match decode_delivery(&self.conventions, &message, sequence) {
            Ok(events) => self.react_all(events).await,
            Err(error) => Err(ReactionError::Permanent(error.to_string())),
        };
        let ack = match outcome {
            Ok(()) => message.ack().await,
            Err(ReactionError::Transient(reason)) if deliveries < self.config.max_deliveries => {
                let delay = self.config.delay_after(deliveries);
                tracing::warn!(consumer, sequence, deliveries, ?delay, %reason, "reaction failed; will retry");
                message.ack_with(AckKind::Nak(Some(delay))).await
            }
            Err(error) => {
                tracing::error!(consumer, sequence, deliveries, %error, "giving up on event; dead-lettering it");
                match deadletter::publish(
                    &self.context,
                    &self.conventions,
                    consumer,
                    &message,
                    &error.to_string(),
                )
                .await
                {
                    Ok(()) => {
                        crate::metrics::dead_letter(consumer);
                        message.ack_with(AckKind::Term).await
                    }
                    Err(dlq_error) => {
                        tracing::error!(consumer, sequence, %dlq_error, "dead-letter publish failed; will retry");
                        message
                            .ack_with(AckKind::Nak(Some(self.config.delay_after(deliveries))))
                            .await
                    }
                }
            }
        };
        if let Err(error) = ack {
            // The server will redeliver; the dedupe key makes that harmless.
            tracing::warn!(consumer, sequence, %error, "ack failed");
        }
    }

    /// Reacts to the wanted events of one message, in order.
    async fn react_all(&self, events: Vec<StoredEvent>) -> Result<(), ReactionError> {
        for stored in events.into_iter().filter(is_wanted::<R::Event>) {
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
