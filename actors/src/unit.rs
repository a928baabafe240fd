//! Unit: one patrol unit and its officer tablet. Holds what the tablet last said (status,
//! online), the one offer it may hold and the one incident it may be on, and tells the router
//! whenever it may or may not be offered work. Its positions go to the fleet, not here
//! (`fleet`): they would crowd what the unit is told about dispatch.

use actix::prelude::*;
use chrono::{DateTime, Utc};

use crate::dispatch::{DispatchError, RevokeReason};
use crate::ids::{IncidentId, OfferId, UnitId};
use crate::model::{Progress, UnitStatus};
use crate::outbound::{Notify, OfferOut, Outbox, Received, Recorded, UnitStatusRecord, UnitUpdate};
use crate::refusal::Refusal;

struct HeldOffer {
    offer_id: OfferId,
    incident_id: IncidentId,
    incident: IncidentLink,
}

struct OnIncident {
    incident_id: IncidentId,
    incident: IncidentLink,
    /// The offer accepted for it, when known: the same accept delivered again is answered
    /// as it was the first time.
    offer_id: Option<OfferId>,
}

pub struct Unit {
    id: UnitId,
    callsign: String,
    status: UnitStatus,
    /// When the tablet reported `status` (an older report delivered late changes nothing).
    status_at: Option<DateTime<Utc>>,
    /// None until the tablet says.
    online: Option<bool>,
    offer: Option<HeldOffer>,
    incident: Option<OnIncident>,
    /// Offers in a row that expired unanswered.
    missed_offers: u8,
    /// Stopped answering: not offered work until the tablet speaks again.
    unresponsive: bool,
    /// Where eligibility goes (the router).
    router: Recipient<UnitState>,
    outbox: Outbox,
    last_eligible: bool,
}

/// Offers in a row a tablet may let expire before it is taken out of the rotation: a tablet
/// that is connected but not attended would otherwise get every nearby incident first and
/// cost each one an offer timeout.
const MAX_MISSED_OFFERS: u8 = 2;

impl Unit {
    pub fn new(id: UnitId, callsign: String, router: Recipient<UnitState>, outbox: Outbox) -> Self {
        Self {
            id,
            callsign,
            status: UnitStatus::Available,
            status_at: None,
            online: None,
            offer: None,
            incident: None,
            missed_offers: 0,
            unresponsive: false,
            router,
            outbox,
            last_eligible: false,
        }
    }

    /// Its tablet's presence said offline before the actor started.
    pub fn known_offline(mut self) -> Self {
        self.online = Some(false);
        self
    }

    fn eligible(&self) -> bool {
        self.online != Some(false)
            && !self.unresponsive
            && self.status == UnitStatus::Available
            && self.offer.is_none()
            && self.incident.is_none()
    }

    /// Tells the router when eligibility changed.
    /// The officer did something on the tablet: it is attended again.
    /// The router hears at once: whatever else the message says, or refuses, the unit may
    /// be offered work again.
    fn attended(&mut self) {
        self.missed_offers = 0;
        if self.unresponsive {
            self.unresponsive = false;
            tracing::info!(unit_id = %self.id, "unit answering again");
            self.report();
        }
    }

    fn report(&mut self) {
        let eligible = self.eligible();
        self.outbox.show_unit(
            &self.id,
            &self.callsign,
            crate::outbound::UnitOnMap {
                status: self.status,
                online: self.online,
                available: eligible,
                incident: self.incident.as_ref().map(|i| i.incident_id),
            },
        );
        if eligible == self.last_eligible {
            return;
        }
        self.last_eligible = eligible;
        self.router.do_send(UnitState { unit: self.id.clone(), eligible });
    }
}

/// A unit's way to the incident it was offered or is on: what a unit tells its incident,
/// and nothing more (the incident answers through the messages below).
#[derive(Clone)]
pub struct IncidentLink {
    pub answer: Recipient<OfferAnswer>,
    pub progress: Recipient<UnitProgress>,
    pub away: Recipient<UnitAway>,
    pub remind: Recipient<Remind>,
    pub settled: Recipient<Settled>,
}

