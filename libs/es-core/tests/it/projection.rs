//! Projections into PostgreSQL: exactly-once application, rebuilds, lag and
//! read-your-writes.

use std::time::Duration;

use es_core::projection::{Projection, ProjectionConfig, ProjectionError, ProjectionRunner};
use es_core::{CommandContext, Recorded};
use sqlx::{PgConnection, PgPool};
use stocklet_test_support::TestDb;
use tokio_util::sync::CancellationToken;

use crate::common::*;

/// A ledger of every event and a balance per account. `applied_times`
/// counts how often each event was applied: it must end at 1.
struct Ledger;

impl Ledger {
    async fn migrate(pool: &PgPool) {
        sqlx::raw_sql(
            "CREATE TABLE ledger (
                event_id TEXT PRIMARY KEY,
                stream_sequence BIGINT NOT NULL,
                account TEXT NOT NULL,
                kind TEXT NOT NULL,
                amount_cents BIGINT NOT NULL,
                applied_times INT NOT NULL DEFAULT 1
            );
            CREATE TABLE balances (
                account TEXT PRIMARY KEY,
                balance_cents BIGINT NOT NULL
            );",
        )
        .execute(pool)
        .await
        .unwrap();
    }
}

impl Projection for Ledger {
    type Event = AccountEvent;

