//! The ledger: one row per balance and one per transaction.
//!
//! Balance events carry the balance after the change, so the row copies it
//! rather than adding deltas. A balance closed before it was ever opened
//! (the user's deletion overtook their registration) still gets a row,
//! marked closed.

use es_core::Recorded;
use es_core::projection::{Projection, ProjectionError};
use sqlx::{PgConnection, PgPool};
use stocklet_proto::stocklet::events::v1 as pb;

use crate::domain::BalanceEvent;

/// Projects balance events into `balances` and `transactions`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ledger;

impl Projection for Ledger {
    type Event = BalanceEvent;

    fn name(&self) -> &str {
        "payment-ledger"
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[Recorded<BalanceEvent>],
    ) -> Result<(), ProjectionError> {
        for stored in events {
            match &stored.event {
                BalanceEvent::Opened(e) => {
                    sqlx::query(
                        "INSERT INTO balances (customer_id, balance_cents, created_at_ms, updated_at_ms)
                         VALUES ($1, 0, $2, $2) ON CONFLICT (customer_id) DO NOTHING",
                    )
                    .bind(&e.customer_id)
                    .bind(e.occurred_at_ms)
                    .execute(&mut *conn)
                    .await?;
                }
                BalanceEvent::Credited(e) => {
                    set_balance(conn, &e.customer_id, e.balance_cents, e.occurred_at_ms).await?;
                    if e.reason() == pb::BalanceCreditReason::TopUp {
                        insert_transaction(
                            conn,
                            &e.transaction_id,
                            "credit",
                            &e.customer_id,
                            "",
                            e.amount_cents,
                            e.occurred_at_ms,
                        )
                        .await?;
                    }
                }
                BalanceEvent::Debited(e) => {
                    set_balance(conn, &e.customer_id, e.balance_cents, e.occurred_at_ms).await?;
                    insert_transaction(
                        conn,
                        &e.transaction_id,
                        "payment",
                        &e.customer_id,
                        &e.order_id,
                        e.amount_cents,
                        e.occurred_at_ms,
                    )
                    .await?;
                }
                BalanceEvent::Closed(e) => {
                    sqlx::query(
                        "INSERT INTO balances (customer_id, balance_cents, closed, created_at_ms, updated_at_ms)
                         VALUES ($1, $2, true, $3, $3)
                         ON CONFLICT (customer_id) DO UPDATE
                         SET closed = true, balance_cents = $2, updated_at_ms = $3",
                    )
                    .bind(&e.customer_id)
                    .bind(e.balance_cents)
                    .bind(e.occurred_at_ms)
                    .execute(&mut *conn)
                    .await?;
                }
                BalanceEvent::Reversed(e) => {
                    sqlx::query("UPDATE transactions SET reversed_at_ms = $2 WHERE id = $1")
                        .bind(&e.transaction_id)
                        .bind(e.occurred_at_ms)
                        .execute(&mut *conn)
                        .await?;
                }
                // Saga outcomes: the money moved in the events around them.
                BalanceEvent::Captured(_) | BalanceEvent::Failed(_) => {}
            }
        }
        Ok(())
    }

    async fn reset(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("TRUNCATE balances, transactions")
            .execute(conn)
            .await?;
        Ok(())
    }
}

async fn set_balance(
    conn: &mut PgConnection,
    customer_id: &str,
    balance_cents: i64,
    at_ms: i64,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "UPDATE balances SET balance_cents = $2, updated_at_ms = $3 WHERE customer_id = $1",
    )
    .bind(customer_id)
    .bind(balance_cents)
    .bind(at_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn insert_transaction(
    conn: &mut PgConnection,
    id: &str,
    kind: &str,
    customer_id: &str,
    order_id: &str,
    amount_cents: i64,
    at_ms: i64,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "INSERT INTO transactions (id, kind, customer_id, order_id, amount_cents, processed_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(kind)
    .bind(customer_id)
    .bind(order_id)
    .bind(amount_cents)
    .bind(at_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// One open balance as the read model shows it.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct BalanceRow {
    /// The customer (user id).
    pub customer_id: String,
    /// The money available, in cents.
    pub balance_cents: i64,
    /// When it was opened, Unix ms.
    pub created_at_ms: i64,
    /// Last change, Unix ms.
    pub updated_at_ms: i64,
}

impl BalanceRow {
    /// A customer's open balance.
    pub async fn find(pool: &PgPool, customer_id: &str) -> Result<Option<Self>, sqlx::Error> {
        sqlx::query_as(
            "SELECT customer_id, balance_cents, created_at_ms, updated_at_ms
             FROM balances WHERE customer_id = $1 AND NOT closed",
        )
        .bind(customer_id)
        .fetch_optional(pool)
        .await
    }
}

/// One transaction as the read model shows it.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct TransactionRow {
    /// The transaction's id.
    pub id: String,
    /// `payment` or `credit`.
    pub kind: String,
    /// The customer (user id).
    pub customer_id: String,
    /// The order paid for; empty for a credit.
    pub order_id: String,
    /// The amount, in cents.
    pub amount_cents: i64,
    /// When it was processed, Unix ms.
    pub processed_at_ms: i64,
    /// When it was reversed, Unix ms; zero if not.
    pub reversed_at_ms: i64,
}

const TRANSACTION_COLUMNS: &str =
    "id, kind, customer_id, order_id, amount_cents, processed_at_ms, reversed_at_ms";

impl TransactionRow {
    /// A transaction by id.
    pub async fn find(pool: &PgPool, id: &str) -> Result<Option<Self>, sqlx::Error> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {TRANSACTION_COLUMNS} FROM transactions WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(pool)
        .await
    }

    /// Up to `limit` of a customer's transactions before `before`, newest
    /// first.
    pub async fn page(
        pool: &PgPool,
        customer_id: &str,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Self>, sqlx::Error> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {TRANSACTION_COLUMNS} FROM transactions
             WHERE customer_id = $1 AND ($2::text IS NULL OR id < $2)
             ORDER BY id DESC LIMIT $3"
        )))
        .bind(customer_id)
        .bind(before)
        .bind(limit)
        .fetch_all(pool)
        .await
    }
}
