//! The envelope: what travels in NATS headers next to every stored event.
//!
//! The payload of a message is plain protobuf, so an outside subscriber needs
//! only the `.proto` files to decode it. Everything a consumer needs to route,
//! dedupe and trace an event without decoding it lives in headers, named
//! with the application's [`Conventions`] (`<prefix>` is `Es-` unless it
//! names its own; Stocklet's is `Stocklet-`):
//!
//! | header | meaning |
//! | --- | --- |
//! | `Nats-Msg-Id` | the commit's dedupe key: the caller's key, else the first event id |
//! | `<prefix>Event-Id` | UUIDv7 of the event (of the commit, for a batch message) |
//! | `<prefix>Event-Type` | full protobuf message name, e.g. `stocklet.events.v1.OrderPlaced` |
//! | `<prefix>Schema-Version` | the payload's schema version, for upcasting |
//! | `<prefix>Aggregate-Type`, `<prefix>Aggregate-Id` | which aggregate instance wrote it |
//! | `<prefix>Causation-Id` | the event (or command) that caused this one |
//! | `<prefix>Correlation-Id` | the saga it belongs to, usually the order id |
//! | `<prefix>Dedupe-Key` | the caller's idempotency key, remembered forever in the history |
//! | `<prefix>Timestamp` | Unix milliseconds when the commit was made |
//! | `traceparent`, `tracestate` | W3C trace context, so traces cross NATS hops |
//!
//! The trace context is the span that made the commit
//! ([`CommandContext::with_current_trace`], applied by the repository), and
//! whoever handles the event opens its span as that span's child
//! ([`link_span`]): one saga is one trace across every service.
//!
//! A commit of one event is one message whose payload is that event. A commit
//! of several events to one aggregate is still one message (one publish is
//! ~15 times cheaper than an atomic batch on file storage), whose type is
//! the conventions' [batch type](Conventions::batch_type) and whose payload
//! is an [`EventBatch`](crate::store::EventBatch) holding each event with its
//! own id, type and version.

use std::fmt;

/// W3C trace context header.
pub const TRACEPARENT: &str = "traceparent";
/// W3C trace state header.
pub const TRACESTATE: &str = "tracestate";

/// The prefix of every es-core header when the application names none.
pub const DEFAULT_HEADER_PREFIX: &str = "Es-";
/// The type of a multi-event message when the application names none.
pub const DEFAULT_BATCH_TYPE: &str = "es_core.v1.EventBatch";
/// The dead-letter subject prefix when the application names none.
pub const DEFAULT_DEAD_LETTER_PREFIX: &str = "deadletter";

/// One of the headers es-core writes next to every event (see the module
/// docs), or next to a dead letter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Header {
    /// UUIDv7 of the event (of the commit, for a batch message).
    EventId,
    /// Full protobuf name of the payload.
    EventType,
    /// The payload's schema version.
    SchemaVersion,
    /// The aggregate type, e.g. `order`.
    AggregateType,
    /// The aggregate id.
    AggregateId,
    /// The event or command that caused this commit.
    CausationId,
    /// The saga (correlation) id.
    CorrelationId,
    /// The caller's idempotency key.
    DedupeKey,
    /// Commit time, Unix milliseconds.
    Timestamp,
    /// Dead letter: the error that made the consumer give up.
    DeadLetterError,
    /// Dead letter: the consumer that gave up.
    DeadLetterConsumer,
    /// Dead letter: the stream the event came from.
    DeadLetterStream,
    /// Dead letter: its stream sequence there.
    DeadLetterSequence,
    /// Dead letter: its subject there.
    DeadLetterSubject,
    /// Dead letter: how many deliveries were tried.
    DeadLetterDeliveries,
}

impl Header {
    /// The headers a dead letter adds to the event's own.
    pub const DEAD_LETTER: [Header; 6] = [
        Header::DeadLetterError,
        Header::DeadLetterConsumer,
        Header::DeadLetterStream,
        Header::DeadLetterSequence,
        Header::DeadLetterSubject,
        Header::DeadLetterDeliveries,
    ];

    const ALL: [Header; 15] = [
        Header::EventId,
        Header::EventType,
        Header::SchemaVersion,
        Header::AggregateType,
        Header::AggregateId,
        Header::CausationId,
        Header::CorrelationId,
        Header::DedupeKey,
        Header::Timestamp,
        Header::DeadLetterError,
        Header::DeadLetterConsumer,
        Header::DeadLetterStream,
        Header::DeadLetterSequence,
        Header::DeadLetterSubject,
        Header::DeadLetterDeliveries,
    ];

