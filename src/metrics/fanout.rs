//! The metrics sink: one of the outbound fan-out's sinks (`Outbox::with_sink("metrics", ..)`),
//! beside `mqtt` and `live`. It reads what the actors already tell the world (incidents'
//! snapshots with their timelines, cameras' integrity alerts) and keeps counters and
//! histograms of atomics for the scrape; it imports no other adapter and no actor imports it.
//!
//! Latency per hop comes from each incident's timeline (`t_us`, microseconds since the
//! incident opened, on the monotonic clock), not from when the sink hears about it: a
//! snapshot is sent many times, coalesced, and after the record has it. So the sink
//! remembers, per open incident, how much of the timeline it has read and when each unit was
//! offered, accepted and arrived, counts each hop once, and forgets the incident when it
//! closes (and, bounded, the oldest ones should incidents never close).
//!
//! `take` only stamps the time and posts to the `Observer` actor's mailbox (past its nominal
//! capacity, as every sink does, so nothing it took is lost); the reading happens there.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use kuzet_actors::ids::{CameraId, IncidentId, UnitId};
use kuzet_actors::incident::IncidentSnapshot;
use kuzet_actors::model::{IncidentKind, IncidentState};
use kuzet_actors::outbound::{Notify, Sink};

use super::histogram::Histogram;

/// Open incidents remembered at most (a city has a few hundred open at once); past it the
/// one seen first is forgotten, and its later hops are not counted.
const MAX_TRACKED: usize = 50_000;
/// Closed incidents remembered, so a snapshot overtaken by the incident's close on its way
/// here does not start it again.
const MAX_CLOSED: usize = 4_096;
/// Units remembered per incident (an incident asks a handful).
const MAX_UNITS: usize = 64;
/// Changes shown to the consoles and waiting to be seen recorded, per incident.
const MAX_UNRECORDED: usize = 16;

/// A hop of an incident, measured between two lines of its timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// The incident opened (its first alarm or sighting arrived) -> its first offer reached a unit.
    AlarmToOffer,
    /// An offer reached a unit -> that unit accepted it (its tablet's reply arrived).
    OfferToAccept,
    /// A unit accepted -> it reported on scene.
    AcceptToOnScene,
    /// The incident opened -> its first unit reported on scene (the response time).
    AlarmToOnScene,
    /// A unit reported on scene -> it cleared.
    OnSceneToCleared,
}

impl Hop {
    pub const ALL: [Hop; 5] = [
        Hop::AlarmToOffer,
        Hop::OfferToAccept,
        Hop::AcceptToOnScene,
        Hop::AlarmToOnScene,
        Hop::OnSceneToCleared,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Hop::AlarmToOffer => "alarm_to_offer",
            Hop::OfferToAccept => "offer_to_accept",
            Hop::AcceptToOnScene => "accept_to_on_scene",
            Hop::AlarmToOnScene => "alarm_to_on_scene",
            Hop::OnSceneToCleared => "on_scene_to_cleared",
        }
    }
}

/// How an offer ended, by the timeline's event for it.
pub const OFFER_OUTCOMES: [(&str, &str); 5] = [
    ("reply_accept", "accepted"),
    ("reply_decline", "declined"),
    ("offer_timed_out", "timed_out"),
    ("offer_refused", "refused"),
    ("unit_offline", "unit_offline"),
];

pub const INCIDENT_KINDS: [IncidentKind; 2] = [IncidentKind::SchoolAlarm, IncidentKind::WantedPerson];

fn kind_index(k: IncidentKind) -> usize {
    match k {
        IncidentKind::SchoolAlarm => 0,
        IncidentKind::WantedPerson => 1,
    }
}

/// Cameras' health states as integrity alerts name them; a state kuzet does not know is
/// counted as `other`.
pub const CAMERA_STATES: [&str; 5] = ["ok", "offline", "frozen", "covered", "other"];

fn camera_state_index(s: &str) -> usize {
    CAMERA_STATES[..4].iter().position(|c| *c == s).unwrap_or(4)
}

