//! The dispatch decisions of one incident, as plain data and functions: who gets offered
//! next, when an incident is covered, escalated, closed. The Incident actor holds one
//! `Dispatch`, feeds it what happens and carries out the `Effect`s it returns (offers,
//! acks, timers). Nothing here knows about actors, clocks or MQTT.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::{OfferId, UnitId};
use crate::model::{AckState, IncidentState, Progress, ResponsePlan};

/// A unit the router found for this incident, nearest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub unit: UnitId,
    pub distance_m: f64,
    pub eta_s: u32,
}

/// An offer waiting for the tablet's reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingOffer {
    pub offer_id: OfferId,
    pub unit: UnitId,
    pub distance_m: f64,
    pub eta_s: u32,
}

/// A unit that accepted, and how far it has got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub unit: UnitId,
    pub progress: Progress,
    pub distance_m: f64,
    pub eta_s: u32,
    /// The offer it accepted (absent in records older than this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_id: Option<OfferId>,
}

/// What the actor must do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Ask the router for up to `count` available units not in `exclude`.
    FindUnits { count: usize, exclude: Vec<UnitId> },
    /// Offer the incident to a unit and expire the offer after `expires_in`.
    Offer { offer_id: OfferId, unit: UnitId, distance_m: f64, eta_s: u32, expires_in: Duration },
    /// Withdraw an offer that is still with a unit.
    Revoke { offer_id: OfferId, unit: UnitId, reason: RevokeReason },
    /// Tell a unit that accepted that the incident was cancelled.
    CancelAssignment { unit: UnitId },
    /// Tell the buttons of the incident.
    Ack { state: AckState, eta_s: Option<u32> },
    /// Hand the incident to the dispatchers.
    Escalate { reason: EscalationReason },
    /// The incident is over; release its units and stop the actor.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeReason {
    Expired,
    Cancelled,
    Closed,
    /// A dispatcher sent another unit instead.
    Reassigned,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscalationReason {
    /// No available unit was left to ask.
    NoUnitsLeft,
    /// The plan's offer budget ran out.
    OfferLimitReached,
}

impl EscalationReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            EscalationReason::NoUnitsLeft => "no_units_left",
            EscalationReason::OfferLimitReached => "offer_limit_reached",
        }
    }
}

/// Why a report from a unit was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    #[error("no pending offer {0} on this incident")]
    UnknownOffer(OfferId),
    #[error("unit {0} is not assigned to this incident")]
    NotAssigned(UnitId),
    #[error("progress cannot go back from {from:?} to {to:?}")]
    ProgressBackwards { from: Progress, to: Progress },
    #[error("incident is no longer open")]
    NotOpen,
    #[error("unit {0} is already on this incident")]
    AlreadyOn(UnitId),
}

/// How a pending offer ended without an acceptance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferEnd {
    Declined,
    TimedOut,
    /// The tablet went offline.
    UnitGone,
    /// The unit could not take it (it became unavailable before the offer reached it);
    /// does not count against the plan's offer budget.
    Refused,
}

/// Serialisable so that an open incident survives a restart (see `resume`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dispatch {
    plan: ResponsePlan,
    state: IncidentState,
    /// Every unit asked so far, never asked again.
    asked: Vec<UnitId>,
    pending: Vec<PendingOffer>,
    assigned: Vec<Assignment>,
    offers_counted: u16,
    searching: bool,
    escalated: Option<EscalationReason>,
    /// Fresh rounds of units asked for by later alarms (see `rejoin`): each adds the plan's
    /// units and offer budget once more.
    #[serde(default)]
    rounds: u8,
}

impl Dispatch {
    pub fn new(plan: ResponsePlan) -> Self {
        Self {
            plan,
            state: IncidentState::Dispatching,
            asked: Vec::new(),
            pending: Vec::new(),
            assigned: Vec::new(),
            offers_counted: 0,
            searching: false,
            escalated: None,
            rounds: 0,
        }
    }

    pub fn state(&self) -> IncidentState {
        self.state
    }

    pub fn plan(&self) -> &ResponsePlan {
        &self.plan
    }

    pub fn pending(&self) -> &[PendingOffer] {
        &self.pending
    }

    pub fn assigned(&self) -> &[Assignment] {
        &self.assigned
    }

    pub fn escalated(&self) -> Option<EscalationReason> {
        self.escalated
    }

