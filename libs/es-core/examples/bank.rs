//! The whole es-core loop on the in-memory store, no server needed:
//!
//! 1. **Commands**: bank accounts are opened, credited and debited through a
//!    [`Repository`]; a withdrawal larger than the balance is refused.
//! 2. **Events**: protobuf messages (`#[derive(prost::Message)]` plus a
//!    hand-written [`prost::Name`]), wrapped by [`es_core::domain_events!`].
//! 3. **Reaction**: every withdrawal of 500.00 or more raises an alert on a
//!    second aggregate, with a dedupe key derived from the withdrawal, so a
//!    redelivered event raises nothing twice.
//! 4. **Projection**: a balance sheet folded in memory from the same events;
//!    a command waits for it with [`Repository::execute_and_wait`], so the
//!    next query reads the write.
//!
//! Run it with `cargo run -p es-core --example bank`. It checks what it
//! prints and panics (exit code 101) when something is off; `cargo test`
//! runs it too.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use es_core::reactor::{Reaction, ReactionError};
use es_core::testing::{deliver, recorded};
use es_core::{
    Aggregate, AggregateId, CommandContext, ExecuteError, InMemoryEventStore, ReadModel, Recorded,
    Repository, StreamRef,
};

// ---------------------------------------------------------------------------
// Events: protobuf messages with their full protobuf names.
// ---------------------------------------------------------------------------

/// `bank.v1.AccountOpened`
#[derive(Clone, PartialEq, prost::Message)]
pub struct AccountOpened {
    #[prost(string, tag = "1")]
    pub owner: String,
}

/// `bank.v1.MoneyDeposited`
#[derive(Clone, PartialEq, prost::Message)]
pub struct MoneyDeposited {
    #[prost(int64, tag = "1")]
    pub amount_cents: i64,
}

/// `bank.v1.MoneyWithdrawn`
#[derive(Clone, PartialEq, prost::Message)]
pub struct MoneyWithdrawn {
    #[prost(int64, tag = "1")]
    pub amount_cents: i64,
}

/// `bank.v1.AlertRaised`
#[derive(Clone, PartialEq, prost::Message)]
pub struct AlertRaised {
    #[prost(int64, tag = "1")]
    pub amount_cents: i64,
    /// The withdrawal that caused it.
    #[prost(string, tag = "2")]
    pub withdrawal_event_id: String,
}

// What prost-build writes with `enable_type_names()`; by hand here, since
// this example has no `.proto` file. The event type stored with each event
// is `PACKAGE.NAME`.
macro_rules! bank_v1_names {
    ($($message:ident),+) => {
        $(impl prost::Name for $message {
            const NAME: &'static str = stringify!($message);
            const PACKAGE: &'static str = "bank.v1";
        })+
    };
}
bank_v1_names!(AccountOpened, MoneyDeposited, MoneyWithdrawn, AlertRaised);

es_core::domain_events! {
    /// Everything that happens to a bank account.
    pub enum AccountEvent {
        /// The account exists from now on.
        Opened(AccountOpened),
        /// Money came in.
        Deposited(MoneyDeposited),
        /// Money went out.
        Withdrawn(MoneyWithdrawn),
    }
}

es_core::domain_events! {
    /// What the alert aggregate records.
    pub enum AlertEvent {
        Raised(AlertRaised),
    }
}

es_core::domain_events! {
    /// The only account event the alert reaction reads: the reactor (and
    /// `testing::deliver`) skips every other type without decoding it.
    pub enum Withdrawals {
        Withdrawn(MoneyWithdrawn),
    }
}

// ---------------------------------------------------------------------------
// Aggregate 1: the bank account, with its business rule.
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, Default)]
pub struct BankAccount {
    open: bool,
    balance_cents: i64,
}

#[derive(Debug)]
pub enum AccountCommand {
    Open { owner: String },
    Deposit { amount_cents: i64 },
    Withdraw { amount_cents: i64 },
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum AccountError {
    #[error("the account is already open")]
    AlreadyOpen,
    #[error("the account is not open")]
    NotOpen,
    #[error("amounts must be positive")]
    NonPositiveAmount,
    #[error("insufficient funds: balance {balance_cents}, requested {requested_cents}")]
    InsufficientFunds {
        balance_cents: i64,
        requested_cents: i64,
    },
}

impl Aggregate for BankAccount {
    const TYPE: &'static str = "account";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;

