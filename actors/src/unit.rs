//! Unit: one patrol unit and its officer tablet. Holds what the tablet last said (position,
//! status, online), the one offer it may hold and the one incident it may be on, and tells
//! the router whenever it may or may not be offered work.

use actix::prelude::*;
use chrono::{DateTime, Utc};

use crate::dispatch::{DispatchError, RevokeReason};
use crate::geo::GeoPoint;
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
    /// Where eligibility and positions go (the router).
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
    /// The router hears at once: whatever else the message says, or refuses, the unit may
    /// be offered work again.
    fn attended(&mut self) {
        self.missed_offers = 0;
        if self.unresponsive {
            self.unresponsive = false;
            tracing::info!(unit_id = %self.id, "unit answering again");
            self.report(None);
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

/// A unit moved, or may now (or may no longer) be offered work.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct UnitState {
    pub unit: UnitId,
    /// A new position and when kuzet received it.
    pub position: Option<(GeoPoint, tokio::time::Instant)>,
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
        self.report(None);
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
        self.report(None);
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
            act.report(None);
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;
    use crate::model::{IncidentKind, Priority};
    use crate::outbound::Sink;
    use crate::subject::{SiteRef, Subject};

    /// What a stand-in heard, as short lines.
    #[derive(Clone, Default)]
    struct Heard(Arc<Mutex<Vec<String>>>);

    impl Heard {
        fn push(&self, line: String) {
            self.0.lock().unwrap().push(line);
        }

        fn take(&self) -> Vec<String> {
            self.0.lock().unwrap().drain(..).collect()
        }
    }

    /// Stands in for the router: "pos eligible" or "eligible" per report.
    struct Router(Heard);

    impl Actor for Router {
        type Context = Context<Self>;
    }

    impl Handler<UnitState> for Router {
        type Result = ();

        fn handle(&mut self, msg: UnitState, _: &mut Self::Context) {
            let pos = if msg.position.is_some() { "pos " } else { "" };
            self.0.push(format!("{pos}{}", if msg.eligible { "eligible" } else { "ineligible" }));
        }
    }

    /// Stands in for an incident: takes every answer (or refuses them all) and keeps them.
    struct Incident {
        heard: Heard,
        refuse: bool,
    }

    impl Actor for Incident {
        type Context = Context<Self>;
    }

    impl Handler<OfferAnswer> for Incident {
        type Result = Result<Recorded, Refusal>;

        fn handle(&mut self, msg: OfferAnswer, _: &mut Self::Context) -> Self::Result {
            self.heard.push(match msg.answer {
                Answer::Accept => "accept".into(),
                Answer::Decline { reason } => format!("decline {}", reason.unwrap_or_default()),
                Answer::Gone => "gone".into(),
            });
            if self.refuse {
                return Err(Refusal::Dispatch(DispatchError::UnknownOffer(msg.offer_id)));
            }
            Ok(Recorded::now())
        }
    }

    impl Handler<UnitProgress> for Incident {
        type Result = Result<Recorded, DispatchError>;

        fn handle(&mut self, msg: UnitProgress, _: &mut Self::Context) -> Self::Result {
            self.heard.push(format!("{:?}", msg.progress));
            Ok(Recorded::now())
        }
    }

    impl Handler<UnitAway> for Incident {
        type Result = ();

        fn handle(&mut self, _: UnitAway, _: &mut Self::Context) {
            self.heard.push("away".into());
        }
    }

    impl Handler<Remind> for Incident {
        type Result = ();

        fn handle(&mut self, _: Remind, _: &mut Self::Context) {
            self.heard.push("remind".into());
        }
    }

    impl Handler<Settled> for Incident {
        type Result = MessageResult<Settled>;

        fn handle(&mut self, _: Settled, _: &mut Self::Context) -> Self::Result {
            self.heard.push("settled".into());
            MessageResult(Recorded::now())
        }
    }

    /// The tablet's side of the outbox: offers and updates, as short lines.
    #[derive(Clone, Default)]
    struct Tablet(Heard);

    impl Sink for Tablet {
        fn take(&self, n: Notify) -> bool {
            self.0.push(match n {
                Notify::Offer { .. } => "offer".into(),
                Notify::Unit { update: UnitUpdate::OfferRevoked { reason, .. }, .. } => {
                    format!("revoked {reason:?}")
                }
                Notify::Unit { update, .. } => format!("{update:?}"),
                other => format!("{other:?}"),
            });
            true
        }
    }

    struct Fixture {
        unit: Addr<Unit>,
        router: Heard,
        incident: Heard,
        tablet: Heard,
        link: IncidentLink,
        incident_id: IncidentId,
    }

    fn start(refuse: bool) -> Fixture {
        let (router, incident, tablet) = (Heard::default(), Heard::default(), Heard::default());
        let outbox = Outbox::default().with_sink("test", Tablet(tablet.clone()));
        let to_router = Router(router.clone()).start().recipient();
        let unit = Unit::new(UnitId::parse("u-1").unwrap(), "Alpha 1".into(), to_router, outbox).start();
        let stand_in = Incident { heard: incident.clone(), refuse }.start();
        let link = IncidentLink {
            answer: stand_in.clone().recipient(),
            progress: stand_in.clone().recipient(),
            away: stand_in.clone().recipient(),
            remind: stand_in.clone().recipient(),
            settled: stand_in.recipient(),
        };
        Fixture { unit, router, incident, tablet, link, incident_id: IncidentId::new_random() }
    }

    fn t(secs: i64) -> DateTime<Utc> {
        "2024-05-01T10:00:00Z".parse::<DateTime<Utc>>().unwrap() + chrono::Duration::seconds(secs)
    }

    fn position(secs: i64, north_m: f64) -> Position {
        let point = GeoPoint::new(43.2389, 76.8897).unwrap().offset(north_m, 0.0);
        Position { point, at: t(secs), speed_mps: None, heading_deg: None, received: Received::now() }
    }

    fn status(status: UnitStatus, secs: i64) -> StatusReport {
        StatusReport { status, at: t(secs) }
    }

    fn reply(offer_id: OfferId, accept: bool) -> Reply {
        Reply { offer_id, accept, reason: (!accept).then(|| "too far".into()), received: Received::now() }
    }

    /// Lets what the unit sent with `do_send` arrive (paused time: no real wait).
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    impl Fixture {
        fn offer_unit(&self, offer_id: OfferId) -> OfferUnit {
            let location = GeoPoint::new(43.24, 76.89).unwrap();
            let site = SiteRef {
                id: crate::ids::SiteId::parse("school-1").unwrap(),
                name: "No. 1".into(),
                room: None,
            };
            let offer = OfferOut {
                offer_id,
                incident_id: self.incident_id,
                priority: Priority(1),
                kind: IncidentKind::SchoolAlarm,
                location,
                subject: Subject::Site(site),
                summary: "panic alarm".into(),
                distance_m: 200.0,
                eta_s: Some(23),
                expires_at: Utc::now() + chrono::Duration::seconds(15),
                route: None,
            };
            OfferUnit { offer, incident: self.link.clone() }
        }

        /// Offers the incident to the unit; the offer must be taken.
        async fn offer(&self) -> OfferId {
            let offer_id = OfferId::new_random();
            self.unit.send(self.offer_unit(offer_id)).await.unwrap().expect("offer taken");
            offer_id
        }

        async fn expire(&self, offer_id: OfferId) {
            self.unit.send(RevokeOffer { offer_id, reason: RevokeReason::Expired }).await.unwrap();
        }

        async fn view(&self) -> UnitView {
            self.unit.send(GetUnit).await.unwrap()
        }

        /// A unit with a position, eligible, its first report taken.
        async fn ready(self) -> Self {
            self.unit.send(position(0, 200.0)).await.unwrap();
            settle().await;
            assert_eq!(self.router.take(), ["pos eligible"]);
            self
        }
    }

    #[actix_rt::test]
    async fn a_new_position_is_always_reported_and_eligibility_only_when_it_changes() {
        tokio::time::pause();
        let f = start(false).ready().await;
        for (msg, expect) in [
            (status(UnitStatus::Available, 1), vec![]),
            (status(UnitStatus::Busy, 2), vec!["ineligible"]),
            (status(UnitStatus::OffDuty, 3), vec![]),
        ] {
            f.unit.send(msg).await.unwrap();
            settle().await;
            assert_eq!(f.router.take(), expect);
        }
        f.unit.send(position(4, 300.0)).await.unwrap();
        f.unit.send(status(UnitStatus::Available, 5)).await.unwrap();
        settle().await;
        assert_eq!(f.router.take(), ["pos ineligible", "eligible"]);
    }

    #[actix_rt::test]
    async fn a_unit_off_duty_is_not_eligible_and_refuses_an_offer() {
        tokio::time::pause();
        let f = start(false).ready().await;
        f.unit.send(status(UnitStatus::OffDuty, 1)).await.unwrap();
        assert!(!f.view().await.eligible);
        let refused = f.unit.send(f.offer_unit(OfferId::new_random())).await.unwrap();
        assert_eq!(refused, Err(Refusal::Unavailable));
        assert!(f.tablet.take().is_empty(), "the tablet is offered nothing");
    }

    #[actix_rt::test]
    async fn a_status_or_position_older_than_the_last_changes_nothing() {
        tokio::time::pause();
        let f = start(false).ready().await;
        f.unit.send(status(UnitStatus::Busy, 10)).await.unwrap();
        f.unit.send(status(UnitStatus::Available, 5)).await.unwrap();
        f.unit.send(position(-1, 900.0)).await.unwrap();
        let v = f.view().await;
        assert_eq!(v.status, UnitStatus::Busy);
        assert_eq!(v.position, Some(position(0, 200.0).point), "an older fix does not move it back");
        settle().await;
        assert_eq!(f.router.take(), ["ineligible"]);
    }

    #[actix_rt::test]
    async fn a_unit_holding_an_offer_is_not_eligible_and_refuses_another() {
        tokio::time::pause();
        let f = start(false).ready().await;
        let offer_id = f.offer().await;
        let v = f.view().await;
        assert_eq!((v.offer, v.eligible), (Some(offer_id), false));
        let second = f.unit.send(f.offer_unit(OfferId::new_random())).await.unwrap();
        assert_eq!(second, Err(Refusal::Unavailable));
        settle().await;
        assert_eq!(f.router.take(), ["ineligible"]);
        assert_eq!(f.tablet.take(), ["offer"], "one offer reaches the tablet");
    }

    #[actix_rt::test]
    async fn an_accepted_offer_puts_the_unit_on_the_incident_until_it_clears() {
        tokio::time::pause();
        let f = start(false).ready().await;
        let offer_id = f.offer().await;
        f.unit.send(reply(offer_id, true)).await.unwrap().unwrap();
        let v = f.view().await;
        assert_eq!((v.offer, v.incident, v.eligible), (None, Some(f.incident_id), false));
        let on_scene = ProgressReport {
            incident_id: f.incident_id,
            progress: Progress::OnScene,
            received: Received::now(),
        };
        f.unit.send(on_scene.clone()).await.unwrap().unwrap();
        assert!(!f.view().await.eligible);
        let cleared = ProgressReport { progress: Progress::Cleared, ..on_scene };
        f.unit.send(cleared).await.unwrap().unwrap();
        let v = f.view().await;
        assert_eq!((v.incident, v.eligible), (None, true));
        settle().await;
        assert_eq!(f.incident.take(), ["accept", "OnScene", "Cleared"]);
        assert_eq!(f.router.take(), ["ineligible", "eligible"]);
    }

    #[actix_rt::test]
    async fn a_decline_frees_the_unit_and_the_incident_hears_why() {
        tokio::time::pause();
        let f = start(false).ready().await;
        let offer_id = f.offer().await;
        f.unit.send(reply(offer_id, false)).await.unwrap().unwrap();
        let v = f.view().await;
        assert_eq!((v.offer, v.incident, v.eligible), (None, None, true));
        assert_eq!(f.incident.take(), ["decline too far"]);
    }

    #[actix_rt::test]
    async fn an_accept_the_incident_refuses_leaves_the_unit_free() {
        tokio::time::pause();
        let f = start(true).ready().await;
        let offer_id = f.offer().await;
        let res = f.unit.send(reply(offer_id, true)).await.unwrap();
        assert!(matches!(res, Err(Refusal::Dispatch(_))), "{res:?}");
        let v = f.view().await;
        assert_eq!((v.offer, v.incident, v.eligible), (None, None, true));
    }

    #[actix_rt::test]
    async fn a_reply_to_an_offer_the_unit_does_not_hold_is_refused() {
        tokio::time::pause();
        let f = start(false).ready().await;
        let held = f.offer().await;
        let other = OfferId::new_random();
        let res = f.unit.send(reply(other, true)).await.unwrap();
        assert_eq!(res.unwrap_err(), Refusal::NotYourOffer(other));
        assert_eq!(f.view().await.offer, Some(held), "the offer held stays held");
        settle().await;
        assert!(f.incident.take().is_empty());
    }

    #[actix_rt::test]
    async fn the_same_accept_delivered_again_is_answered_once_the_incident_is_settled() {
        tokio::time::pause();
        let f = start(false).ready().await;
        let offer_id = f.offer().await;
        f.unit.send(reply(offer_id, true)).await.unwrap().unwrap();
        f.unit.send(reply(offer_id, true)).await.unwrap().expect("the accept stands");
        assert_eq!(f.incident.take(), ["accept", "settled"]);
        let decline = f.unit.send(reply(offer_id, false)).await.unwrap();
        assert_eq!(decline.unwrap_err(), Refusal::NotYourOffer(offer_id), "too late to decline");
    }

    #[actix_rt::test]
    async fn offers_missed_in_a_row_take_the_unit_out_until_the_tablet_speaks_again() {
        tokio::time::pause();
        let f = start(false).ready().await;
        for _ in 0..MAX_MISSED_OFFERS {
            assert!(!f.view().await.unresponsive);
            let offer_id = f.offer().await;
            f.expire(offer_id).await;
        }
        let v = f.view().await;
        assert!(v.unresponsive && !v.eligible, "{v:?}");
        settle().await;
        assert_eq!(f.router.take(), ["ineligible", "eligible", "ineligible"], "not put back after the last");
        assert_eq!(f.tablet.take(), ["offer", "revoked Expired", "offer", "revoked Expired"]);
        // Moving, or the tablet reconnecting, is not an officer answering.
        f.unit.send(position(1, 250.0)).await.unwrap();
        f.unit.send(Online(true)).await.unwrap();
        assert!(f.view().await.unresponsive);
        f.unit.send(status(UnitStatus::Available, 2)).await.unwrap();
        let v = f.view().await;
        assert!(!v.unresponsive && v.eligible, "{v:?}");
        settle().await;
        assert_eq!(f.router.take(), ["pos ineligible", "eligible"]);
    }

    #[actix_rt::test]
    async fn a_unit_answering_again_is_back_in_rotation_even_when_what_it_sent_is_refused() {
        tokio::time::pause();
        for stale_status in [true, false] {
            let f = start(false).ready().await;
            f.unit.send(status(UnitStatus::Available, 5)).await.unwrap();
            for _ in 0..MAX_MISSED_OFFERS {
                let offer_id = f.offer().await;
                f.expire(offer_id).await;
            }
            settle().await;
            f.router.take();
            // The officer speaks, but with a status older than the last one, or progress on
            // an incident the unit is not on: refused, yet the tablet is attended.
            if stale_status {
                f.unit.send(status(UnitStatus::Available, 1)).await.unwrap();
            } else {
                let progress = ProgressReport {
                    incident_id: IncidentId::new_random(),
                    progress: Progress::EnRoute,
                    received: Received::now(),
                };
                assert!(f.unit.send(progress).await.unwrap().is_err());
            }
            let v = f.view().await;
            assert!(!v.unresponsive && v.eligible, "{v:?}");
            settle().await;
            assert_eq!(
                f.router.take(),
                ["eligible"],
                "the router was not told (stale status: {stale_status})"
            );
        }
    }

    #[actix_rt::test]
    async fn an_answer_between_missed_offers_starts_the_count_again() {
        tokio::time::pause();
        let f = start(false).ready().await;
        let first = f.offer().await;
        f.expire(first).await;
        let answered = f.offer().await;
        f.unit.send(reply(answered, false)).await.unwrap().unwrap();
        let third = f.offer().await;
        f.expire(third).await;
        let v = f.view().await;
        assert!(!v.unresponsive && v.eligible, "{v:?}");
    }

    #[actix_rt::test]
    async fn only_offers_that_expire_count_as_missed() {
        tokio::time::pause();
        let f = start(false).ready().await;
        for reason in [RevokeReason::Cancelled, RevokeReason::Reassigned, RevokeReason::Closed] {
            let offer_id = f.offer().await;
            f.unit.send(RevokeOffer { offer_id, reason }).await.unwrap();
        }
        let v = f.view().await;
        assert!(!v.unresponsive && v.eligible, "{v:?}");
    }

    #[actix_rt::test]
    async fn a_revoke_of_an_offer_not_held_changes_nothing() {
        tokio::time::pause();
        let f = start(false).ready().await;
        let held = f.offer().await;
        for _ in 0..MAX_MISSED_OFFERS {
            f.expire(OfferId::new_random()).await;
        }
        let v = f.view().await;
        assert_eq!((v.offer, v.unresponsive), (Some(held), false));
        assert_eq!(f.tablet.take(), ["offer"], "the tablet hears of no revoke");
    }

    #[actix_rt::test]
    async fn a_tablet_that_goes_offline_gives_its_offer_back() {
        tokio::time::pause();
        let f = start(false).ready().await;
        f.offer().await;
        f.unit.send(Online(false)).await.unwrap();
        let v = f.view().await;
        assert_eq!((v.offer, v.eligible, v.online), (None, false, Some(false)));
        settle().await;
        assert_eq!(f.incident.take(), ["gone"]);
        // Back online with nothing held: eligible again, and nobody to remind.
        f.unit.send(Online(true)).await.unwrap();
        assert!(f.view().await.eligible);
        settle().await;
        assert!(f.incident.take().is_empty());
        assert_eq!(f.router.take(), ["ineligible", "eligible"]);
    }

    #[actix_rt::test]
    async fn the_incident_hears_when_its_units_tablet_goes_away_and_comes_back() {
        tokio::time::pause();
        let f = start(false).ready().await;
        let offer_id = f.offer().await;
        f.unit.send(Online(true)).await.unwrap();
        settle().await;
        assert_eq!(f.incident.take(), ["remind"], "an offer held is sent again");
        f.unit.send(reply(offer_id, true)).await.unwrap().unwrap();
        f.unit.send(Online(false)).await.unwrap();
        f.unit.send(Online(true)).await.unwrap();
        settle().await;
        assert_eq!(f.incident.take(), ["accept", "away", "remind"]);
        assert_eq!(f.view().await.incident, Some(f.incident_id), "still on it");
    }

    #[actix_rt::test]
    async fn progress_on_an_incident_the_unit_is_not_on_is_refused() {
        tokio::time::pause();
        let f = start(false).ready().await;
        let other = IncidentId::new_random();
        let msg =
            ProgressReport { incident_id: other, progress: Progress::OnScene, received: Received::now() };
        assert_eq!(f.unit.send(msg).await.unwrap().unwrap_err(), Refusal::NotYourIncident(other));
        settle().await;
        assert!(f.incident.take().is_empty());
    }

    #[actix_rt::test]
    async fn an_incident_that_ends_releases_its_unit_and_tells_the_tablet() {
        tokio::time::pause();
        let f = start(false).ready().await;
        let offer_id = f.offer().await;
        f.unit.send(reply(offer_id, true)).await.unwrap().unwrap();
        f.tablet.take();
        let other = IncidentEnded { incident_id: IncidentId::new_random(), cancelled: true };
        f.unit.send(other).await.unwrap();
        assert_eq!(f.view().await.incident, Some(f.incident_id), "another incident's end is not this one's");
        f.unit.send(IncidentEnded { incident_id: f.incident_id, cancelled: true }).await.unwrap();
        let v = f.view().await;
        assert_eq!((v.incident, v.eligible), (None, true));
        assert_eq!(f.tablet.take(), ["Cancelled"]);
    }

    #[actix_rt::test]
    async fn a_restored_status_older_than_the_tablets_latest_is_ignored() {
        tokio::time::pause();
        let f = start(false).ready().await;
        f.unit.send(status(UnitStatus::Available, 10)).await.unwrap();
        f.unit.send(Restore::Status { status: UnitStatus::OffDuty, at: t(5) }).await.unwrap();
        assert_eq!(f.view().await.status, UnitStatus::Available);
        f.unit.send(Restore::Status { status: UnitStatus::OffDuty, at: t(20) }).await.unwrap();
        assert_eq!(f.view().await.status, UnitStatus::OffDuty);
    }
}
