//! PostgreSQL + PostGIS, the system of record: the connection pool, the embedded schema
//! migrations (migrations/), and the tamper-evident audit log.

pub mod audit;
pub mod devices;

use std::time::Duration;

use anyhow::Context as _;
use sqlx::postgres::{PgPool, PgPoolOptions};

/// The schema, compiled into the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connects to `url` and brings the schema up to date.
pub async fn connect(url: &str) -> anyhow::Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .context("cannot connect to the database")?;
    MIGRATOR.run(&pool).await.context("cannot apply the schema migrations")?;
    Ok(pool)
}
