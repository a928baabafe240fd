use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::geo::GeoPoint;
use crate::incident::{IncidentOver, IncidentSpec};
use crate::model::{IncidentKind, ResponsePlan};
use crate::outbound::{Sink, SiteRef};
use crate::router::Router;
use crate::subject::Subject;

/// The acks buttons hear: (alarm, incident, state).
#[derive(Clone, Default)]
struct Acks(Arc<Mutex<Vec<(AlarmId, IncidentId, AckState)>>>);

impl Sink for Acks {
    fn take(&self, n: Notify) -> bool {
        if let Notify::Ack { ack, .. } = n {
            self.0.lock().unwrap().push((ack.alarm_id, ack.incident_id, ack.state));
        }
        true
    }
}

impl Acks {
    fn take(&self) -> Vec<(AlarmId, IncidentId, AckState)> {
        self.0.lock().unwrap().drain(..).collect()
    }
}

/// Stands in for the registry: keeps the alarms it is asked to open and opens a real
/// incident for each (a router with no units: it escalates at once), never joining.
struct Registry {
    asked: Arc<Mutex<Vec<AlarmId>>>,
    router: Addr<Router>,
    outbox: Outbox,
    over: Arc<Mutex<Vec<IncidentId>>>,
}

impl Actor for Registry {
    type Context = Context<Self>;
}

impl Handler<OpenIncident> for Registry {
    type Result = MessageResult<OpenIncident>;

    fn handle(&mut self, msg: OpenIncident, ctx: &mut Self::Context) -> Self::Result {
        self.asked.lock().unwrap().push(msg.raiser.alarm_id);
        let site = SiteRef { id: msg.site, name: "School No. 1".into(), room: msg.raiser.room.clone() };
        let spec = IncidentSpec {
            id: IncidentId::new_random(),
            kind: IncidentKind::SchoolAlarm,
            plan: ResponsePlan::school_alarm_default(),
            location: GeoPoint::new(43.2389, 76.8897).unwrap(),
            subject: Subject::Site(site),
            raiser: Some(msg.raiser),
            sighting: None,
            received: msg.received,
        };
        let incident_id = spec.id;
        let on_end = ctx.address().recipient();
        let addr = Incident::new(spec, self.router.clone(), self.outbox.clone(), on_end).start();
        MessageResult(Opened { incident_id, addr, joined: false })
    }
}

impl Handler<IncidentOver> for Registry {
    type Result = ();

    fn handle(&mut self, msg: IncidentOver, _: &mut Self::Context) {
        self.over.lock().unwrap().push(msg.incident_id);
    }
}

struct Fixture {
    button: Addr<PanicButton>,
    asked: Arc<Mutex<Vec<AlarmId>>>,
    over: Arc<Mutex<Vec<IncidentId>>>,
    acks: Acks,
}

fn start() -> Fixture {
    let acks = Acks::default();
    let outbox = Outbox::default().with_sink("test", acks.clone());
    let (asked, over) = (Arc::default(), Arc::default());
    let router = Router::new(Duration::from_secs(600), Default::default()).start();
    let registry =
        Registry { asked: Arc::clone(&asked), router, outbox: outbox.clone(), over: Arc::clone(&over) };
    let opener = registry.start().recipient();
    let (id, site) = (ButtonId::parse("btn-1").unwrap(), SiteId::parse("school-1").unwrap());
    let button = PanicButton::new(id, site, Some("12".into()), opener, outbox).start();
    Fixture { button, asked, over, acks }
}

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

/// Lets the incidents act on what they were sent (paused time: no real wait).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(10)).await;
}

impl Fixture {
    async fn send(&self, alarm_id: AlarmId, action: AlarmAction) -> Result<AlarmOutcome, Refusal> {
        self.button.send(alarm(alarm_id, action)).await.unwrap()
    }

    /// Raises `alarm_id`, which must open an incident; its first acks are taken.
    async fn raise(&self, alarm_id: AlarmId) -> IncidentId {
        let Ok(AlarmOutcome::Opened(id)) = self.send(alarm_id, AlarmAction::Raise).await else {
            panic!("an incident opened")
        };
        settle().await;
        let acks = self.acks.take();
        assert_eq!(acks.last(), Some(&(alarm_id, id, AckState::Escalated)), "{acks:?}");
        id
    }

    fn asked(&self) -> usize {
        self.asked.lock().unwrap().len()
    }

    async fn remember_ended(&self, alarm_id: AlarmId, incident_id: IncidentId, ended: Option<AckState>) {
        self.button.send(Remember { alarm_id, incident_id, incident: None, ended }).await.unwrap();
    }
}

#[actix_rt::test]
async fn a_redelivered_alarm_is_a_duplicate_opens_nothing_new_and_hears_where_it_stands() {
    tokio::time::pause();
    let f = start();
    let a = AlarmId::new_random();
    let id = f.raise(a).await;
    assert_eq!(f.send(a, AlarmAction::Raise).await, Ok(AlarmOutcome::Duplicate(id)));
    assert_eq!(f.asked(), 1, "the registry is asked once");
    settle().await;
    assert_eq!(f.acks.take(), [(a, id, AckState::Escalated)], "the incident acks it again");
    // Another press is another alarm.
    let b = AlarmId::new_random();
    f.raise(b).await;
    assert_eq!(*f.asked.lock().unwrap(), [a, b]);
}

