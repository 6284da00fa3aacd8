//! Creating and updating Stocklet's streams: the provisioner's work.
//!
//! Services only look their streams up (`nats/permissions.conf` gives them
//! no right to create, update or delete one): a compromised service cannot
//! reconfigure history, and the shipped definitions are applied in one
//! place, by one privileged identity. [`provision`] is that place, run by
//! `stocklet provision` (and by the tests' harnesses) as the NATS user
//! `provision`: every event stream, the dead-letter stream and the
//! snapshot bucket, created or updated to the shipped definitions with the
//! deployment's replicas.

use async_nats::jetstream;
use es_core::snapshot::SnapshotStore;

use crate::lifecycle::RunError;
use crate::streams::{self, Stream};

/// Every stream the provisioner creates, the dead letters included.
pub const PROVISIONED_STREAMS: [Stream; 8] = [
    streams::AUTH,
    streams::USER,
    streams::PRODUCT,
    streams::WAREHOUSE,
    streams::ORDER,
    streams::PAYMENT,
    streams::SHIPPING,
    streams::DEADLETTER,
];

/// Creates or updates every stream and the snapshot bucket to the shipped
/// definitions, with `replicas` replicas each. Idempotent: a second run
/// changes nothing. `client` must be connected as a user allowed to manage
/// streams (the NATS user `provision`).
pub async fn provision(client: &async_nats::Client, replicas: usize) -> Result<(), RunError> {
    let context = jetstream::new(client.clone());
    for stream in PROVISIONED_STREAMS {
        stream
            .definition()?
            .with_replicas(replicas)
            .ensure(&context)
            .await?;
    }
    SnapshotStore::ensure(client.clone(), replicas).await?;
    Ok(())
}
