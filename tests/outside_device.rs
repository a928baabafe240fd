//! kuzet driven by Mosquitto's own command-line clients, as a device maker's firmware or an
//! integrator's script would: nothing of kuzet's code on the device side.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

fn bin(name: &str) -> std::path::PathBuf {
    kuzet::mosquitto::find_bin(name).expect("mosquitto clients installed")
}

/// A Mosquitto client command connected as device `user` (its own client id per `role`).
fn as_device(program: &str, port: u16, user: &str, role: &str) -> Command {
    let mut c = Command::new(bin(program));
    c.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-u", user, "-P", &pw(user)]);
    c.args(["-i", &format!("{user}-{role}"), "-q", "1"]);
    c
}

fn pub_as(port: u16, user: &str, topic: &str, payload: &str) {
    let st = as_device("mosquitto_pub", port, user, "pub").args(["-t", topic, "-m", payload]).status();
    assert!(st.expect("run mosquitto_pub").success(), "mosquitto_pub as {user} on {topic} failed");
}

/// Starts `mosquitto_sub` for `count` messages as a read-only observer account (the broker
/// ties a client id to its username, so the device's own account would be pushed off by the
/// `mosquitto_pub` runs); returns its child process.
fn sub_as(port: u16, observer: &str, topic: &str, count: u32) -> std::process::Child {
    Command::new(bin("mosquitto_sub"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-u",
            observer,
            "-P",
            &observer_password(observer),
        ])
        .args(["-q", "1", "-t", topic, "-C", &count.to_string(), "-W", "15"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run mosquitto_sub")
}

async fn lines(child: std::process::Child) -> Vec<Value> {
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .expect("mosquitto_sub output");
    assert!(out.status.success(), "mosquitto_sub timed out or failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

#[actix_rt::test]
async fn mosquitto_pub_and_sub_as_button_and_tablet() {
    let t = spawn_app(BrokerKind::Mosquitto, city(&["u1"]), one_unit).await;
    let port = t.port;
    let offers = sub_as(port, OBSERVERS[0], "kuzet/v1/units/u1/offers", 1);
    let acks = sub_as(port, OBSERVERS[1], "kuzet/v1/buttons/btn-a/ack", 2);
    // mosquitto_sub has no "subscribed" signal; give both a moment to connect.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let p = school_location().offset(250.0, 0.0);
    let now = chrono::Utc::now().to_rfc3339();
    pub_as(port, "u1", "kuzet/v1/units/u1/online", "true");
    pub_as(
        port,
        "u1",
        "kuzet/v1/units/u1/position",
        &format!(r#"{{"at":"{now}","lat":{},"lon":{}}}"#, p.lat(), p.lon()),
    );
    t.wait_available(1).await;
    pub_as(
        port,
        "btn-a",
        "kuzet/v1/buttons/btn-a/alarm",
        &format!(
            r#"{{"alarm_id":"{}","action":"raise","kind":"medical","at":"{now}"}}"#,
            uuid::Uuid::new_v4()
        ),
    );
    let offer = lines(offers).await.remove(0);
    assert_eq!(offer["site"]["room"], "12");
    assert!((offer["distance_m"].as_f64().unwrap() - 250.0).abs() < 2.0, "{offer}");
    assert!(offer["summary"].as_str().unwrap().contains("medical"), "{offer}");
    pub_as(
        port,
        "u1",
        "kuzet/v1/units/u1/reply",
        &format!(r#"{{"offer_id":"{}","decision":"accept"}}"#, offer["offer_id"].as_str().unwrap()),
    );
    let acks = lines(acks).await;
    assert_eq!(
        acks.iter().map(|a| a["state"].as_str().unwrap()).collect::<Vec<_>>(),
        ["received", "dispatched"]
    );
    assert_eq!(acks[1]["incident_id"], offer["incident_id"]);
}
