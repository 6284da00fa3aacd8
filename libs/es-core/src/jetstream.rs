//! The event store on NATS JetStream.
//!
//! Layout: one stream per bounded context (`ORDER` captures `order.>`), one
//! subject per aggregate instance (`order.order.<id>`). An aggregate's
//! version is the stream sequence of the last message on its subject.
//!
//! - **Append** is one publish with `Nats-Expected-Last-Subject-Sequence`
//!   (optimistic concurrency, checked per subject) and `Nats-Msg-Id`
//!   (dedupe inside the server's duplicate window). Several events of one
//!   commit travel in that one message (see [`crate::envelope`]).
//! - **Atomic multi-aggregate append** uses a 2.12 atomic batch, with the
//!   expected-sequence check on each subject's (only) message. It carries no
//!   `Nats-Msg-Id`: servers before 2.12.1 reject it inside a batch, and a
//!   duplicate id fails the whole batch instead of answering with the
//!   original ack. The concurrency check plus the dedupe key kept in each
//!   aggregate's history make a repeated batch a no-op instead.
//! - **Load** is a batch direct get (`$JS.API.DIRECT.GET.<stream>` with
//!   `next_by_subj`): one round trip for a typical history, paging only
//!   past the server's byte limit. async-nats 0.51 has no helper for it.

use std::time::Duration;

use async_nats::jetstream::{self, context::PublishErrorKind};
use async_nats::{HeaderMap, header};
use bytes::Bytes;
use futures::StreamExt;

use crate::envelope::Conventions;
use crate::store::{
    Appended, Commit, EventStore, StoreError, StoredEvent, StreamRef, decode_message,
    encode_commit, validate_atomic,
};

/// How long to wait for a publish ack or a load before calling it in doubt.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest number of messages asked for in one direct-get request. The
/// server also stops at its byte limit; we then ask again from there.
const LOAD_PAGE: usize = 10_000;

/// Server error code for "wrong last sequence" that carries no number; on a
/// replicated stream it means another write to the subject is in flight.
const WRONG_LAST_SEQUENCE_IN_FLIGHT: u64 = 10_164;

/// Event store backed by JetStream.
#[derive(Clone, Debug)]
pub struct JetStreamEventStore {
    client: async_nats::Client,
    context: jetstream::Context,
    timeout: Duration,
    conventions: Conventions,
}

impl JetStreamEventStore {
    /// A store on `client`, with [`DEFAULT_TIMEOUT`].
    pub fn new(client: async_nats::Client) -> Self {
        Self::with_timeout(client, DEFAULT_TIMEOUT)
    }

    /// A store on `client` that gives up waiting after `timeout`.
    pub fn with_timeout(client: async_nats::Client, timeout: Duration) -> Self {
        let context = jetstream::ContextBuilder::new()
            .timeout(timeout)
            .build(client.clone());
        Self {
            client,
            context,
            timeout,
            conventions: Conventions::default(),
        }
    }

    /// The same store, naming headers, batches and dead letters after
    /// `conventions`.
    #[must_use]
    pub fn with_conventions(mut self, conventions: Conventions) -> Self {
        self.conventions = conventions;
        self
    }

    /// The JetStream context, for provisioning and consumers.
    pub fn context(&self) -> &jetstream::Context {
        &self.context
    }

    /// The NATS client.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Every event stored in `stream` from sequence `from` to `to`
    /// (inclusive), whatever its subject. Projections use it to fill a gap
    /// left by an out-of-order redelivery.
    pub async fn read_range(
        &self,
        stream: &StreamRef,
        from: u64,
        to: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let all = stream.all_subjects();
        let mut events = Vec::new();
        let mut next = Some(from);
        while let Some(start) = next.filter(|start| *start <= to) {
            let wanted = usize::try_from(to - start + 1).unwrap_or(LOAD_PAGE);
            let (page, after) = self.load_page(stream, &all, start, wanted).await?;
            events.extend(page.into_iter().filter(|e| e.meta.stream_sequence <= to));
            next = after;
        }
        Ok(events)
    }

