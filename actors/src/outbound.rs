//! What the actors tell the outside world. An adapter (the MQTT gateway; later the console)
//! receives these as `Notify` through a `Recipient`, so the domain never names a topic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::dispatch::{Dispatch, EscalationReason, RevokeReason};
use crate::geo::GeoPoint;
use crate::ids::{AlarmId, ButtonId, CameraId, IncidentId, OfferId, PersonId, ReviewId, SiteId, UnitId};
use crate::model::{AckState, IncidentKind, Priority};
use crate::snapshot::IncidentSnapshot;
use crate::snapshot::{SightingRef, WantedRef};
pub use crate::subject::SiteRef;

/// An offer to a unit, as the unit is to see it (the contract's shape: `kuzet_contract`).
#[derive(Debug, Clone)]
pub struct OfferOut {
    pub offer_id: OfferId,
    pub incident_id: IncidentId,
    pub priority: Priority,
    pub kind: IncidentKind,
    pub location: GeoPoint,
    /// The school, or the watchlisted person (the tablet shows their photo).
    pub subject: crate::subject::Subject,
    pub summary: String,
    pub distance_m: f64,
    pub eta_s: Option<u32>,
    pub expires_at: DateTime<Utc>,
    /// The road route from the unit to the incident, when ranked by drive time.
    pub route: Option<Arc<Vec<GeoPoint>>>,
}

/// An update about an incident a unit holds or was offered.
#[derive(Debug, Clone)]
pub enum UnitUpdate {
    /// The offer is no longer valid (it expired, or the incident ended).
    OfferRevoked { offer_id: OfferId, reason: RevokeReason },
    /// The incident the unit accepted was cancelled; stand down.
    Cancelled,
    /// Every unit cleared; the incident is closed.
    Closed,
    /// The wanted person was seen again, by `camera`: the incident is at `location` now.
    TargetMoved { location: GeoPoint, camera: CameraId, at: DateTime<Utc> },
}

/// Where a button's alarm stands, as the button is to hear it.
#[derive(Debug, Clone)]
pub struct ButtonAck {
    pub alarm_id: AlarmId,
    pub incident_id: IncidentId,
    pub state: AckState,
    pub eta_s: Option<u32>,
}

#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub enum Notify {
    Offer {
        unit: UnitId,
        offer: OfferOut,
    },
    Unit {
        unit: UnitId,
        incident_id: IncidentId,
        update: UnitUpdate,
    },
    Ack {
        button: ButtonId,
        ack: ButtonAck,
    },
    /// The incident's current state, kept (retained) for late subscribers.
    Snapshot(Arc<IncidentSnapshot>),
    /// The incident's final state; after it, nothing is kept for the incident.
    Closed(Arc<IncidentSnapshot>),
    /// The incident as it stands, for the consoles at once: its first state and each change
    /// that matters to a dispatcher, before the record has it (devices hear `Snapshot` and
    /// `Closed` once it does). Never for devices: see `Notify::for_devices`.
    Live(Arc<IncidentSnapshot>),
    Escalation {
        incident_id: IncidentId,
        reason: EscalationReason,
        snapshot: Arc<IncidentSnapshot>,
    },
    /// A camera's picture or stream went wrong, or came back.
    Integrity(Arc<IntegrityAlert>),
    /// A face match for dispatchers to confirm or reject, as it stands now.
    Review(Arc<ReviewOut>),
    /// An area warning's newest message (CAP), for outside systems.
    Warning(Arc<crate::warning::Warning>),
}

impl Notify {
    /// What devices and integrations hear over MQTT: everything but the consoles' own view.
    pub fn for_devices(&self) -> bool {
        !matches!(self, Notify::Live(_))
    }
}

/// Who an integrity alert is for. Cameras that watch police stations and prisons report to
/// oversight, never to the patrol chain whose conduct they record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    Dispatch,
    Oversight,
}

/// A camera's health changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IntegrityAlert {
    pub camera: CameraId,
    /// ok | offline | frozen | covered
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub at: DateTime<Utc>,
    pub audience: Audience,
    pub custodial: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<SiteId>,
    pub location: GeoPoint,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewState {
    Pending,
    Confirmed,
    Rejected,
}

/// A face match waiting for (or given) a dispatcher's decision.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReviewOut {
    pub review_id: ReviewId,
    pub person: WantedRef,
    pub state: ReviewState,
    pub opened_at: DateTime<Utc>,
    /// Every sighting gathered into this review, oldest first; the best score is the one to
    /// show beside the watchlist photo.
    pub sightings: Vec<SightingRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<IncidentId>,
}

/// What became of a sighting, for the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SightingDecision {
    /// Opened an incident at once (high danger, above the auto threshold).
    Incident,
    /// Moved the person's open incident.
    Update,
    /// Waits for a dispatcher (a new review or one it joined).
    Review,
    /// A dispatcher confirmed the review it was in.
    Confirmed,
    /// A dispatcher rejected the review it was in.
    Rejected,
}

