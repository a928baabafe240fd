//! End-to-end dispatch through a real broker (Mosquitto with its ACL, and the embedded
//! one), with real MQTT clients as buttons and tablets.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use kuzet::mqtt::topics::DeviceKind::{Button, Unit};
use serde_json::json;
use uuid::Uuid;

fn s(v: &serde_json::Value, key: &str) -> String {
    v[key].as_str().unwrap_or_else(|| panic!("no {key} in {v}")).to_owned()
}

async fn nearest_units_get_offers_and_the_button_sees_every_step(kind: BrokerKind) {
    let t = spawn_app(kind, city(&["u-near", "u-mid", "u-far"]), |_| {}).await;
    let mut near = t.unit_at("u-near", 300.0).await;
    let mut mid = t.unit_at("u-mid", 900.0).await;
    let mut far = t.unit_at("u-far", 5000.0).await;
    t.wait_available(3).await;
    let mut btn = t.button("btn-a").await;

    let alarm = Uuid::new_v4();
    publish(&btn, Button, "btn-a", "alarm", raise(&alarm)).await;
    let ack = next_ack(&mut btn).await;
    assert_eq!((s(&ack, "state"), s(&ack, "alarm_id")), ("received".into(), alarm.to_string()));

    // The plan for a school alarm wants two units: the two nearest are asked at once.
    let o1 = next_on(&mut near, "/offers").await;
    let o2 = next_on(&mut mid, "/offers").await;
    nothing_on(&mut far, "/offers", Duration::from_millis(300)).await;
    let incident = s(&o1, "incident_id");
    assert_eq!(s(&o2, "incident_id"), incident);
    assert_eq!(o1["priority"], 1);
    assert_eq!(o1["site"]["name"], "School No. 1");
    assert!((o1["distance_m"].as_f64().unwrap() - 300.0).abs() < 2.0, "{o1}");
    assert!(o1["eta_s"].as_u64().unwrap() > 0);

    for (link, id, offer) in [(&near, "u-near", &o1), (&mid, "u-mid", &o2)] {
        publish(link, Unit, id, "reply", json!({"offer_id": offer["offer_id"], "decision": "accept"})).await;
    }
    let ack = next_ack(&mut btn).await;
    assert_eq!(s(&ack, "state"), "dispatched");
    assert!(ack["eta_s"].as_u64().is_some(), "dispatched ack carries an ETA: {ack}");
    assert_eq!(s(&next_ack(&mut btn).await, "state"), "dispatched", "second unit accepted");

    let mut console = t.observer(&[&format!("kuzet/v1/incidents/{incident}")]).await;
    // The retained snapshot shows the open incident; updates are coalesced over a few ms, so
    // the first one may predate the second accept.
    let open = next_on(&mut console, &incident).await;
    assert!(["dispatching", "dispatched"].contains(&s(&open, "state").as_str()), "{open}");
    let mut state = s(&open, "state");
    while state != "dispatched" {
        state = s(&next_on(&mut console, &incident).await, "state");
    }
    let progress = |state: &str| json!({"incident_id": incident, "state": state, "at": chrono::Utc::now()});
    publish(&near, Unit, "u-near", "progress", progress("en_route")).await;
    publish(&near, Unit, "u-near", "progress", progress("on_scene")).await;
    assert_eq!(s(&next_ack(&mut btn).await, "state"), "on_scene");
    publish(&mid, Unit, "u-mid", "progress", progress("on_scene")).await;
    publish(&near, Unit, "u-near", "progress", progress("cleared")).await;
    publish(&mid, Unit, "u-mid", "progress", progress("cleared")).await;
    assert_eq!(s(&next_ack(&mut btn).await, "state"), "cleared");

    // A console subscribed to the incident sees its final snapshot, with every hop timed.
    let snap = loop {
        let v = next_on(&mut console, &incident).await;
        if v["state"] == "closed" {
            break v;
        }
    };
    let events: Vec<String> = snap["timeline"].as_array().unwrap().iter().map(|e| s(e, "event")).collect();
    for hop in [
        "alarm_received",
        "ack_received",
        "units_chosen",
        "offer_published",
        "reply_accept",
        "ack_dispatched",
        "on_scene",
        "ack_cleared",
        "closed",
    ] {
        assert!(events.iter().any(|e| e == hop), "timeline lacks {hop}: {events:?}");
    }
    let t_us: Vec<u64> =
        snap["timeline"].as_array().unwrap().iter().map(|e| e["t_us"].as_u64().unwrap()).collect();
    assert!(t_us.windows(2).all(|w| w[0] <= w[1]), "timeline is in order: {t_us:?}");
    assert_eq!(snap["units"].as_array().unwrap().len(), 2);
    assert_eq!(t.app.incidents().await.len(), 0, "closed incidents leave the registry");
    // The broker keeps nothing for a closed incident: a late subscriber gets no snapshot.
    let mut late = t.observer(&[&format!("kuzet/v1/incidents/{incident}")]).await;
    nothing_on(&mut late, &incident, Duration::from_millis(300)).await;
    assert_eq!(t.app.metrics().rejects_total(), 0);
}
on_both_brokers!(nearest_units_get_offers_and_the_button_sees_every_step);

