//! A synthetic city with a road hierarchy, for measuring how preparation and queries grow past
//! the size of any extract at hand. A uniform grid flatters nothing and punishes contraction
//! hierarchies (every node looks alike); real cities have a few fast roads that most long trips
//! use, and this keeps that shape: slow local streets, a faster arterial every few blocks,
//! motorways with interchanges far apart, and a ring road.

use kuzet_actors::geo::GeoPoint;

use super::graph::{RoadEdge, RoadGraph};

/// Block size before jitter, metres; node positions move up to a quarter of it each way, so
/// street segments run about 50 to 150 m.
const BLOCK_M: f64 = 100.0;
/// Every `ARTERIAL_EVERY`-th row and column is an arterial.
pub const ARTERIAL_EVERY: usize = 8;
/// Every `MOTORWAY_EVERY`-th row and column is also a motorway, entered at interchanges
/// `INTERCHANGE_EVERY` nodes apart.
const MOTORWAY_EVERY: usize = 64;
const INTERCHANGE_EVERY: usize = 16;
pub const LOCAL_KMH: [f64; 2] = [30.0, 40.0];
pub const ARTERIAL_KMH: f64 = 50.0;
pub const MOTORWAY_KMH: f64 = 90.0;
pub const RING_KMH: f64 = 80.0;
/// Share of local street segments left out (dead ends, parks, rail lines).
const REMOVED: f64 = 0.04;

/// Way ids by road class, for tests and for telling the classes apart in exports.
pub const WAY_LOCAL: i64 = 1;
pub const WAY_ARTERIAL: i64 = 2;
pub const WAY_MOTORWAY: i64 = 3;
pub const WAY_RING: i64 = 4;