    /// The first effects of a new incident.
    pub fn start(&mut self) -> Vec<Effect> {
        let mut out = vec![Effect::Ack { state: AckState::Received, eta_s: None }];
        self.seek(&mut out);
        out
    }

    /// The router answered a `FindUnits`.
    pub fn on_candidates(&mut self, candidates: Vec<Candidate>, requested: usize) -> Vec<Effect> {
        let mut out = Vec::new();
        self.searching = false;
        if !self.state.is_open() {
            return out;
        }
        let exhausted = candidates.len() < requested;
        for c in candidates {
            if self.missing() == 0 || self.budget_left() == 0 {
                break;
            }
            if self.asked.contains(&c.unit) {
                continue;
            }
            let offer_id = OfferId::new_random();
            self.asked.push(c.unit.clone());
            self.offers_counted += 1;
            self.pending.push(PendingOffer {
                offer_id,
                unit: c.unit.clone(),
                distance_m: c.distance_m,
                eta_s: c.eta_s,
            });
            out.push(Effect::Offer {
                offer_id,
                unit: c.unit,
                distance_m: c.distance_m,
                eta_s: c.eta_s,
                expires_in: self.plan.offer_timeout,
            });
        }
        if self.missing() > 0 {
            if exhausted {
                self.escalate_if_stuck(EscalationReason::NoUnitsLeft, &mut out);
            } else {
                self.seek(&mut out);
            }
        }
        out
    }

    /// The tablet accepted a pending offer.
    pub fn on_accept(&mut self, offer_id: OfferId) -> Result<Vec<Effect>, DispatchError> {
        if !self.state.is_open() {
            return Err(DispatchError::NotOpen);
        }
        let offer = self.take_pending(offer_id)?;
        let mut out = Vec::new();
        self.assigned.push(Assignment {
            unit: offer.unit,
            progress: Progress::Accepted,
            distance_m: offer.distance_m,
            eta_s: offer.eta_s,
            offer_id: Some(offer.offer_id),
        });
        if self.missing() == 0 && self.pending.is_empty() {
            self.state = self.state.max_with(IncidentState::Dispatched);
        } else if self.state == IncidentState::Uncovered {
            self.state = IncidentState::Dispatched;
        }
        out.push(Effect::Ack { state: AckState::Dispatched, eta_s: self.best_eta() });
        if self.missing() > 0 && self.escalated.is_none() {
            self.seek(&mut out);
        }
        Ok(out)
    }

    /// A pending offer ended without an acceptance.
    pub fn on_offer_ended(&mut self, offer_id: OfferId, how: OfferEnd) -> Result<Vec<Effect>, DispatchError> {
        let offer = self.take_pending(offer_id)?;
        let mut out = Vec::new();
        if how == OfferEnd::TimedOut {
            out.push(Effect::Revoke { offer_id, unit: offer.unit.clone(), reason: RevokeReason::Expired });
        }
        if how == OfferEnd::Refused {
            self.offers_counted = self.offers_counted.saturating_sub(1);
        }
        if !self.state.is_open() {
            return Ok(out);
        }
        if self.missing() > 0 {
            if self.budget_left() == 0 {
                self.escalate_if_stuck(EscalationReason::OfferLimitReached, &mut out);
            } else {
                self.seek(&mut out);
            }
        } else if self.pending.is_empty() {
            self.state = self.state.max_with(IncidentState::Dispatched);
        }
        Ok(out)
    }

    /// A unit on the incident reported progress.
    pub fn on_progress(&mut self, unit: &UnitId, to: Progress) -> Result<Vec<Effect>, DispatchError> {
        if !self.state.is_open() {
            return Err(DispatchError::NotOpen);
        }
        let a = self
            .assigned
            .iter_mut()
            .find(|a| &a.unit == unit)
            .ok_or_else(|| DispatchError::NotAssigned(unit.clone()))?;
        if to < a.progress {
            return Err(DispatchError::ProgressBackwards { from: a.progress, to });
        }
        if to == a.progress {
            return Ok(Vec::new());
        }
        a.progress = to;
        let mut out = Vec::new();
        match to {
            Progress::Accepted => {}
            Progress::EnRoute => {
                self.state = self.state.max_with(IncidentState::EnRoute);
            }
            Progress::OnScene => {
                if self.state != IncidentState::OnScene {
                    out.push(Effect::Ack { state: AckState::OnScene, eta_s: None });
                }
                self.state = self.state.max_with(IncidentState::OnScene);
            }
            Progress::Cleared => {
                // Units still sought for a later alarm keep it open.
                let more_coming = self.rounds > 0 && (!self.pending.is_empty() || self.searching);
                if !more_coming && self.assigned.iter().all(|a| a.progress == Progress::Cleared) {
                    self.close(IncidentState::Closed, RevokeReason::Closed, &mut out);
                    out.insert(0, Effect::Ack { state: AckState::Cleared, eta_s: None });
                }
            }
        }
        Ok(out)
    }

