//! Devices and sites in PostGIS: loading them at start, syncing the registry file into the
//! database, importing them from GeoJSON, and a synthetic city for benchmarks.
//!
//! # Audit
//!
//! Every write here is audited inside the transaction that makes it. The audit log's insert
//! trigger updates the single `audit_head` row once per entry, and inside one transaction
//! those row versions cannot be pruned, so N entries in one transaction cost O(N²): measured
//! on the test cluster, 10,000 entries took 3.9 s and 30,000 took 30.5 s (100,000 would take
//! minutes). Hence:
//!
//! * `sync` and `import_geojson` write one `site.register` / `device.register` entry per site
//!   or device (subject = its id, details = its new values) when there are at most
//!   [`PER_ENTRY_AUDIT_LIMIT`] of them (about 0.1 s of audit work at the limit);
//! * above that, one summary entry (`devices.sync` / `devices.import`) with the counts and a
//!   SHA-256 of the input (the GeoJSON file's bytes; for `sync`, the canonical JSON of the
//!   sites and devices written), which pins exactly what was written as long as the input is
//!   kept;
//! * `import_geojson` always writes its `devices.import` summary entry as well, so every
//!   import is findable by the file's hash.

mod city;
mod geojson;
mod import;
mod load;
mod sync;

pub use city::generate_city;
pub use import::{import_geojson, ImportError, ImportReport};
pub use load::load;
pub use sync::{sync, without_credentials, Counts, SyncReport};

use anyhow::Context as _;
use kuzet_actors::spec::SiteKind;
use serde_json::Value;
use sqlx::{Postgres, Transaction};

/// Up to this many new or changed sites and devices, each gets its own audit entry; above
/// it, one summary entry covers them all (see the module documentation for the numbers).
pub const PER_ENTRY_AUDIT_LIMIT: usize = 2_000;

/// Rows per bulk statement in imports and `generate_city`.
const CHUNK: usize = 5_000;

fn site_kind_str(k: SiteKind) -> &'static str {
    match k {
        SiteKind::School => "school",
        SiteKind::PoliceStation => "police_station",
        SiteKind::Prison => "prison",
    }
}

fn parse_site_kind(s: &str) -> Option<SiteKind> {
    match s {
        "school" => Some(SiteKind::School),
        "police_station" => Some(SiteKind::PoliceStation),
        "prison" => Some(SiteKind::Prison),
        _ => None,
    }
}

async fn audit_in(
    tx: &mut Transaction<'_, Postgres>,
    actor: &str,
    action: &str,
    subject: Option<&str>,
    details: &Value,
) -> anyhow::Result<()> {
    sqlx::query("SELECT audit_append($1, $2, $3, $4)")
        .bind(actor)
        .bind(action)
        .bind(subject)
        .bind(details)
        .execute(&mut **tx)
        .await
        .context("cannot append to the audit log")?;
    Ok(())
}

/// Appends one audit entry per (action, subject, details), in order, in one statement.
async fn append_entries(
    tx: &mut Transaction<'_, Postgres>,
    actor: &str,
    entries: &[(&'static str, String, Value)],
) -> anyhow::Result<usize> {
    let actions: Vec<&str> = entries.iter().map(|e| e.0).collect();
    let subjects: Vec<&str> = entries.iter().map(|e| e.1.as_str()).collect();
    let details: Vec<&Value> = entries.iter().map(|e| &e.2).collect();
    let n: i64 = sqlx::query_scalar(
        "SELECT count(audit_append($1, t.action, t.subject, t.details)) \
         FROM unnest($2::text[], $3::text[], $4::jsonb[]) WITH ORDINALITY AS t(action, subject, details, n)",
    )
    .bind(actor)
    .bind(&actions)
    .bind(&subjects)
    .bind(&details)
    .fetch_one(&mut **tx)
    .await
    .context("cannot append to the audit log")?;
    Ok(n as usize)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
