//! Payloads of the MQTT contract v1: decoding and validating what devices send into the
//! actors' messages, and encoding what the actors tell devices. Every refusal says why.

use chrono::{DateTime, Utc};
use kuzet_actors::button::{Alarm, AlarmAction};
use kuzet_actors::fleet::Position;
use kuzet_actors::geo::GeoPoint;
use kuzet_actors::ids::{AlarmId, IncidentId, OfferId};
use kuzet_actors::model::{AlarmKind, Progress, UnitStatus};
use kuzet_actors::outbound::{Audience, Notify, Received, ReviewState};
use kuzet_actors::unit::{ProgressReport, Reply, StatusReport};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::topics::{self, Channel, DeviceKind, InboundTopic};

mod bound;
mod wire;

/// Why a message was refused. `code` is the counter label and part of the reject payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectCode {
    BadTopic,
    BadId,
    Oversize,
    MalformedJson,
    InvalidPayload,
    UnknownDevice,
    Refused,
    Overloaded,
    /// A retained message replayed by the broker: only `online` may be retained; a stored
    /// alarm, reply or report is old news and is not acted on.
    Retained,
    /// Over the device's rate limit for the topic (`[limits]`); never an alarm, which is
    /// acted on and flagged instead.
    RateLimited,
}

impl RejectCode {
    pub const ALL: [RejectCode; 10] = [
        RejectCode::BadTopic,
        RejectCode::BadId,
        RejectCode::Oversize,
        RejectCode::MalformedJson,
        RejectCode::InvalidPayload,
        RejectCode::UnknownDevice,
        RejectCode::Refused,
        RejectCode::Overloaded,
        RejectCode::Retained,
        RejectCode::RateLimited,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            RejectCode::BadTopic => "bad_topic",
            RejectCode::BadId => "bad_id",
            RejectCode::Oversize => "oversize",
            RejectCode::MalformedJson => "malformed_json",
            RejectCode::InvalidPayload => "invalid_payload",
            RejectCode::UnknownDevice => "unknown_device",
            RejectCode::Refused => "refused",
            RejectCode::Overloaded => "overloaded",
            RejectCode::Retained => "retained",
            RejectCode::RateLimited => "rate_limited",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub code: RejectCode,
    pub error: String,
}

impl Reject {
    pub fn new(code: RejectCode, error: impl Into<String>) -> Self {
        Self { code, error: error.into() }
    }
}

/// The reject payload published on `kuzet/v1/rejects/{id}`.
#[derive(Debug, Serialize)]
pub struct RejectOut<'a> {
    pub topic: &'a str,
    pub code: RejectCode,
    pub error: &'a str,
    /// Which message was refused, when it could be read: a device re-sending an old
    /// message (or the broker redelivering one) can tell its refusal from the current one's.
    #[serde(flatten)]
    pub about: About,
}

/// The ids a refused message named.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct About {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm_id: Option<AlarmId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offer_id: Option<OfferId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<IncidentId>,
}

impl Message {
    /// The ids the message names, for its reject.
    pub fn about(&self) -> About {
        match self {
            Message::Alarm(a) => About { alarm_id: Some(a.alarm_id), ..About::default() },
            Message::Reply(r) => About { offer_id: Some(r.offer_id), ..About::default() },
            Message::Progress(p) => About { incident_id: Some(p.incident_id), ..About::default() },
            _ => About::default(),
        }
    }
}

/// A decoded inbound message, ready for its actor.
#[derive(Debug)]
pub enum Message {
    Alarm(Alarm),
    Heartbeat {
        at: DateTime<Utc>,
        battery_pct: Option<f64>,
    },
    Online(bool),
    Position(Position),
    Status(StatusReport),
    Reply(Reply),
    Progress(ProgressReport),
    /// An edge camera's faces (unit-length embeddings) and plate reads.
    Detections {
        at: DateTime<Utc>,
        faces: Vec<crate::Embedding>,
        plates: usize,
    },
}

/// Faces one detections message may carry.
pub const MAX_FACES: usize = 32;

