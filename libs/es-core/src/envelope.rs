//! The envelope: what travels in NATS headers next to every stored event.
//!
//! The payload of a message is plain protobuf, so an outside subscriber needs
//! only the `.proto` files to decode it. Everything a consumer needs to route,
//! dedupe and trace an event without decoding it lives in headers:
//!
//! | header | meaning |
//! | --- | --- |
//! | `Nats-Msg-Id` | the commit's dedupe key: the caller's key, else the first event id |
//! | `Stocklet-Event-Id` | UUIDv7 of the event (of the commit, for an [`EVENT_BATCH_TYPE`] message) |
//! | `Stocklet-Event-Type` | full protobuf message name, e.g. `stocklet.events.v1.OrderPlaced` |
//! | `Stocklet-Schema-Version` | the payload's schema version, for upcasting |
//! | `Stocklet-Aggregate-Type`, `Stocklet-Aggregate-Id` | which aggregate instance wrote it |
//! | `Stocklet-Causation-Id` | the event (or command) that caused this one |
//! | `Stocklet-Correlation-Id` | the saga it belongs to, usually the order id |
//! | `Stocklet-Dedupe-Key` | the caller's idempotency key, remembered forever in the history |
//! | `Stocklet-Timestamp` | Unix milliseconds when the commit was made |
//! | `traceparent`, `tracestate` | W3C trace context, so traces cross NATS hops |
//!
//! A commit of one event is one message whose payload is that event. A commit
//! of several events to one aggregate is still one message (one publish is
//! ~15 times cheaper than an atomic batch on file storage), whose type is
//! [`EVENT_BATCH_TYPE`] and whose payload is a `stocklet.events.v1.EventBatch`
//! holding each event with its own id, type and version.

use std::fmt;

/// Header carrying the event id (UUIDv7).
pub const EVENT_ID: &str = "Stocklet-Event-Id";
/// Header carrying the full protobuf name of the payload.
pub const EVENT_TYPE: &str = "Stocklet-Event-Type";
/// Header carrying the payload's schema version.
pub const SCHEMA_VERSION: &str = "Stocklet-Schema-Version";
/// Header carrying the aggregate type, e.g. `order`.
pub const AGGREGATE_TYPE: &str = "Stocklet-Aggregate-Type";
/// Header carrying the aggregate id.
pub const AGGREGATE_ID: &str = "Stocklet-Aggregate-Id";
/// Header carrying the id of the event or command that caused this commit.
pub const CAUSATION_ID: &str = "Stocklet-Causation-Id";
/// Header carrying the saga (correlation) id.
pub const CORRELATION_ID: &str = "Stocklet-Correlation-Id";
/// Header carrying the caller's idempotency key.
pub const DEDUPE_KEY: &str = "Stocklet-Dedupe-Key";
/// Header carrying the commit time in Unix milliseconds.
pub const TIMESTAMP: &str = "Stocklet-Timestamp";
/// W3C trace context header.
pub const TRACEPARENT: &str = "traceparent";
/// W3C trace state header.
pub const TRACESTATE: &str = "tracestate";

/// Event type of a message that holds several events of one commit.
pub const EVENT_BATCH_TYPE: &str = "stocklet.events.v1.EventBatch";

/// Who and what caused a commit: the metadata a command carries into the
/// events it produces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandContext {
    /// Idempotency key. A command repeated with the same key on the same
    /// aggregate is a no-op that returns the original outcome.
    pub dedupe_key: Option<String>,
    /// The event or request id that caused this command.
    pub causation_id: Option<String>,
    /// The saga this command belongs to (the order id in the place-order saga).
    pub correlation_id: Option<String>,
    /// W3C `traceparent` of the caller's span.
    pub traceparent: Option<String>,
    /// W3C `tracestate` of the caller's span.
    pub tracestate: Option<String>,
}

impl CommandContext {
    /// A context with a dedupe key and nothing else.
    pub fn with_dedupe_key(key: impl Into<String>) -> Self {
        Self {
            dedupe_key: Some(key.into()),
            ..Self::default()
        }
    }

    /// The context for a command caused by a stored event: the dedupe key is
    /// derived from the source event id and the reacting handler, the
    /// correlation id is inherited and the causation id is the source event.
    pub fn caused_by(source: &EventMeta, handler: &str) -> Self {
        Self {
            dedupe_key: Some(format!("{handler}:{}", source.event_id)),
            causation_id: Some(source.event_id.clone()),
            correlation_id: source.correlation_id.clone(),
            traceparent: source.traceparent.clone(),
            tracestate: source.tracestate.clone(),
        }
    }
}

/// The metadata of one stored event, as read back from the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventMeta {
    /// Stream sequence of the message that holds the event.
    pub stream_sequence: u64,
    /// Subject of that message, `<context>.<aggregate>.<id>`.
    pub subject: String,
    /// The event's own id.
    pub event_id: String,
    /// Aggregate type, e.g. `order`.
    pub aggregate_type: String,
    /// Aggregate id.
    pub aggregate_id: String,
    /// The event or command that caused it.
    pub causation_id: Option<String>,
    /// The saga it belongs to.
    pub correlation_id: Option<String>,
    /// The caller's idempotency key of the commit.
    pub dedupe_key: Option<String>,
    /// Commit time, Unix milliseconds.
    pub timestamp_ms: i64,
    /// W3C trace context.
    pub traceparent: Option<String>,
    /// W3C trace state.
    pub tracestate: Option<String>,
}

/// A subject token that is safe to put into `<context>.<aggregate>.<id>`.
///
/// NATS subjects split on `.` and treat `*` and `>` as wildcards, so an id
/// with any of those (or whitespace) would address the wrong messages.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AggregateId(String);

/// Why a string is not a valid aggregate id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAggregateId {
    /// The id is empty.
    #[error("aggregate id is empty")]
    Empty,
    /// The id is longer than 128 bytes.
    #[error("aggregate id is longer than 128 bytes")]
    TooLong,
    /// The id contains a character that is special in NATS subjects.
    #[error("aggregate id contains {0:?}, which is not allowed in a subject token")]
    BadCharacter(char),
}

impl AggregateId {
    /// Parses an id, rejecting anything that is not a single subject token.
    pub fn parse(id: impl Into<String>) -> Result<Self, InvalidAggregateId> {
        let id = id.into();
        if id.is_empty() {
            return Err(InvalidAggregateId::Empty);
        }
        if id.len() > 128 {
            return Err(InvalidAggregateId::TooLong);
        }
        if let Some(c) = id
            .chars()
            .find(|c| matches!(c, '.' | '*' | '>') || c.is_whitespace() || c.is_control())
        {
            return Err(InvalidAggregateId::BadCharacter(c));
        }
        Ok(Self(id))
    }

    /// A fresh time-ordered id (UUIDv7).
    pub fn new_v7() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AggregateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregate_ids_must_be_one_subject_token() {
        assert!(AggregateId::parse("0192-abc_DEF").is_ok());
        assert_eq!(AggregateId::parse(""), Err(InvalidAggregateId::Empty));
        assert_eq!(
            AggregateId::parse("a.b"),
            Err(InvalidAggregateId::BadCharacter('.'))
        );
        assert_eq!(
            AggregateId::parse("a*"),
            Err(InvalidAggregateId::BadCharacter('*'))
        );
        assert_eq!(
            AggregateId::parse("a b"),
            Err(InvalidAggregateId::BadCharacter(' '))
        );
        assert_eq!(
            AggregateId::parse("x".repeat(129)),
            Err(InvalidAggregateId::TooLong)
        );
    }
}