    /// The header's name after the prefix.
    fn suffix(self) -> &'static str {
        match self {
            Header::EventId => "Event-Id",
            Header::EventType => "Event-Type",
            Header::SchemaVersion => "Schema-Version",
            Header::AggregateType => "Aggregate-Type",
            Header::AggregateId => "Aggregate-Id",
            Header::CausationId => "Causation-Id",
            Header::CorrelationId => "Correlation-Id",
            Header::DedupeKey => "Dedupe-Key",
            Header::Timestamp => "Timestamp",
            Header::DeadLetterError => "Dlq-Error",
            Header::DeadLetterConsumer => "Dlq-Consumer",
            Header::DeadLetterStream => "Dlq-Stream",
            Header::DeadLetterSequence => "Dlq-Sequence",
            Header::DeadLetterSubject => "Dlq-Subject",
            Header::DeadLetterDeliveries => "Dlq-Deliveries",
        }
    }
}

/// The names es-core writes on the wire: the header prefix
/// (`<prefix>Event-Id`, ...), the event type of a multi-event message, and
/// the dead-letter subject prefix. They are part of an application's public
/// contract (outside subscribers read them), so an application names its
/// own once and gives them to its store; every reader and writer of that
/// store uses the same. Cheap to clone.
///
/// ```
/// use es_core::envelope::{Conventions, Header};
///
/// let conventions = Conventions::new("Shop-").with_batch_type("shop.v1.EventBatch");
/// assert_eq!(conventions.header(Header::EventType), "Shop-Event-Type");
/// assert_eq!(conventions.batch_type(), "shop.v1.EventBatch");
/// assert_eq!(Conventions::default().header(Header::EventId), "Es-Event-Id");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conventions(std::sync::Arc<Names>);

#[derive(Clone, Debug, PartialEq, Eq)]
struct Names {
    header_prefix: String,
    headers: Vec<String>,
    batch_type: String,
    dead_letter_prefix: String,
}

impl Default for Conventions {
    fn default() -> Self {
        Self::new(DEFAULT_HEADER_PREFIX)
    }
}

impl Conventions {
    /// Headers named `<header_prefix>Event-Id` and so on, with the default
    /// batch type and dead-letter prefix.
    pub fn new(header_prefix: &str) -> Self {
        Self(std::sync::Arc::new(Names {
            header_prefix: header_prefix.to_owned(),
            headers: Header::ALL
                .iter()
                .map(|header| format!("{header_prefix}{}", header.suffix()))
                .collect(),
            batch_type: DEFAULT_BATCH_TYPE.to_owned(),
            dead_letter_prefix: DEFAULT_DEAD_LETTER_PREFIX.to_owned(),
        }))
    }

    /// The same, with `batch_type` as the type of multi-event messages (the
    /// full name of a protobuf message with the wire form of
    /// [`EventBatch`](crate::store::EventBatch)).
    #[must_use]
    pub fn with_batch_type(self, batch_type: impl Into<String>) -> Self {
        let mut names = (*self.0).clone();
        names.batch_type = batch_type.into();
        Self(std::sync::Arc::new(names))
    }

    /// The same, filing dead letters under `<prefix>.<consumer>`.
    #[must_use]
    pub fn with_dead_letter_prefix(self, prefix: impl Into<String>) -> Self {
        let mut names = (*self.0).clone();
        names.dead_letter_prefix = prefix.into();
        Self(std::sync::Arc::new(names))
    }

    /// The name of `header`.
    pub fn header(&self, header: Header) -> &str {
        let index = Header::ALL
            .iter()
            .position(|h| *h == header)
            .unwrap_or_default();
        &self.0.headers[index]
    }

    /// The header prefix.
    pub fn header_prefix(&self) -> &str {
        &self.0.header_prefix
    }

    /// The event type of a message that holds several events of one commit.
    pub fn batch_type(&self) -> &str {
        &self.0.batch_type
    }

    /// The subject prefix of the dead-letter stream.
    pub fn dead_letter_prefix(&self) -> &str {
        &self.0.dead_letter_prefix
    }
}

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

    /// This context with `id` (a request's or an event's) as what caused
    /// the command.
    #[must_use]
    pub fn with_causation_id(mut self, id: impl Into<String>) -> Self {
        self.causation_id = Some(id.into());
        self
    }

    /// This context as part of the saga `id` (the order id in the
    /// place-order saga): its events carry it as their correlation id.
    #[must_use]
    pub fn with_correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
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

    /// This context with the current span's W3C trace context, when an
    /// OpenTelemetry layer is installed (service-kit always installs one):
    /// the events of the commit then name the span that wrote them as their
    /// parent. Without one, the context keeps what it carried (from
    /// [`caused_by`](Self::caused_by), say), so the trace id still flows.
    #[must_use]
    pub fn with_current_trace(mut self) -> Self {
        if let Some((traceparent, tracestate)) = current_trace() {
            self.traceparent = Some(traceparent);
            self.tracestate = tracestate;
        }
        self
    }
}