/// What the sink has counted; read by the scrape.
pub struct FanoutStats {
    /// Alarms that opened or joined an incident (`alarm_received`, `alarm_joined`); a flood's
    /// alarms past the rate limit are not lines of the timeline, see `alarms_over_limit`.
    pub alarms: AtomicU64,
    /// Offers that reached a unit (`offer_published`).
    pub offers: AtomicU64,
    offer_outcomes: [AtomicU64; OFFER_OUTCOMES.len()],
    incidents_opened: [AtomicU64; INCIDENT_KINDS.len()],
    /// Ended closed (every unit cleared), ended cancelled.
    incidents_ended: [AtomicU64; 2],
    pub escalations: AtomicU64,
    /// Incidents seen and not closed yet.
    pub incidents_open: AtomicU64,
    hops: [Histogram; Hop::ALL.len()],
    /// From a change the consoles were shown (`Notify::Live`, before the record) to the
    /// snapshot that says it is recorded (`Snapshot`/`Closed`, after the commit or spool).
    pub record_lag: Histogram,
    /// Cameras by their latest state.
    cameras: [AtomicU64; CAMERA_STATES.len()],
    camera_alerts: [AtomicU64; CAMERA_STATES.len()],
    /// Cameras in the registry (those with no report yet are `unknown`).
    pub cameras_registered: AtomicU64,
}

impl Default for FanoutStats {
    fn default() -> Self {
        Self {
            alarms: AtomicU64::new(0),
            offers: AtomicU64::new(0),
            offer_outcomes: Default::default(),
            incidents_opened: Default::default(),
            incidents_ended: Default::default(),
            escalations: AtomicU64::new(0),
            incidents_open: AtomicU64::new(0),
            hops: std::array::from_fn(|_| Histogram::latency()),
            record_lag: Histogram::latency(),
            cameras: Default::default(),
            camera_alerts: Default::default(),
            cameras_registered: AtomicU64::new(0),
        }
    }
}

fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

impl FanoutStats {
    pub fn hop(&self, h: Hop) -> &Histogram {
        &self.hops[h as usize]
    }

    /// (outcome, offers that ended so).
    pub fn offer_outcomes(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        OFFER_OUTCOMES.iter().zip(&self.offer_outcomes).map(|((_, name), n)| (*name, get(n)))
    }

    /// (kind, incidents opened).
    pub fn incidents_opened(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        INCIDENT_KINDS.iter().zip(&self.incidents_opened).map(|(k, n)| (k.as_str(), get(n)))
    }

    /// (outcome, incidents ended): closed, cancelled.
    pub fn incidents_ended(&self) -> [(&'static str, u64); 2] {
        [("closed", get(&self.incidents_ended[0])), ("cancelled", get(&self.incidents_ended[1]))]
    }

    /// (state, cameras whose latest report says it), then `unknown`: registered cameras that
    /// have not reported yet.
    pub fn cameras(&self) -> Vec<(&'static str, u64)> {
        let mut out: Vec<_> = CAMERA_STATES.iter().zip(&self.cameras).map(|(s, n)| (*s, get(n))).collect();
        let known: u64 = out.iter().map(|(_, n)| n).sum();
        out.push(("unknown", get(&self.cameras_registered).saturating_sub(known)));
        out
    }

    /// (state, integrity alerts that said it).
    pub fn camera_alerts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        CAMERA_STATES.iter().zip(&self.camera_alerts).map(|(s, n)| (*s, get(n)))
    }

    /// The counters for the status line, as `fanout.<name>`.
    pub fn snapshot(&self) -> std::collections::BTreeMap<String, u64> {
        let mut m = std::collections::BTreeMap::new();
        m.insert("fanout.alarms".into(), get(&self.alarms));
        m.insert("fanout.offers".into(), get(&self.offers));
        m.insert("fanout.escalations".into(), get(&self.escalations));
        m.insert("fanout.incidents_open".into(), get(&self.incidents_open));
        m
    }
}

/// When a unit reached each step on one incident (`t_us`), while the next hop is to come.
#[derive(Debug, Default)]
struct UnitMarks {
    offered: Option<u64>,
    accepted: Option<u64>,
    on_scene: Option<u64>,
}

/// What the sink remembers of one open incident.
#[derive(Debug, Default)]
struct Track {
    /// Timeline lines already read (a timeline only grows).
    read: usize,
    opened_us: u64,
    offered: bool,
    on_scene: bool,
    units: Vec<(UnitId, UnitMarks)>,
    /// Changes the consoles were shown: (timeline length then, when), oldest first.
    unrecorded: VecDeque<(usize, Instant)>,
    recorded_len: usize,
}

impl Track {
    fn unit(&mut self, id: &UnitId) -> &mut UnitMarks {
        let i = match self.units.iter().position(|(u, _)| u == id) {
            Some(i) => i,
            None => {
                if self.units.len() == MAX_UNITS {
                    self.units.remove(0);
                }
                self.units.push((id.clone(), UnitMarks::default()));
                self.units.len() - 1
            }
        };
        &mut self.units[i].1
    }
}

