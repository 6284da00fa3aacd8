//! Aggregates: pure decision makers.
//!
//! An aggregate is a plain value. [`Aggregate::decide`] turns a command into
//! events or a domain rejection, looking only at the current state;
//! [`Aggregate::apply`] folds one event into the state. Neither does I/O, so
//! domain rules are tested without servers (see [`crate::testing`]), and the
//! [`Repository`](crate::repository::Repository) owns loading, concurrency
//! control and idempotency for every aggregate alike.
//!
//! The [quick start](crate#quick-start) in the crate docs defines one,
//! runs commands on it and tests it.

use crate::event::DomainEvent;

/// A consistency boundary whose state is the fold of its events.
pub trait Aggregate: Default + Clone + Send + Sync + 'static {
    /// Aggregate type, used as the middle token of the subject
    /// `<context>.<aggregate type>.<id>`. Lowercase, no dots.
    const TYPE: &'static str;

    /// What callers ask of it.
    type Command: Send + Sync;
    /// What it records.
    type Event: DomainEvent;
    /// Why it refuses a command: a business-rule rejection, never an I/O error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Decides what happens. Returning no events means "nothing to do" and
    /// writes nothing.
    fn decide(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// Folds one event into the state. Must not fail: events are facts.
    fn apply(&mut self, event: &Self::Event);

    /// Folds many events, starting from the default state.
    fn from_events<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self {
        let mut state = Self::default();
        for event in events {
            state.apply(event);
        }
        state
    }
}