impl SightingDecision {
    pub fn as_str(&self) -> &'static str {
        match self {
            SightingDecision::Incident => "incident",
            SightingDecision::Update => "update",
            SightingDecision::Review => "review",
            SightingDecision::Confirmed => "confirmed",
            SightingDecision::Rejected => "rejected",
        }
    }
}

/// A sighting as it is recorded.
#[derive(Debug, Clone)]
pub struct SightingRecord {
    pub person_id: PersonId,
    pub sighting: SightingRef,
    pub decision: SightingDecision,
    pub incident_id: Option<IncidentId>,
    pub review_id: Option<ReviewId>,
    /// The face's embedding, while the sighting waits for review (for a negative example
    /// should a dispatcher reject it after a restart).
    pub embedding: Option<Arc<[f32]>>,
}

/// An incident's state as it is recorded, so that it can be picked up after a restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DispatchState {
    pub dispatch: Dispatch,
    /// When each pending offer expires.
    pub offer_expiry: Vec<(OfferId, DateTime<Utc>)>,
}

/// One change of an incident, for the record.
#[derive(Debug)]
pub struct IncidentRecord {
    pub snapshot: Arc<IncidentSnapshot>,
    pub state: DispatchState,
    /// Told once this state is durable: the device messages and orders that led to it are
    /// acknowledged then, not before.
    pub waiters: Vec<Waiter>,
}

/// Completes once a change is in the record (the database, or the fsynced spool while the
/// database is away). Whoever acknowledges a device's message or a dispatcher's order waits
/// for it first; a change that was never recorded is never acknowledged, so the device
/// sends it again.
#[derive(Debug)]
pub struct Recorded(Option<tokio::sync::oneshot::Receiver<()>>);

/// The recording side of a `Recorded`: sent when durable, dropped when not.
pub type Waiter = tokio::sync::oneshot::Sender<()>;

impl From<tokio::sync::oneshot::Receiver<()>> for Recorded {
    fn from(rx: tokio::sync::oneshot::Receiver<()>) -> Self {
        Self(Some(rx))
    }
}

impl Recorded {
    /// Nothing to wait for: no record is kept, or nothing changed.
    pub fn now() -> Self {
        Self(None)
    }

    pub fn pair() -> (Waiter, Self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (tx, Self(Some(rx)))
    }

    /// True once recorded; false when the change was lost before it was recorded.
    pub async fn wait(self) -> bool {
        match self.0 {
            None => true,
            Some(rx) => rx.await.is_ok(),
        }
    }
}

/// A unit's status as the tablet last reported it, for the record (restored after a restart:
/// a unit off duty stays off duty).
#[derive(Debug)]
pub struct UnitStatusRecord {
    pub unit: UnitId,
    pub status: crate::model::UnitStatus,
    pub at: DateTime<Utc>,
    pub waiter: Option<Waiter>,
}

/// A unit as the console's map shows it. Plain values: passing one on allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UnitOnMap {
    pub status: crate::model::UnitStatus,
    /// None until the tablet says.
    pub online: Option<bool>,
    /// Would be offered an incident now.
    pub available: bool,
    pub incident: Option<IncidentId>,
}

/// Where units' current state goes for live views (the console's map). Must not block and
/// should not allocate per call: it is called for every position report.
pub trait Board: Send + Sync + 'static {
    /// The unit's state as its actor holds it (status, presence, availability).
    fn unit(&self, id: &UnitId, callsign: &str, view: UnitOnMap);
    /// Where the unit is: called from the bulk lane for every accepted position report.
    fn moved(&self, id: &str, fix: &crate::fleet::Position);
}

/// Where the actors' record goes (the database writer). Must not block: it is called on
/// the actors' thread.
pub trait Journal: Send + Sync + 'static {
    /// Takes the incident's state, or hands its waiters back when the writer cannot take
    /// it now (its queue is full): the incident tries again shortly with its state as it is
    /// then.
    fn incident(&self, record: IncidentRecord) -> Result<(), Vec<Waiter>>;
    /// Takes a unit's status; false when the writer cannot take it now (its waiter is
    /// dropped: the message is not acknowledged, and the tablet sends it again).
    fn unit_status(&self, _record: UnitStatusRecord) -> bool {
        true
    }
    fn sighting(&self, _record: SightingRecord) {}
    fn integrity(&self, _alert: Arc<IntegrityAlert>) {}
}

/// One of the places what happened goes to: MQTT, the consoles' live feed; later CAP,
/// metrics, peers. Called on the actors' thread: it must not block, and what it has taken
/// it must not drop while it lives.
pub trait Sink: Send + Sync + 'static {
    /// Takes a notification; false when the sink is gone (the process stopping).
    fn take(&self, n: Notify) -> bool;

    /// Whether the sink has any use for `n` (a sink that has none is not handed a copy).
    fn wants(&self, _n: &Notify) -> bool {
        true
    }
}

