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
use crate::unit::{
    Answer, IncidentEnded, IncidentLink, OfferAnswer, OfferUnit, Remind, RevokeOffer, Settled, Unit,
    UnitAway, UnitProgress,
};

/// Sightings an incident's snapshot carries (the newest); the record keeps them all.
const MAX_SIGHTINGS: usize = 50;
/// A sighting by the camera that saw the person last is added at most this often.
const SAME_CAMERA_EVERY_S: i64 = 60;

/// How long snapshot updates are gathered before one is published.
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

    /// Publishes the snapshot: the final one at once; while open, coalesced over a few
    /// milliseconds, so serializing it never delays an offer or an ack on the alarm's path.
    fn publish(&mut self, ctx: &mut Context<Self>) {
        if !self.dispatch.state().is_open() {
            let snapshot = Arc::new(self.snapshot());
            self.held.push(Held::Notify(Box::new(Notify::Closed(snapshot.clone()))));
            self.flush(&snapshot, ctx);
            return;
        }
        if self.snapshot_due {
            return;
        }
        self.snapshot_due = true;
        ctx.run_later(SNAPSHOT_COALESCE, |act, ctx| {
            act.snapshot_due = false;
            let snapshot = Arc::new(act.snapshot());
            act.held.push(Held::Notify(Box::new(Notify::Snapshot(snapshot.clone()))));
            act.flush(&snapshot, ctx);
        });
    }

    /// Records the state and sends what was held for it once it is durable; at once when
    /// there is no record. Sent from a task of its own: a closing incident's actor stops
    /// before its record is written.
    fn flush(&mut self, snapshot: &Arc<IncidentSnapshot>, ctx: &mut Context<Self>) {
        let held = std::mem::take(&mut self.held);
        if !self.outbox.journaling() {
            held.into_iter().for_each(|h| h.send(&self.outbox));
            return;
        }
        let (waiter, done) = Recorded::pair();
        self.waiting.push(waiter);
        let outbox = self.outbox.clone();
        actix::spawn(async move {
            // Never recorded: nothing is said; the devices send again and hear then.
            if done.wait().await {
                held.into_iter().for_each(|h| h.send(&outbox));
            }
        });
        self.journal(snapshot, ctx);
    }

    /// What waits for the incident's next recorded state (see `Recorded`).
    fn recorded(&mut self) -> Recorded {
        let (waiter, done) = self.outbox.recorded();
        self.waiting.extend(waiter);
        done
    }

    /// Hands the incident's state to the record (the database writer), when there is one.
    /// A writer too far behind to take it gets the state again shortly: the waiters are
    /// acknowledged late, never early.
    fn journal(&mut self, snapshot: &Arc<IncidentSnapshot>, ctx: &mut Context<Self>) {
        if !self.outbox.journaling() {
            return;
        }
        let offer_expiry = self
            .dispatch
            .pending()
            .iter()
            .filter_map(|p| self.expiry.get(&p.offer_id).map(|at| (p.offer_id, *at)))
            .collect();
        let record = IncidentRecord {
            snapshot: snapshot.clone(),
            state: DispatchState { dispatch: self.dispatch.clone(), offer_expiry },
            waiters: std::mem::take(&mut self.waiting),
        };
        if let Err(back) = self.outbox.record(record) {
            self.waiting = back;
            if !self.journal_retry && self.dispatch.state().is_open() {
                self.journal_retry = true;
                ctx.run_later(JOURNAL_RETRY, |act, ctx| {
                    act.journal_retry = false;
                    let snapshot = Arc::new(act.snapshot());
                    act.journal(&snapshot, ctx);
                });
            }
        }
    }

    /// Acks every button whose alarm still stands once, naming its latest alarm.
    fn ack_all(&mut self, state: AckState, eta_s: Option<u32>) {
        let latest: Vec<Raiser> = self
            .raised_by
            .iter()
            .enumerate()
            .filter(|(i, r)| {
                !r.withdrawn && self.raised_by[i + 1..].iter().all(|later| later.button != r.button)
            })
            .map(|(_, r)| r.clone())
            .collect();
        for r in &latest {
            self.ack_one(r, state, eta_s);
        }
    }

    fn ack_one(&mut self, r: &Raiser, state: AckState, eta_s: Option<u32>) {
        let ack = ButtonAck { alarm_id: r.alarm_id, incident_id: self.id, state, eta_s };
        self.hold(Held::Notify(Box::new(Notify::Ack { button: r.button.clone(), ack })));
    }

    /// Holds what a device hears until the state it reports is recorded (the next `publish`
    /// flushes it); without a record there is nothing to wait for.
    fn hold(&mut self, h: Held) {
        if self.outbox.journaling() {
            self.held.push(h);
        } else {
            h.send(&self.outbox);
        }
    }

    /// Carries out the effects of one decision, then publishes the new snapshot.
    fn apply(&mut self, effects: Vec<Effect>, ctx: &mut Context<Self>) {
        for e in effects {
            self.apply_one(e, ctx);
        }
        self.publish(ctx);
    }

    fn apply_one(&mut self, effect: Effect, ctx: &mut Context<Self>) {
        match effect {
            Effect::FindUnits { count, exclude } => {
                let find = self.router.send(FindUnits { to: self.location, count, exclude });
                ctx.spawn(find.into_actor(self).map(move |res, act, ctx| {
                    let found = res.unwrap_or_else(|e| {
                        tracing::error!(incident_id = %act.id, error = %e, "router unreachable");
                        Vec::new()
                    });
                    let mut candidates = Vec::with_capacity(found.len());
                    for f in found {
                        act.units.insert(f.candidate.unit.clone(), f.addr);
                        // Kept for the incident's life: a unit is asked again only by a
                        // dispatcher's assignment, which stores its route anew.
                        if let Some(r) = f.route {
                            act.routes.insert(f.candidate.unit.clone(), r);
                        }
                        candidates.push(f.candidate);
                    }
                    act.record("units_chosen", None, Some(describe(&candidates)));
                    let fx = act.dispatch.on_candidates(candidates, count);
                    act.apply(fx, ctx);
                }));
            }
            Effect::Offer { offer_id, unit, distance_m, eta_s, expires_in } => {
                let Some(addr) = self.units.get(&unit).cloned() else {
                    return;
                };
                let offer = self.offer_out(offer_id, &unit, distance_m, eta_s, Utc::now() + expires_in);
                self.expiry.retain(|id, _| self.dispatch.pending().iter().any(|p| p.offer_id == *id));
                self.expiry.insert(offer_id, offer.expires_at);
                let timer = ctx.run_later(expires_in, move |act, ctx| {
                    act.timers.remove(&offer_id);
                    act.offer_ended(offer_id, OfferEnd::TimedOut, "offer_timed_out", None, ctx);
                });
                self.timers.insert(offer_id, timer);
                let sent = addr.send(OfferUnit { offer, incident: ctx.address().into() });
                ctx.spawn(sent.into_actor(self).map(move |res, act, ctx| match res {
                    Ok(Ok(())) => act.record("offer_published", Some(unit), None),
                    Ok(Err(_)) | Err(_) => {
                        if let Some(t) = act.timers.remove(&offer_id) {
                            ctx.cancel_future(t);
                        }
                        act.offer_ended(offer_id, OfferEnd::Refused, "offer_refused", None, ctx);
                    }
                }));
            }
            Effect::Revoke { offer_id, unit, reason } => {
                if let Some(t) = self.timers.remove(&offer_id) {
                    ctx.cancel_future(t);
                }
                if let Some(addr) = self.units.get(&unit) {
                    addr.do_send(RevokeOffer { offer_id, reason });
                }
            }
            Effect::CancelAssignment { unit } => {
                if let Some(addr) = self.units.get(&unit).cloned() {
                    self.hold(Held::Ended(addr, IncidentEnded { incident_id: self.id, cancelled: true }));
                }
            }
            Effect::Ack { state, eta_s } => {
                self.last_ack = (state, eta_s);
                self.record(ack_event(state), None, eta_s.map(|e| format!("eta {e} s")));
                self.ack_all(state, eta_s);
            }
            Effect::Escalate { reason } => {
                tracing::warn!(incident_id = %self.id, reason = reason.as_str(), "incident escalated to dispatchers");
                self.record("escalated", None, Some(reason.as_str().to_owned()));
                self.keep_looking(ctx);
                self.outbox.send(Notify::Escalation {
                    incident_id: self.id,
                    reason,
                    snapshot: Arc::new(self.snapshot()),
                });
            }
            Effect::Closed => {
                let cancelled = self.dispatch.state() == IncidentState::Cancelled;
                let ended: Vec<Addr<Unit>> = self
                    .dispatch
                    .assigned()
                    .iter()
                    .filter_map(|a| self.units.get(&a.unit).cloned())
                    .collect();
                for addr in ended {
                    self.hold(Held::Ended(addr, IncidentEnded { incident_id: self.id, cancelled }));
                }
                self.record(if cancelled { "cancelled" } else { "closed" }, None, None);
                for (_, t) in self.timers.drain() {
                    ctx.cancel_future(t);
                }
                let snapshot = Arc::new(self.snapshot());
                if let Err(e) = self.on_end.try_send(IncidentOver { incident_id: self.id, snapshot }) {
                    tracing::error!(incident_id = %self.id, error = %e, "registry did not take the incident's end");
                }
                ctx.stop();
            }
        }
    }

    /// An offer as the unit's tablet gets it.
    fn offer_out(
        &self,
        offer_id: OfferId,
        unit: &UnitId,
        distance_m: f64,
        eta_s: u32,
        expires_at: DateTime<Utc>,
    ) -> OfferOut {
        OfferOut {
            offer_id,
            incident_id: self.id,
            priority: self.dispatch.plan().priority,
            kind: self.kind,
            location: self.location,
            subject: self.subject.clone(),
            summary: self.summary(),
            distance_m: distance_m.round(),
            eta_s: Some(eta_s),
            expires_at,
            route: self.routes.get(unit).cloned(),
        }
    }

    /// After an escalation: look again every offer timeout, so that a unit that frees up
    /// later still gets the offer.
    fn keep_looking(&mut self, ctx: &mut Context<Self>) {
        if self.retrying {
            return;
        }
        self.retrying = true;
        ctx.run_interval(self.dispatch.plan().offer_timeout, |act, ctx| {
            let fx = act.dispatch.retry();
            if !fx.is_empty() {
                act.apply(fx, ctx);
            }
        });
    }

    fn offer_ended(
        &mut self,
        offer_id: OfferId,
        how: OfferEnd,
        event: &'static str,
        unit: Option<UnitId>,
        ctx: &mut Context<Self>,
    ) {
        let unit = unit.or_else(|| {
            self.dispatch.pending().iter().find(|p| p.offer_id == offer_id).map(|p| p.unit.clone())
        });
        match self.dispatch.on_offer_ended(offer_id, how) {
            Ok(fx) => {
                self.record(event, unit, None);
                self.apply(fx, ctx);
            }
            Err(e) => tracing::debug!(incident_id = %self.id, error = %e, "offer already settled"),
        }
    }
}

