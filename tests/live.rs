//! The console's live feed over a real WebSocket: the state on connecting, then every change
//! as the actors make it; each role sees what is theirs.

mod common;

use std::time::Duration;

use awc::ws;
use common::cameras;
use common::*;
use futures_util::{SinkExt, StreamExt};
use kuzet::auth::Role;
use kuzet::mqtt::topics::{self, DeviceKind};
use serde_json::Value;

type Socket = actix_codec::Framed<awc::BoxedSocket, ws::Codec>;

async fn connect(t: &TestApp, role: Role) -> Result<Socket, u16> {
    let base = format!("http://{}", t.app.http_addr().unwrap());
    let token = sign_in_as(t.app.pool().unwrap(), &base, role).await;
    match awc::Client::new()
        .ws(format!("{base}/api/v1/live"))
        .header("Authorization", format!("Bearer {token}"))
        .connect()
        .await
    {
        Ok((_, framed)) => Ok(framed),
        Err(awc::error::WsClientError::InvalidResponseStatus(s)) => Err(s.as_u16()),
        Err(e) => panic!("websocket: {e}"),
    }
}

/// The next text frame as JSON, within `limit`.
async fn next(ws: &mut Socket, limit: Duration) -> Option<Value> {
    let wait = async {
        while let Some(frame) = ws.next().await {
            match frame.expect("a frame") {
                ws::Frame::Text(b) => return Some(serde_json::from_slice::<Value>(&b).expect("JSON")),
                ws::Frame::Ping(p) => ws.send(ws::Message::Pong(p)).await.unwrap(),
                _ => {}
            }
        }
        None
    };
    tokio::time::timeout(limit, wait).await.ok().flatten()
}

/// The next event of `kind`, skipping others, within 10 s.
async fn next_of(ws: &mut Socket, kind: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let v = next(ws, left).await.unwrap_or_else(|| panic!("no {kind} event within 10 s"));
        if v["type"] == kind {
            return v["data"].clone();
        }
    }
}

