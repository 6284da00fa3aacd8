//! The consuming half that projections and reactors share.
//!
//! Both read a stream through a durable pull consumer and must survive the
//! same things: the consumer not existing yet, the server restarting, a
//! pull that fails half way. `Deliveries` is that loop once: it opens the
//! consumer, pulls, reopens after a failure with a growing pause, and stops
//! at shutdown. Both also turn a delivered message into events
//! ([`decode_delivery`]), keep only the event types their handler declared
//! and decode those (`decode_wanted`), open a span per event that
//! continues the writer's trace (`event_span`) and record delivery
//! metrics (`record_delivery`). Both upgrade old event versions with the
//! [`Upcasters`] they were given before they look at an event's type
//! (`upcast`), so a handler sees the current schema only, as an aggregate
//! loaded by its repository does. What differs, how many events they take
//! at once and what they do when one fails, stays in
//! [`projection`](crate::projection) and [`reactor`](crate::reactor), which
//! import this module and not each other.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::{self, PullConsumer};
use async_nats::jetstream::message::Message;
use futures::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::envelope::Conventions;
use crate::event::{DecodeError, EventSet, Upcasters};
use crate::store::{Recorded, StoredEvent, decode_message};

/// How long a pull request waits on the server before it is renewed.
const PULL_EXPIRES: Duration = Duration::from_secs(30);
/// How often the server proves an idle pull is still alive.
const PULL_HEARTBEAT: Duration = Duration::from_secs(5);

/// Messages from one durable consumer, reopened whenever the pull breaks.
pub(crate) struct Deliveries<F> {
    name: String,
    open: F,
    batch: usize,
    messages: Option<consumer::pull::Stream>,
    failures: u32,
}

impl<F, Fut, E> Deliveries<F>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<PullConsumer, E>>,
    E: Display,
{
    /// Deliveries of the consumer that `open` creates or finds, asking the
    /// server for up to `batch` messages at a time. `name` labels the logs.
    pub(crate) fn new(name: impl Into<String>, batch: usize, open: F) -> Self {
        Self {
            name: name.into(),
            open,
            batch: batch.max(1),
            messages: None,
            failures: 0,
        }
    }

    /// The next message, (re)opening the consumer as needed and pausing
    /// longer after each failure in a row. `Ok(None)` once `shutdown` is
    /// cancelled. An error opening the consumer is retried when `retry`
    /// says so, and returned otherwise.
    pub(crate) async fn next(
        &mut self,
        shutdown: &CancellationToken,
        retry: impl Fn(&E) -> bool,
    ) -> Result<Option<Message>, E> {
        loop {
            if shutdown.is_cancelled() {
                return Ok(None);
            }
            if self.messages.is_none() {
                match self.open_pull().await {
                    Ok(Some(messages)) => self.messages = Some(messages),
                    Ok(None) => {
                        self.pause(shutdown).await;
                        continue;
                    }
                    Err(error) if retry(&error) => {
                        tracing::warn!(consumer = %self.name, %error, "cannot open consumer; retrying");
                        self.pause(shutdown).await;
                        continue;
                    }
                    Err(error) => return Err(error),
                }
            }
            let Some(messages) = self.messages.as_mut() else {
                continue;
            };
            let next = tokio::select! {
                () = shutdown.cancelled() => return Ok(None),
                next = messages.next() => next,
            };
            match next {
                Some(Ok(message)) => {
                    self.failures = 0;
                    return Ok(Some(message));
                }
                Some(Err(error)) => {
                    tracing::warn!(consumer = %self.name, %error, "pull failed; reopening the consumer");
                    self.messages = None;
                    self.pause(shutdown).await;
                }
                None => self.messages = None,
            }
        }
    }

    /// A message that is already on its way, if one arrives before
    /// `deadline`; never reopens the consumer. Fills a batch.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))] // projections only
    pub(crate) async fn next_before(&mut self, deadline: Instant) -> Option<Message> {
        let messages = self.messages.as_mut()?;
        match tokio::time::timeout_at(deadline, messages.next()).await {
            Ok(Some(Ok(message))) => Some(message),
            _ => None,
        }
    }

    /// The open pull, if any: what a stopping reactor releases.
    pub(crate) fn open_pull_mut(&mut self) -> Option<&mut consumer::pull::Stream> {
        self.messages.as_mut()
    }

    /// Opens the consumer and a pull on it. `Ok(None)` when the consumer
    /// opened but the pull did not (logged; worth another try).
    async fn open_pull(&mut self) -> Result<Option<consumer::pull::Stream>, E> {
        let consumer = (self.open)().await?;
        match consumer
            .stream()
            .max_messages_per_batch(self.batch)
            .heartbeat(PULL_HEARTBEAT)
            .expires(PULL_EXPIRES)
            .messages()
            .await
        {
            Ok(messages) => Ok(Some(messages)),
            Err(error) => {
                tracing::warn!(consumer = %self.name, %error, "cannot pull; retrying");
                Ok(None)
            }
        }
    }

    async fn pause(&mut self, shutdown: &CancellationToken) {
        self.failures = self.failures.saturating_add(1);
        pause(self.failures, shutdown).await;
    }
}

