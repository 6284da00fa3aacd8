//! The event store contract, and the message format both stores share.
//!
//! A [`Commit`] is what one command decided for one aggregate: one or more
//! events, appended only if the aggregate's subject is still at
//! `expected_sequence`. [`EventStore`] is implemented by the JetStream store
//! (production and integration tests) and the in-memory store (unit tests of
//! domain logic). Both encode commits with [`encode_commit`] and read them
//! back with [`decode_message`], so the in-memory store exercises the same
//! envelope as the real one.

use std::future::Future;

use bytes::Bytes;
use prost::Message as _;

use crate::envelope::{self, CommandContext, Conventions, EventMeta, Header};
use crate::event::{DecodeError, RawEvent};

/// Where an aggregate type's events live: the bounded context's stream and
/// the subject prefix that every subject of that stream starts with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamRef {
    /// JetStream stream name, e.g. `ORDER`.
    pub name: String,
    /// First subject token, e.g. `order`; the stream captures `order.>`.
    pub subject_prefix: String,
}

impl StreamRef {
    /// A stream named `name` capturing `<subject_prefix>.>`.
    pub fn new(name: impl Into<String>, subject_prefix: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            subject_prefix: subject_prefix.into(),
        }
    }

    /// The subject of one aggregate instance.
    pub fn subject(&self, aggregate_type: &str, aggregate_id: &str) -> String {
        format!("{}.{aggregate_type}.{aggregate_id}", self.subject_prefix)
    }

    /// The wildcard subject that captures the whole stream.
    pub fn all_subjects(&self) -> String {
        format!("{}.>", self.subject_prefix)
    }
}

/// One event about to be stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// UUIDv7 of the event.
    pub event_id: String,
    /// Its type, version and payload.
    pub raw: RawEvent,
}

/// Events for one aggregate that are stored together or not at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    /// `<context>.<aggregate type>.<id>`.
    pub subject: String,
    /// The subject's last stream sequence the decision was based on; `0`
    /// means the subject must still be empty.
    pub expected_sequence: u64,
    /// Aggregate type, for the headers.
    pub aggregate_type: String,
    /// Aggregate id, for the headers.
    pub aggregate_id: String,
    /// The events, at least one.
    pub events: Vec<NewEvent>,
    /// Causation, correlation, dedupe key and trace context.
    pub context: CommandContext,
    /// Commit time, Unix milliseconds.
    pub timestamp_ms: i64,
}

impl Commit {
    /// The commit's id: the id of its first event.
    pub fn commit_id(&self) -> &str {
        self.events.first().map_or("", |e| e.event_id.as_str())
    }

    /// The `Nats-Msg-Id`. With a caller's dedupe key it is
    /// `<subject>:<key>`, so a repeated command is dropped by the server's
    /// duplicate window (the duplicate window spans the whole stream, so the
    /// subject keeps one key from colliding across aggregates). Without one
    /// it is the commit id, so a publish retried after a timeout is dropped.
    pub fn message_id(&self) -> String {
        match &self.context.dedupe_key {
            Some(key) => format!("{}:{key}", self.subject),
            None => self.commit_id().to_owned(),
        }
    }
}

/// Checks what every store requires of an atomic batch: at least one commit,
/// each with events, and each aggregate at most once (merge two commits to
/// one aggregate into one: the server checks the expected sequence only on
/// the first message of a subject).
pub fn validate_atomic(commits: &[Commit]) -> Result<(), StoreError> {
    if commits.is_empty() || commits.iter().any(|c| c.events.is_empty()) {
        return Err(StoreError::Rejected("an atomic batch needs events".into()));
    }
    let mut subjects: Vec<&str> = commits.iter().map(|c| c.subject.as_str()).collect();
    subjects.sort_unstable();
    if subjects.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err(StoreError::Rejected(
            "an atomic batch may hold one commit per aggregate".into(),
        ));
    }
    Ok(())
}

/// An event read back from the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    /// Where and why it was written.
    pub meta: EventMeta,
    /// What was written.
    pub raw: RawEvent,
}

impl StoredEvent {
    /// This event as the protobuf message `T`, or `None` when it is an
    /// event of another type: how a handler picks out one outside event
    /// without declaring an enum for it.
    pub fn decode_as<T: prost::Message + prost::Name + Default>(
        &self,
    ) -> Option<Result<T, DecodeError>> {
        (self.raw.event_type == T::full_name()).then(|| {
            T::decode(self.raw.payload.clone()).map_err(|e| DecodeError::Malformed {
                event_type: self.raw.event_type.clone(),
                reason: e.to_string(),
            })
        })
    }
}

/// A decoded event with its metadata: what aggregates load and what
/// projections and reactions are handed.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded<E> {
    /// Where, when and why it was written.
    pub meta: EventMeta,
    /// The event, upcast to the current schema.
    pub event: E,
}