/// What waits for the incident's state to be recorded before it goes out.
enum Held {
    Notify(Box<Notify>),
    /// A unit on the incident is released (it then tells its tablet).
    Ended(Addr<Unit>, IncidentEnded),
}

impl Held {
    fn send(self, outbox: &Outbox) {
        match self {
            Held::Notify(n) => outbox.send(*n),
            Held::Ended(addr, msg) => addr.do_send(msg),
        }
    }
}

fn describe(c: &[Candidate]) -> String {
    let parts: Vec<String> =
        c.iter().map(|c| format!("{} {:.0} m {} s", c.unit, c.distance_m, c.eta_s)).collect();
    if parts.is_empty() {
        "none available".into()
    } else {
        parts.join(", ")
    }
}

fn ack_event(s: AckState) -> &'static str {
    match s {
        AckState::Received => "ack_received",
        AckState::Dispatched => "ack_dispatched",
        AckState::Escalated => "ack_escalated",
        AckState::OnScene => "ack_on_scene",
        AckState::Cleared => "ack_cleared",
        AckState::Cancelled => "ack_cancelled",
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

impl Handler<OfferAnswer> for Incident {
    type Result = Result<Recorded, Refusal>;

    fn handle(&mut self, msg: OfferAnswer, ctx: &mut Self::Context) -> Self::Result {
        if let Some(t) = self.timers.remove(&msg.offer_id) {
            ctx.cancel_future(t);
        }
        let (event, how, detail) = match msg.answer {
            Answer::Accept => {
                let fx = self.dispatch.on_accept(msg.offer_id)?;
                self.record_at(msg.received, "reply_accept", Some(msg.unit), None, None);
                let done = self.recorded();
                self.apply(fx, ctx);
                return Ok(done);
            }
            Answer::Decline { reason } => ("reply_decline", OfferEnd::Declined, reason),
            Answer::Gone => ("unit_offline", OfferEnd::UnitGone, None),
        };
        let fx = self.dispatch.on_offer_ended(msg.offer_id, how)?;
        self.record_at(msg.received, event, Some(msg.unit), None, detail);
        let done = self.recorded();
        self.apply(fx, ctx);
        Ok(done)
    }
}

impl Handler<UnitProgress> for Incident {
    type Result = Result<Recorded, DispatchError>;

    fn handle(&mut self, msg: UnitProgress, ctx: &mut Self::Context) -> Self::Result {
        let fx = self.dispatch.on_progress(&msg.unit, msg.progress)?;
        let event = match msg.progress {
            Progress::Accepted => "accepted",
            Progress::EnRoute => "en_route",
            Progress::OnScene => "on_scene",
            Progress::Cleared => "unit_cleared",
        };
        self.record_at(msg.received, event, Some(msg.unit), None, None);
        let done = self.recorded();
        self.apply(fx, ctx);
        Ok(done)
    }
}

/// Another button's raise at the same site while this incident is open.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Join {
    pub raiser: Raiser,
    pub received: Received,
    /// Over the button's rate limit. Acknowledged as any alarm, but the button's standing
    /// alarm here takes the new id instead of a new line (a flooding button does not grow the
    /// incident), the timeline flags the flood for the dispatcher (`alarm_flood`), and it asks
    /// for no fresh round of units.
    pub over_limit: bool,
}

