//! The credentials aggregate: how one user logs in (email, password hash,
//! role), keyed by the user's id.
//!
//! Credentials are made by reacting to the user service's events, which a
//! reactor may handle out of order. So removal is a tombstone that may come
//! first: removing credentials that were never created records the removal,
//! and a creation that arrives afterwards is refused as
//! [`CredentialsError::Removed`], which the reactor treats as done.

use es_core::Aggregate;
use stocklet_proto::stocklet::events::v1 as events;

use stocklet_values::{Email, PasswordHash};

use super::values::Role;

es_core::domain_events! {
    /// What happens to a user's credentials.
    pub enum CredentialsEvent {
        Created(events::CredentialsCreated),
        PasswordChanged(events::PasswordChanged),
        EmailChanged(events::CredentialsEmailChanged),
        Removed(events::CredentialsRemoved),
    }
}

/// What is asked of credentials. Times are given by the caller so that
/// deciding stays pure.
#[derive(Clone, Debug)]
pub enum CredentialsCommand {
    /// Creates the credentials of a user.
    Create {
        /// The user's id (the aggregate id).
        user_id: String,
        /// The email address to log in with.
        email: Email,
        /// The password's Argon2id hash.
        password_hash: PasswordHash,
        /// The role granted.
        role: Role,
        /// Now, in Unix milliseconds.
        at_ms: i64,
    },
    /// Replaces the password hash.
    ChangePassword {
        /// The new hash.
        password_hash: PasswordHash,
        /// Now, in Unix milliseconds.
        at_ms: i64,
    },
    /// Follows a change of the user's email address.
    ChangeEmail {
        /// The new address.
        email: Email,
        /// Now, in Unix milliseconds.
        at_ms: i64,
    },
    /// Removes the credentials for good.
    Remove {
        /// The user's id (the aggregate id).
        user_id: String,
        /// Now, in Unix milliseconds.
        at_ms: i64,
    },
}

/// Why a credentials command is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// Create on credentials that exist.
    #[error("credentials already exist")]
    AlreadyExists,
    /// A change to credentials that were never created.
    #[error("credentials not found")]
    NotFound,
    /// Any command on removed credentials.
    #[error("credentials were removed")]
    Removed,
}

/// A user's credentials, folded from their events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    /// The user's id.
    pub user_id: String,
    /// The email address to log in with, as typed; `None` before creation.
    pub email: Option<Email>,
    /// The current password hash.
    pub password_hash: PasswordHash,
    /// The role granted.
    pub role: Option<Role>,
    /// Whether they were created.
    pub created: bool,
    /// Whether they were removed (possibly before being created).
    pub removed: bool,
}

impl Credentials {
    fn require_live(&self) -> Result<(), CredentialsError> {
        match (self.created, self.removed) {
            (_, true) => Err(CredentialsError::Removed),
            (false, false) => Err(CredentialsError::NotFound),
            (true, false) => Ok(()),
        }
    }

    /// Whether someone can log in with these credentials.
    pub fn is_live(&self) -> bool {
        self.created && !self.removed
    }
}

impl Aggregate for Credentials {
    const TYPE: &'static str = "credentials";
    type Command = CredentialsCommand;
    type Event = CredentialsEvent;
    type Error = CredentialsError;

    fn decide(
        &self,
        command: &CredentialsCommand,
    ) -> Result<Vec<CredentialsEvent>, CredentialsError> {
        match command {
            CredentialsCommand::Create {
                user_id,
                email,
                password_hash,
                role,
                at_ms,
            } => {
                if self.removed {
                    return Err(CredentialsError::Removed);
                }
                if self.created {
                    return Err(CredentialsError::AlreadyExists);
                }
                Ok(vec![
                    events::CredentialsCreated {
                        user_id: user_id.clone(),
                        email: email.as_str().to_owned(),
                        password_hash: password_hash.expose().to_owned(),
                        role: role.to_event(),
                        occurred_at_ms: *at_ms,
                    }
                    .into(),
                ])
            }
            CredentialsCommand::ChangePassword {
                password_hash,
                at_ms,
            } => {
                self.require_live()?;
                Ok(vec![
                    events::PasswordChanged {
                        user_id: self.user_id.clone(),
                        password_hash: password_hash.expose().to_owned(),
                        occurred_at_ms: *at_ms,
                    }
                    .into(),
                ])
            }
            CredentialsCommand::ChangeEmail { email, at_ms } => {
                self.require_live()?;
                if self.email.as_ref() == Some(email) {
                    return Ok(Vec::new());
                }
                Ok(vec![
                    events::CredentialsEmailChanged {
                        user_id: self.user_id.clone(),
                        email: email.as_str().to_owned(),
                        occurred_at_ms: *at_ms,
                    }
                    .into(),
                ])
            }
            CredentialsCommand::Remove { user_id, at_ms } => {
                if self.removed {
                    return Ok(Vec::new());
                }
                Ok(vec![
                    events::CredentialsRemoved {
                        user_id: user_id.clone(),
                        occurred_at_ms: *at_ms,
                    }
                    .into(),
                ])
            }
        }
    }

