//! PanicButton: one school panic button. Deduplicates alarms by alarm_id (a QoS 1
//! redelivery must not make a second incident), opens or joins its site's incident through
//! the registry, and keeps the button's health (heartbeat, battery, online). A button that
//! comes (back) online hears again where its latest alarm stands.

use std::collections::VecDeque;

use actix::prelude::*;
use chrono::{DateTime, Utc};

use crate::ids::{AlarmId, ButtonId, IncidentId, SiteId};
use crate::incident::{Cancel, Incident, Raiser, Reack};
use crate::model::{AckState, AlarmKind};
use crate::outbound::{ButtonAck, Notify, Outbox, Received};
use crate::refusal::Refusal;

/// Alarm ids remembered per button for deduplication; a button presses rarely, so this
/// spans far longer than any broker redelivery window.
const REMEMBERED_ALARMS: usize = 64;

pub struct PanicButton {
    id: ButtonId,
    site: SiteId,
    room: Option<String>,
    /// Opens or joins the site's incident (the registry).
    opener: Recipient<OpenIncident>,
    outbox: Outbox,
    /// Recent alarms and their incidents, oldest first.
    recent: VecDeque<RecentAlarm>,
    online: Option<bool>,
    battery_pct: Option<f64>,
    last_heartbeat: Option<DateTime<Utc>>,
}

struct RecentAlarm {
    alarm_id: AlarmId,
    incident_id: IncidentId,
    /// The incident's actor while it is open (None: over, or not known since a restart).
    incident: Option<Addr<Incident>>,
    /// How it ended, when it has.
    ended: Option<AckState>,
}

impl PanicButton {
    pub fn new(
        id: ButtonId,
        site: SiteId,
        room: Option<String>,
        opener: Recipient<OpenIncident>,
        outbox: Outbox,
    ) -> Self {
        Self {
            id,
            site,
            room,
            opener,
            outbox,
            recent: VecDeque::with_capacity(REMEMBERED_ALARMS),
            online: None,
            battery_pct: None,
            last_heartbeat: None,
        }
    }

    fn remember(&mut self, alarm: RecentAlarm) {
        if self.recent.len() == REMEMBERED_ALARMS {
            self.recent.pop_front();
        }
        self.recent.push_back(alarm);
    }

    /// Tells the button again where it stands: an open incident of its alarms answers
    /// itself; otherwise the latest alarm's end is told from here.
    fn remind(&self) {
        let open = self
            .recent
            .iter()
            .rev()
            .find_map(|r| r.incident.as_ref().filter(|a| a.connected()).map(|a| (r.alarm_id, a)));
        if let Some((alarm_id, addr)) = open {
            addr.do_send(Reack { alarm_id, button: self.id.clone() });
            return;
        }
        if let Some(last @ RecentAlarm { ended: Some(state), .. }) = self.recent.back() {
            self.outbox.send(Notify::Ack {
                button: self.id.clone(),
                ack: ButtonAck {
                    alarm_id: last.alarm_id,
                    incident_id: last.incident_id,
                    state: *state,
                    eta_s: None,
                },
            });
        }
    }
}

impl Actor for PanicButton {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(64);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmAction {
    Raise,
    Cancel,
}

/// `kuzet/v1/buttons/{id}/alarm`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<AlarmOutcome, Refusal>")]
pub struct Alarm {
    pub alarm_id: AlarmId,
    pub action: AlarmAction,
    pub kind: AlarmKind,
    pub at: DateTime<Utc>,
    pub received: Received,
    /// Over the button's rate limit: acted on all the same, and flagged on the incident it
    /// joins for the dispatcher.
    pub over_limit: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlarmOutcome {
    Opened(IncidentId),
    Joined(IncidentId),
    Duplicate(IncidentId),
    Cancelled(IncidentId),
}

impl Handler<Alarm> for PanicButton {
    type Result = ResponseActFuture<Self, Result<AlarmOutcome, Refusal>>;

