//! The dead-letter stream: where a consumer puts an event it gave up on.
//!
//! A poison event must not stop everything behind it, and it must not be
//! lost either. It is copied to `deadletter.<consumer>` with its original
//! headers and payload, plus headers that say where it came from and why it
//! failed. The `Nats-Msg-Id` is derived from the source position, so a
//! crash between dead-lettering and acking does not file it twice.
//!
//! [`DeadLetters`] is what an operator does with them: list and show the
//! letters (consumer, error, original stream, subject and sequence, event
//! type, correlation id), discard one, or replay one after a fix. A replay
//! moves the letter to `deadletter.<consumer>.replay`, which the consumer's
//! own [`Reactor`](crate::reactor::Reactor) reads through a second durable
//! consumer (`<consumer>-replay`) and handles like any delivery: the
//! reaction's dedupe keys come from the original event, so replaying twice,
//! or replaying an event whose effect did happen after all, changes nothing.
//! A replay that fails for good is dead-lettered again. Projections read
//! their stream in order and cannot take an old event back: their letters
//! are fixed by rebuilding the read model, then discarded.

use async_nats::HeaderMap;
use async_nats::jetstream::{self, message::Message};

use crate::envelope::{Conventions, Header};
use crate::streams::StreamDefinition;

/// Subject prefix of the dead-letter stream with the default conventions.
pub const SUBJECT_PREFIX: &str = crate::envelope::DEFAULT_DEAD_LETTER_PREFIX;

/// Name of the dead-letter stream.
pub const STREAM_NAME: &str = "DEADLETTER";

/// The dead-letter stream `DEADLETTER`, capturing `<prefix>.>` (the
/// conventions' dead-letter prefix): file storage, no limits; unlike event
/// streams, letters may be deleted once handled.
pub fn definition(conventions: &Conventions) -> StreamDefinition {
    let mut definition = StreamDefinition::new(STREAM_NAME, conventions.dead_letter_prefix());
    let config = definition.config_mut();
    config.description =
        Some("Events a consumer gave up on, with the error: deadletter.<consumer>".into());
    config.deny_delete = false;
    config.deny_purge = false;
    config.allow_atomic_publish = false;
    definition
}

/// Copies `message` to the dead-letter stream and waits for the ack.
pub async fn publish(
    context: &jetstream::Context,
    conventions: &Conventions,
    consumer: &str,
    message: &Message,
    error: &str,
) -> Result<(), async_nats::Error> {
    let info = message.info()?;
    let name = |header| conventions.header(header);
    let original = |header| {
        message
            .headers
            .as_ref()
            .and_then(|h| h.get(name(header)))
            .map(|v| v.as_str().to_owned())
    };
    // A replayed letter that fails again keeps naming where the event came
    // from, and gets an id of its own (the first letter's id may still be in
    // the duplicate window).
    let replayed = info.stream == STREAM_NAME;
    let (stream, sequence, subject, attempt) = match (
        original(Header::DeadLetterStream),
        original(Header::DeadLetterSequence).and_then(|s| s.parse::<u64>().ok()),
        original(Header::DeadLetterSubject),
    ) {
        (Some(stream), Some(sequence), Some(subject)) if replayed => {
            (stream, sequence, subject, Some(info.stream_sequence))
        }
        _ => (
            info.stream.to_owned(),
            info.stream_sequence,
            message.subject.to_string(),
            None,
        ),
    };
    let letter = Letter {
        stream: &stream,
        sequence,
        subject: &subject,
        headers: message.headers.as_ref(),
        payload: &message.payload,
        deliveries: info.delivered,
        attempt,
    };
    letter.publish(context, conventions, consumer, error).await
}

/// Copies the message stored at `sequence` of `stream` to the dead-letter
/// stream and waits for the ack: for an event a consumer read from the
/// stream itself (a projection filling a gap) rather than had delivered.
pub async fn publish_stored(
    context: &jetstream::Context,
    conventions: &Conventions,
    consumer: &str,
    stream: &str,
    sequence: u64,
    error: &str,
) -> Result<(), async_nats::Error> {
    let stored = context
        .get_stream(stream)
        .await?
        .direct_get(sequence)
        .await?;
    let letter = Letter {
        stream,
        sequence,
        subject: stored.subject.as_str(),
        headers: Some(&stored.headers),
        payload: &stored.payload,
        deliveries: 0,
        attempt: None,
    };
    letter.publish(context, conventions, consumer, error).await
}

/// One event on its way to the dead-letter stream.
struct Letter<'a> {
    stream: &'a str,
    sequence: u64,
    subject: &'a str,
    headers: Option<&'a HeaderMap>,
    payload: &'a bytes::Bytes,
    deliveries: i64,
    /// The replay this letter comes from, if any.
    attempt: Option<u64>,
}

