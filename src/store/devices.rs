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

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kuzet_actors::camera::CameraSpec;
use kuzet_actors::geo::GeoPoint;
use kuzet_actors::ids::{check_device_id, ButtonId, CameraId, SiteId, UnitId};
use kuzet_actors::spec::{ButtonSpec, Devices, SiteKind, SiteSpec, UnitSpec};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::postgres::PgPool;
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

// ---------------------------------------------------------------------------------------------
// load

/// All sites with their buttons (both ordered by id, bytewise) and all units (ordered by id). One query
/// per kind of row; passwords are not stored in the database, so they are `None`.
///
/// Cameras without a position are skipped with a warning (they cannot place a sighting). A
/// button whose `site_id` is
/// NULL (possible in the schema, never written by this module) has no site to belong to: it
/// is skipped with a warning. A unit without a callsign gets its id as callsign.
pub async fn load(pool: &PgPool) -> anyhow::Result<Devices> {
    let mut conn = pool.acquire().await.context("cannot reach the database")?;
    // One snapshot for the three queries, so a concurrent import cannot show a button whose
    // site was read before it existed.
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    let sites: Vec<(String, String, String, f64, f64)> = sqlx::query_as(
        "SELECT id, name, kind, ST_Y(location::geometry), ST_X(location::geometry) FROM sites ORDER BY id COLLATE \"C\"",
    )
    .fetch_all(&mut *tx)
    .await
    .context("cannot read sites")?;
    let buttons: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT id, site_id, room FROM devices WHERE kind = 'button' ORDER BY id COLLATE \"C\"",
    )
    .fetch_all(&mut *tx)
    .await
    .context("cannot read buttons")?;
    let units: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT id, callsign FROM devices WHERE kind = 'unit' ORDER BY id COLLATE \"C\"")
            .fetch_all(&mut *tx)
            .await
            .context("cannot read units")?;
    // id, site, lat, lon, custodial, stream_uri
    type CameraRow = (String, Option<String>, Option<f64>, Option<f64>, bool, Option<String>);
    let cameras: Vec<CameraRow> = sqlx::query_as(
        "SELECT id, site_id, ST_Y(position::geometry), ST_X(position::geometry), custodial, stream_uri \
         FROM devices WHERE kind = 'camera' ORDER BY id COLLATE \"C\"",
    )
    .fetch_all(&mut *tx)
    .await
    .context("cannot read cameras")?;
    tx.commit().await?;

    let mut out = Devices {
        sites: Vec::with_capacity(sites.len()),
        units: Vec::with_capacity(units.len()),
        cameras: Vec::with_capacity(cameras.len()),
    };
    let mut site_index: HashMap<String, usize> = HashMap::with_capacity(sites.len());
    for (id, name, kind, lat, lon) in sites {
        let sid = SiteId::parse(&id).with_context(|| format!("site {id:?} in the database"))?;
        let kind = parse_site_kind(&kind)
            .with_context(|| format!("site {id}: unknown kind {kind:?} in the database"))?;
        let location = GeoPoint::new(lat, lon).with_context(|| format!("site {id}: location"))?;
        site_index.insert(id, out.sites.len());
        out.sites.push(SiteSpec { id: sid, name, kind, location, buttons: Vec::new() });
    }
    let mut orphans = 0usize;
    for (id, site_id, room) in buttons {
        let Some(&i) = site_id.as_deref().and_then(|s| site_index.get(s)) else {
            orphans += 1;
            continue;
        };
        let bid = ButtonId::parse(&id).with_context(|| format!("button {id:?} in the database"))?;
        // Buttons come ordered by id, so each site's list is ordered too.
        out.sites[i].buttons.push(ButtonSpec { id: bid, room, password: None });
    }
    if orphans > 0 {
        tracing::warn!(buttons = orphans, "buttons without a site in the database were not loaded");
    }
    for (id, callsign) in units {
        let uid = UnitId::parse(&id).with_context(|| format!("unit {id:?} in the database"))?;
        out.units.push(UnitSpec {
            callsign: callsign.unwrap_or_else(|| id.clone()),
            id: uid,
            password: None,
        });
    }
    let mut unplaced = 0usize;
    for (id, site, lat, lon, custodial, stream_uri) in cameras {
        let (Some(lat), Some(lon)) = (lat, lon) else {
            unplaced += 1;
            continue;
        };
        out.cameras.push(CameraSpec {
            id: CameraId::parse(&id).with_context(|| format!("camera {id:?} in the database"))?,
            location: GeoPoint::new(lat, lon).with_context(|| format!("camera {id}: position"))?,
            site: site
                .map(|s| SiteId::parse(&s))
                .transpose()
                .with_context(|| format!("camera {id}: site"))?,
            custodial,
            stream_uri,
            password: None,
        });
    }
    if unplaced > 0 {
        tracing::warn!(cameras = unplaced, "cameras without a position in the database were not loaded");
    }
    out.validate().context("devices in the database")?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// sync

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

