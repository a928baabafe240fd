//! Registry: spawns one actor per configured device (filling the `Directory` the adapters
//! find them by), picks up what the record says was going on (`restore`), opens incidents
//! (`open`: one per subject), and keeps the open ones until they end.

use std::collections::HashMap;

use actix::prelude::*;

use crate::button::{AlarmEnded, PanicButton};
use crate::camera::Camera;
use crate::directory::Directory;
use crate::geo::GeoPoint;
use crate::ids::{ButtonId, IncidentId, SiteId};
use crate::incident::{GetSnapshot, Incident, IncidentOver, IncidentSnapshot};
use crate::model::{AckState, IncidentKind, IncidentState, ResponsePlan};
use crate::outbound::Outbox;
use crate::router::{RegisterUnit, Router};
use crate::spec::Devices;
use crate::subject::SubjectKey;
use crate::unit::Unit;
use crate::wanted::WatchDirectory;

mod open;
mod restore;

pub use restore::{OrphanAlarm, Restored};

pub(crate) struct Site {
    pub(crate) name: String,
    pub(crate) location: GeoPoint,
}

/// Which site each button is at (for alarms recorded whose incident was not).
pub(crate) type ButtonSites = HashMap<ButtonId, SiteId>;

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
    pub(crate) directory: Directory,
    pub(crate) sites: HashMap<SiteId, Site>,
    /// One open incident per subject: a second alarm at a school joins the first, later
    /// sightings of a person move theirs.
    open_by_subject: HashMap<SubjectKey, (IncidentId, Addr<Incident>)>,
    open: HashMap<IncidentId, Addr<Incident>>,
    pub(crate) router: Addr<Router>,
    pub(crate) outbox: Outbox,
}

impl Registry {
    pub fn new(devices: Devices, config: RegistryConfig, router: Addr<Router>, outbox: Outbox) -> Self {
        Self {
            devices,
            restored: Restored::default(),
            config,
            directory: Directory::default(),
            sites: HashMap::new(),
            open_by_subject: HashMap::new(),
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

    pub(crate) fn plan(&self, kind: IncidentKind) -> ResponsePlan {
        self.config.plans.get(&kind).cloned().unwrap_or_else(|| ResponsePlan::default_for(kind))
    }

    /// Keeps an incident just opened (or picked up) as its subject's open incident.
    pub(crate) fn keep(&mut self, key: SubjectKey, id: IncidentId, addr: Addr<Incident>) {
        self.open_by_subject.insert(key, (id, addr.clone()));
        self.open.insert(id, addr);
    }

    /// The open incident about `key`, while its actor runs.
    pub(crate) fn open_about(&self, key: &SubjectKey) -> Option<(IncidentId, Addr<Incident>)> {
        self.open_by_subject.get(key).filter(|(_, a)| a.connected()).cloned()
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
        let me = ctx.address();
        let devices = std::mem::take(&mut self.devices);
        let mut button_sites = ButtonSites::new();
        let (mut buttons, mut units, mut cameras) = (0usize, 0usize, 0usize);
        for s in devices.sites {
            for b in s.buttons {
                button_sites.insert(b.id.clone(), s.id.clone());
                let opener = me.clone().recipient();
                let addr =
                    PanicButton::new(b.id.clone(), s.id.clone(), b.room, opener, self.outbox.clone()).start();
                self.directory.add_button(b.id, addr);
                buttons += 1;
            }
            self.sites.insert(s.id, Site { name: s.name, location: s.location });
        }
        for c in devices.cameras {
            let id = c.id.clone();
            let addr = Camera::new(c, self.config.watch.clone(), self.outbox.clone()).start();
            self.directory.add_camera(id, addr);
            cameras += 1;
        }
        for u in devices.units {
            let router = self.router.clone().recipient();
            let addr = Unit::new(u.id.clone(), u.callsign, router, self.outbox.clone()).start();
            self.router.do_send(RegisterUnit { unit: u.id.clone(), addr: addr.clone() });
            self.directory.add_unit(u.id, addr);
            units += 1;
        }
        tracing::info!(buttons, units, cameras, sites = self.sites.len(), "device actors started");
        let restored = std::mem::take(&mut self.restored);
        self.restore(restored, &button_sites, ctx);
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
        self.open_by_subject.retain(|_, (id, _)| *id != msg.incident_id);
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