impl Letter<'_> {
    async fn publish(
        &self,
        context: &jetstream::Context,
        conventions: &Conventions,
        consumer: &str,
        error: &str,
    ) -> Result<(), async_nats::Error> {
        let mut headers = HeaderMap::new();
        if let Some(original) = self.headers {
            let replaced: Vec<&str> = Header::DEAD_LETTER
                .into_iter()
                .map(|header| conventions.header(header))
                .collect();
            for (name, values) in original.iter() {
                let name: &str = name.as_ref();
                // Server-interpreted headers would be checked again on
                // republish; a replay's old letter headers are replaced.
                if name.starts_with("Nats-") || replaced.contains(&name) {
                    continue;
                }
                for value in values {
                    headers.append(name, value.as_str());
                }
            }
        }
        // Header values are single lines and bounded; the error is for humans.
        let error: String = error
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(1024)
            .collect();
        let name = |header| conventions.header(header);
        headers.insert(name(Header::DeadLetterError), error.as_str());
        headers.insert(name(Header::DeadLetterConsumer), consumer);
        headers.insert(name(Header::DeadLetterStream), self.stream);
        headers.insert(
            name(Header::DeadLetterSequence),
            self.sequence.to_string().as_str(),
        );
        headers.insert(name(Header::DeadLetterSubject), self.subject);
        headers.insert(
            name(Header::DeadLetterDeliveries),
            self.deliveries.to_string().as_str(),
        );
        let id = match self.attempt {
            None => format!("{consumer}:{}:{}", self.stream, self.sequence),
            Some(replay) => format!(
                "{consumer}:{}:{}:replay-{replay}",
                self.stream, self.sequence
            ),
        };
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
        context
            .publish_with_headers(
                format!("{}.{consumer}", conventions.dead_letter_prefix()),
                headers,
                self.payload.clone(),
            )
            .await?
            .await?;
        Ok(())
    }
}

/// The subject a consumer's replayed letters are moved to.
pub fn replay_subject(conventions: &Conventions, consumer: &str) -> String {
    format!("{}.{consumer}.replay", conventions.dead_letter_prefix())
}

/// One dead-lettered event, as an operator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Its sequence in the dead-letter stream: how it is named.
    pub sequence: u64,
    /// The consumer that gave up on it.
    pub consumer: String,
    /// Why.
    pub error: String,
    /// The stream the event came from.
    pub stream: String,
    /// Its sequence there.
    pub stream_sequence: u64,
    /// Its subject there (the aggregate it belongs to).
    pub subject: String,
    /// How many deliveries were tried.
    pub deliveries: u64,
    /// The event's type.
    pub event_type: String,
    /// The event's id.
    pub event_id: String,
    /// The saga it belongs to (the order id in the place-order saga).
    pub correlation_id: String,
    /// When it was dead-lettered, Unix milliseconds.
    pub dead_lettered_at_ms: i64,
    /// The event's payload (protobuf).
    pub payload: bytes::Bytes,
}

/// Why an operation on dead letters failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeadLetterError {
    /// No letter has this sequence (or it was replayed or discarded).
    #[error("no dead letter {0}")]
    NotFound(u64),
    /// The consumer cannot take a replay: it is a projection (rebuild its
    /// read model instead) or does not run a replay consumer.
    #[error("{consumer} takes no replays: {reason}")]
    NoReplay {
        /// The consumer.
        consumer: String,
        /// What to do instead.
        reason: String,
    },
    /// NATS failed.
    #[error("nats: {0}")]
    Nats(String),
}

/// The operator's view of the dead-letter stream.
#[derive(Clone)]
pub struct DeadLetters {
    context: jetstream::Context,
    conventions: Conventions,
}

impl DeadLetters {
    /// The dead letters on `context`'s server, named by `conventions`.
    pub fn new(context: jetstream::Context, conventions: Conventions) -> Self {
        Self {
            context,
            conventions,
        }
    }

