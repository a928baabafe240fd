//! A synthetic city, for benchmarks.

use anyhow::Context as _;
use kuzet_actors::geo::GeoPoint;
use serde_json::json;
use sqlx::postgres::PgPool;

use super::{audit_in, CHUNK};

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
