//! kuzet starts and dispatches with PostgreSQL down: it starts from its local copy (the spool
//! folder's `state.json`), a real unit whose position it knew before the restart gets the
//! offer, and once PostgreSQL is back the spool goes in, each record once. Real PostGIS (a
//! private cluster the test stops), real Mosquitto with the generated ACL, kuzet as a process.

mod common;

use std::time::{Duration, Instant};

use common::process::*;
use common::*;
use kuzet::mqtt::topics::DeviceKind::{Button, Unit};
use kuzet_actors::ids::{ButtonId, SiteId, UnitId};
use kuzet_actors::spec::{ButtonSpec, Devices, SiteKind, SiteSpec, UnitSpec};
use serde_json::{json, Value};
use uuid::Uuid;

fn devices() -> Devices {
    Devices {
        sites: vec![SiteSpec {
            id: SiteId::parse("school-0").unwrap(),
            name: "School No. 0".into(),
            kind: SiteKind::School,
            location: school_location(),
            buttons: vec![ButtonSpec {
                id: ButtonId::parse("btn-0").unwrap(),
                room: Some("101".into()),
                password: Some(pw("btn-0")),
            }],
        }],
        units: vec![UnitSpec {
            id: UnitId::parse("u-0").unwrap(),
            callsign: "U0".into(),
            password: Some(pw("u-0")),
        }],
        cameras: Vec::new(),
    }
}

fn local_copy(dir: &std::path::Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(dir.join("state.json")).ok()?).ok()
}

