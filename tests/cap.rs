//! Area warnings as OASIS CAP 1.2: a dispatcher issues one, updates it and cancels it; every
//! message is valid against the official schema (CAP-v1.2.xsd, checked with xmllint), goes out
//! retained on MQTT and is served over HTTP, alone and in an Atom feed; updates and the cancel
//! name every message they change; only a person ever issues one.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use kuzet::auth::Role;
use kuzet::mqtt::topics::DeviceKind;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use serde_json::{json, Value};
use tokio::sync::mpsc;

fn schema(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/cap/schema").join(name)
}

/// xmllint's verdict on `xml` against the schema `xsd` (scripts/setup.sh puts it there).
fn valid(xml: &str, xsd: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("doc.xml");
    std::fs::write(&file, xml).unwrap();
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(schema(xsd))
        .arg(&file)
        .output()
        .expect("xmllint runs (libxml2-utils, scripts/setup.sh)");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}

/// A raw subscriber (CAP is XML, not the JSON the device stand-ins read): (topic, payload, retained).
async fn subscriber(t: &TestApp, filter: &str) -> mpsc::UnboundedReceiver<(String, String, bool)> {
    let user = OBSERVERS[3];
    let mut o = MqttOptions::new(user, &t.host, t.port);
    o.set_credentials(user, observer_password(user));
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut events) = AsyncClient::new(o, 64);
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let mut ready = Some(ready_tx);
    tokio::spawn(async move {
        let _client = client;
        while let Ok(ev) = events.poll().await {
            match ev {
                Event::Incoming(Incoming::SubAck(_)) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                }
                Event::Incoming(Incoming::Publish(p)) => {
                    let text = String::from_utf8_lossy(&p.payload).into_owned();
                    if tx.send((p.topic.clone(), text, p.retain)).is_err() {
                        return;
                    }
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), ready_rx).await.expect("subscribed").unwrap();
    rx
}

async fn next_xml(rx: &mut mpsc::UnboundedReceiver<(String, String, bool)>) -> (String, String, bool) {
    tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("a warning on MQTT").unwrap()
}

struct Api {
    base: String,
    token: String,
}

impl Api {
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let mut res = client()
            .post(format!("{}{path}", self.base))
            .insert_header(("Authorization", format!("Bearer {}", self.token)))
            .send_json(&body)
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let mut res = client()
            .get(format!("{}{path}", self.base))
            .insert_header(("Authorization", format!("Bearer {}", self.token)))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body = res.body().limit(4 << 20).await.unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }
}

