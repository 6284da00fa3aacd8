//! PostgreSQL: one schema per service.
//!
//! Services may share a PostgreSQL server but never tables: each one works
//! in its own schema (`product`, `order`, ...), set as the connection's
//! `search_path`, so its migrations, its read models and its projection
//! checkpoints live apart. Only the service's projections write there.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool};

use crate::config::Secret;

/// Why the database could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The schema name is not a plain lowercase identifier.
    #[error("invalid schema name {0:?}")]
    SchemaName(String),
    /// PostgreSQL failed.
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// A pool whose connections use `schema`, created if missing.
pub async fn connect(
    database_url: &Secret,
    schema: &str,
    max_connections: u32,
) -> Result<PgPool, DbError> {
    if schema.is_empty() || !schema.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
        return Err(DbError::SchemaName(schema.to_owned()));
    }
    let options = PgConnectOptions::from_str(database_url.expose())?;
    let bootstrap = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.clone())
        .await?;
    // Two instances starting together can race on the catalog; the loser
    // finds the schema on its second try.
    let create = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
    if sqlx::raw_sql(AssertSqlSafe(create.clone()))
        .execute(&bootstrap)
        .await
        .is_err()
    {
        sqlx::raw_sql(AssertSqlSafe(create))
            .execute(&bootstrap)
            .await?;
    }
    bootstrap.close().await;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.options([("search_path", schema)]))
        .await?;
    Ok(pool)
}
