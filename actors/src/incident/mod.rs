//! Incident: one open incident. Holds the dispatch decisions (`dispatch::Dispatch`), the
//! offer timers, the buttons to keep informed and the timeline of every hop, and carries
//! out the effects the decisions return.
//!
//! Offers go out at once. What a device takes as the answer to what it sent (a button's
//! acks, the incident's snapshot, a unit's "closed" or "cancelled") goes out only once the
//! state it reports is in the record: a device that saw it may stop sending, and must not
//! lose anything if kuzet and the broker both die a moment later.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use chrono::{DateTime, Utc};

use crate::dispatch::{Candidate, Dispatch, DispatchError, Effect, OfferEnd};
use crate::geo::GeoPoint;
use crate::ids::{AlarmId, ButtonId, IncidentId, OfferId, UnitId};
use crate::model::{AckState, IncidentKind, IncidentState, Progress, ResponsePlan};
use crate::outbound::{
    ButtonAck, DispatchState, IncidentRecord, Notify, OfferOut, Outbox, Received, Recorded, UnitUpdate,
    Waiter,
};
use crate::refusal::Refusal;
use crate::router::{FindUnit, FindUnits, Router};
pub use crate::snapshot::{IncidentSnapshot, Raiser, SightingRef, TimelineEntry, WantedRef};
use crate::subject::Subject;
mod effects;
mod orders;
mod raisers;
mod sightings;
mod units;

pub use orders::{DispatcherOrder, Order, OrderError};
pub use raisers::{Cancel, Join, Reack};
pub use sightings::Sighted;

use effects::Held;
use raisers::flood_counts;

use crate::unit::{
    Answer, IncidentEnded, IncidentLink, OfferAnswer, OfferUnit, Remind, RevokeOffer, Settled, Unit,
    UnitAway, UnitProgress,
};

/// Sightings an incident's snapshot carries (the newest); the record keeps them all.
const MAX_SIGHTINGS: usize = 50;
/// A sighting by the camera that saw the person last is added at most this often.
const SAME_CAMERA_EVERY_S: i64 = 60;

/// How long snapshot updates are gathered before one is published to devices and, when
/// nothing that matters to a dispatcher changed, to the consoles (see `LiveMark`).
const SNAPSHOT_COALESCE: std::time::Duration = std::time::Duration::from_millis(5);
/// How soon a change the writer could not take (its queue full) is handed to it again.
const JOURNAL_RETRY: std::time::Duration = std::time::Duration::from_millis(50);

/// What an incident is opened with.
pub struct IncidentSpec {
    pub id: IncidentId,
    pub kind: IncidentKind,
    pub plan: ResponsePlan,
    pub location: GeoPoint,
    pub subject: Subject,
    /// The button whose alarm opened it (a school alarm).
    pub raiser: Option<Raiser>,
    /// The sighting that opened it (a face incident).
    pub sighting: Option<SightingRef>,
    pub received: Received,
}

pub struct Incident {
    id: IncidentId,
    kind: IncidentKind,
    location: GeoPoint,
    subject: Subject,
    raised_by: Vec<Raiser>,
    sightings: Vec<SightingRef>,
    opened: Received,
    dispatch: Dispatch,
    units: HashMap<UnitId, Addr<Unit>>,
    /// Units on it whose tablets went offline (their last will); back with their presence.
    away: std::collections::HashSet<UnitId>,
    routes: HashMap<UnitId, Arc<Vec<GeoPoint>>>,
    timers: HashMap<OfferId, SpawnHandle>,
    /// When each offer made expires, for the record (a restart re-arms the timers).
    expiry: HashMap<OfferId, DateTime<Utc>>,
    timeline: Vec<TimelineEntry>,
    /// Alarms over their button's rate limit that joined, by button (see `Join`).
    flooded: HashMap<ButtonId, u32>,
    last_ack: (AckState, Option<u32>),
    retrying: bool,
    snapshot_due: bool,
    /// What the consoles were last shown at once (see `LiveMark`).
    live_mark: Option<effects::LiveMark>,
    /// Told once the next recorded state is durable (replies, progress, orders waiting for
    /// their acknowledgement).
    waiting: Vec<Waiter>,
    /// What devices hear once the next recorded state is durable.
    held: Vec<Held>,
    journal_retry: bool,
    /// Set when picked up after a restart: started() resumes instead of starting.
    restored: bool,
    router: Addr<Router>,
    outbox: Outbox,
    on_end: Recipient<IncidentOver>,
}

