//! Router: picks the units to offer an incident to. It owns the nearest-unit index, fed by
//! the Unit actors when a unit's eligibility changes and by the fleet with where units are.
//!
//! Mailbox: only what changes dispatch. `UnitState` arrives by `do_send` from Unit actors
//! (a few per incident) and costs O(log n); `FindUnits` comes from incidents by
//! `send().await`. Positions never queue here: the router takes the fleet's newest fixes
//! itself, before each search and every `TAKE_EVERY` between searches, so a search waits
//! for at most the fixes of the last few milliseconds (one per unit at most), never behind a
//! queue of them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::dispatch::Candidate;
use crate::fleet::{Fleet, Position};
use crate::geo::GeoPoint;
use crate::ids::UnitId;
use crate::index::{Nearest, UnitIndex};
use crate::model::straight_line_eta_s;
use crate::travel::{Leg, TravelTimes};
use crate::unit::{Unit, UnitState};

/// How often the router takes the fleet's fixes between searches: keeps the work a search
/// does first small (a millisecond of fixes, ~20 at 20,000 a second). Every 5 ms, the alarm
/// path's median inside kuzet was 0.3-0.4 ms at 20,000 recorded positions a second; every
/// millisecond, 0.19 ms (BENCHMARKS.md).
const TAKE_EVERY: Duration = Duration::from_millis(1);

pub struct Router {
    index: UnitIndex,
    units: HashMap<UnitId, Addr<Unit>>,
    max_age: Duration,
    travel: Option<Arc<dyn TravelTimes>>,
    shortlist: usize,
    fleet: Fleet,
    /// Reused for every take.
    taken: Vec<(UnitId, Position)>,
}

impl Router {
    /// A router that ranks by straight-line distance the units `fleet` locates.
    pub fn new(max_age: Duration, fleet: Fleet) -> Self {
        Self {
            index: UnitIndex::new(),
            units: HashMap::new(),
            max_age,
            travel: None,
            shortlist: 0,
            fleet,
            taken: Vec::new(),
        }
    }

    /// Brings the index up to the fleet's newest fixes.
    fn take_fixes(&mut self) {
        self.fleet.take(&mut self.taken);
        for (unit, p) in self.taken.drain(..) {
            self.index.update_position(&unit, p.point, p.received.instant.into_std());
        }
    }

    /// Ranks the `shortlist` nearest units by straight line again by drive time.
    pub fn with_travel(mut self, travel: Arc<dyn TravelTimes>, shortlist: usize) -> Self {
        self.travel = Some(travel);
        self.shortlist = shortlist;
        self
    }
}

impl Router {
    /// A unit found near `n`, with its drive leg when ranked by road.
    fn found(&self, n: Nearest, leg: Option<Leg>) -> Option<Found> {
        let addr = self.units.get(&n.unit)?.clone();
        let candidate = match &leg {
            Some(l) => Candidate { unit: n.unit, distance_m: l.distance_m, eta_s: l.time_s.round() as u32 },
            None => {
                Candidate { eta_s: straight_line_eta_s(n.distance_m), unit: n.unit, distance_m: n.distance_m }
            }
        };
        Some(Found { candidate, addr, route: leg.map(|l| Arc::new(l.route)) })
    }
}

impl Actor for Router {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
        ctx.run_interval(TAKE_EVERY, |act, _| act.take_fixes());
        let every = (self.max_age / 2).max(Duration::from_secs(1));
        ctx.run_interval(every, |act, _| {
            let now = tokio::time::Instant::now().into_std();
            let evicted = act.index.evict_stale(act.max_age, now);
            if evicted > 0 {
                tracing::debug!(evicted, "stale units left the index");
            }
        });
    }
}

/// A unit's actor, so candidates can be offered work directly.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RegisterUnit {
    pub unit: UnitId,
    pub addr: Addr<Unit>,
}

impl Handler<RegisterUnit> for Router {
    type Result = ();

    fn handle(&mut self, msg: RegisterUnit, _: &mut Self::Context) {
        self.units.insert(msg.unit, msg.addr);
    }
}

impl Handler<UnitState> for Router {
    type Result = ();

    fn handle(&mut self, msg: UnitState, _: &mut Self::Context) {
        self.index.set_eligible(&msg.unit, msg.eligible);
    }
}

/// Up to `count` available units with a fresh position nearest to `to`, skipping `exclude`.
#[derive(Message)]
#[rtype(result = "Vec<Found>")]
pub struct FindUnits {
    pub to: GeoPoint,
    pub count: usize,
    pub exclude: Vec<UnitId>,
}

pub struct Found {
    pub candidate: Candidate,
    pub addr: Addr<Unit>,
    /// The road route from the unit to the incident, when ranked by drive time.
    pub route: Option<Arc<Vec<GeoPoint>>>,
}