/// The current span's W3C trace context as (`traceparent`, `tracestate`),
/// for headers and gRPC metadata; `None` without a valid span context (and
/// always without the `otel` feature).
pub fn current_trace() -> Option<(String, Option<String>)> {
    #[cfg(feature = "otel")]
    {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;

        let context = tracing::Span::current().context();
        let span = context.span();
        let span_context = span.span_context();
        if !span_context.is_valid() {
            return None;
        }
        let traceparent = format!(
            "00-{:032x}-{:016x}-{:02x}",
            span_context.trace_id(),
            span_context.span_id(),
            span_context.trace_flags().to_u8()
        );
        let tracestate = span_context.trace_state().header();
        Some((traceparent, (!tracestate.is_empty()).then_some(tracestate)))
    }
    #[cfg(not(feature = "otel"))]
    None
}

/// The parts of a well-formed W3C `traceparent`: trace id, span id and
/// flags (hex); `None` for a malformed or all-zero one.
fn traceparent_parts(traceparent: &str) -> Option<(&str, &str, &str)> {
    let mut parts = traceparent.trim().split('-');
    let (version, trace_id, span_id, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |part: &str| part.chars().all(|c| c.is_ascii_hexdigit());
    let zero = |part: &str| part.chars().all(|c| c == '0');
    let well_formed = version.len() == 2
        && version != "ff"
        && hex(version)
        && trace_id.len() == 32
        && hex(trace_id)
        && !zero(trace_id)
        && span_id.len() == 16
        && hex(span_id)
        && !zero(span_id)
        && flags.len() == 2
        && hex(flags)
        && (version != "00" || parts.next().is_none());
    well_formed.then_some((trace_id, span_id, flags))
}

/// Parses a W3C `traceparent` (and `tracestate`) into a remote span context;
/// `None` for a malformed or all-zero one.
#[cfg(feature = "otel")]
pub fn parse_traceparent(
    traceparent: &str,
    tracestate: Option<&str>,
) -> Option<opentelemetry::trace::SpanContext> {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    let (trace_id, span_id, flags) = traceparent_parts(traceparent)?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    let state = tracestate
        .and_then(|state| state.parse::<TraceState>().ok())
        .unwrap_or_default();
    let context = SpanContext::new(
        TraceId::from_hex(trace_id).ok()?,
        SpanId::from_hex(span_id).ok()?,
        TraceFlags::new(flags & TraceFlags::SAMPLED.to_u8()),
        true,
        state,
    );
    context.is_valid().then_some(context)
}

/// Makes `span` (not yet entered) a child of the remote span named by
/// `traceparent`, and records the trace id in its `trace_id` field (declare
/// it `tracing::field::Empty`) so every log line inside carries it. Without
/// the `otel` feature (or an OpenTelemetry layer) only the field is set.
pub fn link_span(span: &tracing::Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    #[cfg(feature = "otel")]
    {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;

        if let Some(remote) = traceparent.and_then(|parent| parse_traceparent(parent, tracestate)) {
            // Fails only without an OpenTelemetry layer: then the log field
            // below still carries the caller's trace id.
            let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
        }
    }
    #[cfg(not(feature = "otel"))]
    let _ = tracestate;
    record_trace_id(span, traceparent);
}

/// Records `span`'s trace id in its `trace_id` field: its own when an
/// OpenTelemetry layer gave it one, else the one in `fallback_traceparent`.
pub fn record_trace_id(span: &tracing::Span, fallback_traceparent: Option<&str>) {
    let fallback = fallback_traceparent
        .and_then(traceparent_parts)
        .map(|(trace_id, _, _)| trace_id.to_ascii_lowercase());
    #[cfg(feature = "otel")]
    let own = {
        use opentelemetry::trace::{TraceContextExt, TraceId};
        use tracing_opentelemetry::OpenTelemetrySpanExt;

        let own = span.context().span().span_context().trace_id();
        (own != TraceId::INVALID).then(|| format!("{own:032x}"))
    };
    #[cfg(not(feature = "otel"))]
    let own: Option<String> = None;
    if let Some(trace_id) = own.or(fallback) {
        span.record("trace_id", trace_id);
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
#[non_exhaustive]
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

    #[cfg(feature = "otel")]
    #[test]
    fn a_w3c_traceparent_parses_into_a_remote_span_context() {
        let parsed = parse_traceparent(
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            Some("vendor=abc"),
        )
        .unwrap();
        assert_eq!(
            format!("{:032x}", parsed.trace_id()),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(format!("{:016x}", parsed.span_id()), "b7ad6b7169203331");
        assert!(parsed.is_sampled());
        assert!(parsed.is_remote());
        assert_eq!(parsed.trace_state().get("vendor"), Some("abc"));
        let unsampled = parse_traceparent(
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
            None,
        )
        .unwrap();
        assert!(!unsampled.is_sampled());
    }

    #[test]
    fn a_malformed_traceparent_is_ignored() {
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",
        ] {
            assert!(traceparent_parts(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn without_an_opentelemetry_layer_a_context_keeps_its_trace() {
        let source = CommandContext {
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
            ..CommandContext::default()
        };
        assert_eq!(current_trace(), None);
        assert_eq!(source.clone().with_current_trace(), source);
    }

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
