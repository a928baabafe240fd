//! Shared helpers for the integration tests: a private Mosquitto per test (with the
//! credentials and ACL `kuzet broker-files` generates), kuzet on either broker, and real
//! MQTT clients standing in for buttons and tablets.
#![allow(dead_code)]

pub mod cameras;
pub mod process;
pub mod record;
pub mod tap;

use std::time::Duration;

use chrono::Utc;
use kuzet::brokerfiles;
use kuzet::mosquitto::{Access, MosquittoProcess};
use kuzet::mqtt::topics::{self, DeviceKind};
use kuzet::settings::Settings;
use kuzet::startup::Application;
use kuzet_actors::geo::GeoPoint;
use kuzet_actors::ids::{ButtonId, SiteId, UnitId};
use kuzet_actors::spec::{ButtonSpec, Devices, SiteKind, SiteSpec, UnitSpec};
use kuzet_tools::sim::{connect_device, connect_observer, DeviceLink};
use rumqttc::QoS;
use serde_json::{json, Value};

/// Runs a scenario once against each broker: kuzet's own (`kuzets_own`) and a separate
/// Mosquitto with the generated files (`mosquitto`). Needs `#[macro_use] mod common;`.
#[allow(unused_macros)]
macro_rules! on_both_brokers {
    ($name:ident) => {
        mod $name {
            use super::*;

            #[actix_rt::test]
            async fn mosquitto() {
                super::$name(BrokerKind::Mosquitto).await;
            }

            #[actix_rt::test]
            async fn kuzets_own() {
                super::$name(BrokerKind::Embedded).await;
            }
        }
    };
}

pub const SERVICE_PASSWORD: &str = "service-secret-for-tests";

/// Read-only accounts for the tests' observers (a console, an integration): one each, since
/// the broker ties a client id to its username.
pub const OBSERVERS: [&str; 4] = ["observer-1", "observer-2", "observer-3", "observer-4"];

pub fn observer_password(user: &str) -> String {
    format!("observer-password-{user}")
}

/// An account that may publish on every device's topics: a stand-in for many misbehaving
/// devices at once (bad input tests).
pub const IMPOSTOR: &str = "impostor";

/// The observers as integration accounts (they read everything under kuzet/v1/, write
/// nothing), the impostor, and the payload recorder (`record`).
pub fn observer_accounts() -> Vec<kuzet::settings::Integration> {
    let mut accounts: Vec<_> = OBSERVERS
        .iter()
        .map(|u| kuzet::settings::Integration {
            username: (*u).to_owned(),
            password: kuzet::settings::Secret::new(observer_password(u)),
            read: vec!["kuzet/v1/#".into()],
            write: Vec::new(),
        })
        .collect();
    accounts.push(kuzet::settings::Integration {
        username: IMPOSTOR.into(),
        password: kuzet::settings::Secret::new(observer_password(IMPOSTOR)),
        read: vec!["kuzet/v1/#".into()],
        write: vec!["kuzet/v1/#".into()],
    });
    accounts.push(record::account());
    accounts
}

pub fn free_port() -> u16 {
    kuzet::mosquitto::free_port().expect("a free port")
}

/// A private Mosquitto with a password per device and the generated per-device ACL.
pub fn mosquitto_with_acl(devices: &Devices) -> MosquittoProcess {
    let observers = observer_accounts();
    let mut plain = String::new();
    for (u, p) in brokerfiles::accounts(devices, "kuzet", SERVICE_PASSWORD, &observers) {
        plain.push_str(&format!("{u}:{p}\n"));
    }
    let access = Access { passwords_plain: plain, acl: brokerfiles::acl_with(devices, "kuzet", &observers) };
    MosquittoProcess::start(Some(access)).expect("mosquitto starts")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    Embedded,
    Mosquitto,
}

/// kuzet running against a broker, with the broker kept alive as long as this lives.
pub struct TestApp {
    /// Records what kuzet publishes (`record`). First, so it is dropped (and drains what the
    /// broker still has for it) while kuzet and the broker are still there.
    recorder: Option<record::Recorder>,
    pub app: Application,
    pub host: String,
    pub port: u16,
    pub devices: Devices,
    pub mosquitto: Option<MosquittoProcess>,
    /// Observer accounts handed out so far.
    observers: std::sync::atomic::AtomicUsize,
}

/// The school alarm's response plan in `s`, for a test to adjust.
pub fn school_plan(s: &mut Settings) -> &mut kuzet_actors::model::ResponsePlan {
    s.dispatch.plans.get_mut(&kuzet_actors::model::IncidentKind::SchoolAlarm).expect("school alarm plan")
}

