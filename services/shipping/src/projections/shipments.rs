//! Shipments: one row per allocated shipment, with its manifest.
//!
//! The aggregate is keyed by order id; this table is keyed by shipment id,
//! which is what clients hold, and maps it back to the order.

use es_core::Recorded;
use es_core::projection::{Projection, ProjectionError};
use sqlx::{PgConnection, PgPool};
use stocklet_proto::stocklet::events::v1 as pb;

use crate::domain::ShipmentEvent;

/// Projects shipment events into `shipments` and `shipment_items`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Shipments;

impl Projection for Shipments {
    type Event = ShipmentEvent;

    fn name(&self) -> &str {
        "shipping-shipments"
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[Recorded<ShipmentEvent>],
    ) -> Result<(), ProjectionError> {
        for stored in events {
            match &stored.event {
                ShipmentEvent::Allocated(e) => {
                    sqlx::query(
                        "INSERT INTO shipments (id, order_id, customer_id, status, created_at_ms, updated_at_ms)
                         VALUES ($1, $2, $3, 'allocated', $4, $4) ON CONFLICT (id) DO NOTHING",
                    )
                    .bind(&e.shipment_id)
                    .bind(&e.order_id)
                    .bind(&e.customer_id)
                    .bind(e.occurred_at_ms)
                    .execute(&mut *conn)
                    .await?;
                    for (position, line) in e.lines.iter().enumerate() {
                        sqlx::query(
                            "INSERT INTO shipment_items (shipment_id, position, product_id, quantity)
                             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                        )
                        .bind(&e.shipment_id)
                        .bind(i32::try_from(position).unwrap_or(i32::MAX))
                        .bind(&line.product_id)
                        .bind(line.quantity)
                        .execute(&mut *conn)
                        .await?;
                    }
                }
                ShipmentEvent::Released(e) => {
                    sqlx::query(
                        "UPDATE shipments SET status = 'released', updated_at_ms = $2 WHERE id = $1",
                    )
                    .bind(&e.shipment_id)
                    .bind(e.occurred_at_ms)
                    .execute(&mut *conn)
                    .await?;
                }
                ShipmentEvent::Dispatched(e) => {
                    sqlx::query(
                        "UPDATE shipments SET status = 'dispatched', updated_at_ms = $2, dispatched_at_ms = $2
                         WHERE id = $1",
                    )
                    .bind(&e.shipment_id)
                    .bind(e.occurred_at_ms)
                    .execute(&mut *conn)
                    .await?;
                }
                // No shipment was made: nothing to show.
                ShipmentEvent::AllocationFailed(_)
                | ShipmentEvent::Paid(_)
                | ShipmentEvent::CancellationRefused(_) => {}
            }
        }
        Ok(())
    }

    async fn reset(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("TRUNCATE shipments, shipment_items")
            .execute(conn)
            .await?;
        Ok(())
    }
}

/// One shipment as the read model shows it.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ShipmentRow {
    /// The shipment's id.
    pub id: String,
    /// The order it ships.
    pub order_id: String,
    /// The customer it goes to.
    pub customer_id: String,
    /// `allocated`, `released` or `dispatched`.
    pub status: String,
    /// When it was allocated, Unix ms.
    pub created_at_ms: i64,
    /// Last change, Unix ms.
    pub updated_at_ms: i64,
    /// When it was dispatched, Unix ms; zero until then.
    pub dispatched_at_ms: i64,
}

impl ShipmentRow {
    /// A shipment by id.
    pub async fn find(pool: &PgPool, id: &str) -> Result<Option<Self>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, order_id, customer_id, status, created_at_ms, updated_at_ms, dispatched_at_ms
             FROM shipments WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await
    }

    /// A shipment's manifest, in line order.
    pub async fn manifest(pool: &PgPool, id: &str) -> Result<Vec<pb::OrderLine>, sqlx::Error> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT product_id, quantity FROM shipment_items WHERE shipment_id = $1 ORDER BY position",
        )
        .bind(id)
        .fetch_all(pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(product_id, quantity)| pb::OrderLine {
                product_id,
                quantity,
            })
            .collect())
    }

    /// Up to `limit` shipments before `before`, newest first, of one
    /// customer (or everyone's) and in one status (or any).
    pub async fn page(
        pool: &PgPool,
        customer_id: Option<&str>,
        status: Option<&str>,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Self>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, order_id, customer_id, status, created_at_ms, updated_at_ms, dispatched_at_ms
             FROM shipments
             WHERE ($1::text IS NULL OR customer_id = $1)
               AND ($2::text IS NULL OR status = $2)
               AND ($3::text IS NULL OR id < $3)
             ORDER BY id DESC LIMIT $4",
        )
        .bind(customer_id)
        .bind(status)
        .bind(before)
        .bind(limit)
        .fetch_all(pool)
        .await
    }
}