/// A unit may now (or may no longer) be offered work.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct UnitState {
    pub unit: UnitId,
    pub eligible: bool,
}

/// A unit's answer to one of this incident's offers; answered with when the change it
/// made is recorded.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Recorded, Refusal>")]
pub struct OfferAnswer {
    pub offer_id: OfferId,
    pub unit: UnitId,
    pub answer: Answer,
    pub received: Received,
}

/// A unit on this incident reports progress; answered with when it is recorded.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Recorded, DispatchError>")]
pub struct UnitProgress {
    pub unit: UnitId,
    pub progress: Progress,
    pub received: Received,
}

/// From a unit on this incident: its tablet went offline (its last will).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct UnitAway {
    pub unit: UnitId,
}

/// A unit's tablet is back (it reconnected, or kuzet restarted): it hears again what it
/// holds of this incident. A pending offer is sent again as it stands (same id, same
/// expiry); a unit on the incident gets the incident's snapshot again.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Remind {
    pub unit: UnitId,
}

/// Answers once the incident's state as it stands is recorded (a message sent again whose
/// change is already made is acknowledged no earlier than the first).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Recorded")]
pub struct Settled;

impl Actor for Unit {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(64);
        // The router learns of the unit now; where it is comes from the fleet.
        self.report();
    }
}

/// `kuzet/v1/units/{id}/status`; answered with when it is recorded.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Recorded")]
pub struct StatusReport {
    pub status: UnitStatus,
    pub at: DateTime<Utc>,
}

impl Handler<StatusReport> for Unit {
    type Result = MessageResult<StatusReport>;

    fn handle(&mut self, msg: StatusReport, _: &mut Self::Context) -> Self::Result {
        self.attended();
        if self.status_at.is_some_and(|last| msg.at < last) {
            return MessageResult(Recorded::now());
        }
        self.status = msg.status;
        self.status_at = Some(msg.at);
        self.report();
        let (waiter, done) = self.outbox.recorded();
        let record = UnitStatusRecord { unit: self.id.clone(), status: msg.status, at: msg.at, waiter };
        if !self.outbox.record_unit_status(record) {
            // Not acknowledged, so the tablet sends it again.
            tracing::error!(unit_id = %self.id, "writer queue full: a unit status was not recorded");
        }
        MessageResult(done)
    }
}

/// `kuzet/v1/units/{id}/online`, the tablet's retained presence and last will.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Online(pub bool);

impl Handler<Online> for Unit {
    type Result = ();

    fn handle(&mut self, msg: Online, _: &mut Self::Context) {
        self.online = Some(msg.0);
        if msg.0 {
            // Back (or kuzet restarted and hears its retained presence): the tablet may have
            // missed what it holds while away.
            let holds =
                self.offer.as_ref().map(|o| &o.incident).or(self.incident.as_ref().map(|i| &i.incident));
            if let Some(incident) = holds {
                incident.remind.do_send(Remind { unit: self.id.clone() });
            }
        } else {
            tracing::warn!(unit_id = %self.id, "unit tablet offline");
            if let Some(on) = &self.incident {
                on.incident.away.do_send(UnitAway { unit: self.id.clone() });
            }
            if let Some(held) = self.offer.take() {
                held.incident.answer.do_send(OfferAnswer {
                    offer_id: held.offer_id,
                    unit: self.id.clone(),
                    answer: Answer::Gone,
                    received: Received::now(),
                });
            }
        }
        self.report();
    }
}

/// An incident offers itself to this unit. Refused when the unit cannot take it now.
#[derive(Message)]
#[rtype(result = "Result<(), Refusal>")]
pub struct OfferUnit {
    pub offer: OfferOut,
    pub incident: IncidentLink,
}

impl Handler<OfferUnit> for Unit {
    type Result = Result<(), Refusal>;