    /// Looks again for units after an escalation (units may have come free since), within
    /// the plan's offer budget. The incident stays escalated until covered.
    pub fn retry(&mut self) -> Vec<Effect> {
        let mut out = Vec::new();
        if !self.state.is_open() || self.escalated.is_none() || !self.pending.is_empty() || self.searching {
            return out;
        }
        let count = self.missing().min(self.budget_left());
        if count > 0 {
            self.searching = true;
            out.push(Effect::FindUnits { count, exclude: self.asked.clone() });
        }
        out
    }

    /// A new alarm joined the incident. Units in `gone` (on it, but their tablets offline)
    /// are stood down; with `stale` (its units on scene longer than the plan lets a new
    /// alarm simply join), a fresh round of units is asked for. Either way the incident then
    /// looks for what is missing, so a new alarm is never left with nobody working it.
    pub fn rejoin(&mut self, gone: &[UnitId], stale: bool) -> Vec<Effect> {
        let mut out = Vec::new();
        if !self.state.is_open() {
            return out;
        }
        for u in gone {
            if self.assigned.iter().any(|a| &a.unit == u && a.progress != Progress::Cleared) {
                self.stand_down(u, &mut out);
            }
        }
        if stale {
            self.rounds = self.rounds.saturating_add(1);
        }
        if self.missing() > 0 {
            if self.budget_left() == 0 {
                // A dispatcher's decision now: say so again rather than stay silent.
                self.escalated = None;
            }
            self.seek(&mut out);
        }
        out
    }

    /// Picks up after a restart from a saved state: a search that was in flight is lost
    /// with the process, so look again for what is missing (unless escalated: the retry
    /// timer does that).
    pub fn resume(&mut self) -> Vec<Effect> {
        let mut out = Vec::new();
        self.searching = false;
        if self.state.is_open() && self.escalated.is_none() && self.missing() > 0 {
            self.seek(&mut out);
        }
        out
    }

    /// A dispatcher sends a unit they chose: an offer outside the plan's budget, even to a
    /// unit asked (and declining) before. With `replace`, that unit is stood down first
    /// (its offer withdrawn, or its assignment cancelled): a reassignment.
    pub fn assign(&mut self, c: Candidate, replace: Option<&UnitId>) -> Result<Vec<Effect>, DispatchError> {
        if !self.state.is_open() {
            return Err(DispatchError::NotOpen);
        }
        if self.holds(&c.unit) {
            return Err(DispatchError::AlreadyOn(c.unit));
        }
        if let Some(r) = replace {
            if !self.holds(r) {
                return Err(DispatchError::NotAssigned(r.clone()));
            }
        }
        let mut out = Vec::new();
        if let Some(r) = replace {
            self.stand_down(r, &mut out);
        }
        if !self.asked.contains(&c.unit) {
            self.asked.push(c.unit.clone());
        }
        let offer_id = OfferId::new_random();
        self.pending.push(PendingOffer {
            offer_id,
            unit: c.unit.clone(),
            distance_m: c.distance_m,
            eta_s: c.eta_s,
        });
        out.push(Effect::Offer {
            offer_id,
            unit: c.unit,
            distance_m: c.distance_m,
            eta_s: c.eta_s,
            expires_in: self.plan.offer_timeout,
        });
        Ok(out)
    }

    /// Whether a unit holds an offer of, or is assigned to, this incident.
    pub fn holds(&self, unit: &UnitId) -> bool {
        self.assigned.iter().any(|a| &a.unit == unit) || self.pending.iter().any(|p| &p.unit == unit)
    }