/// An actor as a sink: its mailbox is where notifications wait while it is busy. `wants`
/// picks what it is sent.
pub struct ActorSink {
    to: Recipient<Notify>,
    wants: fn(&Notify) -> bool,
}

impl ActorSink {
    /// Sent every notification.
    pub fn all(to: Recipient<Notify>) -> Self {
        Self { to, wants: |_| true }
    }

    /// Sent only what `wants` picks.
    pub fn only(to: Recipient<Notify>, wants: fn(&Notify) -> bool) -> Self {
        Self { to, wants }
    }
}

impl Sink for ActorSink {
    fn take(&self, n: Notify) -> bool {
        if !self.to.connected() {
            return false;
        }
        // Past the nominal capacity: what must reach a device (an offer, an ack) is kept.
        self.to.do_send(n);
        true
    }

    fn wants(&self, n: &Notify) -> bool {
        (self.wants)(n)
    }
}

struct NamedSink {
    name: &'static str,
    sink: Box<dyn Sink>,
    dropped: AtomicU64,
}

/// A handle the actors publish through: one fan-out to every named sink. Nothing handed to
/// it is dropped while a sink lives.
#[derive(Clone, Default)]
pub struct Outbox {
    sinks: Arc<Vec<Arc<NamedSink>>>,
    journal: Option<Arc<dyn Journal>>,
    board: Option<Arc<dyn Board>>,
}

impl Outbox {
    /// Also hands every notification `sink` wants to it, under `name` (logs and counts).
    pub fn with_sink(mut self, name: &'static str, sink: impl Sink) -> Self {
        let mut sinks = (*self.sinks).clone();
        sinks.push(Arc::new(NamedSink { name, sink: Box::new(sink), dropped: AtomicU64::new(0) }));
        self.sinks = Arc::new(sinks);
        self
    }

    /// The sinks' names, in the order they are handed notifications.
    pub fn sinks(&self) -> Vec<&'static str> {
        self.sinks.iter().map(|s| s.name).collect()
    }

    /// Also shows units' state on `board`.
    pub fn with_board(mut self, board: Arc<dyn Board>) -> Self {
        self.board = Some(board);
        self
    }

    pub fn show_unit(&self, id: &UnitId, callsign: &str, view: UnitOnMap) {
        if let Some(b) = &self.board {
            b.unit(id, callsign, view);
        }
    }

    /// Also records incident changes in `journal`.
    pub fn with_journal(mut self, journal: Arc<dyn Journal>) -> Self {
        self.journal = Some(journal);
        self
    }

    pub fn journaling(&self) -> bool {
        self.journal.is_some()
    }

    pub fn record(&self, record: IncidentRecord) -> Result<(), Vec<Waiter>> {
        match &self.journal {
            Some(j) => j.incident(record),
            None => Ok(()),
        }
    }

    pub fn record_unit_status(&self, record: UnitStatusRecord) -> bool {
        match &self.journal {
            Some(j) => j.unit_status(record),
            None => true,
        }
    }

    /// A `Recorded` for the next change handed to the journal; `Recorded::now()` without one.
    pub fn recorded(&self) -> (Option<Waiter>, Recorded) {
        if self.journal.is_none() {
            return (None, Recorded::now());
        }
        let (tx, rx) = Recorded::pair();
        (Some(tx), rx)
    }

    pub fn record_sighting(&self, record: SightingRecord) {
        if let Some(j) = &self.journal {
            j.sighting(record);
        }
    }

    pub fn record_integrity(&self, alert: Arc<IntegrityAlert>) {
        if let Some(j) = &self.journal {
            j.integrity(alert);
        }
    }

    /// Hands a notification to every sink that wants it: a copy to each but the last, which
    /// takes it. Only a sink that is gone (the process stopping) loses it.
    pub fn send(&self, n: Notify) {
        let Some(last) = self.sinks.iter().rposition(|s| s.sink.wants(&n)) else { return };
        for s in &self.sinks[..last] {
            if s.sink.wants(&n) {
                Self::hand(s, n.clone());
            }
        }
        Self::hand(&self.sinks[last], n);
    }

    fn hand(s: &NamedSink, n: Notify) {
        if !s.sink.take(n) {
            s.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::error!(sink = s.name, "outbound notification dropped: the sink is gone");
        }
    }

    /// Notifications dropped because their sink was gone, all sinks together.
    pub fn dropped(&self) -> u64 {
        self.sinks.iter().map(|s| s.dropped.load(Ordering::Relaxed)).sum()
    }
}

/// When kuzet received something, in wall time (for people) and monotonic time (for hops).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Received {
    pub at: DateTime<Utc>,
    pub instant: tokio::time::Instant,
}

impl Received {
    pub fn now() -> Self {
        Self { at: Utc::now(), instant: tokio::time::Instant::now() }
    }
}

#[cfg(test)]
mod tests;
