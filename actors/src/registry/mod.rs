//! Registry: spawns one actor per configured device (filling the `Directory` the adapters
//! find them by), picks up what the record says was going on (`restore`), opens incidents
//! (`open`: one per subject), and keeps the open ones until they end.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;

use crate::button::{AlarmEnded, PanicButton};
use crate::camera::Camera;
use crate::directory::Directory;
use crate::geo::GeoPoint;
use crate::ids::{ButtonId, IncidentId, SiteId, UnitId};
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
    /// Where units are: restored positions go here; the router reads it.
    pub fleet: crate::fleet::Fleet,
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
        // Button actors start on this arbiter when a button first has an alarm.
        let (arbiter, outbox) = (Arbiter::current(), self.outbox.clone());
        self.directory.set_button_factory(Arc::new(move |id, site, room| {
            let (opener, outbox) = (me.clone().recipient(), outbox.clone());
            PanicButton::start_in_arbiter(&arbiter, move |_| PanicButton::new(id, site, room, opener, outbox))
        }));
        for s in devices.sites {
            for b in s.buttons {
                button_sites.insert(b.id.clone(), s.id.clone());
                self.directory.add_button(b.id, s.id.clone(), b.room);
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
        // Unit actors start on this arbiter when a unit is first needed; the router hears of
        // each before the unit tells it whether it may be offered work.
        let (arbiter, outbox, router) = (Arbiter::current(), self.outbox.clone(), self.router.clone());
        self.directory.set_unit_factory(Arc::new(move |id: UnitId, callsign, offline| {
            let (to_router, outbox) = (router.clone().recipient(), outbox.clone());
            let unit = id.clone();
            let addr = Unit::start_in_arbiter(&arbiter, move |_| {
                let u = Unit::new(unit, callsign, to_router, outbox);
                if offline {
                    u.known_offline()
                } else {
                    u
                }
            });
            router.do_send(RegisterUnit { unit: id, addr: addr.clone() });
            addr
        }));
        for u in devices.units {
            self.directory.add_unit(u.id, u.callsign);
            units += 1;
        }
        tracing::info!(
            buttons,
            units,
            cameras,
            sites = self.sites.len(),
            "devices registered (their actors start when first needed)"
        );
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

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;
    use crate::button::{Alarm, AlarmAction, AlarmOutcome, ButtonOnline, OpenIncident, Opened};
    use crate::ids::AlarmId;
    use crate::incident::Raiser;
    use crate::model::{AlarmKind, Priority};
    use crate::outbound::{Notify, Received, Sink};
    use crate::spec::{ButtonSpec, SiteKind, SiteSpec};
    use crate::unit::GetUnit;

    /// Keeps the acks buttons hear: (button, alarm, state).
    #[derive(Clone, Default)]
    pub(crate) struct Acks(Arc<Mutex<Vec<(String, AlarmId, AckState)>>>);

    impl Sink for Acks {
        fn take(&self, n: Notify) -> bool {
            if let Notify::Ack { button, ack } = n {
                self.0.lock().unwrap().push((button.to_string(), ack.alarm_id, ack.state));
            }
            true
        }
    }

    pub(crate) fn school(n: u8) -> GeoPoint {
        GeoPoint::new(43.2389, 76.8897).unwrap().offset(f64::from(n) * 1000.0, 0.0)
    }

    /// Two schools: school-1 with buttons btn-1 and btn-2, school-2 with btn-3; no units (a
    /// real router with nobody to offer to, so incidents escalate at once).
    pub(crate) fn start_with(config: RegistryConfig) -> (Addr<Registry>, Directory, Acks) {
        let site = |n: u8, buttons: &[&str]| SiteSpec {
            id: SiteId::parse(&format!("school-{n}")).unwrap(),
            name: format!("School No. {n}"),
            kind: SiteKind::School,
            location: school(n),
            buttons: buttons
                .iter()
                .map(|b| ButtonSpec {
                    id: ButtonId::parse(b).unwrap(),
                    room: Some("12".into()),
                    password: None,
                })
                .collect(),
        };
        let unit = |id: &str| crate::spec::UnitSpec {
            id: crate::ids::UnitId::parse(id).unwrap(),
            callsign: id.to_uppercase(),
            password: None,
        };
        let devices = Devices {
            sites: vec![site(1, &["btn-1", "btn-2"]), site(2, &["btn-3"])],
            units: vec![unit("unit-1"), unit("unit-2")],
            ..Default::default()
        };
        let acks = Acks::default();
        let outbox = Outbox::default().with_sink("test", acks.clone());
        let router = Router::new(Duration::from_secs(600), config.fleet.clone()).start();
        let registry = Registry::new(devices, config, router, outbox);
        let directory = registry.directory();
        (registry.start(), directory, acks)
    }

    pub(crate) fn start() -> (Addr<Registry>, Directory, Acks) {
        start_with(RegistryConfig::default())
    }

    pub(crate) fn open_at(site: &str, button: &str) -> OpenIncident {
        OpenIncident {
            site: SiteId::parse(site).unwrap(),
            raiser: Raiser {
                button: ButtonId::parse(button).unwrap(),
                alarm_id: AlarmId::new_random(),
                room: Some(format!("room of {button}")),
                kind: AlarmKind::Intruder,
                withdrawn: false,
            },
            received: Received::now(),
            over_limit: false,
        }
    }

    /// Lets the incidents act on what they were sent (paused time: no real wait).
    pub(crate) async fn settle() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    fn alarm(alarm_id: AlarmId, action: AlarmAction) -> Alarm {
        Alarm {
            alarm_id,
            action,
            kind: AlarmKind::Fire,
            at: chrono::Utc::now(),
            received: Received::now(),
            over_limit: false,
        }
    }

    #[actix_rt::test]
    async fn every_configured_button_is_found_and_its_actor_starts_on_demand() {
        let (_registry, directory, _) = start();
        settle().await;
        assert_eq!(directory.counts(), (3, 2));
        assert_eq!(directory.awake_buttons(), 0, "idle buttons have no actor");
        // Health is kept without waking the button.
        assert!(directory.button_heartbeat("btn-3", chrono::Utc::now(), Some(15.0)));
        assert!(directory.button_online("btn-3", false));
        assert!(!directory.button_heartbeat("btn-4", chrono::Utc::now(), None));
        assert!(!directory.button_online("btn-4", true));
        let health = directory.button_health("btn-3").unwrap();
        assert_eq!((health.online, health.battery_pct), (Some(false), Some(15.0)));
        assert_eq!(directory.awake_buttons(), 0);
        assert!(directory.has_button("btn-3") && !directory.has_button("btn-4"));
        let first = directory.button("btn-3").unwrap();
        assert!(directory.button("btn-4").is_none());
        assert_eq!(directory.awake_buttons(), 1);
        // Asked again: the same actor.
        assert!(directory.button("btn-3").unwrap() == first);
        assert_eq!(directory.awake_buttons(), 1);
    }

    #[actix_rt::test]
    async fn a_unit_starts_when_first_needed_and_knows_its_tablet_went_offline_while_idle() {
        let (_registry, directory, _) = start();
        settle().await;
        assert_eq!(directory.awake_units(), 0, "idle units have no actor");
        assert!(directory.has_unit("unit-1") && !directory.has_unit("unit-9"));
        assert!(directory.unit_offline("unit-9").is_none(), "no such unit");
        assert!(matches!(directory.unit_offline("unit-1"), Some(None)), "idle: kept in the row");
        assert_eq!(directory.awake_units(), 0, "an offline presence wakes nobody");
        let (one, two) = (directory.unit("unit-1").unwrap(), directory.unit("unit-2").unwrap());
        assert_eq!(directory.awake_units(), 2);
        let (one, two) = (one.send(GetUnit).await.unwrap(), two.send(GetUnit).await.unwrap());
        assert_eq!((one.online, one.eligible), (Some(false), false), "started knowing it is offline");
        assert_eq!((two.online, two.eligible), (None, true));
        // Awake, its actor is the one told.
        assert!(matches!(directory.unit_offline("unit-2"), Some(Some(_))));
        assert!(directory.unit("unit-2").is_some());
        assert_eq!(directory.awake_units(), 2);
    }

    #[actix_rt::test]
    async fn once_an_incident_ends_its_buttons_hear_how_and_the_site_opens_a_new_one() {
        tokio::time::pause();
        let (registry, directory, acks) = start();
        settle().await;
        let (btn1, btn2) = (directory.button("btn-1").unwrap(), directory.button("btn-2").unwrap());
        let a = AlarmId::new_random();
        let Ok(AlarmOutcome::Opened(first)) = btn1.send(alarm(a, AlarmAction::Raise)).await.unwrap() else {
            panic!("opened")
        };
        btn1.send(alarm(a, AlarmAction::Cancel)).await.unwrap().unwrap();
        settle().await;
        assert!(registry.send(IncidentAddr(first)).await.unwrap().is_none(), "no longer open");
        // The button was told by the registry: back online, it hears the end from itself.
        acks.0.lock().unwrap().clear();
        btn1.send(ButtonOnline(true)).await.unwrap();
        assert_eq!(*acks.0.lock().unwrap(), [("btn-1".to_owned(), a, AckState::Cancelled)]);
        let b = AlarmId::new_random();
        let next = btn2.send(alarm(b, AlarmAction::Raise)).await.unwrap().unwrap();
        assert!(matches!(next, AlarmOutcome::Opened(id) if id != first), "{next:?}");
    }

    #[actix_rt::test]
    async fn an_incident_the_registry_is_told_is_over_is_no_longer_joined_or_found() {
        tokio::time::pause();
        let (registry, _, _) = start();
        let Opened { incident_id, addr, .. } = registry.send(open_at("school-1", "btn-1")).await.unwrap();
        let snapshot = Arc::new(addr.send(GetSnapshot).await.unwrap());
        registry.send(IncidentOver { incident_id, snapshot }).await.unwrap();
        assert!(registry.send(IncidentAddr(incident_id)).await.unwrap().is_none());
        assert!(registry.send(ListIncidents).await.unwrap().is_empty());
        let again = registry.send(open_at("school-1", "btn-2")).await.unwrap();
        assert!(!again.joined && again.incident_id != incident_id);
    }

    #[actix_rt::test]
    async fn the_open_incidents_are_listed_and_found_by_id() {
        tokio::time::pause();
        let (registry, _, _) = start();
        let one = registry.send(open_at("school-1", "btn-1")).await.unwrap().incident_id;
        let two = registry.send(open_at("school-2", "btn-3")).await.unwrap().incident_id;
        let mut listed: Vec<_> =
            registry.send(ListIncidents).await.unwrap().into_iter().map(|s| s.incident_id.0).collect();
        listed.sort();
        let mut want = vec![one.0, two.0];
        want.sort();
        assert_eq!(listed, want);
        assert!(registry.send(IncidentAddr(one)).await.unwrap().is_some());
        assert!(registry.send(IncidentAddr(IncidentId::new_random())).await.unwrap().is_none());
    }

    #[actix_rt::test]
    async fn an_incident_is_opened_with_the_plan_configured_for_its_kind_or_the_default() {
        tokio::time::pause();
        let plan = ResponsePlan { priority: Priority(3), ..ResponsePlan::school_alarm_default() };
        let config = RegistryConfig {
            plans: HashMap::from([(IncidentKind::SchoolAlarm, plan)]),
            ..Default::default()
        };
        let (registry, _, _) = start_with(config);
        let opened = registry.send(open_at("school-1", "btn-1")).await.unwrap();
        assert_eq!(opened.addr.send(GetSnapshot).await.unwrap().priority, Priority(3));
        let (registry, _, _) = start();
        let opened = registry.send(open_at("school-1", "btn-1")).await.unwrap();
        let default = ResponsePlan::default_for(IncidentKind::SchoolAlarm).priority;
        assert_eq!(opened.addr.send(GetSnapshot).await.unwrap().priority, default);
    }
}
