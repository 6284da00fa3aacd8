//! The orders read model: one row per order with its status history, and
//! one row per order line.

use es_core::projection::{Projection, ProjectionError};
use es_core::{DomainEvent, Recorded};
use sqlx::{PgConnection, PgPool};

use crate::domain::{OrderEvent, OrderStatus, RejectionReason};

/// Projects order events into `orders` and `order_items`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Orders;

impl Projection for Orders {
    type Event = OrderEvent;

    fn name(&self) -> &str {
        "order-orders"
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[Recorded<OrderEvent>],
    ) -> Result<(), ProjectionError> {
        for stored in events {
            apply_one(conn, &stored.event).await?;
        }
        Ok(())
    }

    async fn reset(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("TRUNCATE orders, order_items")
            .execute(conn)
            .await?;
        Ok(())
    }
}

async fn apply_one(conn: &mut PgConnection, event: &OrderEvent) -> Result<(), ProjectionError> {
    let at_ms = event.occurred_at_ms();
    let order_id = event.order_id();
    let Some(status) = event.status_entered().map(OrderStatus::as_str) else {
        // The only event that keeps the status: a cancellation is waiting.
        if let OrderEvent::CancellationRequested(e) = event {
            let marked = sqlx::query(
                "UPDATE orders SET cancellation_requested = true, cancellation_reason = $2 WHERE id = $1",
            )
            .bind(&e.order_id)
            .bind(&e.reason)
            .execute(&mut *conn)
            .await?;
            if marked.rows_affected() != 1 {
                return Err(never_placed(event));
            }
        }
        return Ok(());
    };
    if let OrderEvent::Placed(e) = event {
        sqlx::query(
            "INSERT INTO orders (id, customer_id, status, history_statuses, history_at_ms, created_at_ms, updated_at_ms)
             VALUES ($1, $2, $3, ARRAY[$3], ARRAY[$4::bigint], $4, $4)",
        )
        .bind(&e.order_id)
        .bind(&e.customer_id)
        .bind(status)
        .bind(at_ms)
        .execute(&mut *conn)
        .await?;
        for line in &e.lines {
            sqlx::query(
                "INSERT INTO order_items (order_id, product_id, quantity) VALUES ($1, $2, $3)",
            )
            .bind(&e.order_id)
            .bind(&line.product_id)
            .bind(line.quantity)
            .execute(&mut *conn)
            .await?;
        }
        return Ok(());
    }

    // Every later event moves the status and appends it to the history.
    let moved = sqlx::query(
        "UPDATE orders SET status = $2,
                history_statuses = array_append(history_statuses, $2),
                history_at_ms = array_append(history_at_ms, $3::bigint),
                updated_at_ms = $3
         WHERE id = $1",
    )
    .bind(order_id)
    .bind(status)
    .bind(at_ms)
    .execute(&mut *conn)
    .await?;
    if moved.rows_affected() != 1 {
        return Err(never_placed(event));
    }

    match event {
        OrderEvent::Placed(_) | OrderEvent::CancellationRequested(_) => {}
        // A cancellation asked for meanwhile was refused: the shipment left.
        OrderEvent::Completed(e) => {
            sqlx::query("UPDATE orders SET cancellation_requested = false WHERE id = $1")
                .bind(&e.order_id)
                .execute(&mut *conn)
                .await?;
        }
        OrderEvent::Priced(e) => {
            sqlx::query(
                "UPDATE orders SET items_price_cents = $2, shipping_fee_cents = $3, total_cents = $4
                 WHERE id = $1",
            )
            .bind(&e.order_id)
            .bind(e.items_price_cents)
            .bind(e.shipping_fee_cents)
            .bind(e.total_cents)
            .execute(&mut *conn)
            .await?;
            for line in &e.lines {
                sqlx::query(
                    "INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (order_id, product_id)
                     DO UPDATE SET quantity = EXCLUDED.quantity, unit_price_cents = EXCLUDED.unit_price_cents",
                )
                .bind(&e.order_id)
                .bind(&line.product_id)
                .bind(line.quantity)
                .bind(line.unit_price_cents)
                .execute(&mut *conn)
                .await?;
            }
        }
        OrderEvent::Rejected(e) => {
            let reason =
                RejectionReason::from_proto(e.reason).map_or("UNSPECIFIED", |r| r.as_str());
            sqlx::query(
                "UPDATE orders SET rejection_reason = $2, rejection_detail = $3, rejection_product_ids = $4,
                        reservation_id = COALESCE(NULLIF($5, ''), reservation_id),
                        shipment_id = COALESCE(NULLIF($6, ''), shipment_id)
                 WHERE id = $1",
            )
            .bind(&e.order_id)
            .bind(reason)
            .bind(&e.detail)
            .bind(&e.product_ids)
            .bind(&e.reservation_id)
            .bind(&e.shipment_id)
            .execute(&mut *conn)
            .await?;
        }
        OrderEvent::Approved(e) => {
            sqlx::query(
                "UPDATE orders SET transaction_id = $2, shipment_id = $3, reservation_id = $4 WHERE id = $1",
            )
            .bind(&e.order_id)
            .bind(&e.transaction_id)
            .bind(&e.shipment_id)
            .bind(&e.reservation_id)
            .execute(&mut *conn)
            .await?;
        }
        OrderEvent::Cancelled(e) => {
            sqlx::query(
                "UPDATE orders SET cancellation_reason = $2, cancellation_requested = false,
                        transaction_id = COALESCE(NULLIF($3, ''), transaction_id),
                        shipment_id = COALESCE(NULLIF($4, ''), shipment_id),
                        reservation_id = COALESCE(NULLIF($5, ''), reservation_id)
                 WHERE id = $1",
            )
            .bind(&e.order_id)
            .bind(&e.reason)
            .bind(&e.transaction_id)
            .bind(&e.shipment_id)
            .bind(&e.reservation_id)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

fn never_placed(event: &OrderEvent) -> ProjectionError {
    ProjectionError::Invalid(format!(
        "{} for order {}, which was never placed",
        event.event_type(),
        event.order_id()
    ))
}

/// One row of `orders`.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct OrderRow {
    /// Order id.
    pub id: String,
    /// Who placed it.
    pub customer_id: String,
    /// [`OrderStatus::as_str`].
    pub status: String,
    /// Sum of the lines; zero until priced.
    pub items_price_cents: i64,
    /// Shipping fee; zero until priced.
    pub shipping_fee_cents: i64,
    /// Total; zero until priced.
    pub total_cents: i64,
    /// The stock reservation, once known.
    pub reservation_id: String,
    /// The shipment, once known.
    pub shipment_id: String,
    /// The payment, once taken.
    pub transaction_id: String,
    /// [`RejectionReason::as_str`] or `UNSPECIFIED`, when rejected.
    pub rejection_reason: Option<String>,
    /// Why it was rejected.
    pub rejection_detail: String,
    /// Products at fault.
    pub rejection_product_ids: Vec<String>,
    /// Why it was cancelled (or why a cancellation was asked for).
    pub cancellation_reason: String,
    /// A cancellation waits for the saga's step in flight.
    pub cancellation_requested: bool,
    /// Statuses entered, oldest first.
    pub history_statuses: Vec<String>,
    /// When each was entered, pairwise with `history_statuses`.
    pub history_at_ms: Vec<i64>,
    /// When it was placed.
    pub created_at_ms: i64,
    /// When it last changed.
    pub updated_at_ms: i64,
}

/// One row of `order_items`.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ItemRow {
    /// The order.
    pub order_id: String,
    /// The product.
    pub product_id: String,
    /// Units ordered.
    pub quantity: i64,
    /// Quoted unit price; zero until priced.
    pub unit_price_cents: i64,
}

/// An order as the read model shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderView {
    /// The order.
    pub order: OrderRow,
    /// Its lines, by product id.
    pub items: Vec<ItemRow>,
}

