//! PostgreSQL access with one schema per service.
//!
//! Every service connects with `search_path` set to its own schema and runs its own
//! migrations there, so the `_sqlx_migrations` bookkeeping and every table belong to exactly
//! one service. Other services ask the owner over NATS; they never read its schema.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// Connects a pool whose sessions use `schema` (created if missing).
pub async fn connect_schema(
    database_url: &str,
    schema: &str,
    max_connections: u32,
) -> Result<PgPool, sqlx::Error> {
    assert!(
        schema.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
        "schema names are lowercase identifiers"
    );
    let base: PgConnectOptions = database_url.parse()?;
    // Create the schema over a plain connection first: the pool's sessions set search_path to
    // it, and migrations must find it there.
    {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(base.clone())
            .await?;
        // Two services starting at once may race on CREATE SCHEMA; the loser's error is benign.
        let _ = sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .execute(&pool)
            .await;
        pool.close().await;
    }
    let opts = base.options([("search_path", schema)]);
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(opts)
        .await
}
