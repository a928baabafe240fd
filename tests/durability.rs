//! Nothing is lost: kuzet killed outright, PostgreSQL stopped during a burst, the broker
//! stopped during a burst. Real PostGIS, real Mosquitto, kuzet as a process where it is
//! killed, real MQTT clients as buttons and tablets.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::process::*;
use common::*;
use kuzet::mqtt::topics::DeviceKind::{Button, Unit};
use kuzet_actors::geo::GeoPoint;
use kuzet_actors::ids::{ButtonId, SiteId, UnitId};
use kuzet_actors::spec::{ButtonSpec, Devices, SiteKind, SiteSpec, UnitSpec};
use kuzet_tools::sim::DeviceLink;
use serde_json::{json, Value};
use uuid::Uuid;

fn s(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_else(|| panic!("no {key} in {v}")).to_owned()
}

/// `n` schools 2 km apart on a line east of the test school, one button each (`btn-{i}`),
/// and `units` units `u-{i}`.
fn schools(n: usize, units: usize) -> Devices {
    let sites = (0..n)
        .map(|i| SiteSpec {
            id: SiteId::parse(&format!("school-{i}")).unwrap(),
            name: format!("School No. {i}"),
            kind: SiteKind::School,
            location: school_location().offset(0.0, 2000.0 * i as f64),
            buttons: vec![ButtonSpec {
                id: ButtonId::parse(&format!("btn-{i}")).unwrap(),
                room: Some(format!("{}", 100 + i)),
                password: Some(pw(&format!("btn-{i}"))),
            }],
        })
        .collect();
    let units = (0..units)
        .map(|i| UnitSpec {
            id: UnitId::parse(&format!("u-{i}")).unwrap(),
            callsign: format!("U{i}"),
            password: Some(pw(&format!("u-{i}"))),
        })
        .collect();
    Devices { sites, units, cameras: Vec::new() }
}

fn school(i: usize) -> GeoPoint {
    school_location().offset(0.0, 2000.0 * i as f64)
}

// ---------------------------------------------------------------------------------------
// kill -9

async fn unit_link(host: &str, port: u16, id: &str, at: GeoPoint) -> DeviceLink {
    let subs = [
        kuzet::mqtt::topics::offers(id),
        format!("kuzet/v1/units/{id}/incidents/+"),
        kuzet::mqtt::topics::rejects(id),
    ];
    let link =
        kuzet_tools::sim::connect_device(host, port, Unit, id, &pw(id), &subs).await.expect("unit connects");
    publish(&link, Unit, id, "position", position(at)).await;
    link
}

async fn button_link(host: &str, port: u16, id: &str) -> DeviceLink {
    let subs = [kuzet::mqtt::topics::button_ack(id), kuzet::mqtt::topics::rejects(id)];
    kuzet_tools::sim::connect_device(host, port, Button, id, &pw(id), &subs).await.expect("button connects")
}

/// The next ack for `alarm` on a button link, skipping others.
async fn ack_of(btn: &mut DeviceLink, alarm: &Uuid) -> String {
    loop {
        let a = next_ack(btn).await;
        if s(&a, "alarm_id") == alarm.to_string() {
            return s(&a, "state");
        }
    }
}

async fn ack_until(btn: &mut DeviceLink, alarm: &Uuid, state: &str) {
    while ack_of(btn, alarm).await != state {}
}

