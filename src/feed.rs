//! The live feed for the console and the oversight view: what the actors publish
//! (incidents, escalations, face-match reviews, camera integrity), fanned out to every
//! connected WebSocket as JSON `{"type": ..., "data": ...}`. Each notification is turned into
//! text once, and only while somebody is listening. Each camera's open integrity alert is kept
//! too, so a page that connects later starts from it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kuzet_actors::fleet::Position;
use kuzet_actors::ids::{CameraId, UnitId};
use kuzet_actors::outbound::{Audience, Board, Notify, UnitOnMap};
use serde_json::json;
use tokio::sync::broadcast;

/// Who a live event is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    /// Dispatchers and supervisors.
    Console,
    /// Oversight: custodial cameras' integrity alerts only.
    Oversight,
}

#[derive(Debug)]
pub struct LiveEvent {
    pub viewer: Viewer,
    pub text: Arc<str>,
}

/// Events a slow WebSocket may fall behind by before it is told to reload.
const BACKLOG: usize = 4096;

/// How often units' changes go out, as one `units` event: a city's tablets report every
/// second or so, and a map needs no more.
pub const UNITS_EVERY: Duration = Duration::from_secs(1);

struct UnitEntry {
    callsign: String,
    /// None until the unit's actor has said (a fix may come first).
    view: Option<UnitOnMap>,
    fix: Option<Position>,
    changed: bool,
}

#[derive(Clone)]
pub struct LiveHub {
    tx: broadcast::Sender<Arc<LiveEvent>>,
    /// Every unit's latest state; `changed` since the last `units` event.
    units: Arc<Mutex<HashMap<UnitId, UnitEntry>>>,
    /// Each camera's latest alert while it is not `ok`, as sent live: at most one per camera.
    alerts: Arc<Mutex<HashMap<CameraId, Shown>>>,
}

impl Default for LiveHub {
    fn default() -> Self {
        Self { tx: broadcast::channel(BACKLOG).0, units: Arc::default(), alerts: Arc::default() }
    }
}

/// An event as sent, and to whom.
type Shown = (Viewer, Arc<str>);

/// Who sees a notification on the live feed, and as which event; None for what is not shown.
/// Whether `n` is for the live feed at all (the outbox hands it nothing else).
pub fn for_consoles(n: &Notify) -> bool {
    route(n).is_some()
}

fn route(n: &Notify) -> Option<(Viewer, &'static str)> {
    Some(match n {
        Notify::Snapshot(_) => (Viewer::Console, "incident"),
        Notify::Live(s) if s.state.is_open() => (Viewer::Console, "incident"),
        Notify::Live(_) => (Viewer::Console, "incident_closed"),
        Notify::Closed(_) => (Viewer::Console, "incident_closed"),
        Notify::Escalation { .. } => (Viewer::Console, "escalation"),
        Notify::Review(_) => (Viewer::Console, "review"),
        Notify::Integrity(a) => match a.audience {
            Audience::Dispatch => (Viewer::Console, "integrity"),
            Audience::Oversight => (Viewer::Oversight, "integrity"),
        },
        // Warnings are read from the API (the console lists them); the feed speaks JSON.
        Notify::Offer { .. } | Notify::Unit { .. } | Notify::Ack { .. } | Notify::Warning(_) => return None,
    })
}

impl Board for LiveHub {
    fn unit(&self, id: &UnitId, callsign: &str, view: UnitOnMap) {
        let mut units = self.units.lock().unwrap_or_else(|p| p.into_inner());
        match units.get_mut(id.as_str()) {
            Some(e) => {
                if e.view != Some(view) {
                    e.view = Some(view);
                    e.callsign.replace_range(.., callsign);
                    e.changed = true;
                }
            }
            None => {
                let e =
                    UnitEntry { callsign: callsign.to_owned(), view: Some(view), fix: None, changed: true };
                units.insert(id.clone(), e);
            }
        }
    }

    fn moved(&self, id: &str, fix: &Position) {
        let mut units = self.units.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = units.get_mut(id) {
            e.fix = Some(*fix);
            e.changed = true;
            return;
        }
        let Ok(unit) = UnitId::parse(id) else { return };
        units.insert(unit, UnitEntry { callsign: id.to_owned(), view: None, fix: Some(*fix), changed: true });
    }
}

