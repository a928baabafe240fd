//! kuzet's own broker: a Mosquitto child process kuzet configures, watches and restarts.
//! A slow subscriber's messages are queued up to a bound and what is dropped beyond it is
//! counted and reported to kuzet; the broker keeps its state on disk; a broker that dies is
//! started again and kuzet and the devices carry on.

mod common;

use std::io::{Read as _, Write as _};
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::process::wait_until;
use common::*;
use kuzet::mqtt::topics::DeviceKind::Button;
use uuid::Uuid;

/// An MQTT 3.1.1 client on a bare socket that subscribes and then never reads again (and so
/// never acknowledges): the slowest subscriber there is.
fn stalled_subscriber(port: u16, user: &str, password: &str, filter: &str) -> std::net::TcpStream {
    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u16).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    fn packet(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![kind];
        let mut n = body.len();
        loop {
            let mut b = (n % 128) as u8;
            n /= 128;
            if n > 0 {
                b |= 0x80;
            }
            out.push(b);
            if n == 0 {
                break;
            }
        }
        out.extend_from_slice(body);
        out
    }
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut connect = Vec::new();
    string(&mut connect, "MQTT");
    // Level 4, username + password + clean session, keep-alive off (it never pings).
    connect.extend_from_slice(&[4, 0xC2, 0, 0]);
    string(&mut connect, user);
    string(&mut connect, user);
    string(&mut connect, password);
    s.write_all(&packet(0x10, &connect)).unwrap();
    let mut connack = [0u8; 4];
    s.read_exact(&mut connack).unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0], "the subscriber is accepted");
    let mut sub = vec![0, 1];
    string(&mut sub, filter);
    sub.push(1);
    s.write_all(&packet(0x82, &sub)).unwrap();
    let mut suback = [0u8; 5];
    s.read_exact(&mut suback).unwrap();
    assert_eq!(suback, [0x90, 3, 0, 1, 1], "QoS 1 granted");
    s
}

#[actix_rt::test]
async fn a_slow_subscriber_is_queued_to_a_bound_and_what_is_dropped_is_counted() {
    // A feed kuzet does not read, so only the stalled recorder below is slow. (The bound holds
    // for every client, kuzet's own sessions too: keep it large in production.)
    let feeder = kuzet::settings::Integration {
        username: "feeder".into(),
        password: kuzet::settings::Secret::new("feeder-password-for-tests"),
        read: Vec::new(),
        write: vec!["kuzet/v1/feed/#".into()],
    };
    let t = spawn_app(BrokerKind::Embedded, city(&["u1"]), |s| {
        s.broker.max_queued_messages = 10;
        s.broker.integrations.push(feeder);
    })
    .await;
    // A recorder reading everything under kuzet/v1/ that has stopped reading.
    let stalled = stalled_subscriber(t.port, OBSERVERS[0], &observer_password(OBSERVERS[0]), "kuzet/v1/#");
    let feed =
        kuzet_tools::sim::connect_observer(&t.host, t.port, "feeder", "feeder-password-for-tests", &[])
            .await
            .expect("the feeder connects");
    const N: u64 = 300;
    for i in 0..N {
        feed.client
            .publish("kuzet/v1/feed/x", rumqttc::QoS::AtLeastOnce, false, format!("{{\"n\":{i}}}"))
            .await
            .unwrap();
    }
    // The recorder holds 100 in flight (never acknowledged) and 10 queued; the broker drops
    // the rest, and kuzet hears of each one.
    let dropped = || t.app.metrics().broker_dropped.load(Ordering::Relaxed);
    wait_until("kuzet counts what the broker dropped", Duration::from_secs(15), || async {
        dropped() >= N - 110
    })
    .await;
    assert!(dropped() <= N, "no more dropped than were sent to the recorder: {}", dropped());
    // Alarms still flow.
    let mut btn = t.button("btn-a").await;
    let alarm = Uuid::new_v4();
    publish(&btn, Button, "btn-a", "alarm", raise(&alarm)).await;
    assert_eq!(next_ack(&mut btn).await["alarm_id"], alarm.to_string());
    drop(stalled);
}