    fn decide(&self, command: &AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        match command {
            AccountCommand::Open { .. } if self.open => Err(AccountError::AlreadyOpen),
            AccountCommand::Open { owner } => Ok(vec![
                AccountOpened {
                    owner: owner.clone(),
                }
                .into(),
            ]),
            _ if !self.open => Err(AccountError::NotOpen),
            AccountCommand::Deposit { amount_cents }
            | AccountCommand::Withdraw { amount_cents }
                if *amount_cents <= 0 =>
            {
                Err(AccountError::NonPositiveAmount)
            }
            AccountCommand::Deposit { amount_cents } => Ok(vec![
                MoneyDeposited {
                    amount_cents: *amount_cents,
                }
                .into(),
            ]),
            // The rule: no overdraft.
            AccountCommand::Withdraw { amount_cents } if *amount_cents > self.balance_cents => {
                Err(AccountError::InsufficientFunds {
                    balance_cents: self.balance_cents,
                    requested_cents: *amount_cents,
                })
            }
            AccountCommand::Withdraw { amount_cents } => Ok(vec![
                MoneyWithdrawn {
                    amount_cents: *amount_cents,
                }
                .into(),
            ]),
        }
    }

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened(_) => self.open = true,
            AccountEvent::Deposited(e) => self.balance_cents += e.amount_cents,
            AccountEvent::Withdrawn(e) => self.balance_cents -= e.amount_cents,
        }
    }
}

// ---------------------------------------------------------------------------
// Aggregate 2: the alerts of one account, written by the reaction.
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, Default)]
pub struct AlertLog {
    raised: Vec<i64>,
}

#[derive(Debug)]
pub struct RaiseAlert {
    amount_cents: i64,
    withdrawal_event_id: String,
}

/// An alert log accepts every alert.
#[derive(Debug, thiserror::Error)]
pub enum Never {}

impl Aggregate for AlertLog {
    const TYPE: &'static str = "alert";
    type Command = RaiseAlert;
    type Event = AlertEvent;
    type Error = Never;

    fn decide(&self, command: &RaiseAlert) -> Result<Vec<AlertEvent>, Never> {
        Ok(vec![
            AlertRaised {
                amount_cents: command.amount_cents,
                withdrawal_event_id: command.withdrawal_event_id.clone(),
            }
            .into(),
        ])
    }

    fn apply(&mut self, event: &AlertEvent) {
        let AlertEvent::Raised(alert) = event;
        self.raised.push(alert.amount_cents);
    }
}

// ---------------------------------------------------------------------------
// The reaction: large withdrawal → alert. In a service a `Reactor` feeds it
// from JetStream; here `testing::deliver` feeds it from the in-memory store.
// ---------------------------------------------------------------------------

const LARGE_WITHDRAWAL_CENTS: i64 = units(500);

/// Whole currency units in cents.
const fn units(amount: i64) -> i64 {
    amount * 100
}

/// Cents as `123.45`.
fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

pub struct LargeWithdrawalAlerts {
    alerts: Repository<AlertLog, InMemoryEventStore>,
}

impl Reaction for LargeWithdrawalAlerts {
    type Event = Withdrawals;

    async fn react(&self, event: &Recorded<Withdrawals>) -> Result<(), ReactionError> {
        let Withdrawals::Withdrawn(withdrawal) = &event.event;
        if withdrawal.amount_cents < LARGE_WITHDRAWAL_CENTS {
            return Ok(());
        }
        let account = AggregateId::parse(event.meta.aggregate_id.as_str())
            .map_err(|e| ReactionError::Permanent(e.to_string()))?;
        let command = RaiseAlert {
            amount_cents: withdrawal.amount_cents,
            withdrawal_event_id: event.meta.event_id.clone(),
        };
        // The dedupe key is `large-withdrawal-alerts:<event id>`: a
        // redelivered withdrawal finds its alert in the history and writes
        // nothing.
        let context = CommandContext::caused_by(&event.meta, "large-withdrawal-alerts");
        match self.alerts.execute(&account, &command, &context).await {
            Ok(_) => Ok(()),
            Err(ExecuteError::Rejected(never)) => match never {},
            Err(error) => Err(ReactionError::Transient(error.to_string())),
        }
    }
}

