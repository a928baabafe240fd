//! The actors without any broker, on paused time: offer timeouts move the incident on
//! after exactly the plan's timeout, and an incident nobody takes is escalated.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;
use kuzet_actors::button::{Alarm, AlarmAction, AlarmOutcome};
use kuzet_actors::directory::Directory;
use kuzet_actors::dispatch::{EscalationReason, RevokeReason};
use kuzet_actors::fleet::{Fleet, Position};
use kuzet_actors::geo::GeoPoint;
use kuzet_actors::ids::{AlarmId, ButtonId, SiteId, UnitId};
use kuzet_actors::model::UnitStatus;
use kuzet_actors::model::{AckState, AlarmKind, IncidentKind, ResponsePlan};
use kuzet_actors::outbound::{
    ActorSink, IncidentRecord, Journal, Notify, Outbox, Received, UnitUpdate, Waiter,
};
use kuzet_actors::registry::{Registry, RegistryConfig};
use kuzet_actors::router::{AvailableCount, Router};
use kuzet_actors::spec::{ButtonSpec, Devices, SiteKind, SiteSpec, UnitSpec};
use kuzet_actors::unit::{GetUnit, Reply, StatusReport};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Stands in for the MQTT gateway: hands every notification to the test.
struct Collector(mpsc::UnboundedSender<Notify>);

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<Notify> for Collector {
    type Result = ();

    fn handle(&mut self, msg: Notify, _: &mut Self::Context) {
        let _ = self.0.send(msg);
    }
}

fn devices(school: GeoPoint) -> Devices {
    Devices {
        sites: vec![SiteSpec {
            id: SiteId::parse("school-1").unwrap(),
            name: "School No. 1".into(),
            kind: SiteKind::School,
            location: school,
            buttons: vec![ButtonSpec { id: ButtonId::parse("btn").unwrap(), room: None, password: None }],
        }],
        units: ["near", "far"]
            .iter()
            .map(|id| UnitSpec { id: UnitId::parse(id).unwrap(), callsign: id.to_string(), password: None })
            .collect(),
        cameras: Vec::new(),
    }
}

/// A button's alarm, received now.
fn alarm(alarm_id: AlarmId, action: AlarmAction) -> Alarm {
    Alarm {
        alarm_id,
        action,
        kind: AlarmKind::Intruder,
        at: Utc::now(),
        received: Received::now(),
        over_limit: false,
    }
}

/// The next notification that is not a snapshot (open or final).
async fn next(rx: &mut mpsc::UnboundedReceiver<Notify>) -> Notify {
    loop {
        match rx.recv().await.expect("collector alive") {
            Notify::Snapshot(_) | Notify::Closed(_) | Notify::Live(_) => continue,
            n => return n,
        }
    }
}

/// The actors of a one-school city with units "near" (200 m) and "far" (900 m) reporting
/// positions, a one-unit plan with a 15 s offer timeout, and the notifications they send.
struct City {
    router: Addr<Router>,
    directory: Directory,
    rx: mpsc::UnboundedReceiver<Notify>,
}

async fn start_city() -> City {
    start_city_with(None).await
}

/// The same city recording to `journal`.
async fn start_city_with(journal: Option<Arc<dyn Journal>>) -> City {
    let school = GeoPoint::new(43.2389, 76.8897).unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let mut outbox = Outbox::default().with_sink("test", ActorSink::all(Collector(tx).start().recipient()));
    if let Some(j) = journal {
        outbox = outbox.with_journal(j);
    }
    let fleet = Fleet::default();
    let router = Router::new(Duration::from_secs(600), fleet.clone()).start();
    let plan = ResponsePlan {
        units_required: 1,
        offer_timeout: Duration::from_secs(15),
        ..ResponsePlan::school_alarm_default()
    };
    let registry = Registry::new(
        devices(school),
        RegistryConfig {
            plans: HashMap::from([(IncidentKind::SchoolAlarm, plan)]),
            fleet: fleet.clone(),
            ..Default::default()
        },
        router.clone(),
        outbox,
    );
    let directory = registry.directory();
    registry.start();
    tokio::task::yield_now().await;
    for (id, north) in [("near", 200.0), ("far", 900.0)] {
        assert!(directory.unit(id).is_some(), "unit actor");
        fleet.report(
            id,
            Position {
                point: school.offset(north, 0.0),
                at: Utc::now(),
                speed_mps: None,
                heading_deg: None,
                received: Received::now(),
            },
        );
    }
    while router.send(AvailableCount).await.unwrap() < 2 {
        tokio::task::yield_now().await;
    }
    City { router, directory, rx }
}