// ---------------------------------------------------------------------------------------------
// GeoJSON import

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

#[derive(Debug, Clone)]
enum Geometry {
    Point { lon: f64, lat: f64 },
    Polygon(Vec<Vec<[f64; 2]>>),
}

impl Geometry {
    fn to_json(&self) -> Value {
        match self {
            Geometry::Point { lon, lat } => json!({"type": "Point", "coordinates": [lon, lat]}),
            Geometry::Polygon(rings) => json!({"type": "Polygon", "coordinates": rings}),
        }
    }

    fn point(&self) -> Option<(f64, f64)> {
        match self {
            Geometry::Point { lon, lat } => Some((*lon, *lat)),
            Geometry::Polygon(_) => None,
        }
    }

    /// WKT of a polygon (Rust's float Display is shortest-round-trip and never exponential).
    fn wkt(&self) -> Option<String> {
        let Geometry::Polygon(rings) = self else { return None };
        let rings: Vec<String> = rings
            .iter()
            .map(|r| {
                let pts: Vec<String> = r.iter().map(|[x, y]| format!("{x} {y}")).collect();
                format!("({})", pts.join(","))
            })
            .collect();
        Some(format!("POLYGON({})", rings.join(",")))
    }
}

#[derive(Debug, Clone)]
struct SiteRow {
    index: usize,
    id: String,
    name: String,
    kind: &'static str,
    geometry: Geometry,
}

#[derive(Debug, Clone)]
struct DeviceRow {
    index: usize,
    id: String,
    kind: &'static str,
    site: Option<String>,
    room: Option<String>,
    callsign: Option<String>,
    position: Option<(f64, f64)>,
    custodial: bool,
}

impl DeviceRow {
    fn details(&self) -> Value {
        let mut v = json!({"kind": self.kind});
        match self.kind {
            "button" => {
                v["site"] = json!(self.site);
                v["room"] = json!(self.room);
            }
            "unit" => v["callsign"] = json!(self.callsign),
            _ => {
                v["site"] = json!(self.site);
                v["custodial"] = json!(self.custodial);
            }
        }
        if let Some((lon, lat)) = self.position {
            v["geometry"] = json!({"type": "Point", "coordinates": [lon, lat]});
        }
        v
    }
}

type Reason = String;

