//! Helpers for testing domain logic, projections and reactions without any
//! server.
//!
//! - [`given`] / [`given_no_events`] → [`Given::when`] → [`Then`]: an
//!   aggregate's decisions, as given/when/then.
//! - [`deliver`]: hands stored events to a [`Reaction`] the way the
//!   [`Reactor`](crate::reactor::Reactor) would, so a reaction runs against
//!   the [`InMemoryEventStore`](crate::InMemoryEventStore).
//! - [`recorded`]: decodes stored events into the [`Recorded`] events a
//!   projection is handed, for a read model folded in memory.
//! - [`append_event`]: appends one event as another service would, for
//!   tests that play a service they do not run.
//!
//! ```
//! use es_core::testing::{given, given_no_events};
//! use es_core::{Aggregate, domain_events};
//!
//! #[derive(Clone, PartialEq, prost::Message)]
//! pub struct Added {
//!     #[prost(uint32, tag = "1")]
//!     pub quantity: u32,
//! }
//! impl prost::Name for Added {
//!     const NAME: &'static str = "Added";
//!     const PACKAGE: &'static str = "shop.stock.v1";
//! }
//!
//! #[derive(Clone, PartialEq, prost::Message)]
//! pub struct Removed {
//!     #[prost(uint32, tag = "1")]
//!     pub quantity: u32,
//! }
//! impl prost::Name for Removed {
//!     const NAME: &'static str = "Removed";
//!     const PACKAGE: &'static str = "shop.stock.v1";
//! }
//!
//! domain_events! {
//!     pub enum StockEvent {
//!         Added(Added),
//!         Removed(Removed),
//!     }
//! }
//!
//! #[derive(Clone, Debug, Default)]
//! pub struct Stock {
//!     on_hand: u32,
//! }
//!
//! pub enum StockCommand {
//!     Add { quantity: u32 },
//!     Remove { quantity: u32 },
//! }
//!
//! #[derive(Debug, thiserror::Error)]
//! pub enum StockError {
//!     #[error("only {on_hand} on hand")]
//!     Insufficient { on_hand: u32 },
//! }
//!
//! impl Aggregate for Stock {
//!     const TYPE: &'static str = "stock";
//!     type Command = StockCommand;
//!     type Event = StockEvent;
//!     type Error = StockError;
//!
//!     fn decide(&self, command: &StockCommand) -> Result<Vec<StockEvent>, StockError> {
//!         match *command {
//!             StockCommand::Add { quantity } => Ok(vec![Added { quantity }.into()]),
//!             StockCommand::Remove { quantity } if quantity > self.on_hand => {
//!                 Err(StockError::Insufficient { on_hand: self.on_hand })
//!             }
//!             StockCommand::Remove { quantity } => Ok(vec![Removed { quantity }.into()]),
//!         }
//!     }
//!
//!     fn apply(&mut self, event: &StockEvent) {
//!         match event {
//!             StockEvent::Added(e) => self.on_hand += e.quantity,
//!             StockEvent::Removed(e) => self.on_hand -= e.quantity,
//!         }
//!     }
//! }
//!
//! // Accepted: exactly these events, and the state after them.
//! let stock = given_no_events::<Stock>()
//!     .when(StockCommand::Add { quantity: 3 })
//!     .then_expect_events([Added { quantity: 3 }.into()]);
//! assert_eq!(stock.on_hand, 3);
//!
//! // Rejected by the business rule.
//! given::<Stock>([Added { quantity: 3 }.into()])
//!     .when(StockCommand::Remove { quantity: 5 })
//!     .then_expect_error(|e| matches!(e, StockError::Insufficient { on_hand: 3 }));
//! ```

use prost::{Message, Name};

use crate::aggregate::Aggregate;
use crate::consumer::{decode_wanted, is_wanted};
use crate::envelope::{CommandContext, now_ms};
use crate::event::{DecodeError, EventSet, RawEvent, Upcasters};
use crate::reactor::{Reaction, ReactionError};
use crate::store::{
    Appended, Commit, EventStore, NewEvent, Recorded, StoreError, StoredEvent, StreamRef,
};

