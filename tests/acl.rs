//! Device identity at the broker: with the generated Mosquitto ACL a device can publish and
//! read only under its own id, and a wrong password does not connect at all.

mod common;

use std::time::Duration;

use common::*;
use kuzet::mqtt::topics::DeviceKind::{Button, Unit};
use kuzet::sim::connect_device;
use serde_json::json;
use uuid::Uuid;

#[actix_rt::test]
async fn a_unit_cannot_publish_or_read_as_another_device() {
    let t = spawn_app(BrokerKind::Mosquitto, city(&["u1", "u2"]), one_unit).await;
    let mut all = t.observer(&["kuzet/v1/#"]).await;
    let mut u1 = t.unit_at("u1", 500.0).await;
    let mut u2 = t.unit_at("u2", 100.0).await;
    t.wait_available(2).await;

    // u1 tries to read u2's offers, then raise an alarm as a button and answer as u2.
    u1.client.subscribe("kuzet/v1/units/u2/offers", rumqttc::QoS::AtLeastOnce).await.unwrap();
    publish(&u1, Button, "btn-a", "alarm", raise(&Uuid::new_v4())).await;
    publish(&u1, Unit, "u2", "status", json!({"at": chrono::Utc::now(), "status": "off_duty"})).await;
    // A channel that is not in u1's ACL either: it never arrives.
    publish(&u1, Unit, "u1", "not-a-channel", json!({})).await;
    assert!(topics_until(&mut all, "kuzet/v1/units/u1/not-a-channel", 1).await.is_none());
    // Then a message u1 may send. Mosquitto keeps one client's messages in order, so once it
    // arrives, the forged ones would have arrived before it.
    publish(&u1, Unit, "u1", "position", position(school_location().offset(500.0, 0.0))).await;
    let seen =
        topics_until(&mut all, "kuzet/v1/units/u1/position", 5).await.expect("u1's own position arrives");
    assert!(
        !seen.iter().any(|t| t.contains("/buttons/btn-a/alarm") || t.contains("/units/u2/")),
        "forged messages passed the broker: {seen:?}"
    );
    assert!(t.app.incidents().await.is_empty(), "the forged alarm made no incident");
    assert_eq!(t.app.available_units().await, 2, "u2 was not set off duty by u1");

    // A real alarm: u2 is nearest and gets the offer; u1 does not see it.
    let btn = t.button("btn-a").await;
    publish(&btn, Button, "btn-a", "alarm", raise(&Uuid::new_v4())).await;
    next_on(&mut u2, "/units/u2/offers").await;
    nothing_on(&mut u1, "/units/u2/offers", Duration::from_millis(500)).await;
}

/// The topics `link` receives before `topic`, or None when `topic` does not come within `secs`.
async fn topics_until(link: &mut kuzet::sim::DeviceLink, topic: &str, secs: u64) -> Option<Vec<String>> {
    let wait = async {
        let mut seen = Vec::new();
        while let Some((t, _)) = link.rx.recv().await {
            if t == topic {
                return Some(seen);
            }
            seen.push(t);
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(secs), wait).await.ok().flatten()
}

#[actix_rt::test]
async fn a_wrong_password_does_not_connect() {
    let t = spawn_app(BrokerKind::Mosquitto, city(&["u1"]), |_| {}).await;
    let r = connect_device(&t.host, t.port, Unit, "u1", "guess", &["kuzet/v1/units/u1/offers".into()]).await;
    assert!(r.is_err(), "connected with a wrong password");
    let r = connect_device(&t.host, t.port, Unit, "ghost", "pw-ghost", &[]).await;
    assert!(r.is_err(), "an unknown device connected");
}

#[actix_rt::test]
async fn the_embedded_broker_refuses_wrong_credentials() {
    let t = spawn_app(BrokerKind::Embedded, city(&["u1"]), |_| {}).await;
    let r = connect_device(&t.host, t.port, Unit, "u1", "guess", &["kuzet/v1/units/u1/offers".into()]).await;
    assert!(r.is_err(), "connected with a wrong password");
}
