//! PanicButton: one school panic button. Deduplicates alarms by alarm_id (a QoS 1
//! redelivery must not make a second incident), opens or joins its site's incident through
//! the registry. Started on a button's first alarm (see `directory`, which keeps its
//! health); a button that comes (back) online hears again where its latest alarm stands.

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
        Self { id, site, room, opener, outbox, recent: VecDeque::new() }
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

/// The button is online again (the directory keeps its health): it hears where its latest
/// alarm stands.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ButtonOnline(pub bool);

impl Handler<ButtonOnline> for PanicButton {
    type Result = ();

    fn handle(&mut self, msg: ButtonOnline, _: &mut Self::Context) {
        if msg.0 {
            self.remind();
        }
    }
}

#[cfg(test)]
mod tests;
