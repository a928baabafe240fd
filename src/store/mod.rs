//! PostgreSQL + PostGIS, the system of record: the connection pool, the embedded schema
//! migrations (migrations/), and the tamper-evident audit log.

pub mod audit;
pub mod deployment;
pub mod devices;
pub mod restore;
pub mod rows;
pub mod spool;
pub mod state;
pub mod watchlist;
pub mod writer;

use std::time::Duration;

use anyhow::Context as _;
use sqlx::postgres::{PgPool, PgPoolOptions};

/// The schema, compiled into the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connects to `url` and brings the schema up to date.
pub async fn connect(url: &str) -> anyhow::Result<PgPool> {
    connect_with(url, 8).await
}

/// A pool of `size` connections to `url` that connects when first used; a connection waits
/// at most `acquire` (the database down, it fails after that).
pub fn lazy_pool(url: &str, size: u32, acquire: Duration) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(acquire)
        .connect_lazy(url)
        .context("invalid database url")
}

/// `connect` with a pool of `size` connections.
pub async fn connect_with(url: &str, size: u32) -> anyhow::Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .context("cannot connect to the database")?;
    MIGRATOR.run(&pool).await.context("cannot apply the schema migrations")?;
    Ok(pool)
}