/// An open incident as recorded before a restart.
#[derive(Debug, Clone)]
pub struct RestoredIncident {
    pub snapshot: IncidentSnapshot,
    pub state: DispatchState,
}

/// Sent to the registry when an incident ends, so the site may open a new one.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct IncidentOver {
    pub incident_id: IncidentId,
    pub snapshot: Arc<IncidentSnapshot>,
}

impl Incident {
    pub fn new(
        spec: IncidentSpec,
        router: Addr<Router>,
        outbox: Outbox,
        on_end: Recipient<IncidentOver>,
    ) -> Self {
        let mut me = Self {
            id: spec.id,
            kind: spec.kind,
            location: spec.location,
            subject: spec.subject,
            raised_by: spec.raiser.iter().cloned().collect(),
            sightings: spec.sighting.iter().cloned().collect(),
            opened: spec.received,
            dispatch: Dispatch::new(spec.plan),
            units: HashMap::new(),
            away: Default::default(),
            routes: HashMap::new(),
            timers: HashMap::new(),
            expiry: HashMap::new(),
            timeline: Vec::new(),
            flooded: HashMap::new(),
            last_ack: (AckState::Received, None),
            retrying: false,
            snapshot_due: false,
            live_mark: None,
            waiting: Vec::new(),
            held: Vec::new(),
            journal_retry: false,
            restored: false,
            router,
            outbox,
            on_end,
        };
        if let Some(r) = spec.raiser {
            me.record_at(spec.received, "alarm_received", None, Some(r.button), None);
        }
        if let (Some(s), Some(w)) = (spec.sighting, me.subject.person()) {
            let detail = format!("{} seen by camera {} (score {:.2})", w.person_id, s.camera, s.score);
            me.record_at(spec.received, "sighting", None, None, Some(detail));
        }
        me
    }

    /// Picks up an incident recorded before a restart; `units` holds the actors of the units
    /// it has offered to or been accepted by.
    pub fn restore(
        r: RestoredIncident,
        units: HashMap<UnitId, Addr<Unit>>,
        router: Addr<Router>,
        outbox: Outbox,
        on_end: Recipient<IncidentOver>,
    ) -> Self {
        let s = r.snapshot;
        // The monotonic clock does not survive a restart: place the opening as far back as
        // the wall clock says, so that t_us goes on counting from the first alarm.
        let age = (Utc::now() - s.opened_at).to_std().unwrap_or_default();
        let now = tokio::time::Instant::now();
        let opened = Received { at: s.opened_at, instant: now.checked_sub(age).unwrap_or(now) };
        let last_ack = match s.state {
            IncidentState::Dispatching => AckState::Received,
            IncidentState::Uncovered => AckState::Escalated,
            IncidentState::OnScene => AckState::OnScene,
            IncidentState::Closed => AckState::Cleared,
            IncidentState::Cancelled => AckState::Cancelled,
            IncidentState::Dispatched | IncidentState::EnRoute => AckState::Dispatched,
        };
        let mut me = Self {
            id: s.incident_id,
            kind: s.kind,
            location: s.location,
            subject: s.subject,
            raised_by: s.raised_by,
            sightings: s.sightings,
            opened,
            dispatch: r.state.dispatch,
            units,
            away: Default::default(),
            routes: HashMap::new(),
            timers: HashMap::new(),
            expiry: r.state.offer_expiry.into_iter().collect(),
            flooded: flood_counts(&s.timeline),
            timeline: s.timeline,
            last_ack: (last_ack, None),
            retrying: false,
            snapshot_due: false,
            live_mark: None,
            waiting: Vec::new(),
            held: Vec::new(),
            journal_retry: false,
            restored: true,
            router,
            outbox,
            on_end,
        };
        me.record("restored", None, Some("picked up after a restart".into()));
        me
    }

