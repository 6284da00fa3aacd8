//! Reactors: at-least-once delivery, exactly-once effect, and dead letters.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use es_core::reactor::{Reaction, ReactionError, Reactor, ReactorConfig};
use es_core::streams::StreamDefinition;
use es_core::{
    CommandContext, EventStore as _, JetStreamEventStore, RawEvent, Recorded, Repository, StreamRef,
};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::common::*;

/// Mirrors every deposit into an account of the same id in another stream,
/// the way a saga step turns one service's event into another's command.
#[derive(Clone)]
struct MirrorDeposits {
    mirror: Repository<Account, JetStreamEventStore>,
    attempts: Arc<Mutex<HashMap<String, u32>>>,
    /// Fails after its append on the first delivery, like a crash between
    /// the append and the ack.
    fail_after_append_once: bool,
    /// Amount that always fails: a poison event.
    poison_amount: Option<i64>,
}

impl Reaction for MirrorDeposits {
    type Event = AccountEvent;

    async fn react(&self, stored: &Recorded<AccountEvent>) -> Result<(), ReactionError> {
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            let n = attempts.entry(stored.meta.event_id.clone()).or_default();
            *n += 1;
            *n
        };
        let AccountEvent::Deposited(deposit) = &stored.event else {
            return Ok(());
        };
        if Some(deposit.amount_cents) == self.poison_amount {
            return Err(ReactionError::Transient("the mirror refuses 13".into()));
        }
        let target = id(&stored.meta.aggregate_id);
        let ctx = CommandContext::caused_by(&stored.meta, "mirror");
        let command = AccountCommand::OpenWithDeposit {
            owner: "mirror".into(),
            amount_cents: deposit.amount_cents,
        };
        let result = self.mirror.execute(&target, &command, &ctx).await;
        let result = match result {
            Err(es_core::ExecuteError::Rejected(AccountError::AlreadyOpen)) => self
                .mirror
                .execute(
                    &target,
                    &AccountCommand::Deposit {
                        amount_cents: deposit.amount_cents,
                    },
                    &ctx,
                )
                .await
                .map(|_| ()),
            other => other.map(|_| ()),
        };
        result.map_err(|e| ReactionError::Transient(e.to_string()))?;
        if self.fail_after_append_once && attempt == 1 {
            return Err(ReactionError::Transient("crashed before the ack".into()));
        }
        Ok(())
    }
}

struct Setup {
    bank: Bank,
    mirror: Repository<Account, JetStreamEventStore>,
    reaction: MirrorDeposits,
}

async fn setup(fail_after_append_once: bool, poison_amount: Option<i64>) -> Setup {
    let bank = Bank::start().await;
    let mirror_stream: StreamRef = StreamDefinition::new("SHIPPING", "shipping")
        .ensure(bank.store.context())
        .await
        .unwrap();
    let mirror = Repository::new(bank.store.clone(), mirror_stream);
    let reaction = MirrorDeposits {
        mirror: mirror.clone(),
        attempts: Arc::default(),
        fail_after_append_once,
        poison_amount,
    };
    Setup {
        bank,
        mirror,
        reaction,
    }
}

fn config() -> ReactorConfig {
    ReactorConfig::new("mirror-from-bank")
        .with_max_deliveries(3)
        .with_backoff(vec![Duration::from_millis(50)])
        .with_concurrency(4)
}

async fn deposit(bank: &Bank, account: &str, cents: i64) {
    let accounts = bank.accounts();
    let ctx = CommandContext::default();
    if !accounts.load(&id(account)).await.unwrap().exists() {
        accounts
            .execute(
                &id(account),
                &AccountCommand::Open { owner: "o".into() },
                &ctx,
            )
            .await
            .unwrap();
    }
    accounts
        .execute(
            &id(account),
            &AccountCommand::Deposit {
                amount_cents: cents,
            },
            &ctx,
        )
        .await
        .unwrap();
}

