//! Where the units are: the bulk lane's side of dispatch. Positions are most of what a city
//! sends (every unit, every second or two) and change no decision on their own, so they never
//! pass through the dispatch actors' mailboxes, where an alarm would wait behind them. The
//! MQTT gateway reports each fix here from a thread of its own; the router takes what moved
//! since it last looked (the newest fix per unit, so a backlog can never outgrow the fleet)
//! in one short turn before each search and every millisecond between them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::geo::GeoPoint;
use crate::ids::UnitId;
use crate::outbound::{Board, Received};

/// `kuzet/v1/units/{id}/position`: one fix as the tablet reported it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    pub point: GeoPoint,
    pub at: DateTime<Utc>,
    pub speed_mps: Option<f64>,
    pub heading_deg: Option<f64>,
    pub received: Received,
}

/// What became of a reported fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    /// The unit's newest position now.
    Moved,
    /// Older than the fix already held (delivered late): it moves nothing.
    Older,
    /// Not a unit id.
    BadId,
}

/// The units' latest fixes, shared by the gateway (which reports) and the router (which takes
/// what moved). Cheap to clone. Each call holds the lock for a map lookup and a copy; nothing
/// waits on it for longer.
#[derive(Clone, Default)]
pub struct Fleet {
    inner: Arc<Mutex<Slots>>,
    board: Option<Arc<dyn Board>>,
}

#[derive(Default)]
struct Slots {
    by_id: HashMap<UnitId, usize>,
    units: Vec<Slot>,
    /// Slots with a fix the router has not taken yet, each once.
    moved: Vec<usize>,
}

struct Slot {
    id: UnitId,
    fix: Position,
    taken: bool,
}

impl Fleet {
    /// Also shows every accepted fix on `board` (the consoles' map).
    pub fn with_board(mut self, board: Arc<dyn Board>) -> Self {
        self.board = Some(board);
        self
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a fix for `unit`: the newest one it has reported wins, whatever order they
    /// arrive in. Allocates only for a unit's first fix.
    pub fn report(&self, unit: &str, fix: Position) -> Reported {
        {
            let mut s = self.slots();
            match s.by_id.get(unit).copied() {
                Some(i) => {
                    let slot = &mut s.units[i];
                    if fix.at < slot.fix.at {
                        return Reported::Older;
                    }
                    slot.fix = fix;
                    if slot.taken {
                        slot.taken = false;
                        s.moved.push(i);
                    }
                }
                None => {
                    let Ok(id) = UnitId::parse(unit) else { return Reported::BadId };
                    let i = s.units.len();
                    s.by_id.insert(id.clone(), i);
                    s.units.push(Slot { id, fix, taken: false });
                    s.moved.push(i);
                }
            }
        }
        if let Some(b) = &self.board {
            b.moved(unit, &fix);
        }
        Reported::Moved
    }

    /// Moves the fixes reported since the last call into `into` (emptied first), oldest
    /// report first; each unit once, with its newest fix.
    pub fn take(&self, into: &mut Vec<(UnitId, Position)>) {
        into.clear();
        let mut s = self.slots();
        let moved = std::mem::take(&mut s.moved);
        for &i in &moved {
            let slot = &mut s.units[i];
            slot.taken = true;
            into.push((slot.id.clone(), slot.fix));
        }
        // The vector's room is kept for the next reports.
        let mut moved = moved;
        moved.clear();
        s.moved = moved;
    }

    /// The unit's newest fix.
    pub fn latest(&self, unit: &str) -> Option<Position> {
        let s = self.slots();
        s.by_id.get(unit).map(|&i| s.units[i].fix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fix(secs: i64, north_m: f64) -> Position {
        let origin = GeoPoint::new(43.2389, 76.8897).unwrap();
        Position {
            point: origin.offset(north_m, 0.0),
            at: DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap(),
            speed_mps: None,
            heading_deg: None,
            received: Received::now(),
        }
    }

    #[test]
    fn an_older_fix_delivered_late_moves_nothing() {
        let fleet = Fleet::default();
        assert_eq!(fleet.report("u1", fix(10, 100.0)), Reported::Moved);
        assert_eq!(fleet.report("u1", fix(5, 900.0)), Reported::Older);
        assert_eq!(fleet.latest("u1").map(|p| p.point), Some(fix(10, 100.0).point));
        assert_eq!(fleet.report("u1", fix(11, 200.0)), Reported::Moved);
        assert_eq!(fleet.latest("u1").map(|p| p.point), Some(fix(11, 200.0).point));
    }

    #[test]
    fn the_router_takes_each_moved_unit_once_with_its_newest_fix() {
        let fleet = Fleet::default();
        let mut taken = Vec::new();
        fleet.take(&mut taken);
        assert!(taken.is_empty());
        fleet.report("u1", fix(1, 100.0));
        fleet.report("u2", fix(1, 200.0));
        fleet.report("u1", fix(2, 300.0));
        fleet.take(&mut taken);
        let got: Vec<(&str, GeoPoint)> = taken.iter().map(|(u, p)| (u.as_str(), p.point)).collect();
        assert_eq!(got, [("u1", fix(2, 300.0).point), ("u2", fix(1, 200.0).point)]);
        fleet.take(&mut taken);
        assert!(taken.is_empty(), "nothing moved since");
        fleet.report("u2", fix(3, 400.0));
        fleet.take(&mut taken);
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].0.as_str(), "u2");
    }

    #[test]
    fn a_bad_id_is_never_held() {
        let fleet = Fleet::default();
        assert_eq!(fleet.report("Not An Id", fix(1, 0.0)), Reported::BadId);
        assert!(fleet.latest("Not An Id").is_none());
    }
}
