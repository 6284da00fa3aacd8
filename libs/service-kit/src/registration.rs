//! How a new user's password hash travels from the user service to the
//! auth service without appearing on a public stream.
//!
//! Registration is the user service's (the original API registers users
//! there), but a password hash belongs to the auth service alone. So the
//! user service hashes the password and hands the hash over on the AUTH
//! stream, which only the auth service reads, as an
//! `InitialPasswordHashed` on `auth.registration.<user id>`, *before* it
//! records `UserRegistered` on the public USER stream. The auth service,
//! reacting to `UserRegistered`, takes the hash from there.
//!
//! The order makes the hand-over safe: once `UserRegistered` exists, its
//! hash is already stored. A registration that fails after the hand-over
//! (its email was taken a moment earlier) leaves a hash nobody will read:
//! user ids are fresh per registration, and the auth service only creates
//! credentials for a `UserRegistered`.

use es_core::event::RawEvent;
use es_core::store::{Commit, NewEvent};
use es_core::{CommandContext, EventStore, JetStreamEventStore, StoreError, StreamRef};
use prost::{Message, Name};
use stocklet_proto::stocklet::events::v1::InitialPasswordHashed;
use stocklet_values::PasswordHash;

/// The aggregate type of the hand-over subject: `auth.registration.<id>`.
pub const AGGREGATE_TYPE: &str = "registration";

/// How often a timed-out hand-over is sent again.
const RESENDS_ON_TIMEOUT: u32 = 3;

/// Stores `hash` for `user_id` on the auth stream. Repeating it for the
/// same user is harmless: the subject must be empty, and a second attempt
/// (a retry after a timeout) finds the first one stored.
pub async fn hand_over(
    store: &JetStreamEventStore,
    auth_stream: &StreamRef,
    user_id: &str,
    hash: &PasswordHash,
    context: &CommandContext,
    at_ms: i64,
) -> Result<(), StoreError> {
    let event = InitialPasswordHashed {
        user_id: user_id.to_owned(),
        password_hash: hash.expose().to_owned(),
        occurred_at_ms: at_ms,
    };
    let commit = Commit {
        subject: auth_stream.subject(AGGREGATE_TYPE, user_id),
        expected_sequence: 0,
        aggregate_type: AGGREGATE_TYPE.to_owned(),
        aggregate_id: user_id.to_owned(),
        events: vec![NewEvent {
            event_id: uuid::Uuid::now_v7().to_string(),
            raw: RawEvent {
                event_type: InitialPasswordHashed::full_name(),
                schema_version: 1,
                payload: event.encode_to_vec().into(),
            },
        }],
        context: context.clone().with_current_trace(),
        timestamp_ms: at_ms,
    };
    // A timeout leaves the append in doubt: send the same message again (its
    // id makes a stored one a duplicate), a few times.
    let mut result = store.append(auth_stream, &commit).await;
    for _ in 0..RESENDS_ON_TIMEOUT {
        if !matches!(result, Err(StoreError::Timeout)) {
            break;
        }
        result = store.append(auth_stream, &commit).await;
    }
    match result {
        Ok(_) => Ok(()),
        // Already handed over: an earlier try stored it and its answer was
        // lost. The user service cannot read AUTH to look (its NATS user may
        // only write there), and needs not: the user id is fresh, so the
        // stored hash is this registration's (salted differently, perhaps,
        // but of the same password).
        Err(StoreError::Conflict { .. }) => Ok(()),
        Err(error) => Err(error),
    }
}

/// The hash handed over for `user_id`, if it is there.
pub async fn take(
    store: &JetStreamEventStore,
    auth_stream: &StreamRef,
    user_id: &str,
) -> Result<Option<PasswordHash>, StoreError> {
    let subject = auth_stream.subject(AGGREGATE_TYPE, user_id);
    let stored = store.load(auth_stream, &subject, 0).await?;
    for event in stored.iter().rev() {
        if let Some(decoded) = event.decode_as::<InitialPasswordHashed>() {
            let event = decoded?;
            return Ok(Some(PasswordHash::from_phc(event.password_hash)));
        }
    }
    Ok(None)
}
