//! Plain domain values shared by the actors and the adapters.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// 1 is the most urgent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Priority(pub u8);

/// What the tablet says about its crew.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitStatus {
    Available,
    Busy,
    OffDuty,
}

/// What a teacher's button reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    Intruder,
    Medical,
    Fire,
    #[default]
    Other,
}

/// What an incident is about; selects its response plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    SchoolAlarm,
    /// A person on the watchlist seen by a camera.
    WantedPerson,
}

/// How dangerous a watchlisted person is held to be; only `High` may open an incident
/// without a dispatcher confirming the match first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Danger {
    Low,
    Medium,
    High,
}

impl Danger {
    pub fn as_str(&self) -> &'static str {
        match self {
            Danger::Low => "low",
            Danger::Medium => "medium",
            Danger::High => "high",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "low" => Some(Danger::Low),
            "medium" => Some(Danger::Medium),
            "high" => Some(Danger::High),
            _ => None,
        }
    }
}

impl AlarmKind {
    /// The contract's name for it.
    pub fn as_str(&self) -> &'static str {
        match self {
            AlarmKind::Intruder => "intruder",
            AlarmKind::Medical => "medical",
            AlarmKind::Fire => "fire",
            AlarmKind::Other => "other",
        }
    }
}

impl IncidentKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            IncidentKind::SchoolAlarm => "school_alarm",
            IncidentKind::WantedPerson => "wanted_person",
        }
    }
}

/// Where an incident is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    /// Received, looking for units.
    Dispatching,
    /// Every unit the plan asks for has accepted.
    Dispatched,
    /// Nobody (or not enough units) accepted within the plan's limits; a dispatcher must act.
    Uncovered,
    EnRoute,
    OnScene,
    /// Every assigned unit has cleared.
    Closed,
    Cancelled,
}

impl IncidentState {
    pub fn is_open(&self) -> bool {
        !matches!(self, IncidentState::Closed | IncidentState::Cancelled)
    }
}

/// A unit's progress on an incident, as its tablet reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Progress {
    Accepted,
    EnRoute,
    OnScene,
    Cleared,
}

/// What the button is told; one per step the school staff care about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckState {
    Received,
    Dispatched,
    /// Nobody has accepted yet; a dispatcher is on it.
    Escalated,
    OnScene,
    Cleared,
    Cancelled,
}

/// How an incident of a kind is answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponsePlan {
    pub priority: Priority,
    /// Units that must accept for the incident to be covered.
    pub units_required: u8,
    /// Offers sent in all before escalating as uncovered.
    pub max_offers: u16,
    #[serde(with = "secs")]
    pub offer_timeout: Duration,
    /// How long after its first unit is on scene a new alarm at the site still joins the
    /// incident as it is. Later, a new alarm means something more is happening there: the
    /// incident asks for a fresh round of units.
    #[serde(with = "secs", default = "default_on_scene_joinable")]
    pub on_scene_joinable: Duration,
}

fn default_on_scene_joinable() -> Duration {
    Duration::from_secs(600)
}

impl ResponsePlan {
    /// The plan for `kind` when the settings name none.
    pub fn default_for(kind: IncidentKind) -> Self {
        match kind {
            IncidentKind::SchoolAlarm => Self::school_alarm_default(),
            IncidentKind::WantedPerson => Self {
                priority: Priority(2),
                units_required: 2,
                max_offers: 10,
                offer_timeout: Duration::from_secs(20),
                on_scene_joinable: default_on_scene_joinable(),
            },
        }
    }

    pub fn school_alarm_default() -> Self {
        Self {
            priority: Priority(1),
            units_required: 2,
            max_offers: 10,
            offer_timeout: Duration::from_secs(15),
            on_scene_joinable: default_on_scene_joinable(),
        }
    }
}

mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Duration::try_from_secs_f64(v).map_err(serde::de::Error::custom)
    }
}

/// Straight-line ETA: distance over an urban response speed, times a detour factor for streets.
/// A rough figure until drive-time routing ranks units.
pub fn straight_line_eta_s(distance_m: f64) -> u32 {
    const RESPONSE_SPEED_MPS: f64 = 40.0 / 3.6;
    const DETOUR_FACTOR: f64 = 1.3;
    (distance_m * DETOUR_FACTOR / RESPONSE_SPEED_MPS).round() as u32
}
