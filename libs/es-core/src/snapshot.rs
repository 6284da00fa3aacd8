//! Snapshots: keep loading fast for aggregates with long histories.
//!
//! Some aggregates live long and busy lives: a product's stock sees two
//! events for every order that contains it. Folding the whole history on
//! every command would grow without bound, so a repository may keep a
//! snapshot of an aggregate's state every `every` events and load only the
//! events after it. The benchmark (`make bench`) shows where this pays.
//!
//! Snapshots live in a JetStream key-value bucket (`KV_snapshots`, subjects
//! `$KV.snapshots.<aggregate type>.<id>`, one message per key), so `nats kv`
//! can inspect them. They are a cache: the stream stays the only source of
//! truth, a missing or unreadable snapshot means a full load, and a snapshot
//! whose format version is not the aggregate's current one is ignored.
//!
//! **Idempotency across a snapshot.** A snapshot remembers the most recent
//! [`RECENT_KEYS`] dedupe keys with their positions, so a repeat of a recent
//! command is still recognised. Older keys are forgotten with the folded
//! history: aggregates whose commands may repeat long after the fact must be
//! idempotent in their own state too (the saga's aggregates key every step
//! by order id).

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use prost::Message as _;

use crate::aggregate::Aggregate;
use crate::store::StoreError;
use crate::streams::ProvisionError;

/// The key-value bucket that holds snapshots.
pub const BUCKET: &str = "snapshots";
/// Dedupe keys a snapshot remembers.
pub const RECENT_KEYS: usize = 256;

/// An aggregate whose state can be snapshotted.
pub trait SnapshotState: Aggregate {
    /// Format version of [`SnapshotState::to_snapshot`]; bump it when the
    /// encoding changes and older snapshots are ignored.
    const SNAPSHOT_VERSION: u32;

    /// Encodes the state.
    fn to_snapshot(&self) -> Vec<u8>;

    /// Decodes a state encoded by the same format version.
    fn from_snapshot(bytes: &[u8]) -> Option<Self>;
}

/// One stored snapshot.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SnapshotRecord {
    /// The aggregate's [`SnapshotState::SNAPSHOT_VERSION`].
    #[prost(uint32, tag = "1")]
    pub format_version: u32,
    /// Stream sequence of the last event folded into `state`.
    #[prost(uint64, tag = "2")]
    pub sequence: u64,
    /// The encoded state.
    #[prost(bytes = "bytes", tag = "3")]
    pub state: Bytes,
    /// The most recent dedupe keys and their commits' positions.
    #[prost(message, repeated, tag = "4")]
    pub recent_keys: Vec<DedupeEntry>,
}

/// A dedupe key remembered by a snapshot.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct DedupeEntry {
    /// The key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Stream sequence of the commit that used it.
    #[prost(uint64, tag = "2")]
    pub sequence: u64,
}

/// Reads and writes snapshots in the bucket.
#[derive(Clone, Debug)]
pub struct SnapshotStore {
    client: async_nats::Client,
    context: jetstream::Context,
    timeout: Duration,
}

impl SnapshotStore {
    /// The bucket's stream configuration (what `nats kv add snapshots`
    /// would create: one message per key, rollups, direct gets).
    pub fn bucket_config(replicas: usize) -> stream::Config {
        stream::Config {
            name: format!("KV_{BUCKET}"),
            description: Some("Aggregate snapshots: a cache over the event streams".into()),
            subjects: vec![format!("$KV.{BUCKET}.>")],
            max_messages_per_subject: 1,
            discard: stream::DiscardPolicy::New,
            allow_rollup: true,
            allow_direct: true,
            deny_delete: true,
            storage: stream::StorageType::File,
            num_replicas: replicas.max(1),
            ..Default::default()
        }
    }

    /// Creates (or updates) the bucket and returns a store on it.
    pub async fn ensure(
        client: async_nats::Client,
        replicas: usize,
    ) -> Result<Self, ProvisionError> {
        let context = jetstream::new(client.clone());
        context
            .create_or_update_stream(Self::bucket_config(replicas))
            .await
            .map_err(|e| ProvisionError::Server {
                stream: format!("KV_{BUCKET}"),
                reason: e.to_string(),
            })?;
        Ok(Self {
            client,
            context,
            timeout: crate::jetstream::DEFAULT_TIMEOUT,
        })
    }

    /// A store on the bucket, which must exist already: for a process that
    /// may read and write snapshots but not create streams (see
    /// [`StreamDefinition::lookup`](crate::streams::StreamDefinition::lookup)).
    pub async fn open(client: async_nats::Client) -> Result<Self, ProvisionError> {
        let context = jetstream::new(client.clone());
        let name = format!("KV_{BUCKET}");
        match context.get_stream(&name).await {
            Ok(_) => Ok(Self {
                client,
                context,
                timeout: crate::jetstream::DEFAULT_TIMEOUT,
            }),
            Err(error)
                if matches!(
                    error.kind(),
                    jetstream::context::GetStreamErrorKind::JetStream(_)
                ) =>
            {
                Err(ProvisionError::NotProvisioned {
                    stream: name,
                    reason: format!("the server answered: {error}"),
                })
            }
            Err(error) => Err(ProvisionError::Server {
                stream: name,
                reason: error.to_string(),
            }),
        }
    }

    fn subject(aggregate_type: &str, id: &str) -> String {
        format!("$KV.{BUCKET}.{aggregate_type}.{id}")
    }

    /// The latest snapshot of an aggregate, if any.
    pub async fn get(
        &self,
        aggregate_type: &str,
        id: &str,
    ) -> Result<Option<SnapshotRecord>, StoreError> {
        let request = format!(
            "$JS.API.DIRECT.GET.KV_{BUCKET}.{}",
            Self::subject(aggregate_type, id)
        );
        let reply = tokio::time::timeout(self.timeout, self.client.request(request, Bytes::new()))
            .await
            .map_err(|_| StoreError::Timeout)?
            .map_err(|e| StoreError::Unavailable(format!("snapshot get: {e}")))?;
        match reply.status.map(|status| status.as_u16()) {
            None => Ok(SnapshotRecord::decode(reply.payload).ok()),
            Some(404) => Ok(None),
            Some(code) => Err(StoreError::Unavailable(format!(
                "snapshot get failed: {code} {}",
                reply.description.unwrap_or_default()
            ))),
        }
    }

    /// Stores a snapshot, replacing the previous one.
    pub async fn put(
        &self,
        aggregate_type: &str,
        id: &str,
        record: &SnapshotRecord,
    ) -> Result<(), StoreError> {
        self.context
            .publish(
                Self::subject(aggregate_type, id),
                Bytes::from(record.encode_to_vec()),
            )
            .await
            .map_err(|e| StoreError::Unavailable(format!("snapshot put: {e}")))?
            .await
            .map_err(|e| StoreError::Unavailable(format!("snapshot put: {e}")))?;
        Ok(())
    }
}