#[actix_rt::test]
async fn a_unit_gets_an_offer_while_the_database_is_down_at_start() {
    let (cluster, url) = tokio::task::spawn_blocking(OwnCluster::start).await.unwrap();
    let devices = devices();
    let broker = mosquitto_with_acl(&devices);
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let registry = dir.path().join("registry.toml");
    std::fs::write(&registry, kuzet::registry_file::to_toml(&devices).unwrap()).unwrap();
    let http_port = free_port();
    let (env, log) = ProcessEnv {
        name: "dbdown",
        mqtt_port: broker.port,
        database_url: &url,
        spool_dir: &spool,
        registry: &registry,
        http_listen: format!("127.0.0.1:{http_port}"),
        offer_timeout_s: 120,
    }
    .build();

    // A first run with the database: the unit reports where it is.
    let mut kuzet = KuzetProcess::start(&env, &log);
    let (host, port) = ("127.0.0.1", broker.port);
    let subs = [
        kuzet::mqtt::topics::offers("u-0"),
        "kuzet/v1/units/u-0/incidents/+".to_owned(),
        kuzet::mqtt::topics::rejects("u-0"),
    ];
    let mut u0 = kuzet_tools::sim::connect_device(host, port, Unit, "u-0", &pw("u-0"), &subs).await.unwrap();
    wait_kuzet(&mut u0, "u-0").await;
    publish(&u0, Unit, "u-0", "position", position(school_location().offset(300.0, 0.0))).await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    wait_until("the position in the record and in the local copy", Duration::from_secs(10), || {
        let pool = pool.clone();
        let spool = spool.clone();
        async move {
            let in_copy = local_copy(&spool).is_some_and(|s| {
                s["positions"].as_array().is_some_and(|p| p.iter().any(|p| p["unit"] == "u-0"))
            });
            in_copy && count(&pool, "SELECT count(*) FROM unit_positions").await == 1
        }
    })
    .await;
    let copy = std::fs::read_to_string(spool.join("state.json")).unwrap();
    assert!(!copy.contains(&pw("u-0")), "no password in the local copy");
    kuzet.kill_9();
    pool.close().await;
    let cluster_dir = cluster.dir.clone();
    tokio::task::spawn_blocking(move || pg_sh("stop", &cluster_dir)).await.unwrap();

    // Again, with the database down: kuzet comes up from its local copy.
    let started = Instant::now();
    let mut kuzet = KuzetProcess::start(&env, &log);
    wait_kuzet(&mut u0, "u-0").await;
    let up_after = started.elapsed();
    eprintln!("kuzet answered {} ms after it was started with the database down", up_after.as_millis());
    assert!(up_after < Duration::from_secs(15), "started in {up_after:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("kuzet starts from its local copy"), "the log says where it started from");

    // The query API answers, and says the database is away.
    let asked = Instant::now();
    let res = client()
        .get(format!("http://127.0.0.1:{http_port}/api/v1/incidents"))
        .insert_header(("Authorization", "Bearer not-checked-without-a-database"))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .expect("the query API answers");
    assert_eq!(res.status().as_u16(), 503);
    assert!(asked.elapsed() < Duration::from_secs(10), "answered in {:?}", asked.elapsed());

    // The button presses; the unit is known only from the local copy (it sent no position
    // since), and gets the offer.
    let bsubs = [kuzet::mqtt::topics::button_ack("btn-0"), kuzet::mqtt::topics::rejects("btn-0")];
    let mut b0 =
        kuzet_tools::sim::connect_device(host, port, Button, "btn-0", &pw("btn-0"), &bsubs).await.unwrap();
    let alarm = Uuid::new_v4();
    let pressed = Instant::now();
    publish(&b0, Button, "btn-0", "alarm", raise(&alarm)).await;
    let offer = next_on(&mut u0, "/offers").await;
    eprintln!("offer {} ms after the press, the database down", pressed.elapsed().as_millis());
    let incident = offer["incident_id"].as_str().expect("an incident id").to_owned();
    publish(&u0, Unit, "u-0", "reply", json!({"offer_id": offer["offer_id"], "decision": "accept"})).await;
    loop {
        let a = next_ack(&mut b0).await;
        if a["alarm_id"] == json!(alarm) && a["state"] == "dispatched" {
            break;
        }
    }

    // The database comes back: the spool goes in, each record once.
    let cluster_dir = cluster.dir.clone();
    let restarted = tokio::task::spawn_blocking(move || pg_sh("start", &cluster_dir)).await.unwrap();
    assert_eq!(restarted, format!("DATABASE_URL={url}"), "the same server again");
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let accepted = format!(
        "SELECT count(*) FROM incident_events WHERE incident_id = '{incident}' AND event = 'reply_accept' AND unit_id = 'u-0'"
    );
    wait_until("the alarm and the accepted incident in the database", Duration::from_secs(60), || {
        let (pool, accepted) = (pool.clone(), accepted.clone());
        async move {
            count(&pool, &format!("SELECT count(*) FROM alarms WHERE alarm_id = '{alarm}'")).await == 1
                && count(&pool, &accepted).await == 1
        }
    })
    .await;
    // The spool is empty once everything in it is written.
    wait_until("the spool drained", Duration::from_secs(30), || {
        let spool = spool.clone();
        async move { std::fs::metadata(spool.join("spool.jsonl")).is_ok_and(|m| m.len() == 0) }
    })
    .await;
    kuzet.kill_9();
    assert_eq!(count(&pool, "SELECT count(*) FROM alarms").await, 1, "the alarm recorded once");
    assert_eq!(count(&pool, "SELECT count(*) FROM incidents").await, 1, "one incident");
    assert_eq!(count(&pool, &accepted).await, 1, "the accept recorded once");
    let units: Value = sqlx::query_scalar("SELECT snapshot->'units' FROM incidents WHERE id = $1::uuid")
        .bind(&incident)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(units[0]["unit"], "u-0", "the unit is on the incident in the record: {units}");
    assert_eq!(
        count(&pool, "SELECT count(*) FROM audit_log WHERE action = 'incident.accept'").await,
        1,
        "the accept audited once"
    );
    assert_timelines_whole(&pool).await;
    let v = kuzet::store::audit::verify(&pool).await.unwrap();
    assert!(v.first_break.is_none(), "{v:?}");
    drop(cluster);
}