async fn decline_and_timeout_move_the_offer_to_the_next_nearest(kind: BrokerKind) {
    let t = spawn_app(kind, city(&["u1", "u2", "u3"]), |s| {
        let plan = school_plan(s);
        plan.units_required = 1;
        plan.offer_timeout = Duration::from_millis(800);
    })
    .await;
    let mut u1 = t.unit_at("u1", 100.0).await;
    let mut u2 = t.unit_at("u2", 200.0).await;
    let mut u3 = t.unit_at("u3", 300.0).await;
    t.wait_available(3).await;
    let btn = t.button("btn-a").await;
    publish(&btn, Button, "btn-a", "alarm", raise(&Uuid::new_v4())).await;

    let o1 = next_on(&mut u1, "/offers").await;
    publish(
        &u1,
        Unit,
        "u1",
        "reply",
        json!({"offer_id": o1["offer_id"], "decision": "decline", "reason": "flat tyre"}),
    )
    .await;
    let o2 = next_on(&mut u2, "/offers").await;
    assert_eq!(o2["incident_id"], o1["incident_id"]);
    // u2 says nothing: the offer expires, u2 is told, and u3 is asked.
    let revoked = next_on(&mut u2, &format!("/incidents/{}", s(&o1, "incident_id"))).await;
    assert_eq!((s(&revoked, "event"), s(&revoked, "reason")), ("offer_revoked".into(), "expired".into()));
    let o3 = next_on(&mut u3, "/offers").await;
    assert_eq!(o3["incident_id"], o1["incident_id"]);
    // A late accept of the expired offer is refused.
    publish(&u2, Unit, "u2", "reply", json!({"offer_id": o2["offer_id"], "decision": "accept"})).await;
    let rej = next_on(&mut u2, "/rejects/u2").await;
    assert_eq!(s(&rej, "code"), "refused");
    nothing_on(&mut u1, "/offers", Duration::from_millis(200)).await;
}
on_both_brokers!(decline_and_timeout_move_the_offer_to_the_next_nearest);

async fn with_no_unit_available_the_incident_is_escalated_as_uncovered(kind: BrokerKind) {
    let t = spawn_app(kind, city(&["u1"]), |_| {}).await;
    let mut btn = t.button("btn-a").await;
    let mut watcher = t.observer(&[kuzet::mqtt::topics::ESCALATIONS]).await;
    publish(&btn, Button, "btn-a", "alarm", raise(&Uuid::new_v4())).await;
    assert_eq!(s(&next_ack(&mut btn).await, "state"), "received");
    assert_eq!(s(&next_ack(&mut btn).await, "state"), "escalated");
    let incidents = t.app.incidents().await;
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0].state, kuzet_actors::model::IncidentState::Uncovered);
    let e = next_on(&mut watcher, "dispatch/escalations").await;
    assert_eq!(s(&e, "reason"), "no_units_left");
    assert_eq!(s(&e["incident"], "state"), "uncovered");
}
on_both_brokers!(with_no_unit_available_the_incident_is_escalated_as_uncovered);

async fn a_redelivered_alarm_makes_one_incident_and_a_second_button_joins_it(kind: BrokerKind) {
    let t = spawn_app(kind, city(&["u1", "u2"]), |_| {}).await;
    let _u1 = t.unit_at("u1", 100.0).await;
    let _u2 = t.unit_at("u2", 200.0).await;
    t.wait_available(2).await;
    let mut a = t.button("btn-a").await;
    let mut b = t.button("btn-b").await;
    let alarm = Uuid::new_v4();
    publish(&a, Button, "btn-a", "alarm", raise(&alarm)).await;
    publish(&a, Button, "btn-a", "alarm", raise(&alarm)).await;
    let first = next_ack(&mut a).await;
    let again = next_ack(&mut a).await;
    assert_eq!(first["incident_id"], again["incident_id"]);
    publish(&b, Button, "btn-b", "alarm", raise(&Uuid::new_v4())).await;
    let joined = next_ack(&mut b).await;
    assert_eq!(
        joined["incident_id"], first["incident_id"],
        "a second raise at the school joins its open incident"
    );
    let incidents = t.app.incidents().await;
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0].raised_by.len(), 2);
    // btn-b's alarm was a mistake: withdrawing it leaves btn-a's alarm, and the incident, standing.
    let cancel = json!({"alarm_id": joined["alarm_id"], "action": "cancel", "at": chrono::Utc::now()});
    publish(&b, Button, "btn-b", "alarm", cancel).await;
    assert_eq!(s(&next_ack(&mut b).await, "state"), "cancelled");
    nothing_new_on(&mut a, "/ack", Duration::from_millis(300), &first).await;
    let incidents = t.app.incidents().await;
    assert_eq!(incidents.len(), 1, "the incident stands while btn-a's alarm does");
    assert!(incidents[0].state.is_open());
}
on_both_brokers!(a_redelivered_alarm_makes_one_incident_and_a_second_button_joins_it);

