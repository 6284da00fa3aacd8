//! Credentials follow users: created on `UserRegistered` (with the hash the
//! user service handed over on the private AUTH stream, see
//! [`stocklet_service_kit::registration`]), their login email changed on
//! `UserEmailUpdated`, removed on `UserDeleted`.
//!
//! A `UserRegistered` written before the hand-over existed carries the hash
//! itself (its deprecated `password_hash`); it is still honoured, so old
//! histories replay to the same credentials.
//!
//! Each command's dedupe key is derived from the source event, so a
//! redelivered event changes nothing twice. Events of one user may be
//! handled out of order: a removal that comes first leaves a tombstone that
//! refuses the late creation; an email change that comes before the
//! creation fails transiently and is retried after it.
//!
//! Addresses and hashes are taken as the user service recorded them
//! (`Email::from_recorded`): it parsed them before it wrote the event.

use es_core::reactor::{Reaction, ReactionError};
use es_core::{
    AggregateId, CommandContext, ExecuteError, JetStreamEventStore, Recorded, Repository,
};
use stocklet_proto::stocklet::events::v1 as events;
use stocklet_service_kit::registration;

use crate::domain::{Credentials, CredentialsCommand, CredentialsError, Email, PasswordHash, Role};

/// The durable consumer's name.
pub const DURABLE_NAME: &str = "auth-from-user";
/// The handler name in dedupe keys.
const HANDLER: &str = "auth-credentials";

es_core::domain_events! {
    /// The user service's events this service reacts to.
    pub enum UserEvent {
        Registered(events::UserRegistered),
        EmailUpdated(events::UserEmailUpdated),
        Deleted(events::UserDeleted),
    }
}

/// Keeps credentials in step with users.
#[derive(Clone, Debug)]
pub struct UserReactions {
    credentials: Repository<Credentials, JetStreamEventStore>,
}

impl UserReactions {
    /// Reactions writing through `credentials` (whose stream, AUTH, also
    /// holds the handed-over hashes).
    pub fn new(credentials: Repository<Credentials, JetStreamEventStore>) -> Self {
        Self { credentials }
    }

    /// The password hash of a registration: handed over on the AUTH stream,
    /// or, for events from before the hand-over, inside the event.
    async fn password_hash(
        &self,
        event: &events::UserRegistered,
    ) -> Result<PasswordHash, ReactionError> {
        let repository = &self.credentials;
        if let Some(hash) =
            registration::take(repository.store(), repository.stream(), &event.user_id).await?
        {
            return Ok(hash);
        }
        #[allow(deprecated)] // read only from events written before the hand-over
        let legacy = &event.password_hash;
        if legacy.is_empty() {
            // Handed over before UserRegistered was stored, so this is a
            // replica still catching up: try again shortly.
            Err(ReactionError::NotYet(
                "the registration's password hash is not readable yet".into(),
            ))
        } else {
            Ok(PasswordHash::from_phc(legacy.clone()))
        }
    }
}

impl Reaction for UserReactions {
    type Event = UserEvent;

    async fn react(&self, stored: &Recorded<UserEvent>) -> Result<(), ReactionError> {
        let (user_id, command) = match stored.event.clone() {
            UserEvent::Registered(e) => (
                e.user_id.clone(),
                CredentialsCommand::Create {
                    password_hash: self.password_hash(&e).await?,
                    user_id: e.user_id,
                    email: Email::from_recorded(&e.email),
                    role: Role::Customer,
                    at_ms: e.occurred_at_ms,
                },
            ),
            UserEvent::EmailUpdated(e) => (
                e.user_id,
                CredentialsCommand::ChangeEmail {
                    email: Email::from_recorded(&e.email),
                    at_ms: e.occurred_at_ms,
                },
            ),
            UserEvent::Deleted(e) => (
                e.user_id.clone(),
                CredentialsCommand::Remove {
                    user_id: e.user_id,
                    at_ms: e.occurred_at_ms,
                },
            ),
        };
        let id =
            AggregateId::parse(user_id).map_err(|e| ReactionError::Permanent(e.to_string()))?;
        let context = CommandContext::caused_by(&stored.meta, HANDLER);
        match self.credentials.execute(&id, &command, &context).await {
            Ok(_) => Ok(()),
            // Already done, or overtaken by the user's deletion: nothing to do.
            Err(ExecuteError::Rejected(
                CredentialsError::AlreadyExists | CredentialsError::Removed,
            )) => Ok(()),
            // The creation has not been handled yet; it will be.
            Err(ExecuteError::Rejected(CredentialsError::NotFound)) => {
                Err(ReactionError::NotYet("credentials not created yet".into()))
            }
            Err(error) => Err(error.into()),
        }
    }
}