// ---------------------------------------------------------------------------
// The projection: balances per account, folded in memory. In a service this
// is a `projection::Projection` writing PostgreSQL rows; the fold is the same.
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Line {
    owner: String,
    balance_cents: i64,
    movements: u32,
}

#[derive(Debug, Default)]
struct Sheet {
    /// Stream sequence of the last event applied: the checkpoint.
    checkpoint: u64,
    lines: BTreeMap<String, Line>,
}

impl Sheet {
    fn apply(&mut self, event: &Recorded<AccountEvent>) {
        let line = self
            .lines
            .entry(event.meta.aggregate_id.clone())
            .or_default();
        match &event.event {
            AccountEvent::Opened(e) => line.owner.clone_from(&e.owner),
            AccountEvent::Deposited(e) => {
                line.balance_cents += e.amount_cents;
                line.movements += 1;
            }
            AccountEvent::Withdrawn(e) => {
                line.balance_cents -= e.amount_cents;
                line.movements += 1;
            }
        }
    }
}

/// The balance sheet over one stream of the in-memory store.
pub struct Balances {
    store: InMemoryEventStore,
    stream: StreamRef,
    sheet: Mutex<Sheet>,
}

impl Balances {
    fn new(store: InMemoryEventStore, stream: StreamRef) -> Self {
        Self {
            store,
            stream,
            sheet: Mutex::new(Sheet::default()),
        }
    }

    /// Applies the events stored since the checkpoint, in stream order;
    /// event types other than `AccountEvent`'s (the alerts) only move the
    /// checkpoint. Returns the new checkpoint.
    fn catch_up(&self) -> Result<u64, Box<dyn std::error::Error>> {
        let mut sheet = self.sheet();
        let stored = self.store.all_events(&self.stream)?;
        let Some(last) = stored.last().map(|e| e.meta.stream_sequence) else {
            return Ok(sheet.checkpoint);
        };
        let checkpoint = sheet.checkpoint;
        let newer = stored
            .into_iter()
            .filter(|e| e.meta.stream_sequence > checkpoint);
        for event in recorded::<AccountEvent>(newer)? {
            sheet.apply(&event);
        }
        sheet.checkpoint = last;
        Ok(last)
    }

    fn line(&self, account: &AggregateId) -> Result<Line, String> {
        let sheet = self.sheet();
        let line = sheet.lines.get(account.as_str()).cloned();
        line.ok_or_else(|| format!("{account} is not in the balance sheet"))
    }

    fn checkpoint(&self) -> u64 {
        self.sheet().checkpoint
    }

    fn sheet(&self) -> MutexGuard<'_, Sheet> {
        self.sheet.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What `execute_and_wait` waits on. A `ProjectionRunner` waits for its
/// consumer; this in-memory view simply catches up when asked.
impl ReadModel for Balances {
    async fn wait_for(&self, position: u64, _timeout: Duration) -> bool {
        match self.catch_up() {
            Ok(checkpoint) => checkpoint >= position,
            Err(error) => {
                eprintln!("the balance sheet cannot catch up: {error}");
                false
            }
        }
    }
}

// ---------------------------------------------------------------------------

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = InMemoryEventStore::new();
    let stream = StreamRef::new("BANK", "bank");
    let accounts: Repository<BankAccount, _> = Repository::new(store.clone(), stream.clone());
    let alerts = LargeWithdrawalAlerts {
        alerts: Repository::new(store.clone(), stream.clone()),
    };
    let balances = Balances::new(store.clone(), stream.clone());
    let wait = Duration::from_secs(1);
    let none = CommandContext::default();

    // 1. Commands.
    let ada = AggregateId::parse("ada")?;
    let bob = AggregateId::parse("bob")?;
    let open = |owner: &str| AccountCommand::Open {
        owner: owner.to_owned(),
    };
    accounts.execute(&ada, &open("Ada Lovelace"), &none).await?;
    accounts.execute(&bob, &open("Bob Stone"), &none).await?;
    let deposit = AccountCommand::Deposit {
        amount_cents: units(1000),
    };
    accounts.execute(&ada, &deposit, &none).await?;
    println!("opened ada and bob, deposited 1000.00 to ada");