/// A plan that wants one unit, so each alarm yields one offer.
pub fn one_unit(s: &mut Settings) {
    school_plan(s).units_required = 1;
}

/// Settings for tests: kuzet's own broker on a free port, short timeouts.
pub fn test_settings() -> Settings {
    let mut s = Settings::defaults();
    s.broker.listen = format!("127.0.0.1:{}", free_port()).parse().expect("socket address");
    s.broker.ws_listen = format!("127.0.0.1:{}", free_port());
    s.mqtt.password = kuzet::settings::Secret::new(SERVICE_PASSWORD);
    s.broker.data_dir = std::env::temp_dir().join(format!("kuzet-broker-{}", uuid::Uuid::new_v4().simple()));
    s.broker.integrations = observer_accounts();
    s.http.listen = "127.0.0.1:0".into();
    s.database.spool_dir = spool_dir();
    s
}

/// HTTP settings as shipped, but for the Secure flag on the session cookie.
pub fn http_settings(secure_cookies: bool) -> kuzet::settings::HttpSettings {
    let mut h = Settings::defaults().http;
    h.secure_cookies = secure_cookies;
    h
}

/// An HTTP client that waits long enough for a loaded machine: argon2 on two busy cores
/// can pass awc's default 5 s.
pub fn client() -> awc::Client {
    awc::Client::builder().timeout(Duration::from_secs(30)).finish()
}

/// A spool folder of its own for one kuzet.
pub fn spool_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("kuzet-spool-{}", uuid::Uuid::new_v4().simple()))
}

pub async fn spawn_app(kind: BrokerKind, devices: Devices, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with_roads(kind, devices, None, tweak).await
}

pub async fn spawn_app_with_roads(
    kind: BrokerKind,
    devices: Devices,
    roads: Option<std::sync::Arc<kuzet::roads::RoadNetwork>>,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    let mut settings = test_settings();
    // Every test kuzet records to a database of its own, as in production.
    settings.database.url = kuzet::settings::Secret::new(fresh_database().await);
    let mosquitto = match kind {
        BrokerKind::Embedded => None,
        BrokerKind::Mosquitto => {
            let m = mosquitto_with_acl(&devices);
            settings.mqtt.url = format!("mqtt://127.0.0.1:{}", m.port);
            // Browser tablets reach Mosquitto's WebSocket listener.
            settings.http.tablet_mqtt_url = format!("ws://localhost:{}/mqtt", m.ws_port);
            Some(m)
        }
    };
    tweak(&mut settings);
    let record = records_payloads(&settings);
    let app = Application::build_with_roads(settings, devices.clone(), roads).await.expect("kuzet starts");
    assert!(app.wait_ready(Duration::from_secs(10)).await, "kuzet connected and subscribed");
    let (host, port) = app.broker();
    let recorder = if record { record::Recorder::start(host, port).await } else { None };
    TestApp { recorder, host: host.to_owned(), port, devices, app, mosquitto, observers: Default::default() }
}

/// Whether a test kuzet with `s` gets a payload recorder (`record`). Not when kuzet talks to a
/// broker other than the test's own (one without the recorder's account) or over TLS; nor when
/// a test bounds the broker's queues below the default: tests/broker.rs counts what a broker
/// with a queue of 10 drops, and a busy recorder must not add to that count.
fn records_payloads(s: &Settings) -> bool {
    let own_broker = s.mqtt.url == "embedded" || s.mqtt.url.starts_with("mqtt://127.0.0.1:");
    own_broker && s.broker.max_queued_messages >= Settings::defaults().broker.max_queued_messages
}

/// The test city's school, near Almaty's centre.
pub fn school_location() -> GeoPoint {
    GeoPoint::new(43.2389, 76.8897).expect("valid point")
}

pub fn pw(id: &str) -> String {
    format!("pw-{id}")
}

/// One school with buttons `btn-a` and `btn-b`, and the given units.
pub fn city(units: &[&str]) -> Devices {
    city_at(school_location(), units)
}

/// `city`, with the school at `location`.
pub fn city_at(location: GeoPoint, units: &[&str]) -> Devices {
    let buttons = ["btn-a", "btn-b"]
        .iter()
        .map(|id| ButtonSpec {
            id: ButtonId::parse(id).unwrap(),
            room: Some("12".into()),
            password: Some(pw(id)),
        })
        .collect();
    Devices {
        sites: vec![SiteSpec {
            id: SiteId::parse("school-1").unwrap(),
            name: "School No. 1".into(),
            kind: SiteKind::School,
            location,
            buttons,
        }],
        units: units
            .iter()
            .map(|id| UnitSpec {
                id: UnitId::parse(id).unwrap(),
                callsign: id.to_uppercase(),
                password: Some(pw(id)),
            })
            .collect(),
        cameras: Vec::new(),
    }
}

