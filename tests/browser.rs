//! The pages in a real browser: kuzet with PostGIS, its broker and (for the face review) a
//! camera over RTSP and the real models, driven by the scripts in web/e2e/ through
//! playwright-core and Debian's Chromium. A script passes only when every check held; its
//! screenshots land in target/artifacts/browser/ (to be looked at).

mod common;

use std::path::PathBuf;

use common::cameras::*;
use common::*;
use kuzet::auth::Role;
use kuzet::mqtt::topics;
use kuzet_actors::geo::GeoPoint;
use kuzet_actors::model::Danger;

const PASSWORD: &str = "browser test password";

/// One browser at a time: each script's bounded waits assume the machine is not also
/// running another Chromium.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn artifacts() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/artifacts/browser");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Users of every role; the officer is bound to `unit`.
async fn users(t: &TestApp, unit: &str) -> Vec<(&'static str, String)> {
    let pool = t.app.pool().unwrap();
    let mut env = Vec::new();
    for (var, role) in
        [("DISPATCHER", Role::Dispatcher), ("OFFICER", Role::Officer), ("OVERSIGHT", Role::Oversight)]
    {
        let name = format!("{}-{}", role.as_str(), &uuid::Uuid::new_v4().simple().to_string()[..6]);
        let unit = (role == Role::Officer).then_some(unit);
        kuzet::auth::add_user(pool, &name, role, unit, PASSWORD, "user:test").await.unwrap();
        let (user_var, pw_var) = match var {
            "DISPATCHER" => ("DISPATCHER_USER", "DISPATCHER_PASSWORD"),
            "OFFICER" => ("OFFICER_USER", "OFFICER_PASSWORD"),
            _ => ("OVERSIGHT_USER", "OVERSIGHT_PASSWORD"),
        };
        env.push((user_var, name));
        env.push((pw_var, PASSWORD.to_owned()));
    }
    env
}

/// Everything a script needs to find kuzet, its users and devices.
async fn script_env(t: &TestApp, site: GeoPoint, unit_at: GeoPoint) -> Vec<(&'static str, String)> {
    let http = t.app.http_addr().unwrap();
    let mut env = users(t, "unit-1").await;
    env.extend([
        // localhost, not 127.0.0.1: the session cookie is Secure, which browsers allow over
        // plain HTTP to localhost only.
        ("KUZET_URL", format!("http://localhost:{}", http.port())),
        ("MQTT_URL", format!("mqtt://{}:{}", t.host, t.port)),
        ("UNIT_ID", "unit-1".into()),
        ("BUTTON_ID", "btn-a".into()),
        ("BUTTON_PASSWORD", pw("btn-a")),
        ("SITE_LAT", site.lat().to_string()),
        ("SITE_LON", site.lon().to_string()),
        ("UNIT_LAT", unit_at.lat().to_string()),
        ("UNIT_LON", unit_at.lon().to_string()),
        ("ARTIFACTS_DIR", artifacts().display().to_string()),
    ]);
    env
}