    // The business rule refuses an overdraft, and nothing is written.
    let overdraft = AccountCommand::Withdraw { amount_cents: 1 };
    match accounts.execute(&bob, &overdraft, &none).await {
        Err(ExecuteError::Rejected(AccountError::InsufficientFunds {
            balance_cents: 0,
            requested_cents: 1,
        })) => println!("bob's overdraft of 0.01 was refused"),
        other => panic!("an overdraft must be refused, got {other:?}"),
    }

    // A command repeated with its dedupe key takes effect once.
    let salary = CommandContext::with_dedupe_key("salary-2025-01");
    let first = accounts
        .execute(
            &bob,
            &AccountCommand::Deposit {
                amount_cents: units(300),
            },
            &salary,
        )
        .await?;
    let again = accounts
        .execute(
            &bob,
            &AccountCommand::Deposit {
                amount_cents: units(300),
            },
            &salary,
        )
        .await?;
    assert!(
        !first.replayed && again.replayed,
        "the repeat must be replayed"
    );
    assert_eq!(again.position, first.position);
    assert_eq!(again.state.balance_cents, units(300));
    println!("bob's salary was sent twice and credited once");

    // 2. Read your writes: the command returns once the view holds it.
    let large = AccountCommand::Withdraw {
        amount_cents: units(600),
    };
    let executed = accounts
        .execute_and_wait(&ada, &large, &none, &balances, wait)
        .await?;
    assert!(balances.checkpoint() >= executed.position);
    let ada_line = balances.line(&ada)?;
    assert_eq!(
        ada_line,
        Line {
            owner: "Ada Lovelace".into(),
            balance_cents: units(400),
            movements: 2,
        }
    );
    println!(
        "ada withdrew 600.00; the view already shows her balance of {}",
        money(ada_line.balance_cents)
    );
    let small = AccountCommand::Withdraw {
        amount_cents: units(50),
    };
    accounts.execute(&bob, &small, &none).await?;

    // 3. The reaction, fed every event of the stream in order. It handles
    //    the two withdrawals and skips the other types.
    let handled = deliver(&alerts, store.all_events(&stream)?).await?;
    assert_eq!(handled, 2, "two withdrawals reach the reaction");
    let ada_alerts = alerts.alerts.load(&ada).await?;
    assert_eq!(ada_alerts.state.raised, [units(600)]);
    assert!(!alerts.alerts.load(&bob).await?.exists(), "50.00 is small");
    println!("the 600.00 withdrawal raised an alert; bob's 50.00 did not");

    // A redelivery (the whole stream again) changes nothing.
    let before = store.all_events(&stream)?.len();
    deliver(&alerts, store.all_events(&stream)?).await?;
    assert_eq!(store.all_events(&stream)?.len(), before);
    assert_eq!(alerts.alerts.load(&ada).await?.state.raised.len(), 1);
    println!("redelivering every event raised no second alert");

    // 4. The projection, caught up with everything (the alert events only
    //    move its checkpoint), agrees with the aggregates.
    let at = balances.catch_up()?;
    let last = store
        .all_events(&stream)?
        .last()
        .map(|e| e.meta.stream_sequence);
    assert_eq!(Some(at), last);
    for account in [&ada, &bob] {
        let state = accounts.load(account).await?.state;
        let line = balances.line(account)?;
        assert_eq!(line.balance_cents, state.balance_cents, "{account}");
    }
    let bob_line = balances.line(&bob)?;
    assert_eq!(
        (bob_line.balance_cents, bob_line.movements),
        (units(250), 2)
    );
    println!(
        "balances at stream sequence {at}: ada {}, bob {}",
        money(balances.line(&ada)?.balance_cents),
        money(bob_line.balance_cents),
    );
    println!("ok");
    Ok(())
}

#[cfg(test)]
mod tests {
    /// `cargo test` runs the example's checks.
    #[test]
    fn the_bank_example_runs() -> Result<(), Box<dyn std::error::Error>> {
        super::main()
    }
}
