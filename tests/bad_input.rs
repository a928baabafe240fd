//! Bad input of every class is refused with a reason, counted, and costs nothing else:
//! a valid alarm right after is dispatched.

mod common;

use std::time::Duration;

use common::*;
use kuzet::mqtt::codec::RejectCode;
use kuzet::mqtt::topics::DeviceKind::Button;
use serde_json::json;
use uuid::Uuid;

async fn each_bad_input_is_refused_and_a_valid_alarm_still_goes_through(kind: BrokerKind) {
    let t = spawn_app(kind, city(&["u1", "u2"]), |_| {}).await;
    let mut u1 = t.unit_at("u1", 100.0).await;
    t.wait_available(1).await;
    // An account that may publish on every device's topics plays the misbehaving devices; it
    // also reads every reject.
    let mut bad = t.impostor(&["kuzet/v1/rejects/#"]).await;
    let at = chrono::Utc::now();
    let oversize = format!(r#"{{"at":"{at:?}","lat":43.2,"lon":76.9,"pad":"{}"}}"#, "x".repeat(17 * 1024));
    let cases: Vec<(&str, Vec<u8>, RejectCode)> = vec![
        ("kuzet/v1/units/u1/position", b"{\"at\": \"2026".to_vec(), RejectCode::MalformedJson),
        (
            "kuzet/v1/units/u1/position",
            br#"{"at":"2026-11-25T10:00:00Z","lat":NaN,"lon":76.9}"#.to_vec(),
            RejectCode::MalformedJson,
        ),
        (
            "kuzet/v1/units/u1/position",
            br#"{"at":"2026-11-25T10:00:00Z","lat":"43.2","lon":76.9}"#.to_vec(),
            RejectCode::InvalidPayload,
        ),
        (
            "kuzet/v1/units/u1/position",
            br#"{"at":"2026-11-25T10:00:00Z","lat":143.2,"lon":76.9}"#.to_vec(),
            RejectCode::InvalidPayload,
        ),
        (
            "kuzet/v1/units/u1/status",
            br#"{"at":"2026-11-25T10:00:00Z","status":"napping"}"#.to_vec(),
            RejectCode::InvalidPayload,
        ),
        ("kuzet/v1/units/u1/position", oversize.into_bytes(), RejectCode::Oversize),
        (
            "kuzet/v1/units/ghost/position",
            br#"{"at":"2026-11-25T10:00:00Z","lat":43.2,"lon":76.9}"#.to_vec(),
            RejectCode::UnknownDevice,
        ),
        (
            "kuzet/v1/buttons/btn-a/alarm",
            br#"{"alarm_id":"not-a-uuid","action":"raise","at":"2026-11-25T10:00:00Z"}"#.to_vec(),
            RejectCode::InvalidPayload,
        ),
        ("kuzet/v1/buttons/btn-a/alarm", br#"[1,2,3]"#.to_vec(), RejectCode::InvalidPayload),
        (
            "kuzet/v1/buttons/btn-a/heartbeat",
            br#"{"at":"2026-11-25T10:00:00Z","battery_pct":250}"#.to_vec(),
            RejectCode::InvalidPayload,
        ),
        (
            "kuzet/v1/units/u1/reply",
            format!(r#"{{"offer_id":"{}","decision":"accept"}}"#, Uuid::new_v4()).into_bytes(),
            RejectCode::Refused,
        ),
    ];
    for (topic, payload, code) in &cases {
        publish_raw(&bad, topic, payload.clone()).await;
        let rej = next_on(&mut bad, "").await;
        assert_eq!(rej["code"], code.as_str(), "{topic}: {rej}");
        assert_eq!(rej["topic"], *topic);
        assert!(!rej["error"].as_str().unwrap().is_empty());
    }
    // An id that breaks the pattern cannot be answered on a rejects topic; it is counted.
    publish_raw(&bad, "kuzet/v1/units/Not_An_Id/position", b"{}".to_vec()).await;

    // After all that, a real alarm is dispatched as usual.
    let mut btn = t.button("btn-a").await;
    publish(&btn, Button, "btn-a", "alarm", raise(&Uuid::new_v4())).await;
    assert_eq!(next_ack(&mut btn).await["state"], "received");
    let offer = next_on(&mut u1, "/offers").await;
    // A device posing as another: u2 answers the offer made to u1. Refused, and u1 keeps it.
    publish_raw(
        &bad,
        "kuzet/v1/units/u2/reply",
        json!({"offer_id": offer["offer_id"], "decision": "decline"}).to_string().into_bytes(),
    )
    .await;
    let rej = next_on(&mut bad, "/rejects/u2").await;
    assert_eq!(rej["code"], "refused");
    assert!(rej["error"].as_str().unwrap().contains("not held by this unit"), "{rej}");
    publish(
        &u1,
        kuzet::mqtt::topics::DeviceKind::Unit,
        "u1",
        "reply",
        json!({"offer_id": offer["offer_id"], "decision": "accept"}),
    )
    .await;
    assert_eq!(next_ack(&mut btn).await["state"], "dispatched");

    let m = t.app.metrics();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while m.rejects(RejectCode::BadId) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "bad id was not counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for code in RejectCode::ALL {
        let want = cases.iter().filter(|c| c.2 == code).count() as u64
            + u64::from(code == RejectCode::BadId)
            + u64::from(code == RejectCode::Refused);
        assert_eq!(m.rejects(code), want, "{}", code.as_str());
    }
    assert_eq!(t.app.notifications_dropped(), 0);
}

#[actix_rt::test]
async fn bad_input_on_mosquitto() {
    each_bad_input_is_refused_and_a_valid_alarm_still_goes_through(BrokerKind::Mosquitto).await;
}

#[actix_rt::test]
async fn bad_input_on_the_embedded_broker() {
    each_bad_input_is_refused_and_a_valid_alarm_still_goes_through(BrokerKind::Embedded).await;
}
