//! The query API over real HTTP (awc on loopback) against a real PostGIS: every filter, both
//! output formats, the timeline, unit tracks, sites by point, and every kind of bad input.

mod common;

use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use chrono::{DateTime, TimeDelta, Utc};
use kuzet::store;
use serde_json::{json, Value};
use sqlx::postgres::{PgPool, PgPoolOptions};
use uuid::Uuid;

/// The fixture's clock: every time is an offset from this.
fn t0() -> DateTime<Utc> {
    "2026-03-01T00:00:00Z".parse().unwrap()
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn incident_id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

struct Server {
    base: String,
    handle: ServerHandle,
}

impl Server {
    fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.base, path_and_query)
    }

    async fn stop(self) {
        self.handle.stop(true).await;
    }
}

async fn serve(pool: PgPool) -> Server {
    let (addr, handle) = kuzet::http::start(
        "127.0.0.1:0".parse().unwrap(),
        pool.clone(),
        None,
        &common::http_settings(false),
        None,
    )
    .await
    .expect("the query API starts");
    assert_ne!(addr.port(), 0, "the real bound port is returned");
    let base = format!("http://{addr}");
    let token = common::sign_in_as(&pool, &base, kuzet::auth::Role::Dispatcher).await;
    TOKENS.lock().unwrap().insert(base.clone(), token);
    Server { base, handle }
}

/// The dispatcher's session token for each server (by its base URL): the tests read as one.
static TOKENS: std::sync::Mutex<std::collections::BTreeMap<String, String>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

fn bearer(url: &str) -> String {
    let tokens = TOKENS.lock().unwrap();
    let token = tokens.iter().find(|(base, _)| url.starts_with(base.as_str())).map(|(_, t)| t.clone());
    format!("Bearer {}", token.expect("a signed-in server"))
}

/// A fresh database with the fixture, and the API on a free loopback port.
async fn setup() -> Server {
    let url = common::fresh_database().await;
    let pool = store::connect(&url).await.expect("schema applies");
    fixture(&pool).await;
    serve(pool).await
}

