//! Payload codec invariants: what `decode` accepts keeps the contract's promises and
//! survives being written out and read back; what it refuses is refused in a bounded, clean
//! message.

use kuzet_actors::button::AlarmAction;
use kuzet_actors::outbound::Received;
use kuzet_contract::codec::{self, About, Message, Reject, RejectOut};
use kuzet_contract::text::check_text;
use kuzet_contract::topics::{self, Channel, InboundTopic};
use serde_json::{json, Value};

use crate::close;

/// `mqtt.max_payload_bytes` as shipped (config/default.toml).
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024;

/// Input: the topic, a newline, the payload; decoded as the gateway does (topic first).
pub fn check(data: &[u8]) {
    let Some(nl) = data.iter().position(|b| *b == b'\n') else { return };
    let Ok(topic) = std::str::from_utf8(&data[..nl]) else { return };
    let payload = &data[nl + 1..];
    // Refused topics are the topics target's.
    let Ok(parsed) = topics::parse(topic) else { return };
    let received = Received::now();
    match codec::decode(&parsed, payload, MAX_PAYLOAD_BYTES, received) {
        Ok(msg) => {
            check_message(&parsed, &msg, &received);
            let again = wire(&msg);
            match codec::decode(&parsed, &again, MAX_PAYLOAD_BYTES, received) {
                Ok(back) => assert_same(&msg, &back),
                Err(r) => panic!("{msg:?} written as {} is refused: {r:?}", String::from_utf8_lossy(&again)),
            }
        }
        Err(r) => {
            check_reject(topic, &r);
            check_zeros(payload, &r);
        }
    }
}

/// A face refused as all zeros holds nothing but zeros (not values too large or too small
/// for the arithmetic).
fn check_zeros(payload: &[u8], r: &Reject) {
    let Some(i) = r.error.strip_suffix("]: embedding is all zeros").and_then(|s| s.strip_prefix("faces["))
    else {
        return;
    };
    let v: Value = serde_json::from_slice(payload).expect("decoded as far as the faces");
    let i: usize = i.parse().expect("a face's index");
    let values = v["faces"][i]["embedding"].as_array().expect("an embedding");
    assert!(values.iter().all(|x| x.as_f64() == Some(0.0)), "refused as all zeros: {values:?}");
}

fn check_reject(topic: &str, r: &Reject) {
    crate::check_refusal(r.code.as_str(), &r.error);
    let out = RejectOut { topic, code: r.code, error: &r.error, about: About::default() };
    serde_json::to_vec(&out).expect("a reject encodes");
}

/// What each message promises the actors past the edge.
fn check_message(topic: &InboundTopic<'_>, msg: &Message, received: &Received) {
    let opt_in = |v: Option<f64>, lo: f64, hi: f64| v.is_none_or(|x| x.is_finite() && (lo..=hi).contains(&x));
    match (topic.channel, msg) {
        (Channel::Alarm, Message::Alarm(a)) => assert!(!a.over_limit),
        (Channel::Heartbeat, Message::Heartbeat { battery_pct, .. }) => {
            assert!(opt_in(*battery_pct, 0.0, 100.0), "battery {battery_pct:?}")
        }
        (Channel::Online, Message::Online(_)) => {}
        (Channel::Position, Message::Position(p)) => {
            let (lat, lon) = (p.point.lat(), p.point.lon());
            assert!(lat.is_finite() && (-90.0..=90.0).contains(&lat), "lat {lat}");
            assert!(lon.is_finite() && (-180.0..=180.0).contains(&lon), "lon {lon}");
            assert!(opt_in(p.speed_mps, 0.0, 150.0) && opt_in(p.heading_deg, 0.0, 360.0), "{p:?}");
            assert!(p.at - received.at <= chrono::TimeDelta::seconds(60), "fix from the future: {p:?}");
        }
        (Channel::Status, Message::Status(_)) => {}
        (Channel::Reply, Message::Reply(r)) => {
            if let Some(reason) = &r.reason {
                assert!(reason.chars().count() <= 500, "reason of {} chars", reason.chars().count());
                assert!(check_text(reason).is_ok(), "reason {reason:?}");
            }
        }
        (Channel::Progress, Message::Progress(_)) => {}
        (Channel::Detections, Message::Detections { faces, .. }) => {
            assert!(faces.len() <= codec::MAX_FACES, "{} faces", faces.len());
            for f in faces {
                assert!(f.iter().all(|x| x.is_finite()), "{f:?}");
                let norm = f.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
                assert!((norm - 1.0).abs() < 1e-3, "embedding of norm {norm}");
            }
        }
        (c, m) => panic!("{m:?} decoded on channel {c:?}"),
    }
}

