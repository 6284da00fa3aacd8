//! The email-claim aggregate: who holds one email address.
//!
//! Uniqueness across users cannot be checked in the user aggregate, which
//! only sees itself, nor safely in a read model, which lags. So every
//! address has its own tiny aggregate, keyed by a digest of the normalised
//! address ([`claim_id`]). Claiming appends with the claim's last sequence as
//! the expected sequence (0 for a never-claimed address): of two concurrent
//! claims, the store accepts one and the other, deciding again, finds the
//! address taken.

use es_core::Aggregate;
use sha2::{Digest, Sha256};
use stocklet_proto::stocklet::events::v1 as events;

use stocklet_values::Email;

es_core::domain_events! {
    /// What happens to an email address.
    pub enum EmailClaimEvent {
        Claimed(events::EmailClaimed),
        Released(events::EmailReleased),
    }
}

/// The aggregate id of an address's claim: the hex SHA-256 of the
/// normalised address ([`Email::normalised`]). Subject tokens may not
/// contain `.` and are limited to 128 bytes, so the address itself (or its
/// hex) cannot be the id.
pub fn claim_id(normalised_email: &str) -> String {
    Sha256::digest(normalised_email.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What is asked of an address.
#[derive(Clone, Debug)]
pub enum EmailClaimCommand {
    /// Gives the address to a user.
    Claim {
        /// The address.
        email: Email,
        /// Who claims it.
        user_id: String,
        /// Now, in Unix milliseconds.
        at_ms: i64,
    },
    /// Gives the address up.
    Release {
        /// Who releases it: must be the holder.
        user_id: String,
        /// Now, in Unix milliseconds.
        at_ms: i64,
    },
}

/// Why a claim command is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EmailClaimError {
    /// Another user holds the address.
    #[error("email address is taken")]
    Taken,
}

/// Who holds an address, if anyone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EmailClaim {
    /// The normalised address, once claimed.
    pub email: String,
    /// The holder's user id; `None` when free.
    pub holder: Option<String>,
}

impl Aggregate for EmailClaim {
    const TYPE: &'static str = "email";
    type Command = EmailClaimCommand;
    type Event = EmailClaimEvent;
    type Error = EmailClaimError;

    fn decide(&self, command: &EmailClaimCommand) -> Result<Vec<EmailClaimEvent>, EmailClaimError> {
        match command {
            EmailClaimCommand::Claim {
                email,
                user_id,
                at_ms,
            } => match &self.holder {
                Some(holder) if holder == user_id => Ok(Vec::new()),
                Some(_) => Err(EmailClaimError::Taken),
                None => Ok(vec![
                    events::EmailClaimed {
                        email: email.normalised(),
                        user_id: user_id.clone(),
                        occurred_at_ms: *at_ms,
                    }
                    .into(),
                ]),
            },
            EmailClaimCommand::Release { user_id, at_ms } => match &self.holder {
                // Someone else's (or nobody's) address: nothing of ours to free.
                Some(holder) if holder == user_id => Ok(vec![
                    events::EmailReleased {
                        email: self.email.clone(),
                        user_id: user_id.clone(),
                        occurred_at_ms: *at_ms,
                    }
                    .into(),
                ]),
                _ => Ok(Vec::new()),
            },
        }
    }

    fn apply(&mut self, event: &EmailClaimEvent) {
        match event {
            EmailClaimEvent::Claimed(e) => {
                self.email.clone_from(&e.email);
                self.holder = Some(e.user_id.clone());
            }
            EmailClaimEvent::Released(_) => self.holder = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use es_core::testing::{given, given_no_events};

    use super::*;

    fn email() -> Email {
        Email::parse("Ann@Example.com").unwrap()
    }

    fn claimed(user_id: &str) -> EmailClaimEvent {
        events::EmailClaimed {
            email: "ann@example.com".into(),
            user_id: user_id.into(),
            occurred_at_ms: 1,
        }
        .into()
    }

    fn released(user_id: &str) -> EmailClaimEvent {
        events::EmailReleased {
            email: "ann@example.com".into(),
            user_id: user_id.into(),
            occurred_at_ms: 2,
        }
        .into()
    }

    fn claim(user_id: &str) -> EmailClaimCommand {
        EmailClaimCommand::Claim {
            email: email(),
            user_id: user_id.into(),
            at_ms: 1,
        }
    }

    #[test]
    fn a_free_address_is_claimed_in_its_normalised_form() {
        given_no_events::<EmailClaim>()
            .when(claim("u1"))
            .then_expect_events([claimed("u1")]);
    }

    #[test]
    fn a_held_address_cannot_be_claimed_by_another_user() {
        given::<EmailClaim>([claimed("u1")])
            .when(claim("u2"))
            .then_expect_error(|e| *e == EmailClaimError::Taken);
    }

    #[test]
    fn claiming_again_by_the_holder_does_nothing() {
        given::<EmailClaim>([claimed("u1")])
            .when(claim("u1"))
            .then_expect_events([]);
    }

    #[test]
    fn a_released_address_can_be_claimed_again() {
        given::<EmailClaim>([claimed("u1")])
            .when(EmailClaimCommand::Release {
                user_id: "u1".into(),
                at_ms: 2,
            })
            .then_expect_events([released("u1")]);
        given::<EmailClaim>([claimed("u1"), released("u1")])
            .when(claim("u2"))
            .then_expect_events([claimed("u2")]);
    }

    #[test]
    fn only_the_holder_releases() {
        given::<EmailClaim>([claimed("u1")])
            .when(EmailClaimCommand::Release {
                user_id: "u2".into(),
                at_ms: 2,
            })
            .then_expect_events([]);
    }

    #[test]
    fn claim_ids_are_subject_tokens_equal_for_equal_addresses() {
        let a = claim_id(&Email::parse("Ann@Example.com").unwrap().normalised());
        let b = claim_id(&Email::parse(" ann@example.com").unwrap().normalised());
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        assert!(es_core::AggregateId::parse(a).is_ok());
        let long = format!("{}@{}.com", "a".repeat(64), "b".repeat(60));
        let long = Email::parse(&long).unwrap().normalised();
        assert!(es_core::AggregateId::parse(claim_id(&long)).is_ok());
    }
}
