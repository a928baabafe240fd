//! Rate limits per device and topic, through a real Mosquitto with real MQTT clients as the
//! devices: a flooding button's alarms are all acted on (one incident, flagged), while
//! another school is dispatched; a tablet flooding positions is refused with few rejects and
//! keeps working; an edge camera flooding detections gets bounded work.

mod common;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::cameras::camera;
use common::*;
use kuzet::mqtt::codec::RejectCode;
use kuzet::mqtt::topics::{self, DeviceKind};
use kuzet::settings::Settings;
use kuzet_actors::ids::{ButtonId, SiteId};
use kuzet_actors::spec::{ButtonSpec, SiteKind, SiteSpec};
use rumqttc::QoS;
use serde_json::json;
use uuid::Uuid;

const FLOOD: usize = 200;

/// Polls `f` until it holds, for at most 30 s (a loaded 2-core machine).
async fn until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f().await {
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The most `per_s` refills over `elapsed`, rounded up.
fn refills(per_s: f64, elapsed: Duration) -> u64 {
    (per_s * elapsed.as_secs_f64()).ceil() as u64
}

#[actix_rt::test]
async fn a_flooding_button_is_acknowledged_in_one_flagged_incident_and_another_school_is_dispatched() {
    let mut devices = city(&["u1", "u2"]);
    let far = school_location().offset(5_000.0, 0.0);
    devices.sites.push(SiteSpec {
        id: SiteId::parse("school-2").unwrap(),
        name: "School No. 2".into(),
        kind: SiteKind::School,
        location: far,
        buttons: vec![ButtonSpec {
            id: ButtonId::parse("btn-c").unwrap(),
            room: None,
            password: Some(pw("btn-c")),
        }],
    });
    let t = spawn_app(BrokerKind::Mosquitto, devices, one_unit).await;
    let limit = Settings::defaults().limits.alarm;
    let _u1 = t.unit_at("u1", 100.0).await;
    let mut u2 = t.unit_at_point("u2", far.offset(100.0, 0.0)).await;
    t.wait_available(2).await;
    let mut flooder = t.button("btn-a").await;
    let mut other = t.button("btn-c").await;

    // btn-a sends FLOOD raises as fast as its client takes them, each with its own id.
    let started = Instant::now();
    let client = flooder.client.clone();
    let sent: Vec<Uuid> = (0..FLOOD).map(|_| Uuid::new_v4()).collect();
    let to_send = sent.clone();
    let flood = actix_rt::spawn(async move {
        let topic = topics::device(DeviceKind::Button, "btn-a", "alarm");
        for id in &to_send {
            let body = raise(id).to_string().into_bytes();
            client.publish(topic.clone(), QoS::AtLeastOnce, false, body).await.expect("publish queued");
        }
    });
    // The acks, read as they come (the link's queue must not fill), by alarm.
    let (first_acks_tx, first_acks) = tokio::sync::oneshot::channel();
    let acks = actix_rt::spawn(async move {
        let mut first_acks_tx = Some(first_acks_tx);
        let mut acks: HashMap<String, String> = HashMap::new();
        while acks.len() < FLOOD {
            let ack = next_ack(&mut flooder).await;
            let (alarm, incident) = (ack["alarm_id"].as_str().unwrap(), ack["incident_id"].as_str().unwrap());
            let before = acks.insert(alarm.to_owned(), incident.to_owned());
            assert!(before.is_none_or(|b| b == incident), "an alarm acknowledged for two incidents: {ack}");
            if acks.len() == 20 {
                if let Some(tx) = first_acks_tx.take() {
                    let _ = tx.send(());
                }
            }
        }
        (acks, started.elapsed())
    });

    // Meanwhile another school's alarm: offered, accepted, dispatched.
    first_acks.await.expect("the flood is acknowledged");
    let other_alarm = Uuid::new_v4();
    publish(&other, DeviceKind::Button, "btn-c", "alarm", raise(&other_alarm)).await;
    let offer = next_on(&mut u2, "/offers").await;
    assert_eq!(offer["site"]["id"], "school-2", "{offer}");
    let reply = json!({"offer_id": offer["offer_id"], "decision": "accept"});
    publish(&u2, DeviceKind::Unit, "u2", "reply", reply).await;
    loop {
        let ack = next_ack(&mut other).await;
        assert_eq!(ack["alarm_id"], other_alarm.to_string());
        if ack["state"] == "dispatched" {
            break;
        }
    }

    flood.await.unwrap();
    let (acks, elapsed) = acks.await.unwrap();
    // Every alarm acknowledged, all in one incident, none in school 2's.
    for id in &sent {
        assert!(acks.contains_key(&id.to_string()), "alarm {id} was not acknowledged");
    }
    let incident = acks.values().next().unwrap().clone();
    assert!(acks.values().all(|i| *i == incident), "the flood's alarms went to more than one incident");
    assert_ne!(incident, offer["incident_id"].as_str().unwrap());

    // The alarms over the limit: the burst and what refilled during the flood got through
    // as usual, the rest were flagged; none was refused.
    let m = t.app.metrics();
    let over = m.alarms_over_limit.load(Ordering::Relaxed);
    let burst = u64::from(limit.burst);
    assert!(over <= FLOOD as u64 - burst, "{over} over the limit: the burst is {burst}");
    assert!(
        over >= FLOOD as u64 - burst - refills(limit.per_s, elapsed),
        "{over} over the limit in {elapsed:?}"
    );
    assert_eq!(m.rejects(RejectCode::RateLimited), 0, "an alarm was refused");

    // Two incidents open, no more; the flood's says so to the dispatcher, at 1, 10, 100.
    let incidents = t.app.incidents().await;
    assert_eq!(incidents.len(), 2, "{incidents:?}");
    let s = incidents
        .iter()
        .find(|s| s.incident_id.to_string() == incident)
        .expect("the flood's incident is open");
    let flags: Vec<&str> = s
        .timeline
        .iter()
        .filter(|e| e.event == "alarm_flood")
        .inspect(|e| assert_eq!(e.button.as_ref().map(|b| b.as_str()), Some("btn-a")))
        .map(|e| e.detail.as_deref().unwrap_or(""))
        .collect();
    let expected: Vec<u64> = [1, 10, 100, 1000].into_iter().filter(|n| *n <= over).collect();
    assert_eq!(flags.len(), expected.len(), "{flags:?}");
    for (detail, n) in flags.iter().zip(&expected) {
        assert!(detail.starts_with(&format!("{n} alarm")), "{detail}");
    }
    // The flood does not grow the incident: one line per alarm within the limit.
    assert_eq!(s.raised_by.len() as u64, FLOOD as u64 - over, "one line per alarm within the limit");
    assert!(s.raised_by.iter().all(|r| r.button.as_str() == "btn-a"));

    // Every alarm is in the record, with its incident.
    let pool = t.app.pool().unwrap().clone();
    until("the flood's alarms recorded", async || {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM alarms WHERE button_id = 'btn-a' AND action = 'raise' AND incident_id = $1::uuid",
        )
        .bind(&incident)
        .fetch_one(&pool)
        .await
        .unwrap();
        n == FLOOD as i64
    })
    .await;
    t.app.stop().await;
}

