//! Which kind of kuzet a database belongs to. The demo's users share a published password, so
//! a demo database must never serve a deployment, and the demo must never write into (or add
//! users with a published password to) a deployment's database.

use anyhow::bail;
use sqlx::PgPool;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Demo,
    Live,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Demo => "demo",
            Kind::Live => "live",
        }
    }
}

/// Claims the database for `kind`, or refuses it when it belongs to the other kind. A
/// database claimed by nobody yet is the demo's only while it holds nothing.
pub async fn claim(pool: &PgPool, kind: Kind) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    // One claim at a time: two kuzets starting together cannot claim a database twice.
    sqlx::query("LOCK TABLE deployment IN EXCLUSIVE MODE").execute(&mut *tx).await?;
    let existing: Option<String> =
        sqlx::query_scalar("SELECT kind FROM deployment").fetch_optional(&mut *tx).await?;
    match (existing.as_deref(), kind) {
        (Some("demo"), Kind::Demo) | (Some("live"), Kind::Live) => return Ok(()),
        (Some("demo"), Kind::Live) => bail!(
            "this database holds the demo, whose users' password is published: `kuzet serve` refuses it \
             (give the deployment a database of its own)"
        ),
        (Some(_), Kind::Demo) => bail!(
            "this database holds a deployment's data: `kuzet-demo` refuses it (the demo adds users with a \
             published password; give it a database of its own)"
        ),
        (None, Kind::Demo) => {
            let holds: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM users) OR EXISTS (SELECT 1 FROM incidents) \
                 OR EXISTS (SELECT 1 FROM devices) OR EXISTS (SELECT 1 FROM watchlist)",
            )
            .fetch_one(&mut *tx)
            .await?;
            if holds {
                bail!(
                    "this database already holds users, devices or incidents that are not the demo's: \
                     `kuzet-demo` refuses it (give the demo a database of its own)"
                );
            }
        }
        (None, Kind::Live) | (Some(_), Kind::Live) => {}
    }
    sqlx::query("INSERT INTO deployment (kind) VALUES ($1) ON CONFLICT (only_row) DO NOTHING")
        .bind(kind.as_str())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