/// Runs `node web/e2e/{name}.mjs`; its output is printed, and it must exit 0.
async fn run_script(name: &str, env: Vec<(&'static str, String)>) {
    let script = format!("web/e2e/{name}.mjs");
    let started = std::time::Instant::now();
    let out = actix_rt::task::spawn_blocking(move || {
        std::process::Command::new("node").arg(&script).envs(env).output()
    })
    .await
    .unwrap()
    .expect("node runs (scripts/setup.sh installs Node.js and web/node_modules)");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    println!(
        "{name}.mjs took {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        artifacts().display()
    );
    assert!(out.status.success(), "web/e2e/{name}.mjs failed ({}): see its output above", out.status);
}

/// A street grid around the school, 2.4 km a side: the maps' base layer, and drive times.
fn streets() -> Option<std::sync::Arc<kuzet::roads::RoadNetwork>> {
    let origin = school_location().offset(-1200.0, -1200.0);
    Some(std::sync::Arc::new(kuzet::roads::RoadNetwork::from_graph(kuzet::roads::grid(21, origin))))
}

async fn audited(t: &TestApp, action: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = $1 AND actor LIKE 'user:dispatcher-%'")
        .bind(action)
        .fetch_one(t.app.pool().unwrap())
        .await
        .unwrap()
}

#[actix_rt::test]
async fn a_panic_alarm_reaches_the_console_and_the_tablet_which_accepts() {
    panic_alarm(BrokerKind::Embedded).await;
}

/// The same on Mosquitto: the tablet page is a device under the broker's own ACL.
#[actix_rt::test]
async fn a_panic_alarm_through_mosquitto_with_the_tablet_on_its_websocket_listener() {
    panic_alarm(BrokerKind::Mosquitto).await;
}

async fn panic_alarm(broker: BrokerKind) {
    let _one = BROWSER.lock().await;
    // The test's Mosquitto runs the generated ACL: the tablet may be handed its password.
    let t = spawn_app_with_roads(broker, city(&["unit-1"]), streets(), |s| {
        one_unit(s);
        s.http.tablet_broker_enforces_acl = true;
    })
    .await;
    let env = script_env(&t, school_location(), school_location().offset(1000.0, 300.0)).await;
    run_script("panic", env).await;
    // The console's cancel went through the API as the signed-in dispatcher.
    assert_eq!(audited(&t, "incident.cancel").await, 1);
    let states: Vec<(String, String, String)> =
        sqlx::query_as("SELECT state, subject_kind, subject_id FROM incidents")
            .fetch_all(t.app.pool().unwrap())
            .await
            .unwrap();
    assert_eq!(states, [("cancelled".into(), "site".into(), "school-1".into())]);
    t.app.stop().await;
}

#[actix_rt::test]
async fn a_face_match_is_confirmed_on_the_console_and_the_tablet_takes_it() {
    let _one = BROWSER.lock().await;
    let cams = Camsim::start(0);
    let mut devices = city(&["unit-1"]);
    let camera_at = school_location().offset(-400.0, 200.0);
    devices.cameras.push(camera("cam-1", camera_at, Some(cams.uri("wanted")), false));
    let evidence = evidence_dir();
    let t = spawn_app_with_roads(BrokerKind::Embedded, devices, streets(), |s| vision(s, &evidence)).await;
    let mut env = script_env(&t, school_location(), camera_at.offset(800.0, 0.0)).await;
    env.push(("PERSON_ID", "wp-1".into()));
    // Medium danger: a match waits for a dispatcher's confirmation.
    enrol(&t, Danger::Medium).await;
    run_script("face", env).await;
    assert_eq!(audited(&t, "review.confirm").await, 1);
    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM incidents").fetch_all(t.app.pool().unwrap()).await.unwrap();
    assert_eq!(kinds, ["wanted_person"]);
    t.app.stop().await;
    drop(cams);
}

#[actix_rt::test]
async fn who_may_see_what_in_the_browser() {
    let _one = BROWSER.lock().await;
    let t = spawn_app(BrokerKind::Embedded, city(&["unit-1"]), one_unit).await;
    let env = script_env(&t, school_location(), school_location().offset(1000.0, 0.0)).await;
    run_script("access", env).await;
    // Oversight's reads of the log are themselves in it.
    let reads: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'audit.read'")
        .fetch_one(t.app.pool().unwrap())
        .await
        .unwrap();
    assert!(reads >= 1);
    t.app.stop().await;
}

#[actix_rt::test]
async fn oversight_opened_after_a_custodial_camera_dropped_off_shows_it_at_once() {
    let _one = BROWSER.lock().await;
    let mut devices = city(&["unit-1"]);
    let at = school_location().offset(-300.0, 300.0);
    devices.cameras.push(camera("cam-cell", at, None, true));
    devices.cameras.push(camera("cam-street", at, None, false));
    let t = spawn_app(BrokerKind::Embedded, devices, one_unit).await;
    // Both drop off before the page is opened.
    t.camera_drops_off("cam-cell", &topics::oversight_integrity("cam-cell")).await;
    t.camera_drops_off("cam-street", &topics::integrity("cam-street")).await;
    let mut env = script_env(&t, school_location(), school_location().offset(1000.0, 0.0)).await;
    env.extend([
        ("CAMERA_ID", "cam-cell".to_owned()),
        ("CAMERA_PASSWORD", pw("cam-cell")),
        ("PATROL_CAMERA_ID", "cam-street".to_owned()),
    ]);
    run_script("oversight", env).await;
    t.app.stop().await;
}