#[actix_rt::test]
async fn a_unit_flooding_positions_is_refused_with_few_rejects_and_its_status_and_replies_still_work() {
    let t = spawn_app(BrokerKind::Mosquitto, city(&["u1"]), one_unit).await;
    let limit = Settings::defaults().limits.position;
    let mut u1 = t.unit_at("u1", 100.0).await;
    t.wait_available(1).await;

    let started = Instant::now();
    for i in 0..FLOOD {
        let p = school_location().offset(100.0 + i as f64, 0.0);
        publish(&u1, DeviceKind::Unit, "u1", "position", position(p)).await;
    }
    // Every position of the flood (and the first one) taken or refused (kuzet takes positions
    // on a lane of their own: nothing else the tablet sends is ordered with them), then the
    // notices it sent.
    until("the flood taken in", async || {
        let m = t.app.metrics();
        m.positions.load(Ordering::Relaxed) + m.rejects(RejectCode::RateLimited) > FLOOD as u64
    })
    .await;
    let mut told = 0u64;
    while let Ok(r) = tokio::time::timeout(Duration::from_millis(500), next_on(&mut u1, "/rejects/u1")).await
    {
        assert_eq!(r["code"], "rate_limited", "{r}");
        assert_eq!(r["topic"], "kuzet/v1/units/u1/position");
        let error = r["error"].as_str().unwrap();
        assert!(error.contains(&format!("{} a second, {} at once", limit.per_s, limit.burst)), "{error}");
        told += 1;
    }
    let elapsed = started.elapsed();
    // Told about once a second, not once a message.
    assert!((1..=1 + elapsed.as_secs()).contains(&told), "{told} rejects in {elapsed:?}");
    // The burst (less the first position) and what refilled got through; the rest counted.
    let refused = t.app.metrics().rejects(RejectCode::RateLimited);
    let burst_left = u64::from(limit.burst) - 1;
    assert!(refused <= FLOOD as u64 - burst_left, "{refused} refused");
    assert!(
        refused >= FLOOD as u64 - burst_left - refills(limit.per_s, elapsed),
        "{refused} refused in {elapsed:?}"
    );

    // Its status and replies have limits of their own: they still work.
    let status = |s: &str| json!({"at": chrono::Utc::now(), "status": s});
    publish(&u1, DeviceKind::Unit, "u1", "status", status("busy")).await;
    until("u1 busy", async || t.app.available_units().await == 0).await;
    publish(&u1, DeviceKind::Unit, "u1", "status", status("available")).await;
    t.wait_available(1).await;
    let mut btn = t.button("btn-a").await;
    publish(&btn, DeviceKind::Button, "btn-a", "alarm", raise(&Uuid::new_v4())).await;
    assert_eq!(next_ack(&mut btn).await["state"], "received");
    let offer = next_on(&mut u1, "/offers").await;
    let reply = json!({"offer_id": offer["offer_id"], "decision": "accept"});
    publish(&u1, DeviceKind::Unit, "u1", "reply", reply).await;
    assert_eq!(next_ack(&mut btn).await["state"], "dispatched");
    t.app.stop().await;
}

