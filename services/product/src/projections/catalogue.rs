//! The catalogue: one row per product, deleted ones flagged.

use es_core::Recorded;
use es_core::projection::{Projection, ProjectionError};
use sqlx::{PgConnection, PgPool};

use crate::domain::ProductEvent;

/// Projects product events into `products`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Catalogue;

impl Projection for Catalogue {
    type Event = ProductEvent;

    fn name(&self) -> &str {
        "product-catalogue"
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[Recorded<ProductEvent>],
    ) -> Result<(), ProjectionError> {
        for stored in events {
            match &stored.event {
                ProductEvent::Created(e) => {
                    sqlx::query(
                        "INSERT INTO products (id, name, description, price_cents, created_at_ms, updated_at_ms)
                         VALUES ($1, $2, $3, $4, $5, $5)",
                    )
                    .bind(&e.product_id)
                    .bind(&e.name)
                    .bind(&e.description)
                    .bind(e.price_cents)
                    .bind(e.occurred_at_ms)
                    .execute(&mut *conn)
                    .await?;
                }
                ProductEvent::PriceUpdated(e) => {
                    sqlx::query(
                        "UPDATE products SET price_cents = $2, updated_at_ms = $3 WHERE id = $1",
                    )
                    .bind(&e.product_id)
                    .bind(e.price_cents)
                    .bind(e.occurred_at_ms)
                    .execute(&mut *conn)
                    .await?;
                }
                ProductEvent::DetailsUpdated(e) => {
                    sqlx::query("UPDATE products SET name = $2, description = $3, updated_at_ms = $4 WHERE id = $1")
                        .bind(&e.product_id)
                        .bind(&e.name)
                        .bind(&e.description)
                        .bind(e.occurred_at_ms)
                        .execute(&mut *conn)
                        .await?;
                }
                ProductEvent::Deleted(e) => {
                    sqlx::query(
                        "UPDATE products SET deleted = true, updated_at_ms = $2 WHERE id = $1",
                    )
                    .bind(&e.product_id)
                    .bind(e.occurred_at_ms)
                    .execute(&mut *conn)
                    .await?;
                }
            }
        }
        Ok(())
    }

    async fn reset(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("TRUNCATE products").execute(conn).await?;
        Ok(())
    }
}

/// One row of the catalogue.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ProductRow {
    /// Product id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Unit price in cents.
    pub price_cents: i64,
    /// Creation time, Unix ms.
    pub created_at_ms: i64,
    /// Last change, Unix ms.
    pub updated_at_ms: i64,
}

impl ProductRow {
    /// A live product by id.
    pub async fn find(pool: &PgPool, id: &str) -> Result<Option<Self>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, name, description, price_cents, created_at_ms, updated_at_ms
             FROM products WHERE id = $1 AND NOT deleted",
        )
        .bind(id)
        .fetch_optional(pool)
        .await
    }

    /// Up to `limit` live products after `after`, oldest first.
    pub async fn page(
        pool: &PgPool,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Self>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, name, description, price_cents, created_at_ms, updated_at_ms
             FROM products WHERE NOT deleted AND ($1::text IS NULL OR id > $1)
             ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await
    }
}
