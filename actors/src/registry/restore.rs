//! Picking up after a restart: what the record says was going on (open incidents, alarms
//! whose incident was not recorded, units' positions and statuses, cameras' health) handed
//! to the actors the registry has just spawned.

use actix::prelude::*;
use chrono::{DateTime, Utc};

use super::{ButtonSites, Registry};
use crate::button::Remember;
use crate::camera::RestoreHealth;
use crate::fleet::Position;
use crate::geo::GeoPoint;
use crate::ids::{AlarmId, ButtonId, CameraId, IncidentId, UnitId};
use crate::incident::{Incident, Raiser, RestoredIncident};
use crate::model::{AckState, Progress, UnitStatus};
use crate::outbound::Received;
use crate::unit::Restore;

/// What the record says was going on before a restart.
#[derive(Debug, Default)]
pub struct Restored {
    /// Open incidents with their dispatch state.
    pub incidents: Vec<RestoredIncident>,
    /// Alarms recorded while their incident was not (the process stopped in between):
    /// their incidents are opened again, with the same ids.
    pub orphans: Vec<OrphanAlarm>,
    /// Recent alarms of incidents that are over and how each ended, so that a redelivery is
    /// not a new incident and the button can be told again.
    pub recent_alarms: Vec<(ButtonId, AlarmId, IncidentId, AckState)>,
    /// Units' last known positions.
    pub positions: Vec<(UnitId, GeoPoint, DateTime<Utc>)>,
    /// Units' last reported statuses.
    pub statuses: Vec<(UnitId, UnitStatus, DateTime<Utc>)>,
    /// Cameras whose last recorded health was not ok, and that health.
    pub cameras: Vec<(CameraId, String)>,
}

#[derive(Debug, Clone)]
pub struct OrphanAlarm {
    pub incident_id: IncidentId,
    pub raiser: Raiser,
    pub received_at: DateTime<Utc>,
}

/// `at`, placed on the monotonic clock as far back as the wall clock says.
pub(crate) fn received_at(at: DateTime<Utc>) -> Received {
    let age = (Utc::now() - at).to_std().unwrap_or_default();
    let now = tokio::time::Instant::now();
    Received { at, instant: now.checked_sub(age).unwrap_or(now) }
}

impl Registry {
    pub(crate) fn restore(&mut self, r: Restored, button_sites: &ButtonSites, ctx: &mut Context<Self>) {
        let (n_incidents, n_orphans, n_positions) = (r.incidents.len(), r.orphans.len(), r.positions.len());
        for (camera, state) in r.cameras {
            if let Some(addr) = self.directory.camera(camera.as_str()) {
                addr.do_send(RestoreHealth { state });
            }
        }
        for (unit, status, at) in r.statuses {
            if let Some(addr) = self.directory.unit(unit.as_str()) {
                addr.do_send(Restore::Status { status, at });
            }
        }
        // A unit the record places is woken: it may be offered work before its tablet
        // speaks again, as it could before the restart.
        for (unit, point, at) in r.positions {
            if self.directory.unit(unit.as_str()).is_some() {
                let fix =
                    Position { point, at, speed_mps: None, heading_deg: None, received: received_at(at) };
                self.config.fleet.report(unit.as_str(), fix);
            }
        }
        for inc in r.incidents {
            let s = &inc.snapshot;
            let (id, subject) = (s.incident_id, s.subject.key());
            let pending: Vec<_> = inc.state.dispatch.pending().to_vec();
            let on_it: Vec<_> = inc
                .state
                .dispatch
                .assigned()
                .iter()
                .filter(|a| a.progress != Progress::Cleared)
                .map(|a| (a.unit.clone(), a.offer_id))
                .collect();
            let raisers: Vec<_> = s.raised_by.iter().map(|r| (r.button.clone(), r.alarm_id)).collect();
            let units = pending
                .iter()
                .map(|p| &p.unit)
                .chain(inc.state.dispatch.assigned().iter().map(|a| &a.unit))
                .filter_map(|u| Some((u.clone(), self.directory.unit(u.as_str())?)))
                .collect();
            let addr = Incident::restore(
                inc,
                units,
                self.router.clone(),
                self.outbox.clone(),
                ctx.address().recipient(),
            )
            .start();
            for p in pending {
                if let Some(u) = self.directory.unit(p.unit.as_str()) {
                    u.do_send(Restore::Offer {
                        offer_id: p.offer_id,
                        incident_id: id,
                        incident: addr.clone().into(),
                    });
                }
            }
            for (unit, offer_id) in on_it {
                if let Some(u) = self.directory.unit(unit.as_str()) {
                    u.do_send(Restore::OnIncident {
                        incident_id: id,
                        incident: addr.clone().into(),
                        offer_id,
                    });
                }
            }
            for (button, alarm_id) in raisers {
                if let Some(b) = self.directory.button(button.as_str()) {
                    b.do_send(Remember {
                        alarm_id,
                        incident_id: id,
                        incident: Some(addr.clone()),
                        ended: None,
                    });
                }
            }
            self.keep(subject, id, addr);
        }
        for o in r.orphans {
            let Some(site) = button_sites.get(&o.raiser.button).cloned() else {
                tracing::error!(incident_id = %o.incident_id, button_id = %o.raiser.button,
                    "recorded alarm from a button no longer registered: not reopened");
                continue;
            };
            let (button, alarm_id) = (o.raiser.button.clone(), o.raiser.alarm_id);
            let opened =
                self.open_at(site, o.raiser, received_at(o.received_at), Some(o.incident_id), false, ctx);
            tracing::warn!(incident_id = %opened.incident_id, %alarm_id,
                "alarm was recorded but its incident was not: opened again");
            if let Some(b) = self.directory.button(button.as_str()) {
                b.do_send(Remember {
                    alarm_id,
                    incident_id: opened.incident_id,
                    incident: Some(opened.addr),
                    ended: None,
                });
            }
        }
        for (button, alarm_id, incident_id, ended) in r.recent_alarms {
            if let Some(b) = self.directory.button(button.as_str()) {
                b.do_send(Remember { alarm_id, incident_id, incident: None, ended: Some(ended) });
            }
        }
        if n_incidents + n_orphans + n_positions > 0 {
            tracing::info!(
                incidents = n_incidents,
                reopened = n_orphans,
                positions = n_positions,
                "state restored from the record"
            );
        }
    }
}