/// Polls until `check` holds, for at most ten seconds.
async fn eventually<F: Fn() -> Fut, Fut: Future<Output = bool>>(what: &str, check: F) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test]
async fn a_redelivered_event_causes_one_effect() {
    let s = setup(true, None).await;
    for (account, cents) in [("x", 5), ("y", 7), ("x", 11)] {
        deposit(&s.bank, account, cents).await;
    }
    let reactor = Reactor::new(
        s.reaction.clone(),
        &s.bank.store,
        s.bank.stream.clone(),
        config(),
    );
    let shutdown = CancellationToken::new();
    let running = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { reactor.run(shutdown).await }
    });

    // Every deposit's first attempt "crashes" after its append, so each is
    // delivered twice; openings are delivered once.
    eventually("every deposit is redelivered and acked", || async {
        let attempts = s.reaction.attempts.lock().unwrap();
        attempts.values().filter(|n| **n == 2).count() == 3
    })
    .await;
    eventually("both mirrors complete", || async {
        s.mirror.load(&id("x")).await.unwrap().state.balance_cents == 16
            && s.mirror.load(&id("y")).await.unwrap().state.balance_cents == 7
    })
    .await;
    let x = s.mirror.load(&id("x")).await.unwrap();
    assert_eq!(
        x.history.len(),
        3,
        "open + deposit from the first, deposit from the second"
    );
    shutdown.cancel();
    running.await.unwrap().unwrap();
    assert_eq!(
        s.mirror.load(&id("x")).await.unwrap().state.balance_cents,
        16
    );
}

#[tokio::test]
async fn old_event_versions_reach_the_reaction_upcast() {
    let s = setup(false, None).await;
    deposit(&s.bank, "legacy", 5).await;
    // Stored by an older release: 12 whole units, as `Deposited` v1.
    deposit_v1(&s.bank, "legacy", 12).await;
    let reactor = Reactor::new(
        s.reaction.clone(),
        &s.bank.store,
        s.bank.stream.clone(),
        config(),
    )
    .with_upcasters(deposited_v1_to_v2());
    let shutdown = CancellationToken::new();
    let running = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { reactor.run(shutdown).await }
    });
    eventually("the mirror holds both deposits", || async {
        s.mirror
            .load(&id("legacy"))
            .await
            .unwrap()
            .state
            .balance_cents
            == 1205
    })
    .await;
    shutdown.cancel();
    running.await.unwrap().unwrap();
    let dead_letters = s
        .bank
        .store
        .context()
        .get_stream(es_core::deadletter::STREAM_NAME)
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap()
        .state
        .messages;
    assert_eq!(dead_letters, 0, "nothing was dead-lettered");
}

#[tokio::test]
async fn a_poison_event_is_dead_lettered_after_n_attempts_while_later_events_flow() {
    let s = setup(false, Some(13)).await;
    deposit(&s.bank, "p", 13).await;
    for cents in 1..=5 {
        deposit(&s.bank, "q", cents).await;
    }
    let reactor = Reactor::new(
        s.reaction.clone(),
        &s.bank.store,
        s.bank.stream.clone(),
        config(),
    );
    let shutdown = CancellationToken::new();
    let running = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { reactor.run(shutdown).await }
    });
    eventually("later events are mirrored", || async {
        s.mirror.load(&id("q")).await.unwrap().state.balance_cents == 15
    })
    .await;

    let context = s.bank.store.context();
    let dead = context.get_stream("DEADLETTER").await.unwrap();
    eventually(
        "the poison event reaches the dead-letter stream",
        || async { dead.get_info().await.unwrap().state.messages == 1 },
    )
    .await;
    let letter = dead
        .get_last_raw_message_by_subject("deadletter.mirror-from-bank")
        .await
        .unwrap();
    let header = |name: &str| letter.headers.get(name).map(|v| v.to_string());
    assert_eq!(header("Stocklet-Dlq-Deliveries").as_deref(), Some("3"));
    assert!(header("Stocklet-Dlq-Error").unwrap().contains("refuses 13"));
    assert_eq!(header("Stocklet-Dlq-Stream").as_deref(), Some("PAYMENT"));
    assert_eq!(
        header("Stocklet-Event-Type").as_deref(),
        Some("test.v1.Deposited")
    );
    let attempts = s.reaction.attempts.lock().unwrap().values().copied().max();
    assert_eq!(attempts, Some(3), "tried exactly max_deliveries times");
    assert!(!s.mirror.load(&id("p")).await.unwrap().exists());
    shutdown.cancel();
    running.await.unwrap().unwrap();

    // And nothing is redelivered afterwards: the consumer has nothing pending.
    let mut consumer: async_nats::jetstream::consumer::PullConsumer = context
        .get_consumer_from_stream("mirror-from-bank", "PAYMENT")
        .await
        .unwrap();
    let info = consumer.info().await.unwrap();
    assert_eq!((info.num_pending, info.num_ack_pending), (0, 0));
    let mut leftovers = consumer.fetch().max_messages(10).messages().await.unwrap();
    assert!(leftovers.next().await.is_none());
}