impl Handler<Join> for Incident {
    type Result = ();

    fn handle(&mut self, msg: Join, ctx: &mut Self::Context) {
        if msg.over_limit {
            self.flood(&msg.raiser.button, msg.received);
        } else {
            let detail = msg.raiser.room.as_ref().map(|r| format!("room {r}"));
            self.record_at(msg.received, "alarm_joined", None, Some(msg.raiser.button.clone()), detail);
        }
        // The new button hears where things stand, not from the start.
        self.ack_one(&msg.raiser, AckState::Received, None);
        if self.last_ack.0 != AckState::Received {
            self.ack_one(&msg.raiser, self.last_ack.0, self.last_ack.1);
        }
        let standing = msg
            .over_limit
            .then(|| self.raised_by.iter().rposition(|r| r.button == msg.raiser.button && !r.withdrawn))
            .flatten();
        match standing {
            Some(i) => self.raised_by[i].alarm_id = msg.raiser.alarm_id,
            None => self.raised_by.push(msg.raiser),
        }
        // Joinable as it is while units are coming or have been on scene only a short while
        // (docs/mqtt.md, the alarm); otherwise the new alarm gets units of its own.
        let working: Vec<UnitId> = self
            .dispatch
            .assigned()
            .iter()
            .filter(|a| a.progress != Progress::Cleared)
            .map(|a| a.unit.clone())
            .collect();
        let gone: Vec<UnitId> = working.iter().filter(|u| self.away.contains(*u)).cloned().collect();
        let on_scene_since = self.timeline.iter().find(|e| e.event == "on_scene").map(|e| e.at);
        // A flood is one alarm said many times: each press must not add a round of units.
        let stale = !msg.over_limit
            && self.dispatch.state() == IncidentState::OnScene
            && on_scene_since.is_some_and(|at| {
                (Utc::now() - at).to_std().unwrap_or_default() > self.dispatch.plan().on_scene_joinable
            });
        if !gone.is_empty() || stale {
            let detail = match (gone.is_empty(), stale) {
                (false, _) => {
                    format!("units gone: {}", gone.iter().map(|u| u.as_str()).collect::<Vec<_>>().join(", "))
                }
                _ => "on scene too long for a new alarm to join".to_owned(),
            };
            self.record("redispatch", None, Some(detail));
            let fx = self.dispatch.rejoin(&gone, stale);
            self.apply(fx, ctx);
            return;
        }
        self.publish(ctx);
    }
}

