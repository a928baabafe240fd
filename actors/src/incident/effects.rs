//! Carrying out what the dispatch decided: offers out and their timers, the snapshot
//! published (coalesced), the record, and what devices hear once it is durable.

use super::*;

impl Incident {
    /// Publishes the snapshot: the final one at once; while open, coalesced over a few
    /// milliseconds, so serializing it never delays an offer or an ack on the alarm's path.
    /// Devices hear it once it is recorded. The consoles see the first state and every change
    /// a dispatcher must see at once (`show_live`); only the rest waits with the devices'.
    pub(super) fn publish(&mut self, ctx: &mut Context<Self>) {
        self.show_live();
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

    /// The consoles' view at once, when what a dispatcher sees has changed since it was last
    /// shown: the incident's first state, a new state, offers made or ended, units and their
    /// progress, an escalation, alarms joining or withdrawn, a new sighting. Timeline lines
    /// alone (a note, a repeated ack) go with the coalesced snapshot.
    fn show_live(&mut self) {
        let mark = LiveMark {
            state: self.dispatch.state(),
            offers: self.dispatch.pending().iter().map(|p| p.offer_id).collect(),
            units: self.dispatch.assigned().iter().map(|a| (a.unit.clone(), a.progress)).collect(),
            escalated: self.dispatch.escalated(),
            raisers: (self.raised_by.len(), self.raised_by.iter().filter(|r| r.withdrawn).count()),
            sighting: self.sightings.last().map(|s| s.sighting_id),
        };
        if self.live_mark.as_ref() == Some(&mark) {
            return;
        }
        self.live_mark = Some(mark);
        self.outbox.send(Notify::Live(Arc::new(self.snapshot())));
    }

    /// Records the state and sends what was held for it once it is durable; at once when
    /// there is no record. Sent from a task of its own: a closing incident's actor stops
    /// before its record is written.
    pub(super) fn flush(&mut self, snapshot: &Arc<IncidentSnapshot>, ctx: &mut Context<Self>) {
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
    pub(super) fn recorded(&mut self) -> Recorded {
        let (waiter, done) = self.outbox.recorded();
        self.waiting.extend(waiter);
        done
    }

    /// Hands the incident's state to the record (the database writer), when there is one.
    /// A writer too far behind to take it gets the state again shortly: the waiters are
    /// acknowledged late, never early.
    pub(super) fn journal(&mut self, snapshot: &Arc<IncidentSnapshot>, ctx: &mut Context<Self>) {
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
    pub(super) fn ack_all(&mut self, state: AckState, eta_s: Option<u32>) {
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

    pub(super) fn ack_one(&mut self, r: &Raiser, state: AckState, eta_s: Option<u32>) {
        let ack = ButtonAck { alarm_id: r.alarm_id, incident_id: self.id, state, eta_s };
        self.hold(Held::Notify(Box::new(Notify::Ack { button: r.button.clone(), ack })));
    }

    /// Holds what a device hears until the state it reports is recorded (the next `publish`
    /// flushes it); without a record there is nothing to wait for.
    pub(super) fn hold(&mut self, h: Held) {
        if self.outbox.journaling() {
            self.held.push(h);
        } else {
            h.send(&self.outbox);
        }
    }

    /// Carries out the effects of one decision, then publishes the new snapshot.
    pub(super) fn apply(&mut self, effects: Vec<Effect>, ctx: &mut Context<Self>) {
        for e in effects {
            self.apply_one(e, ctx);
        }
        self.publish(ctx);
    }

    pub(super) fn apply_one(&mut self, effect: Effect, ctx: &mut Context<Self>) {
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
    pub(super) fn offer_out(
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
    pub(super) fn keep_looking(&mut self, ctx: &mut Context<Self>) {
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

    pub(super) fn offer_ended(
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

/// What a dispatcher must see at once when it changes.
#[derive(Debug, PartialEq)]
pub(super) struct LiveMark {
    state: IncidentState,
    offers: Vec<OfferId>,
    units: Vec<(UnitId, Progress)>,
    escalated: Option<crate::dispatch::EscalationReason>,
    /// Alarms raised, and how many of them withdrawn.
    raisers: (usize, usize),
    /// The newest sighting.
    sighting: Option<crate::ids::SightingId>,
}

/// What waits for the incident's state to be recorded before it goes out.
pub(super) enum Held {
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

pub(super) fn describe(c: &[Candidate]) -> String {
    let parts: Vec<String> =
        c.iter().map(|c| format!("{} {:.0} m {} s", c.unit, c.distance_m, c.eta_s)).collect();
    if parts.is_empty() {
        "none available".into()
    } else {
        parts.join(", ")
    }
}

pub(super) fn ack_event(s: AckState) -> &'static str {
    match s {
        AckState::Received => "ack_received",
        AckState::Dispatched => "ack_dispatched",
        AckState::Escalated => "ack_escalated",
        AckState::OnScene => "ack_on_scene",
        AckState::Cleared => "ack_cleared",
        AckState::Cancelled => "ack_cancelled",
    }
}
