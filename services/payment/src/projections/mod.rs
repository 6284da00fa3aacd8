//! Read models of the payment service, built from the `PAYMENT` stream.
//!
//! - [`Ledger`]: the `balances` and `transactions` tables behind
//!   ViewBalance, ViewTransaction and ViewTransactions.

mod ledger;

pub use ledger::{BalanceRow, Ledger, TransactionRow};