    fn handle(&mut self, msg: OfferUnit, _: &mut Self::Context) -> Self::Result {
        if !self.eligible() {
            return Err(Refusal::Unavailable);
        }
        self.offer = Some(HeldOffer {
            offer_id: msg.offer.offer_id,
            incident_id: msg.offer.incident_id,
            incident: msg.incident,
        });
        self.report();
        tracing::info!(unit_id = %self.id, callsign = %self.callsign, incident_id = %msg.offer.incident_id,
            distance_m = msg.offer.distance_m.round(), "offer sent");
        self.outbox.send(Notify::Offer { unit: self.id.clone(), offer: msg.offer });
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Accept,
    Decline {
        reason: Option<String>,
    },
    /// The tablet went offline holding the offer.
    Gone,
}

/// `kuzet/v1/units/{id}/reply`; answered with when the incident's change is recorded.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Recorded, Refusal>")]
pub struct Reply {
    pub offer_id: OfferId,
    pub accept: bool,
    pub reason: Option<String>,
    pub received: Received,
}

impl Handler<Reply> for Unit {
    type Result = ResponseActFuture<Self, Result<Recorded, Refusal>>;

    fn handle(&mut self, msg: Reply, _: &mut Self::Context) -> Self::Result {
        let held = match self.offer.take() {
            Some(h) if h.offer_id == msg.offer_id => h,
            other => {
                self.offer = other;
                // The accept of the incident this unit is on, delivered again (its
                // acknowledgement was lost): it stands, acknowledged once the state is recorded.
                let on = self.incident.as_ref().filter(|on| on.offer_id == Some(msg.offer_id));
                if let (true, Some(on)) = (msg.accept, on) {
                    let settled = on.incident.settled.send(Settled);
                    // An incident already gone has handed its final state to the record.
                    return Box::pin(
                        settled.into_actor(self).map(|res, _, _| Ok(res.unwrap_or_else(|_| Recorded::now()))),
                    );
                }
                return Box::pin(fut::ready(Err(Refusal::NotYourOffer(msg.offer_id))));
            }
        };
        self.attended();
        let answer = if msg.accept { Answer::Accept } else { Answer::Decline { reason: msg.reason } };
        let accepted = answer == Answer::Accept;
        let incident = held.incident.clone();
        let sent = incident.answer.send(OfferAnswer {
            offer_id: msg.offer_id,
            unit: self.id.clone(),
            answer,
            received: msg.received,
        });
        let offer_id = msg.offer_id;
        Box::pin(sent.into_actor(self).map(move |res, act, _| {
            let res = res.map_err(Refusal::from).and_then(|r| r);
            if accepted && res.is_ok() {
                act.incident = Some(OnIncident {
                    incident_id: held.incident_id,
                    incident: held.incident,
                    offer_id: Some(offer_id),
                });
            }
            act.report();
            res
        }))
    }
}

/// `kuzet/v1/units/{id}/progress`; answered with when it is recorded.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Recorded, Refusal>")]
pub struct ProgressReport {
    pub incident_id: IncidentId,
    pub progress: Progress,
    pub received: Received,
}

impl Handler<ProgressReport> for Unit {
    type Result = ResponseActFuture<Self, Result<Recorded, Refusal>>;

    fn handle(&mut self, msg: ProgressReport, _: &mut Self::Context) -> Self::Result {
        self.attended();
        let Some(on) = self.incident.as_ref().filter(|on| on.incident_id == msg.incident_id) else {
            return Box::pin(fut::ready(Err(Refusal::NotYourIncident(msg.incident_id))));
        };
        let sent = on.incident.progress.send(UnitProgress {
            unit: self.id.clone(),
            progress: msg.progress,
            received: msg.received,
        });
        let cleared = msg.progress == Progress::Cleared;
        Box::pin(sent.into_actor(self).map(move |res, act, _| {
            let res = res.map_err(Refusal::from).and_then(|r| r.map_err(Refusal::from));
            if cleared && res.is_ok() {
                act.incident = None;
                act.report();
            }
            res
        }))
    }
}

/// From the incident: the offer is withdrawn.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct RevokeOffer {
    pub offer_id: OfferId,
    pub reason: RevokeReason,
}