impl TestApp {
    pub async fn button(&self, id: &str) -> DeviceLink {
        let subs = [topics::button_ack(id), topics::rejects(id)];
        connect_device(&self.host, self.port, DeviceKind::Button, id, &pw(id), &subs)
            .await
            .expect("button connects")
    }

    /// A client with a read-only integration account, as a console or recorder would connect.
    pub async fn observer(&self, subscriptions: &[&str]) -> DeviceLink {
        let subs: Vec<String> = subscriptions.iter().map(|s| (*s).to_owned()).collect();
        let n = self.observers.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let user = OBSERVERS.get(n).expect("at most four observers per test");
        connect_observer(&self.host, self.port, user, &observer_password(user), &subs)
            .await
            .expect("observer connects")
    }

    /// The impostor: publishes on any device's topics, reads everything under kuzet/v1/.
    pub async fn impostor(&self, subscriptions: &[&str]) -> DeviceLink {
        let subs: Vec<String> = subscriptions.iter().map(|s| (*s).to_owned()).collect();
        connect_observer(&self.host, self.port, IMPOSTOR, &observer_password(IMPOSTOR), &subs)
            .await
            .expect("impostor connects")
    }

    /// Camera `id` as a device on MQTT: online (retained) while the link lives.
    pub async fn camera(&self, id: &str) -> DeviceLink {
        connect_device(&self.host, self.port, DeviceKind::Camera, id, &pw(id), &[])
            .await
            .expect("camera connects")
    }

    /// Camera `id` comes online, then drops off: its last will is an `offline` alert.
    /// Returns once kuzet has published that alert on `topic`.
    pub async fn camera_drops_off(&self, id: &str, topic: &str) {
        let mut seen = self.observer(&[topic]).await;
        let link = self.camera(id).await;
        alert_says(&mut seen, topic, "ok").await;
        link.kill();
        alert_says(&mut seen, topic, "offline").await;
    }

    /// A tablet, placed `north_m` metres north of the school with a fresh position.
    pub async fn unit_at(&self, id: &str, north_m: f64) -> DeviceLink {
        self.unit_at_point(id, school_location().offset(north_m, 0.0)).await
    }

    /// A tablet at `p` with a fresh position.
    pub async fn unit_at_point(&self, id: &str, p: GeoPoint) -> DeviceLink {
        let subs = [topics::offers(id), format!("kuzet/v1/units/{id}/incidents/+"), topics::rejects(id)];
        let link = connect_device(&self.host, self.port, DeviceKind::Unit, id, &pw(id), &subs)
            .await
            .expect("unit connects");
        publish(&link, DeviceKind::Unit, id, "position", position(p)).await;
        link
    }

