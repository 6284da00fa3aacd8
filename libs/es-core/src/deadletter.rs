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

use crate::streams::StreamDefinition;

/// Header: the error that made the consumer give up.
pub const ERROR: &str = "Stocklet-Dlq-Error";
/// Header: the consumer that gave up.
pub const CONSUMER: &str = "Stocklet-Dlq-Consumer";
/// Header: the stream the event came from.
pub const SOURCE_STREAM: &str = "Stocklet-Dlq-Stream";
/// Header: its stream sequence there.
pub const SOURCE_SEQUENCE: &str = "Stocklet-Dlq-Sequence";
/// Header: its subject there.
pub const SOURCE_SUBJECT: &str = "Stocklet-Dlq-Subject";
/// Header: how many deliveries were tried.
pub const DELIVERIES: &str = "Stocklet-Dlq-Deliveries";

/// Subject prefix of the dead-letter stream.
pub const SUBJECT_PREFIX: &str = "deadletter";

/// Name of the dead-letter stream.
pub const STREAM_NAME: &str = "DEADLETTER";

/// The dead-letter stream, capturing `deadletter.>`: file storage, no
/// limits; unlike event streams, letters may be deleted once handled.
pub fn definition() -> StreamDefinition {
    let mut definition = StreamDefinition::new(STREAM_NAME, SUBJECT_PREFIX);
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
    consumer: &str,
    message: &Message,
    error: &str,
) -> Result<(), async_nats::Error> {
    let info = message.info()?;
    let mut headers = HeaderMap::new();
    if let Some(original) = &message.headers {
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
    headers.insert(ERROR, error.as_str());
    headers.insert(CONSUMER, consumer);
    headers.insert(SOURCE_STREAM, info.stream);
    headers.insert(SOURCE_SEQUENCE, info.stream_sequence.to_string().as_str());
    headers.insert(SOURCE_SUBJECT, message.subject.as_str());
    headers.insert(DELIVERIES, info.delivered.to_string().as_str());
    headers.insert(
        async_nats::header::NATS_MESSAGE_ID,
        format!("{consumer}:{}:{}", info.stream, info.stream_sequence).as_str(),
    );
    context
        .publish_with_headers(
            format!("{SUBJECT_PREFIX}.{consumer}"),
            headers,
            message.payload.clone(),
        )
        .await?
        .await?;
    Ok(())
}