/// Deterministic and dependency-free: the same seed gives the same city on every machine.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A city of about `nodes` intersections (the largest strongly connected part of it, a little
/// under `nodes` where removed streets cut off a corner) laid out north and east of `origin`.
///
/// Rows and columns of a jittered grid are streets: locals at 30 or 40 km/h, every third local
/// one way (alternating direction), a few percent of local segments removed; every 8th row and
/// column a two-way arterial at 50 km/h; every 64th also carries a 90 km/h motorway with
/// interchanges every 16 nodes; a ring road at 80 km/h around the centre at a third of the
/// city's width, joined to the grid every ~1.5 km.
pub fn synthetic_city(nodes: usize, seed: u64, origin: GeoPoint) -> RoadGraph {
    let mut rng = SplitMix(seed ^ 0x6B75_7A65_742D_7264);
    let w = (nodes as f64).sqrt().ceil().max(2.0) as usize;
    let h = nodes.div_ceil(w).max(1);
    let exists = |x: usize, y: usize| x < w && y < h && y * w + x < nodes;
    let id = |x: usize, y: usize| (y * w + x) as u32;

    let mut g = RoadGraph::default();
    let mut xy = Vec::with_capacity(nodes);
    for i in 0..nodes {
        let (x, y) = (i % w, i / w);
        let jx = (rng.unit() - 0.5) * BLOCK_M * 0.5;
        let jy = (rng.unit() - 0.5) * BLOCK_M * 0.5;
        let (east, north) = (x as f64 * BLOCK_M + jx, y as f64 * BLOCK_M + jy);
        xy.push((east, north));
        let p = origin.offset(north, east);
        g.coords.push((p.lat(), p.lon()));
        g.osm_ids.push(i as i64);
    }
    let dist = |a: u32, b: u32| {
        let (pa, pb) = (xy[a as usize], xy[b as usize]);
        ((pa.0 - pb.0).powi(2) + (pa.1 - pb.1).powi(2)).sqrt()
    };
    let edge = |from: u32, to: u32, length_m: f64, kmh: f64, way_id: i64| RoadEdge {
        from,
        to,
        time_ms: ((length_m / (kmh / 3.6)) * 1000.0).round().max(1.0) as u32,
        length_m: length_m as f32,
        way_id,
    };
    let both = |g: &mut RoadGraph, a: u32, b: u32, len: f64, kmh: f64, way: i64| {
        g.edges.push(edge(a, b, len, kmh, way));
        g.edges.push(edge(b, a, len, kmh, way));
    };

    // Streets: `line` is the row (horizontal) or column (vertical) index, `i` the position
    // along it.
    let street = |g: &mut RoadGraph, rng: &mut SplitMix, line: usize, a: u32, b: u32| {
        let len = dist(a, b);
        if line.is_multiple_of(ARTERIAL_EVERY) {
            both(g, a, b, len, ARTERIAL_KMH, WAY_ARTERIAL);
            return;
        }
        if rng.unit() < REMOVED {
            return;
        }
        let kmh = LOCAL_KMH[(rng.next() % 2) as usize];
        match line % 3 {
            // One way, alternating direction street by street, as in an old town.
            0 if (line / 3).is_multiple_of(2) => g.edges.push(edge(a, b, len, kmh, WAY_LOCAL)),
            0 => g.edges.push(edge(b, a, len, kmh, WAY_LOCAL)),
            _ => both(g, a, b, len, kmh, WAY_LOCAL),
        }
    };
    for y in 0..h {
        for x in 0..w.saturating_sub(1) {
            if exists(x + 1, y) {
                street(&mut g, &mut rng, y, id(x, y), id(x + 1, y));
            }
        }
    }
    for x in 0..w {
        for y in 0..h.saturating_sub(1) {
            if exists(x, y + 1) {
                street(&mut g, &mut rng, x, id(x, y), id(x, y + 1));
            }
        }
    }

    // Motorways over every 64th row and column (the arterial below stays as the service road):
    // one edge per stretch between interchanges, its length that of the road beneath.
    let motorway = |g: &mut RoadGraph, stops: Vec<u32>| {
        for pair in stops.windows(2) {
            let len = dist(pair[0], pair[1]) * 1.02;
            both(g, pair[0], pair[1], len, MOTORWAY_KMH, WAY_MOTORWAY);
        }
    };
    for y in (MOTORWAY_EVERY / 2..h).step_by(MOTORWAY_EVERY) {
        let y = y - y % ARTERIAL_EVERY;
        let stops = (0..w).step_by(INTERCHANGE_EVERY).filter(|x| exists(*x, y)).map(|x| id(x, y)).collect();
        motorway(&mut g, stops);
    }
    for x in (MOTORWAY_EVERY / 2..w).step_by(MOTORWAY_EVERY) {
        let x = x - x % ARTERIAL_EVERY;
        let stops = (0..h).step_by(INTERCHANGE_EVERY).filter(|y| exists(x, *y)).map(|y| id(x, y)).collect();
        motorway(&mut g, stops);
    }

    // The ring: grid nodes nearest to points on a circle, ~1.5 km apart along it.
    let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
    let r = w.min(h) as f64 / 3.0;
    let stops =
        ((std::f64::consts::TAU * r * BLOCK_M / 1500.0).round() as usize).max(if r >= 4.0 { 6 } else { 0 });
    let mut ring: Vec<u32> = Vec::with_capacity(stops + 1);
    for k in 0..stops {
        let a = std::f64::consts::TAU * k as f64 / stops as f64;
        let (x, y) = ((cx + r * a.cos()).round() as usize, (cy + r * a.sin()).round() as usize);
        if exists(x, y) && ring.last() != Some(&id(x, y)) {
            ring.push(id(x, y));
        }
    }
    if ring.len() > 2 {
        ring.push(ring[0]);
        for pair in ring.windows(2) {
            // Curved between junctions: a little longer than the chord.
            let len = dist(pair[0], pair[1]) * 1.05;
            both(&mut g, pair[0], pair[1], len, RING_KMH, WAY_RING);
        }
    }
    g.largest_component()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> GeoPoint {
        GeoPoint::new(60.10, 24.80).unwrap()
    }

    #[test]
    fn keeps_nearly_all_the_nodes_asked_for_and_is_strongly_connected() {
        for n in [1_000usize, 20_000, 70_001] {
            let g = synthetic_city(n, 7, origin());
            assert!(g.node_count() <= n);
            assert!(g.node_count() as f64 >= n as f64 * 0.98, "{n}: kept {}", g.node_count());
            let comp = super::super::graph::strongly_connected(g.node_count(), &g.edges);
            assert!(comp.iter().all(|c| *c == comp[0]), "{n}: not strongly connected");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_city_and_another_seed_another() {
        let (a, b, c) = (
            synthetic_city(5_000, 1, origin()),
            synthetic_city(5_000, 1, origin()),
            synthetic_city(5_000, 2, origin()),
        );
        assert_eq!(a.edges, b.edges);
        assert_eq!(a.coords, b.coords);
        assert_ne!(a.edges, c.edges);
    }

    #[test]
    fn the_hierarchy_is_faster_upwards_and_segments_are_city_blocks() {
        let g = synthetic_city(200_000, 3, origin());
        let speed = |class: i64| {
            let (mut m, mut ms) = (0.0f64, 0.0f64);
            for e in g.edges.iter().filter(|e| e.way_id == class) {
                m += f64::from(e.length_m);
                ms += f64::from(e.time_ms);
            }
            assert!(ms > 0.0, "no roads of class {class}");
            m / ms * 3600.0
        };
        let (local, arterial, motorway, ring) =
            (speed(WAY_LOCAL), speed(WAY_ARTERIAL), speed(WAY_MOTORWAY), speed(WAY_RING));
        assert!((30.0..=40.0).contains(&local), "{local}");
        assert!(
            local < arterial && arterial < ring && ring < motorway,
            "{local} {arterial} {ring} {motorway}"
        );
        let streets: Vec<f32> =
            g.edges.iter().filter(|e| e.way_id <= WAY_ARTERIAL).map(|e| e.length_m).collect();
        assert!(streets.iter().all(|l| (40.0..=160.0).contains(l)));
        let mean = streets.iter().sum::<f32>() / streets.len() as f32;
        assert!((90.0..=110.0).contains(&mean), "{mean}");
        // Some one-way streets: an edge without its reverse.
        let pairs: std::collections::HashSet<(u32, u32)> = g.edges.iter().map(|e| (e.from, e.to)).collect();
        let one_way = g.edges.iter().filter(|e| !pairs.contains(&(e.to, e.from))).count();
        assert!(one_way > g.edges.len() / 20, "{one_way} of {}", g.edges.len());
    }

    #[test]
    fn long_trips_use_the_fast_roads() {
        let g = synthetic_city(40_000, 5, origin());
        let net = crate::RoadNetwork::from_graph(g);
        let n = net.graph().node_count() as u32;
        let (ms, path) = net.node_time(0, n - 1).unwrap();
        let class: std::collections::HashMap<(u32, u32), i64> =
            net.graph().edges.iter().map(|e| ((e.from, e.to), e.way_id)).collect();
        let fast = path.windows(2).filter(|w| class[&(w[0], w[1])] >= WAY_ARTERIAL).count();
        assert!(fast * 2 > path.len(), "{fast} of {} hops on arterials or faster", path.len());
        // Corner to corner is ~28 km as the crow flies: well under an hour at local speeds.
        assert!(ms < 40 * 60 * 1000, "{ms}");
    }
}