    fn handle(&mut self, msg: Alarm, _: &mut Self::Context) -> Self::Result {
        let known = self
            .recent
            .iter()
            .find(|r| r.alarm_id == msg.alarm_id)
            .map(|r| (r.incident_id, r.incident.clone().filter(|a| a.connected())));
        match msg.action {
            AlarmAction::Raise => {
                if let Some((incident_id, addr)) = known {
                    tracing::info!(button_id = %self.id, alarm_id = %msg.alarm_id, %incident_id, "duplicate alarm");
                    if let Some(addr) = addr {
                        addr.do_send(Reack { alarm_id: msg.alarm_id, button: self.id.clone() });
                    }
                    return Box::pin(fut::ready(Ok(AlarmOutcome::Duplicate(incident_id))));
                }
                let open = self.opener.send(OpenIncident {
                    site: self.site.clone(),
                    raiser: Raiser {
                        button: self.id.clone(),
                        alarm_id: msg.alarm_id,
                        room: self.room.clone(),
                        kind: msg.kind,
                        withdrawn: false,
                    },
                    received: msg.received,
                    over_limit: msg.over_limit,
                });
                let alarm_id = msg.alarm_id;
                Box::pin(open.into_actor(self).map(move |res, act, _| {
                    let opened = res.map_err(Refusal::from)?;
                    act.remember(RecentAlarm {
                        alarm_id,
                        incident_id: opened.incident_id,
                        incident: Some(opened.addr),
                        ended: None,
                    });
                    Ok(if opened.joined {
                        AlarmOutcome::Joined(opened.incident_id)
                    } else {
                        AlarmOutcome::Opened(opened.incident_id)
                    })
                }))
            }
            AlarmAction::Cancel => {
                // A cancel of an alarm whose incident is already over is a redelivery: done.
                if let Some((incident_id, None)) = &known {
                    return Box::pin(fut::ready(Ok(AlarmOutcome::Cancelled(*incident_id))));
                }
                // The cancel names the raise it cancels; a button that gives a fresh id
                // cancels its latest alarm.
                let target = self
                    .recent
                    .iter()
                    .rev()
                    .find(|r| known.is_none() || r.alarm_id == msg.alarm_id)
                    .map(|r| (r.alarm_id, r.incident_id, r.incident.clone()));
                let Some((alarm_id, incident_id, Some(addr))) =
                    target.filter(|(_, _, a)| a.as_ref().is_some_and(|a| a.connected()))
                else {
                    return Box::pin(fut::ready(Err(Refusal::NothingToCancel(msg.alarm_id))));
                };
                addr.do_send(Cancel { by: self.id.clone(), alarm_id, received: msg.received });
                Box::pin(fut::ready(Ok(AlarmOutcome::Cancelled(incident_id))))
            }
        }
    }
}

/// A raise from a button at `site`: open an incident there, or join the open one. The
/// button asks; the registry answers.
#[derive(Message)]
#[rtype(result = "Opened")]
pub struct OpenIncident {
    pub site: SiteId,
    pub raiser: Raiser,
    pub received: Received,
    /// Over the button's rate limit (see `Join`).
    pub over_limit: bool,
}

pub struct Opened {
    pub incident_id: IncidentId,
    pub addr: Addr<Incident>,
    pub joined: bool,
}

/// After a restart: an alarm this button sent before it, so that a redelivery is known
/// and the button can be told again where it stands.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Remember {
    pub alarm_id: AlarmId,
    pub incident_id: IncidentId,
    pub incident: Option<Addr<Incident>>,
    /// How its incident ended, when it has.
    pub ended: Option<AckState>,
}

impl Handler<Remember> for PanicButton {
    type Result = ();

    fn handle(&mut self, msg: Remember, _: &mut Self::Context) {
        self.remember(RecentAlarm {
            alarm_id: msg.alarm_id,
            incident_id: msg.incident_id,
            incident: msg.incident,
            ended: msg.ended,
        });
    }
}

/// From the registry: the incident of one of this button's alarms ended.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct AlarmEnded {
    pub incident_id: IncidentId,
    pub state: AckState,
}

impl Handler<AlarmEnded> for PanicButton {
    type Result = ();

    fn handle(&mut self, msg: AlarmEnded, _: &mut Self::Context) {
        for r in self.recent.iter_mut().filter(|r| r.incident_id == msg.incident_id) {
            r.incident = None;
            r.ended = Some(msg.state);
        }
    }
}

/// `kuzet/v1/buttons/{id}/heartbeat`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Heartbeat {
    pub at: DateTime<Utc>,
    pub battery_pct: Option<f64>,
}

impl Handler<Heartbeat> for PanicButton {
    type Result = ();

    fn handle(&mut self, msg: Heartbeat, _: &mut Self::Context) {
        if let Some(b) = msg.battery_pct {
            if b < 20.0 && self.battery_pct.is_none_or(|old| old >= 20.0) {
                tracing::warn!(button_id = %self.id, battery_pct = b, "panic button battery low");
            }
        }
        self.battery_pct = msg.battery_pct.or(self.battery_pct);
        self.last_heartbeat = Some(msg.at);
    }
}

/// `kuzet/v1/buttons/{id}/online`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ButtonOnline(pub bool);

impl Handler<ButtonOnline> for PanicButton {
    type Result = ();

    fn handle(&mut self, msg: ButtonOnline, _: &mut Self::Context) {
        if !msg.0 && self.online != Some(false) {
            tracing::warn!(button_id = %self.id, site_id = %self.site, "panic button offline");
        }
        self.online = Some(msg.0);
        if msg.0 {
            self.remind();
        }
    }
}

#[cfg(test)]
mod tests {
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
        let router = Router::new(Duration::from_secs(600)).start();
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
        assert_eq!(
            f.send(AlarmId::new_random(), AlarmAction::Cancel).await,
            Ok(AlarmOutcome::Cancelled(latest))
        );
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
}