/// A decoded message written back as a device would send it.
fn wire(msg: &Message) -> Vec<u8> {
    let v: Value = match msg {
        Message::Alarm(a) => json!({
            "alarm_id": a.alarm_id,
            "action": if a.action == AlarmAction::Raise { "raise" } else { "cancel" },
            "kind": a.kind,
            "at": a.at,
        }),
        Message::Heartbeat { at, battery_pct } => json!({"at": at, "battery_pct": battery_pct}),
        Message::Online(b) => json!(b),
        Message::Position(p) => json!({
            "at": p.at, "lat": p.point.lat(), "lon": p.point.lon(),
            "speed_mps": p.speed_mps, "heading_deg": p.heading_deg,
        }),
        Message::Status(s) => json!({"at": s.at, "status": s.status}),
        Message::Reply(r) => json!({
            "offer_id": r.offer_id,
            "decision": if r.accept { "accept" } else { "decline" },
            "reason": r.reason,
        }),
        Message::Progress(p) => json!({
            "incident_id": p.incident_id,
            "state": p.progress,
            "at": "2026-11-25T10:00:00Z",
        }),
        Message::Detections { at, faces, plates } => json!({
            "at": at,
            "faces": faces.iter().map(|f| json!({"embedding": f.to_vec()})).collect::<Vec<_>>(),
            "plates": vec![json!({"text": "A", "confidence": 0.5}); *plates],
        }),
    };
    serde_json::to_vec(&v).expect("a message encodes")
}

fn assert_same(a: &Message, b: &Message) {
    let same = match (a, b) {
        (Message::Alarm(x), Message::Alarm(y)) => {
            (x.alarm_id, x.action, x.kind, x.at) == (y.alarm_id, y.action, y.kind, y.at)
        }
        (Message::Heartbeat { at: t1, battery_pct: b1 }, Message::Heartbeat { at: t2, battery_pct: b2 }) => {
            t1 == t2 && opt_close(*b1, *b2)
        }
        (Message::Online(x), Message::Online(y)) => x == y,
        (Message::Position(x), Message::Position(y)) => {
            x.at == y.at
                && close(x.point.lat(), y.point.lat())
                && close(x.point.lon(), y.point.lon())
                && opt_close(x.speed_mps, y.speed_mps)
                && opt_close(x.heading_deg, y.heading_deg)
        }
        (Message::Status(x), Message::Status(y)) => (x.at, x.status) == (y.at, y.status),
        (Message::Reply(x), Message::Reply(y)) => {
            (x.offer_id, x.accept, &x.reason) == (y.offer_id, y.accept, &y.reason)
        }
        (Message::Progress(x), Message::Progress(y)) => {
            (x.incident_id, x.progress) == (y.incident_id, y.progress)
        }
        (
            Message::Detections { at: t1, faces: f1, plates: p1 },
            Message::Detections { at: t2, faces: f2, plates: p2 },
        ) => {
            t1 == t2
                && p1 == p2
                && f1.len() == f2.len()
                && f1.iter().zip(f2).all(|(x, y)| x.iter().zip(y).all(|(u, v)| (u - v).abs() < 1e-5))
        }
        _ => false,
    };
    assert!(same, "read back differently:\n{a:?}\n{b:?}");
}

fn opt_close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => close(x, y),
        (None, None) => true,
        _ => false,
    }
}