    /// Waits until the router holds `n` available units (positions are asynchronous).
    pub async fn wait_available(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.app.available_units().await != n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {n} available units, have {}",
                self.app.available_units().await
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until unit `id`'s actor holds what `f` looks for (its presence, status, offer):
    /// messages on kuzet's different connections are not ordered with each other.
    pub async fn wait_unit(&self, id: &str, f: impl Fn(&kuzet_actors::unit::UnitView) -> bool) {
        let unit = self.app.directory().unit(id).expect("a registered unit");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let v = unit.send(kuzet_actors::unit::GetUnit).await.expect("unit actor");
            if f(&v) {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "unit {id} is not as expected: {v:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until kuzet has received `n` messages in all.
    pub async fn wait_received(&self, n: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.app.metrics().received.load(std::sync::atomic::Ordering::Relaxed) < n {
            assert!(tokio::time::Instant::now() < deadline, "kuzet did not receive {n} messages");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

pub fn position(p: GeoPoint) -> Value {
    json!({"at": Utc::now(), "lat": p.lat(), "lon": p.lon(), "speed_mps": 0.0})
}

pub fn raise(alarm_id: &uuid::Uuid) -> Value {
    json!({"alarm_id": alarm_id, "action": "raise", "kind": "intruder", "at": Utc::now()})
}

pub async fn publish(link: &DeviceLink, kind: DeviceKind, id: &str, channel: &str, v: Value) {
    publish_raw(link, &topics::device(kind, id, channel), v.to_string().into_bytes()).await;
}

pub async fn publish_raw(link: &DeviceLink, topic: &str, payload: Vec<u8>) {
    link.client.publish(topic, QoS::AtLeastOnce, false, payload).await.expect("publish queued");
}

/// The next message on `link` whose topic ends with `suffix`, within 10 s.
pub async fn next_on(link: &mut DeviceLink, suffix: &str) -> Value {
    let wait = async {
        loop {
            match link.rx.recv().await {
                Some((topic, v)) if topic.ends_with(suffix) => return v,
                Some(_) => continue,
                None => panic!("device link closed"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .unwrap_or_else(|_| panic!("nothing on *{suffix} within 10 s"))
}

/// Waits until an alert on a topic ending in `suffix` says `state`.
pub async fn alert_says(link: &mut DeviceLink, suffix: &str, state: &str) {
    while next_on(link, suffix).await["state"] != state {}
}

/// Asserts nothing arrives on `link` with a topic ending in `suffix` for `quiet`.
pub async fn nothing_on(link: &mut DeviceLink, suffix: &str, quiet: Duration) {
    let wait = async {
        loop {
            match link.rx.recv().await {
                Some((topic, v)) if topic.ends_with(suffix) => return v,
                Some(_) => continue,
                None => std::future::pending().await,
            }
        }
    };
    if let Ok(v) = tokio::time::timeout(quiet, wait).await {
        panic!("unexpected message on *{suffix}: {v}");
    }
}

/// Asserts that whatever arrives on `link` with a topic ending in `suffix` for `quiet` is
/// `same` again (QoS 1 is at least once, and a device is told again where it stands when
/// its presence is taken after its message): nothing new.
pub async fn nothing_new_on(link: &mut DeviceLink, suffix: &str, quiet: Duration, same: &Value) {
    let until = tokio::time::Instant::now() + quiet;
    loop {
        let next = async {
            loop {
                match link.rx.recv().await {
                    Some((topic, v)) if topic.ends_with(suffix) => return v,
                    Some(_) => continue,
                    None => std::future::pending().await,
                }
            }
        };
        match tokio::time::timeout_at(until, next).await {
            Ok(v) => assert_eq!(&v, same, "something new on *{suffix}"),
            Err(_) => return,
        }
    }
}

/// The next ack's state on a button link.
pub async fn next_ack(link: &mut DeviceLink) -> Value {
    next_on(link, "/ack").await
}

/// A new, empty database on the private PostGIS cluster (started by scripts/pg.sh when
/// DATABASE_URL does not name one), for one test.
pub async fn fresh_database() -> String {
    use sqlx::Connection;
    static BASE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    let base = BASE
        .get_or_init(|| async {
            if let Ok(url) = std::env::var("DATABASE_URL") {
                return url;
            }
            let out = tokio::task::spawn_blocking(|| {
                std::process::Command::new("scripts/pg.sh").arg("start").output()
            })
            .await
            .expect("pg.sh runs")
            .expect("scripts/pg.sh start");
            assert!(
                out.status.success(),
                "scripts/pg.sh start failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let stdout = String::from_utf8_lossy(&out.stdout);
            let line = stdout.lines().last().unwrap_or_default();
            line.strip_prefix("DATABASE_URL=")
                .unwrap_or_else(|| panic!("unexpected pg.sh output: {stdout}"))
                .to_owned()
        })
        .await;
    let name = format!("kuzet_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(base).await.expect("connect to the test cluster");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create database");
    let (prefix, _) = base.rsplit_once('/').expect("database url has a path");
    format!("{prefix}/{name}")
}

/// Adds a user of `role` (an officer signs in as unit `unit-1`) and signs in to the API at
/// `base`; the session token.
pub async fn sign_in_as(pool: &sqlx::PgPool, base: &str, role: kuzet::auth::Role) -> String {
    let name = format!("{}-{}", role.as_str(), &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let unit = (role == kuzet::auth::Role::Officer).then_some("unit-1");
    kuzet::auth::add_user(pool, &name, role, unit, "correct horse battery", "user:test")
        .await
        .expect("user added");
    let mut res = client()
        .post(format!("{base}/api/v1/session"))
        .send_json(&json!({"username": name, "password": "correct horse battery"}))
        .await
        .expect("sign-in answered");
    assert_eq!(res.status(), 200, "signed in");
    let body: Value = res.json().await.expect("JSON");
    body["token"].as_str().expect("a token").to_owned()
}
