//! The buttons behind the incident: another raise joining it (and floods of them), a
//! cancel, a redelivered alarm asking again where things stand.

use super::*;

/// Another button's raise at the same site while this incident is open.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Join {
    pub raiser: Raiser,
    pub received: Received,
    /// Over the button's rate limit. Acknowledged as any alarm, but the button's standing
    /// alarm here takes the new id instead of a new line (a flooding button does not grow the
    /// incident), the timeline flags the flood for the dispatcher (`alarm_flood`), and it asks
    /// for no fresh round of units.
    pub over_limit: bool,
}

impl Handler<Join> for Incident {
    type Result = ();

    fn handle(&mut self, msg: Join, ctx: &mut Self::Context) {
        if msg.over_limit {
            self.flood(&msg.raiser.button, msg.received);
        } else {
            let detail = msg.raiser.room.as_ref().map(|r| format!("room {r}"));
            self.record_at(msg.received, "alarm_joined", None, Some(msg.raiser.button.clone()), detail);
        }
        // The new button hears where things stand, not from the start.
        self.ack_one(&msg.raiser, AckState::Received, None);
        if self.last_ack.0 != AckState::Received {
            self.ack_one(&msg.raiser, self.last_ack.0, self.last_ack.1);
        }
        let standing = msg
            .over_limit
            .then(|| self.raised_by.iter().rposition(|r| r.button == msg.raiser.button && !r.withdrawn))
            .flatten();
        match standing {
            Some(i) => self.raised_by[i].alarm_id = msg.raiser.alarm_id,
            None => self.raised_by.push(msg.raiser),
        }
        // Joinable as it is while units are coming or have been on scene only a short while
        // (docs/mqtt.md, the alarm); otherwise the new alarm gets units of its own.
        let working: Vec<UnitId> = self
            .dispatch
            .assigned()
            .iter()
            .filter(|a| a.progress != Progress::Cleared)
            .map(|a| a.unit.clone())
            .collect();
        let gone: Vec<UnitId> = working.iter().filter(|u| self.away.contains(*u)).cloned().collect();
        let on_scene_since = self.timeline.iter().find(|e| e.event == "on_scene").map(|e| e.at);
        // A flood is one alarm said many times: each press must not add a round of units.
        let stale = !msg.over_limit
            && self.dispatch.state() == IncidentState::OnScene
            && on_scene_since.is_some_and(|at| {
                (Utc::now() - at).to_std().unwrap_or_default() > self.dispatch.plan().on_scene_joinable
            });
        if !gone.is_empty() || stale {
            let detail = match (gone.is_empty(), stale) {
                (false, _) => {
                    format!("units gone: {}", gone.iter().map(|u| u.as_str()).collect::<Vec<_>>().join(", "))
                }
                _ => "on scene too long for a new alarm to join".to_owned(),
            };
            self.record("redispatch", None, Some(detail));
            let fx = self.dispatch.rejoin(&gone, stale);
            self.apply(fx, ctx);
            return;
        }
        self.publish(ctx);
    }
}

impl Incident {
    /// Counts an alarm over its button's rate limit. The timeline says so at the first, the
    /// 10th, the 100th, ...: the dispatcher sees a flood and how big it is without it
    /// drowning the timeline (which is only ever appended to).
    pub(super) fn flood(&mut self, button: &ButtonId, received: Received) {
        let n = match self.flooded.get_mut(button) {
            Some(n) => {
                *n = n.saturating_add(1);
                *n
            }
            None => {
                self.flooded.insert(button.clone(), 1);
                1
            }
        };
        if is_power_of_ten(n) {
            self.record_at(received, FLOOD_EVENT, None, Some(button.clone()), Some(flood_note(n)));
        }
    }
}

/// The timeline event that flags a button's alarm flood.
pub const FLOOD_EVENT: &str = "alarm_flood";

/// Starts with the count: a restored incident reads it back (`flood_counts`).
pub(super) fn flood_note(n: u32) -> String {
    if n == 1 {
        "1 alarm over this button's rate limit; each one is acknowledged and joins this incident".to_owned()
    } else {
        format!("{n} alarms over this button's rate limit so far")
    }
}