#[actix_rt::test]
async fn timeouts_move_the_offer_on_and_then_escalate() {
    tokio::time::pause();
    let City { router, directory, mut rx, .. } = start_city().await;

    let start = Instant::now();
    let button = directory.button("btn").unwrap();
    let outcome = button.send(alarm(AlarmId::new_random(), AlarmAction::Raise)).await.unwrap().unwrap();
    assert!(matches!(outcome, AlarmOutcome::Opened(_)));

    assert!(matches!(next(&mut rx).await, Notify::Ack { ack, .. } if ack.state == AckState::Received));
    let Notify::Offer { unit, .. } = next(&mut rx).await else { panic!("first offer expected") };
    assert_eq!(unit.as_str(), "near");

    // Nobody answers: after exactly the plan's timeout the offer is revoked and moves on.
    let Notify::Unit { unit, update: UnitUpdate::OfferRevoked { reason, .. }, .. } = next(&mut rx).await
    else {
        panic!("revoke expected")
    };
    assert_eq!((unit.as_str(), reason), ("near", RevokeReason::Expired));
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(15) && waited < Duration::from_millis(15_100), "{waited:?}");
    let Notify::Offer { unit, .. } = next(&mut rx).await else { panic!("second offer expected") };
    assert_eq!(unit.as_str(), "far");

    // The second offer expires too; nobody is left, so dispatchers get it.
    assert!(matches!(next(&mut rx).await, Notify::Unit { .. }));
    assert!(matches!(next(&mut rx).await, Notify::Ack { ack, .. } if ack.state == AckState::Escalated));
    let Notify::Escalation { reason, snapshot, .. } = next(&mut rx).await else {
        panic!("escalation expected")
    };
    assert_eq!(reason, EscalationReason::NoUnitsLeft);
    assert!(start.elapsed() >= Duration::from_secs(30));
    assert_eq!(snapshot.timeline.iter().filter(|e| e.event == "offer_timed_out").count(), 2);
    // Both units are free again once their offers expired.
    assert_eq!(router.send(AvailableCount).await.unwrap(), 2);
}

#[actix_rt::test]
async fn a_tablet_that_lets_offers_expire_twice_is_taken_out_until_it_answers() {
    tokio::time::pause();
    let City { router, directory, mut rx, .. } = start_city().await;
    let near = directory.unit("near").unwrap();
    let far = directory.unit("far").unwrap();
    let button = directory.button("btn").unwrap();

    // Two alarms in turn: each time "near" lets the offer expire and "far" takes it.
    for round in 1..=2u8 {
        let alarm_id = AlarmId::new_random();
        button.send(alarm(alarm_id, AlarmAction::Raise)).await.unwrap().unwrap();
        let offer_to = |n: Notify| match n {
            Notify::Offer { unit, offer } => (unit.to_string(), offer.offer_id),
            other => panic!("offer expected, got {other:?}"),
        };
        assert!(matches!(next(&mut rx).await, Notify::Ack { .. }));
        assert_eq!(offer_to(next(&mut rx).await).0, "near", "round {round}");
        assert!(matches!(next(&mut rx).await, Notify::Unit { .. }), "near's offer expires");
        let (unit, offer_id) = offer_to(next(&mut rx).await);
        assert_eq!(unit, "far");
        let reply = Reply { offer_id, accept: true, reason: None, received: Received::now() };
        far.send(reply).await.unwrap().unwrap();
        assert!(matches!(next(&mut rx).await, Notify::Ack { ack, .. } if ack.state == AckState::Dispatched));
        button.send(alarm(alarm_id, AlarmAction::Cancel)).await.unwrap().unwrap();
        assert!(matches!(next(&mut rx).await, Notify::Ack { ack, .. } if ack.state == AckState::Cancelled));
        assert!(matches!(next(&mut rx).await, Notify::Unit { .. }), "far stands down");
    }
    let view = near.send(GetUnit).await.unwrap();
    assert!(view.unresponsive && !view.eligible, "{view:?}");
    tokio::task::yield_now().await;
    assert_eq!(router.send(AvailableCount).await.unwrap(), 1, "only far is offered work now");

    // The officer touches the tablet: near is back in the rotation.
    near.send(StatusReport { status: UnitStatus::Available, at: chrono::Utc::now() }).await.unwrap();
    let view = near.send(GetUnit).await.unwrap();
    assert!(!view.unresponsive && view.eligible, "{view:?}");
    while router.send(AvailableCount).await.unwrap() < 2 {
        tokio::task::yield_now().await;
    }
}

