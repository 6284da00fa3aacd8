//! Domain logic without servers: given/when/then and the in-memory store.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use es_core::store::{Appended, Commit, StoredEvent};
use es_core::testing::{given, given_no_events};
use es_core::{
    CommandContext, EventStore, ExecuteError, InMemoryEventStore, Repository, RetryPolicy,
    StoreError, StreamRef,
};

use crate::common::*;

#[test]
fn given_when_then_checks_decisions() {
    given_no_events::<Account>()
        .when(AccountCommand::Open {
            owner: "ada".into(),
        })
        .then_expect_events([Opened {
            owner: "ada".into(),
        }
        .into()]);

    let after = given::<Account>([
        Opened {
            owner: "ada".into(),
        }
        .into(),
        Deposited { amount_cents: 50 }.into(),
    ])
    .when(AccountCommand::Withdraw { amount_cents: 20 })
    .then_expect_events([Withdrawn { amount_cents: 20 }.into()]);
    assert_eq!(after.balance_cents, 30);

    given::<Account>([Opened {
        owner: "ada".into(),
    }
    .into()])
    .when(AccountCommand::Withdraw { amount_cents: 1 })
    .then_expect_error(|e| {
        *e == AccountError::InsufficientFunds {
            balance_cents: 0,
            requested_cents: 1,
        }
    });
}

#[tokio::test]
async fn the_in_memory_store_enforces_the_same_contract() {
    let store = InMemoryEventStore::new();
    let stream = StreamRef::new("BANK", "bank");
    let accounts: Repository<Account, _> = Repository::new(store.clone(), stream.clone());
    let acc = id("m1");
    let ctx = CommandContext::with_dedupe_key("open-1");
    let first = accounts
        .execute(&acc, &AccountCommand::Open { owner: "a".into() }, &ctx)
        .await
        .unwrap();
    let again = accounts
        .execute(&acc, &AccountCommand::Open { owner: "a".into() }, &ctx)
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.position, first.position);

    let stale = accounts.commit(
        &acc,
        0,
        &[Deposited { amount_cents: 1 }.into()],
        &CommandContext::default(),
    );
    assert!(matches!(
        store.append(&stream, &stale).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(store.all_events(&stream).unwrap().len(), 1);
}

/// A store where every append loses its race.
#[derive(Clone, Default)]
struct AlwaysConflicting {
    inner: InMemoryEventStore,
    appends: Arc<AtomicU32>,
    loads: Arc<AtomicU32>,
}

impl EventStore for AlwaysConflicting {
    fn conventions(&self) -> &es_core::envelope::Conventions {
        self.inner.conventions()
    }

    async fn load(
        &self,
        stream: &StreamRef,
        subject: &str,
        after: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.inner.load(stream, subject, after).await
    }

    async fn append(&self, _: &StreamRef, commit: &Commit) -> Result<Appended, StoreError> {
        self.appends.fetch_add(1, Ordering::SeqCst);
        Err(StoreError::Conflict {
            subject: commit.subject.clone(),
            expected: commit.expected_sequence,
        })
    }

    async fn append_atomic(&self, _: &StreamRef, _: &[Commit]) -> Result<Vec<u64>, StoreError> {
        unreachable!("not used by the repository")
    }
}

#[tokio::test]
async fn the_retry_helper_gives_up_with_a_typed_conflict_after_its_bound() {
    let store = AlwaysConflicting::default();
    let accounts: Repository<Account, _> =
        Repository::new(store.clone(), StreamRef::new("BANK", "bank")).with_retry_policy(
            RetryPolicy::default()
                .with_max_attempts(3)
                .with_max_publish_retries(0),
        );
    let result = accounts
        .execute(
            &id("loser"),
            &AccountCommand::Open { owner: "a".into() },
            &CommandContext::default(),
        )
        .await;
    assert!(
        matches!(result, Err(ExecuteError::Conflict { attempts: 3 })),
        "{result:?}"
    );
    assert_eq!(store.appends.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn one_attempt_returns_the_conflict_without_reloading_or_waiting() {
    let store = AlwaysConflicting::default();
    let accounts: Repository<Account, _> =
        Repository::new(store.clone(), StreamRef::new("BANK", "bank"))
            .with_retry_policy(RetryPolicy::default().with_max_attempts(1));
    let started = std::time::Instant::now();
    let result = accounts
        .execute(
            &id("once"),
            &AccountCommand::Open { owner: "a".into() },
            &CommandContext::default(),
        )
        .await;
    assert!(
        matches!(result, Err(ExecuteError::Conflict { attempts: 1 })),
        "{result:?}"
    );
    assert_eq!(store.appends.load(Ordering::SeqCst), 1);
    assert_eq!(
        store.loads.load(Ordering::SeqCst),
        1,
        "loaded once, never again"
    );
    assert!(started.elapsed() < std::time::Duration::from_millis(100));
}
