//! What the console and the tablet page use beyond the record: a dispatcher's orders
//! (assign, reassign, cancel) carried out by the actors and heard by real tablets and
//! buttons; the map; a tablet's broker settings; the static pages.

mod common;

use common::*;
use kuzet::auth::Role;
use kuzet::mqtt::topics::DeviceKind;
use serde_json::{json, Value};

struct Api {
    base: String,
    token: String,
}

impl Api {
    async fn new(t: &TestApp, role: Role) -> Api {
        let base = format!("http://{}", t.app.http_addr().unwrap());
        let token = sign_in_as(t.app.pool().unwrap(), &base, role).await;
        Api { base, token }
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let mut res = client()
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send_json(&body)
            .await
            .expect("answered");
        (res.status().as_u16(), res.json().limit(1 << 24).await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let mut res =
            client().get(format!("{}{path}", self.base)).bearer_auth(&self.token).send().await.unwrap();
        (res.status().as_u16(), res.json().limit(1 << 24).await.unwrap_or(Value::Null))
    }
}

/// The audit entries users made about `subject`, in order.
async fn audit_actions(t: &TestApp, subject: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT action FROM audit_log WHERE subject = $1 AND actor LIKE 'user:%' ORDER BY seq")
        .bind(subject)
        .fetch_all(t.app.pool().unwrap())
        .await
        .unwrap()
}

#[actix_rt::test]
async fn a_dispatcher_reassigns_and_cancels_and_tablets_and_the_button_hear_it() {
    let t = spawn_app(BrokerKind::Embedded, city(&["u1", "u2", "u3"]), one_unit).await;
    let mut u1 = t.unit_at("u1", 300.0).await;
    let mut u2 = t.unit_at("u2", 900.0).await;
    t.wait_available(2).await;
    let api = Api::new(&t, Role::Dispatcher).await;

    let mut button = t.button("btn-a").await;
    publish(&button, DeviceKind::Button, "btn-a", "alarm", raise(&uuid::Uuid::new_v4())).await;
    let id = next_ack(&mut button).await["incident_id"].as_str().unwrap().to_owned();
    let offer = next_on(&mut u1, "/offers").await;
    publish(
        &u1,
        DeviceKind::Unit,
        "u1",
        "reply",
        json!({"offer_id": offer["offer_id"], "decision": "accept"}),
    )
    .await;
    assert_eq!(next_ack(&mut button).await["state"], "dispatched");

    // Refusals change nothing: a unit already on it, a unit that never reported a position,
    // an unknown incident, a malformed unit id, a replacement that is not on it.
    let path = format!("/api/v1/incidents/{id}/assign");
    let (s, v) = api.post(&path, json!({"unit_id": "u1"})).await;
    assert_eq!((s, v["error"].as_str().unwrap().contains("already on")), (409, true), "{v}");
    let (s, v) = api.post(&path, json!({"unit_id": "u3"})).await;
    assert_eq!((s, v["error"].as_str().unwrap().contains("cannot take it")), (409, true), "{v}");
    let (s, _) = api
        .post(&format!("/api/v1/incidents/{}/assign", uuid::Uuid::new_v4()), json!({"unit_id": "u2"}))
        .await;
    assert_eq!(s, 404);
    let (s, _) = api.post(&path, json!({"unit_id": "no such unit!"})).await;
    assert_eq!(s, 400);
    let (s, _) = api.post(&path, json!({"unit_id": "u2", "replace": "u3"})).await;
    assert_eq!(s, 409);
    let (s, _) = api.post(&path, json!({"unit": "u2"})).await;
    assert_eq!(s, 400, "unknown fields are refused");

    // Reassign: u1 stands down, u2 gets the offer (far, but chosen) and accepts.
    let (s, snap) = api.post(&path, json!({"unit_id": "u2", "replace": "u1"})).await;
    assert_eq!(s, 200, "{snap}");
    assert_eq!(snap["state"], "dispatching", "{snap}");
    assert!(snap["units"].as_array().unwrap().is_empty(), "{snap}");
    assert_eq!(snap["offers"][0]["unit"], "u2");
    let ended = next_on(&mut u1, &format!("/incidents/{id}")).await;
    assert_eq!(ended["event"], "cancelled", "{ended}");
    let offer2 = next_on(&mut u2, "/offers").await;
    assert_eq!(offer2["incident_id"], id.as_str());
    publish(
        &u2,
        DeviceKind::Unit,
        "u2",
        "reply",
        json!({"offer_id": offer2["offer_id"], "decision": "accept"}),
    )
    .await;
    assert_eq!(next_ack(&mut button).await["state"], "dispatched");
    // u1 is free again and reports progress on an incident it no longer holds: refused.
    t.wait_available(1).await;

    // Cancel: needs a reason; then the button hears cancelled and u2 stands down.
    let cancel = format!("/api/v1/incidents/{id}/cancel");
    assert_eq!(api.post(&cancel, json!({"reason": "  "})).await.0, 400);
    let (s, snap) = api.post(&cancel, json!({"reason": "caller confirmed a drill"})).await;
    assert_eq!(s, 200, "{snap}");
    assert_eq!(snap["state"], "cancelled");
    assert_eq!(next_ack(&mut button).await["state"], "cancelled");
    assert_eq!(next_on(&mut u2, &format!("/incidents/{id}")).await["event"], "cancelled");
    assert_eq!(
        api.post(&cancel, json!({"reason": "again"})).await.0,
        404,
        "a closed incident takes no orders"
    );

    let events: Vec<String> = snap["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    for e in ["assigned_by_dispatcher", "cancelled_by_dispatcher", "cancelled"] {
        assert!(events.iter().any(|x| x == e), "{e} missing from {events:?}");
    }
    let entry =
        snap["timeline"].as_array().unwrap().iter().find(|e| e["event"] == "assigned_by_dispatcher").unwrap();
    assert!(entry["detail"].as_str().unwrap().contains("replacing u1"), "{entry}");
    assert_eq!(
        audit_actions(&t, &id).await,
        ["incident.assign", "incident.cancel"],
        "refusals are not audited"
    );

    // An officer gives no orders.
    let officer = Api::new(&t, Role::Officer).await;
    assert_eq!(officer.post(&cancel, json!({"reason": "x"})).await.0, 403);
    t.app.stop().await;
}

#[actix_rt::test]
async fn an_escalated_incident_is_covered_by_a_unit_the_dispatcher_sends_again() {
    let t = spawn_app(BrokerKind::Embedded, city(&["u1"]), |s| {
        one_unit(s);
        school_plan(s).max_offers = 1;
    })
    .await;
    let mut u1 = t.unit_at("u1", 300.0).await;
    t.wait_available(1).await;
    let api = Api::new(&t, Role::Dispatcher).await;
    let mut button = t.button("btn-a").await;
    publish(&button, DeviceKind::Button, "btn-a", "alarm", raise(&uuid::Uuid::new_v4())).await;
    let id = next_ack(&mut button).await["incident_id"].as_str().unwrap().to_owned();
    let offer = next_on(&mut u1, "/offers").await;
    publish(
        &u1,
        DeviceKind::Unit,
        "u1",
        "reply",
        json!({"offer_id": offer["offer_id"], "decision": "decline"}),
    )
    .await;
    assert_eq!(next_ack(&mut button).await["state"], "escalated");

    // The plan gave up on u1; the dispatcher, who has spoken to the crew, sends it anyway.
    t.wait_available(1).await;
    let (s, snap) = api.post(&format!("/api/v1/incidents/{id}/assign"), json!({"unit_id": "u1"})).await;
    assert_eq!(s, 200, "{snap}");
    let again = next_on(&mut u1, "/offers").await;
    assert_ne!(again["offer_id"], offer["offer_id"]);
    publish(
        &u1,
        DeviceKind::Unit,
        "u1",
        "reply",
        json!({"offer_id": again["offer_id"], "decision": "accept"}),
    )
    .await;
    assert_eq!(next_ack(&mut button).await["state"], "dispatched");
    t.app.stop().await;
}

#[actix_rt::test]
async fn the_map_the_tablet_settings_and_the_pages() {
    let origin = school_location().offset(-600.0, -600.0);
    let roads = kuzet::roads::RoadNetwork::from_graph(kuzet::roads::grid(12, origin));
    let mut ws_listen = String::new();
    let t = spawn_app_with_roads(
        BrokerKind::Embedded,
        city(&["unit-1"]),
        Some(std::sync::Arc::new(roads)),
        |s| ws_listen = s.broker.ws_listen.clone(),
    )
    .await;
    let dispatcher = Api::new(&t, Role::Dispatcher).await;
    let (s, map) = dispatcher.get("/api/v1/map").await;
    assert_eq!(s, 200);
    // A 12x12 grid: 24 straight roads of 11 segments, each segment drawn once.
    let lines = map["roads"].as_array().unwrap();
    let segments: usize = lines.iter().map(|l| l.as_array().unwrap().len() / 2 - 1).sum();
    assert_eq!(segments, 2 * 12 * 11, "every segment once");
    assert!(lines.len() < segments, "segments joined into lines: {}", lines.len());
    assert_eq!(map["sites"][0]["site_id"], "school-1");
    assert_eq!(map["sites"][0]["kind"], "school");
    assert_eq!(map["units"][0]["callsign"], "UNIT-1");
    assert!(map["tile_url"].is_null(), "no tile server unless configured");
    let b = &map["bounds"];
    assert!(
        b[0][0].as_f64().unwrap() <= origin.lat() + 1e-5
            && b[1][0].as_f64().unwrap() > school_location().lat()
    );

    // The officer's tablet gets its unit's broker settings; nobody else has a tablet.
    let officer = Api::new(&t, Role::Officer).await;
    let (s, tab) = officer.get("/api/v1/tablet").await;
    assert_eq!(s, 200, "{tab}");
    assert_eq!(tab["unit_id"], "unit-1");
    assert_eq!(tab["mqtt"]["password"], pw("unit-1"));
    let ws_port = ws_listen.rsplit_once(':').unwrap().1;
    assert_eq!(tab["mqtt"]["url"], format!("ws://127.0.0.1:{ws_port}/mqtt"));
    assert_eq!(dispatcher.get("/api/v1/tablet").await.0, 403);

    // Pages are public and locked down; paths out of the folder are not served.
    let client =
        awc::Client::builder().disable_redirects().timeout(std::time::Duration::from_secs(30)).finish();
    let res = client.get(format!("{}/", dispatcher.base)).send().await.unwrap();
    assert_eq!(
        (res.status().as_u16(), res.headers().get("location").unwrap().to_str().unwrap()),
        (302, "/console/")
    );
    for page in ["/console/", "/oversight/", "/tablet/"] {
        let mut res = client.get(format!("{}{page}", dispatcher.base)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{page}");
        let csp = res.headers().get("content-security-policy").unwrap().to_str().unwrap().to_owned();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        let body = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
        assert!(body.contains("<form id=\"signin\""), "{page} has the sign-in form");
    }
    for lib in ["/vendor/mqtt.min.js", "/vendor/leaflet/leaflet.js", "/vendor/leaflet/leaflet.css"] {
        let res = client.get(format!("{}{lib}", dispatcher.base)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{lib} (npm ci in web/)");
    }
    for bad in [
        "/static/../Cargo.toml",
        "/static/%2e%2e/Cargo.toml",
        "/static/.hidden",
        "/vendor/leaflet/../package.json",
    ] {
        let res = client.get(format!("{}{bad}", dispatcher.base)).send().await.unwrap();
        assert!(res.status().is_client_error(), "{bad}: {}", res.status());
    }
    t.app.stop().await;
}

/// A unit's broker password goes over HTTP only to a tablet whose broker holds the unit to
/// its own topics: kuzet's own always; an external one only when the operator vouches for it.
#[actix_rt::test]
async fn a_tablet_gets_its_broker_password_only_from_a_broker_that_enforces_the_acl() {
    for (kind, vouched, expected) in [
        (BrokerKind::Mosquitto, false, Value::Null),
        (BrokerKind::Mosquitto, true, json!(pw("unit-1"))),
        (BrokerKind::Embedded, false, json!(pw("unit-1"))),
    ] {
        let t = spawn_app(kind, city(&["unit-1"]), |s| s.http.tablet_broker_enforces_acl = vouched).await;
        let officer = Api::new(&t, Role::Officer).await;
        let (s, tab) = officer.get("/api/v1/tablet").await;
        assert_eq!(s, 200, "{tab}");
        assert_eq!(tab["mqtt"]["password"], expected, "{kind:?}, vouched {vouched}");
        t.app.stop().await;
    }
}