#[actix_rt::test]
async fn after_kill_9_open_incidents_and_pending_offers_go_on_to_closure() {
    let devices = schools(2, 2);
    let broker = mosquitto_with_acl(&devices);
    let db = fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry.toml");
    std::fs::write(&registry, kuzet::registry_file::to_toml(&devices).unwrap()).unwrap();
    // Long enough that the pending offer is still pending after the restart.
    let (env, log) = ProcessEnv {
        name: "kill-9",
        mqtt_port: broker.port,
        database_url: &db,
        spool_dir: &dir.path().join("spool"),
        registry: &registry,
        http_listen: String::new(),
        offer_timeout_s: 120,
    }
    .build();
    let mut kuzet = KuzetProcess::start(&env, &log);
    let pool = kuzet::store::connect(&db).await.unwrap();

    let (host, port) = ("127.0.0.1", broker.port);
    let mut u0 = unit_link(host, port, "u-0", school(0).offset(300.0, 0.0)).await;
    let mut u1 = unit_link(host, port, "u-1", school(1).offset(300.0, 0.0)).await;
    wait_kuzet(&mut u0, "u-0").await;
    for (link, id, at) in [(&u0, "u-0", school(0)), (&u1, "u-1", school(1))] {
        publish(link, Unit, id, "position", position(at.offset(300.0, 0.0))).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut b0 = button_link(host, port, "btn-0").await;
    let mut b1 = button_link(host, port, "btn-1").await;

    // School 0: offered, accepted, en route. School 1: offered, not answered yet.
    let a0 = Uuid::new_v4();
    publish(&b0, Button, "btn-0", "alarm", raise(&a0)).await;
    let o0 = next_on(&mut u0, "/offers").await;
    let i0 = s(&o0, "incident_id");
    publish(&u0, Unit, "u-0", "reply", json!({"offer_id": o0["offer_id"], "decision": "accept"})).await;
    ack_until(&mut b0, &a0, "dispatched").await;
    let progress = |incident: &str, state: &str| json!({"incident_id": incident, "state": state, "at": chrono::Utc::now()});
    publish(&u0, Unit, "u-0", "progress", progress(&i0, "en_route")).await;
    let a1 = Uuid::new_v4();
    publish(&b1, Button, "btn-1", "alarm", raise(&a1)).await;
    let o1 = next_on(&mut u1, "/offers").await;
    let i1 = s(&o1, "incident_id");
    assert_ne!(i0, i1);

    // Both states are in the record before the kill.
    let recorded = format!(
        "SELECT count(*) FROM incidents WHERE (id = '{i0}' AND state = 'en_route')
            OR (id = '{i1}' AND jsonb_array_length(dispatch->'dispatch'->'pending') = 1)"
    );
    wait_until("both incidents recorded", Duration::from_secs(10), || {
        let (pool, q) = (pool.clone(), recorded.clone());
        async move { count(&pool, &q).await == 2 }
    })
    .await;
    kuzet.kill_9();

    let mut kuzet = KuzetProcess::start(&env, &log);
    wait_kuzet(&mut u0, "u-0").await;

    // The button did not hear back and presses again with the same alarm: no new incident.
    publish(&b0, Button, "btn-0", "alarm", raise(&a0)).await;
    ack_until(&mut b0, &a0, "dispatched").await;

    // The offer made before the kill is still good.
    publish(&u1, Unit, "u-1", "reply", json!({"offer_id": o1["offer_id"], "decision": "accept"})).await;
    ack_until(&mut b1, &a1, "dispatched").await;
    for (link, id, incident) in [(&u0, "u-0", &i0), (&u1, "u-1", &i1)] {
        for state in ["en_route", "on_scene", "cleared"] {
            publish(link, Unit, id, "progress", progress(incident, state)).await;
        }
    }
    ack_until(&mut b0, &a0, "cleared").await;
    ack_until(&mut b1, &a1, "cleared").await;

    wait_until("both incidents closed in the record", Duration::from_secs(10), || {
        let pool = pool.clone();
        async move { count(&pool, "SELECT count(*) FROM incidents WHERE state = 'closed'").await == 2 }
    })
    .await;
    kuzet.kill_9();
    assert_eq!(count(&pool, "SELECT count(*) FROM incidents").await, 2, "no duplicate incident");
    assert_eq!(count(&pool, "SELECT count(*) FROM alarms").await, 2, "each alarm recorded once");
    assert_timelines_whole(&pool).await;
    for (incident, unit) in [(&i0, "u-0"), (&i1, "u-1")] {
        let events: Vec<String> =
            sqlx::query_scalar("SELECT event FROM incident_events WHERE incident_id = $1::uuid ORDER BY seq")
                .bind(incident)
                .fetch_all(&pool)
                .await
                .unwrap();
        let at =
            |e: &str| events.iter().position(|x| x == e).unwrap_or_else(|| panic!("no {e} in {events:?}"));
        assert!(at("alarm_received") < at("restored"), "{events:?}");
        assert!(at("restored") < at("unit_cleared") && at("unit_cleared") < at("closed"), "{events:?}");
        let accepted: Vec<String> = sqlx::query_scalar(
            "SELECT unit_id FROM incident_events WHERE incident_id = $1::uuid AND event = 'reply_accept'",
        )
        .bind(incident)
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(accepted, vec![unit.to_owned()], "{events:?}");
    }
    // The accept of school 1's offer came after the restart.
    let events: Vec<String> =
        sqlx::query_scalar("SELECT event FROM incident_events WHERE incident_id = $1::uuid ORDER BY seq")
            .bind(&i1)
            .fetch_all(&pool)
            .await
            .unwrap();
    let at = |e: &str| events.iter().position(|x| x == e).unwrap();
    assert!(at("restored") < at("reply_accept"), "{events:?}");
    let v = kuzet::store::audit::verify(&pool).await.unwrap();
    assert!(v.first_break.is_none(), "{v:?}");
    assert!(count(&pool, "SELECT count(*) FROM audit_log WHERE action = 'incident.accept'").await == 2);
}

// ---------------------------------------------------------------------------------------
// PostgreSQL stopped for 30 s

#[actix_rt::test]
async fn postgres_stopped_for_30_s_during_a_burst_loses_nothing() {
    const SCHOOLS: usize = 20;
    const ROUNDS: usize = 25; // a raise and a cancel each: 1,000 alarms
    let _ = tracing_subscriber::fmt().with_env_filter("kuzet=info").with_test_writer().try_init();
    let (cluster, url) = tokio::task::spawn_blocking(OwnCluster::start).await.unwrap();
    let devices = schools(SCHOOLS, SCHOOLS);
    let mut settings = test_settings();
    settings.database.url = kuzet::settings::Secret::new(url.clone());
    one_unit(&mut settings);
    // Every unit reports at 20 Hz below, and every position must be stored: a limit above that.
    settings.limits.position.per_s = 40.0;
    let mosquitto = mosquitto_with_acl(&devices);
    settings.mqtt.url = format!("mqtt://127.0.0.1:{}", mosquitto.port);
    let app = kuzet::startup::Application::build(settings, devices.clone()).await.expect("kuzet starts");
    assert!(app.wait_ready(Duration::from_secs(10)).await);
    let (host, port) = ("127.0.0.1", mosquitto.port);
    let pool = kuzet::store::connect(&url).await.unwrap();

    // One unit beside each school, reporting at 20 Hz throughout.
    let mut units = Vec::new();
    for i in 0..SCHOOLS {
        units.push(unit_link(host, port, &format!("u-{i}"), school(i).offset(200.0, 0.0)).await);
    }
    let mut positions_sent = SCHOOLS as u64;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut reporters = Vec::new();
    for (i, u) in units.iter().enumerate() {
        let (client, stop) = (u.client.clone(), stop.clone());
        reporters.push(actix_rt::spawn(async move {
            let mut n = 0u64;
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let p = json!({"at": chrono::Utc::now(), "lat": school(i).offset(200.0, 0.0).lat(),
                    "lon": school(i).offset(200.0, 0.0).lon(), "speed_mps": 3.0});
                let topic = format!("kuzet/v1/units/u-{i}/position");
                if client.publish(topic, rumqttc::QoS::AtLeastOnce, false, p.to_string()).await.is_err() {
                    break;
                }
                n += 1;
            }
            n
        }));
    }
    let mut buttons = Vec::new();
    for i in 0..SCHOOLS {
        buttons.push(button_link(host, port, &format!("btn-{i}")).await);
    }

    // Each school: raise, its unit is offered the incident, cancel; one round every ~1.6 s.
    let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let during_outage = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut schools_run = Vec::new();
    for (i, (mut btn, mut unit)) in buttons.into_iter().zip(units).enumerate() {
        let (down, during_outage) = (down.clone(), during_outage.clone());
        schools_run.push(actix_rt::spawn(async move {
            let id = format!("btn-{i}");
            tokio::time::sleep(Duration::from_millis(80 * i as u64)).await;
            for _ in 0..ROUNDS {
                let alarm = Uuid::new_v4();
                let was_down = down.load(Ordering::Relaxed);
                publish(&btn, Button, &id, "alarm", raise(&alarm)).await;
                let offer = next_on(&mut unit, "/offers").await;
                if was_down && down.load(Ordering::Relaxed) {
                    during_outage.fetch_add(1, Ordering::Relaxed);
                }
                let cancel = json!({"alarm_id": alarm, "action": "cancel", "at": chrono::Utc::now()});
                publish(&btn, Button, &id, "alarm", cancel).await;
                ack_until(&mut btn, &alarm, "cancelled").await;
                let revoked = next_on(&mut unit, &s(&offer, "incident_id")).await;
                assert_eq!(s(&revoked, "event"), "offer_revoked", "{revoked}");
                tokio::time::sleep(Duration::from_millis(1500)).await;
            }
            // The links live on until the positions stop.
            (btn, unit)
        }));
    }

    tokio::time::sleep(Duration::from_secs(5)).await;
    let dir = cluster.dir.clone();
    tokio::task::spawn_blocking(move || pg_sh("stop", &dir)).await.unwrap();
    down.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(30)).await;
    down.store(false, Ordering::Relaxed);
    let dir = cluster.dir.clone();
    let restarted = tokio::task::spawn_blocking(move || pg_sh("start", &dir)).await.unwrap();
    assert_eq!(restarted, format!("DATABASE_URL={url}"), "the same server again");

    let mut links = Vec::new();
    for s in schools_run {
        links.push(s.await.expect("every alarm was dispatched and cancelled"));
    }
    stop.store(true, Ordering::Relaxed);
    for r in reporters {
        positions_sent += r.await.unwrap();
    }
    drop(links);
    // Positions come on a lane of their own: every one sent taken in before the record is read.
    wait_until("kuzet took every position", Duration::from_secs(30), || async {
        app.metrics().positions.load(Ordering::Relaxed) >= positions_sent
    })
    .await;
    let writer = app.writer().expect("a writer");
    wait_until("the spool drained", Duration::from_secs(60), || async {
        writer.flush().await;
        eprintln!("{:?}", writer.stats());
        writer.stats().spool_bytes.load(Ordering::Relaxed) == 0
            && writer.stats().database_up.load(Ordering::Relaxed)
    })
    .await;
    let spooled = writer.stats().batches_spooled.load(Ordering::Relaxed);
    let outage = during_outage.load(Ordering::Relaxed);
    eprintln!("batches spooled {spooled}, alarms dispatched while the database was down {outage}");
    assert!(spooled > 0, "the outage went through the spool");
    assert!(outage >= 100, "alarms were dispatched during the outage ({outage})");
    assert_eq!(writer.stats().batches_rejected.load(Ordering::Relaxed), 0);

    let raises = (SCHOOLS * ROUNDS) as i64;
    assert_eq!(count(&pool, "SELECT count(*) FROM alarms WHERE action = 'raise'").await, raises);
    assert_eq!(count(&pool, "SELECT count(*) FROM alarms WHERE action = 'cancel'").await, raises);
    assert_eq!(count(&pool, "SELECT count(DISTINCT alarm_id) FROM alarms").await, raises);
    assert_eq!(count(&pool, "SELECT count(*) FROM incidents").await, raises);
    assert_eq!(count(&pool, "SELECT count(*) FROM incidents WHERE state = 'cancelled'").await, raises);
    let shed = app.writer().unwrap().stats().positions_shed.load(Ordering::Relaxed);
    let stored = count(&pool, "SELECT count(*) FROM unit_positions").await as u64;
    assert_eq!(stored + shed, positions_sent, "every position stored once (shed: {shed})");
    assert_eq!(shed, 0);
    assert_timelines_whole(&pool).await;
    let v = kuzet::store::audit::verify(&pool).await.unwrap();
    assert!(v.first_break.is_none(), "{v:?}");
    assert_eq!(count(&pool, "SELECT count(*) FROM audit_log WHERE action = 'incident.open'").await, raises);
    drop(cluster);
}

