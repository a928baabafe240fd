//! Unit: one patrol unit and its officer tablet. Holds what the tablet last said (position,
//! status, online), the one offer it may hold and the one incident it may be on, and tells
//! the router whenever it may or may not be offered work.

use actix::prelude::*;
use chrono::{DateTime, Utc};

use crate::dispatch::RevokeReason;
use crate::geo::GeoPoint;
use crate::ids::{IncidentId, OfferId, UnitId};
use crate::incident::{Incident, OfferAnswer, UnitProgress};
use crate::model::{Progress, UnitStatus};
use crate::outbound::{Notify, OfferOut, Outbox, Received, UnitUpdate};
use crate::refusal::Refusal;
use crate::router::{Router, UnitState};

struct HeldOffer {
    offer_id: OfferId,
    incident_id: IncidentId,
    incident: Addr<Incident>,
}

struct OnIncident {
    incident_id: IncidentId,
    incident: Addr<Incident>,
}

pub struct Unit {
    id: UnitId,
    callsign: String,
    status: UnitStatus,
    /// None until the tablet says; a unit that reports positions is taken to be online.
    online: Option<bool>,
    position: Option<(GeoPoint, DateTime<Utc>)>,
    /// Speed and heading of the latest fix, as the tablet reported them.
    motion: (Option<f32>, Option<f32>),
    offer: Option<HeldOffer>,
    incident: Option<OnIncident>,
    /// Offers in a row that expired unanswered.
    missed_offers: u8,
    /// Stopped answering: not offered work until the tablet speaks again.
    unresponsive: bool,
    router: Addr<Router>,
    outbox: Outbox,
    last_eligible: bool,
}

/// Offers in a row a tablet may let expire before it is taken out of the rotation: a tablet
/// that is connected but not attended would otherwise get every nearby incident first and
/// cost each one an offer timeout.
const MAX_MISSED_OFFERS: u8 = 2;

impl Unit {
    pub fn new(id: UnitId, callsign: String, router: Addr<Router>, outbox: Outbox) -> Self {
        Self {
            id,
            callsign,
            status: UnitStatus::Available,
            online: None,
            position: None,
            motion: (None, None),
            offer: None,
            incident: None,
            missed_offers: 0,
            unresponsive: false,
            router,
            outbox,
            last_eligible: false,
        }
    }

    fn eligible(&self) -> bool {
        self.online != Some(false)
            && !self.unresponsive
            && self.status == UnitStatus::Available
            && self.offer.is_none()
            && self.incident.is_none()
    }

    /// Tells the router when eligibility changed, or always when there is a new position.
    /// The officer did something on the tablet: it is attended again.
    fn attended(&mut self) {
        self.missed_offers = 0;
        if self.unresponsive {
            self.unresponsive = false;
            tracing::info!(unit_id = %self.id, "unit answering again");
        }
    }

    fn report(&mut self, position: Option<(GeoPoint, tokio::time::Instant)>) {
        let eligible = self.eligible();
        self.outbox.show_unit(
            &self.id,
            &self.callsign,
            crate::outbound::UnitOnMap {
                status: self.status,
                online: self.online,
                available: eligible,
                position: self.position,
                speed_mps: self.motion.0,
                heading_deg: self.motion.1,
                incident: self.incident.as_ref().map(|i| i.incident_id),
            },
        );
        if position.is_none() && eligible == self.last_eligible {
            return;
        }
        self.last_eligible = eligible;
        self.router.do_send(UnitState { unit: self.id.clone(), position, eligible });
    }
}

impl Actor for Unit {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(64);
    }
}

/// `kuzet/v1/units/{id}/position`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Position {
    pub point: GeoPoint,
    pub at: DateTime<Utc>,
    pub speed_mps: Option<f64>,
    pub heading_deg: Option<f64>,
    pub received: Received,
}

impl Handler<Position> for Unit {
    type Result = ();

    fn handle(&mut self, msg: Position, _: &mut Self::Context) {
        if let Some((_, last)) = self.position {
            if msg.at < last {
                // Out-of-order delivery: an older fix must not move the unit back.
                return;
            }
        }
        self.position = Some((msg.point, msg.at));
        self.motion = (msg.speed_mps.map(|v| v as f32), msg.heading_deg.map(|v| v as f32));
        self.report(Some((msg.point, msg.received.instant)));
    }
}