fn describe(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

fn position(v: &Value) -> Result<[f64; 2], Reason> {
    let Some(arr) = v.as_array() else {
        return Err(format!("a position must be an array [lon, lat], got {}", describe(v)));
    };
    if arr.len() < 2 || arr.len() > 3 {
        return Err(format!("a position must be [lon, lat] or [lon, lat, altitude], got {}", describe(v)));
    }
    let nums: Option<Vec<f64>> = arr.iter().map(Value::as_f64).collect();
    let Some(nums) = nums else {
        return Err(format!("coordinates must be numbers, got {}", describe(v)));
    };
    let (lon, lat) = (nums[0], nums[1]);
    if !lon.is_finite()
        || !lat.is_finite()
        || !(-180.0..=180.0).contains(&lon)
        || !(-90.0..=90.0).contains(&lat)
    {
        return Err(format!("coordinates [{lon:?}, {lat:?}] are out of range (lon -180..180, lat -90..90)"));
    }
    Ok([lon, lat])
}

fn geometry(v: &Value) -> Result<Option<Geometry>, Reason> {
    if v.is_null() {
        return Ok(None);
    }
    let Some(obj) = v.as_object() else {
        return Err(format!("geometry must be an object or null, got {}", describe(v)));
    };
    let ty = obj.get("type").and_then(Value::as_str).ok_or("geometry has no \"type\" string")?;
    let coords = obj.get("coordinates").ok_or_else(|| format!("{ty} geometry has no \"coordinates\""))?;
    match ty {
        "Point" => {
            let [lon, lat] = position(coords)?;
            Ok(Some(Geometry::Point { lon, lat }))
        }
        "Polygon" => {
            let rings = coords.as_array().ok_or("Polygon coordinates must be an array of rings")?;
            if rings.is_empty() {
                return Err("Polygon has no rings".into());
            }
            let mut out = Vec::with_capacity(rings.len());
            for (r, ring) in rings.iter().enumerate() {
                let pts = ring
                    .as_array()
                    .ok_or_else(|| format!("Polygon ring {r} must be an array of positions"))?;
                if pts.len() < 4 {
                    return Err(format!(
                        "Polygon ring {r} has {} positions, at least 4 are needed",
                        pts.len()
                    ));
                }
                let pts: Vec<[f64; 2]> = pts.iter().map(position).collect::<Result<_, _>>()?;
                if pts.first() != pts.last() {
                    return Err(format!(
                        "Polygon ring {r} is not closed: it starts at {:?} and ends at {:?}",
                        pts[0],
                        pts[pts.len() - 1]
                    ));
                }
                out.push(pts);
            }
            Ok(Some(Geometry::Polygon(out)))
        }
        other => Err(format!("unsupported geometry type {other:?} (Point or Polygon)")),
    }
}

fn prop_str<'a>(props: &'a serde_json::Map<String, Value>, key: &str) -> Result<&'a str, Reason> {
    match props.get(key) {
        None | Some(Value::Null) => Err(format!("property \"{key}\" is missing")),
        Some(Value::String(s)) => Ok(s),
        Some(v) => Err(format!("property \"{key}\" must be a string, got {}", describe(v))),
    }
}

fn prop_opt_str<'a>(props: &'a serde_json::Map<String, Value>, key: &str) -> Result<Option<&'a str>, Reason> {
    match props.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(format!("property \"{key}\" must be a string, got {}", describe(v))),
    }
}

fn prop_id<'a>(props: &'a serde_json::Map<String, Value>, key: &str) -> Result<&'a str, Reason> {
    let id = prop_str(props, key)?;
    check_device_id(id).map_err(|e| format!("property \"{key}\" {id:?} is not a valid id: {e}"))?;
    Ok(id)
}

fn non_empty<'a>(props: &'a serde_json::Map<String, Value>, key: &str) -> Result<&'a str, Reason> {
    let s = prop_str(props, key)?;
    if s.trim().is_empty() {
        return Err(format!("property \"{key}\" is empty"));
    }
    Ok(s)
}

enum Parsed {
    Site(SiteRow),
    Device(DeviceRow),
}

