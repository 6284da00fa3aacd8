//! The user aggregate: one user's profile, from registration to deletion.
//!
//! It does not know whether its email address is free: that is the
//! [`EmailClaim`](super::EmailClaim) aggregate's job, and the API commits a
//! user's change together with the claim's in one atomic batch.
//!
//! A user's id is the [`CustomerId`] the other contexts know them by (the
//! caller's verified identity), so it is held as one.

use es_core::Aggregate;
use stocklet_proto::stocklet::events::v1 as events;

use stocklet_values::{CustomerId, Email};

use super::values::PersonName;

es_core::domain_events! {
    /// What happens to a user.
    pub enum UserEvent {
        Registered(events::UserRegistered),
        EmailUpdated(events::UserEmailUpdated),
        Deleted(events::UserDeleted),
    }
}

/// What is asked of a user. Times are given by the caller so that deciding
/// stays pure.
#[derive(Clone, Debug)]
pub enum UserCommand {
    /// Registers a new user.
    Register {
        /// Their id (the aggregate id).
        id: CustomerId,
        /// Their email address.
        email: Email,
        /// First name.
        first_name: PersonName,
        /// Last name.
        last_name: PersonName,
        /// Now, in Unix milliseconds.
        at_ms: i64,
    },
    /// Changes the email address.
    ChangeEmail {
        /// The new address.
        email: Email,
        /// Now, in Unix milliseconds.
        at_ms: i64,
    },
    /// Deletes the user. Final.
    Delete {
        /// Now, in Unix milliseconds.
        at_ms: i64,
    },
}

/// Why a user command is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// Register on an id that exists.
    #[error("user already exists")]
    AlreadyExists,
    /// Any other command on an id that was never registered.
    #[error("user not found")]
    NotFound,
    /// Any command on a deleted user.
    #[error("user was deleted")]
    Deleted,
}

/// A user's state, folded from their events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct User {
    /// Their id, once registered.
    pub id: Option<CustomerId>,
    /// Their email address, as typed; `None` before registration.
    pub email: Option<Email>,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Whether they registered.
    pub registered: bool,
    /// Whether they were deleted.
    pub deleted: bool,
    /// Registration time.
    pub created_at_ms: i64,
    /// Last change.
    pub updated_at_ms: i64,
}

impl User {
    fn require_live(&self) -> Result<(), UserError> {
        match (self.registered, self.deleted) {
            (false, _) => Err(UserError::NotFound),
            (true, true) => Err(UserError::Deleted),
            (true, false) => Ok(()),
        }
    }

    /// Their id as the events spell it; empty before registration.
    pub fn id_str(&self) -> &str {
        self.id.as_ref().map_or("", CustomerId::as_str)
    }

    /// Their email address as typed; empty before registration.
    pub fn email_str(&self) -> &str {
        self.email.as_ref().map_or("", Email::as_str)
    }

    /// Whether the user exists and was not deleted.
    pub fn is_live(&self) -> bool {
        self.registered && !self.deleted
    }
}

impl Aggregate for User {
    const TYPE: &'static str = "user";
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;

    fn decide(&self, command: &UserCommand) -> Result<Vec<UserEvent>, UserError> {
        match command {
            UserCommand::Register {
                id,
                email,
                first_name,
                last_name,
                at_ms,
            } => {
                if self.registered {
                    // Ids are fresh per registration, so the same id means
                    // our own earlier attempt landed: nothing more to do.
                    return if self.id.as_ref() == Some(id) && !self.deleted {
                        Ok(Vec::new())
                    } else {
                        Err(UserError::AlreadyExists)
                    };
                }
                Ok(vec![
                    events::UserRegistered {
                        user_id: id.to_string(),
                        email: email.as_str().to_owned(),
                        first_name: first_name.as_str().to_owned(),
                        last_name: last_name.as_str().to_owned(),
                        occurred_at_ms: *at_ms,
                        // The hash is handed to auth privately, never here.
                        ..Default::default()
                    }
                    .into(),
                ])
            }
            UserCommand::ChangeEmail { email, at_ms } => {
                self.require_live()?;
                if self.email.as_ref() == Some(email) {
                    return Ok(Vec::new());
                }
                Ok(vec![
                    events::UserEmailUpdated {
                        user_id: self.id_str().to_owned(),
                        email: email.as_str().to_owned(),
                        previous_email: self.email_str().to_owned(),
                        occurred_at_ms: *at_ms,
                    }
                    .into(),
                ])
            }
            UserCommand::Delete { at_ms } => {
                self.require_live()?;
                Ok(vec![
                    events::UserDeleted {
                        user_id: self.id_str().to_owned(),
                        email: self.email_str().to_owned(),
                        occurred_at_ms: *at_ms,
                    }
                    .into(),
                ])
            }
        }
    }