impl Incident {
    /// Counts an alarm over its button's rate limit. The timeline says so at the first, the
    /// 10th, the 100th, ...: the dispatcher sees a flood and how big it is without it
    /// drowning the timeline (which is only ever appended to).
    fn flood(&mut self, button: &ButtonId, received: Received) {
        let n = match self.flooded.get_mut(button) {
            Some(n) => {
                *n = n.saturating_add(1);
                *n
            }
            None => {
                self.flooded.insert(button.clone(), 1);
                1
            }
        };
        if is_power_of_ten(n) {
            self.record_at(received, FLOOD_EVENT, None, Some(button.clone()), Some(flood_note(n)));
        }
    }
}

/// The timeline event that flags a button's alarm flood.
pub const FLOOD_EVENT: &str = "alarm_flood";

/// Starts with the count: a restored incident reads it back (`flood_counts`).
fn flood_note(n: u32) -> String {
    if n == 1 {
        "1 alarm over this button's rate limit; each one is acknowledged and joins this incident".to_owned()
    } else {
        format!("{n} alarms over this button's rate limit so far")
    }
}

fn is_power_of_ten(mut n: u32) -> bool {
    while n >= 10 && n.is_multiple_of(10) {
        n /= 10;
    }
    n == 1
}

/// The flood counts a restored incident's timeline shows (the latest note per button).
fn flood_counts(timeline: &[TimelineEntry]) -> HashMap<ButtonId, u32> {
    let mut out = HashMap::new();
    for e in timeline.iter().filter(|e| e.event == FLOOD_EVENT) {
        let (Some(b), Some(d)) = (&e.button, &e.detail) else { continue };
        let n = d.split(' ').next().and_then(|w| w.parse().ok()).unwrap_or(1);
        out.insert(b.clone(), n);
    }
    out
}

