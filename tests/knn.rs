//! The in-memory nearest-unit index against PostGIS: for the same units, the nearest unit
//! (and the 8 nearest, in order) must be the one PostGIS's KNN operator finds
//! (`ORDER BY position <-> point`). Where the two name different units, the units must be
//! equally far (a tie, to a relative 1e-9): anything else is a wrong answer.

mod common;

use std::time::{Duration, Instant};

use kuzet::store;
use kuzet_actors::geo::GeoPoint;
use kuzet_actors::ids::UnitId;
use kuzet_actors::index::UnitIndex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::postgres::PgPool;

const AGE: Duration = Duration::from_secs(3600);
/// Two distances this close (relative) are a tie: either unit is a right answer.
const TIE: f64 = 1e-9;

struct World {
    pool: PgPool,
    index: UnitIndex,
    units: Vec<(UnitId, GeoPoint)>,
    now: Instant,
}

fn centre() -> GeoPoint {
    GeoPoint::new(43.2389, 76.8897).unwrap()
}

fn in_city(rng: &mut StdRng, radius_m: f64) -> GeoPoint {
    centre().offset(rng.random_range(-radius_m..radius_m), rng.random_range(-radius_m..radius_m))
}

async fn world(seed: u64) -> World {
    let url = common::fresh_database().await;
    let pool = store::connect(&url).await.expect("schema applies");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut units: Vec<(UnitId, GeoPoint)> = Vec::new();
    for i in 0..2_000 {
        units.push((UnitId::parse(&format!("unit-{i:04}")).unwrap(), in_city(&mut rng, 20_000.0)));
    }
    // Exact ties: some units share a position with another unit.
    for i in 0..20 {
        let p = units[i * 37].1;
        units.push((UnitId::parse(&format!("twin-{i:02}")).unwrap(), p));
    }
    // Far away: other cities, both poles' neighbourhoods, the antimeridian.
    for (i, (lat, lon)) in [
        (51.1694, 71.4491),
        (55.7558, 37.6173),
        (-33.8688, 151.2093),
        (64.8378, -147.7164),
        (-77.85, 166.67),
        (89.9, 0.0),
        (0.0, 179.999),
        (0.0, -179.999),
        (-54.8, -68.3),
        (40.7128, -74.006),
    ]
    .into_iter()
    .enumerate()
    {
        units.push((UnitId::parse(&format!("far-{i:02}")).unwrap(), GeoPoint::new(lat, lon).unwrap()));
    }

    let ids: Vec<&str> = units.iter().map(|u| u.0.as_str()).collect();
    let lats: Vec<f64> = units.iter().map(|u| u.1.lat()).collect();
    let lons: Vec<f64> = units.iter().map(|u| u.1.lon()).collect();
    sqlx::query(
        "INSERT INTO devices (id, kind, callsign, position) \
         SELECT t.id, 'unit', upper(t.id), ST_SetSRID(ST_MakePoint(t.lon, t.lat), 4326)::geography \
         FROM unnest($1::text[], $2::float8[], $3::float8[]) AS t(id, lat, lon)",
    )
    .bind(&ids)
    .bind(&lats)
    .bind(&lons)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE devices").execute(&pool).await.unwrap();

    let now = Instant::now();
    let mut index = UnitIndex::new();
    for (id, p) in &units {
        index.set_eligible(id, true);
        index.update_position(id, *p, now);
    }
    assert_eq!(index.len(), units.len());
    World { pool, index, units, now }
}

