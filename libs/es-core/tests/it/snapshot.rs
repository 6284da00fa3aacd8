//! Snapshots: long histories load from a snapshot plus the tail, and the
//! stream stays the source of truth.

use std::time::Duration;

use es_core::CommandContext;
use es_core::snapshot::{SnapshotRecord, SnapshotStore};

use crate::common::*;

async fn snapshot_at_least(store: &SnapshotStore, id: &str, sequence: u64) -> SnapshotRecord {
    for _ in 0..100 {
        if let Some(record) = store.get("account", id).await.unwrap()
            && record.sequence >= sequence
        {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no snapshot of {id} at {sequence} or later");
}

#[tokio::test]
async fn long_histories_load_from_a_snapshot_and_the_events_after_it() {
    let bank = Bank::start().await;
    let snapshots = SnapshotStore::ensure(bank.server.client().await, 1)
        .await
        .unwrap();
    let accounts = bank.accounts().with_snapshots(snapshots.clone(), 10);
    let acc = id("busy");
    accounts
        .execute(
            &acc,
            &AccountCommand::Open { owner: "o".into() },
            &CommandContext::default(),
        )
        .await
        .unwrap();
    let mut positions = Vec::new();
    for i in 1..=25 {
        let ctx = CommandContext::with_dedupe_key(format!("deposit-{i}"));
        let done = accounts
            .execute(&acc, &AccountCommand::Deposit { amount_cents: i }, &ctx)
            .await
            .unwrap();
        positions.push(done.position);
    }
    let record = snapshot_at_least(&snapshots, "busy", 20).await;
    assert!(record.recent_keys.iter().any(|k| k.key == "deposit-3"));

    let loaded = accounts.load(&acc).await.unwrap();
    assert_eq!(loaded.state.balance_cents, (1..=25).sum::<i64>());
    assert_eq!(loaded.version, 26);
    assert!(
        loaded.history.len() < 10,
        "only the tail is folded: {}",
        loaded.history.len()
    );
    // The full load agrees.
    let full = bank.accounts().load(&acc).await.unwrap();
    assert_eq!(
        (full.state, full.version, full.history.len()),
        (loaded.state.clone(), 26, 26)
    );

    // A repeat of a command folded into the snapshot is still recognised.
    let repeat = accounts
        .execute(
            &acc,
            &AccountCommand::Deposit { amount_cents: 3 },
            &CommandContext::with_dedupe_key("deposit-3"),
        )
        .await
        .unwrap();
    assert!(repeat.replayed);
    assert_eq!(repeat.position, positions[2]);
    assert_eq!(bank.accounts().load(&acc).await.unwrap().history.len(), 26);
}

#[tokio::test]
async fn a_snapshot_is_only_a_cache() {
    let bank = Bank::start().await;
    let snapshots = SnapshotStore::ensure(bank.server.client().await, 1)
        .await
        .unwrap();
    let accounts = bank.accounts().with_snapshots(snapshots.clone(), 5);
    let acc = id("cached");
    let ctx = CommandContext::default();
    accounts
        .execute(&acc, &AccountCommand::Open { owner: "o".into() }, &ctx)
        .await
        .unwrap();
    for _ in 0..6 {
        accounts
            .execute(&acc, &AccountCommand::Deposit { amount_cents: 10 }, &ctx)
            .await
            .unwrap();
    }
    let good = snapshot_at_least(&snapshots, "cached", 5).await;

    // An unreadable snapshot, or one of another format version, is ignored.
    for bad in [
        SnapshotRecord {
            state: vec![7u8].into(),
            ..good.clone()
        },
        SnapshotRecord {
            format_version: 99,
            state: vec![1, 0, 0, 0, 0, 0, 0, 0, 0].into(),
            ..good.clone()
        },
    ] {
        snapshots.put("account", "cached", &bad).await.unwrap();
        let loaded = accounts.load(&acc).await.unwrap();
        assert_eq!(loaded.state.balance_cents, 60);
        assert_eq!(loaded.history.len(), 7, "a full load");
    }
}

#[tokio::test]
async fn a_caller_can_wait_for_the_snapshot_its_command_triggered() {
    let bank = Bank::start().await;
    let snapshots = SnapshotStore::ensure(bank.server.client().await, 1)
        .await
        .unwrap();
    let accounts = bank.accounts().with_snapshots(snapshots.clone(), 4);
    let acc = id("waited");
    let ctx = CommandContext::default();
    let opened = accounts
        .execute(&acc, &AccountCommand::Open { owner: "o".into() }, &ctx)
        .await
        .unwrap();
    assert!(
        opened.snapshot.is_none(),
        "one event is below the threshold"
    );
    assert_eq!(opened.attempts, 1);
    let mut last = None;
    for cents in 1..=3 {
        last = Some(
            accounts
                .execute(
                    &acc,
                    &AccountCommand::Deposit {
                        amount_cents: cents,
                    },
                    &ctx,
                )
                .await
                .unwrap(),
        );
    }
    let last = last.unwrap();
    let pending = last
        .snapshot
        .clone()
        .expect("the fourth event triggers a snapshot");
    pending.wait().await.unwrap();
    // Stored by the time `wait` returns: no polling needed.
    let record = snapshots.get("account", "waited").await.unwrap().unwrap();
    assert_eq!(record.sequence, last.position);
}

#[tokio::test]
async fn a_write_path_of_its_own_snapshots_what_it_loaded_once_due() {
    let bank = Bank::start().await;
    let snapshots = SnapshotStore::ensure(bank.server.client().await, 1)
        .await
        .unwrap();
    // Written without snapshots (as an atomic command would), read with.
    let plain = bank.accounts();
    let accounts = bank.accounts().with_snapshots(snapshots.clone(), 4);
    let acc = id("atomic");
    let ctx = CommandContext::default();
    plain
        .execute(&acc, &AccountCommand::Open { owner: "o".into() }, &ctx)
        .await
        .unwrap();
    plain
        .execute(&acc, &AccountCommand::Deposit { amount_cents: 5 }, &ctx)
        .await
        .unwrap();
    let short = accounts.load(&acc).await.unwrap();
    assert!(accounts.snapshot_if_due(&short).is_none(), "2 events < 4");
    for _ in 0..3 {
        plain
            .execute(&acc, &AccountCommand::Deposit { amount_cents: 5 }, &ctx)
            .await
            .unwrap();
    }
    let due = accounts.load(&acc).await.unwrap();
    assert_eq!(due.history.len(), 5);
    accounts
        .snapshot_if_due(&due)
        .expect("5 events >= 4")
        .wait()
        .await
        .unwrap();
    assert!(plain.snapshot_if_due(&due).is_none(), "snapshots are off");
    let loaded = accounts.load(&acc).await.unwrap();
    assert_eq!(loaded.state, due.state);
    assert_eq!((loaded.version, loaded.history.len()), (due.version, 0));
    assert!(accounts.snapshot_if_due(&loaded).is_none(), "nothing new");
}
