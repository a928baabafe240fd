//! Router: picks the units to offer an incident to. It owns the nearest-unit index, fed by
//! the Unit actors whenever a unit moves or its eligibility changes.
//!
//! Mailbox: `UnitState` arrives by `do_send` from Unit actors, whose own input is bounded by
//! the MQTT gateway (it awaits each delivery), and costs O(log n); `FindUnits` comes from
//! incidents by `send().await`.

use std::collections::HashMap;
use std::time::Duration;

use actix::prelude::*;

use crate::dispatch::Candidate;
use crate::geo::GeoPoint;
use crate::ids::UnitId;
use crate::index::UnitIndex;
use crate::model::straight_line_eta_s;
use crate::unit::Unit;

pub struct Router {
    index: UnitIndex,
    units: HashMap<UnitId, Addr<Unit>>,
    max_age: Duration,
}

impl Router {
    pub fn new(max_age: Duration) -> Self {
        Self { index: UnitIndex::new(), units: HashMap::new(), max_age }
    }
}

impl Actor for Router {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
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

/// A unit moved, or may now (or may no longer) be offered work.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct UnitState {
    pub unit: UnitId,
    /// A new position and when kuzet received it.
    pub position: Option<(GeoPoint, tokio::time::Instant)>,
    pub eligible: bool,
}

impl Handler<UnitState> for Router {
    type Result = ();

    fn handle(&mut self, msg: UnitState, _: &mut Self::Context) {
        // Eligibility first, so a unit leaving the pool is not re-inserted by its position.
        if !msg.eligible {
            self.index.set_eligible(&msg.unit, false);
        }
        if let Some((p, at)) = msg.position {
            self.index.update_position(&msg.unit, p, at.into_std());
        }
        if msg.eligible {
            self.index.set_eligible(&msg.unit, true);
        }
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
}

impl Handler<FindUnits> for Router {
    type Result = MessageResult<FindUnits>;

    fn handle(&mut self, msg: FindUnits, _: &mut Self::Context) -> Self::Result {
        let now = tokio::time::Instant::now().into_std();
        let found = self
            .index
            .nearest(&msg.to, msg.count, &msg.exclude, self.max_age, now)
            .into_iter()
            .filter_map(|n| {
                let addr = self.units.get(&n.unit)?.clone();
                Some(Found {
                    candidate: Candidate {
                        eta_s: straight_line_eta_s(n.distance_m),
                        unit: n.unit,
                        distance_m: n.distance_m,
                    },
                    addr,
                })
            })
            .collect();
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
        self.index.len()
    }
}
