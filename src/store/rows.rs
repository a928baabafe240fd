//! The rows the writer puts in the database, as one batch. A batch is also the unit of the
//! spool: one JSON line per batch, replayed as it was.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlarmRow {
    pub alarm_id: Uuid,
    pub button_id: String,
    /// raise | cancel
    pub action: String,
    pub kind: Option<String>,
    pub device_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub incident_id: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IncidentRow {
    pub id: Uuid,
    pub kind: String,
    pub priority: i16,
    pub state: String,
    pub site_id: Option<String>,
    /// What the incident is about (`site`, `person`) and its id. None in lines spooled
    /// before subjects were recorded: the insert works them out as migration 0008 does.
    #[serde(default)]
    pub subject_kind: Option<String>,
    #[serde(default)]
    pub subject_id: Option<String>,
    pub lat: f64,
    pub lon: f64,
    pub opened_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub escalated: Option<String>,
    /// JSON text of the snapshot and of the dispatch state.
    pub snapshot: String,
    pub dispatch: String,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventRow {
    pub incident_id: Uuid,
    pub seq: i32,
    pub at: DateTime<Utc>,
    pub t_us: i64,
    pub event: String,
    pub unit_id: Option<String>,
    pub button_id: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PositionRow {
    pub unit_id: String,
    pub at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub lat: f64,
    pub lon: f64,
    pub speed_mps: Option<f32>,
    pub heading_deg: Option<f32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditRow {
    pub actor: String,
    pub action: String,
    pub subject: Option<String>,
    /// JSON text.
    pub details: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SightingRow {
    pub id: Uuid,
    pub decision: String,
    pub person_id: String,
    pub camera_id: String,
    pub at: DateTime<Utc>,
    pub score: f32,
    pub lat: f64,
    pub lon: f64,
    pub evidence: bool,
    pub incident_id: Option<Uuid>,
    pub review_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CameraAlertRow {
    pub camera_id: String,
    pub at: DateTime<Utc>,
    pub state: String,
    pub detail: Option<String>,
    pub audience: String,
    pub custodial: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnitStatusRow {
    pub unit_id: String,
    /// available | busy | off_duty
    pub status: String,
    pub at: DateTime<Utc>,
}

/// Everything one transaction writes. `id` makes the write idempotent: a batch whose id the
/// database already holds is skipped.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Batch {
    pub id: Uuid,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alarms: Vec<AlarmRow>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incidents: Vec<IncidentRow>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventRow>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub positions: Vec<PositionRow>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audits: Vec<AuditRow>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sightings: Vec<SightingRow>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub camera_alerts: Vec<CameraAlertRow>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unit_statuses: Vec<UnitStatusRow>,
}

impl Batch {
    pub fn new() -> Self {
        Self {
            id: Uuid::new_v4(),
            alarms: Vec::new(),
            incidents: Vec::new(),
            events: Vec::new(),
            positions: Vec::new(),
            audits: Vec::new(),
            sightings: Vec::new(),
            camera_alerts: Vec::new(),
            unit_statuses: Vec::new(),
        }
    }

    pub fn rows(&self) -> usize {
        self.alarms.len()
            + self.incidents.len()
            + self.events.len()
            + self.positions.len()
            + self.audits.len()
            + self.sightings.len()
            + self.camera_alerts.len()
            + self.unit_statuses.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows() == 0
    }

    /// Adds an incident's newest state; an earlier state of the same incident in this batch
    /// is replaced (one upsert may not touch a row twice).
    pub fn put_incident(&mut self, row: IncidentRow) {
        match self.incidents.iter_mut().find(|r| r.id == row.id) {
            Some(r) => *r = row,
            None => self.incidents.push(row),
        }
    }

    /// Appends `other`'s rows after this batch's.
    pub fn absorb(&mut self, other: Batch) {
        self.alarms.extend(other.alarms);
        for i in other.incidents {
            self.put_incident(i);
        }
        self.events.extend(other.events);
        self.positions.extend(other.positions);
        self.audits.extend(other.audits);
        self.sightings.extend(other.sightings);
        self.camera_alerts.extend(other.camera_alerts);
        for u in other.unit_statuses {
            self.put_unit_status(u);
        }
    }

    /// Adds a unit's status; the unit's earlier one in this batch is replaced (one upsert may
    /// not touch a row twice).
    pub fn put_unit_status(&mut self, row: UnitStatusRow) {
        match self.unit_statuses.iter_mut().find(|r| r.unit_id == row.unit_id) {
            Some(r) if r.at <= row.at => *r = row,
            Some(_) => {}
            None => self.unit_statuses.push(row),
        }
    }
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}