/// The server's answer to an append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Stream sequence of the stored message (of the first one, for a
    /// duplicate: the original's).
    pub sequence: u64,
    /// The server had already stored this message id within its duplicate
    /// window and stored nothing new.
    pub duplicate: bool,
}

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Someone else appended to the aggregate since it was loaded.
    #[error("concurrency conflict on {subject}: expected last sequence {expected}")]
    Conflict {
        /// The aggregate's subject.
        subject: String,
        /// The sequence the caller expected.
        expected: u64,
    },
    /// No answer in time: the append may or may not have happened. Retry
    /// with the same message id to find out safely.
    #[error("timed out waiting for the event store; the append is in doubt")]
    Timeout,
    /// The store cannot be reached or refused for an operational reason.
    #[error("event store unavailable: {0}")]
    Unavailable(String),
    /// The server rejected the request as invalid (a bug, not a race).
    #[error("event store rejected the request: {0}")]
    Rejected(String),
    /// A stored message could not be read.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// Append-only storage of aggregate histories.
pub trait EventStore: Clone + Send + Sync + 'static {
    /// The names this store writes and reads on the wire.
    fn conventions(&self) -> &Conventions;

    /// Every event stored on `subject` after stream sequence `after_sequence`,
    /// in order.
    fn load(
        &self,
        stream: &StreamRef,
        subject: &str,
        after_sequence: u64,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;

    /// Appends one commit as one message, if the subject is still at
    /// `commit.expected_sequence`.
    fn append(
        &self,
        stream: &StreamRef,
        commit: &Commit,
    ) -> impl Future<Output = Result<Appended, StoreError>> + Send;

    /// Appends commits to several aggregates of one stream atomically: all
    /// are stored, or none is. Each commit's expected sequence is checked.
    /// Slow on file storage (~2 ms): use it only when a decision really spans
    /// aggregates. Returns each commit's stream sequence.
    fn append_atomic(
        &self,
        stream: &StreamRef,
        commits: &[Commit],
    ) -> impl Future<Output = Result<Vec<u64>, StoreError>> + Send;
}

/// The wire form of a multi-event message: a protobuf message with one
/// repeated field of [`EventRecord`]s. An application that wants outside
/// subscribers to decode it declares the same message in its `.proto` files
/// and names it in its [`Conventions::with_batch_type`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct EventBatch {
    /// The events of one commit, in order.
    #[prost(message, repeated, tag = "1")]
    pub events: Vec<EventRecord>,
}

/// One event inside an [`EventBatch`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct EventRecord {
    /// UUIDv7 of the event.
    #[prost(string, tag = "1")]
    pub event_id: String,
    /// Full protobuf name of `payload`.
    #[prost(string, tag = "2")]
    pub event_type: String,
    /// Schema version of `payload`.
    #[prost(uint32, tag = "3")]
    pub schema_version: u32,
    /// Protobuf-encoded event.
    #[prost(bytes = "bytes", tag = "4")]
    pub payload: Bytes,
}

