//! Devices and sites in a real PostGIS: the GeoJSON import (all or nothing, with the bad
//! feature named), `load` giving back exactly what was imported, and `sync` auditing only
//! what changed.

mod common;

use std::time::Instant;

use kuzet::store::devices::ImportError;
use kuzet::store::{self, devices};
use kuzet_actors::geo::GeoPoint;
use kuzet_actors::ids::{ButtonId, SiteId, UnitId};
use kuzet_actors::spec::{ButtonSpec, Devices, SiteKind, SiteSpec, UnitSpec};
use serde_json::{json, Value};
use sqlx::postgres::PgPool;

const GOOD: &str = include_str!("fixtures/devices/good.geojson");
const BAD_AT_3: &str = include_str!("fixtures/devices/bad-feature-3.geojson");

async fn pool() -> PgPool {
    let url = common::fresh_database().await;
    store::connect(&url).await.expect("schema applies")
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}

async fn rows(pool: &PgPool) -> (i64, i64) {
    (count(pool, "SELECT count(*) FROM sites").await, count(pool, "SELECT count(*) FROM devices").await)
}

async fn audit_rows(pool: &PgPool) -> i64 {
    count(pool, "SELECT count(*) FROM audit_log").await
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

fn feature(props: Value, geometry: Value) -> Value {
    json!({"type": "Feature", "properties": props, "geometry": geometry})
}

fn point(lon: f64, lat: f64) -> Value {
    json!({"type": "Point", "coordinates": [lon, lat]})
}

fn site(id: &str) -> Value {
    feature(json!({"kind": "site", "id": id, "name": "A school", "site_kind": "school"}), point(76.9, 43.24))
}

fn button(id: &str, site: &str) -> Value {
    feature(json!({"kind": "button", "id": id, "site": site, "room": "1"}), Value::Null)
}

fn unit(id: &str) -> Value {
    feature(json!({"kind": "unit", "id": id, "callsign": id.to_uppercase()}), point(76.91, 43.25))
}

fn collection(features: Vec<Value>) -> String {
    json!({"type": "FeatureCollection", "features": features}).to_string()
}

#[actix_rt::test]
async fn a_good_file_imports_and_loads_back_exactly() {
    let pool = pool().await;
    let report = devices::import_geojson(&pool, GOOD, "import:good.geojson", false).await.expect("imports");
    assert_eq!(
        (report.features, report.sites, report.buttons, report.units, report.cameras),
        (9, 3, 3, 2, 1)
    );
    assert_eq!((report.new, report.updated), (9, 0));
    // 9 per-entry entries and the devices.import summary.
    assert_eq!(report.audit_entries, 10);
    assert_eq!(audit_rows(&pool).await, 10);

    let d = devices::load(&pool).await.expect("loads");
    let site_ids: Vec<&str> = d.sites.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(site_ids, ["police-1", "school-1", "school-2"]);
    let s1 = &d.sites[1];
    assert_eq!((s1.name.as_str(), s1.kind), ("School No. 1", SiteKind::School));
    assert!(close(s1.location.lat(), 43.2389) && close(s1.location.lon(), 76.8897), "{:?}", s1.location);
    let buttons: Vec<(&str, Option<&str>)> =
        s1.buttons.iter().map(|b| (b.id.as_str(), b.room.as_deref())).collect();
    assert_eq!(buttons, [("btn-a", Some("12")), ("btn-b", None)]);
    assert!(s1.buttons.iter().all(|b| b.password.is_none()));
    let police = &d.sites[0];
    assert_eq!(police.kind, SiteKind::PoliceStation);
    assert!(police.buttons.is_empty());
    assert!(close(police.location.lat(), 43.23) && close(police.location.lon(), 76.91));
    // The polygon site: its location is a point on its surface, its area the polygon.
    let s2 = &d.sites[2];
    assert_eq!(s2.name, "Gymnasium No. 2");
    assert!((43.25..=43.252).contains(&s2.location.lat()), "{:?}", s2.location);
    assert!((76.9..=76.902).contains(&s2.location.lon()), "{:?}", s2.location);
    let area_ok: bool = sqlx::query_scalar(
        "SELECT ST_Equals(area::geometry, ST_GeomFromText('POLYGON((76.9 43.25,76.902 43.25,76.902 43.252,76.9 43.252,76.9 43.25))', 4326)) \
         FROM sites WHERE id = 'school-2'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(area_ok);
    assert_eq!(
        s2.buttons.iter().map(|b| (b.id.as_str(), b.room.as_deref())).collect::<Vec<_>>(),
        [("btn-c", Some("Gym"))]
    );
    let units: Vec<(&str, &str)> = d.units.iter().map(|u| (u.id.as_str(), u.callsign.as_str())).collect();
    assert_eq!(units, [("unit-1", "P-101"), ("unit-2", "P-102")]);

    // Cameras and positions are not part of `Devices`: read them directly.
    let cam: (String, Option<String>, bool, f64, f64) = sqlx::query_as(
        "SELECT kind, site_id, custodial, ST_Y(position::geometry), ST_X(position::geometry) FROM devices WHERE id = 'cam-1'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((cam.0.as_str(), cam.1.as_deref(), cam.2), ("camera", Some("police-1"), true));
    assert!(close(cam.3, 43.2301) && close(cam.4, 76.9101));
    let u1: (f64, f64) = sqlx::query_as(
        "SELECT ST_Y(position::geometry), ST_X(position::geometry) FROM devices WHERE id = 'unit-1'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(close(u1.0, 43.24) && close(u1.1, 76.88));
    let no_pos = count(&pool, "SELECT count(*) FROM devices WHERE position IS NULL").await;
    assert_eq!(no_pos, 3, "btn-b, btn-c and unit-2 have no geometry");

    // The audit: one entry per row with its values, and the summary with the file's hash.
    let (action, details): (String, Value) =
        sqlx::query_as("SELECT action, details FROM audit_log WHERE subject = 'cam-1'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(action, "device.register");
    assert_eq!(details["custodial"], json!(true));
    assert_eq!(details["site"], json!("police-1"));
    let summary: Value = sqlx::query_scalar("SELECT details FROM audit_log WHERE action = 'devices.import'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(summary["sha256"], json!(report.sha256));
    assert_eq!(summary["features"], json!(9));
    assert_eq!(report.sha256.len(), 64);
    assert_eq!(store::audit::verify(&pool).await.unwrap().first_break, None);
}

#[actix_rt::test]
async fn a_reimport_updates_what_changed() {
    let pool = pool().await;
    devices::import_geojson(&pool, GOOD, "import:good.geojson", false).await.expect("imports");
    let changed = GOOD.replace("\"room\": \"12\"", "\"room\": \"14\"");
    assert_ne!(changed, GOOD);
    let report =
        devices::import_geojson(&pool, &changed, "import:good.geojson", false).await.expect("re-imports");
    assert_eq!((report.new, report.updated), (0, 9));
    let d = devices::load(&pool).await.unwrap();
    let a = d.sites.iter().flat_map(|s| &s.buttons).find(|b| b.id.as_str() == "btn-a").unwrap();
    assert_eq!(a.room.as_deref(), Some("14"));
    assert_eq!(rows(&pool).await, (3, 6));
}

#[actix_rt::test]
async fn a_device_may_name_a_site_already_in_the_database() {
    let pool = pool().await;
    devices::import_geojson(&pool, GOOD, "import:good.geojson", false).await.unwrap();
    let more = collection(vec![button("btn-z", "school-2")]);
    devices::import_geojson(&pool, &more, "import:more.geojson", false)
        .await
        .expect("site found in the database");
    let d = devices::load(&pool).await.unwrap();
    let s2 = d.sites.iter().find(|s| s.id.as_str() == "school-2").unwrap();
    assert_eq!(s2.buttons.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(), ["btn-c", "btn-z"]);
}

/// Malformed files: the error names the feature and the reason, and nothing is written.
#[actix_rt::test]
async fn a_malformed_file_is_refused_whole_and_the_error_names_the_feature() {
    let pool = pool().await;
    let open_ring = json!({"type": "Polygon", "coordinates": [[[76.9, 43.25], [76.91, 43.25], [76.91, 43.26], [76.9, 43.26]]]});
    let short_ring =
        json!({"type": "Polygon", "coordinates": [[[76.9, 43.25], [76.91, 43.25], [76.9, 43.25]]]});
    let bowtie = json!({"type": "Polygon", "coordinates": [[[76.9, 43.25], [76.91, 43.26], [76.91, 43.25], [76.9, 43.26], [76.9, 43.25]]]});
    let polygon_site =
        |g: Value| feature(json!({"kind": "site", "id": "school-p", "name": "P", "site_kind": "school"}), g);
    let cases: Vec<(&str, String, Option<usize>, &str)> = vec![
        ("not JSON", "{\"type\": \"FeatureCollection\", \"features\": [".into(), None, "not valid JSON"),
        ("bare NaN", "{\"type\": \"FeatureCollection\", \"features\": [NaN]}".into(), None, "not valid JSON"),
        ("not a FeatureCollection", site("school-1").to_string(), None, "not a GeoJSON FeatureCollection"),
        ("an array", "[]".into(), None, "not a GeoJSON FeatureCollection"),
        ("no features", json!({"type": "FeatureCollection"}).to_string(), None, "\"features\" array"),
        ("feature not an object", collection(vec![site("school-1"), json!(7)]), Some(1), "must be an object"),
        (
            "feature without kind",
            collection(vec![feature(json!({"id": "x-1"}), Value::Null)]),
            Some(0),
            "property \"kind\" is missing",
        ),
        (
            "unknown kind",
            collection(vec![feature(json!({"kind": "drone", "id": "x-1"}), Value::Null)]),
            Some(0),
            "unknown kind \"drone\"",
        ),
        (
            "bad id",
            collection(vec![site("school-1"), button("Btn_1", "school-1")]),
            Some(1),
            "\"Btn_1\" is not a valid id",
        ),
        (
            "ill-typed property",
            collection(vec![feature(json!({"kind": "unit", "id": "u-1", "callsign": 17}), Value::Null)]),
            Some(0),
            "property \"callsign\" must be a string",
        ),
        (
            "custodial not a bool",
            collection(vec![feature(
                json!({"kind": "camera", "id": "c-1", "custodial": "yes"}),
                point(76.9, 43.2),
            )]),
            Some(0),
            "\"custodial\" must be true or false",
        ),
        (
            "out-of-range coordinate",
            collection(vec![
                site("school-1"),
                feature(json!({"kind": "unit", "id": "u-1", "callsign": "U"}), point(200.0, 10.0)),
            ]),
            Some(1),
            "coordinates [200.0, 10.0] are out of range (lon -180..180, lat -90..90)",
        ),
        (
            "latitude out of range",
            collection(vec![feature(
                json!({"kind": "unit", "id": "u-1", "callsign": "U"}),
                point(10.0, -90.5),
            )]),
            Some(0),
            "are out of range",
        ),
        (
            "NaN as a string",
            collection(vec![feature(
                json!({"kind": "unit", "id": "u-1", "callsign": "U"}),
                json!({"type": "Point", "coordinates": ["NaN", 10.0]}),
            )]),
            Some(0),
            "coordinates must be numbers",
        ),
        (
            "polygon not closed",
            collection(vec![site("school-1"), polygon_site(open_ring)]),
            Some(1),
            "is not closed",
        ),
        ("ring too short", collection(vec![polygon_site(short_ring)]), Some(0), "at least 4 are needed"),
        (
            "self-intersecting polygon",
            collection(vec![site("school-1"), polygon_site(bowtie)]),
            Some(1),
            "Polygon is not valid",
        ),
        (
            "wrong geometry type",
            collection(vec![feature(
                json!({"kind": "site", "id": "s-1", "name": "S", "site_kind": "school"}),
                json!({"type": "LineString", "coordinates": [[76.9, 43.2], [76.91, 43.2]]}),
            )]),
            Some(0),
            "unsupported geometry type \"LineString\"",
        ),
        (
            "camera without a position",
            collection(vec![feature(json!({"kind": "camera", "id": "c-1"}), Value::Null)]),
            Some(0),
            "needs a Point geometry",
        ),
        (
            "bad site kind",
            collection(vec![feature(
                json!({"kind": "site", "id": "s-1", "name": "S", "site_kind": "mall"}),
                point(76.9, 43.2),
            )]),
            Some(0),
            "site_kind \"mall\"",
        ),
        (
            "button naming an unknown site",
            collection(vec![site("school-1"), button("btn-1", "school-1"), button("btn-2", "school-x")]),
            Some(2),
            "site \"school-x\" is neither in the file nor in the database",
        ),
        (
            "duplicate id",
            collection(vec![site("school-1"), unit("u-1"), button("u-1", "school-1")]),
            Some(2),
            "device id \"u-1\" is already used by feature 1",
        ),
        (
            "bad feature after three good ones",
            BAD_AT_3.into(),
            Some(3),
            "coordinates [200.0, 10.0] are out of range",
        ),
    ];
    for (name, text, index, reason) in cases {
        let err = devices::import_geojson(&pool, &text, "import:bad.geojson", false).await.expect_err(name);
        match (&err, index) {
            (ImportError::Feature { index: got, reason: why }, Some(want)) => {
                assert_eq!(*got, want, "{name}: {err}");
                assert!(why.contains(reason), "{name}: {err}");
                assert!(err.to_string().starts_with(&format!("feature {want}: ")), "{name}: {err}");
            }
            (ImportError::File(why), None) => assert!(why.contains(reason), "{name}: {err}"),
            _ => panic!("{name}: unexpected error {err:?}"),
        }
        assert_eq!(rows(&pool).await, (0, 0), "{name}: nothing may be written");
        assert_eq!(audit_rows(&pool).await, 0, "{name}: nothing may be audited");
    }
}

#[actix_rt::test]
async fn a_bad_file_leaves_an_earlier_import_untouched() {
    let pool = pool().await;
    devices::import_geojson(&pool, GOOD, "import:good.geojson", false).await.unwrap();
    let before = audit_rows(&pool).await;
    // A good update of btn-a followed by a bad feature: btn-a keeps its room.
    let text = collection(vec![
        feature(json!({"kind": "button", "id": "btn-a", "site": "school-1", "room": "99"}), Value::Null),
        feature(json!({"kind": "unit", "id": "unit-7", "callsign": "U"}), point(10.0, 95.0)),
    ]);
    let err = devices::import_geojson(&pool, &text, "import:bad.geojson", false).await.unwrap_err();
    assert!(matches!(err, ImportError::Feature { index: 1, .. }), "{err}");
    let room: Option<String> =
        sqlx::query_scalar("SELECT room FROM devices WHERE id = 'btn-a'").fetch_one(&pool).await.unwrap();
    assert_eq!(room.as_deref(), Some("12"));
    assert_eq!(rows(&pool).await, (3, 6));
    assert_eq!(audit_rows(&pool).await, before);
}

/// Above the per-entry limit the import writes in several chunks and audits one summary.
#[actix_rt::test]
async fn a_large_import_is_chunked_and_audited_once() {
    let pool = pool().await;
    let centre = GeoPoint::new(43.2389, 76.8897).unwrap();
    let mut features = Vec::new();
    for s in 0..200 {
        let p = centre.offset(s as f64 * 50.0, 0.0);
        features.push(feature(
            json!({"kind": "site", "id": format!("school-{s}"), "name": format!("School {s}"), "site_kind": "school"}),
            point(p.lon(), p.lat()),
        ));
        for b in 0..30 {
            features.push(button(&format!("btn-{s}-{b}"), &format!("school-{s}")));
        }
    }
    for u in 0..5_000 {
        let p = centre.offset(0.0, u as f64 * 3.0);
        features.push(feature(
            json!({"kind": "unit", "id": format!("unit-{u}"), "callsign": format!("P{u}")}),
            point(p.lon(), p.lat()),
        ));
    }
    let text = collection(features);
    let t = Instant::now();
    let report = devices::import_geojson(&pool, &text, "import:big.geojson", false).await.expect("imports");
    eprintln!("imported {} features in {:?} (debug build)", report.features, t.elapsed());
    assert_eq!((report.sites, report.buttons, report.units, report.new), (200, 6_000, 5_000, 11_200));
    assert_eq!(report.audit_entries, 1);
    assert_eq!(audit_rows(&pool).await, 1);
    assert_eq!(rows(&pool).await, (200, 11_000));
    let d = devices::load(&pool).await.unwrap();
    assert_eq!(d.sites.len(), 200);
    assert_eq!(d.sites.iter().map(|s| s.buttons.len()).sum::<usize>(), 6_000);
    assert_eq!(d.units.len(), 5_000);
}

fn registry(callsign_of_u2: &str) -> Devices {
    let b = |id: &str, room: Option<&str>| ButtonSpec {
        id: ButtonId::parse(id).unwrap(),
        room: room.map(str::to_owned),
        password: Some("secret".into()),
    };
    let u = |id: &str, callsign: &str| UnitSpec {
        id: UnitId::parse(id).unwrap(),
        callsign: callsign.into(),
        password: Some("secret".into()),
    };
    Devices {
        sites: vec![
            SiteSpec {
                id: SiteId::parse("school-1").unwrap(),
                name: "School No. 1".into(),
                kind: SiteKind::School,
                location: GeoPoint::new(43.2389, 76.8897).unwrap(),
                buttons: vec![b("btn-a", Some("12")), b("btn-b", None)],
            },
            SiteSpec {
                id: SiteId::parse("prison-1").unwrap(),
                name: "Detention Centre".into(),
                kind: SiteKind::Prison,
                location: GeoPoint::new(43.3, 76.95).unwrap(),
                buttons: vec![],
            },
        ],
        units: vec![u("unit-1", "P-101"), u("unit-2", callsign_of_u2)],
        cameras: Vec::new(),
    }
}

#[actix_rt::test]
async fn sync_audits_only_what_is_new_or_changed() {
    let pool = pool().await;
    // A camera from an import: sync leaves rows that are not in the registry file alone.
    let cam = collection(vec![feature(json!({"kind": "camera", "id": "cam-1"}), point(76.9, 43.2))]);
    devices::import_geojson(&pool, &cam, "import:cam.geojson", false).await.unwrap();
    let base = audit_rows(&pool).await;

    let first = devices::sync(&pool, &registry("P-102"), "registry:devices.toml").await.expect("syncs");
    assert_eq!(first.sites, devices::Counts { new: 2, changed: 0, unchanged: 0 });
    assert_eq!(first.devices, devices::Counts { new: 4, changed: 0, unchanged: 0 });
    assert_eq!(first.audit_entries, 6);
    assert_eq!(audit_rows(&pool).await, base + 6);

    let second =
        devices::sync(&pool, &registry("P-102"), "registry:devices.toml").await.expect("syncs again");
    assert_eq!(second.sites, devices::Counts { new: 0, changed: 0, unchanged: 2 });
    assert_eq!(second.devices, devices::Counts { new: 0, changed: 0, unchanged: 4 });
    assert_eq!(second.audit_entries, 0);
    assert_eq!(audit_rows(&pool).await, base + 6, "an unchanged file audits nothing");

    let third =
        devices::sync(&pool, &registry("P-222"), "registry:devices.toml").await.expect("syncs a change");
    assert_eq!(third.devices, devices::Counts { new: 0, changed: 1, unchanged: 3 });
    assert_eq!(third.sites.unchanged, 2);
    assert_eq!(audit_rows(&pool).await, base + 7, "one changed callsign, one entry");
    let (action, subject, details): (String, String, Value) =
        sqlx::query_as("SELECT action, subject, details FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((action.as_str(), subject.as_str()), ("device.register", "unit-2"));
    assert_eq!(details["callsign"], json!("P-222"));
    assert_eq!(details["created"], json!(false));

    let d = devices::load(&pool).await.unwrap();
    assert_eq!(d.units.iter().map(|u| u.callsign.as_str()).collect::<Vec<_>>(), ["P-101", "P-222"]);
    assert!(d.units.iter().all(|u| u.password.is_none()), "passwords are not stored");
    assert_eq!(d.sites.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["prison-1", "school-1"]);
    assert_eq!(count(&pool, "SELECT count(*) FROM devices WHERE id = 'cam-1'").await, 1);
    assert_eq!(store::audit::verify(&pool).await.unwrap().first_break, None);
}

#[actix_rt::test]
async fn generate_city_writes_a_loadable_city() {
    let pool = pool().await;
    devices::generate_city(&pool, 2_000, 7).await.expect("generates");
    let d = devices::load(&pool).await.expect("loads");
    let buttons: usize = d.sites.iter().map(|s| s.buttons.len()).sum();
    assert_eq!(d.sites.len(), 100);
    assert_eq!(buttons + d.units.len(), 2_000);
    assert_eq!(buttons, 1_200);
    d.validate().unwrap();
    // Deterministic: the same seed gives the same positions.
    let before: Vec<(String, f64)> =
        sqlx::query_as("SELECT id, ST_X(position::geometry) FROM devices ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    devices::generate_city(&pool, 2_000, 7).await.unwrap();
    let after: Vec<(String, f64)> =
        sqlx::query_as("SELECT id, ST_X(position::geometry) FROM devices ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(before, after);
}