/// Orders a straight-line shortlist by drive time; units that cannot be routed keep their
/// straight-line order after those that can. An incident off the network keeps the
/// straight-line order entirely, and says why.
fn rank_by_road(travel: &dyn TravelTimes, near: Vec<Nearest>, to: GeoPoint) -> Vec<(Nearest, Option<Leg>)> {
    let points: Vec<GeoPoint> = near.iter().map(|n| n.point).collect();
    match travel.legs(&points, to) {
        Ok(legs) => {
            let mut ranked: Vec<(Nearest, Option<Leg>)> = near.into_iter().zip(legs).collect();
            ranked.sort_by(|a, b| {
                let t = |x: &(Nearest, Option<Leg>)| x.1.as_ref().map_or(f64::INFINITY, |l| l.time_s);
                t(a).total_cmp(&t(b))
            });
            ranked
        }
        Err(e) => {
            tracing::warn!(reason = %e, lat = to.lat(), lon = to.lon(), "ranking this incident by straight-line distance");
            near.into_iter().map(|n| (n, None)).collect()
        }
    }
}

impl Handler<FindUnits> for Router {
    type Result = MessageResult<FindUnits>;

    fn handle(&mut self, msg: FindUnits, _: &mut Self::Context) -> Self::Result {
        self.take_fixes();
        let now = tokio::time::Instant::now().into_std();
        let k = if self.travel.is_some() { self.shortlist.max(msg.count) } else { msg.count };
        let near = self.index.nearest(&msg.to, k, &msg.exclude, self.max_age, now);
        let ranked = match &self.travel {
            Some(t) if !near.is_empty() => rank_by_road(t.as_ref(), near, msg.to),
            _ => near.into_iter().map(|n| (n, None)).collect(),
        };
        let found = ranked.into_iter().take(msg.count).filter_map(|(n, leg)| self.found(n, leg)).collect();
        MessageResult(found)
    }
}

/// One unit a dispatcher chose: found only when it is available with a recent position.
#[derive(Message)]
#[rtype(result = "Option<Found>")]
pub struct FindUnit {
    pub unit: UnitId,
    pub to: GeoPoint,
}

impl Handler<FindUnit> for Router {
    type Result = MessageResult<FindUnit>;

    fn handle(&mut self, msg: FindUnit, _: &mut Self::Context) -> Self::Result {
        self.take_fixes();
        let now = tokio::time::Instant::now().into_std();
        let found = self.index.locate(&msg.unit, &msg.to, self.max_age, now).and_then(|n| {
            let leg = match &self.travel {
                Some(t) => rank_by_road(t.as_ref(), vec![n.clone()], msg.to).pop().and_then(|(_, l)| l),
                None => None,
            };
            self.found(n, leg)
        });
        MessageResult(found)
    }
}

/// How many units may be offered work right now (for status lines and tests).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct AvailableCount;

impl Handler<AvailableCount> for Router {
    type Result = usize;

    fn handle(&mut self, _: AvailableCount, _: &mut Self::Context) -> usize {
        self.take_fixes();
        self.index.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drive time = seconds per metre of straight line, set per unit: a stand-in network.
    struct Slowness(HashMap<&'static str, Option<f64>>);

    impl TravelTimes for Slowness {
        fn legs(
            &self,
            from: &[GeoPoint],
            to: GeoPoint,
        ) -> Result<Vec<Option<Leg>>, crate::travel::NotRoutable> {
            Ok(from
                .iter()
                .map(|p| {
                    let d = p.distance_m(&to);
                    // Units are told apart by their distance in these tests: 100, 200, 300 m.
                    let key = ["a", "b", "c"][((d / 100.0).round() as usize).saturating_sub(1).min(2)];
                    self.0[key].map(|s| Leg { time_s: d * s, distance_m: d * 1.5, route: vec![*p, to] })
                })
                .collect())
        }
    }

    fn near(id: &str, to: GeoPoint, m: f64) -> Nearest {
        Nearest { unit: UnitId::parse(id).unwrap(), point: to.offset(m, 0.0), distance_m: m }
    }

    #[test]
    fn the_shortlist_is_ordered_by_drive_time_and_unroutable_units_come_last_in_their_order() {
        let to = GeoPoint::new(60.17, 24.94).unwrap();
        // a: 100 m but slow (a river); b: 200 m, fast; c: 300 m, cannot be routed.
        let t = Slowness(HashMap::from([("a", Some(1.0)), ("b", Some(0.1)), ("c", None)]));
        let ranked =
            rank_by_road(&t, vec![near("a", to, 100.0), near("b", to, 200.0), near("c", to, 300.0)], to);
        let order: Vec<&str> = ranked.iter().map(|(n, _)| n.unit.as_str()).collect();
        assert_eq!(order, ["b", "a", "c"]);
        assert!(ranked[2].1.is_none());
    }

    struct OffNetwork;

    impl TravelTimes for OffNetwork {
        fn legs(&self, _: &[GeoPoint], _: GeoPoint) -> Result<Vec<Option<Leg>>, crate::travel::NotRoutable> {
            Err(crate::travel::NotRoutable("no road near".into()))
        }
    }

    #[test]
    fn an_incident_off_the_network_keeps_the_straight_line_order() {
        let to = GeoPoint::new(60.17, 24.94).unwrap();
        let ranked = rank_by_road(&OffNetwork, vec![near("a", to, 100.0), near("b", to, 200.0)], to);
        assert_eq!(ranked.iter().map(|(n, _)| n.unit.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert!(ranked.iter().all(|(_, l)| l.is_none()));
    }
}
