//! PanicButton: one school panic button. Deduplicates alarms by alarm_id (a QoS 1
//! redelivery must not make a second incident), opens or joins its site's incident through
//! the registry, and keeps the button's health (heartbeat, battery, online).

use std::collections::VecDeque;

use actix::prelude::*;
use chrono::{DateTime, Utc};

use crate::ids::{AlarmId, ButtonId, IncidentId, SiteId};
use crate::incident::{Cancel, Incident, Raiser, Reack};
use crate::model::AlarmKind;
use crate::outbound::Received;
use crate::refusal::Refusal;
use crate::registry::{OpenIncident, Registry};

/// Alarm ids remembered per button for deduplication; a button presses rarely, so this
/// spans far longer than any broker redelivery window.
const REMEMBERED_ALARMS: usize = 64;

pub struct PanicButton {
    id: ButtonId,
    site: SiteId,
    room: Option<String>,
    registry: Addr<Registry>,
    /// Recent alarms and their incidents (None: over, or not known since a restart).
    recent: VecDeque<(AlarmId, IncidentId, Option<Addr<Incident>>)>,
    online: Option<bool>,
    battery_pct: Option<f64>,
    last_heartbeat: Option<DateTime<Utc>>,
}

impl PanicButton {
    pub fn new(id: ButtonId, site: SiteId, room: Option<String>, registry: Addr<Registry>) -> Self {
        Self {
            id,
            site,
            room,
            registry,
            recent: VecDeque::with_capacity(REMEMBERED_ALARMS),
            online: None,
            battery_pct: None,
            last_heartbeat: None,
        }
    }

    fn remember(&mut self, alarm_id: AlarmId, incident_id: IncidentId, addr: Option<Addr<Incident>>) {
        if self.recent.len() == REMEMBERED_ALARMS {
            self.recent.pop_front();
        }
        self.recent.push_back((alarm_id, incident_id, addr));
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
            .find(|(a, _, _)| *a == msg.alarm_id)
            .map(|(_, i, addr)| (*i, addr.clone().filter(|a| a.connected())));
        match msg.action {
            AlarmAction::Raise => {
                if let Some((incident_id, addr)) = known {
                    tracing::info!(button_id = %self.id, alarm_id = %msg.alarm_id, %incident_id, "duplicate alarm");
                    if let Some(addr) = addr {
                        addr.do_send(Reack { alarm_id: msg.alarm_id, button: self.id.clone() });
                    }
                    return Box::pin(fut::ready(Ok(AlarmOutcome::Duplicate(incident_id))));
                }
                let open = self.registry.send(OpenIncident {
                    site: self.site.clone(),
                    raiser: Raiser {
                        button: self.id.clone(),
                        alarm_id: msg.alarm_id,
                        room: self.room.clone(),
                        kind: msg.kind,
                        withdrawn: false,
                    },
                    received: msg.received,
                });
                let alarm_id = msg.alarm_id;
                Box::pin(open.into_actor(self).map(move |res, act, _| {
                    let opened = res.map_err(Refusal::from)?;
                    act.remember(alarm_id, opened.incident_id, Some(opened.addr));
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
                    .find(|(a, _, _)| known.is_none() || *a == msg.alarm_id)
                    .map(|(a, i, addr)| (*a, *i, addr.clone()));
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

/// After a restart: an alarm this button sent before it, so that a redelivery is known.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Remember {
    pub alarm_id: AlarmId,
    pub incident_id: IncidentId,
    pub incident: Option<Addr<Incident>>,
}

impl Handler<Remember> for PanicButton {
    type Result = ();

    fn handle(&mut self, msg: Remember, _: &mut Self::Context) {
        self.remember(msg.alarm_id, msg.incident_id, msg.incident);
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
    }
}