#[actix_rt::test]
async fn a_warning_issued_updated_and_cancelled_goes_out_as_valid_cap_that_references_what_it_changes() {
    let t = spawn_app(BrokerKind::Embedded, city(&["u1"]), one_unit).await;
    let base = format!("http://{}", t.app.http_addr().unwrap());
    let pool = t.app.pool().unwrap();
    let api = Api { base: base.clone(), token: sign_in_as(pool, &base, Role::Dispatcher).await };
    let mut mqtt = subscriber(&t, "kuzet/v1/warnings/+").await;

    // A panic alarm is dispatched and nothing is said to the public: only a person issues one.
    let unit = t.unit_at("u1", 300.0).await;
    t.wait_available(1).await;
    let mut button = t.button("btn-a").await;
    publish(&button, DeviceKind::Button, "btn-a", "alarm", raise(&uuid::Uuid::new_v4())).await;
    next_ack(&mut button).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(500), mqtt.recv()).await.is_err(),
        "an alarm made no warning"
    );
    drop(unit);

    let expires = chrono::Utc::now() + chrono::Duration::hours(2);
    let (status, alert) = api
        .post(
            "/api/v1/warnings",
            json!({"headline": "Police operation at the Green Market", "description": "Armed suspect <reported> & police on scene.",
                   "instruction": "Stay away from the market.", "severity": "severe", "expires_at": expires,
                   "area": {"description": "Green Market", "circle": {"lat": 43.2389, "lon": 76.8897, "radius_m": 800}}}),
        )
        .await;
    assert_eq!(status, 200, "{alert}");
    assert_eq!(alert["msg_type"], "Alert");
    assert_eq!(alert["in_force"], true);
    let id = alert["warning_id"].as_str().unwrap().to_owned();
    let first = alert["identifier"].as_str().unwrap().to_owned();
    assert!(first.starts_with("urn:uuid:"), "{first}");

    let (topic, xml, retained) = next_xml(&mut mqtt).await;
    assert_eq!(topic, format!("kuzet/v1/warnings/{id}"));
    assert!(retained || !xml.is_empty());
    valid(&xml, "CAP-v1.2.xsd").unwrap_or_else(|e| panic!("the Alert is not valid CAP 1.2: {e}\n{xml}"));
    assert!(
        xml.contains(&format!("<identifier>{first}</identifier>"))
            && xml.contains("<msgType>Alert</msgType>")
    );
    assert!(xml.contains("Armed suspect &lt;reported&gt; &amp; police"), "{xml}");
    assert!(xml.contains("<circle>43.238900,76.889700 0.800</circle>"), "{xml}");

    // An update: a new area and headline, naming the Alert.
    let (status, update) = api
        .post(
            &format!("/api/v1/warnings/{id}/update"),
            json!({"headline": "Police operation: market and station",
                   "area": {"description": "Green Market and the bus station",
                            "polygon": [[43.236, 76.885], [43.242, 76.885], [43.242, 76.895], [43.236, 76.895]]}}),
        )
        .await;
    assert_eq!(status, 200, "{update}");
    assert_eq!(update["msg_type"], "Update");
    assert_eq!(update["references"], json!([first]));
    let second = update["identifier"].as_str().unwrap().to_owned();
    let (_, xml2, _) = next_xml(&mut mqtt).await;
    valid(&xml2, "CAP-v1.2.xsd").unwrap_or_else(|e| panic!("the Update is not valid CAP 1.2: {e}\n{xml2}"));
    assert!(xml2.contains("<msgType>Update</msgType>") && xml2.contains(&format!(",{first},")), "{xml2}");
    assert!(
        xml2.contains("<polygon>43.236000,76.885000 ") && xml2.contains(" 43.236000,76.885000</polygon>"),
        "closed: {xml2}"
    );
    assert!(xml2.contains("Stay away from the market."), "what the update left out stays: {xml2}");

    // The cancel names both.
    let (status, cancel) =
        api.post(&format!("/api/v1/warnings/{id}/cancel"), json!({"reason": "suspect arrested"})).await;
    assert_eq!(status, 200, "{cancel}");
    assert_eq!(cancel["msg_type"], "Cancel");
    assert_eq!(cancel["in_force"], false);
    assert_eq!(cancel["references"], json!([first, second]));
    let third = cancel["identifier"].as_str().unwrap().to_owned();
    let (_, xml3, _) = next_xml(&mut mqtt).await;
    valid(&xml3, "CAP-v1.2.xsd").unwrap_or_else(|e| panic!("the Cancel is not valid CAP 1.2: {e}\n{xml3}"));
    assert!(xml3.contains("<msgType>Cancel</msgType>") && xml3.contains(&first) && xml3.contains(&second));
    // Nothing changes a cancelled warning.
    let (status, _) = api.post(&format!("/api/v1/warnings/{id}/update"), json!({"headline": "again"})).await;
    assert_eq!(status, 409);

    // Over HTTP: each message as it went out, and the feed.
    for (ident, published) in [(&first, &xml), (&second, &xml2), (&third, &xml3)] {
        let (status, body) = api.get(&format!("/api/v1/warnings/messages/{ident}")).await;
        assert_eq!(status, 200);
        assert_eq!(&body, published, "the message served is the one published");
    }
    let (status, feed) = api.get("/api/v1/warnings/feed.atom").await;
    assert_eq!(status, 200);
    valid(&feed, "atom.xsd").unwrap_or_else(|e| panic!("the feed is not valid Atom: {e}\n{feed}"));
    let order: Vec<usize> =
        [&third, &second, &first].iter().map(|i| feed.find(&format!("<id>{i}</id>")).unwrap()).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "newest first: {feed}");
    let (status, list) = api.get("/api/v1/warnings").await;
    assert_eq!(status, 200);
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["warning_id"], id.as_str());
    assert_eq!(list[0]["messages"], 3);

    // A late subscriber gets the newest message: the cancel.
    drop(mqtt);
    let mut late = subscriber(&t, &format!("kuzet/v1/warnings/{id}")).await;
    let (_, kept, retained) = next_xml(&mut late).await;
    assert!(retained);
    assert_eq!(kept, xml3);

    // Audited, once each.
    for action in ["warning.alert", "warning.update", "warning.cancel"] {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = $1 AND subject = $2")
            .bind(action)
            .bind(&id)
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(n, 1, "{action}");
    }
    t.app.stop().await;
}

