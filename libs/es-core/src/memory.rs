//! An in-memory [`EventStore`] for unit tests of domain logic.
//!
//! It keeps the same message format, per-subject concurrency check and
//! message-id dedupe as the JetStream store, so a repository behaves the same
//! on both. It is not durable and not meant for integration tests: those run
//! against a real nats-server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use crate::envelope::Conventions;

use crate::store::{
    Appended, Commit, EventStore, StoreError, StoredEvent, StreamRef, decode_message,
    encode_commit, validate_atomic,
};

#[derive(Debug)]
struct StoredMessage {
    sequence: u64,
    subject: String,
    headers: Vec<(String, String)>,
    payload: Bytes,
}

#[derive(Debug, Default)]
struct StreamState {
    messages: Vec<StoredMessage>,
    last_by_subject: HashMap<String, u64>,
    seen_message_ids: HashMap<String, u64>,
}

impl StreamState {
    fn check(&self, commit: &Commit) -> Result<(), StoreError> {
        let last = self
            .last_by_subject
            .get(&commit.subject)
            .copied()
            .unwrap_or(0);
        if last == commit.expected_sequence {
            Ok(())
        } else {
            Err(StoreError::Conflict {
                subject: commit.subject.clone(),
                expected: commit.expected_sequence,
            })
        }
    }

    fn push(&mut self, commit: &Commit, conventions: &Conventions) -> u64 {
        let sequence = self.messages.len() as u64 + 1;
        let (headers, payload) = encode_commit(commit, conventions);
        let headers = headers
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect();
        self.messages.push(StoredMessage {
            sequence,
            subject: commit.subject.clone(),
            headers,
            payload,
        });
        self.last_by_subject
            .insert(commit.subject.clone(), sequence);
        sequence
    }
}

/// Event store in a `HashMap`, shared by clones.
///
/// ```
/// use es_core::testing::append_event;
/// use es_core::{EventStore, InMemoryEventStore, StreamRef};
///
/// #[derive(Clone, PartialEq, prost::Message)]
/// pub struct OrderPlaced {
///     #[prost(string, tag = "1")]
///     pub order_id: String,
/// }
/// impl prost::Name for OrderPlaced {
///     const NAME: &'static str = "OrderPlaced";
///     const PACKAGE: &'static str = "shop.order.v1";
/// }
///
/// #[tokio::main]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let store = InMemoryEventStore::new();
///     let orders = StreamRef::new("ORDER", "order");
///     let placed = OrderPlaced { order_id: "o-1".into() };
///     append_event(&store, &orders, "order", "o-1", placed).await?;
///
///     // Every event of the stream, in order, as a consumer would see it.
///     let events = store.all_events(&orders)?;
///     assert_eq!(events[0].meta.subject, "order.order.o-1");
///     assert_eq!(events[0].meta.stream_sequence, 1);
///     let decoded = events[0].decode_as::<OrderPlaced>().transpose()?;
///     assert_eq!(decoded.map(|e| e.order_id).as_deref(), Some("o-1"));
///
///     // One aggregate's history, as a repository loads it.
///     assert_eq!(store.load(&orders, "order.order.o-1", 0).await?.len(), 1);
///     Ok(())
/// }
/// ```
#[derive(Clone, Debug, Default)]
pub struct InMemoryEventStore {
    streams: Arc<Mutex<HashMap<String, StreamState>>>,
    conventions: Conventions,
}

impl InMemoryEventStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same store, naming headers and batches after `conventions`.
    #[must_use]
    pub fn with_conventions(mut self, conventions: Conventions) -> Self {
        self.conventions = conventions;
        self
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, StreamState>> {
        // A poisoned lock only means another test thread panicked mid-append;
        // the map itself is still consistent because pushes are the last step.
        self.streams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every event of a stream, in order: what a projection would see.
    pub fn all_events(&self, stream: &StreamRef) -> Result<Vec<StoredEvent>, StoreError> {
        let streams = self.lock();
        let Some(state) = streams.get(&stream.name) else {
            return Ok(Vec::new());
        };
        decode_all(&self.conventions, state.messages.iter())
    }
}

fn decode_all<'a>(
    conventions: &Conventions,
    messages: impl Iterator<Item = &'a StoredMessage>,
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut events = Vec::new();
    for message in messages {
        let header = |name: &str| {
            message
                .headers
                .iter()
                .find(|(n, _)| n.as_str() == name)
                .map(|(_, v)| v.as_str())
        };
        events.extend(decode_message(
            conventions,
            message.sequence,
            &message.subject,
            header,
            &message.payload,
        )?);
    }
    Ok(events)
}

impl EventStore for InMemoryEventStore {
    fn conventions(&self) -> &Conventions {
        &self.conventions
    }

    async fn load(
        &self,
        stream: &StreamRef,
        subject: &str,
        after_sequence: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let streams = self.lock();
        let Some(state) = streams.get(&stream.name) else {
            return Ok(Vec::new());
        };
        decode_all(
            &self.conventions,
            state
                .messages
                .iter()
                .filter(|m| m.sequence > after_sequence && m.subject == subject),
        )
    }

    async fn append(&self, stream: &StreamRef, commit: &Commit) -> Result<Appended, StoreError> {
        let mut streams = self.lock();
        let state = streams.entry(stream.name.clone()).or_default();
        let message_id = commit.message_id();
        if let Some(&sequence) = state.seen_message_ids.get(&message_id) {
            return Ok(Appended {
                sequence,
                duplicate: true,
            });
        }
        state.check(commit)?;
        let sequence = state.push(commit, &self.conventions);
        state.seen_message_ids.insert(message_id, sequence);
        Ok(Appended {
            sequence,
            duplicate: false,
        })
    }

    async fn append_atomic(
        &self,
        stream: &StreamRef,
        commits: &[Commit],
    ) -> Result<Vec<u64>, StoreError> {
        let mut streams = self.lock();
        validate_atomic(commits)?;
        let state = streams.entry(stream.name.clone()).or_default();
        for commit in commits {
            state.check(commit)?;
        }
        Ok(commits
            .iter()
            .map(|commit| state.push(commit, &self.conventions))
            .collect())
    }
}