/// A record that holds every incident change until the test lets it through: a slow database.
#[derive(Clone, Default)]
struct SlowRecord(Arc<Mutex<Vec<IncidentRecord>>>);

impl Journal for SlowRecord {
    fn incident(&self, record: IncidentRecord) -> Result<(), Vec<Waiter>> {
        self.0.lock().unwrap().push(record);
        Ok(())
    }
}

impl SlowRecord {
    /// Everything held so far is recorded.
    fn release(&self) {
        for r in self.0.lock().unwrap().drain(..) {
            for w in r.waiters {
                let _ = w.send(());
            }
        }
    }
}

/// Every notification that arrives while the actors settle (paused time: no real wait).
async fn drain(rx: &mut mpsc::UnboundedReceiver<Notify>) -> Vec<Notify> {
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut out = Vec::new();
    while let Ok(n) = rx.try_recv() {
        out.push(n);
    }
    out
}

#[actix_rt::test]
async fn consoles_see_a_new_incident_and_each_change_at_once_devices_once_it_is_recorded() {
    tokio::time::pause();
    let record = SlowRecord::default();
    let City { directory, mut rx, .. } = start_city_with(Some(Arc::new(record.clone()))).await;
    let raise = alarm(AlarmId::new_random(), AlarmAction::Raise);
    directory.button("btn").unwrap().send(raise).await.unwrap().unwrap();

    // Nothing recorded yet: the tablet has its offer (it is not held), the consoles the
    // incident's first state and the offer made; the button's ack and the devices' snapshot wait.
    let seen = drain(&mut rx).await;
    let live: Vec<_> =
        seen.iter().filter_map(|n| if let Notify::Live(s) = n { Some(s.clone()) } else { None }).collect();
    let offer_id = seen
        .iter()
        .find_map(|n| match n {
            Notify::Offer { unit, offer } if unit.as_str() == "near" => Some(offer.offer_id),
            _ => None,
        })
        .unwrap_or_else(|| panic!("an offer to near: {seen:?}"));
    assert!(!seen.iter().any(|n| matches!(n, Notify::Ack { .. } | Notify::Snapshot(_))), "{seen:?}");
    assert!(live.len() >= 2, "the first state and the offer, each at once: {live:?}");
    assert!(live[0].offers.is_empty(), "the first state comes before any offer");
    let last = live.last().unwrap();
    assert_eq!(last.offers.iter().map(|o| o.unit.as_str()).collect::<Vec<_>>(), ["near"]);

    // The record catches up: the ack and the snapshot go out; nothing changed for a
    // dispatcher, so the consoles are not told again.
    record.release();
    let seen = drain(&mut rx).await;
    assert!(
        seen.iter().any(|n| matches!(n, Notify::Ack { ack, .. } if ack.state == AckState::Received)),
        "{seen:?}"
    );
    assert!(seen.iter().any(|n| matches!(n, Notify::Snapshot(_))), "{seen:?}");
    assert!(!seen.iter().any(|n| matches!(n, Notify::Live(_))), "{seen:?}");

    // The unit accepts: the consoles see it at once; the button hears "dispatched" once recorded.
    let reply = Reply { offer_id, accept: true, reason: None, received: Received::now() };
    let _acked_once_recorded = directory.unit("near").unwrap().send(reply).await.unwrap().unwrap();
    let seen = drain(&mut rx).await;
    let on_it = seen.iter().find_map(|n| match n {
        Notify::Live(s) if !s.units.is_empty() => {
            Some(s.units.iter().map(|a| a.unit.to_string()).collect::<Vec<_>>())
        }
        _ => None,
    });
    assert_eq!(on_it, Some(vec!["near".to_owned()]), "{seen:?}");
    assert!(!seen.iter().any(|n| matches!(n, Notify::Ack { .. })), "{seen:?}");
    record.release();
    let seen = drain(&mut rx).await;
    assert!(
        seen.iter().any(|n| matches!(n, Notify::Ack { ack, .. } if ack.state == AckState::Dispatched)),
        "{seen:?}"
    );
}
