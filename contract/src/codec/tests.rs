use super::*;
use crate::topics::parse;

fn dec(topic: &str, payload: &str) -> Result<Message, Reject> {
    decode(&parse(topic).unwrap(), payload.as_bytes(), 16 * 1024, Received::now())
}

#[test]
fn a_reject_names_the_message_it_refuses() {
    let offer = "fe039d7e-f431-4823-8a01-4a95a7ce8002";
    let m = dec("kuzet/v1/units/u-1/reply", &format!(r#"{{"offer_id": "{offer}", "decision": "accept"}}"#))
        .unwrap();
    let out = RejectOut { topic: "t", code: RejectCode::Refused, error: "e", about: m.about() };
    let v = serde_json::to_value(&out).unwrap();
    assert_eq!(v["offer_id"], offer);
    assert!(v.get("incident_id").is_none() && v.get("alarm_id").is_none(), "{v}");
    let none = RejectOut { topic: "t", code: RejectCode::Oversize, error: "e", about: About::default() };
    assert_eq!(serde_json::to_value(&none).unwrap().as_object().unwrap().len(), 3);
}

const POS: &str = "kuzet/v1/units/u1/position";

#[test]
fn decodes_a_position() {
    let Ok(Message::Position(p)) =
        dec(POS, r#"{"at":"2026-11-25T10:00:00Z","lat":43.2,"lon":76.9,"speed_mps":8.5}"#)
    else {
        panic!("position not decoded");
    };
    assert_eq!(p.point.lat(), 43.2);
}

#[test]
fn classifies_each_bad_input() {
    let code = |t: &str, p: &str| dec(t, p).unwrap_err().code;
    assert_eq!(code(POS, "{not json"), RejectCode::MalformedJson);
    assert_eq!(code(POS, r#"{"at":"2026-11-25T10:00:00Z","lat":NaN,"lon":1}"#), RejectCode::MalformedJson);
    assert_eq!(code(POS, r#"{"at":"2026-11-25T10:00:00Z","lat":"43","lon":1}"#), RejectCode::InvalidPayload);
    assert_eq!(code(POS, r#"{"at":"2026-11-25T10:00:00Z","lat":91,"lon":1}"#), RejectCode::InvalidPayload);
    assert_eq!(code(POS, r#"{"at":"2026-11-25T10:00:00Z","lat":1,"lon":1e999}"#), RejectCode::MalformedJson);
    assert_eq!(code(POS, r#"{"at":"yesterday","lat":1,"lon":1}"#), RejectCode::InvalidPayload);
    let future = (chrono::Utc::now() + chrono::TimeDelta::minutes(10)).to_rfc3339();
    let e = dec(POS, &format!(r#"{{"at":"{future}","lat":1,"lon":1}}"#)).unwrap_err();
    assert_eq!(e.code, RejectCode::InvalidPayload);
    assert!(e.error.contains("ahead"), "{}", e.error);
    assert_eq!(
        code(POS, r#"{"at":"2026-11-25T10:00:00Z","lat":1,"lon":1,"speed_mps":-1}"#),
        RejectCode::InvalidPayload
    );
    assert_eq!(
        code(
            "kuzet/v1/buttons/b/alarm",
            r#"{"alarm_id":"nope","action":"raise","at":"2026-11-25T10:00:00Z"}"#
        ),
        RejectCode::InvalidPayload
    );
    assert_eq!(
        code(
            "kuzet/v1/buttons/b/alarm",
            r#"{"alarm_id":"6f1c1a7e-8d1f-4a53-9b59-1d2b3c4d5e6f","action":"explode","at":"2026-11-25T10:00:00Z"}"#
        ),
        RejectCode::InvalidPayload
    );
    assert_eq!(code("kuzet/v1/units/u/online", "maybe"), RejectCode::MalformedJson);
    let reply = |reason: &str| {
        let v = serde_json::json!({"offer_id": uuid::Uuid::nil(), "decision": "decline", "reason": reason});
        dec("kuzet/v1/units/u/reply", &v.to_string())
    };
    assert!(reply("flat tyre, sorry").is_ok());
    let e = reply("flat\0tyre").unwrap_err();
    assert_eq!(e.code, RejectCode::InvalidPayload);
    assert!(e.error.starts_with("reason holds a control character (U+0000"), "{}", e.error);
    assert_eq!(reply("two\nlines").unwrap_err().code, RejectCode::InvalidPayload);
    let plate = |text: &str| {
        let v =
            serde_json::json!({"at": "2026-11-25T10:00:00Z", "plates": [{"text": text, "confidence": 0.9}]});
        dec("kuzet/v1/cameras/c/detections", &v.to_string())
    };
    assert!(plate("123ABC02").is_ok());
    let e = plate("123\u{1b}ABC").unwrap_err();
    assert_eq!(e.code, RejectCode::InvalidPayload);
    assert!(e.error.starts_with("plates[0].text holds a control character"), "{}", e.error);
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(17 * 1024));
    assert_eq!(code(POS, &big), RejectCode::Oversize);
}

#[test]
fn what_serde_repeats_of_a_payload_is_escaped_and_short() {
    // Found by fuzz/ (target codec): serde's "unknown variant" repeats the value as it came.
    let alarm = r#"{"alar\u2028m_id": "3b2f0c1e-5d7a=4c84-9a11-0f6e2d9b7c41", "action": "cancel\u0000", "at": "2026-11-25T15:00:00+05:00"}"#;
    let e = dec("kuzet/v1/buttons/btn-012-a/alarm", alarm).unwrap_err();
    assert_eq!(e.code, RejectCode::InvalidPayload);
    assert_eq!(e.error, "unknown variant `cancel\\u{0}`, expected `raise` or `cancel` at line 1 column 83");
    let long = format!(r#"{{"at":"2026-11-25T10:00:00Z","status":"{}"}}"#, "x".repeat(10_000));
    let e = dec("kuzet/v1/units/u/status", &long).unwrap_err();
    assert_eq!(e.error.chars().count(), crate::text::MAX_MESSAGE_CHARS);
    assert!(e.error.ends_with("at line 1 column 10040"), "{}", e.error);
}

#[test]
fn embeddings_of_any_finite_scale_are_normalised() {
    let detections = |embedding: &[f64]| {
        let v = serde_json::json!({"at": "2026-11-25T10:00:00Z", "faces": [{"embedding": embedding}]});
        dec("kuzet/v1/cameras/c/detections", &v.to_string())
    };
    // Found by fuzz/ (target codec): one value past f32's range made the whole face "all zeros".
    let mut e = vec![0.1; crate::EMBEDDING_DIM];
    e[40] = 1.111111111111111e108;
    let Ok(Message::Detections { faces, .. }) = detections(&e) else { panic!("face refused") };
    assert!((faces[0][40] - 1.0).abs() < 1e-6 && faces[0][0] == 0.0, "{:?}", &faces[0][..4]);
    let tiny = vec![1e-300; crate::EMBEDDING_DIM];
    let Ok(Message::Detections { faces, .. }) = detections(&tiny) else { panic!("face refused") };
    let norm = faces[0].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "{norm}");
    let zeros = vec![-0.0; crate::EMBEDDING_DIM];
    assert_eq!(detections(&zeros).unwrap_err().error, "faces[0]: embedding is all zeros");
}

use kuzet_actors::incident::{IncidentSnapshot, TimelineEntry};
use kuzet_actors::outbound::ReviewOut;
use serde_json::{json, Value};

/// A snapshot with every field present, so a field the published form forgot shows.
fn snapshot() -> IncidentSnapshot {
    let sighting = |i: u32| {
        json!({"sighting_id": uuid::Uuid::from_u128(u128::from(i) + 1), "camera": format!("cam-{i}"),
               "at": "2026-11-25T10:05:02.117953Z", "location": {"lat": 43.2398, "lon": 76.9455},
               "score": 0.74, "evidence": true})
    };
    serde_json::from_value(json!({
        "incident_id": "7c0e1a52-3f4b-4d8e-9a61-b2c35d7e8f90",
        "kind": "wanted_person", "priority": 2, "state": "dispatched",
        "location": {"lat": 43.2415, "lon": 76.9482},
        // A face incident: its subject is the person, so it is at no site.
        "site": null,
        "raised_by": [{"button": "btn-012-a", "alarm_id": uuid::Uuid::from_u128(7), "room": null,
                       "kind": "intruder", "withdrawn": false}],
        "opened_at": "2026-11-25T10:05:02.118204Z",
        "units": [{"unit": "unit-0101", "progress": "accepted", "distance_m": 812.0, "eta_s": 96}],
        "offers": [{"offer_id": uuid::Uuid::from_u128(9), "unit": "unit-0102", "distance_m": 900.5, "eta_s": 120}],
        "escalated": "no_units_left",
        "timeline": [{"at": "2026-11-25T10:05:02.118204Z", "t_us": 0, "event": "sighting", "detail": "wp-1 seen"}],
        "wanted": {"person_id": "wp-1", "name": "Wanted Person One", "danger": "high", "legal_basis": "arrest warrant"},
        "sightings": (0..50).map(sighting).collect::<Vec<_>>(),
    }))
    .unwrap()
}

fn entry(i: u64, detail: &str) -> TimelineEntry {
    TimelineEntry {
        at: "2026-11-25T10:05:02Z".parse().unwrap(),
        t_us: i,
        event: "sighting_update".into(),
        unit: None,
        button: None,
        detail: Some(format!("{detail} {i}")),
    }
}

fn published(n: Notify) -> Value {
    let out = encode(&n).unwrap();
    assert!(out.payload.len() <= bound::MAX_PUBLISH_BYTES, "{} bytes", out.payload.len());
    serde_json::from_slice(&out.payload).unwrap()
}

#[test]
fn a_small_snapshot_is_published_as_it_is() {
    let s = snapshot();
    let out = encode(&Notify::Snapshot(std::sync::Arc::new(s.clone()))).unwrap();
    let v: Value = serde_json::from_slice(&out.payload).unwrap();
    // Every field, as the record has it (the order of keys aside).
    let recorded: Value = serde_json::from_slice(&serde_json::to_vec(&s).unwrap()).unwrap();
    assert!(v == recorded, "the published snapshot differs from the recorded one");
    assert!(v.get("timeline_total").is_none() && v.get("sightings_omitted").is_none());
}

#[test]
fn a_long_timeline_keeps_its_first_and_latest_entries() {
    let mut s = snapshot();
    s.timeline.extend((1..10_000).map(|i| entry(i, "camera cam-market-2 (score 0.69)")));
    let v = published(Notify::Snapshot(std::sync::Arc::new(s)));
    let timeline = v["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), bound::MAX_TIMELINE);
    assert_eq!(timeline[0]["event"], "sighting");
    assert_eq!(timeline[1]["t_us"], 10_000 - (bound::MAX_TIMELINE as u64 - 1));
    assert_eq!(timeline.last().unwrap()["t_us"], 9_999);
    assert_eq!(v["timeline_total"], 10_000);
    assert_eq!(v["timeline_omitted"], 10_000 - bound::MAX_TIMELINE);
    // Everything else goes out whole.
    assert_eq!(v["sightings"].as_array().unwrap().len(), 50);
    assert!(v.get("sightings_total").is_none());
    assert_eq!(v["units"][0]["unit"], "unit-0101");
}

#[test]
fn wordy_entries_are_cut_further_to_stay_under_the_budget() {
    // 500-character decline reasons, quotes escaped: a hundred of them are some 80 KB.
    let mut s = snapshot();
    let reason = "\"no\" ".repeat(100);
    s.timeline.extend((1..10_000).map(|i| entry(i, &reason)));
    let escalation = Notify::Escalation {
        incident_id: s.incident_id,
        reason: kuzet_actors::dispatch::EscalationReason::NoUnitsLeft,
        snapshot: std::sync::Arc::new(s.clone()),
    };
    let v = published(Notify::Closed(std::sync::Arc::new(s)));
    let n = v["timeline"].as_array().unwrap().len();
    assert!(n < bound::MAX_TIMELINE && n > 1, "{n} entries");
    assert_eq!(v["timeline"][0]["event"], "sighting");
    assert_eq!(v["timeline"][n - 1]["t_us"], 9_999);
    assert_eq!(v["timeline_omitted"], 10_000 - n);
    let e = published(escalation);
    assert_eq!(e["incident"]["timeline_total"], 10_000);
    assert_eq!(e["incident"]["timeline"][0]["event"], "sighting");
}

#[test]
fn a_button_pressed_again_and_again_is_listed_first_and_latest() {
    let mut s = snapshot();
    let first = s.raised_by[0].clone();
    s.raised_by.extend((1..5_000).map(|i| {
        let mut r = first.clone();
        r.alarm_id = kuzet_actors::ids::AlarmId(uuid::Uuid::from_u128(1_000 + i));
        r
    }));
    let v = published(Notify::Snapshot(std::sync::Arc::new(s)));
    let raised = v["raised_by"].as_array().unwrap();
    assert_eq!(raised.len(), bound::MAX_RAISERS);
    assert_eq!(raised[0]["alarm_id"], uuid::Uuid::from_u128(7).to_string());
    assert_eq!(raised.last().unwrap()["alarm_id"], uuid::Uuid::from_u128(5_999).to_string());
    assert_eq!((v["raised_by_total"].clone(), v["raised_by_omitted"].clone()), (json!(5_000), json!(4_950)));
}

#[test]
fn a_review_keeps_its_first_and_latest_sightings() {
    let s = snapshot();
    let review = |n: usize| -> ReviewOut {
        serde_json::from_value(json!({
            "review_id": "d3a1c9e2-7b64-4f08-a1d5-6c2e9b0f4a17", "person": s.subject.person(), "state": "pending",
            "opened_at": "2026-11-25T10:05:02.117953Z",
            "sightings": (0..n).map(|i| {
                let mut g = s.sightings[0].clone();
                g.sighting_id = kuzet_actors::ids::SightingId(uuid::Uuid::from_u128(i as u128 + 1));
                g
            }).collect::<Vec<_>>(),
        }))
        .unwrap()
    };
    let small = review(3);
    let out = encode(&Notify::Review(std::sync::Arc::new(small.clone()))).unwrap();
    assert_eq!(out.payload, serde_json::to_vec(&small).unwrap());

    let v = published(Notify::Review(std::sync::Arc::new(review(1_000))));
    let sightings = v["sightings"].as_array().unwrap();
    assert_eq!(sightings.len(), bound::MAX_REVIEW_SIGHTINGS);
    assert_eq!(sightings[0]["sighting_id"], uuid::Uuid::from_u128(1).to_string());
    assert_eq!(sightings.last().unwrap()["sighting_id"], uuid::Uuid::from_u128(1_000).to_string());
    assert_eq!(v["sightings_total"], 1_000);
    assert_eq!(v["sightings_omitted"], 1_000 - bound::MAX_REVIEW_SIGHTINGS);
}

#[test]
fn what_cannot_be_cut_small_enough_is_not_published() {
    let mut s = snapshot();
    // One entry over the budget on its own: even the first entry alone does not fit.
    s.timeline[0].detail = Some("x".repeat(bound::MAX_PUBLISH_BYTES));
    assert!(encode(&Notify::Snapshot(std::sync::Arc::new(s))).is_err());
}