fn feature(index: usize, f: &Value) -> Result<Parsed, Reason> {
    let Some(obj) = f.as_object() else {
        return Err(format!("a feature must be an object, got {}", describe(f)));
    };
    match obj.get("type") {
        Some(Value::String(t)) if t == "Feature" => {}
        Some(v) => return Err(format!("\"type\" must be \"Feature\", got {}", describe(v))),
        None => return Err("\"type\": \"Feature\" is missing".into()),
    }
    let props = match obj.get("properties") {
        Some(Value::Object(p)) => p,
        None | Some(Value::Null) => return Err("\"properties\" is missing".into()),
        Some(v) => return Err(format!("\"properties\" must be an object, got {}", describe(v))),
    };
    let kind = prop_str(props, "kind")?;
    let geom = geometry(obj.get("geometry").unwrap_or(&Value::Null))?;
    let point_only = |what: &str, required: bool| -> Result<Option<(f64, f64)>, Reason> {
        match &geom {
            None if required => Err(format!("a {what} needs a Point geometry")),
            None => Ok(None),
            Some(Geometry::Point { lon, lat }) => Ok(Some((*lon, *lat))),
            Some(Geometry::Polygon(_)) => Err(format!("a {what}'s geometry must be a Point, not a Polygon")),
        }
    };
    let device = |kind: &'static str, id: &str| DeviceRow {
        index,
        id: id.to_owned(),
        kind,
        site: None,
        room: None,
        callsign: None,
        position: None,
        custodial: false,
    };
    match kind {
        "site" => {
            let id = prop_id(props, "id")?;
            let name = non_empty(props, "name")?;
            let sk = prop_str(props, "site_kind")?;
            let sk = parse_site_kind(sk)
                .map(site_kind_str)
                .ok_or_else(|| format!("site_kind {sk:?} is not one of school, police_station, prison"))?;
            let geometry =
                geom.ok_or("a site needs a Point (its location) or Polygon (its area) geometry")?;
            Ok(Parsed::Site(SiteRow { index, id: id.to_owned(), name: name.to_owned(), kind: sk, geometry }))
        }
        "button" => {
            let id = prop_id(props, "id")?;
            let site = prop_id(props, "site")?;
            let room = prop_opt_str(props, "room")?;
            let mut d = device("button", id);
            d.site = Some(site.to_owned());
            d.room = room.map(str::to_owned);
            d.position = point_only("button", false)?;
            Ok(Parsed::Device(d))
        }
        "unit" => {
            let id = prop_id(props, "id")?;
            let callsign = non_empty(props, "callsign")?;
            let mut d = device("unit", id);
            d.callsign = Some(callsign.to_owned());
            d.position = point_only("unit", false)?;
            Ok(Parsed::Device(d))
        }
        "camera" => {
            let id = prop_id(props, "id")?;
            let site = match props.get("site") {
                None | Some(Value::Null) => None,
                Some(_) => Some(prop_id(props, "site")?),
            };
            let custodial = match props.get("custodial") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(v) => {
                    return Err(format!("property \"custodial\" must be true or false, got {}", describe(v)))
                }
            };
            let mut d = device("camera", id);
            d.site = site.map(str::to_owned);
            d.custodial = custodial;
            d.position = point_only("camera", true)?;
            Ok(Parsed::Device(d))
        }
        other => Err(format!("unknown kind {other:?} (site, button, unit or camera)")),
    }
}

