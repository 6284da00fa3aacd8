#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod aggregate;
pub mod consumer;
pub mod deadletter;
pub mod envelope;
pub mod event;
pub mod jetstream;
pub mod memory;
pub mod metrics;
#[cfg(feature = "postgres")]
pub mod projection;
pub mod reactor;
pub mod repository;
pub mod snapshot;
pub mod store;
pub mod streams;
pub mod testing;

pub use aggregate::Aggregate;
pub use envelope::{AggregateId, CommandContext, EventMeta};
pub use event::{DecodeError, DomainEvent, EventSet, RawEvent, Upcaster, Upcasters};
pub use jetstream::JetStreamEventStore;
pub use memory::InMemoryEventStore;
pub use repository::{
    AtomicDecision, AtomicExecuted, ExecuteError, Executed, Loaded, PendingSnapshot, ReadModel,
    Repository, RetryPolicy,
};
pub use store::{EventStore, Recorded, StoreError, StoredEvent, StreamRef};

// The clients es-core is built on, so applications use the same versions.
pub use async_nats;
#[cfg(feature = "postgres")]
pub use sqlx;

// Re-exported for the `domain_events!` macro.
#[doc(hidden)]
pub use bytes;
#[doc(hidden)]
pub use prost;
