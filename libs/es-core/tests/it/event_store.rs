//! The JetStream event store: concurrency, atomicity, idempotency, loading.

use std::time::Duration;

use es_core::store::Commit;
use es_core::{CommandContext, EventStore, ExecuteError, StoreError};
use futures::future::join_all;

use crate::common::*;

fn deposit(cents: i64) -> AccountCommand {
    AccountCommand::Deposit {
        amount_cents: cents,
    }
}

fn open() -> AccountCommand {
    AccountCommand::Open {
        owner: "ada".into(),
    }
}

#[tokio::test]
async fn two_writers_race_and_exactly_one_wins() {
    let bank = Bank::start().await;
    let accounts = bank.accounts();
    let acc = id("race");
    let opened = accounts
        .execute(&acc, &open(), &CommandContext::default())
        .await
        .unwrap();

    // Eight writers decided on the same version; only one may land.
    let commits: Vec<Commit> = (0..8)
        .map(|i| {
            accounts.commit(
                &acc,
                opened.position,
                &[Deposited {
                    amount_cents: i + 1,
                }
                .into()],
                &CommandContext::default(),
            )
        })
        .collect();
    let results = join_all(commits.iter().map(|c| bank.store.append(&bank.stream, c))).await;
    let winners = results.iter().filter(|r| r.is_ok()).count();
    let conflicts = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::Conflict { .. })))
        .count();
    assert_eq!((winners, conflicts), (1, 7), "{results:?}");
    assert_eq!(accounts.load(&acc).await.unwrap().history.len(), 2);
}

#[tokio::test]
async fn the_retry_helper_redecides_lost_races_until_all_land() {
    let bank = Bank::start().await;
    let accounts = bank.accounts();
    let acc = id("hot");
    accounts
        .execute(&acc, &open(), &CommandContext::default())
        .await
        .unwrap();
    let (command, ctx) = (deposit(100), CommandContext::default());
    let results = join_all((0..20).map(|_| accounts.execute(&acc, &command, &ctx))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let loaded = accounts.load(&acc).await.unwrap();
    assert_eq!(loaded.state.balance_cents, 2000);
    assert_eq!(loaded.history.len(), 21);
}

#[tokio::test]
async fn the_expected_sequence_check_is_per_subject_not_per_stream() {
    let bank = Bank::start().await;
    let accounts = bank.accounts();
    let (a, b) = (id("a"), id("b"));
    let ctx = CommandContext::default();
    let event = |cents| -> Vec<AccountEvent> {
        vec![
            Deposited {
                amount_cents: cents,
            }
            .into(),
        ]
    };

    let a1 = bank
        .store
        .append(
            &bank.stream,
            &accounts.commit(&a, 0, &[Opened { owner: "a".into() }.into()], &ctx),
        )
        .await
        .unwrap();
    let b1 = bank
        .store
        .append(
            &bank.stream,
            &accounts.commit(&b, 0, &[Opened { owner: "b".into() }.into()], &ctx),
        )
        .await
        .unwrap();
    assert_eq!((a1.sequence, b1.sequence), (1, 2));

    // B's write in between does not invalidate A's expectation.
    let a2 = bank
        .store
        .append(
            &bank.stream,
            &accounts.commit(&a, a1.sequence, &event(1), &ctx),
        )
        .await
        .unwrap();
    assert_eq!(a2.sequence, 3);
    // Nor does A's write invalidate B's.
    let b2 = bank
        .store
        .append(
            &bank.stream,
            &accounts.commit(&b, b1.sequence, &event(1), &ctx),
        )
        .await
        .unwrap();
    assert_eq!(b2.sequence, 4);

    // A stale expectation for A fails...
    let stale = bank
        .store
        .append(
            &bank.stream,
            &accounts.commit(&a, a1.sequence, &event(1), &ctx),
        )
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { .. })),
        "{stale:?}"
    );
    // ...and so does A's per-subject event count (2) used as if it were a
    // sequence: the expectation is the last *stream* sequence of the subject.
    let count = bank
        .store
        .append(&bank.stream, &accounts.commit(&a, 2, &event(1), &ctx))
        .await;
    assert!(
        matches!(count, Err(StoreError::Conflict { .. })),
        "{count:?}"
    );
    // The stream-wide last sequence (4, written by B) is not A's either.
    let global = bank
        .store
        .append(
            &bank.stream,
            &accounts.commit(&a, b2.sequence, &event(1), &ctx),
        )
        .await;
    assert!(
        matches!(global, Err(StoreError::Conflict { .. })),
        "{global:?}"
    );

    let a3 = bank
        .store
        .append(
            &bank.stream,
            &accounts.commit(&a, a2.sequence, &event(1), &ctx),
        )
        .await
        .unwrap();
    assert_eq!(a3.sequence, 5);
    assert_eq!(accounts.load(&a).await.unwrap().version, 5);
    assert_eq!(accounts.load(&b).await.unwrap().version, 4);
}

