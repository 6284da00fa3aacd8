//! The dead-letter stream: where a consumer puts an event it gave up on.
//!
//! A poison event must not stop everything behind it, and it must not be
//! lost either. It is copied to `deadletter.<consumer>` with its original
//! headers and payload, plus headers that say where it came from and why it
//! failed. An operator can inspect it there and republish it once the cause
//! is fixed. The `Nats-Msg-Id` is derived from the source position, so a
//! crash between dead-lettering and acking does not file it twice.

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
    let letter = Letter {
        stream: info.stream,
        sequence: info.stream_sequence,
        subject: message.subject.as_str(),
        headers: message.headers.as_ref(),
        payload: &message.payload,
        deliveries: info.delivered,
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
            for (name, values) in original.iter() {
                let name: &str = name.as_ref();
                // Server-interpreted headers would be checked again on republish.
                if name.starts_with("Nats-") {
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
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            format!("{consumer}:{}:{}", self.stream, self.sequence).as_str(),
        );
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