fn unit_json(id: &UnitId, e: &UnitEntry) -> serde_json::Value {
    let (v, f) = (e.view.as_ref(), e.fix.as_ref());
    json!({
        "unit_id": id, "callsign": e.callsign, "status": v.map(|v| v.status), "online": v.and_then(|v| v.online),
        "available": v.is_some_and(|v| v.available),
        "lat": f.map(|f| f.point.lat()), "lon": f.map(|f| f.point.lon()),
        "at": f.map(|f| f.at), "speed_mps": f.and_then(|f| f.speed_mps).map(|v| v as f32),
        "heading_deg": f.and_then(|f| f.heading_deg).map(|v| v as f32),
        "incident_id": v.and_then(|v| v.incident),
    })
}

/// `{"type": kind, "data": json}` without parsing `json` again.
pub fn frame(kind: &str, json: &[u8]) -> Arc<str> {
    let data = String::from_utf8_lossy(json);
    format!(r#"{{"type":"{kind}","data":{data}}}"#).into()
}

impl LiveHub {
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.tx.subscribe()
    }

    /// A `units` event with every unit (`all`) or those changed since the last one (None
    /// when there are none); clears the changed marks either way.
    pub fn units_frame(&self, all: bool) -> Option<Arc<str>> {
        let mut units = self.units.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for (id, e) in units.iter_mut() {
            if all || e.changed {
                out.push(unit_json(id, e));
            }
            if !all {
                e.changed = false;
            }
        }
        drop(units);
        (all || !out.is_empty()).then(|| frame("units", serde_json::Value::Array(out).to_string().as_bytes()))
    }

    /// Sends the units that changed every `UNITS_EVERY`, while anyone watches.
    pub async fn run_units(self) {
        let mut tick = tokio::time::interval(UNITS_EVERY);
        loop {
            tick.tick().await;
            if self.tx.receiver_count() == 0 {
                continue;
            }
            if let Some(text) = self.units_frame(false) {
                let _ = self.tx.send(Arc::new(LiveEvent { viewer: Viewer::Console, text }));
            }
        }
    }

    /// Passes a notification on to whoever watches, as the same JSON devices get; those that
    /// are not for a console are left out. A camera's alert is kept (its `ok` forgets it)
    /// whether or not anyone watches; anything else is turned into text only while somebody
    /// does.
    pub fn offer(&self, n: &Notify) {
        let Some((viewer, kind)) = route(n) else { return };
        let is_alert = matches!(n, Notify::Integrity(_));
        if !is_alert && self.tx.receiver_count() == 0 {
            return;
        }
        let payload = match crate::contract::codec::encode(n) {
            Ok(out) => out.payload,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a live event");
                return;
            }
        };
        let text = frame(kind, &payload);
        if let Notify::Integrity(a) = n {
            // Kept before it is sent: a page subscribing in between then has it either way.
            let mut alerts = self.alerts.lock().unwrap_or_else(|p| p.into_inner());
            if a.state == "ok" {
                alerts.remove(&a.camera);
            } else {
                alerts.insert(a.camera.clone(), (viewer, text.clone()));
            }
        }
        let _ = self.tx.send(Arc::new(LiveEvent { viewer, text }));
    }

    /// The open camera alerts for `viewer`, as `integrity` events.
    pub fn alert_frames(&self, viewer: Viewer) -> Vec<Arc<str>> {
        let alerts = self.alerts.lock().unwrap_or_else(|p| p.into_inner());
        alerts.values().filter(|(v, _)| *v == viewer).map(|(_, text)| text.clone()).collect()
    }
}

/// The live feed as one of the outbox's sinks: notifications wait in its mailbox and are
/// turned into text here, never on the turn of the actor that sent them.
///
/// An incident reaches the consoles twice: at once (`Notify::Live`, for what a dispatcher
/// must see now) and as the recorded snapshot devices get a few milliseconds later. The
/// recorded one is passed on only when it says more (its timeline is longer) than what the
/// consoles were shown, so they never see the same state twice, nor an older one after a
/// newer one.
pub struct LiveSink {
    hub: LiveHub,
    /// Per open incident: the timeline length the consoles were last shown.
    shown: HashMap<kuzet_actors::ids::IncidentId, usize>,
}