/// Headers and payload of the message that stores `commit`. Does not
/// include the concurrency or dedupe headers: those depend on how it is
/// published (alone, or inside an atomic batch).
pub fn encode_commit<'c>(
    commit: &Commit,
    conventions: &'c Conventions,
) -> (Vec<(&'c str, String)>, Bytes) {
    let name = |header| conventions.header(header);
    let (event_id, event_type, schema_version, payload) = match commit.events.as_slice() {
        [single] => (
            single.event_id.clone(),
            single.raw.event_type.clone(),
            single.raw.schema_version,
            single.raw.payload.clone(),
        ),
        events => {
            let batch = EventBatch {
                events: events
                    .iter()
                    .map(|e| EventRecord {
                        event_id: e.event_id.clone(),
                        event_type: e.raw.event_type.clone(),
                        schema_version: e.raw.schema_version,
                        payload: e.raw.payload.clone(),
                    })
                    .collect(),
            };
            (
                commit.commit_id().to_owned(),
                conventions.batch_type().to_owned(),
                1,
                Bytes::from(batch.encode_to_vec()),
            )
        }
    };
    let ctx = &commit.context;
    let mut headers = vec![
        (name(Header::EventId), event_id),
        (name(Header::EventType), event_type),
        (name(Header::SchemaVersion), schema_version.to_string()),
        (name(Header::AggregateType), commit.aggregate_type.clone()),
        (name(Header::AggregateId), commit.aggregate_id.clone()),
        (name(Header::Timestamp), commit.timestamp_ms.to_string()),
    ];
    let optional = [
        (name(Header::CausationId), &ctx.causation_id),
        (name(Header::CorrelationId), &ctx.correlation_id),
        (name(Header::DedupeKey), &ctx.dedupe_key),
        (envelope::TRACEPARENT, &ctx.traceparent),
        (envelope::TRACESTATE, &ctx.tracestate),
    ];
    headers.extend(
        optional
            .into_iter()
            .filter_map(|(name, value)| value.clone().map(|v| (name, v))),
    );
    (headers, payload)
}

/// Reads the events out of one stored message. `header` looks a header up
/// by name.
pub fn decode_message<'h>(
    conventions: &Conventions,
    stream_sequence: u64,
    subject: &str,
    header: impl Fn(&str) -> Option<&'h str>,
    payload: &Bytes,
) -> Result<Vec<StoredEvent>, DecodeError> {
    let required = |name: &str| {
        header(name)
            .map(str::to_owned)
            .ok_or_else(|| DecodeError::Envelope(format!("message {stream_sequence} lacks {name}")))
    };
    let optional = |name: &str| header(name).map(str::to_owned);
    let name = |header| conventions.header(header);
    let event_type = required(name(Header::EventType))?;
    let schema_version = required(name(Header::SchemaVersion))?
        .parse::<u32>()
        .map_err(|e| DecodeError::Envelope(format!("bad {}: {e}", name(Header::SchemaVersion))))?;
    let timestamp_ms = required(name(Header::Timestamp))?
        .parse::<i64>()
        .map_err(|e| DecodeError::Envelope(format!("bad {}: {e}", name(Header::Timestamp))))?;
    let meta = EventMeta {
        stream_sequence,
        subject: subject.to_owned(),
        event_id: required(name(Header::EventId))?,
        aggregate_type: required(name(Header::AggregateType))?,
        aggregate_id: required(name(Header::AggregateId))?,
        causation_id: optional(name(Header::CausationId)),
        correlation_id: optional(name(Header::CorrelationId)),
        dedupe_key: optional(name(Header::DedupeKey)),
        timestamp_ms,
        traceparent: optional(envelope::TRACEPARENT),
        tracestate: optional(envelope::TRACESTATE),
    };
    if event_type != conventions.batch_type() {
        return Ok(vec![StoredEvent {
            meta,
            raw: RawEvent {
                event_type,
                schema_version,
                payload: payload.clone(),
            },
        }]);
    }
    let batch = EventBatch::decode(payload.clone())
        .map_err(|e| DecodeError::Envelope(format!("bad event batch: {e}")))?;
    Ok(batch
        .events
        .into_iter()
        .map(|record| StoredEvent {
            meta: EventMeta {
                event_id: record.event_id,
                ..meta.clone()
            },
            raw: RawEvent {
                event_type: record.event_type,
                schema_version: record.schema_version,
                payload: record.payload,
            },
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(events: usize) -> Commit {
        Commit {
            subject: "shop.cart.c1".into(),
            expected_sequence: 0,
            aggregate_type: "cart".into(),
            aggregate_id: "c1".into(),
            events: (0..events)
                .map(|i| NewEvent {
                    event_id: format!("e{i}"),
                    raw: RawEvent {
                        event_type: format!("test.Event{i}"),
                        schema_version: 1,
                        payload: Bytes::from(vec![i as u8]),
                    },
                })
                .collect(),
            context: CommandContext {
                correlation_id: Some("order-1".into()),
                ..CommandContext::with_dedupe_key("k1")
            },
            timestamp_ms: 42,
        }
    }

    fn round_trip(commit: &Commit) -> Vec<StoredEvent> {
        let conventions = Conventions::default();
        let (headers, payload) = encode_commit(commit, &conventions);
        decode_message(
            &conventions,
            7,
            &commit.subject,
            |name| {
                headers
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.as_str())
            },
            &payload,
        )
        .unwrap()
    }

    #[test]
    fn a_single_event_is_its_own_payload() {
        let c = commit(1);
        let conventions = Conventions::default();
        let (headers, payload) = encode_commit(&c, &conventions);
        assert_eq!(payload, c.events[0].raw.payload);
        assert!(headers.contains(&("Es-Event-Type", "test.Event0".into())));
        let stored = round_trip(&c);
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].meta.event_id, "e0");
        assert_eq!(stored[0].meta.dedupe_key.as_deref(), Some("k1"));
        assert_eq!(stored[0].meta.correlation_id.as_deref(), Some("order-1"));
        assert_eq!(stored[0].meta.stream_sequence, 7);
        assert_eq!(stored[0].raw, c.events[0].raw);
    }

    #[test]
    fn several_events_travel_as_one_batch_message() {
        let c = commit(3);
        let conventions = Conventions::new("Shop-").with_batch_type("shop.Batch");
        let (headers, _) = encode_commit(&c, &conventions);
        assert!(headers.contains(&("Shop-Event-Type", "shop.Batch".into())));
        assert!(headers.contains(&("Shop-Event-Id", "e0".into())));
        let stored = round_trip(&c);
        let ids: Vec<_> = stored.iter().map(|e| e.meta.event_id.as_str()).collect();
        assert_eq!(ids, ["e0", "e1", "e2"]);
        assert_eq!(stored[2].raw, c.events[2].raw);
    }

    #[test]
    fn a_message_without_envelope_headers_is_a_decode_error() {
        let result = decode_message(&Conventions::default(), 1, "s", |_| None, &Bytes::new());
        assert!(matches!(result, Err(DecodeError::Envelope(_))));
    }
}