/// Sites: `school-big` (lon 76.90..76.92, lat 43.20..43.22) with `school-small` (lon
/// 76.905..76.910, lat 43.205..43.210) inside it, `station-far` elsewhere, `prison-noarea`
/// without an area.
///
/// Incidents (n: opened at, state, where):
///   1: t0+1h closed     (43.2070, 76.9070) school-small
///   2: t0+2h dispatched (43.2150, 76.9150) school-big, with a snapshot
///   3: t0+3h cancelled  (43.3050, 77.0050) station-far
///   4: t0+4h en_route   (43.3000, 77.1000)
///   5: t0+5h uncovered  (43.2075, 76.9075) escalated no_units_left, ~69 m from 1
///   6: t0+1d on_scene   (51.1000, 71.4000) Astana
async fn fixture(pool: &PgPool) {
    let sites = [
        ("school-big", "School No. 7", "school", 43.21, 76.91, Some((76.90, 43.20, 76.92, 43.22))),
        (
            "school-small",
            "Gymnasium No. 12",
            "school",
            43.2075,
            76.9075,
            Some((76.905, 43.205, 76.910, 43.210)),
        ),
        (
            "station-far",
            "Police Station 3",
            "police_station",
            43.305,
            77.005,
            Some((77.00, 43.30, 77.01, 43.31)),
        ),
        ("prison-noarea", "Pre-trial Centre", "prison", 43.207, 76.907, None),
    ];
    for (id, name, kind, lat, lon, area) in sites {
        let wkt = area.map(|(x0, y0, x1, y1)| {
            format!("SRID=4326;POLYGON(({x0} {y0}, {x1} {y0}, {x1} {y1}, {x0} {y1}, {x0} {y0}))")
        });
        sqlx::query(
            "INSERT INTO sites (id, name, kind, location, area) \
             VALUES ($1, $2, $3, ST_SetSRID(ST_MakePoint($5, $4), 4326)::geography, ST_GeogFromText($6))",
        )
        .bind(id)
        .bind(name)
        .bind(kind)
        .bind(lat)
        .bind(lon)
        .bind(wkt)
        .execute(pool)
        .await
        .expect("site inserted");
    }

    let h = TimeDelta::hours;
    #[allow(clippy::type_complexity)]
    let incidents: [(u128, TimeDelta, &str, f64, f64, Option<&str>, Option<&str>); 6] = [
        (1, h(1), "closed", 43.2070, 76.9070, Some("school-small"), None),
        (2, h(2), "dispatched", 43.2150, 76.9150, Some("school-big"), None),
        (3, h(3), "cancelled", 43.3050, 77.0050, Some("station-far"), None),
        (4, h(4), "en_route", 43.3000, 77.1000, None, None),
        (5, h(5), "uncovered", 43.2075, 76.9075, Some("school-small"), Some("no_units_left")),
        (6, TimeDelta::days(1), "on_scene", 51.1000, 71.4000, None, None),
    ];
    for (n, opened, state, lat, lon, site, escalated) in incidents {
        let opened_at = t0() + opened;
        let closed_at = ["closed", "cancelled"].contains(&state).then(|| opened_at + TimeDelta::minutes(30));
        let snapshot =
            json!({"id": incident_id(n), "state": state, "units": [format!("unit-{n}")], "n": n as u64});
        sqlx::query(
            "INSERT INTO incidents (id, kind, priority, state, site_id, subject_kind, subject_id, location, opened_at, \
                                    closed_at, escalated, snapshot, updated_at) \
             VALUES ($1, 'school_alarm', $2, $3, $4, CASE WHEN $4 IS NULL THEN NULL ELSE 'site' END, $4, \
                     ST_SetSRID(ST_MakePoint($6, $5), 4326)::geography, $7, $8, $9, $10, $7)",
        )
        .bind(incident_id(n))
        .bind(n as i16)
        .bind(state)
        .bind(site)
        .bind(lat)
        .bind(lon)
        .bind(opened_at)
        .bind(closed_at)
        .bind(escalated)
        .bind(&snapshot)
        .execute(pool)
        .await
        .expect("incident inserted");
    }

    // Incident 1's timeline, written out of seq order (as a replayed batch could be).
    // (seq, t_us, event, unit_id, button_id, detail)
    type EventRow =
        (i32, i64, &'static str, Option<&'static str>, Option<&'static str>, Option<&'static str>);
    let events: [EventRow; 4] = [
        (2, 9_000_000, "accepted", Some("unit-7"), None, None),
        (0, 0, "raised", None, Some("btn-a"), Some("room 12")),
        (3, 600_000_000, "closed", Some("unit-7"), None, Some("false alarm")),
        (1, 1_500, "offered", Some("unit-7"), None, None),
    ];
    for (seq, t_us, event, unit, button, detail) in events {
        sqlx::query(
            "INSERT INTO incident_events (incident_id, seq, at, t_us, event, unit_id, button_id, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(incident_id(1))
        .bind(seq)
        .bind(t0() + TimeDelta::hours(1) + TimeDelta::microseconds(t_us))
        .bind(t_us)
        .bind(event)
        .bind(unit)
        .bind(button)
        .bind(detail)
        .execute(pool)
        .await
        .expect("event inserted");
    }

    // unit-7: 50 fixes 10 s apart from t0, moving north-east; unit-8 in the same minutes.
    for (unit, lat0) in [("unit-7", 43.2), ("unit-8", 43.5)] {
        sqlx::query(
            "INSERT INTO unit_positions (unit_id, at, received_at, position, speed_mps, heading_deg) \
             SELECT $1, $2 + k * interval '10 seconds', $2 + k * interval '10 seconds' + interval '150 ms', \
                    ST_SetSRID(ST_MakePoint(76.9 + k * 0.0002, $3 + k * 0.0001), 4326)::geography, k::real, 45 \
             FROM generate_series(0, 49) AS k",
        )
        .bind(unit)
        .bind(t0())
        .bind(lat0)
        .execute(pool)
        .await
        .expect("track inserted");
    }
}

struct Reply {
    status: StatusCode,
    content_type: String,
    body: Value,
}

async fn get_with(url: &str, accept: Option<&str>) -> Reply {
    let client = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
    let mut req = client.get(url).insert_header(("Authorization", bearer(url)));
    if let Some(a) = accept {
        req = req.insert_header(("Accept", a));
    }
    let mut resp = req.send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status();
    let content_type =
        resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let bytes = resp.body().limit(256 << 20).await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!("GET {url}: {status} body is not JSON ({e}): {}", String::from_utf8_lossy(&bytes))
    });
    Reply { status, content_type, body }
}

async fn get(url: &str) -> Reply {
    get_with(url, None).await
}

/// GET that must succeed with plain JSON.
async fn ok(s: &Server, path: &str) -> Value {
    let r = get(&s.url(path)).await;
    assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
    assert!(r.content_type.starts_with("application/json"), "{path}: {}", r.content_type);
    r.body
}