/// Waits a time that grows with `failures` (capped at 5 s), or until
/// shutdown.
pub(crate) async fn pause(failures: u32, shutdown: &CancellationToken) {
    let delay = Duration::from_millis(100 * 2u64.pow(failures.min(6))).min(Duration::from_secs(5));
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(delay) => {}
    }
}

/// Runs `work` on `message`, telling the server every half `ack_wait` that
/// it is still in progress, so that the ack wait can be short (a killed
/// instance's events come back quickly) without a slow handler's event
/// being redelivered to another instance while it runs.
pub(crate) async fn keep_alive<T>(
    message: &Message,
    ack_wait: Duration,
    work: impl Future<Output = T>,
) -> T {
    let period = (ack_wait / 2).max(Duration::from_millis(100));
    let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
    tokio::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => return done,
            _ = ticks.tick() => {
                if let Err(error) = message.ack_with(AckKind::Progress).await {
                    tracing::debug!(%error, "in-progress ack failed");
                }
            }
        }
    }
}

/// The stream sequence of a consumed message.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))] // projections only
pub(crate) fn stream_sequence(message: &Message) -> Result<u64, String> {
    message
        .info()
        .map(|info| info.stream_sequence)
        .map_err(|e| format!("message without JetStream info: {e}"))
}

/// The events of a consumed message (several for a multi-event commit).
pub fn decode_delivery(
    conventions: &Conventions,
    message: &Message,
    sequence: u64,
) -> Result<Vec<StoredEvent>, DecodeError> {
    let headers = message.headers.as_ref();
    decode_message(
        conventions,
        sequence,
        message.subject.as_str(),
        |name| headers.and_then(|h| h.get(name)).map(|v| v.as_str()),
        &message.payload,
    )
}

/// `event` upgraded to the current schema by `upcasters`.
pub(crate) fn upcast(
    upcasters: &Upcasters,
    event: StoredEvent,
) -> Result<StoredEvent, DecodeError> {
    if upcasters.is_empty() {
        return Ok(event);
    }
    let raw = upcasters.apply(&event.meta.aggregate_type, event.raw)?;
    Ok(StoredEvent {
        meta: event.meta,
        raw,
    })
}

/// Whether a handler of `E` wants an event of this type.
pub(crate) fn is_wanted<E: EventSet>(event: &StoredEvent) -> bool {
    E::wanted_types().is_none_or(|types| types.contains(&event.raw.event_type.as_str()))
}

/// The events a handler of `E` declared, upcast and decoded; the others
/// left out.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))] // projections only
pub(crate) fn decode_wanted<E: EventSet>(
    events: Vec<StoredEvent>,
    upcasters: &Upcasters,
) -> Result<Vec<Recorded<E>>, DecodeError> {
    let mut wanted = Vec::with_capacity(events.len());
    for stored in events {
        let stored = upcast(upcasters, stored)?;
        if is_wanted::<E>(&stored) {
            wanted.push(Recorded {
                event: E::decode_stored(&stored.raw)?,
                meta: stored.meta,
            });
        }
    }
    Ok(wanted)
}

/// The span of one handled event: a child of the span that wrote it (from
/// the event's `traceparent`), so the commands it causes continue the trace.
pub(crate) fn event_span(kind: &'static str, consumer: &str, event: &StoredEvent) -> tracing::Span {
    let span = tracing::info_span!(
        "event",
        otel.name = format!("{kind} {}", event.raw.event_type),
        kind,
        consumer,
        event_type = %event.raw.event_type,
        event_id = %event.meta.event_id,
        aggregate_id = %event.meta.aggregate_id,
        trace_id = tracing::field::Empty,
    );
    crate::envelope::link_span(
        &span,
        event.meta.traceparent.as_deref(),
        event.meta.tracestate.as_deref(),
    );
    span
}

/// Consumer metrics from one delivery: what the consumer still has to
/// deliver after it, and whether it is a redelivery.
pub(crate) fn record_delivery(consumer: &str, pending: u64, delivered: i64) {
    crate::metrics::delivery(consumer, pending, delivered);
}