/// Reads incidents' timelines and cameras' alerts into `FanoutStats`. Plain data, no
/// runtime: the `Observer` actor holds one; the tests drive it directly.
pub struct Tracker {
    stats: Arc<FanoutStats>,
    incidents: HashMap<IncidentId, Track>,
    /// Incidents in the order first seen (may name forgotten ones; compacted).
    order: VecDeque<IncidentId>,
    closed: HashSet<IncidentId>,
    closed_order: VecDeque<IncidentId>,
    cameras: HashMap<CameraId, usize>,
}

impl Tracker {
    pub fn new(stats: Arc<FanoutStats>) -> Self {
        Self {
            stats,
            incidents: HashMap::new(),
            order: VecDeque::new(),
            closed: HashSet::new(),
            closed_order: VecDeque::new(),
            cameras: HashMap::new(),
        }
    }

    /// A camera's state as the record had it at start (its alert is not counted again).
    pub fn camera_known(&mut self, camera: CameraId, state: &str) {
        self.camera(camera, camera_state_index(state));
    }

    fn camera(&mut self, camera: CameraId, state: usize) {
        if let Some(old) = self.cameras.insert(camera, state) {
            self.stats.cameras[old].fetch_sub(1, Ordering::Relaxed);
        }
        bump(&self.stats.cameras[state]);
    }

    /// Takes one notification, handed to the sink at `at`.
    pub fn take(&mut self, n: &Notify, at: Instant) {
        match n {
            Notify::Live(s) => self.incident(s, at, false),
            Notify::Snapshot(s) => self.incident(s, at, true),
            Notify::Closed(s) => {
                self.incident(s, at, true);
                self.close(s);
            }
            Notify::Integrity(a) => {
                let state = camera_state_index(&a.state);
                bump(&self.stats.camera_alerts[state]);
                self.camera(a.camera.clone(), state);
            }
            _ => {}
        }
    }

    fn incident(&mut self, s: &IncidentSnapshot, at: Instant, recorded: bool) {
        if self.closed.contains(&s.incident_id) {
            return;
        }
        let stats = self.stats.clone();
        let new = !self.incidents.contains_key(&s.incident_id);
        if new {
            self.forget_oldest();
            self.order.push_back(s.incident_id);
        }
        let track = self.incidents.entry(s.incident_id).or_default();
        // Lines before a restart were counted by the process that wrote them (and their
        // times span the restart): they set the marks, they count nothing.
        let quiet_until = if new {
            track.opened_us = s.timeline.first().map_or(0, |e| e.t_us);
            let restored = s.timeline.iter().rposition(|e| e.event == "restored");
            if restored.is_none() {
                bump(&stats.incidents_opened[kind_index(s.kind)]);
            }
            restored.map_or(0, |i| i + 1)
        } else {
            0
        };
        for (i, e) in s.timeline.iter().enumerate().skip(track.read) {
            let count = i >= quiet_until;
            let observe = |h: Hop, from: u64| {
                if count {
                    stats.hops[h as usize].observe_us(e.t_us.saturating_sub(from));
                }
            };
            let outcome = OFFER_OUTCOMES.iter().position(|(ev, _)| *ev == e.event);
            if let (Some(o), true) = (outcome, count) {
                bump(&stats.offer_outcomes[o]);
            }
            match (&*e.event, &e.unit) {
                ("alarm_received" | "alarm_joined", _) if count => bump(&stats.alarms),
                ("escalated", _) if count => bump(&stats.escalations),
                ("offer_published", Some(u)) => {
                    if count {
                        bump(&stats.offers);
                    }
                    if !track.offered {
                        track.offered = true;
                        observe(Hop::AlarmToOffer, track.opened_us);
                    }
                    track.unit(u).offered = Some(e.t_us);
                }
                ("reply_accept", Some(u)) => {
                    let m = track.unit(u);
                    if let Some(t) = m.offered.take() {
                        observe(Hop::OfferToAccept, t);
                    }
                    m.accepted = Some(e.t_us);
                }
                ("reply_decline" | "offer_timed_out" | "offer_refused" | "unit_offline", Some(u)) => {
                    track.unit(u).offered = None;
                }
                ("on_scene", Some(u)) => {
                    let m = track.unit(u);
                    if let Some(t) = m.accepted.take() {
                        observe(Hop::AcceptToOnScene, t);
                    }
                    if m.on_scene.is_none() {
                        m.on_scene = Some(e.t_us);
                    }
                    if !track.on_scene {
                        track.on_scene = true;
                        observe(Hop::AlarmToOnScene, track.opened_us);
                    }
                }
                ("unit_cleared", Some(u)) => {
                    if let Some(t) = track.unit(u).on_scene.take() {
                        observe(Hop::OnSceneToCleared, t);
                    }
                }
                _ => {}
            }
        }
        track.read = track.read.max(s.timeline.len());
        let len = s.timeline.len();
        if recorded {
            track.recorded_len = track.recorded_len.max(len);
            while let Some(&(n, shown)) = track.unrecorded.front() {
                if n > len {
                    break;
                }
                stats.record_lag.observe(at.saturating_duration_since(shown));
                track.unrecorded.pop_front();
            }
        } else if len > track.recorded_len
            && track.unrecorded.back().is_none_or(|(n, _)| *n < len)
            && track.unrecorded.len() < MAX_UNRECORDED
        {
            track.unrecorded.push_back((len, at));
        }
        stats.incidents_open.store(self.incidents.len() as u64, Ordering::Relaxed);
    }