#[tokio::test]
async fn a_multi_event_commit_to_one_aggregate_is_one_message() {
    let bank = Bank::start().await;
    let accounts = bank.accounts();
    let acc = id("multi");
    let done = accounts
        .execute(
            &acc,
            &AccountCommand::OpenWithDeposit {
                owner: "ada".into(),
                amount_cents: 250,
            },
            &CommandContext::default(),
        )
        .await
        .unwrap();
    assert_eq!(done.events.len(), 2);
    assert_eq!(bank.message_count().await, 1);
    let loaded = accounts.load(&acc).await.unwrap();
    assert_eq!(loaded.history.len(), 2);
    assert!(loaded.history.iter().all(|r| r.meta.stream_sequence == 1));
    assert_ne!(
        loaded.history[0].meta.event_id,
        loaded.history[1].meta.event_id
    );
    assert_eq!(loaded.state.balance_cents, 250);
}

#[tokio::test]
async fn an_atomic_batch_across_aggregates_is_all_or_nothing() {
    let bank = Bank::start().await;
    let accounts = bank.accounts();
    let ctx = CommandContext::default();
    let (from, to) = (id("from"), id("to"));
    let opened = accounts
        .execute(
            &from,
            &AccountCommand::OpenWithDeposit {
                owner: "f".into(),
                amount_cents: 500,
            },
            &ctx,
        )
        .await
        .unwrap();
    let before = bank.message_count().await;

    // The first commit is valid, the second expects a version `to` is not
    // at: an injected failure in the middle of the batch.
    let withdraw = accounts.commit(
        &from,
        opened.position,
        &[Withdrawn { amount_cents: 100 }.into()],
        &ctx,
    );
    let bad_deposit = accounts.commit(
        &to,
        42,
        &[
            Opened { owner: "t".into() }.into(),
            Deposited { amount_cents: 100 }.into(),
        ],
        &ctx,
    );
    let failed = bank
        .store
        .append_atomic(&bank.stream, &[withdraw.clone(), bad_deposit])
        .await;
    assert!(
        matches!(failed, Err(StoreError::Conflict { .. })),
        "{failed:?}"
    );
    assert_eq!(
        bank.message_count().await,
        before,
        "nothing of the batch was stored"
    );
    assert_eq!(accounts.load(&from).await.unwrap().state.balance_cents, 500);
    assert!(!accounts.load(&to).await.unwrap().exists());

    // With correct expectations both land, back to back.
    let deposit = accounts.commit(
        &to,
        0,
        &[
            Opened { owner: "t".into() }.into(),
            Deposited { amount_cents: 100 }.into(),
        ],
        &ctx,
    );
    let sequences = bank
        .store
        .append_atomic(&bank.stream, &[withdraw, deposit])
        .await
        .unwrap();
    assert_eq!(sequences, vec![before + 1, before + 2]);
    assert_eq!(accounts.load(&from).await.unwrap().state.balance_cents, 400);
    assert_eq!(accounts.load(&to).await.unwrap().state.balance_cents, 100);

    // Two commits to one aggregate in one batch are refused before sending.
    let again = accounts.commit(
        &to,
        sequences[1],
        &[Deposited { amount_cents: 1 }.into()],
        &ctx,
    );
    let twice = bank
        .store
        .append_atomic(&bank.stream, &[again.clone(), again])
        .await;
    assert!(matches!(twice, Err(StoreError::Rejected(_))), "{twice:?}");
}

#[tokio::test]
async fn a_repeated_dedupe_key_takes_effect_once_even_after_the_duplicate_window() {
    let window = Duration::from_secs(1);
    let bank = Bank::start_with(
        bank_definition().with_duplicate_window(window),
        Duration::from_secs(5),
    )
    .await;
    let accounts = bank.accounts();
    let acc = id("dedupe");
    accounts
        .execute(&acc, &open(), &CommandContext::default())
        .await
        .unwrap();
    let key = CommandContext::with_dedupe_key("top-up-1");

    let first = accounts.execute(&acc, &deposit(700), &key).await.unwrap();
    assert!(!first.replayed);
    let inside_window = accounts.execute(&acc, &deposit(700), &key).await.unwrap();
    assert!(inside_window.replayed);
    assert_eq!(inside_window.position, first.position);
    assert_eq!(inside_window.events, first.events);

    // Concurrent repeats of one key: still one effect.
    let command = deposit(700);
    let concurrent = join_all((0..5).map(|_| accounts.execute(&acc, &command, &key))).await;
    assert!(
        concurrent
            .iter()
            .all(|r| r.as_ref().is_ok_and(|e| e.position == first.position))
    );

    tokio::time::sleep(window + Duration::from_millis(500)).await;
    let after_window = accounts.execute(&acc, &deposit(700), &key).await.unwrap();
    assert!(after_window.replayed, "the history remembers the key");
    assert_eq!(after_window.position, first.position);

    let loaded = accounts.load(&acc).await.unwrap();
    assert_eq!(loaded.state.balance_cents, 700);
    assert_eq!(loaded.history.len(), 2);

    // A different key is a different command.
    let other = accounts
        .execute(
            &acc,
            &deposit(700),
            &CommandContext::with_dedupe_key("top-up-2"),
        )
        .await
        .unwrap();
    assert!(!other.replayed);
    assert_eq!(accounts.load(&acc).await.unwrap().state.balance_cents, 1400);
}

