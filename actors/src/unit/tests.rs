use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::geo::GeoPoint;
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

/// Stands in for the router: "eligible" or "ineligible" per report.
struct Router(Heard);

impl Actor for Router {
    type Context = Context<Self>;
}

impl Handler<UnitState> for Router {
    type Result = ();

    fn handle(&mut self, msg: UnitState, _: &mut Self::Context) {
        self.0.push((if msg.eligible { "eligible" } else { "ineligible" }).to_owned());
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
        let site =
            SiteRef { id: crate::ids::SiteId::parse("school-1").unwrap(), name: "No. 1".into(), room: None };
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

    /// A unit that has told the router it is eligible (as it does once started), that
    /// report taken.
    async fn ready(self) -> Self {
        settle().await;
        assert_eq!(self.router.take(), ["eligible"]);
        self
    }
}

#[actix_rt::test]
async fn eligibility_is_reported_when_it_changes_and_only_then() {
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
    f.unit.send(status(UnitStatus::Available, 5)).await.unwrap();
    settle().await;
    assert_eq!(f.router.take(), ["eligible"]);
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
async fn a_status_older_than_the_last_changes_nothing() {
    tokio::time::pause();
    let f = start(false).ready().await;
    f.unit.send(status(UnitStatus::Busy, 10)).await.unwrap();
    f.unit.send(status(UnitStatus::Available, 5)).await.unwrap();
    let v = f.view().await;
    assert_eq!(v.status, UnitStatus::Busy);
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
    let on_scene =
        ProgressReport { incident_id: f.incident_id, progress: Progress::OnScene, received: Received::now() };
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
    // The tablet reconnecting is not an officer answering.
    f.unit.send(Online(true)).await.unwrap();
    assert!(f.view().await.unresponsive);
    f.unit.send(status(UnitStatus::Available, 2)).await.unwrap();
    let v = f.view().await;
    assert!(!v.unresponsive && v.eligible, "{v:?}");
    settle().await;
    assert_eq!(f.router.take(), ["eligible"]);
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
        assert_eq!(f.router.take(), ["eligible"], "the router was not told (stale status: {stale_status})");
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
    let msg = ProgressReport { incident_id: other, progress: Progress::OnScene, received: Received::now() };
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
