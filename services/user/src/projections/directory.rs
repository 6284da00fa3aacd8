//! The directory: one row per live user. Password hashes are not kept.

use es_core::Recorded;
use es_core::projection::{Projection, ProjectionError};
use sqlx::{PgConnection, PgPool};

use crate::domain::UserEvent;

/// Projects user events into `users`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Directory;

impl Projection for Directory {
    type Event = UserEvent;

    fn name(&self) -> &str {
        "user-directory"
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[Recorded<UserEvent>],
    ) -> Result<(), ProjectionError> {
        for stored in events {
            match &stored.event {
                UserEvent::Registered(e) => {
                    sqlx::query(
                        "INSERT INTO users (id, email, first_name, last_name, created_at_ms, updated_at_ms)
                         VALUES ($1, $2, $3, $4, $5, $5)",
                    )
                    .bind(&e.user_id)
                    .bind(&e.email)
                    .bind(&e.first_name)
                    .bind(&e.last_name)
                    .bind(e.occurred_at_ms)
                    .execute(&mut *conn)
                    .await?;
                }
                UserEvent::EmailUpdated(e) => {
                    sqlx::query("UPDATE users SET email = $2, updated_at_ms = $3 WHERE id = $1")
                        .bind(&e.user_id)
                        .bind(&e.email)
                        .bind(e.occurred_at_ms)
                        .execute(&mut *conn)
                        .await?;
                }
                UserEvent::Deleted(e) => {
                    sqlx::query("DELETE FROM users WHERE id = $1")
                        .bind(&e.user_id)
                        .execute(&mut *conn)
                        .await?;
                }
            }
        }
        Ok(())
    }

    async fn reset(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("TRUNCATE users").execute(conn).await?;
        Ok(())
    }
}

/// One row of the directory.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct UserRow {
    /// User id.
    pub id: String,
    /// Email address, as typed.
    pub email: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Registration time, Unix ms.
    pub created_at_ms: i64,
    /// Last change, Unix ms.
    pub updated_at_ms: i64,
}

impl UserRow {
    /// A live user by id.
    pub async fn find(pool: &PgPool, id: &str) -> Result<Option<Self>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, email, first_name, last_name, created_at_ms, updated_at_ms
             FROM users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await
    }

    /// Up to `limit` users after `after`, oldest first (UUIDv7 ids are
    /// time-ordered).
    pub async fn page(
        pool: &PgPool,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Self>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, email, first_name, last_name, created_at_ms, updated_at_ms
             FROM users WHERE ($1::text IS NULL OR id > $1)
             ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await
    }
}
