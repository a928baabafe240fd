//! Registry: the directory of live actors. Spawns one actor per configured device, hands the
//! adapters a `Directory` to find them by id, and opens incidents (one open incident per
//! site: a second raise at a school joins the first).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use actix::prelude::*;
use serde::{Deserialize, Serialize};

use crate::button::PanicButton;
use crate::geo::GeoPoint;
use crate::ids::{ButtonId, IncidentId, SiteId, UnitId};
use crate::incident::{GetSnapshot, Incident, IncidentOver, IncidentSnapshot, IncidentSpec, Join, Raiser};
use crate::model::{IncidentKind, ResponsePlan};
use crate::outbound::{Outbox, Received, SiteRef};
use crate::router::{RegisterUnit, Router};
use crate::unit::Unit;

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
            .chain(self.units.iter().map(|u| u.id.as_str()));
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
}

impl Directory {
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

/// Settings the registry needs to open incidents.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    pub plans: HashMap<IncidentKind, ResponsePlan>,
}

pub struct Registry {
    devices: Devices,
    config: RegistryConfig,
    directory: Directory,
    sites: HashMap<SiteId, Site>,
    open_by_site: HashMap<SiteId, (IncidentId, Addr<Incident>)>,
    open: HashMap<IncidentId, Addr<Incident>>,
    router: Addr<Router>,
    outbox: Outbox,
}

impl Registry {
    pub fn new(devices: Devices, config: RegistryConfig, router: Addr<Router>, outbox: Outbox) -> Self {
        Self {
            devices,
            config,
            directory: Directory::default(),
            sites: HashMap::new(),
            open_by_site: HashMap::new(),
            open: HashMap::new(),
            router,
            outbox,
        }
    }

    /// The directory the adapters use; filled when the registry starts.
    pub fn directory(&self) -> Directory {
        self.directory.clone()
    }

    fn plan(&self, kind: IncidentKind) -> ResponsePlan {
        self.config.plans.get(&kind).cloned().unwrap_or_else(ResponsePlan::school_alarm_default)
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
        let me = ctx.address();
        let devices = std::mem::take(&mut self.devices);
        let mut inner = self.directory.inner.write().unwrap_or_else(|p| p.into_inner());
        for s in devices.sites {
            for b in s.buttons {
                let addr = PanicButton::new(b.id.clone(), s.id.clone(), b.room, me.clone()).start();
                inner.buttons.insert(b.id, addr);
            }
            self.sites.insert(s.id, Site { name: s.name, location: s.location });
        }
        for u in devices.units {
            let addr = Unit::new(u.id.clone(), u.callsign, self.router.clone(), self.outbox.clone()).start();
            self.router.do_send(RegisterUnit { unit: u.id.clone(), addr: addr.clone() });
            inner.units.insert(u.id, addr);
        }
        tracing::info!(
            buttons = inner.buttons.len(),
            units = inner.units.len(),
            sites = self.sites.len(),
            "device actors started"
        );
    }
}

/// A raise from a button at `site`: open an incident there, or join the open one.
#[derive(Message)]
#[rtype(result = "Opened")]
pub struct OpenIncident {
    pub site: SiteId,
    pub raiser: Raiser,
    pub received: Received,
}

pub struct Opened {
    pub incident_id: IncidentId,
    pub addr: Addr<Incident>,
    pub joined: bool,
}

impl Handler<OpenIncident> for Registry {
    type Result = MessageResult<OpenIncident>;

    fn handle(&mut self, msg: OpenIncident, ctx: &mut Self::Context) -> Self::Result {
        if let Some((incident_id, addr)) = self.open_by_site.get(&msg.site).filter(|(_, a)| a.connected()) {
            addr.do_send(Join { raiser: msg.raiser, received: msg.received });
            return MessageResult(Opened { incident_id: *incident_id, addr: addr.clone(), joined: true });
        }
        let (location, site) = match self.sites.get(&msg.site) {
            Some(s) => (
                s.location,
                SiteRef { id: msg.site.clone(), name: s.name.clone(), room: msg.raiser.room.clone() },
            ),
            None => unreachable!("buttons are only spawned for known sites"),
        };
        let kind = IncidentKind::SchoolAlarm;
        let spec = IncidentSpec {
            id: IncidentId::new_random(),
            kind,
            plan: self.plan(kind),
            location,
            site: Some(site),
            raiser: msg.raiser,
            received: msg.received,
        };
        let incident_id = spec.id;
        let addr =
            Incident::new(spec, self.router.clone(), self.outbox.clone(), ctx.address().recipient()).start();
        self.open_by_site.insert(msg.site, (incident_id, addr.clone()));
        self.open.insert(incident_id, addr.clone());
        MessageResult(Opened { incident_id, addr, joined: false })
    }
}

impl Handler<IncidentOver> for Registry {
    type Result = ();

    fn handle(&mut self, msg: IncidentOver, _: &mut Self::Context) {
        self.open.remove(&msg.incident_id);
        self.open_by_site.retain(|_, (id, _)| *id != msg.incident_id);
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