#[derive(Deserialize)]
struct FaceIn {
    embedding: Vec<f64>,
    #[allow(dead_code)]
    #[serde(default)]
    score: Option<f64>,
    #[allow(dead_code)]
    #[serde(default)]
    bbox: Option<[f64; 4]>,
}

#[derive(Deserialize)]
struct PlateIn {
    text: String,
    confidence: f64,
}

#[derive(Deserialize)]
struct DetectionsIn {
    at: DateTime<Utc>,
    #[serde(default)]
    faces: Vec<FaceIn>,
    #[serde(default)]
    plates: Vec<PlateIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ActionIn {
    Raise,
    Cancel,
}

#[derive(Deserialize)]
struct AlarmIn {
    alarm_id: Uuid,
    action: ActionIn,
    #[serde(default)]
    kind: Option<AlarmKind>,
    at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct HeartbeatIn {
    at: DateTime<Utc>,
    #[serde(default)]
    battery_pct: Option<f64>,
}

#[derive(Deserialize)]
struct PositionIn {
    at: DateTime<Utc>,
    lat: f64,
    lon: f64,
    #[serde(default)]
    speed_mps: Option<f64>,
    #[serde(default)]
    heading_deg: Option<f64>,
    #[serde(default)]
    accuracy_m: Option<f64>,
}

#[derive(Deserialize)]
struct StatusIn {
    at: DateTime<Utc>,
    status: UnitStatus,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum DecisionIn {
    Accept,
    Decline,
}

#[derive(Deserialize)]
struct ReplyIn {
    offer_id: Uuid,
    decision: DecisionIn,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ProgressIn {
    EnRoute,
    OnScene,
    Cleared,
}

#[derive(Deserialize)]
struct ProgressMsgIn {
    incident_id: Uuid,
    state: ProgressIn,
    #[allow(dead_code)]
    at: DateTime<Utc>,
}

const MAX_REASON_CHARS: usize = 500;
/// How far ahead of kuzet's clock a device's timestamp may be (clock skew).
const MAX_CLOCK_AHEAD_S: i64 = 60;

fn json<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> Result<T, Reject> {
    serde_json::from_slice(payload).map_err(|e| {
        let code = match e.classify() {
            serde_json::error::Category::Data => RejectCode::InvalidPayload,
            _ => RejectCode::MalformedJson,
        };
        // serde quotes what it refused as it came: escaped and cut before it is logged.
        Reject::new(code, crate::text::clean_message(&e.to_string()))
    })
}

fn invalid(msg: impl Into<String>) -> Reject {
    Reject::new(RejectCode::InvalidPayload, msg)
}

/// Free text a device sent: no control characters (`crate::text`), which the record could not
/// hold or the console would show garbled.
fn text(name: &str, s: &str) -> Result<(), Reject> {
    crate::text::check_text(s).map_err(|e| invalid(format!("{name} {e}")))
}

/// An optional number that must be finite and inside `range` when present.
fn check_opt(name: &str, v: Option<f64>, range: std::ops::RangeInclusive<f64>) -> Result<(), Reject> {
    match v {
        Some(x) if !x.is_finite() || !range.contains(&x) => Err(invalid(format!(
            "{name} must be a finite number in [{}, {}], got {x}",
            range.start(),
            range.end()
        ))),
        _ => Ok(()),
    }
}

/// Decodes and validates one payload for a parsed topic.
pub fn decode(
    topic: &InboundTopic<'_>,
    payload: &[u8],
    max_bytes: usize,
    received: Received,
) -> Result<Message, Reject> {
    if payload.len() > max_bytes {
        return Err(Reject::new(
            RejectCode::Oversize,
            format!("payload is {} bytes, the limit is {max_bytes}", payload.len()),
        ));
    }
    Ok(match topic.channel {
        Channel::Alarm => {
            let a: AlarmIn = json(payload)?;
            Message::Alarm(Alarm {
                alarm_id: AlarmId(a.alarm_id),
                action: match a.action {
                    ActionIn::Raise => AlarmAction::Raise,
                    ActionIn::Cancel => AlarmAction::Cancel,
                },
                kind: a.kind.unwrap_or_default(),
                at: a.at,
                received,
                // The gateway's rate limit says (`limit`).
                over_limit: false,
            })
        }
        Channel::Heartbeat => {
            let h: HeartbeatIn = json(payload)?;
            check_opt("battery_pct", h.battery_pct, 0.0..=100.0)?;
            Message::Heartbeat { at: h.at, battery_pct: h.battery_pct }
        }
        Channel::Online => Message::Online(json::<bool>(payload)?),
        Channel::Position => {
            let p: PositionIn = json(payload)?;
            let point = GeoPoint::new(p.lat, p.lon).map_err(|e| invalid(e.to_string()))?;
            // A fix from the future would make every later (true) fix look out of order.
            let ahead = p.at - received.at;
            if ahead > chrono::TimeDelta::seconds(MAX_CLOCK_AHEAD_S) {
                return Err(invalid(format!(
                    "at is {} s ahead of kuzet's clock (limit {MAX_CLOCK_AHEAD_S} s)",
                    ahead.num_seconds()
                )));
            }
            check_opt("speed_mps", p.speed_mps, 0.0..=150.0)?;
            check_opt("heading_deg", p.heading_deg, 0.0..=360.0)?;
            check_opt("accuracy_m", p.accuracy_m, 0.0..=100_000.0)?;
            Message::Position(Position {
                point,
                at: p.at,
                speed_mps: p.speed_mps,
                heading_deg: p.heading_deg,
                received,
            })
        }
        Channel::Detections => {
            let d: DetectionsIn = json(payload)?;
            if d.faces.len() > MAX_FACES {
                return Err(invalid(format!("{} faces in one message (limit {MAX_FACES})", d.faces.len())));
            }
            let mut faces = Vec::with_capacity(d.faces.len());
            for (i, f) in d.faces.iter().enumerate() {
                faces.push(
                    crate::embedding_from(&f.embedding).map_err(|e| invalid(format!("faces[{i}]: {e}")))?,
                );
            }
            for (i, p) in d.plates.iter().enumerate() {
                if p.text.is_empty() || p.text.chars().count() > 16 || !(0.0..=1.0).contains(&p.confidence) {
                    return Err(invalid(format!("plates[{i}]: text of 1-16 characters and confidence 0..1")));
                }
                text(&format!("plates[{i}].text"), &p.text)?;
            }
            Message::Detections { at: d.at, faces, plates: d.plates.len() }
        }
        Channel::Status => {
            let s: StatusIn = json(payload)?;
            Message::Status(StatusReport { status: s.status, at: s.at })
        }
        Channel::Reply => {
            let r: ReplyIn = json(payload)?;
            if r.reason.as_ref().is_some_and(|s| s.chars().count() > MAX_REASON_CHARS) {
                return Err(invalid(format!("reason is longer than {MAX_REASON_CHARS} characters")));
            }
            if let Some(reason) = &r.reason {
                text("reason", reason)?;
            }
            Message::Reply(Reply {
                offer_id: OfferId(r.offer_id),
                accept: matches!(r.decision, DecisionIn::Accept),
                reason: r.reason,
                received,
            })
        }
        Channel::Progress => {
            let p: ProgressMsgIn = json(payload)?;
            Message::Progress(ProgressReport {
                incident_id: IncidentId(p.incident_id),
                progress: match p.state {
                    ProgressIn::EnRoute => Progress::EnRoute,
                    ProgressIn::OnScene => Progress::OnScene,
                    ProgressIn::Cleared => Progress::Cleared,
                },
                received,
            })
        }
    })
}

/// One publish: topic, JSON payload, retained or not.
pub struct Outgoing {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    /// Follow with an empty retained message on the same topic, so the broker keeps
    /// nothing for it (a closed incident).
    pub then_clear_retained: bool,
}

#[derive(Serialize)]
struct EscalationOut<'a> {
    incident_id: IncidentId,
    reason: kuzet_actors::dispatch::EscalationReason,
    incident: bound::SnapshotView<'a>,
}

/// An incident snapshot as published (and shown on the live feed): bounded, see `bound`.
pub fn snapshot_payload(s: &kuzet_actors::incident::IncidentSnapshot) -> Result<Vec<u8>, serde_json::Error> {
    bound::snapshot(s)
}

/// A face-match review as published (and shown on the live feed): bounded, see `bound`.
pub fn review_payload(r: &kuzet_actors::outbound::ReviewOut) -> Result<Vec<u8>, serde_json::Error> {
    bound::review(r)
}

/// Encodes a notification from the actors as one publish. Snapshots, escalations and reviews,
/// which grow as long as an incident or review lasts, are cut to fit `bound::MAX_PUBLISH_BYTES`
/// (an error rather than a payload over it); the others are small by construction.
pub fn encode(n: &Notify) -> Result<Outgoing, serde_json::Error> {
    Ok(match n {
        Notify::Offer { unit, offer } => Outgoing {
            topic: topics::offers(unit.as_str()),
            payload: serde_json::to_vec(&wire::Offer::from(offer))?,
            retain: false,
            then_clear_retained: false,
        },
        Notify::Unit { unit, incident_id, update } => Outgoing {
            topic: topics::unit_incident(unit.as_str(), incident_id),
            payload: serde_json::to_vec(&wire::UnitIncident::new(incident_id, update))?,
            retain: false,
            then_clear_retained: false,
        },
        Notify::Ack { button, ack } => Outgoing {
            topic: topics::button_ack(button.as_str()),
            payload: serde_json::to_vec(&wire::Ack::from(ack))?,
            retain: false,
            then_clear_retained: false,
        },
        Notify::Closed(s) => Outgoing {
            topic: topics::incident(&s.incident_id),
            payload: bound::snapshot(s)?,
            retain: false,
            then_clear_retained: true,
        },
        Notify::Snapshot(s) => Outgoing {
            topic: topics::incident(&s.incident_id),
            payload: bound::snapshot(s)?,
            retain: true,
            then_clear_retained: false,
        },
        // The consoles' own: the same payload, never published (`Notify::for_devices`).
        Notify::Live(s) => Outgoing {
            topic: topics::incident(&s.incident_id),
            payload: bound::snapshot(s)?,
            retain: false,
            then_clear_retained: false,
        },
        Notify::Escalation { incident_id, reason, snapshot } => Outgoing {
            topic: topics::ESCALATIONS.to_owned(),
            payload: bound::fit("escalation", incident_id, bound::SnapshotView::tails(snapshot), |t| {
                serde_json::to_vec(&EscalationOut {
                    incident_id: *incident_id,
                    reason: *reason,
                    incident: bound::SnapshotView::new(snapshot, t),
                })
            })?,
            retain: false,
            then_clear_retained: false,
        },
        Notify::Integrity(a) => Outgoing {
            topic: match a.audience {
                Audience::Dispatch => topics::integrity(a.camera.as_str()),
                Audience::Oversight => topics::oversight_integrity(a.camera.as_str()),
            },
            payload: serde_json::to_vec(&**a)?,
            retain: true,
            then_clear_retained: false,
        },
        // CAP XML, not JSON: outside systems read warnings in their own standard. Kept
        // (retained) as the warning's newest message, its cancellation included.
        Notify::Warning(w) => Outgoing {
            topic: topics::warning(&w.warning_id),
            payload: crate::cap::alert_document(w).into_bytes(),
            retain: true,
            then_clear_retained: false,
        },
        Notify::Review(r) => {
            let pending = r.state == ReviewState::Pending;
            Outgoing {
                topic: topics::review(&r.review_id),
                payload: bound::review(r)?,
                retain: pending,
                then_clear_retained: !pending,
            }
        }
    })
}

/// The kind of device a topic names, for log lines.
pub fn kind_name(k: DeviceKind) -> &'static str {
    match k {
        DeviceKind::Button => "button",
        DeviceKind::Unit => "unit",
        DeviceKind::Camera => "camera",
    }
}

#[cfg(test)]
mod tests;