    /// Reads up to `limit` messages on `subject` (a filter) starting at
    /// `from`. Returns the events and, when the server stopped early, where
    /// to continue.
    async fn load_page(
        &self,
        stream: &StreamRef,
        subject: &str,
        from: u64,
        limit: usize,
    ) -> Result<(Vec<StoredEvent>, Option<u64>), StoreError> {
        let inbox = self.client.new_inbox();
        let mut replies = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| StoreError::Unavailable(format!("subscribe: {e}")))?;
        let request = serde_json::json!({
            "seq": from,
            "next_by_subj": subject,
            "batch": limit.clamp(1, LOAD_PAGE),
        });
        self.client
            .publish_with_reply(
                format!("$JS.API.DIRECT.GET.{}", stream.name),
                inbox,
                Bytes::from(request.to_string()),
            )
            .await
            .map_err(|e| StoreError::Unavailable(format!("direct get: {e}")))?;

        let mut events = Vec::new();
        loop {
            let reply = tokio::time::timeout(self.timeout, replies.next())
                .await
                .map_err(|_| StoreError::Timeout)?
                .ok_or_else(|| StoreError::Unavailable("direct get subscription closed".into()))?;
            match reply.status.map(|status| status.as_u16()) {
                None => events.extend(decode_direct_get_reply(&self.conventions, &reply)?),
                // End of batch: more may follow past the server's byte limit.
                Some(204) => {
                    let pending = header_u64(&reply, "Nats-Num-Pending").unwrap_or(0);
                    let last = header_u64(&reply, "Nats-Last-Sequence").unwrap_or(0);
                    let next = (pending > 0 && last > 0).then_some(last + 1);
                    return Ok((events, next));
                }
                // Nothing (more) on this subject.
                Some(404) => return Ok((events, None)),
                Some(503) => {
                    return Err(StoreError::Unavailable(format!(
                        "no responders for direct get on {}: stream missing or allow_direct off",
                        stream.name
                    )));
                }
                Some(code) => {
                    return Err(StoreError::Unavailable(format!(
                        "direct get failed: {code} {}",
                        reply.description.unwrap_or_default()
                    )));
                }
            }
        }
    }
}

fn header_u64(message: &async_nats::Message, name: &str) -> Option<u64> {
    message.headers.as_ref()?.get(name)?.as_str().parse().ok()
}

/// Decodes one message of a direct-get reply into its events.
fn decode_direct_get_reply(
    conventions: &Conventions,
    reply: &async_nats::Message,
) -> Result<Vec<StoredEvent>, StoreError> {
    let headers = reply
        .headers
        .as_ref()
        .ok_or_else(|| StoreError::Unavailable("direct get reply without headers".into()))?;
    let sequence = header_u64(reply, "Nats-Sequence")
        .ok_or_else(|| StoreError::Unavailable("direct get reply without Nats-Sequence".into()))?;
    let subject = headers
        .get(header::NATS_SUBJECT)
        .map(|v| v.as_str())
        .unwrap_or_default();
    Ok(decode_message(
        conventions,
        sequence,
        subject,
        |name| headers.get(name).map(|v| v.as_str()),
        &reply.payload,
    )?)
}

/// The headers of a commit's message, without the concurrency headers.
fn commit_headers(commit: &Commit, conventions: &Conventions) -> (HeaderMap, Bytes) {
    let (pairs, payload) = encode_commit(commit, conventions);
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.insert(name, value.as_str());
    }
    (headers, payload)
}

