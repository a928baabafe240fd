//! PostgreSQL + PostGIS, the system of record: the connection pool, the embedded schema
//! migrations (migrations/), and the tamper-evident audit log.

pub mod audit;
pub mod checkpoint;
pub mod deployment;
pub mod devices;
pub mod restore;
pub mod rows;
pub mod spool;
pub mod state;
pub mod warnings;
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
    migrate(&pool).await?;
    Ok(pool)
}

/// Brings the schema up to date, or, when it already is, only checks that: a role that may
/// not create tables (the one `kuzet serve` runs as, see `migrate_as_owner`) passes here.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    if !schema_current(pool).await? {
        MIGRATOR.run(pool).await.context(
            "cannot apply the schema migrations (a role without CREATE on the schema needs \
             `kuzet migrate` run with the owner's URL, or database.owner_url)",
        )?;
    }
    Ok(())
}

/// Every embedded migration is recorded as applied, with the same checksum.
async fn schema_current(pool: &PgPool) -> anyhow::Result<bool> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await
        .context("cannot connect to the database")?;
    if !exists {
        return Ok(false);
    }
    let applied: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await?;
    Ok(MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .all(|m| applied.iter().any(|(v, c)| *v == m.version && c[..] == m.checksum[..])))
}

/// Applies the migrations as the schema's owner (`owner_url`) and, with `app_role`, grants that
/// role what `kuzet serve` needs: SELECT and INSERT on audit_log and SELECT on audit_head
/// (never UPDATE, DELETE or TRUNCATE), SELECT on the migrations' record, full DML on every
/// other table of the schema, the sequences, and the same on tables later migrations make.
/// Run at every migrate, so a table added since is granted too.
pub async fn migrate_as_owner(owner_url: &str, app_role: Option<&str>) -> anyhow::Result<()> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect(owner_url)
        .await
        .context("cannot connect to the database as its owner")?;
    MIGRATOR.run(&pool).await.context("cannot apply the schema migrations")?;
    if let Some(role) = app_role {
        grant_app_role(&pool, role).await?;
    }
    pool.close().await;
    Ok(())
}

/// At `kuzet serve`'s start with database.owner_url: the migrations as the owner, then the
/// grants to the role `app` connects as (none when that is the owner itself: the start-up
/// warning says what that means).
pub async fn migrate_for(owner_url: &str, app: &PgPool) -> anyhow::Result<()> {
    let role: String = sqlx::query_scalar("SELECT current_user::text").fetch_one(app).await?;
    let owner = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect(owner_url)
        .await
        .context("cannot connect to the database as its owner (database.owner_url)")?;
    let owner_role: String = sqlx::query_scalar("SELECT current_user::text").fetch_one(&owner).await?;
    owner.close().await;
    migrate_as_owner(owner_url, (role != owner_role).then_some(role.as_str())).await
}

/// A role name kuzet accepts: unquoted-identifier style, so it reads the same in SQL and logs.
fn valid_role(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

async fn grant_app_role(pool: &PgPool, role: &str) -> anyhow::Result<()> {
    anyhow::ensure!(valid_role(role), "app role {role:?}: expected [a-z_][a-z0-9_]*, at most 63 characters");
    let (exists, owner): (bool, bool) =
        sqlx::query_as("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1), $1 = current_user")
            .bind(role)
            .fetch_one(pool)
            .await?;
    anyhow::ensure!(
        exists,
        "role {role} does not exist: create it first, e.g. CREATE ROLE {role} LOGIN PASSWORD '...'"
    );
    anyhow::ensure!(!owner, "the app role {role} is the owner itself: serve with a role of its own");
    let schema: String = sqlx::query_scalar("SELECT current_schema()").fetch_one(pool).await?;
    // The schema's own tables and sequences: not the extensions' (spatial_ref_sys is PostGIS's,
    // readable by everyone).
    let objects: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname::text, c.relkind::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'S') \
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                           AND d.objid = c.oid AND d.deptype = 'e')",
    )
    .fetch_all(pool)
    .await?;
    let (s, r) = (ident(&schema), ident(role));
    let mut sql = vec![
        format!("GRANT USAGE ON SCHEMA {s} TO {r}"),
        format!(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {r}"
        ),
        format!("ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT USAGE, SELECT ON SEQUENCES TO {r}"),
    ];
    for (name, kind) in &objects {
        let t = format!("{s}.{}", ident(name));
        let granted = match (name.as_str(), kind.as_str()) {
            (_, "S") => {
                sql.push(format!("GRANT USAGE, SELECT ON SEQUENCE {t} TO {r}"));
                continue;
            }
            ("audit_log", _) => "SELECT, INSERT",
            ("audit_head" | "_sqlx_migrations", _) => "SELECT",
            _ => "SELECT, INSERT, UPDATE, DELETE",
        };
        // Revoked first: what an earlier grant (or the default privileges) gave goes.
        sql.push(format!("REVOKE ALL ON {t} FROM {r}"));
        sql.push(format!("GRANT {granted} ON {t} TO {r}"));
    }
    let mut tx = pool.begin().await?;
    for q in sql {
        sqlx::query(sqlx::AssertSqlSafe(q.clone())).execute(&mut *tx).await.with_context(|| q.clone())?;
    }
    tx.commit().await?;
    tracing::info!(role, schema, tables = objects.len(), "privileges granted to the app role");
    Ok(())
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The connected role can rewrite the audit log: a superuser, a member of the table's owner
/// (who can switch its triggers off), or granted UPDATE, DELETE or TRUNCATE on it.
pub async fn audit_rewritable(pool: &PgPool) -> anyhow::Result<Option<String>> {
    let row: (String, bool, bool, bool) = sqlx::query_as(
        "SELECT current_user::text, \
                (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), \
                pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = 'audit_log'::regclass), 'MEMBER'), \
                has_table_privilege('audit_log', 'UPDATE, DELETE, TRUNCATE')",
    )
    .fetch_one(pool)
    .await?;
    let (role, superuser, owner, granted) = row;
    let why = if superuser {
        "a superuser"
    } else if owner {
        "the owner of audit_log"
    } else if granted {
        "granted UPDATE, DELETE or TRUNCATE on audit_log"
    } else {
        return Ok(None);
    };
    Ok(Some(format!("{role} is {why}")))
}

/// Says once, loudly, when kuzet's own role could rewrite the audit log.
pub async fn warn_if_audit_rewritable(pool: &PgPool) {
    match audit_rewritable(pool).await {
        Ok(Some(why)) => tracing::warn!(
            "the audit log can be rewritten by the role kuzet connects as ({why}): serve as a role \
             of its own, granted by `kuzet migrate --database-url OWNER_URL --app-role NAME`, and \
             set database.owner_url (see docs/operations.md)"
        ),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %format!("{e:#}"), "cannot check the privileges on audit_log"),
    }
}