#[actix_rt::test]
async fn bad_warnings_are_refused_with_the_field_and_only_the_console_issues_them() {
    let t = spawn_app(BrokerKind::Embedded, city(&["u1"]), one_unit).await;
    let base = format!("http://{}", t.app.http_addr().unwrap());
    let pool = t.app.pool().unwrap();
    let api = Api { base: base.clone(), token: sign_in_as(pool, &base, Role::Dispatcher).await };
    let soon = chrono::Utc::now() + chrono::Duration::hours(1);
    let good = |area: Value| json!({"headline": "h", "description": "d", "expires_at": soon, "area": area});
    let circle = json!({"description": "x", "circle": {"lat": 43.2, "lon": 76.9, "radius_m": 500}});
    let cases = [
        (good(json!({"description": "x", "polygon": [[43.2, 76.9], [43.3, 76.9]]})), "area.polygon"),
        (
            good(json!({"description": "x", "circle": {"lat": 43.2, "lon": 76.9, "radius_m": 500},
                     "polygon": [[43.2, 76.9], [43.3, 76.9], [43.3, 77.0]]})),
            "area",
        ),
        (
            good(json!({"description": "x", "circle": {"lat": 95.0, "lon": 76.9, "radius_m": 500}})),
            "area.circle",
        ),
        (
            good(json!({"description": "x", "circle": {"lat": 43.2, "lon": 76.9, "radius_m": 0}})),
            "area.circle.radius_m",
        ),
        (
            json!({"headline": "h", "description": "d", "expires_at": "2020-01-01T00:00:00Z", "area": circle}),
            "expires_at",
        ),
        (
            json!({"headline": "h\u{0007}", "description": "d", "expires_at": soon, "area": circle}),
            "headline",
        ),
        (
            json!({"headline": "h", "description": "d", "expires_at": soon, "area": circle, "severity": "apocalyptic"}),
            "severity",
        ),
        (json!({"description": "d", "expires_at": soon, "area": circle}), "headline"),
    ];
    for (body, parameter) in cases {
        let (status, res) = api.post("/api/v1/warnings", body.clone()).await;
        assert_eq!(status, 400, "{body} -> {res}");
        assert_eq!(res["parameter"], parameter, "{body} -> {res}");
    }
    let (status, _) = api.post(&format!("/api/v1/warnings/{}/cancel", uuid::Uuid::new_v4()), json!({})).await;
    assert_eq!(status, 404);
    // Oversight reads the feed, issues nothing; officers neither; nobody signed out.
    let oversight = Api { base: base.clone(), token: sign_in_as(pool, &base, Role::Oversight).await };
    assert_eq!(oversight.get("/api/v1/warnings/feed.atom").await.0, 200);
    assert_eq!(oversight.post("/api/v1/warnings", good(circle.clone())).await.0, 403);
    let officer = Api { base: base.clone(), token: sign_in_as(pool, &base, Role::Officer).await };
    assert_eq!(officer.get("/api/v1/warnings/feed.atom").await.0, 403);
    let anonymous = client().get(format!("{base}/api/v1/warnings/feed.atom")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM warnings").fetch_one(pool).await.unwrap();
    assert_eq!(n, 0, "nothing refused was issued");
    t.app.stop().await;
}