/// Records which events it handled, slowly, so a reactor stopped mid-way
/// still holds pulled events it has not started.
#[derive(Clone, Default)]
struct SlowRecorder {
    handled: Arc<Mutex<Vec<String>>>,
}

impl Reaction for SlowRecorder {
    type Event = RawEvent;

    async fn react(&self, stored: &Recorded<RawEvent>) -> Result<(), ReactionError> {
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.handled
            .lock()
            .unwrap()
            .push(stored.meta.event_id.clone());
        Ok(())
    }
}

#[tokio::test]
async fn events_pulled_but_not_started_go_to_another_instance_at_once_on_shutdown() {
    let bank = Bank::start().await;
    for cents in 1..=6 {
        deposit(&bank, "s", cents).await;
    }
    let total = usize::try_from(bank.message_count().await).unwrap();
    // One at a time, two pulled per batch: the first instance always holds
    // events it has not started. The ack wait is a long 30 s.
    let config = ReactorConfig::new("slow-from-bank")
        .with_concurrency(1)
        .with_ack_wait(Duration::from_secs(30));
    assert_eq!(config.ack_wait, Duration::from_secs(30));
    let first = SlowRecorder::default();
    let reactor = Reactor::new(
        first.clone(),
        &bank.store,
        bank.stream.clone(),
        config.clone(),
    );
    let shutdown = CancellationToken::new();
    let running = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { reactor.run(shutdown).await }
    });
    eventually("the first instance handles an event", || async {
        !first.handled.lock().unwrap().is_empty()
    })
    .await;
    shutdown.cancel();
    running.await.unwrap().unwrap();
    let done_by_first = first.handled.lock().unwrap().len();
    assert!(
        done_by_first < total,
        "the first instance stopped with events left"
    );

    let stopped_at = std::time::Instant::now();
    let second = SlowRecorder::default();
    let reactor = Reactor::new(second.clone(), &bank.store, bank.stream.clone(), config);
    let shutdown = CancellationToken::new();
    let running = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { reactor.run(shutdown).await }
    });
    // At least once: count distinct events.
    let distinct = || {
        let mut all: Vec<String> = first.handled.lock().unwrap().clone();
        all.extend(second.handled.lock().unwrap().iter().cloned());
        all.sort();
        all.dedup();
        all.len()
    };
    eventually("the second instance handles the rest", || async {
        distinct() == total
    })
    .await;
    let waited = stopped_at.elapsed();
    assert!(
        waited < Duration::from_secs(10),
        "the rest took {waited:?}: unstarted events waited for the ack wait"
    );
    shutdown.cancel();
    running.await.unwrap().unwrap();
    assert_eq!(distinct(), total, "every event handled");
    assert!(
        !second.handled.lock().unwrap().is_empty(),
        "the second instance took over"
    );
}

