//! Given/when/then helpers for testing aggregates without any server.
//!
//! ```ignore
//! use es_core::testing::given;
//! given::<Stock>([StockEvent::Created(..)])
//!     .when(StockCommand::Remove { quantity: 5 })
//!     .then_expect_error(|e| matches!(e, StockError::Insufficient { .. }));
//! ```

use crate::aggregate::Aggregate;

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