/// Hands `events` to `reaction` as the [`Reactor`](crate::reactor::Reactor)
/// would, without a server: in the order given (stream order, when they come
/// from [`InMemoryEventStore::all_events`](crate::InMemoryEventStore::all_events)),
/// skipping every event whose type the reaction's
/// [`Event`](Reaction::Event) set does not declare, and decoding the rest
/// with [`EventSet::decode_stored`]. Nothing is upcast: hand it current
/// events, or upcast them first with [`Upcasters::apply`].
///
/// Returns how many events the reaction handled. It stops at the first
/// error: an event that does not decode is [`ReactionError::Permanent`], as
/// in the reactor, and a reaction's own error is returned as it is. There
/// are no retries, no backoff and no dead letters here; call `deliver`
/// again to play a redelivery.
pub async fn deliver<R: Reaction>(
    reaction: &R,
    events: impl IntoIterator<Item = StoredEvent>,
) -> Result<usize, ReactionError> {
    let mut handled = 0;
    for stored in events.into_iter().filter(is_wanted::<R::Event>) {
        let event = R::Event::decode_stored(&stored.raw)
            .map_err(|error| ReactionError::Permanent(error.to_string()))?;
        let recorded = Recorded {
            meta: stored.meta,
            event,
        };
        reaction.react(&recorded).await?;
        handled += 1;
    }
    Ok(handled)
}

/// The events of `events` that a handler of `E` declared, decoded, in the
/// order given, as a [`Projection`](crate::projection::Projection) without
/// upcasters is handed them: the other types are left out. For a read model
/// kept in memory, fold these into it; a read model that remembers the last
/// `event.meta.stream_sequence` it applied can catch up with only the newer
/// events on its next call.
pub fn recorded<E: EventSet>(
    events: impl IntoIterator<Item = StoredEvent>,
) -> Result<Vec<Recorded<E>>, DecodeError> {
    decode_wanted(events.into_iter().collect(), &Upcasters::default())
}

/// Appends one protobuf event (schema version 1, a fresh event id, no
/// saga context) after the last event of `aggregate_type`/`aggregate_id`
/// on `stream`, as the service that owns the stream would: how an
/// integration test feeds a service the events of a service it does not
/// run.
pub async fn append_event<S: EventStore, E: Message + Name>(
    store: &S,
    stream: &StreamRef,
    aggregate_type: &str,
    aggregate_id: &str,
    event: E,
) -> Result<Appended, StoreError> {
    let subject = stream.subject(aggregate_type, aggregate_id);
    let expected_sequence = store
        .load(stream, &subject, 0)
        .await?
        .last()
        .map_or(0, |e| e.meta.stream_sequence);
    let commit = Commit {
        subject,
        expected_sequence,
        aggregate_type: aggregate_type.into(),
        aggregate_id: aggregate_id.into(),
        events: vec![NewEvent {
            event_id: uuid::Uuid::now_v7().to_string(),
            raw: RawEvent {
                event_type: E::full_name(),
                schema_version: 1,
                payload: event.encode_to_vec().into(),
            },
        }],
        context: CommandContext::default(),
        timestamp_ms: now_ms(),
    };
    store.append(stream, &commit).await
}

/// An aggregate built from past events, waiting for a command.
#[derive(Debug)]
pub struct Given<A: Aggregate> {
    state: A,
}

/// Starts a test from these past events.
pub fn given<A: Aggregate>(events: impl IntoIterator<Item = A::Event>) -> Given<A> {
    let mut state = A::default();
    for event in events {
        state.apply(&event);
    }
    Given { state }
}

/// Starts a test from an aggregate with no history.
pub fn given_no_events<A: Aggregate>() -> Given<A> {
    Given {
        state: A::default(),
    }
}

impl<A: Aggregate> Given<A> {
    /// Decides `command` against the state so far.
    pub fn when(self, command: A::Command) -> Then<A> {
        let result = self.state.decide(&command);
        Then {
            state: self.state,
            result,
        }
    }

    /// The state folded from the given events.
    pub fn state(&self) -> &A {
        &self.state
    }
}

/// The outcome of a decision, ready for assertions.
#[derive(Debug)]
pub struct Then<A: Aggregate> {
    state: A,
    result: Result<Vec<A::Event>, A::Error>,
}