/// Counts its attempts per event. An event "is not applicable yet" until
/// `ready` is set, and a deposit of 13 cents is refused for good.
#[derive(Clone, Default)]
struct Waiting {
    ready: Arc<std::sync::atomic::AtomicBool>,
    /// The fix an operator deploys: 13 is no longer refused.
    fixed: Arc<std::sync::atomic::AtomicBool>,
    attempts: Arc<Mutex<HashMap<String, u32>>>,
    done: Arc<Mutex<Vec<String>>>,
}

impl Reaction for Waiting {
    type Event = AccountEvent;

    async fn react(&self, stored: &Recorded<AccountEvent>) -> Result<(), ReactionError> {
        *self
            .attempts
            .lock()
            .unwrap()
            .entry(stored.meta.event_id.clone())
            .or_default() += 1;
        if let AccountEvent::Deposited(deposit) = &stored.event
            && deposit.amount_cents == 13
            && !self.fixed.load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(ReactionError::Permanent("13 is refused".into()));
        }
        if !self.ready.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ReactionError::NotYet("waiting for another consumer".into()));
        }
        self.done.lock().unwrap().push(stored.meta.event_id.clone());
        Ok(())
    }
}

#[tokio::test]
async fn not_yet_is_retried_past_the_transient_budget_and_permanent_is_dead_lettered_at_once() {
    let bank = Bank::start().await;
    deposit(&bank, "w", 5).await; // open + deposit
    deposit(&bank, "v", 13).await; // open + the refused deposit
    let waiting = Waiting::default();
    // A transient failure would be given up after 3 deliveries; "not yet"
    // has its own budget, the deadline.
    let config = ReactorConfig::new("waiting-from-bank")
        .with_max_deliveries(1000)
        .with_backoff(vec![Duration::from_millis(50)])
        .with_not_yet_deadline(Duration::from_secs(60));
    let reactor = Reactor::new(waiting.clone(), &bank.store, bank.stream.clone(), config);
    let shutdown = CancellationToken::new();
    let running = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { reactor.run(shutdown).await }
    });
    let context = bank.store.context();
    let dead = context.get_stream("DEADLETTER").await.unwrap();
    eventually("the refused deposit is dead-lettered", || async {
        dead.get_info().await.unwrap().state.messages == 1
    })
    .await;
    eventually("the waiting events are retried many times", || async {
        let attempts = waiting.attempts.lock().unwrap();
        attempts.len() == 4 && attempts.values().filter(|n| **n > 10).count() == 3
    })
    .await;
    waiting
        .ready
        .store(true, std::sync::atomic::Ordering::SeqCst);
    eventually("every waiting event is handled once ready", || async {
        waiting.done.lock().unwrap().len() == 3
    })
    .await;
    shutdown.cancel();
    running.await.unwrap().unwrap();

    let refused = {
        let attempts = waiting.attempts.lock().unwrap();
        attempts.values().filter(|n| **n == 1).count()
    };
    assert_eq!(refused, 1, "the permanent failure was tried exactly once");
    assert_eq!(dead.get_info().await.unwrap().state.messages, 1);
    let letter = dead
        .get_last_raw_message_by_subject("deadletter.waiting-from-bank")
        .await
        .unwrap();
    let header = |name: &str| letter.headers.get(name).map(|v| v.to_string());
    assert!(
        header("Stocklet-Dlq-Error")
            .unwrap()
            .contains("13 is refused")
    );
    assert_eq!(header("Stocklet-Dlq-Deliveries").as_deref(), Some("1"));
}

#[tokio::test]
async fn the_servers_delivery_bound_leaves_room_for_the_dead_letter() {
    let bank = Bank::start().await;
    let config = ReactorConfig::new("bounded-from-bank").with_max_deliveries(7);
    let reactor = Reactor::new(Waiting::default(), &bank.store, bank.stream.clone(), config);
    let mut consumer = reactor.ensure_consumer().await.unwrap();
    let info = consumer.info().await.unwrap();
    assert_eq!(
        info.config.max_deliver,
        7 + i64::from(es_core::reactor::DEAD_LETTER_ROOM),
        "bounded, never unlimited, and above the reactor's own bound"
    );
    assert_eq!(info.config.ack_wait, Duration::from_secs(5));
}