    fn apply(&mut self, event: &UserEvent) {
        match event {
            UserEvent::Registered(e) => {
                self.id = Some(CustomerId::from_recorded(&e.user_id));
                self.email = Some(Email::from_recorded(&e.email));
                self.first_name.clone_from(&e.first_name);
                self.last_name.clone_from(&e.last_name);
                self.registered = true;
                self.created_at_ms = e.occurred_at_ms;
                self.updated_at_ms = e.occurred_at_ms;
            }
            UserEvent::EmailUpdated(e) => {
                self.email = Some(Email::from_recorded(&e.email));
                self.updated_at_ms = e.occurred_at_ms;
            }
            UserEvent::Deleted(e) => {
                self.deleted = true;
                self.updated_at_ms = e.occurred_at_ms;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use es_core::testing::{given, given_no_events};

    use super::*;

    fn registered() -> UserEvent {
        events::UserRegistered {
            user_id: "u1".into(),
            email: "Ann@example.com".into(),
            first_name: "Ann".into(),
            last_name: "Lee".into(),
            occurred_at_ms: 1,
            ..Default::default()
        }
        .into()
    }

    fn email(raw: &str) -> Email {
        Email::parse(raw).unwrap()
    }

    #[test]
    fn a_new_user_registers_without_any_password_hash() {
        let state = given_no_events::<User>()
            .when(UserCommand::Register {
                id: CustomerId::parse("u1").unwrap(),
                email: email("Ann@example.com"),
                first_name: PersonName::parse("Ann").unwrap(),
                last_name: PersonName::parse("Lee").unwrap(),
                at_ms: 1,
            })
            .then_expect_events([registered()]);
        assert!(state.is_live());
        assert_eq!(state.email_str(), "Ann@example.com");
    }

    #[test]
    fn registering_again_is_a_no_op_for_the_same_id_and_refused_otherwise() {
        given::<User>([registered()])
            .when(UserCommand::Register {
                id: CustomerId::parse("u1").unwrap(),
                email: email("Ann@example.com"),
                first_name: PersonName::parse("Ann").unwrap(),
                last_name: PersonName::parse("Lee").unwrap(),
                at_ms: 2,
            })
            .then_expect_events([]);
        given::<User>([registered()])
            .when(UserCommand::Register {
                id: CustomerId::parse("u2").unwrap(),
                email: email("other@example.com"),
                first_name: PersonName::parse("B").unwrap(),
                last_name: PersonName::parse("C").unwrap(),
                at_ms: 2,
            })
            .then_expect_error(|e| *e == UserError::AlreadyExists);
    }

    #[test]
    fn changing_the_email_records_the_previous_one() {
        let state = given::<User>([registered()])
            .when(UserCommand::ChangeEmail {
                email: email("ann@new.example"),
                at_ms: 5,
            })
            .then_expect_events([events::UserEmailUpdated {
                user_id: "u1".into(),
                email: "ann@new.example".into(),
                previous_email: "Ann@example.com".into(),
                occurred_at_ms: 5,
            }
            .into()]);
        assert_eq!(state.updated_at_ms, 5);
    }

    #[test]
    fn changing_to_the_same_email_does_nothing() {
        given::<User>([registered()])
            .when(UserCommand::ChangeEmail {
                email: email("Ann@example.com"),
                at_ms: 5,
            })
            .then_expect_events([]);
    }

    #[test]
    fn deleting_releases_the_email_in_the_event_and_is_final() {
        let deleted: UserEvent = events::UserDeleted {
            user_id: "u1".into(),
            email: "Ann@example.com".into(),
            occurred_at_ms: 9,
        }
        .into();
        given::<User>([registered()])
            .when(UserCommand::Delete { at_ms: 9 })
            .then_expect_events([deleted.clone()]);
        given::<User>([registered(), deleted.clone()])
            .when(UserCommand::Delete { at_ms: 10 })
            .then_expect_error(|e| *e == UserError::Deleted);
        given::<User>([registered(), deleted])
            .when(UserCommand::ChangeEmail {
                email: email("x@example.com"),
                at_ms: 10,
            })
            .then_expect_error(|e| *e == UserError::Deleted);
    }

    #[test]
    fn unknown_users_cannot_change() {
        given_no_events::<User>()
            .when(UserCommand::Delete { at_ms: 1 })
            .then_expect_error(|e| *e == UserError::NotFound);
    }
}
