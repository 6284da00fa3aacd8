//! A fresh PostgreSQL database per test.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};

/// Used when `DATABASE_URL` is not set: the machine's own server (trust auth).
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const DROP_TIMEOUT: Duration = Duration::from_secs(20);

/// A freshly created, uniquely named database (`stocklet_test_<uuid>`) on the server
/// named by `DATABASE_URL`, with a connection pool to it.
///
/// Dropping it drops the database (best effort, `WITH (FORCE)`, so open connections of
/// [`TestDb::pool`] do not block it). A test process killed midway leaves its database
/// behind; they are all named `stocklet_test_*`.
pub struct TestDb {
    /// Pool connected to the new database.
    pub pool: PgPool,
    /// URL of the new database (the server URL with the database name replaced),
    /// e.g. to hand to code under test that opens its own connections.
    pub url: String,
    /// Name of the new database.
    pub name: String,
    server_url: String,
}

impl TestDb {
    /// Creates a new database on the server at `DATABASE_URL` (default
    /// [`DEFAULT_DATABASE_URL`]) and connects a pool to it.
    ///
    /// # Panics
    /// If the server is not reachable (with instructions on how to get one), or if
    /// `CREATE DATABASE` or connecting to the new database fails.
    pub async fn create() -> TestDb {
        let server_url =
            std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
        Self::create_on(&server_url).await
    }

    /// Creates a new database on the server at `server_url` (for example a
    /// test's own [`PostgresServer`](crate::PostgresServer)).
    ///
    /// # Panics
    /// As [`create`](Self::create).
    pub async fn create_on(server_url: &str) -> TestDb {
        let server_url = server_url.to_owned();
        let mut admin = connect(&server_url).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL not reachable at {}: {e}. Start one with `scripts/ensure-postgres.sh` \
                 or run `make test`, or set DATABASE_URL.",
                redact_url(&server_url)
            )
        });

        let name = format!("stocklet_test_{}", uuid::Uuid::now_v7().simple());
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "CREATE DATABASE {name} failed on {}: {e}",
                    redact_url(&server_url)
                )
            });
        // Closing is a courtesy; the database exists either way.
        let _ = admin.close().await;

        let url = with_database(&server_url, &name);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect(&url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "connecting to the new database {} failed: {e}",
                    redact_url(&url)
                )
            });

        TestDb {
            pool,
            url,
            name,
            server_url,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop cannot await, and the test's runtime may be single-threaded (or shutting
        // down): do the DROP DATABASE on a thread with its own runtime and wait for it,
        // so the database is gone when this returns.
        let server_url = self.server_url.clone();
        let name = self.name.clone();
        let result = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot build a runtime: {e}"))?;
            runtime.block_on(async {
                tokio::time::timeout(DROP_TIMEOUT, async {
                    let mut admin = connect(&server_url).await.map_err(|e| e.to_string())?;
                    sqlx::raw_sql(AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .execute(&mut admin)
                    .await
                    .map_err(|e| e.to_string())?;
                    let _ = admin.close().await;
                    Ok(())
                })
                .await
                .map_err(|_| format!("timed out after {DROP_TIMEOUT:?}"))?
            })
        })
        .join();
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!(
                "stocklet-test-support: could not drop test database {}: {e}",
                self.name
            ),
            Err(_) => eprintln!(
                "stocklet-test-support: dropping test database {} panicked",
                self.name
            ),
        }
    }
}

async fn connect(url: &str) -> Result<PgConnection, sqlx::Error> {
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(url)).await {
        Ok(result) => result,
        Err(_) => Err(sqlx::Error::PoolTimedOut),
    }
}

/// `url` with its database (the URL path) replaced by `database`; query kept.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// `url` with any password (in the user info or a `password=` parameter) replaced by
/// `***`, for messages.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let authority_start = scheme_end + 3;
        let authority_end = out[authority_start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| authority_start + i);
        if let Some(at) = out[authority_start..authority_end].rfind('@') {
            let userinfo = &out[authority_start..authority_start + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(authority_start + colon + 1..authority_start + at, "***");
            }
        }
    }
    if let Some(start) = out.find("password=") {
        let value_start = start + "password=".len();
        let value_end = out[value_start..]
            .find('&')
            .map_or(out.len(), |i| value_start + i);
        out.replace_range(value_start..value_end, "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(with_database("postgres://h:1", "x"), "postgres://h:1/x");
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres:///db?host=/run/postgresql", "x"),
            "postgres:///x?host=/run/postgresql"
        );
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact_url("postgres://h/db?user=u&password=secret&sslmode=disable"),
            "postgres://h/db?user=u&password=***&sslmode=disable"
        );
    }
}
