//! The devices and sites in the database, as the registry kuzet starts with.

use std::collections::HashMap;

use anyhow::Context as _;
use kuzet_actors::camera::CameraSpec;
use kuzet_actors::geo::GeoPoint;
use kuzet_actors::ids::{ButtonId, CameraId, SiteId, UnitId};
use kuzet_actors::spec::{ButtonSpec, Devices, SiteSpec, UnitSpec};
use sqlx::postgres::PgPool;

use super::parse_site_kind;

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