impl Handler<UnitAway> for Incident {
    type Result = ();

    fn handle(&mut self, msg: UnitAway, _: &mut Self::Context) {
        if self.dispatch.assigned().iter().any(|a| a.unit == msg.unit) {
            self.away.insert(msg.unit);
        }
    }
}

/// A button withdraws its alarm. The incident is cancelled when no alarm stands any more:
/// a mistaken press in one room does not stand down help for another room.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Cancel {
    pub by: ButtonId,
    pub alarm_id: AlarmId,
    pub received: Received,
}

impl Handler<Cancel> for Incident {
    type Result = ();

    fn handle(&mut self, msg: Cancel, ctx: &mut Self::Context) {
        let others_stand = self.raised_by.iter().any(|r| !r.withdrawn && r.button != msg.by);
        if !others_stand {
            // The last alarm standing: the incident is cancelled, and its buttons (this one's
            // alarms, still standing) hear it through the cancel's ack.
            self.record_at(msg.received, "cancel_requested", None, Some(msg.by), None);
            let fx = self.dispatch.cancel();
            self.apply(fx, ctx);
            return;
        }
        let mut withdrawn = Vec::new();
        for r in self.raised_by.iter_mut().filter(|r| r.button == msg.by && !r.withdrawn) {
            r.withdrawn = true;
            withdrawn.push(r.clone());
        }
        if withdrawn.is_empty() {
            // A repeated cancel: answer it again, nothing else changes.
            if let Some(r) = self.raised_by.iter().rev().find(|r| r.button == msg.by).cloned() {
                self.ack_one(&r, AckState::Cancelled, None);
                self.publish(ctx);
            }
            return;
        }
        self.record_at(msg.received, "alarm_withdrawn", None, Some(msg.by), None);
        for r in &withdrawn {
            self.ack_one(r, AckState::Cancelled, None);
        }
        self.publish(ctx);
    }
}