    /// Takes a unit off: its offer is withdrawn or its assignment cancelled, and the state
    /// follows the units that stay (an incident left with none is dispatching again).
    fn stand_down(&mut self, unit: &UnitId, out: &mut Vec<Effect>) {
        if let Some(i) = self.assigned.iter().position(|a| &a.unit == unit) {
            self.assigned.remove(i);
            out.push(Effect::CancelAssignment { unit: unit.clone() });
        } else if let Some(i) = self.pending.iter().position(|p| &p.unit == unit) {
            let p = self.pending.remove(i);
            out.push(Effect::Revoke { offer_id: p.offer_id, unit: p.unit, reason: RevokeReason::Reassigned });
        }
        let furthest = self.assigned.iter().map(|a| a.progress).max();
        self.state = match furthest {
            None if self.escalated.is_some() => IncidentState::Uncovered,
            None => IncidentState::Dispatching,
            Some(Progress::Accepted) => IncidentState::Dispatched,
            Some(Progress::EnRoute) => IncidentState::EnRoute,
            Some(Progress::OnScene | Progress::Cleared) => IncidentState::OnScene,
        };
    }

    /// The button (or a dispatcher) cancelled the incident.
    pub fn cancel(&mut self) -> Vec<Effect> {
        let mut out = Vec::new();
        if !self.state.is_open() {
            return out;
        }
        for a in &self.assigned {
            if a.progress != Progress::Cleared {
                out.push(Effect::CancelAssignment { unit: a.unit.clone() });
            }
        }
        self.close(IncidentState::Cancelled, RevokeReason::Cancelled, &mut out);
        out.insert(0, Effect::Ack { state: AckState::Cancelled, eta_s: None });
        out
    }

    fn close(&mut self, state: IncidentState, reason: RevokeReason, out: &mut Vec<Effect>) {
        for p in self.pending.drain(..) {
            out.push(Effect::Revoke { offer_id: p.offer_id, unit: p.unit, reason });
        }
        self.state = state;
        out.push(Effect::Closed);
    }

    fn take_pending(&mut self, offer_id: OfferId) -> Result<PendingOffer, DispatchError> {
        let pos = self
            .pending
            .iter()
            .position(|p| p.offer_id == offer_id)
            .ok_or(DispatchError::UnknownOffer(offer_id))?;
        Ok(self.pending.remove(pos))
    }

    /// Units still to find: required minus accepted minus those with an offer in hand.
    fn missing(&self) -> usize {
        let have = self.assigned.len() + self.pending.len();
        let required = usize::from(self.plan.units_required) * (1 + usize::from(self.rounds));
        required.saturating_sub(have)
    }

    fn budget_left(&self) -> usize {
        let budget = usize::from(self.plan.max_offers) * (1 + usize::from(self.rounds));
        budget.saturating_sub(usize::from(self.offers_counted))
    }

    fn seek(&mut self, out: &mut Vec<Effect>) {
        if self.searching {
            return;
        }
        let count = self.missing().min(self.budget_left());
        if count == 0 {
            self.escalate_if_stuck(EscalationReason::OfferLimitReached, out);
            return;
        }
        self.searching = true;
        out.push(Effect::FindUnits { count, exclude: self.asked.clone() });
    }

    /// Escalates once nothing is left in flight that could still cover the incident.
    fn escalate_if_stuck(&mut self, reason: EscalationReason, out: &mut Vec<Effect>) {
        if !self.pending.is_empty() || self.searching || self.escalated.is_some() {
            return;
        }
        self.escalated = Some(reason);
        if self.assigned.is_empty() {
            self.state = IncidentState::Uncovered;
            out.push(Effect::Ack { state: AckState::Escalated, eta_s: None });
        }
        out.push(Effect::Escalate { reason });
    }

    fn best_eta(&self) -> Option<u32> {
        self.assigned.iter().filter(|a| a.progress < Progress::OnScene).map(|a| a.eta_s).min()
    }
}

impl IncidentState {
    /// Moves forward along dispatching -> dispatched -> en route -> on scene, never back.
    fn max_with(self, next: IncidentState) -> IncidentState {
        let rank = |s: IncidentState| match s {
            IncidentState::Dispatching | IncidentState::Uncovered => 0,
            IncidentState::Dispatched => 1,
            IncidentState::EnRoute => 2,
            IncidentState::OnScene => 3,
            IncidentState::Closed | IncidentState::Cancelled => 4,
        };
        if rank(next) > rank(self) {
            next
        } else {
            self
        }
    }
}

#[cfg(test)]
mod tests;
