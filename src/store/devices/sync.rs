//! The registry file written into the database, audited row by row or in one summary.

use std::collections::{HashMap, HashSet};

use anyhow::Context as _;
use kuzet_actors::spec::{Devices, SiteSpec};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::postgres::PgPool;

use super::{append_entries, audit_in, hex, site_kind_str, PER_ENTRY_AUDIT_LIMIT};

/// New, changed and unchanged rows of one table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub new: usize,
    pub changed: usize,
    pub unchanged: usize,
}

/// What `sync` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub sites: Counts,
    /// Buttons and units together.
    pub devices: Counts,
    /// Audit entries appended: one per new or changed row, or 1 (a `devices.sync` summary)
    /// above [`PER_ENTRY_AUDIT_LIMIT`], or 0 when nothing changed.
    pub audit_entries: usize,
}

/// Writes the registry file's sites, buttons and units into the database in one
/// transaction: new ones are inserted, changed ones updated, unchanged ones left untouched
/// and unaudited (so syncing the same file twice audits nothing the second time). Rows not in
/// `devices` are left alone; a site's `area` and a device's `position` and `custodial` are
/// not part of the registry file and are kept.
pub async fn sync(pool: &PgPool, devices: &Devices, actor: &str) -> anyhow::Result<SyncReport> {
    devices.validate()?;
    let mut tx = pool.begin().await?;

    // Sites.
    let n_sites = devices.sites.len();
    let (mut ids, mut names, mut kinds, mut lats, mut lons) = (
        Vec::with_capacity(n_sites),
        Vec::with_capacity(n_sites),
        Vec::with_capacity(n_sites),
        Vec::with_capacity(n_sites),
        Vec::with_capacity(n_sites),
    );
    for s in &devices.sites {
        ids.push(s.id.as_str());
        names.push(s.name.as_str());
        kinds.push(site_kind_str(s.kind));
        lats.push(s.location.lat());
        lons.push(s.location.lon());
    }
    let site_rows: Vec<(String, bool)> = sqlx::query_as(
        "INSERT INTO sites AS s (id, name, kind, location) \
         SELECT t.id, t.name, t.kind, ST_SetSRID(ST_MakePoint(t.lon, t.lat), 4326)::geography \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::float8[]) AS t(id, name, kind, lat, lon) \
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind, location = EXCLUDED.location \
         WHERE s.name IS DISTINCT FROM EXCLUDED.name OR s.kind IS DISTINCT FROM EXCLUDED.kind \
            OR ST_AsEWKB(s.location::geometry) IS DISTINCT FROM ST_AsEWKB(EXCLUDED.location::geometry) \
         RETURNING s.id, (s.xmax = 0)",
    )
    .bind(&ids)
    .bind(&names)
    .bind(&kinds)
    .bind(&lats)
    .bind(&lons)
    .fetch_all(&mut *tx)
    .await
    .context("cannot write sites")?;

    // Buttons and units.
    let n_dev = devices.units.len() + devices.sites.iter().map(|s| s.buttons.len()).sum::<usize>();
    let mut d_ids: Vec<&str> = Vec::with_capacity(n_dev);
    let mut d_kinds: Vec<&str> = Vec::with_capacity(n_dev);
    let mut d_sites: Vec<Option<&str>> = Vec::with_capacity(n_dev);
    let mut d_rooms: Vec<Option<&str>> = Vec::with_capacity(n_dev);
    let mut d_calls: Vec<Option<&str>> = Vec::with_capacity(n_dev);
    for s in &devices.sites {
        for b in &s.buttons {
            d_ids.push(b.id.as_str());
            d_kinds.push("button");
            d_sites.push(Some(s.id.as_str()));
            d_rooms.push(b.room.as_deref());
            d_calls.push(None);
        }
    }
    for u in &devices.units {
        d_ids.push(u.id.as_str());
        d_kinds.push("unit");
        d_sites.push(None);
        d_rooms.push(None);
        d_calls.push(Some(u.callsign.as_str()));
    }
    let device_rows: Vec<(String, bool)> = sqlx::query_as(
        "INSERT INTO devices AS d (id, kind, site_id, room, callsign) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) \
         ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, site_id = EXCLUDED.site_id, \
             room = EXCLUDED.room, callsign = EXCLUDED.callsign \
         WHERE (d.kind, d.site_id, d.room, d.callsign) \
             IS DISTINCT FROM (EXCLUDED.kind, EXCLUDED.site_id, EXCLUDED.room, EXCLUDED.callsign) \
         RETURNING d.id, (d.xmax = 0)",
    )
    .bind(&d_ids)
    .bind(&d_kinds)
    .bind(&d_sites)
    .bind(&d_rooms)
    .bind(&d_calls)
    .fetch_all(&mut *tx)
    .await
    .context("cannot write devices")?;

    // Cameras: their place, custodial flag and stream are part of the registry file.
    let cams = &devices.cameras;
    let camera_rows: Vec<(String, bool)> = sqlx::query_as(
        "INSERT INTO devices AS d (id, kind, site_id, position, custodial, stream_uri) \
         SELECT t.id, 'camera', t.site_id, ST_SetSRID(ST_MakePoint(t.lon, t.lat), 4326)::geography, \
                t.custodial, t.stream_uri \
         FROM unnest($1::text[], $2::text[], $3::float8[], $4::float8[], $5::bool[], $6::text[]) \
              AS t(id, site_id, lat, lon, custodial, stream_uri) \
         ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, site_id = EXCLUDED.site_id, \
             position = EXCLUDED.position, custodial = EXCLUDED.custodial, stream_uri = EXCLUDED.stream_uri \
         WHERE (d.kind, d.site_id, d.custodial, d.stream_uri) \
                 IS DISTINCT FROM (EXCLUDED.kind, EXCLUDED.site_id, EXCLUDED.custodial, EXCLUDED.stream_uri) \
            OR ST_AsEWKB(d.position::geometry) IS DISTINCT FROM ST_AsEWKB(EXCLUDED.position::geometry) \
         RETURNING d.id, (d.xmax = 0)",
    )
    .bind(cams.iter().map(|c| c.id.as_str()).collect::<Vec<_>>())
    .bind(cams.iter().map(|c| c.site.as_ref().map(|s| s.as_str())).collect::<Vec<_>>())
    .bind(cams.iter().map(|c| c.location.lat()).collect::<Vec<_>>())
    .bind(cams.iter().map(|c| c.location.lon()).collect::<Vec<_>>())
    .bind(cams.iter().map(|c| c.custodial).collect::<Vec<_>>())
    .bind(cams.iter().map(|c| c.stream_uri.as_deref()).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await
    .context("cannot write cameras")?;
    let n_dev = n_dev + cams.len();
    let written_cams: HashSet<&str> = camera_rows.iter().map(|r| r.0.as_str()).collect();
    let device_rows: Vec<(String, bool)> =
        device_rows.into_iter().chain(camera_rows.iter().cloned()).collect();

    let count = |rows: &[(String, bool)], total: usize| {
        let new = rows.iter().filter(|r| r.1).count();
        Counts { new, changed: rows.len() - new, unchanged: total - rows.len() }
    };
    let sites = count(&site_rows, n_sites);
    let devs = count(&device_rows, n_dev);

    // Audit: the new values of what was written.
    let site_by_id: HashMap<&str, &SiteSpec> = devices.sites.iter().map(|s| (s.id.as_str(), s)).collect();
    let mut device_by_id: HashMap<&str, Value> = HashMap::new();
    let written: HashSet<&str> = device_rows.iter().map(|r| r.0.as_str()).collect();
    for s in &devices.sites {
        for b in s.buttons.iter().filter(|b| written.contains(b.id.as_str())) {
            device_by_id
                .insert(b.id.as_str(), json!({"kind": "button", "site": s.id.as_str(), "room": b.room}));
        }
    }
    for u in devices.units.iter().filter(|u| written.contains(u.id.as_str())) {
        device_by_id.insert(u.id.as_str(), json!({"kind": "unit", "callsign": u.callsign}));
    }
    for c in cams.iter().filter(|c| written_cams.contains(c.id.as_str())) {
        device_by_id.insert(
            c.id.as_str(),
            json!({"kind": "camera", "site": c.site, "custodial": c.custodial, "stream_uri": c.stream_uri.as_deref().map(without_credentials),
                   "lat": c.location.lat(), "lon": c.location.lon()}),
        );
    }
    let mut entries: Vec<(&'static str, String, Value)> = Vec::new();
    for (id, created) in &site_rows {
        let s = site_by_id[id.as_str()];
        entries.push((
            "site.register",
            id.clone(),
            json!({"created": created, "name": s.name, "site_kind": site_kind_str(s.kind),
                   "lat": s.location.lat(), "lon": s.location.lon()}),
        ));
    }
    for (id, created) in &device_rows {
        let mut v = device_by_id.remove(id.as_str()).unwrap_or_else(|| json!({}));
        v["created"] = json!(created);
        entries.push(("device.register", id.clone(), v));
    }
    entries[..site_rows.len()].sort_by(|a, b| a.1.cmp(&b.1));
    entries[site_rows.len()..].sort_by(|a, b| a.1.cmp(&b.1));

    let audit_entries = if entries.is_empty() {
        0
    } else if entries.len() <= PER_ENTRY_AUDIT_LIMIT {
        append_entries(&mut tx, actor, &entries).await?
    } else {
        let digest = Sha256::digest(serde_json::to_vec(
            &entries.iter().map(|e| (e.0, &e.1, &e.2)).collect::<Vec<_>>(),
        )?);
        audit_in(
            &mut tx,
            actor,
            "devices.sync",
            None,
            &json!({
                "sites_new": sites.new, "sites_changed": sites.changed,
                "devices_new": devs.new, "devices_changed": devs.changed,
                "sha256": hex(&digest),
                "sha256_of": "JSON array of [action, id, new values] for every written row, ordered as audited per entry",
            }),
        )
        .await?;
        1
    };
    tx.commit().await?;
    Ok(SyncReport { sites, devices: devs, audit_entries })
}

/// A stream address without its user and password, for the audit log.
pub fn without_credentials(uri: &str) -> String {
    match uri.split_once("://") {
        Some((scheme, rest)) => {
            let (auth, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
            let host = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
            let sep = if rest.contains('/') { "/" } else { "" };
            format!("{scheme}://{host}{sep}{path}")
        }
        None => uri.to_owned(),
    }
}