    /// Up to `limit` letters after sequence `after`, oldest first, of one
    /// consumer or of all.
    pub async fn list(
        &self,
        consumer: Option<&str>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, DeadLetterError> {
        let stream = self.stream().await?;
        let filter = format!(
            "{}.{}",
            self.conventions.dead_letter_prefix(),
            consumer.unwrap_or("*")
        );
        let mut letters = Vec::new();
        let mut next = after.saturating_add(1);
        while letters.len() < limit {
            match stream
                .direct_get_next_for_subject(&filter, Some(next))
                .await
            {
                Ok(message) => {
                    next = message.sequence.saturating_add(1);
                    letters.push(self.letter(&message));
                }
                Err(error)
                    if error.kind()
                        == async_nats::jetstream::stream::DirectGetErrorKind::NotFound =>
                {
                    break;
                }
                Err(error) => return Err(DeadLetterError::Nats(error.to_string())),
            }
        }
        Ok(letters)
    }

    /// The letter stored at `sequence`.
    pub async fn get(&self, sequence: u64) -> Result<DeadLetter, DeadLetterError> {
        let message = self.raw(sequence).await?;
        Ok(self.letter(&message))
    }

    /// Hands the letter at `sequence` back to its consumer: moved to
    /// `<prefix>.<consumer>.replay` (once: a repeated replay of the same
    /// letter within the duplicate window is the same message), then
    /// deleted here. Its reactor handles it as a delivery of the original
    /// event.
    pub async fn replay(&self, sequence: u64) -> Result<DeadLetter, DeadLetterError> {
        let message = self.raw(sequence).await?;
        let letter = self.letter(&message);
        let replay_consumer = format!("{}-replay", letter.consumer);
        if self
            .stream()
            .await?
            .get_consumer::<async_nats::jetstream::consumer::pull::Config>(&replay_consumer)
            .await
            .is_err()
        {
            return Err(DeadLetterError::NoReplay {
                consumer: letter.consumer,
                reason: "it runs no replay consumer; a projection's letters are fixed by rebuilding its read model, then discarded".into(),
            });
        }
        let mut headers = message.headers.clone();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            format!("replay:{sequence}").as_str(),
        );
        self.context
            .publish_with_headers(
                replay_subject(&self.conventions, &letter.consumer),
                headers,
                message.payload.clone(),
            )
            .await
            .map_err(nats)?
            .await
            .map_err(nats)?;
        self.discard(sequence).await?;
        Ok(letter)
    }

    /// Deletes the letter at `sequence` (after its cause was handled some
    /// other way, such as a projection's rebuild).
    pub async fn discard(&self, sequence: u64) -> Result<(), DeadLetterError> {
        let stream = self.stream().await?;
        match stream.delete_message(sequence).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(DeadLetterError::NotFound(sequence)),
            Err(error) if error.to_string().contains("no message found") => {
                Err(DeadLetterError::NotFound(sequence))
            }
            Err(error) => Err(DeadLetterError::Nats(error.to_string())),
        }
    }

    async fn stream(&self) -> Result<jetstream::stream::Stream, DeadLetterError> {
        self.context.get_stream(STREAM_NAME).await.map_err(nats)
    }

    async fn raw(
        &self,
        sequence: u64,
    ) -> Result<async_nats::jetstream::message::StreamMessage, DeadLetterError> {
        let stream = self.stream().await?;
        match stream.direct_get(sequence).await {
            Ok(message) if self.is_letter(message.subject.as_str()) => Ok(message),
            Ok(_) => Err(DeadLetterError::NotFound(sequence)),
            Err(error)
                if error.kind() == async_nats::jetstream::stream::DirectGetErrorKind::NotFound =>
            {
                Err(DeadLetterError::NotFound(sequence))
            }
            Err(error) => Err(DeadLetterError::Nats(error.to_string())),
        }
    }

    /// Whether `subject` is a letter's (`<prefix>.<consumer>`), not a replay.
    fn is_letter(&self, subject: &str) -> bool {
        subject
            .strip_prefix(self.conventions.dead_letter_prefix())
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|consumer| !consumer.is_empty() && !consumer.contains('.'))
    }

    fn letter(&self, message: &async_nats::jetstream::message::StreamMessage) -> DeadLetter {
        let header = |name: Header| {
            message
                .headers
                .get(self.conventions.header(name))
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default()
        };
        let number = |name: Header| header_number(&header(name));
        let consumer = message
            .subject
            .as_str()
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_owned();
        DeadLetter {
            sequence: message.sequence,
            consumer,
            error: header(Header::DeadLetterError),
            stream: header(Header::DeadLetterStream),
            stream_sequence: number(Header::DeadLetterSequence),
            subject: header(Header::DeadLetterSubject),
            deliveries: number(Header::DeadLetterDeliveries),
            event_type: header(Header::EventType),
            event_id: header(Header::EventId),
            correlation_id: header(Header::CorrelationId),
            dead_lettered_at_ms: i64::try_from(message.time.unix_timestamp_nanos() / 1_000_000)
                .unwrap_or_default(),
            payload: message.payload.clone(),
        }
    }
}

fn header_number(value: &str) -> u64 {
    value.parse().unwrap_or_default()
}

fn nats(error: impl std::fmt::Display) -> DeadLetterError {
    DeadLetterError::Nats(error.to_string())
}