impl LiveSink {
    pub fn new(hub: LiveHub) -> Self {
        Self { hub, shown: HashMap::new() }
    }

    /// Whether `n` tells the consoles something they were not shown; keeps count.
    fn news(&mut self, n: &Notify) -> bool {
        match n {
            Notify::Live(s) | Notify::Snapshot(s) => {
                let len = s.timeline.len();
                let old = self.shown.get(&s.incident_id).copied();
                if matches!(n, Notify::Snapshot(_)) && old.is_some_and(|o| o >= len) {
                    return false;
                }
                self.shown.insert(s.incident_id, len.max(old.unwrap_or(0)));
                true
            }
            Notify::Closed(s) => self.shown.remove(&s.incident_id).is_none_or(|o| o < s.timeline.len()),
            _ => true,
        }
    }
}

impl actix::Actor for LiveSink {
    type Context = actix::Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // As the MQTT gateway's: the outbox sends past it, nothing is dropped.
        ctx.set_mailbox_capacity(8192);
    }
}

impl actix::Handler<Notify> for LiveSink {
    type Result = ();

    fn handle(&mut self, n: Notify, _: &mut Self::Context) {
        if self.news(&n) {
            self.hub.offer(&n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kuzet_actors::geo::GeoPoint;
    use kuzet_actors::ids::{IncidentId, SiteId};
    use kuzet_actors::incident::IncidentSnapshot;
    use kuzet_actors::model::{IncidentKind, IncidentState, Priority};
    use kuzet_actors::snapshot::TimelineEntry;
    use kuzet_actors::subject::{SiteRef, Subject};

    fn snapshot(id: IncidentId, state: IncidentState, entries: usize) -> Arc<IncidentSnapshot> {
        Arc::new(IncidentSnapshot {
            incident_id: id,
            kind: IncidentKind::SchoolAlarm,
            priority: Priority(1),
            state,
            location: GeoPoint::new(43.238, 76.945).unwrap(),
            subject: Subject::Site(SiteRef {
                id: SiteId::parse("school-1").unwrap(),
                name: "S".into(),
                room: None,
            }),
            raised_by: Vec::new(),
            opened_at: chrono::Utc::now(),
            units: Vec::new(),
            offers: Vec::new(),
            escalated: None,
            timeline: (0..entries)
                .map(|_| TimelineEntry {
                    at: chrono::Utc::now(),
                    t_us: 0,
                    event: "x".into(),
                    unit: None,
                    button: None,
                    detail: None,
                })
                .collect(),
            sightings: Vec::new(),
        })
    }

    #[test]
    fn the_recorded_snapshot_reaches_the_consoles_only_when_it_says_more_than_they_were_shown() {
        let mut sink = LiveSink::new(LiveHub::default());
        let (a, b) = (IncidentId::new_random(), IncidentId::new_random());
        let open = IncidentState::Dispatching;
        assert!(sink.news(&Notify::Live(snapshot(a, open, 2))), "the first state, at once");
        assert!(!sink.news(&Notify::Snapshot(snapshot(a, open, 2))), "the same state, recorded");
        assert!(!sink.news(&Notify::Snapshot(snapshot(a, open, 1))), "an older state after a newer one");
        assert!(sink.news(&Notify::Snapshot(snapshot(a, open, 3))), "a timeline line more");
        assert!(sink.news(&Notify::Snapshot(snapshot(b, open, 1))), "another incident, never shown live");
        assert!(sink.news(&Notify::Live(snapshot(a, IncidentState::Cancelled, 4))), "closed, at once");
        assert!(!sink.news(&Notify::Closed(snapshot(a, IncidentState::Cancelled, 4))), "closed, recorded");
        assert!(
            sink.news(&Notify::Closed(snapshot(b, IncidentState::Cancelled, 2))),
            "closed, never shown live"
        );
        assert!(sink.shown.is_empty(), "nothing kept for incidents that are over");
    }
}