    fn name(&self) -> &str {
        "ledger"
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[Recorded<AccountEvent>],
    ) -> Result<(), ProjectionError> {
        for stored in events {
            let (kind, amount) = match &stored.event {
                AccountEvent::Opened(_) => ("opened", 0),
                AccountEvent::Deposited(e) => ("deposited", e.amount_cents),
                AccountEvent::Withdrawn(e) => ("withdrawn", -e.amount_cents),
            };
            sqlx::query(
                "INSERT INTO ledger (event_id, stream_sequence, account, kind, amount_cents)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (event_id) DO UPDATE SET applied_times = ledger.applied_times + 1",
            )
            .bind(&stored.meta.event_id)
            .bind(stored.meta.stream_sequence as i64)
            .bind(&stored.meta.aggregate_id)
            .bind(kind)
            .bind(amount)
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "INSERT INTO balances (account, balance_cents) VALUES ($1, $2)
                 ON CONFLICT (account) DO UPDATE SET balance_cents = balances.balance_cents + $2",
            )
            .bind(&stored.meta.aggregate_id)
            .bind(amount)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    async fn reset(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::raw_sql("TRUNCATE ledger, balances")
            .execute(conn)
            .await?;
        Ok(())
    }
}

fn runner(bank: &Bank, db: &TestDb, config: ProjectionConfig) -> ProjectionRunner<Ledger> {
    ProjectionRunner::new(
        Ledger,
        db.pool.clone(),
        bank.store.clone(),
        bank.stream.clone(),
        config,
    )
}

/// Writes `n` deposits spread over five accounts (plus their openings).
async fn write_history(bank: &Bank, n: i64) {
    let accounts = bank.accounts();
    let ctx = CommandContext::default();
    for a in 0..5 {
        accounts
            .execute(
                &id(&format!("acc{a}")),
                &AccountCommand::Open { owner: "o".into() },
                &ctx,
            )
            .await
            .unwrap();
    }
    for i in 0..n {
        accounts
            .execute(
                &id(&format!("acc{}", i % 5)),
                &AccountCommand::Deposit {
                    amount_cents: i + 1,
                },
                &ctx,
            )
            .await
            .unwrap();
    }
}

async fn ledger_rows(pool: &PgPool) -> Vec<(String, i64, String, String, i64, i32)> {
    sqlx::query_as("SELECT event_id, stream_sequence, account, kind, amount_cents, applied_times FROM ledger ORDER BY stream_sequence, event_id")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn balances(pool: &PgPool) -> Vec<(String, i64)> {
    sqlx::query_as("SELECT account, balance_cents FROM balances ORDER BY account")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_crash_between_commit_and_ack_applies_every_event_exactly_once() {
    let bank = Bank::start().await;
    let db = TestDb::create().await;
    Ledger::migrate(&db.pool).await;
    write_history(&bank, 45).await; // 50 messages
    let config = ProjectionConfig::default()
        .with_batch_size(10)
        .with_ack_wait(Duration::from_secs(1));

    // The first runner dies right after committing the batch that reaches
    // sequence 25, before acking it.
    let crashing = runner(&bank, &db, config.clone()).crash_after_commit(25);
    let crashed = crashing.catch_up(false).await;
    assert!(
        matches!(crashed, Err(ProjectionError::InjectedCrash(at)) if at >= 25),
        "{crashed:?}"
    );
    let committed = crashing.checkpoint().await.unwrap();
    drop(crashing);

    // A restarted runner gets the unacked batch again and skips it.
    let restarted = runner(&bank, &db, config);
    assert_eq!(restarted.catch_up(false).await.unwrap(), 50);
    let rows = ledger_rows(&db.pool).await;
    assert_eq!(rows.len(), 50);
    assert!(
        rows.iter().all(|r| r.5 == 1),
        "an event was applied twice: {rows:?}"
    );
    assert!((25..50).contains(&committed));
    let total: i64 = balances(&db.pool).await.iter().map(|b| b.1).sum();
    assert_eq!(total, (1..=45).sum::<i64>());
}

#[tokio::test]
async fn rebuilding_from_the_stream_gives_identical_tables() {
    let bank = Bank::start().await;
    let db = TestDb::create().await;
    Ledger::migrate(&db.pool).await;
    write_history(&bank, 95).await;
    let ledger = runner(&bank, &db, ProjectionConfig::default());
    assert_eq!(ledger.catch_up(false).await.unwrap(), 100);
    let (rows, sums) = (ledger_rows(&db.pool).await, balances(&db.pool).await);
    assert_eq!(rows.len(), 100);

    // Corrupt the read model, then rebuild it.
    sqlx::query("UPDATE balances SET balance_cents = -1")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM ledger WHERE stream_sequence > 90")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(ledger.rebuild(false).await.unwrap(), 100);
    assert_eq!(ledger_rows(&db.pool).await, rows);
    assert_eq!(balances(&db.pool).await, sums);

    // A runner started later keeps going from the rebuilt checkpoint.
    bank.accounts()
        .execute(
            &id("acc0"),
            &AccountCommand::Deposit { amount_cents: 1 },
            &CommandContext::default(),
        )
        .await
        .unwrap();
    let later = runner(&bank, &db, ProjectionConfig::default());
    assert_eq!(later.catch_up(false).await.unwrap(), 101);
    assert_eq!(ledger_rows(&db.pool).await.len(), 101);
}

#[tokio::test]
async fn old_event_versions_reach_the_projection_upcast() {
    let bank = Bank::start().await;
    let db = TestDb::create().await;
    Ledger::migrate(&db.pool).await;
    open_account(&bank, "legacy").await;
    // Stored by an older release: 12 whole units, as `Deposited` v1.
    deposit_v1(&bank, "legacy", 12).await;
    bank.accounts()
        .with_upcasters(deposited_v1_to_v2())
        .execute(
            &id("legacy"),
            &AccountCommand::Deposit { amount_cents: 34 },
            &CommandContext::default(),
        )
        .await
        .unwrap();
    let ledger =
        runner(&bank, &db, ProjectionConfig::default()).with_upcasters(deposited_v1_to_v2());
    assert_eq!(ledger.catch_up(false).await.unwrap(), 3);
    assert_eq!(balances(&db.pool).await, [("legacy".to_owned(), 1234)]);
    let kinds: Vec<_> = ledger_rows(&db.pool)
        .await
        .into_iter()
        .map(|(_, _, _, kind, cents, _)| (kind, cents))
        .collect();
    assert_eq!(
        kinds,
        [
            ("opened".to_owned(), 0),
            ("deposited".to_owned(), 1200),
            ("deposited".to_owned(), 34)
        ]
    );
    // A rebuild reads the stream again, through the same chain.
    assert_eq!(ledger.rebuild(false).await.unwrap(), 3);
    assert_eq!(balances(&db.pool).await, [("legacy".to_owned(), 1234)]);
}

#[tokio::test]
async fn a_stream_created_again_rebuilds_the_read_model_instead_of_skipping_its_events() {
    let bank = Bank::start().await;
    let db = TestDb::create().await;
    Ledger::migrate(&db.pool).await;
    write_history(&bank, 45).await; // 50 messages
    let ledger = runner(&bank, &db, ProjectionConfig::default());
    assert_eq!(ledger.catch_up(false).await.unwrap(), 50);

    // The stream is deleted and created again: its sequences start at 1.
    bank.store
        .context()
        .delete_stream(&bank.stream.name)
        .await
        .unwrap();
    bank_definition()
        .ensure(bank.store.context())
        .await
        .unwrap();
    write_history(&bank, 10).await; // 15 messages

    let later = runner(&bank, &db, ProjectionConfig::default());
    assert_eq!(later.catch_up(false).await.unwrap(), 15);
    let rows = ledger_rows(&db.pool).await;
    assert_eq!(rows.len(), 15, "the read model shows the new stream only");
    assert_eq!(rows.last().map(|r| r.1), Some(15));
}

#[tokio::test]
async fn a_read_model_dropped_behind_its_consumer_is_replayed_at_start() {
    let bank = Bank::start().await;
    let db = TestDb::create().await;
    Ledger::migrate(&db.pool).await;
    write_history(&bank, 15).await;
    runner(&bank, &db, ProjectionConfig::default())
        .catch_up(false)
        .await
        .unwrap();
    let rows = ledger_rows(&db.pool).await;

    // An operator wipes the tables and the checkpoint (e.g. restored an
    // empty database); the consumer still says everything was acked.
    sqlx::raw_sql("TRUNCATE ledger, balances; DELETE FROM es_checkpoints")
        .execute(&db.pool)
        .await
        .unwrap();
    runner(&bank, &db, ProjectionConfig::default())
        .catch_up(false)
        .await
        .unwrap();
    assert_eq!(ledger_rows(&db.pool).await, rows);
}

#[tokio::test]
async fn lag_and_read_your_writes() {
    let bank = Bank::start().await;
    let db = TestDb::create().await;
    Ledger::migrate(&db.pool).await;
    write_history(&bank, 5).await;
    let ledger = std::sync::Arc::new(runner(&bank, &db, ProjectionConfig::default()));
    ledger.catch_up(false).await.unwrap();
    assert_eq!(settled_lag(&ledger).await, 0);

    let accounts = bank.accounts();
    for _ in 0..7 {
        accounts
            .execute(
                &id("acc1"),
                &AccountCommand::Deposit { amount_cents: 10 },
                &CommandContext::default(),
            )
            .await
            .unwrap();
    }
    assert_eq!(ledger.lag().await.unwrap(), 7);

    let shutdown = CancellationToken::new();
    let running = tokio::spawn({
        let (ledger, shutdown) = (ledger.clone(), shutdown.clone());
        async move { ledger.run(shutdown).await }
    });
    let written = accounts
        .execute(
            &id("acc2"),
            &AccountCommand::Deposit { amount_cents: 99 },
            &CommandContext::default(),
        )
        .await
        .unwrap();
    assert!(
        ledger
            .wait_for(written.position, Duration::from_secs(10))
            .await
    );
    let (balance,): (i64,) =
        sqlx::query_as("SELECT balance_cents FROM balances WHERE account = 'acc2'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(balance, 3 + 99);
    assert!(
        !ledger
            .wait_for(written.position + 1, Duration::from_millis(200))
            .await
    );
    shutdown.cancel();
    running.await.unwrap().unwrap();
    assert_eq!(settled_lag(&ledger).await, 0);
}

/// Opens the account `name`.
async fn open_account(bank: &Bank, name: &str) {
    bank.accounts()
        .execute(
            &id(name),
            &AccountCommand::Open { owner: "o".into() },
            &CommandContext::default(),
        )
        .await
        .unwrap();
}

/// Takes `n` messages off the ledger's durable consumer, as another
/// instance would before dying without acking them: they come back only
/// after the ack wait. Returns their stream sequences.
async fn take_without_acking(bank: &Bank, n: usize) -> Vec<u64> {
    let consumer: async_nats::jetstream::consumer::PullConsumer = bank
        .store
        .context()
        .get_consumer_from_stream("ledger", &bank.stream.name)
        .await
        .unwrap();
    let mut taken = consumer.fetch().max_messages(n).messages().await.unwrap();
    let mut sequences = Vec::new();
    while let Some(message) = futures::StreamExt::next(&mut taken).await {
        sequences.push(message.unwrap().info().unwrap().stream_sequence);
    }
    sequences
}

/// The lag once the runner's last ack has reached the server (acks are
/// sent without waiting for a reply), or as it is after 5 s.
async fn settled_lag(ledger: &ProjectionRunner<Ledger>) -> u64 {
    let mut lag = ledger.lag().await.unwrap();
    for _ in 0..50 {
        if lag == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        lag = ledger.lag().await.unwrap();
    }
    lag
}

#[tokio::test]
async fn events_redelivered_out_of_order_are_still_applied_in_stream_order() {
    let bank = Bank::start().await;
    let db = TestDb::create().await;
    Ledger::migrate(&db.pool).await;
    let config = ProjectionConfig::default()
        .with_batch_size(10)
        .with_ack_wait(Duration::from_secs(1));
    let accounts = bank.accounts();
    let ctx = CommandContext::default();
    open_account(&bank, "acc").await;
    runner(&bank, &db, config.clone())
        .catch_up(false)
        .await
        .unwrap();
    for cents in 1..=20 {
        accounts
            .execute(
                &id("acc"),
                &AccountCommand::Deposit {
                    amount_cents: cents,
                },
                &ctx,
            )
            .await
            .unwrap();
    }

    // Another instance takes sequences 2..=6 off the durable consumer and
    // dies without acking: they will come back only after the ack wait,
    // after newer events.
    assert_eq!(take_without_acking(&bank, 5).await, vec![2, 3, 4, 5, 6]);

    assert_eq!(
        runner(&bank, &db, config).catch_up(false).await.unwrap(),
        21
    );
    let rows = ledger_rows(&db.pool).await;
    assert_eq!(rows.len(), 21);
    assert!(rows.iter().all(|r| r.5 == 1), "{rows:?}");
    let in_order: Vec<i64> = rows.iter().map(|r| r.1).collect();
    assert_eq!(in_order, (1..=21).collect::<Vec<i64>>());
    assert_eq!(
        balances(&db.pool).await,
        vec![("acc".to_owned(), (1..=20).sum())]
    );
}

/// The ledger, refusing any deposit of 13 cents: a poison event.
struct PickyLedger;

impl Projection for PickyLedger {
    type Event = AccountEvent;

    fn name(&self) -> &str {
        "ledger"
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[Recorded<AccountEvent>],
    ) -> Result<(), ProjectionError> {
        if events
            .iter()
            .any(|e| matches!(&e.event, AccountEvent::Deposited(d) if d.amount_cents == 13))
        {
            return Err(ProjectionError::Invalid("13 is unlucky".into()));
        }
        Ledger.apply(conn, events).await
    }

    async fn reset(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        Ledger.reset(conn).await
    }
}

#[tokio::test]
async fn a_poison_event_inside_a_filled_gap_is_the_one_dead_lettered() {
    let bank = Bank::start().await;
    let db = TestDb::create().await;
    Ledger::migrate(&db.pool).await;
    let config = ProjectionConfig::default()
        .with_batch_size(10)
        .with_max_attempts(2)
        .with_ack_wait(Duration::from_secs(30));
    let accounts = bank.accounts();
    let ctx = CommandContext::default();
    open_account(&bank, "acc").await;
    let picky = || {
        ProjectionRunner::new(
            PickyLedger,
            db.pool.clone(),
            bank.store.clone(),
            bank.stream.clone(),
            config.clone(),
        )
    };
    picky().catch_up(false).await.unwrap();
    // Deposits of 10..=29 cents at sequences 2..=21: the poison, 13 cents,
    // is sequence 5.
    for cents in 10..=29 {
        accounts
            .execute(
                &id("acc"),
                &AccountCommand::Deposit {
                    amount_cents: cents,
                },
                &ctx,
            )
            .await
            .unwrap();
    }
    // Another instance takes sequences 2..=6 and dies without acking, so
    // the next batch starts at 7 and fills 2..=6 from the stream.
    assert_eq!(take_without_acking(&bank, 5).await, vec![2, 3, 4, 5, 6]);

    assert_eq!(picky().catch_up(false).await.unwrap(), 21);
    let rows = ledger_rows(&db.pool).await;
    let applied: Vec<i64> = rows.iter().map(|r| r.1).collect();
    let expected: Vec<i64> = (1..=21).filter(|sequence| *sequence != 5).collect();
    assert_eq!(applied, expected, "every good event applied, once each");
    assert!(rows.iter().all(|r| r.5 == 1), "{rows:?}");

    let dead = bank.store.context().get_stream("DEADLETTER").await.unwrap();
    assert_eq!(dead.get_info().await.unwrap().state.messages, 1);
    let letter = dead
        .get_last_raw_message_by_subject("deadletter.ledger")
        .await
        .unwrap();
    let header = |name: &str| letter.headers.get(name).map(|v| v.to_string());
    assert_eq!(header("Stocklet-Dlq-Sequence").as_deref(), Some("5"));
    assert!(header("Stocklet-Dlq-Error").unwrap().contains("unlucky"));
    assert_eq!(
        header("Stocklet-Event-Type").as_deref(),
        Some("test.v1.Deposited")
    );
}