#[actix_rt::test]
async fn the_console_sees_the_state_then_every_change() {
    let t = spawn_app(BrokerKind::Embedded, city(&["u1"]), one_unit).await;
    let unit = t.unit_at("u1", 300.0).await;
    t.wait_available(1).await;

    // An incident open before the console connects comes with the hello.
    let mut button = t.button("btn-a").await;
    publish(&button, DeviceKind::Button, "btn-a", "alarm", raise(&uuid::Uuid::new_v4())).await;
    let first = next_ack(&mut button).await["incident_id"].as_str().unwrap().to_owned();
    let mut console = connect(&t, Role::Dispatcher).await.expect("a dispatcher connects");
    let hello = next_of(&mut console, "hello").await;
    assert_eq!(hello["user"]["role"], "dispatcher");
    // Every unit as it stands: u1, offered the incident above, is not available.
    let units = next_of(&mut console, "units").await;
    let u1 = units.as_array().unwrap().iter().find(|u| u["unit_id"] == "u1").expect("u1 on the map").clone();
    assert_eq!(u1["callsign"], "U1");
    assert!(u1["lat"].as_f64().is_some() && u1["lon"].as_f64().is_some(), "{u1}");
    assert_eq!(u1["available"], false, "{u1}");
    let known = next_of(&mut console, "incident").await;
    assert_eq!(known["incident_id"], first.as_str());

    // A change after connecting arrives by itself: the button cancels, the incident closes.
    publish(
        &button,
        DeviceKind::Button,
        "btn-a",
        "alarm",
        serde_json::json!({
            "alarm_id": known["raised_by"][0]["alarm_id"], "action": "cancel", "at": chrono::Utc::now()
        }),
    )
    .await;
    let started = std::time::Instant::now();
    let closed = next_of(&mut console, "incident_closed").await;
    println!(
        "incident_closed on the live feed {:.1} ms after the cancel",
        started.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(closed["incident_id"], first.as_str());
    assert_eq!(closed["state"], "cancelled");

    // A unit that moves shows up moved within a second or so, on its own.
    let moved = school_location().offset(900.0, 0.0);
    publish(&unit, DeviceKind::Unit, "u1", "position", serde_json::json!({
        "at": chrono::Utc::now(), "lat": moved.lat(), "lon": moved.lon(), "speed_mps": 9.5, "heading_deg": 270.0
    }))
    .await;
    let update = loop {
        let units = next_of(&mut console, "units").await;
        if let Some(u) =
            units.as_array().unwrap().iter().find(|u| u["unit_id"] == "u1" && u["heading_deg"] == 270.0)
        {
            break u.clone();
        }
    };
    assert!((update["lat"].as_f64().unwrap() - moved.lat()).abs() < 1e-9, "{update}");
    assert_eq!(update["speed_mps"], 9.5);

    // Oversight sees custodial cameras only: none of the incidents.
    let mut oversight = connect(&t, Role::Oversight).await.expect("oversight connects");
    assert_eq!(next_of(&mut oversight, "hello").await["user"]["role"], "oversight");
    next_of(&mut oversight, "ready").await;
    let other = t.button("btn-b").await;
    publish(&other, DeviceKind::Button, "btn-b", "alarm", raise(&uuid::Uuid::new_v4())).await;
    next_of(&mut console, "incident").await;
    assert!(next(&mut oversight, Duration::from_millis(500)).await.is_none(), "oversight saw an incident");

    // An officer's tablet is not a console; nobody signed out gets in.
    assert_eq!(connect(&t, Role::Officer).await.err(), Some(403));
    let base = format!("http://{}", t.app.http_addr().unwrap());
    let anonymous = awc::Client::new().ws(format!("{base}/api/v1/live")).connect().await;
    assert!(matches!(anonymous, Err(awc::error::WsClientError::InvalidResponseStatus(s)) if s == 401));
    t.app.stop().await;
}

/// The events a page is sent on connecting, up to `ready`: the state as it stands.
async fn state_of(ws: &mut Socket) -> Vec<Value> {
    let mut state = Vec::new();
    loop {
        let v = next(ws, Duration::from_secs(10)).await.expect("the state and ready within 10 s");
        if v["type"] == "ready" {
            return state;
        }
        state.push(v);
    }
}

/// The (camera, state) of each integrity alert in `events`.
fn alerts(events: &[Value]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = events
        .iter()
        .filter(|v| v["type"] == "integrity")
        .map(|v| {
            (
                v["data"]["camera"].as_str().unwrap().to_owned(),
                v["data"]["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

fn pair(camera: &str, state: &str) -> (String, String) {
    (camera.to_owned(), state.to_owned())
}

#[actix_rt::test]
async fn a_page_opened_after_a_camera_went_offline_starts_from_its_alert_also_after_a_restart() {
    let db = fresh_database().await;
    let use_db =
        |s: &mut kuzet::settings::Settings| s.database.url = kuzet::settings::Secret::new(db.clone());
    let mut devices = city(&["u1"]);
    let at = school_location().offset(300.0, 0.0);
    devices.cameras.push(cameras::camera("cam-cell", at, None, true));
    devices.cameras.push(cameras::camera("cam-street", at, None, false));
    let first = spawn_app(BrokerKind::Embedded, devices.clone(), use_db).await;

    // Both cameras come online, then drop off (their last will) before any page is open.
    let cells = topics::oversight_integrity("cam-cell");
    let streets = topics::integrity("cam-street");
    first.camera_drops_off("cam-cell", &cells).await;
    first.camera_drops_off("cam-street", &streets).await;

    // Oversight starts from the custodial camera's alert, the console from the other one's.
    let mut oversight = connect(&first, Role::Oversight).await.expect("oversight connects");
    assert_eq!(alerts(&state_of(&mut oversight).await), [pair("cam-cell", "offline")]);
    let mut console = connect(&first, Role::Dispatcher).await.expect("a dispatcher connects");
    assert_eq!(alerts(&state_of(&mut console).await), [pair("cam-street", "offline")]);
    first.app.stop().await;

    // A restarted kuzet (on a broker that keeps nothing of the first) has them from the record.
    let second = spawn_app(BrokerKind::Embedded, devices, use_db).await;
    let mut oversight = connect(&second, Role::Oversight).await.expect("oversight connects");
    let state = state_of(&mut oversight).await;
    assert_eq!(alerts(&state), [pair("cam-cell", "offline")]);
    let alert = &state.iter().find(|v| v["type"] == "integrity").unwrap()["data"];
    assert_eq!(
        (alert["custodial"].as_bool(), alert["audience"].as_str()),
        (Some(true), Some("oversight")),
        "{alert}"
    );
    assert!((alert["location"]["lat"].as_f64().unwrap() - at.lat()).abs() < 1e-9, "{alert}");
    let mut console = connect(&second, Role::Dispatcher).await.expect("a dispatcher connects");
    assert_eq!(alerts(&state_of(&mut console).await), [pair("cam-street", "offline")]);

    // Back online: a page opened now has no alert for it, one watching already was told.
    let mut seen = second.observer(&[&cells]).await;
    let _back = second.camera("cam-cell").await;
    alert_says(&mut seen, &cells, "ok").await;
    assert_eq!(next_of(&mut oversight, "integrity").await["state"], "ok");
    let mut later = connect(&second, Role::Oversight).await.expect("oversight connects");
    let state = state_of(&mut later).await;
    assert!(alerts(&state).is_empty(), "{state:?}");
    let mut later = connect(&second, Role::Dispatcher).await.expect("a dispatcher connects");
    assert_eq!(alerts(&state_of(&mut later).await), [pair("cam-street", "offline")]);
    // The record follows: the camera back after the restart is news, so its latest alert
    // there is ok, and a third start shows no alert for it.
    second.app.stop().await;
    let latest: String = sqlx::query_scalar(
        "SELECT state FROM camera_alerts WHERE camera_id = 'cam-cell' ORDER BY at DESC LIMIT 1",
    )
    .fetch_one(second.app.pool().unwrap())
    .await
    .unwrap();
    assert_eq!(latest, "ok");
}

/// A feed opened with `token` (and `origin`, as a browser sends it).
async fn connect_with(base: &str, token: &str, origin: Option<&str>) -> Result<Socket, u16> {
    let mut req = awc::Client::new()
        .ws(format!("{base}/api/v1/live"))
        .header("Authorization", format!("Bearer {token}"));
    if let Some(o) = origin {
        req = req.origin(o);
    }
    match req.connect().await {
        Ok((_, framed)) => Ok(framed),
        Err(awc::error::WsClientError::InvalidResponseStatus(s)) => Err(s.as_u16()),
        Err(e) => panic!("websocket: {e}"),
    }
}

/// The `signed_out` frame with its reason, then the end of the stream: the feed ends.
async fn ends_signed_out(ws: &mut Socket, limit: Duration) -> String {
    let deadline = tokio::time::Instant::now() + limit;
    let reason = loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let v = next(ws, left).await.expect("a signed_out frame before the feed ends");
        if v["type"] == "signed_out" {
            break v["data"]["reason"].as_str().unwrap().to_owned();
        }
    };
    assert!(next(ws, Duration::from_secs(5)).await.is_none(), "nothing after signed_out: the feed closed");
    reason
}

#[actix_rt::test]
async fn the_feed_ends_with_its_session_signed_out_disabled_or_expired() {
    let t = spawn_app(BrokerKind::Embedded, city(&["u1"]), one_unit).await;
    let base = format!("http://{}", t.app.http_addr().unwrap());
    let pool = t.app.pool().unwrap();

    // Signing out closes the feed at once.
    let token = sign_in_as(pool, &base, Role::Dispatcher).await;
    let mut ws = connect_with(&base, &token, None).await.expect("connects");
    state_of(&mut ws).await;
    let res = client()
        .delete(format!("{base}/api/v1/session"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(ends_signed_out(&mut ws, Duration::from_secs(5)).await, "signed out");

    // A user disabled from the command line (another process): within the re-check.
    let token = sign_in_as(pool, &base, Role::Supervisor).await;
    let name: String = sqlx::query_scalar(
        "SELECT u.username FROM users u JOIN sessions s USING (username) WHERE u.role = 'supervisor'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let mut ws = connect_with(&base, &token, None).await.expect("connects");
    state_of(&mut ws).await;
    assert!(kuzet::auth::disable_user(pool, &name, "user:test").await.unwrap());
    let limit = kuzet::auth::SESSION_RECHECK * 3;
    assert_eq!(ends_signed_out(&mut ws, limit).await, "session ended");
    assert_eq!(connect_with(&base, &token, None).await.err(), Some(401));
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'user.disable' AND subject = $1")
            .bind(&name)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(audited, 1);

    // A session that expires while the feed is open.
    let token = sign_in_as(pool, &base, Role::Oversight).await;
    sqlx::query(
        "UPDATE sessions SET expires_at = now() + interval '2 seconds' WHERE username LIKE 'oversight-%'",
    )
    .execute(pool)
    .await
    .unwrap();
    let mut ws = connect_with(&base, &token, None).await.expect("connects");
    state_of(&mut ws).await;
    assert_eq!(ends_signed_out(&mut ws, Duration::from_secs(10)).await, "session expired");
    t.app.stop().await;
}

#[actix_rt::test]
async fn a_page_of_another_site_cannot_open_the_feed() {
    let t = spawn_app(BrokerKind::Embedded, city(&["u1"]), |s| {
        one_unit(s);
        s.http.origins = vec!["https://console.example.org".into()];
    })
    .await;
    let base = format!("http://{}", t.app.http_addr().unwrap());
    let token = sign_in_as(t.app.pool().unwrap(), &base, Role::Dispatcher).await;
    // Cross-site WebSocket hijacking: a foreign page's Origin is refused before anything.
    assert_eq!(connect_with(&base, &token, Some("https://evil.example")).await.err(), Some(403));
    assert_eq!(connect_with(&base, &token, Some("null")).await.err(), Some(403));
    // kuzet's own pages, and an origin the operator listed (a proxy in front), are admitted.
    let mut own = connect_with(&base, &token, Some(&base)).await.expect("own origin");
    state_of(&mut own).await;
    let mut listed = connect_with(&base, &token, Some("https://console.example.org")).await.expect("listed");
    state_of(&mut listed).await;
    t.app.stop().await;
}