/// Checks the whole file without the database: everything but site references to sites
/// that are only in the database and polygon validity.
fn parse_collection(text: &str) -> Result<(Vec<SiteRow>, Vec<DeviceRow>, usize), ImportError> {
    let root: Value =
        serde_json::from_str(text).map_err(|e| ImportError::File(format!("not valid JSON: {e}")))?;
    let Some(obj) = root.as_object() else {
        return Err(ImportError::File(
            "not a GeoJSON FeatureCollection: the top level is not an object".into(),
        ));
    };
    if obj.get("type").and_then(Value::as_str) != Some("FeatureCollection") {
        return Err(ImportError::File(format!(
            "not a GeoJSON FeatureCollection: \"type\" is {}",
            obj.get("type").map(describe).unwrap_or_else(|| "missing".into())
        )));
    }
    let Some(features) = obj.get("features").and_then(Value::as_array) else {
        return Err(ImportError::File("a FeatureCollection needs a \"features\" array".into()));
    };
    let mut sites = Vec::new();
    let mut devices = Vec::new();
    let mut site_ids: HashMap<String, usize> = HashMap::new();
    let mut device_ids: HashMap<String, usize> = HashMap::new();
    for (index, f) in features.iter().enumerate() {
        let err = |reason| ImportError::Feature { index, reason };
        match feature(index, f).map_err(err)? {
            Parsed::Site(s) => {
                if let Some(first) = site_ids.insert(s.id.clone(), index) {
                    return Err(err(format!("site id {:?} is already used by feature {first}", s.id)));
                }
                sites.push(s);
            }
            Parsed::Device(d) => {
                if let Some(first) = device_ids.insert(d.id.clone(), index) {
                    return Err(err(format!("device id {:?} is already used by feature {first}", d.id)));
                }
                devices.push(d);
            }
        }
    }
    Ok((sites, devices, features.len()))
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
/// `progress`: an indicatif bar on stderr, advancing as chunks are written.
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

    let bar = if progress {
        let b = ProgressBar::with_draw_target(Some(n_features as u64), ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} features ({per_sec}, {eta})")
        {
            b.set_style(style.progress_chars("=> "));
        }
        b.set_message("importing");
        b.enable_steady_tick(Duration::from_millis(200));
        b
    } else {
        ProgressBar::hidden()
    };

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
        bar.inc(chunk.len() as u64);
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
        bar.inc(chunk.len() as u64);
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
    bar.finish_and_clear();
    Ok(report)
}

fn count_inserted(report: &mut ImportReport, inserted: &[bool]) {
    let new = inserted.iter().filter(|b| **b).count();
    report.new += new;
    report.updated += inserted.len() - new;
}

// ---------------------------------------------------------------------------------------------
// A synthetic city, for benchmarks

