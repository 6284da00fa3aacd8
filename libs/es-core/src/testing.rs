//! Given/when/then helpers for testing aggregates without any server, and
//! [`append_event`] for integration tests that play another service.
//!
//! ```ignore
//! use es_core::testing::given;
//! given::<Stock>([StockEvent::Created(..)])
//!     .when(StockCommand::Remove { quantity: 5 })
//!     .then_expect_error(|e| matches!(e, StockError::Insufficient { .. }));
//! ```

use prost::{Message, Name};

use crate::aggregate::Aggregate;
use crate::envelope::{CommandContext, now_ms};
use crate::event::RawEvent;
use crate::store::{Appended, Commit, EventStore, NewEvent, StoreError, StreamRef};

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
