//! Device identity at the broker, on every broker kuzet ships (its own, and an external
//! Mosquitto with the files `kuzet broker-files` writes): a device publishes and reads only
//! under its own id, its client id is its username, kuzet's own accounts are out of reach,
//! and a wrong password does not connect at all.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use kuzet::mqtt::topics::DeviceKind::{Button, Unit};
use kuzet_actors::ids::{ButtonId, SiteId};
use kuzet_actors::spec::{ButtonSpec, Devices, SiteKind, SiteSpec};
use kuzet_tools::sim::{connect_device, connect_observer};
use serde_json::json;
use uuid::Uuid;

/// The test city and a second school with one button, `btn-c`, 3 km away.
fn two_schools(units: &[&str]) -> Devices {
    let mut d = city(units);
    d.sites.push(SiteSpec {
        id: SiteId::parse("school-2").unwrap(),
        name: "School No. 2".into(),
        kind: SiteKind::School,
        location: school_location().offset(3000.0, 0.0),
        buttons: vec![ButtonSpec {
            id: ButtonId::parse("btn-c").unwrap(),
            room: None,
            password: Some(pw("btn-c")),
        }],
    });
    d
}

on_both_brokers!(a_unit_cannot_publish_or_read_as_another_device);
async fn a_unit_cannot_publish_or_read_as_another_device(kind: BrokerKind) {
    let t = spawn_app(kind, city(&["u1", "u2"]), one_unit).await;
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
    // Then a message u1 may send. The broker keeps one client's messages in order, so once it
    // arrives, the forged ones would have arrived before it.
    publish(&u1, Unit, "u1", "position", position(school_location().offset(500.0, 0.0))).await;
    let seen =
        topics_until(&mut all, "kuzet/v1/units/u1/position", 5).await.expect("u1's own position arrives");
    assert!(
        !seen.iter().any(|t| t.contains("/buttons/btn-a/alarm")
            || t.contains("/units/u2/")
            || t.contains("not-a-channel")),
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

on_both_brokers!(one_schools_button_cannot_raise_anothers_alarm);
async fn one_schools_button_cannot_raise_anothers_alarm(kind: BrokerKind) {
    let t = spawn_app(kind, two_schools(&["u1"]), one_unit).await;
    let mut u1 = t.unit_at("u1", 200.0).await;
    t.wait_available(1).await;
    let mut mine = t.button("btn-a").await;
    // btn-a holds only its own password and raises an alarm on school 2's button topic.
    publish(&mine, Button, "btn-c", "alarm", raise(&Uuid::new_v4())).await;
    // Then its own: the broker keeps one client's messages in order, and both go to kuzet's
    // alarm connection, so the forged one would be handled first.
    let own = Uuid::new_v4();
    publish(&mine, Button, "btn-a", "alarm", raise(&own)).await;
    let ack = next_ack(&mut mine).await;
    assert_eq!(ack["alarm_id"], own.to_string());
    let offer = next_on(&mut u1, "/offers").await;
    assert_eq!(offer["site"]["name"], "School No. 1", "{offer}");
    let incidents = t.app.incidents().await;
    assert_eq!(incidents.len(), 1, "only school 1's own alarm opened an incident: {incidents:?}");
    nothing_on(&mut u1, "/offers", Duration::from_millis(300)).await;
}

on_both_brokers!(a_device_reading_everything_reads_only_its_own);
async fn a_device_reading_everything_reads_only_its_own(kind: BrokerKind) {
    let t = spawn_app(kind, two_schools(&["u1"]), one_unit).await;
    let mut u1 = t.unit_at("u1", 2800.0).await;
    t.wait_available(1).await;
    let mut spy = t.button("btn-a").await;
    // Whatever the broker answers to the filter, nothing of another device may arrive.
    let _ = spy.client.subscribe("kuzet/v1/#", rumqttc::QoS::AtLeastOnce).await;
    let _ = spy.client.subscribe("#", rumqttc::QoS::AtLeastOnce).await;
    let mut other = t.button("btn-c").await;
    let theirs = Uuid::new_v4();
    publish(&other, Button, "btn-c", "alarm", raise(&theirs)).await;
    assert_eq!(next_ack(&mut other).await["alarm_id"], theirs.to_string());
    let offer = next_on(&mut u1, "/offers").await;
    // Everything about school 2's alarm was published before the spy's own ack below: kuzet
    // publishes in order on one connection and the broker delivers in order to one client.
    let own = Uuid::new_v4();
    publish(&spy, Button, "btn-a", "alarm", raise(&own)).await;
    let seen = topics_until(&mut spy, "kuzet/v1/buttons/btn-a/ack", 10).await.expect("the spy's own ack");
    let foreign: Vec<_> = seen
        .iter()
        .filter(|t| !t.starts_with("kuzet/v1/buttons/btn-a/") && !t.starts_with("kuzet/v1/rejects/btn-a"))
        .collect();
    assert!(foreign.is_empty(), "btn-a read other devices' topics: {foreign:?} (offer was {offer})");
}

on_both_brokers!(a_forged_retained_offline_does_not_take_a_unit_away);
async fn a_forged_retained_offline_does_not_take_a_unit_away(kind: BrokerKind) {
    let t = spawn_app(kind, city(&["u1"]), one_unit).await;
    let mut u1 = t.unit_at("u1", 300.0).await;
    t.wait_available(1).await;
    let forger = t.button("btn-b").await;
    forger
        .client
        .publish("kuzet/v1/units/u1/online", rumqttc::QoS::AtLeastOnce, true, "false")
        .await
        .unwrap();
    // A later message of the forger's own, on the same kuzet connection, is handled after the
    // forged one would have been: a malformed heartbeat, answered with a reject.
    let mut forger = forger;
    publish_raw(&forger, "kuzet/v1/buttons/btn-b/heartbeat", b"not json".to_vec()).await;
    next_on(&mut forger, "/rejects/btn-b").await;
    let mut btn = t.button("btn-a").await;
    assert_eq!(t.app.available_units().await, 1, "u1 is still available");
    // A new observer would get a forged retained message at once: there is none.
    let mut late = t.observer(&["kuzet/v1/units/u1/online"]).await;
    let first = next_on(&mut late, "/units/u1/online").await;
    assert_eq!(first, json!(true), "the retained presence is u1's own");
    publish(&btn, Button, "btn-a", "alarm", raise(&Uuid::new_v4())).await;
    next_ack(&mut btn).await;
    next_on(&mut u1, "/offers").await;
}

on_both_brokers!(kuzets_own_accounts_and_client_ids_are_out_of_reach);
async fn kuzets_own_accounts_and_client_ids_are_out_of_reach(kind: BrokerKind) {
    let t = spawn_app(kind, city(&["u1"]), one_unit).await;
    let mut u1 = t.unit_at("u1", 300.0).await;
    t.wait_available(1).await;
    let disconnects = || t.app.metrics().broker_disconnects.load(std::sync::atomic::Ordering::Relaxed);
    let before = disconnects();
    // A device's password under kuzet's usernames: refused.
    for user in ["kuzet", "kuzet-alarms", "kuzet-units", "kuzet-out"] {
        let r = connect_observer(&t.host, t.port, user, &pw("btn-b"), &[]).await;
        assert!(r.is_err(), "{user} connected with a device's password");
    }
    // A device naming kuzet's client ids: the broker makes its client id its username, so
    // kuzet's sessions are untouched.
    let mut squatters = Vec::new();
    for id in ["kuzet", "kuzet-alarms", "kuzet-units", "kuzet-out"] {
        let mut o = rumqttc::MqttOptions::new(id, t.host.clone(), t.port);
        o.set_credentials("btn-b", pw("btn-b"));
        o.set_clean_session(false);
        let (c, mut el) = rumqttc::AsyncClient::new(o, 10);
        let connected = loop {
            match el.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Incoming::ConnAck(a))) => break a.code,
                Ok(_) => {}
                Err(e) => panic!("{id}: {e}"),
            }
        };
        assert_eq!(connected, rumqttc::ConnectReturnCode::Success);
        squatters.push((c, el));
    }
    // kuzet still hears alarms and answers them.
    let mut btn = t.button("btn-a").await;
    let alarm = Uuid::new_v4();
    publish(&btn, Button, "btn-a", "alarm", raise(&alarm)).await;
    assert_eq!(next_ack(&mut btn).await["alarm_id"], alarm.to_string());
    next_on(&mut u1, "/offers").await;
    assert_eq!(disconnects(), before, "none of kuzet's connections was taken over");
    drop(squatters);
}

on_both_brokers!(a_wrong_password_does_not_connect);
async fn a_wrong_password_does_not_connect(kind: BrokerKind) {
    let t = spawn_app(kind, city(&["u1"]), |_| {}).await;
    let r = connect_device(&t.host, t.port, Unit, "u1", "guess", &["kuzet/v1/units/u1/offers".into()]).await;
    assert!(r.is_err(), "connected with a wrong password");
    let r = connect_device(&t.host, t.port, Unit, "ghost", "pw-ghost", &[]).await;
    assert!(r.is_err(), "an unknown device connected");
    let r = connect_observer(&t.host, t.port, "", "", &[]).await;
    assert!(r.is_err(), "an anonymous client connected");
}

/// The topics `link` receives before `topic`, or None when `topic` does not come within `secs`.
async fn topics_until(
    link: &mut kuzet_tools::sim::DeviceLink,
    topic: &str,
    secs: u64,
) -> Option<Vec<String>> {
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