/// PostGIS's k nearest units to `q` by `<->`, with their sphere distances.
async fn postgis_knn(pool: &PgPool, q: GeoPoint, k: i64) -> Vec<(String, f64)> {
    sqlx::query_as(
        "WITH q AS (SELECT ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography AS g) \
         SELECT d.id, ST_Distance(d.position, q.g, false) FROM devices d, q \
         WHERE d.kind = 'unit' ORDER BY d.position <-> q.g LIMIT $3",
    )
    .bind(q.lon())
    .bind(q.lat())
    .bind(k)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// PostGIS's sphere distance from `q` to the unit `id`.
async fn postgis_distance(pool: &PgPool, q: GeoPoint, id: &str) -> f64 {
    sqlx::query_scalar(
        "SELECT ST_Distance(position, ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography, false) FROM devices WHERE id = $3",
    )
    .bind(q.lon())
    .bind(q.lat())
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap()
}

fn tie(a: f64, b: f64) -> bool {
    (a - b).abs() <= TIE * a.max(b) + 1e-9
}

fn query_point(rng: &mut StdRng, i: usize) -> GeoPoint {
    match i % 10 {
        // Mostly inside the city, some just outside it, some anywhere on Earth.
        0 => GeoPoint::new(rng.random_range(-90.0..90.0), rng.random_range(-180.0..180.0)).unwrap(),
        1 => in_city(rng, 40_000.0),
        _ => in_city(rng, 20_000.0),
    }
}

#[actix_rt::test]
async fn nearest_unit_matches_postgis_knn_on_1000_queries() {
    let w = world(20_261_125).await;
    let mut rng = StdRng::seed_from_u64(42);
    let mut same = 0;
    let mut ties: Vec<(String, String)> = Vec::new();
    for i in 0..1_000 {
        let q = query_point(&mut rng, i);
        let mem = w.index.nearest(&q, 1, &[], AGE, w.now);
        assert_eq!(mem.len(), 1);
        let mem = &mem[0];
        let pg = postgis_knn(&w.pool, q, 1).await;
        let (pg_id, pg_d) = (&pg[0].0, pg[0].1);
        // The index's own distance agrees with PostGIS's sphere distance for its unit.
        let mem_d = postgis_distance(&w.pool, q, mem.unit.as_str()).await;
        assert!(
            (mem.distance_m - mem_d).abs() <= 1e-6 * mem_d + 1e-3,
            "query {i} {q:?}: index says {} m to {}, PostGIS {} m",
            mem.distance_m,
            mem.unit,
            mem_d
        );
        if mem.unit.as_str() == pg_id {
            same += 1;
        } else {
            assert!(
                tie(mem_d, pg_d),
                "query {i} {q:?}: index picked {} at {mem_d} m, PostGIS {pg_id} at {pg_d} m",
                mem.unit
            );
            ties.push((mem.unit.to_string(), pg_id.clone()));
        }
    }
    eprintln!("nearest: {same} identical, {} ties (equal distances, different unit): {ties:?}", ties.len());
    assert_eq!(same + ties.len(), 1_000);
    // The twins make some ties possible, but almost every answer is the same unit.
    assert!(same >= 950, "{same} identical answers");
}

#[actix_rt::test]
async fn eight_nearest_match_postgis_knn_in_order_on_100_queries() {
    let w = world(7).await;
    let mut rng = StdRng::seed_from_u64(43);
    let mut ties = 0;
    for i in 0..100 {
        // Every query on a unit's position or near it, to bring twins into the lists.
        let q =
            if i % 4 == 0 { w.units[rng.random_range(0..w.units.len())].1 } else { query_point(&mut rng, i) };
        let mem = w.index.nearest(&q, 8, &[], AGE, w.now);
        let pg = postgis_knn(&w.pool, q, 8).await;
        assert_eq!(mem.len(), 8);
        assert_eq!(pg.len(), 8);
        for (k, (m, (pg_id, pg_d))) in mem.iter().zip(&pg).enumerate() {
            let mem_d = postgis_distance(&w.pool, q, m.unit.as_str()).await;
            assert!((m.distance_m - mem_d).abs() <= 1e-6 * mem_d + 1e-3, "query {i} rank {k}");
            if m.unit.as_str() != pg_id {
                assert!(
                    tie(mem_d, *pg_d),
                    "query {i} {q:?} rank {k}: index {} at {mem_d} m, PostGIS {pg_id} at {pg_d} m",
                    m.unit
                );
                ties += 1;
            }
        }
        // Same units overall, except where the 8th place is a tie with a 9th.
        let mut a: Vec<&str> = mem.iter().map(|m| m.unit.as_str()).collect();
        let mut b: Vec<&str> = pg.iter().map(|p| p.0.as_str()).collect();
        a.sort();
        b.sort();
        if a != b {
            assert!(tie(mem[7].distance_m, pg[7].1), "query {i}: different sets {a:?} vs {b:?}");
        }
    }
    eprintln!("8 nearest: {ties} rank positions differ only by ties");
}

/// The check itself must catch a wrong answer: a unit left out of the index is reported.
#[actix_rt::test]
async fn a_unit_missing_from_the_index_is_caught() {
    let mut w = world(11).await;
    let q = w.units[100].1.offset(3.0, 0.0);
    let pg = postgis_knn(&w.pool, q, 1).await;
    // Take PostGIS's answer out of the in-memory index (and its twin, if it has one).
    for (id, p) in &w.units {
        if p.distance_m(&q) <= pg[0].1 + 1.0 {
            w.index.set_eligible(id, false);
        }
    }
    let mem = &w.index.nearest(&q, 1, &[], AGE, w.now)[0];
    let mem_d = postgis_distance(&w.pool, q, mem.unit.as_str()).await;
    assert_ne!(mem.unit.as_str(), pg[0].0);
    assert!(!tie(mem_d, pg[0].1), "a genuinely wrong answer is not a tie: {mem_d} vs {}", pg[0].1);
}
