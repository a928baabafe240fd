//! A GeoJSON file's sites and devices into the database, all or nothing.

use std::collections::HashSet;

use kuzet_progress::{Progress, Show};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::postgres::PgPool;

use super::geojson::parse_collection;
use super::{append_entries, audit_in, hex, CHUNK, PER_ENTRY_AUDIT_LIMIT};

/// Why a GeoJSON import was refused. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file as a whole: not JSON, not a FeatureCollection, no `features` array.
    #[error("{0}")]
    File(String),
    /// One feature, by its 0-based index in `features`.
    #[error("feature {index}: {reason}")]
    Feature { index: usize, reason: String },
    /// The database failed (or refused a row the checks here let through).
    #[error("database: {0:#}")]
    Database(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ImportError {
    fn from(e: sqlx::Error) -> Self {
        ImportError::Database(e.into())
    }
}

/// What an import wrote.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImportReport {
    pub features: usize,
    pub sites: usize,
    pub buttons: usize,
    pub units: usize,
    pub cameras: usize,
    /// Sites and devices whose id was not in the database yet.
    pub new: usize,
    /// Sites and devices whose id was already in the database: overwritten.
    pub updated: usize,
    /// Audit entries appended: per-entry ones (if any) plus the `devices.import` summary.
    pub audit_entries: usize,
    /// SHA-256 of the file's bytes, hex; also in the `devices.import` audit entry.
    pub sha256: String,
}