pub(super) fn is_power_of_ten(mut n: u32) -> bool {
    while n >= 10 && n.is_multiple_of(10) {
        n /= 10;
    }
    n == 1
}

/// The flood counts a restored incident's timeline shows (the latest note per button).
pub(super) fn flood_counts(timeline: &[TimelineEntry]) -> HashMap<ButtonId, u32> {
    let mut out = HashMap::new();
    for e in timeline.iter().filter(|e| e.event == FLOOD_EVENT) {
        let (Some(b), Some(d)) = (&e.button, &e.detail) else { continue };
        let n = d.split(' ').next().and_then(|w| w.parse().ok()).unwrap_or(1);
        out.insert(b.clone(), n);
    }
    out
}

/// A button withdraws its alarm. The incident is cancelled when no alarm stands any more:
/// a mistaken press in one room does not stand down help for another room.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Cancel {
    pub by: ButtonId,
    pub alarm_id: AlarmId,
    pub received: Received,
}

impl Handler<Cancel> for Incident {
    type Result = ();

    fn handle(&mut self, msg: Cancel, ctx: &mut Self::Context) {
        let others_stand = self.raised_by.iter().any(|r| !r.withdrawn && r.button != msg.by);
        if !others_stand {
            // The last alarm standing: the incident is cancelled, and its buttons (this one's
            // alarms, still standing) hear it through the cancel's ack.
            self.record_at(msg.received, "cancel_requested", None, Some(msg.by), None);
            let fx = self.dispatch.cancel();
            self.apply(fx, ctx);
            return;
        }
        let mut withdrawn = Vec::new();
        for r in self.raised_by.iter_mut().filter(|r| r.button == msg.by && !r.withdrawn) {
            r.withdrawn = true;
            withdrawn.push(r.clone());
        }
        if withdrawn.is_empty() {
            // A repeated cancel: answer it again, nothing else changes.
            if let Some(r) = self.raised_by.iter().rev().find(|r| r.button == msg.by).cloned() {
                self.ack_one(&r, AckState::Cancelled, None);
                self.publish(ctx);
            }
            return;
        }
        self.record_at(msg.received, "alarm_withdrawn", None, Some(msg.by), None);
        for r in &withdrawn {
            self.ack_one(r, AckState::Cancelled, None);
        }
        self.publish(ctx);
    }
}

/// Re-sends the latest ack for one alarm (a redelivered alarm: the button may have missed it).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Reack {
    pub button: ButtonId,
    pub alarm_id: AlarmId,
}

impl Handler<Reack> for Incident {
    type Result = ();

    fn handle(&mut self, msg: Reack, ctx: &mut Self::Context) {
        let found = self.raised_by.iter().find(|r| r.button == msg.button && r.alarm_id == msg.alarm_id);
        // An alarm over the rate limit lives on in its button's standing line (see `Join`).
        let merged = || {
            let r = self.raised_by.iter().rev().find(|r| r.button == msg.button)?;
            self.flooded.contains_key(&msg.button).then(|| Raiser { alarm_id: msg.alarm_id, ..r.clone() })
        };
        let Some(r) = found.cloned().or_else(merged) else {
            return;
        };
        if r.withdrawn {
            self.ack_one(&r, AckState::Cancelled, None);
        } else {
            self.ack_one(&r, self.last_ack.0, self.last_ack.1);
        }
        self.publish(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_noted_at_powers_of_ten_and_read_back_after_a_restart() {
        let noted: Vec<u32> = (1..=2000).filter(|n| is_power_of_ten(*n)).collect();
        assert_eq!(noted, [1, 10, 100, 1000]);
        let entry = |button: &str, n: u32| TimelineEntry {
            at: Utc::now(),
            t_us: 0,
            event: FLOOD_EVENT.into(),
            unit: None,
            button: Some(ButtonId::parse(button).unwrap()),
            detail: Some(flood_note(n)),
        };
        let timeline = [entry("btn-a", 1), entry("btn-b", 1), entry("btn-a", 10)];
        let counts = flood_counts(&timeline);
        assert_eq!(counts.get(&ButtonId::parse("btn-a").unwrap()), Some(&10));
        assert_eq!(counts.get(&ButtonId::parse("btn-b").unwrap()), Some(&1));
    }
}
