//! Area warnings: what a dispatcher tells the public and outside systems about a place (an
//! armed person in a district, a road closed by an operation), as OASIS CAP 1.2 messages.
//!
//! A warning is only ever issued by a person, on purpose: kuzet never makes one from an
//! incident, a wanted person's sighting, a pursuit or anything silent. Each change is a new
//! message (`Alert`, then `Update`s, then maybe a `Cancel`) that names the messages it changes.
//! The `event` and `category` are fields, so that other kinds (a school lockdown) can be issued
//! through the same path later.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::geo::GeoPoint;

/// CAP `msgType`: what a message does to the warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgType {
    Alert,
    Update,
    Cancel,
}

impl MsgType {
    pub fn as_str(self) -> &'static str {
        match self {
            MsgType::Alert => "Alert",
            MsgType::Update => "Update",
            MsgType::Cancel => "Cancel",
        }
    }
}

/// CAP `severity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Extreme,
    Severe,
    Moderate,
    Minor,
}

impl Severity {
    pub const ALL: [Severity; 4] = [Severity::Extreme, Severity::Severe, Severity::Moderate, Severity::Minor];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Extreme => "Extreme",
            Severity::Severe => "Severe",
            Severity::Moderate => "Moderate",
            Severity::Minor => "Minor",
        }
    }

    /// From the API's lower-case name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str().eq_ignore_ascii_case(s))
    }
}

/// CAP `urgency`: when to act.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    Immediate,
    Expected,
}

impl Urgency {
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::Immediate => "Immediate",
            Urgency::Expected => "Expected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Urgency::Immediate, Urgency::Expected].into_iter().find(|v| v.as_str().eq_ignore_ascii_case(s))
    }
}

/// Where a warning applies: a circle or a polygon (closed: the first point again at the end).
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Circle { centre: GeoPoint, radius_m: f64 },
    Polygon(Vec<GeoPoint>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Area {
    /// Said in words: "Abay Avenue between Dostyk and Furmanov".
    pub description: String,
    pub shape: Shape,
}

/// An earlier message a message changes (CAP `references`: sender, identifier, sent).
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub sender: String,
    pub identifier: String,
    pub sent: DateTime<Utc>,
}

/// One CAP message of a warning.
#[derive(Debug, Clone, PartialEq)]
pub struct Warning {
    /// This message's id, unique: `urn:uuid:...`.
    pub identifier: String,
    /// The warning it belongs to, the same across its Alert, Updates and Cancel.
    pub warning_id: Uuid,
    /// Who sends it: the deployment's sender id (settings), the same on every message.
    pub sender: String,
    /// Whole seconds: CAP times carry no fractions.
    pub sent: DateTime<Utc>,
    pub msg_type: MsgType,
    /// Every earlier message of the warning, for an Update or Cancel.
    pub references: Vec<Reference>,
    /// CAP `category`: `Security` for police warnings.
    pub category: &'static str,
    /// What it is about, e.g. "Police operation".
    pub event: String,
    pub urgency: Urgency,
    pub severity: Severity,
    pub headline: String,
    pub description: String,
    pub instruction: Option<String>,
    pub expires: DateTime<Utc>,
    pub area: Area,
    /// The operations centre's name, shown as `senderName`.
    pub sender_name: String,
    /// The dispatcher who issued this message (audited; not published).
    pub issued_by: String,
}

impl Warning {
    /// The `references` entry that names this message.
    pub fn as_reference(&self) -> Reference {
        Reference { sender: self.sender.clone(), identifier: self.identifier.clone(), sent: self.sent }
    }
}