/// `kuzet/v1/units/{id}/status`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct StatusReport {
    pub status: UnitStatus,
}

impl Handler<StatusReport> for Unit {
    type Result = ();

    fn handle(&mut self, msg: StatusReport, _: &mut Self::Context) {
        self.attended();
        self.status = msg.status;
        self.report(None);
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
        if !msg.0 {
            tracing::warn!(unit_id = %self.id, "unit tablet offline");
            if let Some(held) = self.offer.take() {
                held.incident.do_send(OfferAnswer {
                    offer_id: held.offer_id,
                    unit: self.id.clone(),
                    answer: Answer::Gone,
                    received: Received::now(),
                });
            }
        }
        self.report(None);
    }
}

/// An incident offers itself to this unit. Refused when the unit cannot take it now.
#[derive(Message)]
#[rtype(result = "Result<(), Refusal>")]
pub struct OfferUnit {
    pub offer: OfferOut,
    pub incident: Addr<Incident>,
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
        self.report(None);
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

/// `kuzet/v1/units/{id}/reply`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), Refusal>")]
pub struct Reply {
    pub offer_id: OfferId,
    pub accept: bool,
    pub reason: Option<String>,
    pub received: Received,
}

impl Handler<Reply> for Unit {
    type Result = ResponseActFuture<Self, Result<(), Refusal>>;

    fn handle(&mut self, msg: Reply, _: &mut Self::Context) -> Self::Result {
        let held = match self.offer.take() {
            Some(h) if h.offer_id == msg.offer_id => h,
            other => {
                self.offer = other;
                return Box::pin(fut::ready(Err(Refusal::NotYourOffer(msg.offer_id))));
            }
        };
        self.attended();
        let answer = if msg.accept { Answer::Accept } else { Answer::Decline { reason: msg.reason } };
        let accepted = answer == Answer::Accept;
        let incident = held.incident.clone();
        let sent = incident.send(OfferAnswer {
            offer_id: msg.offer_id,
            unit: self.id.clone(),
            answer,
            received: msg.received,
        });
        Box::pin(sent.into_actor(self).map(move |res, act, _| {
            let res = res.map_err(Refusal::from).and_then(|r| r);
            if accepted && res.is_ok() {
                act.incident = Some(OnIncident { incident_id: held.incident_id, incident: held.incident });
            }
            act.report(None);
            res
        }))
    }
}

/// `kuzet/v1/units/{id}/progress`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), Refusal>")]
pub struct ProgressReport {
    pub incident_id: IncidentId,
    pub progress: Progress,
    pub received: Received,
}

impl Handler<ProgressReport> for Unit {
    type Result = ResponseActFuture<Self, Result<(), Refusal>>;

    fn handle(&mut self, msg: ProgressReport, _: &mut Self::Context) -> Self::Result {
        self.attended();
        let Some(on) = self.incident.as_ref().filter(|on| on.incident_id == msg.incident_id) else {
            return Box::pin(fut::ready(Err(Refusal::NotYourIncident(msg.incident_id))));
        };
        let sent = on.incident.send(UnitProgress {
            unit: self.id.clone(),
            progress: msg.progress,
            received: msg.received,
        });
        let cleared = msg.progress == Progress::Cleared;
        Box::pin(sent.into_actor(self).map(move |res, act, _| {
            let res = res.map_err(Refusal::from).and_then(|r| r.map_err(Refusal::from));
            if cleared && res.is_ok() {
                act.incident = None;
                act.report(None);
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
        self.report(None);
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
        self.report(None);
    }
}

/// After a restart: what the unit held according to the record.
#[derive(Message)]
#[rtype(result = "()")]
pub enum Restore {
    Offer { offer_id: OfferId, incident_id: IncidentId, incident: Addr<Incident> },
    OnIncident { incident_id: IncidentId, incident: Addr<Incident> },
}

impl Handler<Restore> for Unit {
    type Result = ();

    fn handle(&mut self, msg: Restore, _: &mut Self::Context) {
        match msg {
            Restore::Offer { offer_id, incident_id, incident } => {
                self.offer = Some(HeldOffer { offer_id, incident_id, incident });
            }
            Restore::OnIncident { incident_id, incident } => {
                self.incident = Some(OnIncident { incident_id, incident });
            }
        }
        self.report(None);
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
    pub position: Option<GeoPoint>,
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
            position: self.position.map(|p| p.0),
        })
    }
}