    fn close(&mut self, s: &IncidentSnapshot) {
        if self.incidents.remove(&s.incident_id).is_none() {
            return;
        }
        let i = usize::from(s.state == IncidentState::Cancelled);
        bump(&self.stats.incidents_ended[i]);
        if self.closed_order.len() == MAX_CLOSED {
            if let Some(old) = self.closed_order.pop_front() {
                self.closed.remove(&old);
            }
        }
        self.closed.insert(s.incident_id);
        self.closed_order.push_back(s.incident_id);
        if self.order.len() > 2 * MAX_TRACKED.min(self.incidents.len() + 1024) {
            let incidents = &self.incidents;
            self.order.retain(|id| incidents.contains_key(id));
        }
        self.stats.incidents_open.store(self.incidents.len() as u64, Ordering::Relaxed);
    }

    /// Makes room for one more incident.
    fn forget_oldest(&mut self) {
        while self.incidents.len() >= MAX_TRACKED {
            let Some(old) = self.order.pop_front() else { return };
            if self.incidents.remove(&old).is_some() {
                tracing::warn!(incident_id = %old, "metrics: too many open incidents to remember; the oldest is forgotten");
            }
        }
    }

    /// Incidents remembered (open, not forgotten).
    pub fn tracked(&self) -> usize {
        self.incidents.len()
    }
}

/// A notification and when the sink took it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Observed {
    pub notify: Notify,
    pub at: Instant,
}

/// Where the sink's notifications are read, on the actors' thread after the turn that sent them.
pub struct Observer {
    tracker: Tracker,
}

impl Actor for Observer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(8192);
    }
}

impl Handler<Observed> for Observer {
    type Result = ();

    fn handle(&mut self, msg: Observed, _: &mut Self::Context) {
        self.tracker.take(&msg.notify, msg.at);
    }
}

/// What is handed to the metrics sink: incidents' states and cameras' alerts.
pub fn wants(n: &Notify) -> bool {
    matches!(n, Notify::Live(_) | Notify::Snapshot(_) | Notify::Closed(_) | Notify::Integrity(_))
}

/// The sink attached to the outbox as `metrics`.
pub struct MetricsSink {
    to: Recipient<Observed>,
    arbiter: ArbiterHandle,
}

impl Drop for MetricsSink {
    fn drop(&mut self) {
        // The last outbox is gone: so is the observer's thread.
        self.arbiter.stop();
    }
}

impl MetricsSink {
    /// Starts the observer; `cameras` are the registered cameras' states as recorded (none
    /// reported yet: `unknown`), `registered` how many cameras there are.
    pub fn start(stats: Arc<FanoutStats>, registered: usize, cameras: Vec<(CameraId, String)>) -> Self {
        stats.cameras_registered.store(registered as u64, Ordering::Relaxed);
        let mut tracker = Tracker::new(stats);
        for (camera, state) in cameras {
            tracker.camera_known(camera, &state);
        }
        // On a thread of its own, at the bulk lanes' priority: reading timelines is never a
        // turn taken from the actors' thread, where alarms are worked. The arbiter stops with
        // the actix system, or when the sink is dropped.
        let arbiter = actix::Arbiter::new();
        arbiter.spawn(async { crate::lanes::lower_priority("kuzet-metrics") });
        let to = Observer::start_in_arbiter(&arbiter.handle(), move |_| Observer { tracker });
        Self { to: to.recipient(), arbiter: arbiter.handle() }
    }
}

impl Sink for MetricsSink {
    fn take(&self, notify: Notify) -> bool {
        if !self.to.connected() {
            return false;
        }
        // Past the nominal capacity, as the other sinks: a count is never lost to a burst.
        self.to.do_send(Observed { notify, at: Instant::now() });
        true
    }

    fn wants(&self, n: &Notify) -> bool {
        wants(n)
    }
}