/// Imports a GeoJSON FeatureCollection of sites and devices, all or nothing.
///
/// The whole file is checked first (syntax, kinds, properties, ids, duplicates, coordinates,
/// geometry types, closed rings, site references, polygon validity); the first problem is
/// returned as [`ImportError::Feature`] with the feature's 0-based index, or as
/// [`ImportError::File`] for the file as a whole, and nothing is written. Then everything is
/// written in one transaction, in bulk statements of 5,000 rows: sites first, then devices.
/// Ids already in the database are overwritten with the file's values (a site given as a
/// Point loses its area; a device given without a geometry keeps its known position).
///
/// Audit (see the module documentation): one `devices.import` entry (counts, file size and
/// SHA-256 of `text`) always, plus one `site.register` / `device.register` entry per site
/// and device when the file has at most [`PER_ENTRY_AUDIT_LIMIT`] of them. Per-entry
/// auditing of 100,000 rows in one transaction would take minutes (the audit chain's cost
/// grows with the square of the entries per transaction), the summary costs nothing.
///
/// `progress`: shown as `kuzet_progress` shows long work (a bar on a terminal, log lines
/// elsewhere), advancing as chunks are written.
pub async fn import_geojson(
    pool: &PgPool,
    text: &str,
    actor: &str,
    progress: bool,
) -> Result<ImportReport, ImportError> {
    let (sites, devices, n_features) = parse_collection(text)?;
    let sha256 = hex(&Sha256::digest(text.as_bytes()));

    let mut tx = pool.begin().await?;
    // Site references the file does not satisfy must name sites already in the database.
    let file_sites: HashSet<&str> = sites.iter().map(|s| s.id.as_str()).collect();
    let outside: Vec<&str> = {
        let set: HashSet<&str> =
            devices.iter().filter_map(|d| d.site.as_deref()).filter(|s| !file_sites.contains(s)).collect();
        set.into_iter().collect()
    };
    if !outside.is_empty() {
        let known: Vec<String> = sqlx::query_scalar("SELECT id FROM sites WHERE id = ANY($1)")
            .bind(&outside)
            .fetch_all(&mut *tx)
            .await?;
        let known: HashSet<&str> = known.iter().map(String::as_str).collect();
        if let Some(d) = devices
            .iter()
            .find(|d| d.site.as_deref().is_some_and(|s| !file_sites.contains(s) && !known.contains(s)))
        {
            return Err(ImportError::Feature {
                index: d.index,
                reason: format!(
                    "site {:?} is neither in the file nor in the database",
                    d.site.as_deref().unwrap_or_default()
                ),
            });
        }
    }
    // Polygons PostGIS would refuse or misread (self-intersections and the like).
    let polys: Vec<(i64, String)> =
        sites.iter().filter_map(|s| s.geometry.wkt().map(|w| (s.index as i64, w))).collect();
    if !polys.is_empty() {
        let idx: Vec<i64> = polys.iter().map(|p| p.0).collect();
        let wkt: Vec<&str> = polys.iter().map(|p| p.1.as_str()).collect();
        let bad: Option<(i64, String)> = sqlx::query_as(
            "SELECT t.i, ST_IsValidReason(g) FROM unnest($1::bigint[], $2::text[]) AS t(i, w), \
             LATERAL ST_GeomFromText(t.w, 4326) AS g WHERE NOT ST_IsValid(g) ORDER BY t.i LIMIT 1",
        )
        .bind(&idx)
        .bind(&wkt)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((i, why)) = bad {
            return Err(ImportError::Feature {
                index: i as usize,
                reason: format!("Polygon is not valid: {why}"),
            });
        }
    }

    let show = if progress { Show::auto() } else { Show::Quiet };
    let bar = Progress::new(show, "importing sites", "features", Some(n_features as u64));

    let mut report = ImportReport { features: n_features, sha256: sha256.clone(), ..Default::default() };
    for chunk in sites.chunks(CHUNK) {
        let ids: Vec<&str> = chunk.iter().map(|s| s.id.as_str()).collect();
        let names: Vec<&str> = chunk.iter().map(|s| s.name.as_str()).collect();
        let kinds: Vec<&str> = chunk.iter().map(|s| s.kind).collect();
        let lons: Vec<Option<f64>> = chunk.iter().map(|s| s.geometry.point().map(|p| p.0)).collect();
        let lats: Vec<Option<f64>> = chunk.iter().map(|s| s.geometry.point().map(|p| p.1)).collect();
        let areas: Vec<Option<String>> = chunk.iter().map(|s| s.geometry.wkt()).collect();
        let inserted: Vec<bool> = sqlx::query_scalar(
            "INSERT INTO sites AS s (id, name, kind, location, area) \
             SELECT t.id, t.name, t.kind, \
                    CASE WHEN t.area IS NULL THEN ST_SetSRID(ST_MakePoint(t.lon, t.lat), 4326)::geography \
                         ELSE ST_PointOnSurface(ST_GeomFromText(t.area, 4326))::geography END, \
                    ST_GeomFromText(t.area, 4326)::geography \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::float8[], $6::text[]) \
                  AS t(id, name, kind, lon, lat, area) \
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind, \
                 location = EXCLUDED.location, area = EXCLUDED.area \
             RETURNING (s.xmax = 0)",
        )
        .bind(&ids)
        .bind(&names)
        .bind(&kinds)
        .bind(&lons)
        .bind(&lats)
        .bind(&areas)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| anyhow::Error::new(e).context("cannot write sites"))?;
        count_inserted(&mut report, &inserted);
        report.sites += chunk.len();
        bar.advance(chunk.len() as u64);
    }
    for chunk in devices.chunks(CHUNK) {
        let ids: Vec<&str> = chunk.iter().map(|d| d.id.as_str()).collect();
        let kinds: Vec<&str> = chunk.iter().map(|d| d.kind).collect();
        let site: Vec<Option<&str>> = chunk.iter().map(|d| d.site.as_deref()).collect();
        let room: Vec<Option<&str>> = chunk.iter().map(|d| d.room.as_deref()).collect();
        let callsign: Vec<Option<&str>> = chunk.iter().map(|d| d.callsign.as_deref()).collect();
        let lons: Vec<Option<f64>> = chunk.iter().map(|d| d.position.map(|p| p.0)).collect();
        let lats: Vec<Option<f64>> = chunk.iter().map(|d| d.position.map(|p| p.1)).collect();
        let custodial: Vec<bool> = chunk.iter().map(|d| d.custodial).collect();
        let inserted: Vec<bool> = sqlx::query_scalar(
            "INSERT INTO devices AS d (id, kind, site_id, room, callsign, position, custodial) \
             SELECT t.id, t.kind, t.site_id, t.room, t.callsign, \
                    CASE WHEN t.lon IS NULL THEN NULL \
                         ELSE ST_SetSRID(ST_MakePoint(t.lon, t.lat), 4326)::geography END, \
                    t.custodial \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::float8[], \
                         $7::float8[], $8::bool[]) AS t(id, kind, site_id, room, callsign, lon, lat, custodial) \
             ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, site_id = EXCLUDED.site_id, \
                 room = EXCLUDED.room, callsign = EXCLUDED.callsign, \
                 position = coalesce(EXCLUDED.position, d.position), custodial = EXCLUDED.custodial \
             RETURNING (d.xmax = 0)",
        )
        .bind(&ids)
        .bind(&kinds)
        .bind(&site)
        .bind(&room)
        .bind(&callsign)
        .bind(&lons)
        .bind(&lats)
        .bind(&custodial)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| anyhow::Error::new(e).context("cannot write devices"))?;
        count_inserted(&mut report, &inserted);
        for d in chunk {
            match d.kind {
                "button" => report.buttons += 1,
                "unit" => report.units += 1,
                _ => report.cameras += 1,
            }
        }
        bar.advance(chunk.len() as u64);
    }

    let per_entry = sites.len() + devices.len() <= PER_ENTRY_AUDIT_LIMIT;
    if per_entry {
        let mut entries: Vec<(&'static str, String, Value)> = Vec::with_capacity(sites.len() + devices.len());
        for s in &sites {
            entries.push((
                "site.register",
                s.id.clone(),
                json!({"name": s.name, "site_kind": s.kind, "geometry": s.geometry.to_json()}),
            ));
        }
        for d in &devices {
            entries.push(("device.register", d.id.clone(), d.details()));
        }
        report.audit_entries += append_entries(&mut tx, actor, &entries).await?;
    }
    audit_in(
        &mut tx,
        actor,
        "devices.import",
        None,
        &json!({
            "sha256": sha256, "bytes": text.len(), "features": n_features,
            "sites": report.sites, "buttons": report.buttons, "units": report.units, "cameras": report.cameras,
            "new": report.new, "updated": report.updated, "per_entry_audit": per_entry,
        }),
    )
    .await?;
    report.audit_entries += 1;
    tx.commit().await?;
    bar.finish(&format!("{} new, {} updated", report.new, report.updated));
    Ok(report)
}

fn count_inserted(report: &mut ImportReport, inserted: &[bool]) {
    let new = inserted.iter().filter(|b| **b).count();
    report.new += new;
    report.updated += inserted.len() - new;
}