/// Re-sends the latest ack for one alarm (a redelivered alarm: the button may have missed it).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Reack {
    pub button: ButtonId,
    pub alarm_id: AlarmId,
}

impl Handler<Reack> for Incident {
    type Result = ();

    fn handle(&mut self, msg: Reack, ctx: &mut Self::Context) {
        let found = self.raised_by.iter().find(|r| r.button == msg.button && r.alarm_id == msg.alarm_id);
        // An alarm over the rate limit lives on in its button's standing line (see `Join`).
        let merged = || {
            let r = self.raised_by.iter().rev().find(|r| r.button == msg.button)?;
            self.flooded.contains_key(&msg.button).then(|| Raiser { alarm_id: msg.alarm_id, ..r.clone() })
        };
        let Some(r) = found.cloned().or_else(merged) else {
            return;
        };
        if r.withdrawn {
            self.ack_one(&r, AckState::Cancelled, None);
        } else {
            self.ack_one(&r, self.last_ack.0, self.last_ack.1);
        }
        self.publish(ctx);
    }
}

/// What a dispatcher tells an incident to do.
#[derive(Debug, Clone)]
pub enum Order {
    /// Offer it to this unit (outside the plan's budget); with `replace`, stand that unit down.
    Assign { unit: UnitId, replace: Option<UnitId> },
    /// Close it as cancelled; the units are stood down and the buttons told.
    Cancel { reason: String },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OrderError {
    #[error(transparent)]
    Refused(#[from] DispatchError),
    #[error("unit {0} cannot take it now: not available (busy, off duty, offline) or no recent position")]
    UnitUnavailable(UnitId),
}

/// A dispatcher's order, answered with the incident as it stands after it and when that
/// is recorded.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(IncidentSnapshot, Recorded), OrderError>")]
pub struct DispatcherOrder {
    pub order: Order,
    /// The signed-in user, for the timeline.
    pub by: String,
}

impl Handler<DispatcherOrder> for Incident {
    // A cancel answers at once: the actor stops with it, and would drop a pending future.
    type Result = ActorResponse<Self, Result<(IncidentSnapshot, Recorded), OrderError>>;

    fn handle(&mut self, msg: DispatcherOrder, ctx: &mut Self::Context) -> Self::Result {
        let by = msg.by;
        match msg.order {
            Order::Cancel { reason } => {
                if !self.dispatch.state().is_open() {
                    return ActorResponse::reply(Err(DispatchError::NotOpen.into()));
                }
                self.record("cancelled_by_dispatcher", None, Some(format!("{by}: {reason}")));
                let fx = self.dispatch.cancel();
                let done = self.recorded();
                self.apply(fx, ctx);
                ActorResponse::reply(Ok((self.snapshot(), done)))
            }
            Order::Assign { unit, replace } => {
                // Refused before asking the router, and checked again when it answers.
                if !self.dispatch.state().is_open() {
                    return ActorResponse::reply(Err(DispatchError::NotOpen.into()));
                }
                if self.dispatch.holds(&unit) {
                    return ActorResponse::reply(Err(DispatchError::AlreadyOn(unit).into()));
                }
                let find = self.router.send(FindUnit { unit: unit.clone(), to: self.location });
                ActorResponse::r#async(find.into_actor(self).map(move |res, act, ctx| {
                    let found =
                        res.ok().flatten().ok_or_else(|| OrderError::UnitUnavailable(unit.clone()))?;
                    let fx = act.dispatch.assign(found.candidate.clone(), replace.as_ref())?;
                    act.units.insert(unit.clone(), found.addr);
                    match found.route {
                        Some(r) => act.routes.insert(unit.clone(), r),
                        None => act.routes.remove(&unit),
                    };
                    let detail = match &replace {
                        Some(r) => format!("by {by}, replacing {r}"),
                        None => format!("by {by}"),
                    };
                    act.record("assigned_by_dispatcher", Some(unit), Some(detail));
                    let done = act.recorded();
                    act.apply(fx, ctx);
                    Ok((act.snapshot(), done))
                }))
            }
        }
    }
}