#[tokio::test]
async fn an_operator_lists_replays_and_discards_dead_letters() {
    use es_core::deadletter::{DeadLetterError, DeadLetters};

    let bank = Bank::start().await;
    deposit(&bank, "v", 13).await; // open (seq 1) + the refused deposit (seq 2)
    let waiting = Waiting::default();
    waiting
        .ready
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let config =
        ReactorConfig::new("waiting-from-bank").with_backoff(vec![Duration::from_millis(50)]);
    let reactor = Reactor::new(waiting.clone(), &bank.store, bank.stream.clone(), config);
    let shutdown = CancellationToken::new();
    let running = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { reactor.run(shutdown).await }
    });
    let letters = DeadLetters::new(
        bank.store.context().clone(),
        bank.store.conventions().clone(),
    );
    eventually("the refused deposit is dead-lettered", || async {
        letters.list(None, 0, 10).await.unwrap().len() == 1
    })
    .await;
    let listed = letters
        .list(Some("waiting-from-bank"), 0, 10)
        .await
        .unwrap();
    let letter = &listed[0];
    assert_eq!(letter.consumer, "waiting-from-bank");
    assert_eq!(letter.stream, "PAYMENT");
    assert_eq!(letter.stream_sequence, 2);
    assert_eq!(letter.event_type, "test.v1.Deposited");
    assert!(letter.error.contains("13 is refused"), "{letter:?}");
    assert_eq!(letters.get(letter.sequence).await.unwrap(), *letter);
    assert!(
        letters
            .list(Some("someone-else"), 0, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Replayed before the fix: refused again, and filed again (not lost to
    // the duplicate window, although it is the same event).
    let replayed = letters.replay(letter.sequence).await.unwrap();
    assert_eq!(replayed.event_id, letter.event_id);
    assert!(matches!(
        letters.get(letter.sequence).await,
        Err(DeadLetterError::NotFound(_))
    ));
    let again = {
        let mut again = Vec::new();
        for _ in 0..200 {
            again = letters.list(None, 0, 10).await.unwrap();
            if !again.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        again
    };
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0].event_id, letter.event_id);
    assert_eq!(
        (again[0].stream.as_str(), again[0].stream_sequence),
        ("PAYMENT", 2)
    );

    // After the fix, the replay is handled once; a second replay of the
    // same letter is gone.
    waiting
        .fixed
        .store(true, std::sync::atomic::Ordering::SeqCst);
    letters.replay(again[0].sequence).await.unwrap();
    eventually("the replayed deposit is handled", || async {
        waiting.done.lock().unwrap().contains(&letter.event_id)
    })
    .await;
    assert!(matches!(
        letters.replay(again[0].sequence).await,
        Err(DeadLetterError::NotFound(_))
    ));
    eventually("nothing is left in the dead-letter stream", || async {
        let dead = bank.store.context().get_stream("DEADLETTER").await.unwrap();
        dead.get_info().await.unwrap().state.messages == 0
    })
    .await;

    // Discarding: a letter of a consumer that takes no replays.
    es_core::deadletter::publish_stored(
        bank.store.context(),
        bank.store.conventions(),
        "a-projection",
        "PAYMENT",
        1,
        "bad row",
    )
    .await
    .unwrap();
    let projection_letter = letters.list(Some("a-projection"), 0, 10).await.unwrap()[0].clone();
    assert!(matches!(
        letters.replay(projection_letter.sequence).await,
        Err(DeadLetterError::NoReplay { .. })
    ));
    letters.discard(projection_letter.sequence).await.unwrap();
    assert!(letters.list(None, 0, 10).await.unwrap().is_empty());
    assert!(matches!(
        letters.discard(projection_letter.sequence).await,
        Err(DeadLetterError::NotFound(_))
    ));

    shutdown.cancel();
    running.await.unwrap().unwrap();
    let done = waiting.done.lock().unwrap();
    assert_eq!(
        done.iter().filter(|id| **id == letter.event_id).count(),
        1,
        "handled exactly once"
    );
}