/// Maps a publish error to the store's vocabulary.
fn publish_error(
    subject: &str,
    expected: u64,
    error: jetstream::context::PublishError,
) -> StoreError {
    let server_code = std::error::Error::source(&error)
        .and_then(|source| source.downcast_ref::<jetstream::Error>())
        .map(|e| e.error_code().0);
    match error.kind() {
        PublishErrorKind::WrongLastSequence => StoreError::Conflict {
            subject: subject.to_owned(),
            expected,
        },
        PublishErrorKind::Other if server_code == Some(WRONG_LAST_SEQUENCE_IN_FLIGHT) => {
            StoreError::Conflict {
                subject: subject.to_owned(),
                expected,
            }
        }
        PublishErrorKind::TimedOut => StoreError::Timeout,
        PublishErrorKind::MaxPayloadExceeded => StoreError::Rejected(error.to_string()),
        PublishErrorKind::StreamNotFound
        | PublishErrorKind::BrokenPipe
        | PublishErrorKind::MaxAckPending => StoreError::Unavailable(error.to_string()),
        _ if server_code.is_some() => StoreError::Rejected(error.to_string()),
        _ => StoreError::Unavailable(error.to_string()),
    }
}

impl EventStore for JetStreamEventStore {
    fn conventions(&self) -> &Conventions {
        &self.conventions
    }

    async fn load(
        &self,
        stream: &StreamRef,
        subject: &str,
        after_sequence: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let (mut events, mut next) = self
            .load_page(stream, subject, after_sequence + 1, LOAD_PAGE)
            .await?;
        while let Some(from) = next {
            let (more, after) = self.load_page(stream, subject, from, LOAD_PAGE).await?;
            events.extend(more);
            next = after;
        }
        Ok(events)
    }

    async fn append(&self, _stream: &StreamRef, commit: &Commit) -> Result<Appended, StoreError> {
        let (mut headers, payload) = commit_headers(commit, &self.conventions);
        headers.insert(header::NATS_MESSAGE_ID, commit.message_id().as_str());
        headers.insert(
            header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            commit.expected_sequence.to_string().as_str(),
        );
        let subject = commit.subject.clone();
        let expected = commit.expected_sequence;
        let ack = self
            .context
            .publish_with_headers(subject.clone(), headers, payload)
            .await
            .map_err(|e| publish_error(&subject, expected, e))?
            .await
            .map_err(|e| publish_error(&subject, expected, e))?;
        Ok(Appended {
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }

    async fn append_atomic(
        &self,
        _stream: &StreamRef,
        commits: &[Commit],
    ) -> Result<Vec<u64>, StoreError> {
        validate_atomic(commits)?;
        let batch_id = uuid::Uuid::now_v7().simple().to_string();
        let count = commits.len();
        let mut commit_ack = None;
        for (index, commit) in commits.iter().enumerate() {
            let (mut headers, payload) = commit_headers(commit, &self.conventions);
            headers.insert(header::NATS_BATCH_ID, batch_id.as_str());
            headers.insert(
                header::NATS_BATCH_SEQUENCE,
                (index + 1).to_string().as_str(),
            );
            headers.insert(
                header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
                commit.expected_sequence.to_string().as_str(),
            );
            let subject = commit.subject.clone();
            if index + 1 < count {
                // Only the commit message needs a reply: errors of earlier
                // messages are reported on it, and the whole batch is dropped.
                self.client
                    .publish_with_headers(subject, headers, payload)
                    .await
                    .map_err(|e| StoreError::Unavailable(format!("batch publish: {e}")))?;
            } else {
                headers.insert(header::NATS_BATCH_COMMIT, header::NATS_BATCH_COMMIT_FINAL);
                let expected = commit.expected_sequence;
                let ack = self
                    .context
                    .publish_with_headers(subject.clone(), headers, payload)
                    .await
                    .map_err(|e| publish_error(&subject, expected, e))?
                    .await
                    .map_err(|e| match publish_error(&subject, expected, e) {
                        // The failed check may be on any subject of the batch.
                        StoreError::Conflict { .. } => StoreError::Conflict {
                            subject: "(atomic batch)".into(),
                            expected,
                        },
                        other => other,
                    })?;
                commit_ack = Some(ack);
            }
        }
        let last = commit_ack
            .ok_or_else(|| StoreError::Rejected("empty atomic batch".into()))?
            .sequence;
        let first = last + 1 - count as u64;
        Ok((first..=last).collect())
    }
}