/// The incident numbers of a JSON list, in order.
fn numbers(list: &Value) -> Vec<u128> {
    list.as_array()
        .expect("a JSON array")
        .iter()
        .map(|i| Uuid::parse_str(i["id"].as_str().expect("id")).unwrap().as_u128())
        .collect()
}

async fn incident_numbers(s: &Server, query: &str) -> Vec<u128> {
    numbers(&ok(s, &format!("/api/v1/incidents{query}")).await)
}

#[actix_rt::test]
async fn each_incident_filter_alone_returns_exactly_the_expected_incidents_newest_first() {
    let s = setup().await;
    let at = |d: TimeDelta| iso(t0() + d);
    let h = TimeDelta::hours;
    let cases: Vec<(String, Vec<u128>)> = vec![
        (String::new(), vec![6, 5, 4, 3, 2, 1]),
        // from and to are inclusive.
        (format!("?from={}", at(h(2))), vec![6, 5, 4, 3, 2]),
        (format!("?to={}", at(h(3))), vec![3, 2, 1]),
        (format!("?to={}", at(h(1) - TimeDelta::seconds(1))), vec![]),
        // A '+' offset, percent-encoded and as the space a raw '+' decodes to.
        ("?from=2026-03-01T07:00:00%2B05:00".into(), vec![6, 5, 4, 3, 2]),
        ("?from=2026-03-01T07:00:00+05:00".into(), vec![6, 5, 4, 3, 2]),
        ("?state=open".into(), vec![6, 5, 4, 2]),
        ("?state=closed".into(), vec![3, 1]),
        ("?state=cancelled".into(), vec![3]),
        ("?state=en_route,uncovered".into(), vec![5, 4]),
        ("?state=closed&state=on_scene".into(), vec![6, 3, 1]),
        ("?state=dispatching".into(), vec![]),
        // Edges included: incident 2 is inside, 1 and 5 too; 3 is just outside.
        ("?bbox=76.9,43.2,76.92,43.22".into(), vec![5, 2, 1]),
        ("?bbox=76.907,43.207,76.907,43.207".into(), vec![1]),
        ("?bbox=70,50,72,52".into(), vec![6]),
        // 1 and 5 are ~69 m apart.
        ("?near=43.207,76.907&radius_m=50".into(), vec![1]),
        ("?near=43.207,76.907&radius_m=100".into(), vec![5, 1]),
        ("?near=43.207,76.907&radius_m=0".into(), vec![1]),
        ("?near=51.1,71.4&radius_m=100000".into(), vec![6]),
        ("?limit=2".into(), vec![6, 5]),
        ("?limit=1000".into(), vec![6, 5, 4, 3, 2, 1]),
    ];
    for (query, expected) in cases {
        assert_eq!(incident_numbers(&s, &query).await, expected, "{query}");
    }
    s.stop().await;
}

#[actix_rt::test]
async fn combined_incident_filters_intersect() {
    let s = setup().await;
    let at = |d: TimeDelta| iso(t0() + d);
    let h = TimeDelta::hours;
    let cases: Vec<(String, Vec<u128>)> = vec![
        (format!("?from={}&to={}", at(h(2)), at(h(4))), vec![4, 3, 2]),
        ("?state=open&bbox=76.9,43.2,76.92,43.22".into(), vec![5, 2]),
        (format!("?from={}&near=43.207,76.907&radius_m=100", at(h(2))), vec![5]),
        ("?state=closed&near=43.207,76.907&radius_m=100".into(), vec![1]),
        (format!("?state=open&from={}&to={}&limit=1", at(h(1)), at(h(5))), vec![5]),
        (format!("?state=open&from={}&to={}&bbox=76.9,43.2,77.2,43.4", at(h(1)), at(h(5))), vec![5, 4, 2]),
        ("?state=closed&bbox=70,50,72,52".into(), vec![]),
    ];
    for (query, expected) in cases {
        assert_eq!(incident_numbers(&s, &query).await, expected, "{query}");
    }
    s.stop().await;
}