impl Handler<RevokeOffer> for Unit {
    type Result = ();

    fn handle(&mut self, msg: RevokeOffer, _: &mut Self::Context) {
        let Some(held) = self.offer.take_if(|h| h.offer_id == msg.offer_id) else {
            return;
        };
        if msg.reason == RevokeReason::Expired {
            self.missed_offers = self.missed_offers.saturating_add(1);
            if self.missed_offers >= MAX_MISSED_OFFERS && !self.unresponsive {
                self.unresponsive = true;
                tracing::warn!(unit_id = %self.id, missed = self.missed_offers,
                    "unit not answering offers; no more offers until its tablet responds");
            }
        }
        self.outbox.send(Notify::Unit {
            unit: self.id.clone(),
            incident_id: held.incident_id,
            update: UnitUpdate::OfferRevoked { offer_id: msg.offer_id, reason: msg.reason },
        });
        self.report();
    }
}

/// From the incident: it ended while this unit was on it (cancelled, or closed by others).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct IncidentEnded {
    pub incident_id: IncidentId,
    pub cancelled: bool,
}

impl Handler<IncidentEnded> for Unit {
    type Result = ();

    fn handle(&mut self, msg: IncidentEnded, _: &mut Self::Context) {
        if self.incident.as_ref().is_none_or(|on| on.incident_id != msg.incident_id) {
            return;
        }
        self.incident = None;
        let update = if msg.cancelled { UnitUpdate::Cancelled } else { UnitUpdate::Closed };
        self.outbox.send(Notify::Unit { unit: self.id.clone(), incident_id: msg.incident_id, update });
        self.report();
    }
}

/// After a restart: what the unit held according to the record.
#[derive(Message)]
#[rtype(result = "()")]
pub enum Restore {
    Offer { offer_id: OfferId, incident_id: IncidentId, incident: IncidentLink },
    OnIncident { incident_id: IncidentId, incident: IncidentLink, offer_id: Option<OfferId> },
    Status { status: UnitStatus, at: DateTime<Utc> },
}

impl Handler<Restore> for Unit {
    type Result = ();

    fn handle(&mut self, msg: Restore, _: &mut Self::Context) {
        match msg {
            Restore::Offer { offer_id, incident_id, incident } => {
                self.offer = Some(HeldOffer { offer_id, incident_id, incident });
            }
            Restore::OnIncident { incident_id, incident, offer_id } => {
                self.incident = Some(OnIncident { incident_id, incident, offer_id });
            }
            Restore::Status { status, at } => {
                if self.status_at.is_none_or(|last| last <= at) {
                    self.status = status;
                    self.status_at = Some(at);
                }
            }
        }
        self.report();
    }
}

/// What the unit looks like now (for tests and status views).
#[derive(Message)]
#[rtype(result = "UnitView")]
pub struct GetUnit;

#[derive(Debug, Clone, PartialEq)]
pub struct UnitView {
    pub status: UnitStatus,
    pub online: Option<bool>,
    pub eligible: bool,
    pub unresponsive: bool,
    pub offer: Option<OfferId>,
    pub incident: Option<IncidentId>,
}

impl Handler<GetUnit> for Unit {
    type Result = MessageResult<GetUnit>;

    fn handle(&mut self, _: GetUnit, _: &mut Self::Context) -> Self::Result {
        MessageResult(UnitView {
            status: self.status,
            online: self.online,
            eligible: self.eligible(),
            unresponsive: self.unresponsive,
            offer: self.offer.as_ref().map(|o| o.offer_id),
            incident: self.incident.as_ref().map(|o| o.incident_id),
        })
    }
}

#[cfg(test)]
mod tests;
