//! A small bank account domain used by the tests: real protobuf events, a
//! real invariant (no overdraft) and a multi-event command.

use std::time::Duration;

use es_core::envelope::Conventions;
use es_core::store::NewEvent;
use es_core::streams::StreamDefinition;
use es_core::{
    Aggregate, CommandContext, DecodeError, DomainEvent as _, EventStore as _, JetStreamEventStore,
    RawEvent, Repository, StreamRef, Upcasters,
};
use stocklet_test_support::NatsServer;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Opened {
    #[prost(string, tag = "1")]
    pub owner: String,
}

/// Current schema (v2): the amount in cents.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Deposited {
    #[prost(int64, tag = "1")]
    pub amount_cents: i64,
}

/// The v1 schema of `Deposited`: whole currency units, in another field.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DepositedV1 {
    #[prost(int64, tag = "2")]
    pub amount_whole: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Withdrawn {
    #[prost(int64, tag = "1")]
    pub amount_cents: i64,
}

macro_rules! test_names {
    ($($ty:ident => $name:literal),+) => {
        $(impl prost::Name for $ty {
            const NAME: &'static str = $name;
            const PACKAGE: &'static str = "test.v1";
        })+
    };
}
test_names!(Opened => "Opened", Deposited => "Deposited", DepositedV1 => "Deposited", Withdrawn => "Withdrawn");

es_core::domain_events! {
    pub enum AccountEvent {
        Opened(Opened),
        Deposited(Deposited) @ 2,
        Withdrawn(Withdrawn),
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Account {
    pub open: bool,
    pub balance_cents: i64,
}

#[derive(Clone, Debug)]
pub enum AccountCommand {
    Open { owner: String },
    OpenWithDeposit { owner: String, amount_cents: i64 },
    Deposit { amount_cents: i64 },
    Withdraw { amount_cents: i64 },
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum AccountError {
    #[error("account already open")]
    AlreadyOpen,
    #[error("account not open")]
    NotOpen,
    #[error("amount must be positive")]
    NonPositiveAmount,
    #[error("insufficient funds: balance {balance_cents}, requested {requested_cents}")]
    InsufficientFunds {
        balance_cents: i64,
        requested_cents: i64,
    },
}

impl Aggregate for Account {
    const TYPE: &'static str = "account";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;

    fn decide(&self, command: &AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        let positive = |amount: i64| {
            if amount > 0 {
                Ok(amount)
            } else {
                Err(AccountError::NonPositiveAmount)
            }
        };
        match command {
            AccountCommand::Open { owner } if !self.open => Ok(vec![
                Opened {
                    owner: owner.clone(),
                }
                .into(),
            ]),
            AccountCommand::OpenWithDeposit {
                owner,
                amount_cents,
            } if !self.open => Ok(vec![
                Opened {
                    owner: owner.clone(),
                }
                .into(),
                Deposited {
                    amount_cents: positive(*amount_cents)?,
                }
                .into(),
            ]),
            AccountCommand::Open { .. } | AccountCommand::OpenWithDeposit { .. } => {
                Err(AccountError::AlreadyOpen)
            }
            _ if !self.open => Err(AccountError::NotOpen),
            AccountCommand::Deposit { amount_cents } => Ok(vec![
                Deposited {
                    amount_cents: positive(*amount_cents)?,
                }
                .into(),
            ]),
            AccountCommand::Withdraw { amount_cents } => {
                let amount_cents = positive(*amount_cents)?;
                if amount_cents > self.balance_cents {
                    return Err(AccountError::InsufficientFunds {
                        balance_cents: self.balance_cents,
                        requested_cents: amount_cents,
                    });
                }
                Ok(vec![Withdrawn { amount_cents }.into()])
            }
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

/// The tests' bank stream, with the event-sourcing defaults.
pub fn bank_definition() -> StreamDefinition {
    StreamDefinition::new("PAYMENT", "payment")
}

/// A server with the bank stream (and the dead-letter stream) provisioned.
pub struct Bank {
    pub server: NatsServer,
    pub store: JetStreamEventStore,
    pub stream: StreamRef,
}

impl Bank {
    pub async fn start() -> Bank {
        Self::start_with(bank_definition(), Duration::from_secs(5)).await
    }

    pub async fn start_with(definition: StreamDefinition, timeout: Duration) -> Bank {
        let server = NatsServer::start().await;
        // An application's own wire names (the reactor test reads them).
        let store = JetStreamEventStore::with_timeout(server.client().await, timeout)
            .with_conventions(Conventions::new("Stocklet-"));
        let stream = definition.ensure(store.context()).await.unwrap();
        es_core::deadletter::definition(store.conventions())
            .ensure(store.context())
            .await
            .unwrap();
        Bank {
            server,
            store,
            stream,
        }
    }

    pub fn accounts(&self) -> Repository<Account, JetStreamEventStore> {
        Repository::new(self.store.clone(), self.stream.clone())
    }

    /// Number of messages in the bank stream.
    pub async fn message_count(&self) -> u64 {
        self.store
            .context()
            .get_stream(&self.stream.name)
            .await
            .unwrap()
            .get_info()
            .await
            .unwrap()
            .state
            .messages
    }
}

pub fn id(name: &str) -> es_core::AggregateId {
    es_core::AggregateId::parse(name).unwrap()
}

/// Appends a `Deposited` of schema version 1 (`whole` currency units) to
/// `account`, as an older release stored it.
pub async fn deposit_v1(bank: &Bank, account: &str, whole: i64) {
    let accounts = bank.accounts();
    let loaded = accounts.load(&id(account)).await.unwrap();
    let mut commit = accounts.commit(
        &id(account),
        loaded.version,
        &[Deposited { amount_cents: 0 }.into()],
        &CommandContext::default(),
    );
    commit.events = vec![NewEvent {
        event_id: uuid::Uuid::now_v7().to_string(),
        raw: RawEvent {
            event_type: "test.v1.Deposited".into(),
            schema_version: 1,
            payload: prost::Message::encode_to_vec(&DepositedV1 {
                amount_whole: whole,
            })
            .into(),
        },
    }];
    bank.store.append(&bank.stream, &commit).await.unwrap();
}

/// Upgrades `Deposited` v1 (whole units) to v2 (cents).
pub fn deposited_v1_to_v2() -> Upcasters {
    Upcasters::default().with(|raw: &RawEvent| {
        if raw.event_type != "test.v1.Deposited" || raw.schema_version != 1 {
            return Ok(None);
        }
        let old: DepositedV1 =
            prost::Message::decode(raw.payload.clone()).map_err(|e| DecodeError::Malformed {
                event_type: raw.event_type.clone(),
                reason: e.to_string(),
            })?;
        Ok(Some(
            AccountEvent::from(Deposited {
                amount_cents: old.amount_whole * 100,
            })
            .to_raw(),
        ))
    })
}

impl es_core::snapshot::SnapshotState for Account {
    const SNAPSHOT_VERSION: u32 = 1;

    fn to_snapshot(&self) -> Vec<u8> {
        let mut bytes = vec![u8::from(self.open)];
        bytes.extend_from_slice(&self.balance_cents.to_le_bytes());
        bytes
    }

    fn from_snapshot(bytes: &[u8]) -> Option<Self> {
        let (open, balance) = bytes.split_first()?;
        Some(Account {
            open: *open == 1,
            balance_cents: i64::from_le_bytes(balance.try_into().ok()?),
        })
    }
}