#[actix_rt::test]
async fn incidents_as_json_carry_every_field_with_lat_and_lon_named() {
    let s = setup().await;
    let list = ok(&s, "/api/v1/incidents?state=uncovered").await;
    assert_eq!(
        list,
        json!([{
            "id": incident_id(5),
            "kind": "school_alarm",
            "priority": 5,
            "state": "uncovered",
            "site_id": "school-small",
            "subject_kind": "site",
            "subject_id": "school-small",
            "lat": 43.2075,
            "lon": 76.9075,
            "opened_at": "2026-03-01T05:00:00Z",
            "closed_at": null,
            "escalated": "no_units_left",
        }])
    );
    let closed = ok(&s, "/api/v1/incidents?state=closed&limit=1").await;
    assert_eq!(closed[0]["closed_at"], "2026-03-01T03:30:00Z");
    s.stop().await;
}

fn check_feature_collection(body: &Value, expected: &[u128]) {
    assert_eq!(body["type"], "FeatureCollection");
    let features = body["features"].as_array().expect("features");
    let ids: Vec<u128> =
        features.iter().map(|f| Uuid::parse_str(f["id"].as_str().unwrap()).unwrap().as_u128()).collect();
    assert_eq!(ids, expected);
    for f in features {
        assert_eq!(f["type"], "Feature");
        assert_eq!(f["geometry"]["type"], "Point");
        let p = &f["properties"];
        // GeoJSON order: [lon, lat].
        assert_eq!(f["geometry"]["coordinates"], json!([p["lon"], p["lat"]]));
        assert_eq!(p["id"], f["id"]);
        for field in [
            "kind",
            "priority",
            "state",
            "site_id",
            "subject_kind",
            "subject_id",
            "opened_at",
            "closed_at",
            "escalated",
        ] {
            assert!(p.get(field).is_some(), "property {field} missing: {p}");
        }
    }
}

#[actix_rt::test]
async fn incidents_as_geojson_by_format_or_accept_header() {
    let s = setup().await;
    let url = s.url("/api/v1/incidents?state=on_scene,uncovered&format=geojson");
    let r = get(&url).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_type, "application/geo+json");
    check_feature_collection(&r.body, &[6, 5]);
    assert_eq!(r.body["features"][0]["geometry"]["coordinates"], json!([71.4, 51.1]));
    assert_eq!(r.body["features"][1]["geometry"]["coordinates"], json!([76.9075, 43.2075]));
    assert_eq!(r.body["features"][1]["properties"]["escalated"], "no_units_left");

    let url = s.url("/api/v1/incidents?bbox=76.9,43.2,76.92,43.22");
    for accept in ["application/geo+json", "application/json;q=0.5, application/geo+json"] {
        let r = get_with(&url, Some(accept)).await;
        assert_eq!(r.content_type, "application/geo+json", "{accept}");
        check_feature_collection(&r.body, &[5, 2, 1]);
    }
    // Not GeoJSON: q=0, another type, or format=json over the header.
    for (url, accept) in [
        (url.clone(), "application/geo+json;q=0"),
        (url.clone(), "application/json"),
        (format!("{url}&format=json"), "application/geo+json"),
    ] {
        let r = get_with(&url, Some(accept)).await;
        assert!(r.content_type.starts_with("application/json"), "{url} {accept}: {}", r.content_type);
        assert_eq!(numbers(&r.body), vec![5, 2, 1]);
    }
    // An empty result is still a FeatureCollection.
    let r = get(&s.url("/api/v1/incidents?state=dispatching&format=geojson")).await;
    assert_eq!(r.body, json!({"type": "FeatureCollection", "features": []}));
    s.stop().await;
}