#[actix_rt::test]
async fn an_edge_camera_flooding_detections_gets_bounded_work_and_kuzet_keeps_working() {
    let mut devices = city(&["u1"]);
    devices.cameras.push(camera("edge-1", school_location(), None, false));
    let t = spawn_app(BrokerKind::Mosquitto, devices, |s| {
        one_unit(s);
        s.limits.detection_workers = 1;
        s.limits.detection_queue = 2;
    })
    .await;
    let mut u1 = t.unit_at("u1", 100.0).await;
    t.wait_available(1).await;
    let mut cam = kuzet_tools::sim::connect_device(
        &t.host,
        t.port,
        DeviceKind::Camera,
        "edge-1",
        &pw("edge-1"),
        &[topics::rejects("edge-1")],
    )
    .await
    .unwrap();
    let watch = t.app.watch().unwrap();
    let m = t.app.metrics();
    let stats = &watch.matcher.stats;

    // The search thread is held up (as by a long search over a large list): one message in
    // its hands and two waiting is all kuzet takes on; the rest is refused at once.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (held, holding) = std::sync::mpsc::channel::<()>();
    let matcher = watch.matcher.clone();
    let holder = std::thread::spawn(move || {
        let _list = matcher.gallery_mut();
        held.send(()).unwrap();
        let _ = released.recv();
    });
    holding.recv().unwrap();
    let detections =
        json!({"at": chrono::Utc::now(), "faces": [{"embedding": vec![0.1; 128], "score": 0.9}]});
    const SENT: u64 = 100;
    for _ in 0..SENT {
        publish(&cam, DeviceKind::Camera, "edge-1", "detections", detections.clone()).await;
    }
    let taken = || stats.edge_faces.load(Ordering::Relaxed);
    let shed = || m.detections_shed.load(Ordering::Relaxed);
    until("every detection taken or refused", async || {
        taken() + shed() + m.rejects(RejectCode::RateLimited) == SENT
    })
    .await;
    assert!((2..=3).contains(&taken()), "{} taken with one thread and a queue of two", taken());
    assert!(shed() >= 1, "nothing refused for the full queue");
    assert_eq!(m.rejects(RejectCode::Overloaded), shed());
    assert!(m.rejects(RejectCode::RateLimited) >= 1, "the flood passed the camera's limit");
    // The camera hears why, both ways.
    let (mut busy, mut limited) = (false, false);
    while !(busy && limited) {
        let r = next_on(&mut cam, "/rejects/edge-1").await;
        assert_eq!(r["topic"], "kuzet/v1/cameras/edge-1/detections");
        match r["code"].as_str().unwrap() {
            "overloaded" => {
                assert!(r["error"].as_str().unwrap().contains("watchlist search is full"), "{r}");
                busy = true;
            }
            "rate_limited" => limited = true,
            other => panic!("unexpected reject {other}: {r}"),
        }
    }

    // Free again: what was taken is searched; and an alarm is dispatched as ever.
    release.send(()).unwrap();
    holder.join().unwrap();
    let searched = taken();
    until("the queued detections searched", async || stats.searches.load(Ordering::Relaxed) == searched)
        .await;
    let mut btn = t.button("btn-a").await;
    publish(&btn, DeviceKind::Button, "btn-a", "alarm", raise(&Uuid::new_v4())).await;
    let offer = next_on(&mut u1, "/offers").await;
    publish(
        &u1,
        DeviceKind::Unit,
        "u1",
        "reply",
        json!({"offer_id": offer["offer_id"], "decision": "accept"}),
    )
    .await;
    while next_ack(&mut btn).await["state"] != "dispatched" {}
    t.app.stop().await;
}
