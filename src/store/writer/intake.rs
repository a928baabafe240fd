//! What the writer is handed, turned into the rows of its next batch.

use chrono::Utc;
use kuzet_actors::ids::{ButtonId, IncidentId, UnitId};
use kuzet_actors::outbound::IncidentRecord;
use tokio::sync::oneshot;

use super::{enum_str, Urgent, Writer};
use crate::store::rows::{AuditRow, Batch, EventRow, IncidentRow};
use crate::store::state::Keeper;

impl Writer {
    pub(super) fn take(
        &mut self,
        u: Urgent,
        batch: &mut Batch,
        waiters: &mut Vec<oneshot::Sender<()>>,
        flushes: &mut Vec<oneshot::Sender<()>>,
    ) {
        match u {
            Urgent::Alarm(row, done) => {
                batch.alarms.push(row);
                waiters.push(done);
            }
            Urgent::Incident(mut r) => {
                waiters.append(&mut r.waiters);
                self.incident_rows(r, batch);
            }
            Urgent::UnitStatus(row, waiter) => {
                batch.put_unit_status(row);
                waiters.extend(waiter);
            }
            Urgent::Audit(a) => batch.audits.push(a),
            Urgent::Sighting(row, audit) => {
                batch.sightings.push(row);
                batch.audits.push(audit);
            }
            Urgent::Integrity(row, audit) => {
                batch.camera_alerts.push(row);
                batch.audits.extend(audit);
            }
            Urgent::Seed(s, state) => {
                self.written.extend(s);
                // Started without the database, the writer keeps its copy since it opened.
                if self.copy.is_none() {
                    self.copy = Some(Keeper::new(*state, &self.config.spool_dir, self.stats.clone()));
                }
            }
            Urgent::Flush(f) => flushes.push(f),
        }
    }

    /// The incident's row, its new timeline entries, and an audit entry for each dispatch
    /// action among them.
    fn incident_rows(&mut self, r: IncidentRecord, batch: &mut Batch) {
        let s = &r.snapshot;
        let open = s.state.is_open();
        let (snapshot, dispatch) = match (serde_json::to_string(&**s), serde_json::to_string(&r.state)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(incident_id = %s.incident_id, error = %e, "cannot encode an incident for the record");
                return;
            }
        };
        let now = Utc::now();
        batch.put_incident(IncidentRow {
            id: s.incident_id.0,
            kind: s.kind.as_str().to_owned(),
            priority: i16::from(s.priority.0),
            state: enum_str(&s.state),
            site_id: s.subject.site().map(|x| x.id.to_string()),
            subject_kind: Some(s.subject.kind().as_str().to_owned()),
            subject_id: Some(s.subject.id().to_owned()),
            lat: s.location.lat(),
            lon: s.location.lon(),
            opened_at: s.opened_at,
            closed_at: (!open).then(|| s.timeline.last().map_or(now, |e| e.at)),
            escalated: s.escalated.map(|e| e.as_str().to_owned()),
            snapshot,
            dispatch,
            updated_at: now,
        });
        let from = self.written.get(&s.incident_id).copied().unwrap_or(0);
        for (seq, e) in s.timeline.iter().enumerate().skip(from) {
            batch.events.push(EventRow {
                incident_id: s.incident_id.0,
                seq: seq as i32,
                at: e.at,
                t_us: e.t_us.min(i64::MAX as u64) as i64,
                event: e.event.to_string(),
                unit_id: e.unit.as_ref().map(|u| u.to_string()),
                button_id: e.button.as_ref().map(|b| b.to_string()),
                detail: e.detail.clone(),
            });
            if let Some(a) = audit_for(s.incident_id, &e.event, e.unit.as_ref(), e.button.as_ref(), &e.detail)
            {
                batch.audits.push(a);
            }
        }
        if open {
            self.written.insert(s.incident_id, s.timeline.len());
        } else {
            self.written.remove(&s.incident_id);
        }
    }
}

/// A dispatch action among an incident's new timeline entries, as an audit entry.
fn audit_for(
    incident: IncidentId,
    event: &str,
    unit: Option<&UnitId>,
    button: Option<&ButtonId>,
    detail: &Option<String>,
) -> Option<AuditRow> {
    let (actor, action) = match event {
        "alarm_received" => (button.map(|b| format!("button:{b}"))?, "incident.open"),
        "alarm_joined" => (button.map(|b| format!("button:{b}"))?, "incident.join"),
        "alarm_withdrawn" => (button.map(|b| format!("button:{b}"))?, "alarm.withdraw"),
        "cancel_requested" => (button.map(|b| format!("button:{b}"))?, "incident.cancel"),
        "offer_published" => ("kuzet".to_owned(), "incident.offer"),
        "offer_timed_out" => ("kuzet".to_owned(), "incident.offer_expired"),
        "reply_accept" => (unit.map(|u| format!("unit:{u}"))?, "incident.accept"),
        "reply_decline" => (unit.map(|u| format!("unit:{u}"))?, "incident.decline"),
        "escalated" => ("kuzet".to_owned(), "incident.escalate"),
        "closed" => ("kuzet".to_owned(), "incident.close"),
        "restored" => ("kuzet".to_owned(), "incident.restore"),
        _ => return None,
    };
    let mut details = serde_json::Map::new();
    if let Some(u) = unit {
        details.insert("unit".into(), u.to_string().into());
    }
    if let Some(d) = detail {
        details.insert("detail".into(), d.clone().into());
    }
    Some(AuditRow {
        actor,
        action: action.to_owned(),
        subject: Some(incident.to_string()),
        details: serde_json::Value::Object(details).to_string(),
    })
}