async fn offline_and_stale_units_are_never_offered(kind: BrokerKind) {
    let t = spawn_app(kind, city(&["u-offline", "u-stale", "u-ok", "u-drop"]), |s| {
        s.dispatch.position_max_age_s = 1;
    })
    .await;
    let mut stale = t.unit_at("u-stale", 50.0).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let offline = t.unit_at("u-offline", 10.0).await;
    let mut drop = t.unit_at("u-drop", 100.0).await;
    let mut ok = t.unit_at("u-ok", 400.0).await;
    // The tablet loses its connection: the broker publishes its last will.
    offline.kill();
    t.wait_unit("u-offline", |u| u.online == Some(false)).await;
    t.wait_available(2).await;
    let btn = t.button("btn-a").await;
    publish(&btn, Button, "btn-a", "alarm", raise(&Uuid::new_v4())).await;
    let o_drop = next_on(&mut drop, "/offers").await;
    let o_ok = next_on(&mut ok, "/offers").await;
    assert_eq!(o_drop["incident_id"], o_ok["incident_id"]);
    nothing_on(&mut stale, "/offers", Duration::from_millis(200)).await;
    // A tablet that goes offline while holding an offer loses it at once: the offer moves
    // on without waiting for the 15 s timeout. Only u-stale is left, and it is stale.
    drop.kill();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let inc = &t.app.incidents().await[0];
        if inc
            .timeline
            .iter()
            .any(|e| e.event == "unit_offline" && e.unit.as_ref().is_some_and(|u| u.as_str() == "u-drop"))
        {
            assert!(inc.offers.iter().all(|o| o.unit.as_str() != "u-drop"));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "offer was not withdrawn from the offline unit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    nothing_on(&mut stale, "/offers", Duration::from_millis(200)).await;
}
on_both_brokers!(offline_and_stale_units_are_never_offered);

async fn a_cancel_from_the_button_stands_the_units_down(kind: BrokerKind) {
    let t = spawn_app(kind, city(&["u1", "u2"]), |_| {}).await;
    let mut u1 = t.unit_at("u1", 100.0).await;
    let mut u2 = t.unit_at("u2", 200.0).await;
    t.wait_available(2).await;
    let mut btn = t.button("btn-a").await;
    let alarm = Uuid::new_v4();
    publish(&btn, Button, "btn-a", "alarm", raise(&alarm)).await;
    let o1 = next_on(&mut u1, "/offers").await;
    let o2 = next_on(&mut u2, "/offers").await;
    publish(&u1, Unit, "u1", "reply", json!({"offer_id": o1["offer_id"], "decision": "accept"})).await;
    assert_eq!(s(&next_ack(&mut btn).await, "state"), "received");
    // Told again (the button's presence taken after its alarm) or not: then dispatched.
    let mut state = s(&next_ack(&mut btn).await, "state");
    while state == "received" {
        state = s(&next_ack(&mut btn).await, "state");
    }
    assert_eq!(state, "dispatched");
    publish(
        &btn,
        Button,
        "btn-a",
        "alarm",
        json!({"alarm_id": alarm, "action": "cancel", "at": chrono::Utc::now()}),
    )
    .await;
    // QoS 1 is at least once: a repeated "dispatched" (seen through a broker under
    // load, a redelivered raise answered again) is allowed before the cancel's answer.
    let mut state = s(&next_ack(&mut btn).await, "state");
    while state == "dispatched" {
        state = s(&next_ack(&mut btn).await, "state");
    }
    assert_eq!(state, "cancelled");
    let incident = s(&o1, "incident_id");
    let c1 = next_on(&mut u1, &format!("/incidents/{incident}")).await;
    assert_eq!(s(&c1, "event"), "cancelled");
    let c2 = next_on(&mut u2, &format!("/incidents/{incident}")).await;
    assert_eq!((s(&c2, "event"), s(&c2, "reason")), ("offer_revoked".into(), "cancelled".into()));
    let _ = o2;
    // Both units are available again.
    t.wait_available(2).await;
}
on_both_brokers!(a_cancel_from_the_button_stands_the_units_down);