#[actix_rt::test]
async fn a_redelivered_alarm_whose_incident_is_over_opens_nothing_new_either() {
    tokio::time::pause();
    let f = start();
    let (a, id) = (AlarmId::new_random(), IncidentId::new_random());
    f.remember_ended(a, id, Some(AckState::Cleared)).await;
    assert_eq!(f.send(a, AlarmAction::Raise).await, Ok(AlarmOutcome::Duplicate(id)));
    settle().await;
    assert_eq!(f.asked(), 0);
    assert!(f.acks.take().is_empty());
}

#[actix_rt::test]
async fn only_the_latest_alarms_are_remembered() {
    tokio::time::pause();
    let f = start();
    let alarms: Vec<(AlarmId, IncidentId)> =
        (0..=REMEMBERED_ALARMS).map(|_| (AlarmId::new_random(), IncidentId::new_random())).collect();
    for (a, id) in &alarms {
        f.remember_ended(*a, *id, Some(AckState::Cleared)).await;
    }
    let (newest, newest_id) = alarms[REMEMBERED_ALARMS];
    assert_eq!(f.send(newest, AlarmAction::Raise).await, Ok(AlarmOutcome::Duplicate(newest_id)));
    assert_eq!(f.asked(), 0);
    assert!(matches!(f.send(alarms[0].0, AlarmAction::Raise).await, Ok(AlarmOutcome::Opened(_))));
    assert_eq!(f.asked(), 1, "the oldest is forgotten: its redelivery is a new alarm");
}

#[actix_rt::test]
async fn a_cancel_with_no_alarm_standing_is_refused() {
    tokio::time::pause();
    let f = start();
    let x = AlarmId::new_random();
    assert_eq!(f.send(x, AlarmAction::Cancel).await, Err(Refusal::NothingToCancel(x)));
    // The latest alarm ended: a cancel with a fresh id finds nothing standing either.
    f.remember_ended(AlarmId::new_random(), IncidentId::new_random(), Some(AckState::Cleared)).await;
    let y = AlarmId::new_random();
    assert_eq!(f.send(y, AlarmAction::Cancel).await, Err(Refusal::NothingToCancel(y)));
    assert_eq!(f.asked(), 0);
}

#[actix_rt::test]
async fn a_cancel_naming_the_alarm_cancels_its_incident() {
    tokio::time::pause();
    let f = start();
    let a = AlarmId::new_random();
    let id = f.raise(a).await;
    assert_eq!(f.send(a, AlarmAction::Cancel).await, Ok(AlarmOutcome::Cancelled(id)));
    settle().await;
    assert_eq!(f.acks.take(), [(a, id, AckState::Cancelled)]);
    assert_eq!(*f.over.lock().unwrap(), [id]);
}

#[actix_rt::test]
async fn a_cancel_with_a_fresh_id_cancels_the_latest_alarm() {
    tokio::time::pause();
    let f = start();
    let (a, b) = (AlarmId::new_random(), AlarmId::new_random());
    let first = f.raise(a).await;
    let latest = f.raise(b).await;
    assert_eq!(f.send(AlarmId::new_random(), AlarmAction::Cancel).await, Ok(AlarmOutcome::Cancelled(latest)));
    settle().await;
    assert_eq!(f.acks.take(), [(b, latest, AckState::Cancelled)]);
    assert_eq!(*f.over.lock().unwrap(), [latest], "the first alarm's incident goes on: {first}");
}

#[actix_rt::test]
async fn a_cancel_delivered_again_after_its_incident_ended_is_answered_as_done() {
    tokio::time::pause();
    let f = start();
    let a = AlarmId::new_random();
    let id = f.raise(a).await;
    f.send(a, AlarmAction::Cancel).await.unwrap();
    settle().await;
    f.acks.take();
    f.button.send(AlarmEnded { incident_id: id, state: AckState::Cancelled }).await.unwrap();
    assert_eq!(f.send(a, AlarmAction::Cancel).await, Ok(AlarmOutcome::Cancelled(id)));
    settle().await;
    assert!(f.acks.take().is_empty(), "nothing is cancelled twice");
}

#[actix_rt::test]
async fn a_button_back_online_hears_where_its_open_alarm_stands() {
    tokio::time::pause();
    let f = start();
    let a = AlarmId::new_random();
    let id = f.raise(a).await;
    f.button.send(ButtonOnline(false)).await.unwrap();
    settle().await;
    assert!(f.acks.take().is_empty(), "going offline tells it nothing");
    f.button.send(ButtonOnline(true)).await.unwrap();
    settle().await;
    assert_eq!(f.acks.take(), [(a, id, AckState::Escalated)]);
}

#[actix_rt::test]
async fn a_button_back_online_hears_how_its_latest_alarm_ended() {
    tokio::time::pause();
    let f = start();
    let (old, a) = (AlarmId::new_random(), AlarmId::new_random());
    let (old_id, id) = (IncidentId::new_random(), IncidentId::new_random());
    f.remember_ended(old, old_id, Some(AckState::Cancelled)).await;
    f.button.send(Remember { alarm_id: a, incident_id: id, incident: None, ended: None }).await.unwrap();
    f.button.send(AlarmEnded { incident_id: id, state: AckState::Cleared }).await.unwrap();
    f.button.send(ButtonOnline(true)).await.unwrap();
    assert_eq!(f.acks.take(), [(a, id, AckState::Cleared)], "the latest only, told by the button");
}

#[actix_rt::test]
async fn a_button_back_online_with_nothing_known_to_tell_hears_nothing() {
    tokio::time::pause();
    let f = start();
    f.button.send(ButtonOnline(true)).await.unwrap();
    // Remembered after a restart, its end not known.
    f.remember_ended(AlarmId::new_random(), IncidentId::new_random(), None).await;
    f.button.send(ButtonOnline(true)).await.unwrap();
    settle().await;
    assert!(f.acks.take().is_empty());
}