    pub fn id(&self) -> IncidentId {
        self.id
    }

    pub fn snapshot(&self) -> IncidentSnapshot {
        IncidentSnapshot {
            incident_id: self.id,
            kind: self.kind,
            priority: self.dispatch.plan().priority,
            state: self.dispatch.state(),
            location: self.location,
            subject: self.subject.clone(),
            raised_by: self.raised_by.clone(),
            opened_at: self.opened.at,
            units: self.dispatch.assigned().to_vec(),
            offers: self.dispatch.pending().to_vec(),
            escalated: self.dispatch.escalated(),
            timeline: self.timeline.clone(),
            sightings: self.sightings.clone(),
        }
    }

    fn record(&mut self, event: &'static str, unit: Option<UnitId>, detail: Option<String>) {
        self.record_at(Received::now(), event, unit, None, detail);
    }

    fn record_at(
        &mut self,
        when: Received,
        event: &'static str,
        unit: Option<UnitId>,
        button: Option<ButtonId>,
        detail: Option<String>,
    ) {
        let t_us = when.instant.saturating_duration_since(self.opened.instant).as_micros() as u64;
        tracing::info!(incident_id = %self.id, event, t_us, unit_id = ?unit.as_ref().map(|u| u.as_str()),
            button_id = ?button.as_ref().map(|b| b.as_str()), detail = detail.as_deref().unwrap_or(""), "incident step");
        self.timeline.push(TimelineEntry { at: when.at, t_us, event: event.into(), unit, button, detail });
    }

    fn summary(&self) -> String {
        match &self.subject {
            Subject::Person(w) => format!(
                "wanted person {} (danger {}){}",
                w.name,
                w.danger.as_str(),
                self.sightings.last().map(|s| format!(" seen by camera {}", s.camera)).unwrap_or_default()
            ),
            Subject::Site(s) => {
                let kinds: Vec<&str> = self.raised_by.iter().map(|r| r.kind.as_str()).collect();
                format!(
                    "panic alarm ({}) at {}{}",
                    kinds.join(", "),
                    s.name,
                    s.room.as_deref().map(|r| format!(", room {r}")).unwrap_or_default()
                )
            }
        }
    }
}

impl Actor for Incident {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(256);
        if !self.restored {
            let fx = self.dispatch.start();
            self.apply(fx, ctx);
            return;
        }
        // Re-arm the pending offers' timers for the time they had left.
        let now = Utc::now();
        for p in self.dispatch.pending().to_vec() {
            let left = self
                .expiry
                .get(&p.offer_id)
                .map_or(std::time::Duration::ZERO, |at| (*at - now).to_std().unwrap_or_default());
            let offer_id = p.offer_id;
            let timer = ctx.run_later(left, move |act, ctx| {
                act.timers.remove(&offer_id);
                act.offer_ended(offer_id, OfferEnd::TimedOut, "offer_timed_out", None, ctx);
            });
            self.timers.insert(offer_id, timer);
        }
        if self.dispatch.escalated().is_some() {
            self.keep_looking(ctx);
        }
        let fx = self.dispatch.resume();
        self.apply(fx, ctx);
    }
}

#[derive(Message)]
#[rtype(result = "IncidentSnapshot")]
pub struct GetSnapshot;

impl Handler<GetSnapshot> for Incident {
    type Result = MessageResult<GetSnapshot>;

    fn handle(&mut self, _: GetSnapshot, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.snapshot())
    }
}

/// A line for the timeline from outside the dispatch (a dispatcher confirmed the match).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Note {
    pub event: &'static str,
    pub detail: String,
}

impl Handler<Note> for Incident {
    type Result = ();

    fn handle(&mut self, msg: Note, ctx: &mut Self::Context) {
        self.record(msg.event, None, Some(msg.detail));
        self.publish(ctx);
    }
}

impl From<Addr<Incident>> for IncidentLink {
    fn from(a: Addr<Incident>) -> Self {
        IncidentLink {
            answer: a.clone().recipient(),
            progress: a.clone().recipient(),
            away: a.clone().recipient(),
            remind: a.clone().recipient(),
            settled: a.recipient(),
        }
    }
}
