//! What an incident looks like from outside: the snapshot published for consoles and
//! integrations, with the buttons that raised it and its timeline of timed hops.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::dispatch::{Assignment, EscalationReason, PendingOffer};
use crate::geo::GeoPoint;
use crate::ids::{AlarmId, ButtonId, CameraId, IncidentId, PersonId, SightingId, UnitId};
use crate::model::{AlarmKind, Danger, IncidentKind, IncidentState, Priority};
use crate::outbound::SiteRef;

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

/// The watchlisted person a face incident is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WantedRef {
    pub person_id: PersonId,
    pub name: String,
    pub danger: Danger,
    /// The legal basis or case reference the person is on the list under.
    pub legal_basis: String,
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
    pub site: Option<SiteRef>,
    pub raised_by: Vec<Raiser>,
    pub opened_at: DateTime<Utc>,
    pub units: Vec<Assignment>,
    pub offers: Vec<PendingOffer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalated: Option<EscalationReason>,
    pub timeline: Vec<TimelineEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wanted: Option<WantedRef>,
    /// The wanted person's sightings, oldest first (the incident's location is the latest).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sightings: Vec<SightingRef>,
}
