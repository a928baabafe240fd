//! Registry: the directory of live actors. Spawns one actor per configured device, hands the
//! adapters a `Directory` to find them by id, and opens incidents (one open incident per
//! site: a second raise at a school joins the first).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use actix::prelude::*;
use serde::{Deserialize, Serialize};

use chrono::{DateTime, Utc};

use crate::button::{AlarmEnded, PanicButton, Remember};
use crate::camera::{Camera, CameraSpec, RestoreHealth};
use crate::geo::GeoPoint;
use crate::ids::{AlarmId, ButtonId, CameraId, IncidentId, PersonId, SiteId, UnitId};
use crate::incident::{
    GetSnapshot, Incident, IncidentOver, IncidentSnapshot, IncidentSpec, Join, Note, Raiser,
    RestoredIncident, Sighted, SightingRef, WantedRef,
};
use crate::model::{AckState, IncidentKind, IncidentState, Progress, ResponsePlan, UnitStatus};
use crate::outbound::{Outbox, Received, SiteRef};
use crate::router::{RegisterUnit, Router};
use crate::unit::{Position, Restore, Unit};
use crate::wanted::WatchDirectory;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SiteKind {
    School,
    PoliceStation,
    Prison,
}

/// The devices kuzet knows, as loaded from the registry file.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Devices {
    #[serde(default)]
    pub sites: Vec<SiteSpec>,
    #[serde(default)]
    pub units: Vec<UnitSpec>,
    #[serde(default)]
    pub cameras: Vec<CameraSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSpec {
    pub id: SiteId,
    pub name: String,
    pub kind: SiteKind,
    pub location: GeoPoint,
    #[serde(default)]
    pub buttons: Vec<ButtonSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ButtonSpec {
    pub id: ButtonId,
    pub room: Option<String>,
    /// The device's broker password (demo and test registries only; production keeps
    /// credentials in the broker's password file).
    pub password: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitSpec {
    pub id: UnitId,
    pub callsign: String,
    pub password: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DevicesError {
    #[error("device id {0} is used twice")]
    Duplicate(String),
}

impl Devices {
    /// Checks what serde cannot: ids are unique across all devices and sites, because the
    /// broker's identity rule (username = device id) must name exactly one device.
    pub fn validate(&self) -> Result<(), DevicesError> {
        let mut seen = std::collections::HashSet::new();
        let ids = self
            .sites
            .iter()
            .flat_map(|s| s.buttons.iter().map(|b| b.id.as_str()))
            .chain(self.units.iter().map(|u| u.id.as_str()))
            .chain(self.cameras.iter().map(|c| c.id.as_str()));
        for id in ids {
            if !seen.insert(id) {
                return Err(DevicesError::Duplicate(id.to_owned()));
            }
        }
        let mut sites = std::collections::HashSet::new();
        for s in &self.sites {
            if !sites.insert(s.id.as_str()) {
                return Err(DevicesError::Duplicate(s.id.to_string()));
            }
        }
        Ok(())
    }
}

/// Finds device actors by id; shared with the adapters. Reads are uncontended: devices
/// change only when the registry spawns them.
#[derive(Clone, Default)]
pub struct Directory {
    inner: Arc<RwLock<DirectoryInner>>,
}

#[derive(Default)]
struct DirectoryInner {
    buttons: HashMap<ButtonId, Addr<PanicButton>>,
    units: HashMap<UnitId, Addr<Unit>>,
    cameras: HashMap<CameraId, Addr<Camera>>,
}

impl Directory {
    pub fn camera(&self, id: &str) -> Option<Addr<Camera>> {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        inner.cameras.get(id).cloned()
    }

    pub fn cameras(&self) -> usize {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).cameras.len()
    }

    pub fn button(&self, id: &str) -> Option<Addr<PanicButton>> {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        inner.buttons.get(id).cloned()
    }

    pub fn unit(&self, id: &str) -> Option<Addr<Unit>> {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        inner.units.get(id).cloned()
    }

    pub fn counts(&self) -> (usize, usize) {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        (inner.buttons.len(), inner.units.len())
    }
}

struct Site {
    name: String,
    location: GeoPoint,
}

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
fn received_at(at: DateTime<Utc>) -> Received {
    let age = (Utc::now() - at).to_std().unwrap_or_default();
    let now = tokio::time::Instant::now();
    Received { at, instant: now.checked_sub(age).unwrap_or(now) }
}

/// Settings the registry needs to open incidents.
#[derive(Clone, Default)]
pub struct RegistryConfig {
    pub plans: HashMap<IncidentKind, ResponsePlan>,
    /// Where cameras find the watchlisted people's actors.
    pub watch: WatchDirectory,
}

pub struct Registry {
    devices: Devices,
    restored: Restored,
    config: RegistryConfig,
    directory: Directory,
    sites: HashMap<SiteId, Site>,
    open_by_site: HashMap<SiteId, (IncidentId, Addr<Incident>)>,
    /// One open incident per wanted person: later sightings move it.
    open_by_person: HashMap<PersonId, (IncidentId, Addr<Incident>)>,
    open: HashMap<IncidentId, Addr<Incident>>,
    router: Addr<Router>,
    outbox: Outbox,
}

impl Registry {
    pub fn new(devices: Devices, config: RegistryConfig, router: Addr<Router>, outbox: Outbox) -> Self {
        Self {
            devices,
            restored: Restored::default(),
            config,
            directory: Directory::default(),
            sites: HashMap::new(),
            open_by_site: HashMap::new(),
            open_by_person: HashMap::new(),
            open: HashMap::new(),
            router,
            outbox,
        }
    }

    /// Picks up what `restored` describes when the registry starts.
    pub fn with_restored(mut self, restored: Restored) -> Self {
        self.restored = restored;
        self
    }

    /// The directory the adapters use; filled when the registry starts.
    pub fn directory(&self) -> Directory {
        self.directory.clone()
    }

    fn plan(&self, kind: IncidentKind) -> ResponsePlan {
        self.config.plans.get(&kind).cloned().unwrap_or_else(|| ResponsePlan::default_for(kind))
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
        let me = ctx.address();
        let devices = std::mem::take(&mut self.devices);
        let mut inner = self.directory.inner.write().unwrap_or_else(|p| p.into_inner());
        let mut button_sites = HashMap::new();
        for s in devices.sites {
            for b in s.buttons {
                button_sites.insert(b.id.clone(), s.id.clone());
                let addr =
                    PanicButton::new(b.id.clone(), s.id.clone(), b.room, me.clone(), self.outbox.clone())
                        .start();
                inner.buttons.insert(b.id, addr);
            }
            self.sites.insert(s.id, Site { name: s.name, location: s.location });
        }
        for c in devices.cameras {
            let id = c.id.clone();
            let addr = Camera::new(c, self.config.watch.clone(), self.outbox.clone()).start();
            inner.cameras.insert(id, addr);
        }
        for u in devices.units {
            let addr = Unit::new(u.id.clone(), u.callsign, self.router.clone(), self.outbox.clone()).start();
            self.router.do_send(RegisterUnit { unit: u.id.clone(), addr: addr.clone() });
            inner.units.insert(u.id, addr);
        }
        tracing::info!(
            buttons = inner.buttons.len(),
            units = inner.units.len(),
            cameras = inner.cameras.len(),
            sites = self.sites.len(),
            "device actors started"
        );
        drop(inner);
        let restored = std::mem::take(&mut self.restored);
        self.restore(restored, &button_sites, ctx);
    }
}

impl Registry {
    fn restore(&mut self, r: Restored, button_sites: &HashMap<ButtonId, SiteId>, ctx: &mut Context<Self>) {
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
        for (unit, point, at) in r.positions {
            if let Some(addr) = self.directory.unit(unit.as_str()) {
                addr.do_send(Position {
                    point,
                    at,
                    speed_mps: None,
                    heading_deg: None,
                    received: received_at(at),
                });
            }
        }
        for inc in r.incidents {
            let s = &inc.snapshot;
            let (id, site) = (s.incident_id, s.site.as_ref().map(|x| x.id.clone()));
            let person = s.wanted.as_ref().map(|w| w.person_id.clone());
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
                        incident: addr.clone(),
                    });
                }
            }
            for (unit, offer_id) in on_it {
                if let Some(u) = self.directory.unit(unit.as_str()) {
                    u.do_send(Restore::OnIncident { incident_id: id, incident: addr.clone(), offer_id });
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
            if let Some(site) = site {
                self.open_by_site.insert(site, (id, addr.clone()));
            }
            if let Some(person) = person {
                self.open_by_person.insert(person, (id, addr.clone()));
            }
            self.open.insert(id, addr);
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

    /// Opens an incident at `site`, or joins the open one there.
    fn open_at(
        &mut self,
        site_id: SiteId,
        raiser: Raiser,
        received: Received,
        id: Option<IncidentId>,
        over_limit: bool,
        ctx: &mut Context<Self>,
    ) -> Opened {
        if let Some((incident_id, addr)) = self.open_by_site.get(&site_id).filter(|(_, a)| a.connected()) {
            addr.do_send(Join { raiser, received, over_limit });
            return Opened { incident_id: *incident_id, addr: addr.clone(), joined: true };
        }
        let (location, site) = match self.sites.get(&site_id) {
            Some(s) => {
                (s.location, SiteRef { id: site_id.clone(), name: s.name.clone(), room: raiser.room.clone() })
            }
            None => unreachable!("buttons are only spawned for known sites"),
        };
        let kind = IncidentKind::SchoolAlarm;
        let spec = IncidentSpec {
            id: id.unwrap_or_else(IncidentId::new_random),
            kind,
            plan: self.plan(kind),
            location,
            site: Some(site),
            raiser: Some(raiser),
            wanted: None,
            received,
        };
        let incident_id = spec.id;
        let addr =
            Incident::new(spec, self.router.clone(), self.outbox.clone(), ctx.address().recipient()).start();
        self.open_by_site.insert(site_id, (incident_id, addr.clone()));
        self.open.insert(incident_id, addr.clone());
        Opened { incident_id, addr, joined: false }
    }
}

/// A raise from a button at `site`: open an incident there, or join the open one.
#[derive(Message)]
#[rtype(result = "Opened")]
pub struct OpenIncident {
    pub site: SiteId,
    pub raiser: Raiser,
    pub received: Received,
    /// Over the button's rate limit (see `Join`).
    pub over_limit: bool,
}

pub struct Opened {
    pub incident_id: IncidentId,
    pub addr: Addr<Incident>,
    pub joined: bool,
}

impl Handler<OpenIncident> for Registry {
    type Result = MessageResult<OpenIncident>;

    fn handle(&mut self, msg: OpenIncident, ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.open_at(msg.site, msg.raiser, msg.received, None, msg.over_limit, ctx))
    }
}

impl Handler<IncidentOver> for Registry {
    type Result = ();

    fn handle(&mut self, msg: IncidentOver, _: &mut Self::Context) {
        let state = match msg.snapshot.state {
            IncidentState::Cancelled => AckState::Cancelled,
            _ => AckState::Cleared,
        };
        for r in &msg.snapshot.raised_by {
            if let Some(b) = self.directory.button(r.button.as_str()) {
                b.do_send(AlarmEnded { incident_id: msg.incident_id, state });
            }
        }
        self.open.remove(&msg.incident_id);
        self.open_by_site.retain(|_, (id, _)| *id != msg.incident_id);
        self.open_by_person.retain(|_, (id, _)| *id != msg.incident_id);
    }
}

/// The actor of an open incident.
#[derive(Message)]
#[rtype(result = "Option<Addr<Incident>>")]
pub struct IncidentAddr(pub IncidentId);

impl Handler<IncidentAddr> for Registry {
    type Result = Option<Addr<Incident>>;

    fn handle(&mut self, msg: IncidentAddr, _: &mut Self::Context) -> Self::Result {
        self.open.get(&msg.0).cloned()
    }
}

/// Snapshots of every open incident.
#[derive(Message)]
#[rtype(result = "Vec<IncidentSnapshot>")]
pub struct ListIncidents;

impl Handler<ListIncidents> for Registry {
    type Result = ResponseFuture<Vec<IncidentSnapshot>>;

    fn handle(&mut self, _: ListIncidents, _: &mut Self::Context) -> Self::Result {
        let addrs: Vec<Addr<Incident>> = self.open.values().cloned().collect();
        Box::pin(async move {
            let mut out = Vec::with_capacity(addrs.len());
            for a in addrs {
                if let Ok(s) = a.send(GetSnapshot).await {
                    out.push(s);
                }
            }
            out
        })
    }
}

/// A watchlisted person was seen: move their open incident there, or (when `open`) open one.
#[derive(Message, Debug, Clone)]
#[rtype(result = "FaceOutcome")]
pub struct FaceSighting {
    pub wanted: WantedRef,
    pub sighting: SightingRef,
    /// Open an incident if none is open for the person.
    pub open: bool,
    /// A timeline line for the incident (who confirmed the match).
    pub note: Option<String>,
    pub received: Received,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaceOutcome {
    Opened(IncidentId),
    Joined(IncidentId),
    /// No incident was open and none was asked for.
    NotOpen,
}

impl Handler<FaceSighting> for Registry {
    type Result = MessageResult<FaceSighting>;

    fn handle(&mut self, msg: FaceSighting, ctx: &mut Self::Context) -> Self::Result {
        let note = |addr: &Addr<Incident>| {
            if let Some(n) = &msg.note {
                addr.do_send(Note { event: "match_confirmed", detail: n.clone() });
            }
        };
        let person = msg.wanted.person_id.clone();
        if let Some((id, addr)) = self.open_by_person.get(&person).filter(|(_, a)| a.connected()) {
            addr.do_send(Sighted { sighting: msg.sighting, received: msg.received });
            note(addr);
            return MessageResult(FaceOutcome::Joined(*id));
        }
        if !msg.open {
            return MessageResult(FaceOutcome::NotOpen);
        }
        let kind = IncidentKind::WantedPerson;
        let spec = IncidentSpec {
            id: IncidentId::new_random(),
            kind,
            plan: self.plan(kind),
            location: msg.sighting.location,
            site: None,
            raiser: None,
            wanted: Some((msg.wanted, msg.sighting)),
            received: msg.received,
        };
        let id = spec.id;
        let addr =
            Incident::new(spec, self.router.clone(), self.outbox.clone(), ctx.address().recipient()).start();
        note(&addr);
        tracing::info!(incident_id = %id, person = %person, "face incident opened");
        self.open_by_person.insert(person, (id, addr.clone()));
        self.open.insert(id, addr);
        MessageResult(FaceOutcome::Opened(id))
    }
}