impl<A: Aggregate> Then<A>
where
    A::Event: PartialEq,
    A::Error: std::fmt::Debug,
{
    /// Asserts the command was accepted with exactly these events, and
    /// returns the state after applying them.
    #[track_caller]
    pub fn then_expect_events(self, expected: impl IntoIterator<Item = A::Event>) -> A {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        match self.result {
            Ok(events) => {
                assert_eq!(events, expected, "the command produced other events");
                let mut state = self.state;
                for event in &events {
                    state.apply(event);
                }
                state
            }
            Err(error) => panic!("expected events {expected:?}, got error {error:?}"),
        }
    }

    /// Asserts the command was rejected with an error matching `predicate`.
    #[track_caller]
    pub fn then_expect_error(self, predicate: impl FnOnce(&A::Error) -> bool) {
        match self.result {
            Ok(events) => panic!("expected an error, got events {events:?}"),
            Err(error) => assert!(predicate(&error), "unexpected error {error:?}"),
        }
    }

    /// The raw decision, for assertions the helpers do not cover.
    pub fn result(self) -> Result<Vec<A::Event>, A::Error> {
        self.result
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use bytes::Bytes;

    use super::*;
    use crate::memory::InMemoryEventStore;

    #[derive(Clone, PartialEq, prost::Message)]
    struct Wanted {
        #[prost(uint32, tag = "1")]
        n: u32,
    }
    impl Name for Wanted {
        const NAME: &'static str = "Wanted";
        const PACKAGE: &'static str = "test.v1";
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct Other {}
    impl Name for Other {
        const NAME: &'static str = "Other";
        const PACKAGE: &'static str = "test.v1";
    }

    /// Declared but never stored.
    #[derive(Clone, PartialEq, prost::Message)]
    struct Spare {}
    impl Name for Spare {
        const NAME: &'static str = "Spare";
        const PACKAGE: &'static str = "test.v1";
    }

    crate::domain_events! {
        enum Wants {
            Wanted(Wanted),
            Spare(Spare),
        }
    }

    #[derive(Default)]
    struct Seen(Mutex<Vec<(u64, u32)>>);

    impl Reaction for Seen {
        type Event = Wants;

        async fn react(&self, event: &Recorded<Wants>) -> Result<(), ReactionError> {
            let Wants::Wanted(wanted) = &event.event else {
                return Ok(());
            };
            if wanted.n == 0 {
                return Err(ReactionError::Transient("zero".into()));
            }
            self.0
                .lock()
                .unwrap()
                .push((event.meta.stream_sequence, wanted.n));
            Ok(())
        }
    }

    async fn stored() -> Vec<StoredEvent> {
        let store = InMemoryEventStore::new();
        let stream = StreamRef::new("T", "t");
        append_event(&store, &stream, "a", "1", Wanted { n: 1 })
            .await
            .unwrap();
        append_event(&store, &stream, "b", "2", Other {})
            .await
            .unwrap();
        append_event(&store, &stream, "a", "1", Wanted { n: 3 })
            .await
            .unwrap();
        store.all_events(&stream).unwrap()
    }

    #[tokio::test]
    async fn deliver_skips_undeclared_types_and_keeps_stream_order() {
        let seen = Seen::default();
        assert_eq!(deliver(&seen, stored().await).await.unwrap(), 2);
        assert_eq!(*seen.0.lock().unwrap(), [(1, 1), (3, 3)]);
    }

    #[tokio::test]
    async fn deliver_stops_at_the_first_failure() {
        let mut events = stored().await;
        let mut malformed = events[0].clone();
        malformed.raw.payload = Bytes::from_static(&[0xff]);
        events.insert(1, malformed);
        let seen = Seen::default();
        let error = deliver(&seen, events).await.unwrap_err();
        assert!(matches!(error, ReactionError::Permanent(_)), "{error}");
        assert_eq!(*seen.0.lock().unwrap(), [(1, 1)]);

        let mut zero = stored().await;
        zero[0].raw.payload = Wanted { n: 0 }.encode_to_vec().into();
        let error = deliver(&seen, zero).await.unwrap_err();
        assert!(matches!(error, ReactionError::Transient(_)), "{error}");
    }

    #[tokio::test]
    async fn recorded_decodes_only_the_declared_types() {
        let events = recorded::<Wants>(stored().await).unwrap();
        let seen: Vec<(u64, Wants)> = events
            .into_iter()
            .map(|r| (r.meta.stream_sequence, r.event))
            .collect();
        assert_eq!(
            seen,
            [
                (1, Wants::Wanted(Wanted { n: 1 })),
                (3, Wants::Wanted(Wanted { n: 3 }))
            ]
        );
        assert_eq!(recorded::<RawEvent>(stored().await).unwrap().len(), 3);
    }
}