#[actix_rt::test]
async fn a_broker_that_dies_is_started_again_and_keeps_its_state() {
    let dir = std::env::temp_dir().join(format!("kuzet-broker-{}", Uuid::new_v4().simple()));
    let d = dir.clone();
    let t = spawn_app(BrokerKind::Embedded, city(&["u1"]), move |s| {
        one_unit(s);
        s.broker.data_dir = d;
    })
    .await;
    let broker = t.app.managed_broker().expect("kuzet runs its own broker");
    let first = broker.pid();
    assert_ne!(first, 0);

    // Killed outright: started again, and kuzet connects again by itself.
    unsafe { libc::kill(first as i32, libc::SIGKILL) };
    wait_until("the broker is started again", Duration::from_secs(10), || async {
        broker.restarts() == 1 && broker.pid() != 0 && broker.pid() != first
    })
    .await;
    assert!(t.app.wait_ready(Duration::from_secs(15)).await, "kuzet connected to the new broker");
    let mut u1 = t.unit_at("u1", 300.0).await;
    t.wait_available(1).await;
    let mut btn = t.button("btn-a").await;
    let alarm = Uuid::new_v4();
    publish(&btn, Button, "btn-a", "alarm", raise(&alarm)).await;
    assert_eq!(next_ack(&mut btn).await["alarm_id"], alarm.to_string());
    let offer = next_on(&mut u1, "/offers").await;
    let incident = offer["incident_id"].as_str().unwrap().to_owned();

    // Stopped as an operator would (SIGTERM: it saves its state), then started again: the
    // incident's retained snapshot is still there for a console that connects afterwards.
    let second = broker.pid();
    unsafe { libc::kill(second as i32, libc::SIGTERM) };
    wait_until("the broker is started again", Duration::from_secs(10), || async {
        broker.restarts() == 2 && broker.pid() != 0 && broker.pid() != second
    })
    .await;
    assert!(t.app.wait_ready(Duration::from_secs(15)).await, "kuzet connected again");
    let db = dir.join("mosquitto.db");
    assert!(std::fs::metadata(&db).map(|m| m.len() > 0).unwrap_or(false), "{} was saved", db.display());
    let mut console = t.observer(&[&format!("kuzet/v1/incidents/{incident}")]).await;
    let snap = next_on(&mut console, &incident).await;
    assert_eq!(snap["incident_id"], incident, "{snap}");
}

#[actix_rt::test]
async fn a_device_cannot_take_a_name_of_kuzets_own() {
    let mut devices = city(&["u1"]);
    devices.units.push(kuzet_actors::spec::UnitSpec {
        id: kuzet_actors::ids::UnitId::parse("kuzet-units").unwrap(),
        callsign: "X".into(),
        password: Some(pw("kuzet-units")),
    });
    let mut settings = test_settings();
    settings.database.url = kuzet::settings::Secret::new(fresh_database().await);
    let e = match kuzet::startup::Application::build(settings, devices).await {
        Ok(_) => panic!("kuzet started with a device named like its own account"),
        Err(e) => format!("{e:#}"),
    };
    assert!(e.contains("kuzet-units"), "{e}");
}

#[actix_rt::test]
async fn a_credential_issued_while_kuzet_runs_lets_its_device_in_and_a_rotated_one_stops_working() {
    let creds = std::env::temp_dir().join(format!("kuzet-creds-{}", Uuid::new_v4().simple()));
    let mut devices = city(&["u1"]);
    // A unit with no password in the registry: it cannot connect until one is issued.
    devices.units.push(kuzet_actors::spec::UnitSpec {
        id: kuzet_actors::ids::UnitId::parse("u-new").unwrap(),
        callsign: "NEW".into(),
        password: None,
    });
    let path = creds.clone();
    let t = spawn_app(BrokerKind::Embedded, devices, move |s| s.registry.credentials_file = path).await;
    let connect = |password: String| {
        let (host, port) = (t.host.clone(), t.port);
        async move {
            kuzet_tools::sim::connect_device(
                &host,
                port,
                kuzet::mqtt::topics::DeviceKind::Unit,
                "u-new",
                &password,
                &[],
            )
            .await
        }
    };
    assert!(connect("anything-at-all-here".into()).await.is_err(), "no password yet");

    let first = kuzet::credentials::issue(&creds, &["u-new".into()]).unwrap().remove(0).1;
    assert_eq!(first.len(), 22, "128 bits, URL-safe base64");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let link = loop {
        match connect(first.clone()).await {
            Ok(l) => break l,
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("the issued password never let u-new in: {e:#}"),
        }
    };
    drop(link);

    // Rotated: the new password works, the old one stops working, without a restart.
    let second = kuzet::credentials::issue(&creds, &["u-new".into()]).unwrap().remove(0).1;
    wait_until("the old password is refused", Duration::from_secs(15), || {
        let c = connect(first.clone());
        async move { c.await.is_err() }
    })
    .await;
    assert!(connect(second).await.is_ok(), "the rotated password lets u-new in");
    let _ = std::fs::remove_file(&creds);
}