    fn apply(&mut self, event: &CredentialsEvent) {
        match event {
            CredentialsEvent::Created(e) => {
                self.user_id.clone_from(&e.user_id);
                self.email = Some(Email::from_recorded(&e.email));
                self.password_hash = PasswordHash::from_phc(e.password_hash.clone());
                self.role = Some(Role::from_event(e.role));
                self.created = true;
            }
            CredentialsEvent::PasswordChanged(e) => {
                self.password_hash = PasswordHash::from_phc(e.password_hash.clone());
            }
            CredentialsEvent::EmailChanged(e) => {
                self.email = Some(Email::from_recorded(&e.email));
            }
            CredentialsEvent::Removed(e) => {
                self.user_id.clone_from(&e.user_id);
                self.removed = true;
                self.password_hash = PasswordHash::default();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use es_core::testing::{given, given_no_events};

    use super::*;

    fn created() -> CredentialsEvent {
        events::CredentialsCreated {
            user_id: "u1".into(),
            email: "ann@example.com".into(),
            password_hash: "$argon2id$one".into(),
            role: Role::Customer.to_event(),
            occurred_at_ms: 1,
        }
        .into()
    }

    fn email(raw: &str) -> Email {
        Email::parse(raw).unwrap()
    }

    fn removed() -> CredentialsEvent {
        events::CredentialsRemoved {
            user_id: "u1".into(),
            occurred_at_ms: 3,
        }
        .into()
    }

    fn create() -> CredentialsCommand {
        CredentialsCommand::Create {
            user_id: "u1".into(),
            email: email("ann@example.com"),
            password_hash: PasswordHash::from_phc("$argon2id$one"),
            role: Role::Customer,
            at_ms: 1,
        }
    }

    #[test]
    fn credentials_are_created_once() {
        let state = given_no_events::<Credentials>()
            .when(create())
            .then_expect_events([created()]);
        assert!(state.is_live());
        assert_eq!(state.role, Some(Role::Customer));
        given::<Credentials>([created()])
            .when(create())
            .then_expect_error(|e| *e == CredentialsError::AlreadyExists);
    }

    #[test]
    fn a_password_change_replaces_the_hash() {
        let state = given::<Credentials>([created()])
            .when(CredentialsCommand::ChangePassword {
                password_hash: PasswordHash::from_phc("$argon2id$two"),
                at_ms: 2,
            })
            .then_expect_events([events::PasswordChanged {
                user_id: "u1".into(),
                password_hash: "$argon2id$two".into(),
                occurred_at_ms: 2,
            }
            .into()]);
        assert_eq!(state.password_hash.expose(), "$argon2id$two");
    }

    #[test]
    fn the_login_email_follows_the_user() {
        given::<Credentials>([created()])
            .when(CredentialsCommand::ChangeEmail {
                email: email("ann@new.example"),
                at_ms: 2,
            })
            .then_expect_events([events::CredentialsEmailChanged {
                user_id: "u1".into(),
                email: "ann@new.example".into(),
                occurred_at_ms: 2,
            }
            .into()]);
        given::<Credentials>([created()])
            .when(CredentialsCommand::ChangeEmail {
                email: email("ann@example.com"),
                at_ms: 2,
            })
            .then_expect_events([]);
    }

    #[test]
    fn changes_before_creation_are_not_found() {
        given_no_events::<Credentials>()
            .when(CredentialsCommand::ChangePassword {
                password_hash: PasswordHash::from_phc("x"),
                at_ms: 2,
            })
            .then_expect_error(|e| *e == CredentialsError::NotFound);
    }

    #[test]
    fn removal_is_final_and_idempotent() {
        let state = given::<Credentials>([created()])
            .when(CredentialsCommand::Remove {
                user_id: "u1".into(),
                at_ms: 3,
            })
            .then_expect_events([removed()]);
        assert!(!state.is_live());
        assert_eq!(state.password_hash.expose(), "");
        given::<Credentials>([created(), removed()])
            .when(CredentialsCommand::Remove {
                user_id: "u1".into(),
                at_ms: 4,
            })
            .then_expect_events([]);
        given::<Credentials>([created(), removed()])
            .when(CredentialsCommand::ChangePassword {
                password_hash: PasswordHash::from_phc("x"),
                at_ms: 4,
            })
            .then_expect_error(|e| *e == CredentialsError::Removed);
    }

    #[test]
    fn a_removal_that_overtakes_the_creation_wins() {
        given_no_events::<Credentials>()
            .when(CredentialsCommand::Remove {
                user_id: "u1".into(),
                at_ms: 3,
            })
            .then_expect_events([removed()]);
        given::<Credentials>([removed()])
            .when(create())
            .then_expect_error(|e| *e == CredentialsError::Removed);
    }
}