impl OrderView {
    /// The status, if the stored name is known.
    pub fn status(&self) -> Option<OrderStatus> {
        OrderStatus::parse(&self.order.status)
    }
}

const ORDER_COLUMNS: &str =
    "id, customer_id, status, items_price_cents, shipping_fee_cents, total_cents,
    reservation_id, shipment_id, transaction_id, rejection_reason, rejection_detail,
    rejection_product_ids, cancellation_reason, cancellation_requested, history_statuses, history_at_ms,
    created_at_ms, updated_at_ms";

/// One order by id.
pub async fn find(pool: &PgPool, id: &str) -> Result<Option<OrderView>, sqlx::Error> {
    let row: Option<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some(order) = row else {
        return Ok(None);
    };
    let items = items_of(pool, std::slice::from_ref(&order.id)).await?;
    Ok(Some(OrderView { order, items }))
}

/// Up to `limit` orders of `customer_id` with ids below `before`, newest
/// first.
pub async fn page_of_customer(
    pool: &PgPool,
    customer_id: &str,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<OrderView>, sqlx::Error> {
    let orders: Vec<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM orders
         WHERE customer_id = $1 AND ($2::text IS NULL OR id < $2)
         ORDER BY id DESC LIMIT $3"
    )))
    .bind(customer_id)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let ids: Vec<String> = orders.iter().map(|o| o.id.clone()).collect();
    let mut items = items_of(pool, &ids).await?;
    Ok(orders
        .into_iter()
        .map(|order| {
            let (mine, rest): (Vec<ItemRow>, Vec<ItemRow>) =
                items.drain(..).partition(|item| item.order_id == order.id);
            items = rest;
            OrderView { order, items: mine }
        })
        .collect())
}

async fn items_of(pool: &PgPool, order_ids: &[String]) -> Result<Vec<ItemRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT order_id, product_id, quantity, unit_price_cents FROM order_items
         WHERE order_id = ANY($1) ORDER BY order_id, product_id",
    )
    .bind(order_ids)
    .fetch_all(pool)
    .await
}
