//! Reactions to other services' events: balances follow the users.
//!
//! One durable consumer per source stream. Each reaction runs a command
//! whose dedupe key comes from the source event
//! ([`CommandContext::caused_by`]), and each is idempotent in the state it
//! writes too (opening an open balance, closing a closed one, debiting an order whose
//! `Payment` is settled decides nothing), so a redelivered event changes
//! nothing however late it comes, even after its key has left a
//! snapshot's memory.
//!
//! - `USER`: `UserRegistered` opens the user's balance at zero;
//!   `UserDeleted` closes it. The two may be handled out of order, which
//!   the [`Balance`] aggregate tolerates.
//!
//! - `SHIPPING`, `ORDER`: the saga's steps (debit on `ShipmentAllocated`,
//!   reverse on `OrderCancelled`), in [`saga`].

pub mod saga;

pub use saga::SagaReaction;

use es_core::envelope::EventMeta;
use es_core::reactor::{Reaction, ReactionError};
use es_core::{AggregateId, CommandContext, JetStreamEventStore, Recorded, Repository};
use stocklet_proto::stocklet::events::v1 as events;

use crate::domain::{Balance, BalanceCommand, CustomerId};

/// The handler name in the dedupe key of a balance opened for a new user.
pub const OPEN_BALANCE: &str = "payment.open-balance";
/// The handler name in the dedupe key of a deleted user's balance closing.
pub const CLOSE_BALANCE: &str = "payment.close-balance";

es_core::domain_events! {
    /// The user events that balances follow.
    pub enum UserEvent {
        /// A user registered: open their balance.
        Registered(events::UserRegistered),
        /// A user was deleted: close their balance.
        Deleted(events::UserDeleted),
    }
}

/// Opens and closes balances as users come and go.
#[derive(Clone)]
pub struct UserReaction {
    balances: Repository<Balance, JetStreamEventStore>,
}

impl UserReaction {
    /// A reaction writing through `balances`.
    pub fn new(balances: Repository<Balance, JetStreamEventStore>) -> Self {
        Self { balances }
    }

    async fn run(
        &self,
        source: &EventMeta,
        user_id: &str,
        handler: &str,
        command: impl FnOnce(CustomerId) -> BalanceCommand,
    ) -> Result<(), ReactionError> {
        let id = AggregateId::parse(user_id)
            .map_err(|e| ReactionError::Permanent(format!("bad user id: {e}")))?;
        let customer_id = CustomerId::parse(user_id)
            .map_err(|e| ReactionError::Permanent(format!("bad user id: {e}")))?;
        let context = CommandContext::caused_by(source, handler);
        match self
            .balances
            .execute(&id, &command(customer_id), &context)
            .await
        {
            Ok(_) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

impl Reaction for UserReaction {
    type Event = UserEvent;

    async fn react(&self, stored: &Recorded<UserEvent>) -> Result<(), ReactionError> {
        let at_ms = es_core::envelope::now_ms();
        match &stored.event {
            UserEvent::Registered(registered) => {
                self.run(
                    &stored.meta,
                    &registered.user_id,
                    OPEN_BALANCE,
                    |customer_id| BalanceCommand::Open { customer_id, at_ms },
                )
                .await
            }
            UserEvent::Deleted(deleted) => {
                self.run(
                    &stored.meta,
                    &deleted.user_id,
                    CLOSE_BALANCE,
                    |customer_id| BalanceCommand::Close { customer_id, at_ms },
                )
                .await
            }
        }
    }
}
