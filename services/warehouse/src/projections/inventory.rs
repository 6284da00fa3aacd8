//! The inventory: one row per product's stock, and the reservations that
//! hold some of it.
//!
//! Stock events carry the product's units on hand after the change, so the
//! row copies them rather than adding deltas; reservation events carry their
//! lines, which move `reserved` (and `on_hand` when consumed or returned).

use es_core::projection::{Projection, ProjectionError};
use es_core::{Aggregate, Recorded};
use sqlx::{PgConnection, PgPool};
use stocklet_proto::stocklet::events::v1 as pb;

use crate::domain::{Stock, StockEvent};

/// Projects stock events into `stocks`, `reservations` and
/// `reservation_lines`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Inventory;

impl Projection for Inventory {
    type Event = StockEvent;

    fn name(&self) -> &str {
        "warehouse-inventory"
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[Recorded<StockEvent>],
    ) -> Result<(), ProjectionError> {
        for stored in events {
            // Only a stock's own events move it. (The order-keyed
            // reservation's events repeat the holds; none of them is a
            // `StockEvent`, and this keeps it so.) Holds stored before
            // `StockHeld` existed arrive here upcast to `StockHeld`.
            if stored.meta.aggregate_type != Stock::TYPE {
                continue;
            }
            match &stored.event {
                StockEvent::Created(e) => {
                    sqlx::query(
                        "INSERT INTO stocks (product_id, on_hand, reserved, created_at_ms, updated_at_ms)
                         VALUES ($1, $2, 0, $3, $3) ON CONFLICT (product_id) DO NOTHING",
                    )
                    .bind(&e.product_id)
                    .bind(e.on_hand)
                    .bind(e.occurred_at_ms)
                    .execute(&mut *conn)
                    .await?;
                }
                StockEvent::Added(e) => {
                    set_on_hand(conn, &e.product_id, e.on_hand, e.occurred_at_ms).await?;
                }
                StockEvent::Removed(e) => {
                    set_on_hand(conn, &e.product_id, e.on_hand, e.occurred_at_ms).await?;
                }
                StockEvent::Held(e) => {
                    hold(
                        conn,
                        &e.reservation_id,
                        &e.order_id,
                        &e.lines,
                        e.occurred_at_ms,
                    )
                    .await?;
                }
                StockEvent::Released(e) => {
                    transition(conn, &e.reservation_id, "released", e.occurred_at_ms).await?;
                    for line in &e.lines {
                        move_units(conn, &line.product_id, 0, -line.quantity, e.occurred_at_ms)
                            .await?;
                    }
                }
                StockEvent::Consumed(e) => {
                    transition(conn, &e.reservation_id, "consumed", e.occurred_at_ms).await?;
                    for line in &e.lines {
                        move_units(
                            conn,
                            &line.product_id,
                            -line.quantity,
                            -line.quantity,
                            e.occurred_at_ms,
                        )
                        .await?;
                    }
                }
                StockEvent::Returned(e) => {
                    transition(conn, &e.reservation_id, "returned", e.occurred_at_ms).await?;
                    for line in &e.lines {
                        move_units(conn, &line.product_id, line.quantity, 0, e.occurred_at_ms)
                            .await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn reset(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("TRUNCATE stocks, reservations, reservation_lines")
            .execute(conn)
            .await?;
        Ok(())
    }
}

/// Records one order's hold of the `lines` (this product's) and moves the
/// units from available to reserved.
async fn hold(
    conn: &mut PgConnection,
    reservation_id: &str,
    order_id: &str,
    lines: &[pb::PricedOrderLine],
    at_ms: i64,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "INSERT INTO reservations (id, order_id, status, created_at_ms, updated_at_ms)
         VALUES ($1, $2, 'reserved', $3, $3) ON CONFLICT (id) DO NOTHING",
    )
    .bind(reservation_id)
    .bind(order_id)
    .bind(at_ms)
    .execute(&mut *conn)
    .await?;
    for line in lines {
        sqlx::query(
            "INSERT INTO reservation_lines (reservation_id, product_id, quantity)
             VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(reservation_id)
        .bind(&line.product_id)
        .bind(line.quantity)
        .execute(&mut *conn)
        .await?;
        move_units(conn, &line.product_id, 0, line.quantity, at_ms).await?;
    }
    Ok(())
}

async fn set_on_hand(
    conn: &mut PgConnection,
    product_id: &str,
    on_hand: i64,
    at_ms: i64,
) -> Result<(), ProjectionError> {
    sqlx::query("UPDATE stocks SET on_hand = $2, updated_at_ms = $3 WHERE product_id = $1")
        .bind(product_id)
        .bind(on_hand)
        .bind(at_ms)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn move_units(
    conn: &mut PgConnection,
    product_id: &str,
    on_hand_delta: i64,
    reserved_delta: i64,
    at_ms: i64,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "UPDATE stocks SET on_hand = on_hand + $2, reserved = reserved + $3, updated_at_ms = $4
         WHERE product_id = $1",
    )
    .bind(product_id)
    .bind(on_hand_delta)
    .bind(reserved_delta)
    .bind(at_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn transition(
    conn: &mut PgConnection,
    reservation_id: &str,
    status: &str,
    at_ms: i64,
) -> Result<(), ProjectionError> {
    sqlx::query("UPDATE reservations SET status = $2, updated_at_ms = $3 WHERE id = $1")
        .bind(reservation_id)
        .bind(status)
        .bind(at_ms)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// One product's stock as the read model shows it.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct StockRow {
    /// The product's id.
    pub product_id: String,
    /// Units on hand.
    pub on_hand: i64,
    /// Units reserved.
    pub reserved: i64,
    /// Last change, Unix ms.
    pub updated_at_ms: i64,
}

impl StockRow {
    /// A product's stock by product id.
    pub async fn find(pool: &PgPool, product_id: &str) -> Result<Option<Self>, sqlx::Error> {
        sqlx::query_as(
            "SELECT product_id, on_hand, reserved, updated_at_ms FROM stocks WHERE product_id = $1",
        )
        .bind(product_id)
        .fetch_optional(pool)
        .await
    }
}

/// One reservation with its lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReservationRow {
    /// The reservation's id.
    pub id: String,
    /// The order's id.
    pub order_id: String,
    /// `reserved`, `released`, `consumed` or `returned`.
    pub status: String,
    /// (product id, quantity), by product id.
    pub lines: Vec<pb::OrderLine>,
    /// When it was made, Unix ms.
    pub created_at_ms: i64,
    /// Last change, Unix ms.
    pub updated_at_ms: i64,
}

impl ReservationRow {
    /// A reservation by id.
    pub async fn find(pool: &PgPool, id: &str) -> Result<Option<Self>, sqlx::Error> {
        let head: Option<(String, String, String, i64, i64)> = sqlx::query_as(
            "SELECT id, order_id, status, created_at_ms, updated_at_ms FROM reservations WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await?;
        let Some((id, order_id, status, created_at_ms, updated_at_ms)) = head else {
            return Ok(None);
        };
        let lines: Vec<(String, i64)> = sqlx::query_as(
            "SELECT product_id, quantity FROM reservation_lines WHERE reservation_id = $1
             ORDER BY product_id",
        )
        .bind(&id)
        .fetch_all(pool)
        .await?;
        Ok(Some(Self {
            id,
            order_id,
            status,
            lines: lines
                .into_iter()
                .map(|(product_id, quantity)| pb::OrderLine {
                    product_id,
                    quantity,
                })
                .collect(),
            created_at_ms,
            updated_at_ms,
        }))
    }
}
