//! The nearest-unit index: an R-tree over the units that may be offered work right now.
//! Points are stored as unit vectors on the sphere (see `GeoPoint::unit_vector`), so the
//! nearest entry is the nearest by great-circle distance, exactly.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rstar::primitives::GeomWithData;
use rstar::RTree;

use crate::geo::{chord_to_metres, GeoPoint};
use crate::ids::UnitId;

type Entry = GeomWithData<[f64; 3], UnitId>;

#[derive(Debug, Clone, Copy)]
struct Known {
    point: GeoPoint,
    at: Instant,
}

/// Available units with their last position. A unit is in the tree only while it is
/// eligible (online, available, not holding an offer or assignment) and has a position;
/// freshness is checked when a query runs, so a silent tablet drops out without a timer.
#[derive(Default)]
pub struct UnitIndex {
    tree: RTree<Entry>,
    known: HashMap<UnitId, Known>,
    eligible: HashMap<UnitId, bool>,
}

/// A unit found by a query.
#[derive(Debug, Clone, PartialEq)]
pub struct Nearest {
    pub unit: UnitId,
    pub point: GeoPoint,
    pub distance_m: f64,
}

impl UnitIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Units currently in the tree.
    pub fn len(&self) -> usize {
        self.tree.size()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.size() == 0
    }

    /// Records a position report.
    pub fn update_position(&mut self, unit: &UnitId, point: GeoPoint, at: Instant) {
        let in_tree = self.in_tree(unit);
        if in_tree {
            self.remove_from_tree(unit);
        }
        self.known.insert(unit.clone(), Known { point, at });
        if in_tree || self.eligible.get(unit).copied().unwrap_or(false) {
            self.tree.insert(Entry::new(point.unit_vector(), unit.clone()));
        }
    }

    /// Records whether the unit may be offered work.
    pub fn set_eligible(&mut self, unit: &UnitId, eligible: bool) {
        let was = self.eligible.insert(unit.clone(), eligible).unwrap_or(false);
        if was == eligible {
            return;
        }
        if eligible {
            if let Some(k) = self.known.get(unit) {
                self.tree.insert(Entry::new(k.point.unit_vector(), unit.clone()));
            }
        } else {
            self.remove_from_tree(unit);
        }
    }

    /// Up to `count` eligible units nearest to `to` whose position is younger than `max_age`
    /// at `now`, skipping `exclude`, nearest first.
    pub fn nearest(
        &self,
        to: &GeoPoint,
        count: usize,
        exclude: &[UnitId],
        max_age: Duration,
        now: Instant,
    ) -> Vec<Nearest> {
        let query = to.unit_vector();
        let mut out = Vec::with_capacity(count);
        if count == 0 {
            return out;
        }
        for (entry, d2) in self.tree.nearest_neighbor_iter_with_distance_2(&query) {
            let unit = &entry.data;
            if exclude.contains(unit) {
                continue;
            }
            let Some(k) = self.known.get(unit) else {
                continue;
            };
            if now.saturating_duration_since(k.at) > max_age {
                continue;
            }
            out.push(Nearest { unit: unit.clone(), point: k.point, distance_m: chord_to_metres(d2.sqrt()) });
            if out.len() == count {
                break;
            }
        }
        out
    }

    /// Where one eligible unit is, when its position is younger than `max_age` at `now`.
    pub fn locate(&self, unit: &UnitId, to: &GeoPoint, max_age: Duration, now: Instant) -> Option<Nearest> {
        if !self.in_tree(unit) {
            return None;
        }
        let k = self.known.get(unit)?;
        (now.saturating_duration_since(k.at) <= max_age).then(|| Nearest {
            unit: unit.clone(),
            point: k.point,
            distance_m: k.point.distance_m(to),
        })
    }

    /// Removes units whose last position is older than `max_age`, so the tree does not fill
    /// with silent tablets that every query would have to skip.
    pub fn evict_stale(&mut self, max_age: Duration, now: Instant) -> usize {
        let stale: Vec<UnitId> = self
            .known
            .iter()
            .filter(|(_, k)| now.saturating_duration_since(k.at) > max_age)
            .map(|(u, _)| u.clone())
            .collect();
        for u in &stale {
            self.remove_from_tree(u);
            self.known.remove(u);
        }
        stale.len()
    }

    fn in_tree(&self, unit: &UnitId) -> bool {
        self.eligible.get(unit).copied().unwrap_or(false) && self.known.contains_key(unit)
    }

    fn remove_from_tree(&mut self, unit: &UnitId) {
        if let Some(k) = self.known.get(unit) {
            let entry = Entry::new(k.point.unit_vector(), unit.clone());
            self.tree.remove(&entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(id: &str) -> UnitId {
        UnitId::parse(id).unwrap()
    }

    const AGE: Duration = Duration::from_secs(120);

    #[test]
    fn finds_the_nearest_eligible_units_in_order() {
        let now = Instant::now();
        let centre = GeoPoint::new(43.24, 76.9).unwrap();
        let mut idx = UnitIndex::new();
        for (id, north) in [("far", 3000.0), ("near", 100.0), ("mid", 900.0)] {
            idx.set_eligible(&u(id), true);
            idx.update_position(&u(id), centre.offset(north, 0.0), now);
        }
        let got = idx.nearest(&centre, 2, &[], AGE, now);
        assert_eq!(got.iter().map(|n| n.unit.as_str()).collect::<Vec<_>>(), ["near", "mid"]);
        assert!((got[0].distance_m - 100.0).abs() < 0.5, "{}", got[0].distance_m);
        let got = idx.nearest(&centre, 5, &[u("near")], AGE, now);
        assert_eq!(got.iter().map(|n| n.unit.as_str()).collect::<Vec<_>>(), ["mid", "far"]);
    }

    #[test]
    fn skips_ineligible_and_stale_units() {
        let t0 = Instant::now();
        let centre = GeoPoint::new(60.17, 24.94).unwrap();
        let mut idx = UnitIndex::new();
        idx.update_position(&u("nopos-yet"), centre, t0);
        idx.set_eligible(&u("busy"), true);
        idx.update_position(&u("busy"), centre.offset(10.0, 0.0), t0);
        idx.set_eligible(&u("busy"), false);
        idx.set_eligible(&u("old"), true);
        idx.update_position(&u("old"), centre.offset(20.0, 0.0), t0);
        idx.set_eligible(&u("fresh"), true);
        idx.update_position(&u("fresh"), centre.offset(500.0, 0.0), t0 + Duration::from_secs(100));
        let now = t0 + Duration::from_secs(130);
        let got = idx.nearest(&centre, 5, &[], AGE, now);
        assert_eq!(got.iter().map(|n| n.unit.as_str()).collect::<Vec<_>>(), ["fresh"]);
        assert_eq!(idx.evict_stale(AGE, now), 3);
        assert_eq!(idx.len(), 1);
    }

    #[test]
    fn moving_a_unit_moves_it_in_the_tree() {
        let now = Instant::now();
        let centre = GeoPoint::new(0.0, 0.0).unwrap();
        let mut idx = UnitIndex::new();
        idx.set_eligible(&u("a"), true);
        idx.set_eligible(&u("b"), true);
        idx.update_position(&u("a"), centre.offset(100.0, 0.0), now);
        idx.update_position(&u("b"), centre.offset(200.0, 0.0), now);
        idx.update_position(&u("a"), centre.offset(300.0, 0.0), now);
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.nearest(&centre, 1, &[], AGE, now)[0].unit, u("b"));
        idx.set_eligible(&u("b"), false);
        idx.set_eligible(&u("b"), false);
        assert_eq!(idx.len(), 1);
        idx.set_eligible(&u("b"), true);
        assert_eq!(idx.len(), 2);
    }

    #[test]
    fn agrees_with_brute_force() {
        let now = Instant::now();
        let centre = GeoPoint::new(43.24, 76.9).unwrap();
        let mut idx = UnitIndex::new();
        let mut pts = Vec::new();
        let mut seed = 7u64;
        let mut rnd = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        for i in 0..500 {
            let p = centre.offset(rnd() * 20_000.0 - 10_000.0, rnd() * 20_000.0 - 10_000.0);
            let id = u(&format!("u{i}"));
            idx.set_eligible(&id, true);
            idx.update_position(&id, p, now);
            pts.push((id, p));
        }
        for _ in 0..50 {
            let q = centre.offset(rnd() * 20_000.0 - 10_000.0, rnd() * 20_000.0 - 10_000.0);
            let mut brute: Vec<_> = pts.iter().map(|(id, p)| (q.distance_m(p), id.clone())).collect();
            brute.sort_by(|a, b| a.0.total_cmp(&b.0));
            let got = idx.nearest(&q, 3, &[], AGE, now);
            for (g, b) in got.iter().zip(&brute) {
                assert_eq!(g.unit, b.1);
                assert!((g.distance_m - b.0).abs() < 0.01);
            }
        }
    }
}