impl Handler<Remind> for Incident {
    type Result = ();

    fn handle(&mut self, msg: Remind, ctx: &mut Self::Context) {
        self.away.remove(&msg.unit);
        if let Some(p) = self.dispatch.pending().iter().find(|p| p.unit == msg.unit).cloned() {
            let Some(expires_at) = self.expiry.get(&p.offer_id).copied() else { return };
            if expires_at <= Utc::now() {
                return;
            }
            let offer = self.offer_out(p.offer_id, &p.unit, p.distance_m, p.eta_s, expires_at);
            tracing::info!(incident_id = %self.id, unit_id = %p.unit, offer_id = %p.offer_id, "offer sent again");
            self.outbox.send(Notify::Offer { unit: p.unit, offer });
        } else if self.dispatch.assigned().iter().any(|a| a.unit == msg.unit) {
            self.publish(ctx);
        }
    }
}

impl Handler<Settled> for Incident {
    type Result = MessageResult<Settled>;

    fn handle(&mut self, _: Settled, ctx: &mut Self::Context) -> Self::Result {
        let done = self.recorded();
        self.publish(ctx);
        MessageResult(done)
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

/// The incident's wanted person seen again: the incident moves to the camera, and the units
/// on it hear where the target is now.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Sighted {
    pub sighting: SightingRef,
    pub received: Received,
}

impl Handler<Sighted> for Incident {
    type Result = ();

    fn handle(&mut self, msg: Sighted, ctx: &mut Self::Context) {
        let s = msg.sighting;
        let last = self.sightings.last();
        // An older sighting (a review confirmed late) does not move the incident back.
        if last.is_some_and(|l| s.at <= l.at) {
            return;
        }
        // The same camera again: the record has every sighting; the incident (and its
        // published snapshot) takes one a minute, so a person standing still does not grow it.
        let moved = last.is_none_or(|l| l.camera != s.camera);
        if !moved && last.is_some_and(|l| s.at - l.at < chrono::Duration::seconds(SAME_CAMERA_EVERY_S)) {
            return;
        }
        let detail = format!("camera {} (score {:.2})", s.camera, s.score);
        self.record_at(msg.received, "sighting_update", None, None, Some(detail));
        if moved {
            self.location = s.location;
            for a in self.dispatch.assigned().iter().filter(|a| a.progress != Progress::Cleared) {
                self.outbox.send(Notify::Unit {
                    unit: a.unit.clone(),
                    incident_id: self.id,
                    update: UnitUpdate::TargetMoved {
                        location: s.location,
                        camera: s.camera.clone(),
                        at: s.at,
                    },
                });
            }
        }
        self.sightings.push(s);
        if self.sightings.len() > MAX_SIGHTINGS {
            self.sightings.remove(0);
        }
        self.publish(ctx);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_noted_at_powers_of_ten_and_read_back_after_a_restart() {
        let noted: Vec<u32> = (1..=2000).filter(|n| is_power_of_ten(*n)).collect();
        assert_eq!(noted, [1, 10, 100, 1000]);
        let entry = |button: &str, n: u32| TimelineEntry {
            at: Utc::now(),
            t_us: 0,
            event: FLOOD_EVENT.into(),
            unit: None,
            button: Some(ButtonId::parse(button).unwrap()),
            detail: Some(flood_note(n)),
        };
        let timeline = [entry("btn-a", 1), entry("btn-b", 1), entry("btn-a", 10)];
        let counts = flood_counts(&timeline);
        assert_eq!(counts.get(&ButtonId::parse("btn-a").unwrap()), Some(&10));
        assert_eq!(counts.get(&ButtonId::parse("btn-b").unwrap()), Some(&1));
    }
}
