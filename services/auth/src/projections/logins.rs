//! The logins: one row per live set of credentials, without its hash.

use es_core::Recorded;
use es_core::projection::{Projection, ProjectionError};
use sqlx::{PgConnection, PgPool};

use crate::domain::{CredentialsEvent, Role, normalise_email};

/// Projects credentials events into `logins`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Logins;

impl Projection for Logins {
    type Event = CredentialsEvent;

    fn name(&self) -> &str {
        "auth-logins"
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[Recorded<CredentialsEvent>],
    ) -> Result<(), ProjectionError> {
        for stored in events {
            match &stored.event {
                CredentialsEvent::Created(e) => {
                    sqlx::query(
                        "INSERT INTO logins (user_id, email, email_normalised, role, created_at_ms, updated_at_ms)
                         VALUES ($1, $2, $3, $4, $5, $5)",
                    )
                    .bind(&e.user_id)
                    .bind(&e.email)
                    .bind(normalise_email(&e.email))
                    .bind(Role::from_event(e.role).as_str())
                    .bind(e.occurred_at_ms)
                    .execute(&mut *conn)
                    .await?;
                }
                CredentialsEvent::EmailChanged(e) => {
                    sqlx::query(
                        "UPDATE logins SET email = $2, email_normalised = $3, updated_at_ms = $4 WHERE user_id = $1",
                    )
                    .bind(&e.user_id)
                    .bind(&e.email)
                    .bind(normalise_email(&e.email))
                    .bind(e.occurred_at_ms)
                    .execute(&mut *conn)
                    .await?;
                }
                CredentialsEvent::PasswordChanged(e) => {
                    sqlx::query("UPDATE logins SET updated_at_ms = $2 WHERE user_id = $1")
                        .bind(&e.user_id)
                        .bind(e.occurred_at_ms)
                        .execute(&mut *conn)
                        .await?;
                }
                CredentialsEvent::Removed(e) => {
                    sqlx::query("DELETE FROM logins WHERE user_id = $1")
                        .bind(&e.user_id)
                        .execute(&mut *conn)
                        .await?;
                }
            }
        }
        Ok(())
    }

    async fn reset(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("TRUNCATE logins").execute(conn).await?;
        Ok(())
    }
}

/// One row of the logins.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct LoginRow {
    /// The user id.
    pub user_id: String,
    /// The email address, as typed.
    pub email: String,
    /// `customer` or `admin`.
    pub role: String,
}

impl LoginRow {
    /// The logins under `email` (normally one), admins first.
    pub async fn by_email(pool: &PgPool, email: &str) -> Result<Vec<Self>, sqlx::Error> {
        sqlx::query_as(
            "SELECT user_id, email, role FROM logins WHERE email_normalised = $1
             ORDER BY role = 'admin' DESC, user_id LIMIT 5",
        )
        .bind(normalise_email(email))
        .fetch_all(pool)
        .await
    }
}