#[tokio::test]
async fn a_publish_retried_after_a_timeout_with_the_same_message_id_stores_no_duplicate() {
    let mut bank = Bank::start_with(bank_definition(), Duration::from_millis(500)).await;
    let accounts = bank.accounts();
    let acc = id("timeout");
    let opened = accounts
        .execute(&acc, &open(), &CommandContext::default())
        .await
        .unwrap();
    let ctx = CommandContext::with_dedupe_key("pay-1");
    let commit = accounts.commit(
        &acc,
        opened.position,
        &[Deposited { amount_cents: 300 }.into()],
        &ctx,
    );

    // The server stops answering: the publish is sent but its ack never
    // comes back in time, so the outcome is unknown.
    bank.server.pause();
    let first = bank.store.append(&bank.stream, &commit).await;
    bank.server.resume();
    assert!(matches!(first, Err(StoreError::Timeout)), "{first:?}");

    // Retrying the very same commit (same Nats-Msg-Id) is safe: the server
    // answers with a duplicate ack or, on an R1 stream, with the concurrency
    // conflict, because the first send did land.
    let retry = bank.store.append(&bank.stream, &commit).await;
    assert!(
        matches!(retry, Ok(ref a) if a.duplicate)
            || matches!(retry, Err(StoreError::Conflict { .. })),
        "{retry:?}"
    );
    let loaded = accounts.load(&acc).await.unwrap();
    assert_eq!(loaded.history.len(), 2, "exactly one deposit was stored");
    assert_eq!(loaded.history[1].meta.event_id, commit.commit_id());
    assert_eq!(loaded.state.balance_cents, 300);

    // The repository turns the repeat into the original outcome.
    let repeat = accounts.execute(&acc, &deposit(300), &ctx).await.unwrap();
    assert!(repeat.replayed);
    assert_eq!(repeat.position, loaded.version);
    assert_eq!(accounts.load(&acc).await.unwrap().history.len(), 2);
}

#[tokio::test]
async fn an_upcaster_upgrades_old_schema_versions_on_load() {
    let bank = Bank::start().await;
    let accounts = bank.accounts();
    let acc = id("legacy");
    accounts
        .execute(&acc, &open(), &CommandContext::default())
        .await
        .unwrap();
    // An event written by an older release: v1 of Deposited, in whole units.
    deposit_v1(&bank, "legacy", 12).await;

    // Without an upcaster, v1 is not a current event.
    let without = accounts.load(&acc).await;
    assert!(matches!(without, Err(StoreError::Decode(_))), "{without:?}");

    let upgraded = accounts.with_upcasters(deposited_v1_to_v2());
    let loaded = upgraded.load(&acc).await.unwrap();
    assert_eq!(loaded.state.balance_cents, 1200);
    assert_eq!(
        loaded.history[1].event,
        AccountEvent::Deposited(Deposited { amount_cents: 1200 })
    );
}

#[tokio::test]
async fn loading_returns_only_the_aggregates_events_in_order() {
    let bank = Bank::start().await;
    let accounts = bank.accounts();
    let (acc, other) = (id("long"), id("other"));
    let ctx = CommandContext::default();
    accounts.execute(&acc, &open(), &ctx).await.unwrap();
    accounts.execute(&other, &open(), &ctx).await.unwrap();
    for i in 1..=300 {
        let target = if i % 3 == 0 { &other } else { &acc };
        accounts.execute(target, &deposit(i), &ctx).await.unwrap();
    }
    let loaded = accounts.load(&acc).await.unwrap();
    assert_eq!(loaded.history.len(), 1 + 200);
    let sequences: Vec<u64> = loaded
        .history
        .iter()
        .map(|r| r.meta.stream_sequence)
        .collect();
    assert!(sequences.windows(2).all(|w| w[0] < w[1]));
    let expected: i64 = (1..=300).filter(|i| i % 3 != 0).sum();
    assert_eq!(loaded.state.balance_cents, expected);
    assert!(!accounts.load(&id("nobody")).await.unwrap().exists());
}

#[tokio::test]
async fn domain_rejections_are_kept_apart_from_store_failures() {
    let bank = Bank::start().await;
    let accounts = bank.accounts();
    let acc = id("strict");
    let ctx = CommandContext::default();
    let not_open = accounts.execute(&acc, &deposit(1), &ctx).await;
    assert!(matches!(
        not_open,
        Err(ExecuteError::Rejected(AccountError::NotOpen))
    ));
    accounts.execute(&acc, &open(), &ctx).await.unwrap();
    let overdraft = accounts
        .execute(&acc, &AccountCommand::Withdraw { amount_cents: 5 }, &ctx)
        .await;
    assert!(matches!(
        overdraft,
        Err(ExecuteError::Rejected(
            AccountError::InsufficientFunds { .. }
        ))
    ));
    assert_eq!(bank.message_count().await, 1, "a rejection writes nothing");
}
