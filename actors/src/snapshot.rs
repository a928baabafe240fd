//! What an incident looks like from outside: the snapshot published for consoles and
//! integrations, with the buttons that raised it and its timeline of timed hops.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::dispatch::{Assignment, EscalationReason, PendingOffer};
use crate::geo::GeoPoint;
use crate::ids::{AlarmId, ButtonId, CameraId, IncidentId, SightingId, UnitId};
use crate::model::{AlarmKind, IncidentKind, IncidentState, Priority};
pub use crate::subject::{SiteRef, Subject, WantedRef};

/// One line of an incident's timeline. `t_us` counts from the first alarm's arrival, so the
/// latency of every hop of this alert can be read off directly.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    pub t_us: u64,
    pub event: Cow<'static, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<UnitId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub button: Option<ButtonId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A button whose alarm is part of this incident.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Raiser {
    pub button: ButtonId,
    pub alarm_id: AlarmId,
    pub room: Option<String>,
    pub kind: AlarmKind,
    /// The button cancelled this alarm; the incident goes on while others stand.
    #[serde(default)]
    pub withdrawn: bool,
}

/// One sighting on an incident's trajectory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SightingRef {
    pub sighting_id: SightingId,
    pub camera: CameraId,
    pub at: DateTime<Utc>,
    pub location: GeoPoint,
    pub score: f32,
    /// Whether the face crop and frame were saved (an edge camera sends no pictures).
    #[serde(default)]
    pub evidence: bool,
}

/// The incident as published (retained) for consoles and integrations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IncidentSnapshot {
    pub incident_id: IncidentId,
    pub kind: IncidentKind,
    pub priority: Priority,
    pub state: IncidentState,
    pub location: GeoPoint,
    /// Published as `site` and `wanted` (contract v1).
    #[serde(flatten, with = "crate::subject::fields")]
    pub subject: Subject,
    pub raised_by: Vec<Raiser>,
    pub opened_at: DateTime<Utc>,
    pub units: Vec<Assignment>,
    pub offers: Vec<PendingOffer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalated: Option<EscalationReason>,
    pub timeline: Vec<TimelineEntry>,
    /// The wanted person's sightings, oldest first (the incident's location is the latest).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sightings: Vec<SightingRef>,
}
