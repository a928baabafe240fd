//! The handle the gateway and the actors write through: each record becomes a message to the
//! writer thread, urgent ones on a queue of their own.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use kuzet_actors::button::{Alarm, AlarmAction};
use kuzet_actors::fleet::Position;
use kuzet_actors::ids::IncidentId;
use kuzet_actors::outbound::{
    Audience, IncidentRecord, IntegrityAlert, Journal, SightingRecord, UnitStatusRecord, Waiter,
};
use tokio::sync::oneshot;

use super::{enum_str, Urgent, WriterHandle, WriterStats};
use crate::store::rows::{AlarmRow, AuditRow, CameraAlertRow, PositionRow, SightingRow, UnitStatusRow};
use crate::store::state::LocalState;

impl WriterHandle {
    /// Records an alarm; the receiver completes once it is durable (dropped: never).
    pub async fn alarm(
        &self,
        button: &str,
        a: &Alarm,
        incident: Option<IncidentId>,
    ) -> oneshot::Receiver<()> {
        let row = AlarmRow {
            alarm_id: a.alarm_id.0,
            button_id: button.to_owned(),
            action: match a.action {
                AlarmAction::Raise => "raise".into(),
                AlarmAction::Cancel => "cancel".into(),
            },
            kind: Some(a.kind.as_str().into()),
            device_at: a.at,
            received_at: a.received.at,
            incident_id: incident.map(|i| i.0),
        };
        let (tx, rx) = oneshot::channel();
        // Waits when the writer is behind: an alarm is never shed.
        let _ = self.urgent.send(Urgent::Alarm(row, tx)).await;
        rx
    }

    /// Records a position unless the writer is behind (then it is shed and counted).
    pub fn position(&self, unit: &str, p: &Position) {
        let row = PositionRow {
            unit_id: unit.to_owned(),
            at: p.at,
            received_at: p.received.at,
            lat: p.point.lat(),
            lon: p.point.lon(),
            speed_mps: p.speed_mps.map(|v| v as f32),
            heading_deg: p.heading_deg.map(|v| v as f32),
        };
        if self.positions.try_send(row).is_err() {
            self.stats.positions_shed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Appends an audit entry with the next batch.
    pub async fn audit(&self, actor: &str, action: &str, subject: Option<&str>, details: serde_json::Value) {
        let row = AuditRow {
            actor: actor.to_owned(),
            action: action.to_owned(),
            subject: subject.map(str::to_owned),
            details: details.to_string(),
        };
        let _ = self.urgent.send(Urgent::Audit(row)).await;
    }

    /// Tells the writer how much of restored incidents' timelines is already recorded, and
    /// what the record held at start (the local copy starts from it).
    pub async fn seed(&self, written: Vec<(IncidentId, usize)>, state: LocalState) {
        let _ = self.urgent.send(Urgent::Seed(written, Box::new(state))).await;
    }

    /// Completes once everything handed over before it is durable.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.urgent.send(Urgent::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Records waiting for the writer thread, and each queue's capacity: (urgent: alarms,
    /// incidents, statuses, audit; positions).
    pub fn queued(&self) -> [(usize, usize); 2] {
        let urgent = self.urgent.max_capacity();
        let positions = self.positions.max_capacity();
        [(urgent - self.urgent.capacity(), urgent), (positions - self.positions.capacity(), positions)]
    }
}

impl Journal for WriterHandle {
    fn incident(&self, record: IncidentRecord) -> Result<(), Vec<Waiter>> {
        match self.urgent.try_send(Urgent::Incident(record)) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.stats.incidents_not_recorded.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("writer queue full: an incident change waits to be recorded");
                match e.into_inner() {
                    Urgent::Incident(r) => Err(r.waiters),
                    _ => Err(Vec::new()),
                }
            }
        }
    }

    fn unit_status(&self, r: UnitStatusRecord) -> bool {
        let row = UnitStatusRow { unit_id: r.unit.to_string(), status: enum_str(&r.status), at: r.at };
        self.urgent.try_send(Urgent::UnitStatus(row, r.waiter)).is_ok()
    }

    fn sighting(&self, r: SightingRecord) {
        let s = &r.sighting;
        let row = SightingRow {
            id: s.sighting_id.0,
            decision: r.decision.as_str().to_owned(),
            person_id: r.person_id.to_string(),
            camera_id: s.camera.to_string(),
            at: s.at,
            score: s.score,
            lat: s.location.lat(),
            lon: s.location.lon(),
            evidence: s.evidence,
            incident_id: r.incident_id.map(|i| i.0),
            review_id: r.review_id.map(|i| i.0),
            embedding: r.embedding.as_ref().map(|e| e.to_vec()),
        };
        // The match itself, audited: who (the camera) found whom, and what came of it.
        let audit = AuditRow {
            actor: format!("camera:{}", s.camera),
            action: format!("watchlist.match.{}", r.decision.as_str()),
            subject: Some(r.person_id.to_string()),
            details: serde_json::json!({"sighting_id": s.sighting_id, "score": s.score,
                "incident_id": r.incident_id, "review_id": r.review_id})
            .to_string(),
        };
        if self.urgent.try_send(Urgent::Sighting(row, audit)).is_err() {
            self.stats.incidents_not_recorded.fetch_add(1, Ordering::Relaxed);
            tracing::error!("writer queue full: a sighting was not recorded");
        }
    }

    fn integrity(&self, a: Arc<IntegrityAlert>) {
        let audience = match a.audience {
            Audience::Dispatch => "dispatch",
            Audience::Oversight => "oversight",
        };
        let row = CameraAlertRow {
            camera_id: a.camera.to_string(),
            at: a.at,
            state: a.state.clone(),
            detail: a.detail.clone(),
            audience: audience.to_owned(),
            custodial: a.custodial,
        };
        // A custodial camera's tampering is evidence about the police: on the chain too.
        let audit = a.custodial.then(|| AuditRow {
            actor: format!("camera:{}", a.camera),
            action: "camera.integrity".to_owned(),
            subject: Some(a.camera.to_string()),
            details: serde_json::json!({"state": a.state, "detail": a.detail, "at": a.at}).to_string(),
        });
        if self.urgent.try_send(Urgent::Integrity(row, audit)).is_err() {
            self.stats.incidents_not_recorded.fetch_add(1, Ordering::Relaxed);
            tracing::error!("writer queue full: a camera alert was not recorded");
        }
    }
}