/// Writes `n_devices` synthetic devices (plus their sites) in one transaction, in bulk: about
/// one site per 20 devices (mostly schools, every 25th a police station, every 100th a prison),
/// 60 % of the devices panic buttons spread over the schools (`btn-<school>-NN`), the rest
/// patrol units (`unit-NNNNNN`, callsign `P-NNNNNN`) with a position, all within about 20 km
/// of Almaty's centre. Deterministic for a given `seed`. Ids already present are
/// overwritten. One `devices.generate` audit entry records the counts.
pub async fn generate_city(pool: &PgPool, n_devices: usize, seed: u64) -> anyhow::Result<()> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let centre = GeoPoint::new(43.2389, 76.8897)?;
    let random_point = |rng: &mut rand::rngs::StdRng| {
        centre.offset(rng.random_range(-20_000.0..20_000.0), rng.random_range(-20_000.0..20_000.0))
    };

    let n_sites = (n_devices / 20).max(usize::from(n_devices > 0));
    let n_buttons = n_devices * 6 / 10;
    let n_units = n_devices - n_buttons;
    let site_kind = |i: usize| match i {
        i if i % 100 == 99 => "prison",
        i if i % 25 == 24 => "police_station",
        _ => "school",
    };
    let schools: Vec<usize> = (0..n_sites).filter(|&i| site_kind(i) == "school").collect();
    let site_id = |i: usize| match site_kind(i) {
        "school" => format!("school-{i:05}"),
        "prison" => format!("prison-{i:05}"),
        _ => format!("police-{i:05}"),
    };

    let mut tx = pool.begin().await?;
    let mut s_ids = Vec::with_capacity(n_sites);
    let mut s_names = Vec::with_capacity(n_sites);
    let mut s_kinds = Vec::with_capacity(n_sites);
    let mut s_lats = Vec::with_capacity(n_sites);
    let mut s_lons = Vec::with_capacity(n_sites);
    for i in 0..n_sites {
        let p = random_point(&mut rng);
        s_ids.push(site_id(i));
        s_names.push(match site_kind(i) {
            "school" => format!("School No. {}", i + 1),
            "prison" => format!("Detention Centre No. {}", i + 1),
            _ => format!("Police Station No. {}", i + 1),
        });
        s_kinds.push(site_kind(i));
        s_lats.push(p.lat());
        s_lons.push(p.lon());
    }
    for start in (0..n_sites).step_by(CHUNK) {
        let end = (start + CHUNK).min(n_sites);
        sqlx::query(
            "INSERT INTO sites (id, name, kind, location) \
             SELECT t.id, t.name, t.kind, ST_SetSRID(ST_MakePoint(t.lon, t.lat), 4326)::geography \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::float8[]) AS t(id, name, kind, lat, lon) \
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind, location = EXCLUDED.location",
        )
        .bind(&s_ids[start..end])
        .bind(&s_names[start..end])
        .bind(&s_kinds[start..end])
        .bind(&s_lats[start..end])
        .bind(&s_lons[start..end])
        .execute(&mut *tx)
        .await
        .context("cannot write sites")?;
    }

    // Devices: buttons round-robin over the schools (room numbers per school), then units.
    let mut ids = Vec::with_capacity(n_devices);
    let mut kinds = Vec::with_capacity(n_devices);
    let mut sites: Vec<Option<String>> = Vec::with_capacity(n_devices);
    let mut rooms: Vec<Option<String>> = Vec::with_capacity(n_devices);
    let mut calls: Vec<Option<String>> = Vec::with_capacity(n_devices);
    let mut lats: Vec<f64> = Vec::with_capacity(n_devices);
    let mut lons: Vec<f64> = Vec::with_capacity(n_devices);
    let school_points: Vec<GeoPoint> =
        schools.iter().map(|&i| GeoPoint::new(s_lats[i], s_lons[i])).collect::<Result<_, _>>()?;
    let mut per_school = vec![0usize; schools.len()];
    for b in 0..n_buttons {
        if schools.is_empty() {
            break;
        }
        let k = b % schools.len();
        per_school[k] += 1;
        let n = per_school[k];
        ids.push(format!("btn-{i:05}-{n:02}", i = schools[k]));
        kinds.push("button");
        sites.push(Some(s_ids[schools[k]].clone()));
        rooms.push(Some(format!("{}{:02}", 1 + n % 4, n)));
        calls.push(None);
        let p = school_points[k].offset(rng.random_range(-40.0..40.0), rng.random_range(-40.0..40.0));
        lats.push(p.lat());
        lons.push(p.lon());
    }
    for u in 0..n_units {
        let p = random_point(&mut rng);
        ids.push(format!("unit-{u:06}"));
        kinds.push("unit");
        sites.push(None);
        rooms.push(None);
        calls.push(Some(format!("P-{u:06}")));
        lats.push(p.lat());
        lons.push(p.lon());
    }
    for start in (0..ids.len()).step_by(CHUNK) {
        let end = (start + CHUNK).min(ids.len());
        sqlx::query(
            "INSERT INTO devices (id, kind, site_id, room, callsign, position) \
             SELECT t.id, t.kind, t.site_id, t.room, t.callsign, \
                    ST_SetSRID(ST_MakePoint(t.lon, t.lat), 4326)::geography \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::float8[], $7::float8[]) \
                  AS t(id, kind, site_id, room, callsign, lat, lon) \
             ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, site_id = EXCLUDED.site_id, \
                 room = EXCLUDED.room, callsign = EXCLUDED.callsign, position = EXCLUDED.position",
        )
        .bind(&ids[start..end])
        .bind(&kinds[start..end])
        .bind(&sites[start..end])
        .bind(&rooms[start..end])
        .bind(&calls[start..end])
        .bind(&lats[start..end])
        .bind(&lons[start..end])
        .execute(&mut *tx)
        .await
        .context("cannot write devices")?;
    }
    audit_in(
        &mut tx,
        "generate_city",
        "devices.generate",
        None,
        &json!({"seed": seed, "sites": n_sites, "buttons": ids.len() - n_units, "units": n_units}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