// ---------------------------------------------------------------------------------------
// The broker stopped mid-burst

#[actix_rt::test]
async fn broker_stopped_mid_burst_loses_no_alarm() {
    const SCHOOLS: usize = 100;
    let devices = schools(SCHOOLS, 0);
    let access = kuzet::mosquitto::Access {
        passwords_plain: kuzet::brokerfiles::plaintext_passwords(&devices, "kuzet", SERVICE_PASSWORD),
        acl: kuzet::brokerfiles::acl(&devices, "kuzet"),
    };
    let mut broker = kuzet::mosquitto::MosquittoProcess::start_with(Some(access), true).unwrap();
    let db = fresh_database().await;
    let mut settings = test_settings();
    settings.database.url = kuzet::settings::Secret::new(db.clone());
    settings.mqtt.url = format!("mqtt://127.0.0.1:{}", broker.port);
    let app = kuzet::startup::Application::build(settings, devices.clone()).await.expect("kuzet starts");
    assert!(app.wait_ready(Duration::from_secs(10)).await);
    let pool = kuzet::store::connect(&db).await.unwrap();
    let mut buttons = Vec::new();
    for i in 0..SCHOOLS {
        buttons.push(button_link("127.0.0.1", broker.port, &format!("btn-{i}")).await);
    }

    // Alarms go out over about a second; the broker stops a third of the way in.
    let mut sent = Vec::new();
    for (i, b) in buttons.iter().enumerate() {
        if i == SCHOOLS / 3 {
            broker.stop();
        }
        if i == SCHOOLS / 2 {
            broker.start_again().unwrap();
        }
        let alarm = Uuid::new_v4();
        // Queued by the device's client while the broker is away, sent when it is back.
        b.client
            .publish(
                format!("kuzet/v1/buttons/btn-{i}/alarm"),
                rumqttc::QoS::AtLeastOnce,
                false,
                raise(&alarm).to_string(),
            )
            .await
            .unwrap();
        sent.push(alarm);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wait_until("every alarm recorded", Duration::from_secs(60), || {
        let pool = pool.clone();
        async move {
            let n = count(&pool, "SELECT count(*) FROM alarms").await;
            eprintln!("alarms recorded: {n}");
            n >= SCHOOLS as i64
        }
    })
    .await;
    app.writer().unwrap().flush().await;
    let recorded: Vec<Uuid> =
        sqlx::query_scalar("SELECT alarm_id FROM alarms ORDER BY alarm_id").fetch_all(&pool).await.unwrap();
    sent.sort();
    assert_eq!(recorded, sent, "each alarm recorded exactly once");
    wait_until("an incident per school", Duration::from_secs(10), || {
        let pool = pool.clone();
        async move { count(&pool, "SELECT count(DISTINCT site_id) FROM incidents").await == SCHOOLS as i64 }
    })
    .await;
    assert_eq!(count(&pool, "SELECT count(*) FROM incidents").await, SCHOOLS as i64, "no duplicate incident");
    assert!(app.metrics().broker_disconnects.load(Ordering::Relaxed) > 0, "kuzet saw the broker go");
}