#[actix_rt::test]
async fn one_incident_with_its_snapshot_and_404_when_unknown() {
    let s = setup().await;
    let v = ok(&s, &format!("/api/v1/incidents/{}", incident_id(2))).await;
    assert_eq!(v["id"], json!(incident_id(2)));
    assert_eq!(v["state"], "dispatched");
    assert_eq!(v["site_id"], "school-big");
    assert_eq!((v["lat"].as_f64(), v["lon"].as_f64()), (Some(43.215), Some(76.915)));
    assert_eq!(v["opened_at"], "2026-03-01T02:00:00Z");
    assert_eq!(v["updated_at"], "2026-03-01T02:00:00Z");
    assert_eq!(
        v["snapshot"],
        json!({"id": incident_id(2), "state": "dispatched", "units": ["unit-2"], "n": 2})
    );

    let r = get(&s.url(&format!("/api/v1/incidents/{}?format=geojson", incident_id(2)))).await;
    assert_eq!(r.content_type, "application/geo+json");
    assert_eq!(r.body["geometry"], json!({"type": "Point", "coordinates": [76.915, 43.215]}));
    assert_eq!(r.body["properties"]["snapshot"]["units"], json!(["unit-2"]));

    for path in [
        format!("/api/v1/incidents/{}", Uuid::new_v4()),
        format!("/api/v1/incidents/{}/timeline", Uuid::new_v4()),
    ] {
        let r = get(&s.url(&path)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert!(r.body["error"].as_str().unwrap().contains("no incident"), "{path}: {}", r.body);
    }
    let r = get(&s.url("/api/v1/nothing-here")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body["error"].is_string());
    // Read-only: other methods are refused.
    for path in ["/api/v1/incidents".to_owned(), format!("/api/v1/incidents/{}", incident_id(2))] {
        let mut resp = awc::Client::default()
            .delete(s.url(&path))
            .insert_header(("Authorization", bearer(&s.url(&path))))
            .send()
            .await
            .expect("DELETE answered");
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
        let body: Value = resp.json().await.expect("a JSON error");
        assert!(body["error"].as_str().unwrap().contains("read-only"), "{body}");
    }
    s.stop().await;
}

#[actix_rt::test]
async fn the_timeline_is_ordered_by_seq_with_every_field() {
    let s = setup().await;
    let v = ok(&s, &format!("/api/v1/incidents/{}/timeline", incident_id(1))).await;
    let opened = t0() + TimeDelta::hours(1);
    assert_eq!(
        v,
        json!([
            {"seq": 0, "at": opened, "t_us": 0, "event": "raised", "unit_id": null, "button_id": "btn-a", "detail": "room 12"},
            {"seq": 1, "at": opened + TimeDelta::microseconds(1_500), "t_us": 1_500, "event": "offered",
             "unit_id": "unit-7", "button_id": null, "detail": null},
            {"seq": 2, "at": opened + TimeDelta::seconds(9), "t_us": 9_000_000, "event": "accepted",
             "unit_id": "unit-7", "button_id": null, "detail": null},
            {"seq": 3, "at": opened + TimeDelta::minutes(10), "t_us": 600_000_000, "event": "closed",
             "unit_id": "unit-7", "button_id": null, "detail": "false alarm"},
        ])
    );
    assert_eq!(v[1]["at"], "2026-03-01T01:00:00.001500Z");
    // A known incident without events: an empty timeline, not a 404.
    assert_eq!(ok(&s, &format!("/api/v1/incidents/{}/timeline", incident_id(3))).await, json!([]));
    s.stop().await;
}

#[actix_rt::test]
async fn a_track_holds_exactly_the_fixes_in_the_window_boundaries_included() {
    let s = setup().await;
    let at = |sec: i64| iso(t0() + TimeDelta::seconds(sec));
    // Fixes are at 0, 10, ..., 490 s: [100, 200] holds k = 10..=20, both ends included.
    let v = ok(&s, &format!("/api/v1/units/unit-7/track?from={}&to={}", at(100), at(200))).await;
    assert_eq!(v["unit_id"], "unit-7");
    assert_eq!(v["truncated"], false);
    assert_eq!(v["count"], 11);
    let points = v["points"].as_array().unwrap();
    let times: Vec<String> = points.iter().map(|p| p["at"].as_str().unwrap().to_owned()).collect();
    let expected: Vec<String> = (10..=20).map(|k| at(k * 10)).collect();
    assert_eq!(times, expected);
    for (p, k) in points.iter().zip(10..=20) {
        let k = k as f64;
        assert!((p["lat"].as_f64().unwrap() - (43.2 + k * 0.0001)).abs() < 1e-9, "{p}");
        assert!((p["lon"].as_f64().unwrap() - (76.9 + k * 0.0002)).abs() < 1e-9, "{p}");
        assert_eq!(p["speed_mps"].as_f64(), Some(k));
        assert_eq!(p["heading_deg"].as_f64(), Some(45.0));
    }
    assert_eq!(points[0]["received_at"], "2026-03-01T00:01:40.150Z");

    // Just inside the fixes on both sides: k = 11..=19.
    let v = ok(&s, &format!("/api/v1/units/unit-7/track?from={}&to={}", at(101), at(199))).await;
    assert_eq!(v["count"], 9);
    assert_eq!(v["points"][0]["at"], at(110));
    assert_eq!(v["points"][8]["at"], at(190));

    // GeoJSON: one LineString, [lon, lat], times alongside.
    let r =
        get(&s.url(&format!("/api/v1/units/unit-7/track?from={}&to={}&format=geojson", at(100), at(200))))
            .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_type, "application/geo+json");
    assert_eq!(r.body["type"], "Feature");
    assert_eq!(r.body["geometry"]["type"], "LineString");
    let coords = r.body["geometry"]["coordinates"].as_array().unwrap();
    assert_eq!(coords.len(), 11);
    let first = coords[0].as_array().unwrap();
    assert!(
        (first[0].as_f64().unwrap() - 76.902).abs() < 1e-9
            && (first[1].as_f64().unwrap() - 43.201).abs() < 1e-9
    );
    let times: Vec<String> = r.body["properties"]["times"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(times, expected);
    assert_eq!(r.body["properties"]["truncated"], false);
    assert_eq!(r.body["properties"]["unit_id"], "unit-7");

    // Accept header, one fix: a Point; no fix: no geometry.
    let one = get_with(
        &s.url(&format!("/api/v1/units/unit-7/track?from={}&to={}", at(100), at(105))),
        Some("application/geo+json"),
    )
    .await;
    assert_eq!(
        one.body["geometry"],
        json!({"type": "Point", "coordinates": one.body["geometry"]["coordinates"]})
    );
    assert_eq!(one.body["properties"]["times"], json!([at(100)]));
    let none =
        get(&s.url(&format!("/api/v1/units/unit-7/track?from={}&to={}&format=geojson", at(1000), at(2000))))
            .await;
    assert_eq!(none.body["geometry"], Value::Null);
    assert_eq!(none.body["properties"]["count"], 0);

    // Other units' fixes stay out; a unit with none has an empty track.
    let v = ok(&s, &format!("/api/v1/units/unit-8/track?from={}&to={}", at(0), at(490))).await;
    assert_eq!(v["count"], 50);
    assert!(v["points"].as_array().unwrap().iter().all(|p| p["lat"].as_f64().unwrap() >= 43.5));
    let v = ok(&s, &format!("/api/v1/units/unit-9/track?from={}&to={}", at(0), at(490))).await;
    assert_eq!((v["count"].as_u64(), v["points"].as_array().map(Vec::len)), (Some(0), Some(0)));
    s.stop().await;
}

#[actix_rt::test]
async fn a_track_of_more_than_100k_fixes_is_cut_and_says_so() {
    let url = common::fresh_database().await;
    let pool = store::connect(&url).await.expect("schema applies");
    sqlx::query(
        "INSERT INTO unit_positions (unit_id, at, received_at, position) \
         SELECT 'unit-busy', $1 + k * interval '1 second', $1 + k * interval '1 second', \
                ST_SetSRID(ST_MakePoint(76.9, 43.2), 4326)::geography \
         FROM generate_series(0, 100004) AS k",
    )
    .bind(t0())
    .execute(&pool)
    .await
    .unwrap();
    let s = serve(pool).await;
    let path =
        format!("/api/v1/units/unit-busy/track?from={}&to={}", iso(t0()), iso(t0() + TimeDelta::days(2)));
    let v = ok(&s, &path).await;
    assert_eq!(v["truncated"], true);
    assert_eq!(v["count"], 100_000);
    let points = v["points"].as_array().unwrap();
    assert_eq!(points.len(), 100_000);
    // The first 100k in time order are kept.
    assert_eq!(points[99_999]["at"], iso(t0() + TimeDelta::seconds(99_999)));
    let r = get(&s.url(&format!("{path}&format=geojson"))).await;
    assert_eq!(r.body["properties"]["truncated"], true);
    assert_eq!(r.body["geometry"]["coordinates"].as_array().unwrap().len(), 100_000);
    s.stop().await;
}

#[actix_rt::test]
async fn the_site_containing_a_point_inside_on_the_edge_and_outside() {
    let s = setup().await;
    let site = |lat: f64, lon: f64| s.url(&format!("/api/v1/sites/containing?lat={lat}&lon={lon}"));
    // Inside both schools: the smaller one.
    let r = get(&site(43.207, 76.907)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["id"], "school-small");
    assert_eq!(r.body["name"], "Gymnasium No. 12");
    assert_eq!(r.body["kind"], "school");
    assert_eq!(r.body["location"], json!({"lat": 43.2075, "lon": 76.9075}));
    assert_eq!(r.body["area"]["type"], "Polygon");
    assert_eq!(
        r.body["area"]["coordinates"],
        json!([[[76.905, 43.205], [76.91, 43.205], [76.91, 43.21], [76.905, 43.21], [76.905, 43.205]]])
    );
    assert!(r.body["area_m2"].as_f64().unwrap() > 0.0);
    // Inside the big one only.
    assert_eq!(get(&site(43.215, 76.915)).await.body["id"], "school-big");
    assert_eq!(get(&site(43.305, 77.005)).await.body["id"], "station-far");
    // On the edge (a meridian side, and a corner): covered.
    assert_eq!(get(&site(43.215, 76.90)).await.body["id"], "school-big");
    assert_eq!(get(&site(43.20, 76.90)).await.body["id"], "school-big");
    assert_eq!(get(&site(43.2075, 76.905)).await.body["id"], "school-small");
    // Outside every area (prison-noarea's point is no area): 404.
    for (lat, lon) in [(43.25, 76.95), (43.2075, 76.899), (-43.207, 76.907)] {
        let r = get(&site(lat, lon)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{lat},{lon}: {}", r.body);
        assert!(r.body["error"].as_str().unwrap().contains("no site"));
    }
    // GeoJSON: the area as the geometry.
    let r = get(&s.url("/api/v1/sites/containing?lat=43.215&lon=76.915&format=geojson")).await;
    assert_eq!(r.content_type, "application/geo+json");
    assert_eq!(r.body["type"], "Feature");
    assert_eq!(r.body["geometry"]["type"], "Polygon");
    assert_eq!(r.body["properties"]["id"], "school-big");
    s.stop().await;
}

#[actix_rt::test]
async fn bad_input_is_a_400_naming_the_parameter() {
    let s = setup().await;
    let day = |d: i64| iso(t0() + TimeDelta::days(d));
    let track = |q: &str| format!("/api/v1/units/unit-7/track?{q}");
    let window = format!("from={}&to={}", day(0), day(1));
    let cases: Vec<(String, &str)> = vec![
        ("/api/v1/incidents?from=yesterday".into(), "from"),
        ("/api/v1/incidents?from=2026-03-01".into(), "from"),
        ("/api/v1/incidents?to=2026-13-01T00:00:00Z".into(), "to"),
        (format!("/api/v1/incidents?from={}&to={}", day(2), day(1)), "to"),
        (format!("/api/v1/incidents?from={}&from={}", day(0), day(1)), "from"),
        ("/api/v1/incidents?state=closing".into(), "state"),
        ("/api/v1/incidents?state=".into(), "state"),
        ("/api/v1/incidents?state=open,,closed".into(), "state"),
        ("/api/v1/incidents?state=OPEN".into(), "state"),
        ("/api/v1/incidents?bbox=76.9,43.2,76.92".into(), "bbox"),
        ("/api/v1/incidents?bbox=NaN,43.2,76.92,43.22".into(), "bbox"),
        ("/api/v1/incidents?bbox=76.9,43.2,inf,43.22".into(), "bbox"),
        ("/api/v1/incidents?bbox=76.92,43.2,76.9,43.22".into(), "bbox"),
        ("/api/v1/incidents?bbox=76.9,43.22,76.92,43.2".into(), "bbox"),
        ("/api/v1/incidents?bbox=76.9,-91,76.92,43.2".into(), "bbox"),
        ("/api/v1/incidents?bbox=-181,43.2,76.92,43.22".into(), "bbox"),
        ("/api/v1/incidents?near=43.2,76.9".into(), "radius_m"),
        ("/api/v1/incidents?radius_m=100".into(), "near"),
        ("/api/v1/incidents?near=91,76.9&radius_m=100".into(), "near"),
        ("/api/v1/incidents?near=43.2,181&radius_m=100".into(), "near"),
        ("/api/v1/incidents?near=NaN,76.9&radius_m=100".into(), "near"),
        ("/api/v1/incidents?near=43.2,-inf&radius_m=100".into(), "near"),
        ("/api/v1/incidents?near=43.2&radius_m=100".into(), "near"),
        ("/api/v1/incidents?near=43.2,76.9,1&radius_m=100".into(), "near"),
        ("/api/v1/incidents?near=43.2,76.9&radius_m=-1".into(), "radius_m"),
        ("/api/v1/incidents?near=43.2,76.9&radius_m=100001".into(), "radius_m"),
        ("/api/v1/incidents?near=43.2,76.9&radius_m=1e400".into(), "radius_m"),
        ("/api/v1/incidents?near=43.2,76.9&radius_m=NaN".into(), "radius_m"),
        ("/api/v1/incidents?near=43.2,76.9&radius_m=100&bbox=76.9,43.2,76.92,43.22".into(), "bbox"),
        ("/api/v1/incidents?limit=0".into(), "limit"),
        ("/api/v1/incidents?limit=1001".into(), "limit"),
        ("/api/v1/incidents?limit=-5".into(), "limit"),
        ("/api/v1/incidents?limit=ten".into(), "limit"),
        ("/api/v1/incidents?limit=99999999999999999999".into(), "limit"),
        ("/api/v1/incidents?format=kml".into(), "format"),
        ("/api/v1/incidents?sort=asc".into(), "sort"),
        ("/api/v1/incidents?from_=2026-03-01T00:00:00Z".into(), "from_"),
        ("/api/v1/incidents/not-a-uuid".into(), "id"),
        ("/api/v1/incidents/1234".into(), "id"),
        (format!("/api/v1/incidents/{}?verbose=1", incident_id(1)), "verbose"),
        ("/api/v1/incidents/not-a-uuid/timeline".into(), "id"),
        (format!("/api/v1/incidents/{}/timeline?format=geojson", incident_id(1)), "format"),
        (format!("/api/v1/units/Unit-7/track?{window}"), "id"),
        (format!("/api/v1/units/-unit/track?{window}"), "id"),
        (format!("/api/v1/units/{}/track?{window}", "u".repeat(65)), "id"),
        (format!("/api/v1/units/unit%207/track?{window}"), "id"),
        (track(&format!("to={}", day(1))), "from"),
        (track(&format!("from={}", day(0))), "to"),
        (track(&format!("from=noon&to={}", day(1))), "from"),
        (track(&format!("from={}&to={}", day(1), day(1))), "to"),
        (track(&format!("from={}&to={}", day(1), day(0))), "to"),
        (
            track(&format!("from={}&to={}", day(0), iso(t0() + TimeDelta::days(7) + TimeDelta::seconds(1)))),
            "to",
        ),
        (track(&format!("{window}&limit=5")), "limit"),
        (track(&format!("{window}&format=csv")), "format"),
        ("/api/v1/sites/containing?lat=91&lon=76.9".into(), "lat"),
        ("/api/v1/sites/containing?lat=43.2&lon=-180.5".into(), "lon"),
        ("/api/v1/sites/containing?lat=NaN&lon=76.9".into(), "lat"),
        ("/api/v1/sites/containing?lat=43.2&lon=infinity".into(), "lon"),
        ("/api/v1/sites/containing?lat=north&lon=76.9".into(), "lat"),
        ("/api/v1/sites/containing?lon=76.9".into(), "lat"),
        ("/api/v1/sites/containing?lat=43.2".into(), "lon"),
        ("/api/v1/sites/containing?lat=43.2&lon=76.9&radius_m=5".into(), "radius_m"),
    ];
    for (path, parameter) in cases {
        let r = get(&s.url(&path)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.body);
        assert_eq!(r.body["parameter"], parameter, "{path}: {}", r.body);
        let error = r.body["error"].as_str().unwrap_or_else(|| panic!("{path}: no error text: {}", r.body));
        assert!(error.starts_with(&format!("{parameter}: ")), "{path}: {error}");
    }
    // Exactly seven days is allowed.
    ok(&s, &track(&format!("from={}&to={}", day(0), day(7)))).await;
    s.stop().await;
}

#[actix_rt::test]
async fn a_database_that_cannot_answer_is_a_503() {
    // Nothing listens on port 1.
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy("postgres://postgres@127.0.0.1:1/kuzet")
        .unwrap();
    let (addr, handle) =
        kuzet::http::start("127.0.0.1:0".parse().unwrap(), pool, None, &common::http_settings(false), None)
            .await
            .expect("the API starts");
    let base = format!("http://{addr}");
    // No session can be checked either: a 503 before anything else, bad input included.
    TOKENS.lock().unwrap().insert(base.clone(), "a-token-nobody-can-check".into());
    for path in [
        "/api/v1/incidents".to_owned(),
        format!("/api/v1/incidents/{}", incident_id(1)),
        format!("/api/v1/incidents/{}/timeline", incident_id(1)),
        format!("/api/v1/units/unit-7/track?from={}&to={}", iso(t0()), iso(t0() + TimeDelta::hours(1))),
        "/api/v1/sites/containing?lat=43.2&lon=76.9".to_owned(),
        "/api/v1/incidents?limit=0".to_owned(),
    ] {
        let r = get(&format!("{base}{path}")).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {}", r.body);
        assert_eq!(r.body, json!({"error": "database unavailable"}), "{path}");
    }
    handle.stop(true).await;
}
