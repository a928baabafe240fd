//! Drive times over a real road network, fast enough for the alarm path: an OpenStreetMap
//! extract becomes a car graph (`graph`), prepared once with contraction hierarchies
//! (`fast_paths`) and cached on disk by the extract's content hash. Dispatch asks for the
//! travel time from each shortlisted unit to the incident (`kuzet_actors::travel`).

pub mod ch;
pub mod graph;
pub mod osm;
pub mod synthetic;

pub use self::synthetic::synthetic_city;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context as _;
use fast_paths::{FastGraph, InputGraph};
use kuzet_actors::geo::GeoPoint;
use kuzet_actors::travel::{Leg, NotRoutable, TravelTimes};
use rstar::primitives::{GeomWithData, Line};
use rstar::{PointDistance, RTree};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use self::ch::{Hierarchy, Scratch};
use self::graph::RoadGraph;

/// A point farther than this from every road cannot be routed; dispatch falls back to
/// straight-line ranking for it.
pub const MAX_SNAP_M: f64 = 500.0;
/// Speed assumed between a point and the road it snaps to (a driveway, a car park).
const OFF_ROAD_MPS: f64 = 15.0 / 3.6;
/// Bumped when the cached format or the graph rules change, so old caches are rebuilt.
const CACHE_VERSION: &str = "roads-v1";

type Segment = GeomWithData<Line<[f64; 2]>, (u32, u32)>;

/// Where a point meets the network: part-way along the nearest road segment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snap {
    /// The segment's ends, in the direction it was stored; the road may run either way.
    pub a: u32,
    pub b: u32,
    /// How far along from `a` to `b` the point meets the road, 0 to 1.
    pub t: f64,
    /// Straight distance from the point to the road, metres.
    pub offset_m: f64,
}

impl Snap {
    /// The segment's end nearer to the point, for node-level queries.
    pub fn node(&self) -> u32 {
        if self.t <= 0.5 {
            self.a
        } else {
            self.b
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Prepared {
    graph: RoadGraph,
    ch: FastGraph,
}

pub struct RoadNetwork {
    graph: RoadGraph,
    ch: Hierarchy,
    segments: RTree<Segment>,
    /// Metres per degree of longitude at the graph's latitude, for local planar snapping.
    m_per_deg_lon: f64,
    /// The time and length of the fastest edge between two nodes, for road distances of paths.
    edge_length: EdgeTable,
    scratch: Mutex<Scratch>,
}

const M_PER_DEG_LAT: f64 = 111_195.0;

/// Between a snapped point and a node: (node, ms, metres).
type Way = (usize, usize, f64);

/// The fastest edge from each node to each neighbour, (ms, metres), in compressed rows: a
/// lookup scans a node's few out-edges, cheaper than hashing on paths of thousands of nodes
/// and smaller than a hash map.
struct EdgeTable {
    first: Vec<u32>,
    to: Vec<u32>,
    edge: Vec<(u32, f32)>,
}

impl EdgeTable {
    fn new(nodes: usize, edges: &[graph::RoadEdge]) -> EdgeTable {
        let mut by_from: Vec<(u32, u32, u32, f32)> =
            edges.iter().map(|e| (e.from, e.to, e.time_ms, e.length_m)).collect();
        by_from.sort_unstable_by_key(|e| (e.0, e.1, e.2));
        // Parallel edges between the same two nodes: the fastest one is the one driven.
        by_from.dedup_by_key(|e| (e.0, e.1));
        let mut first = vec![0u32; nodes + 1];
        for e in &by_from {
            first[e.0 as usize + 1] += 1;
        }
        for i in 0..nodes {
            first[i + 1] += first[i];
        }
        EdgeTable {
            first,
            to: by_from.iter().map(|e| e.1).collect(),
            edge: by_from.iter().map(|e| (e.2, e.3)).collect(),
        }
    }

    fn get(&self, &(a, b): &(u32, u32)) -> Option<&(u32, f32)> {
        let (lo, hi) = (*self.first.get(a as usize)? as usize, *self.first.get(a as usize + 1)? as usize);
        let i = self.to[lo..hi].iter().position(|t| *t == b)?;
        Some(&self.edge[lo + i])
    }
}

/// What loading took, for logs and benchmarks.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub from_cache: bool,
    pub seconds: f64,
    pub nodes: usize,
    pub edges: usize,
}

impl RoadNetwork {
    /// Loads `extract`, from the prepared cache in `cache_dir` when one matches its content.
    pub fn load(
        extract: &Path,
        cache_dir: &Path,
        progress: bool,
    ) -> anyhow::Result<(RoadNetwork, LoadReport)> {
        let started = Instant::now();
        let bytes = std::fs::read(extract).with_context(|| format!("cannot read {}", extract.display()))?;
        let mut hash = Sha256::new();
        hash.update(CACHE_VERSION.as_bytes());
        // The rules that turn an extract into a graph are part of the key: changing them
        // (speeds, oneway handling) must not reuse a graph prepared under the old ones.
        hash.update(include_str!("osm.rs").as_bytes());
        hash.update(include_str!("graph.rs").as_bytes());
        hash.update(&bytes);
        let key: String = hash.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect();
        let cache = cache_dir.join(format!("roads-{key}.bin"));
        let (prepared, from_cache) = match read_cache(&cache) {
            Some(p) => (p, true),
            None => {
                let p = prepare(extract, progress)?;
                if let Err(e) = write_cache(&cache, &p) {
                    tracing::warn!(path = %cache.display(), error = %e, "cannot cache the prepared road graph");
                }
                (p, false)
            }
        };
        anyhow::ensure!(
            prepared.graph.node_count() > 1,
            "{} has no drivable roads: check the extract, or leave roads.extract empty for straight-line ranking",
            extract.display()
        );
        let net = RoadNetwork::from_prepared(prepared)?;
        let report = LoadReport {
            from_cache,
            seconds: started.elapsed().as_secs_f64(),
            nodes: net.graph.node_count(),
            edges: net.graph.edges.len(),
        };
        Ok((net, report))
    }

    /// Builds and prepares a network from a graph (tests, synthetic benchmarks).
    pub fn from_graph(graph: RoadGraph) -> RoadNetwork {
        RoadNetwork::from_graph_timed(graph).0
    }

    /// As `from_graph`, with the seconds the contraction alone took (the rest builds the
    /// snapping index and the edge lookup).
    pub fn from_graph_timed(graph: RoadGraph) -> (RoadNetwork, f64) {
        let started = Instant::now();
        let ch = contract(&graph);
        let contraction_s = started.elapsed().as_secs_f64();
        let net =
            RoadNetwork::from_prepared(Prepared { graph, ch }).expect("a hierarchy just prepared reads back");
        (net, contraction_s)
    }

    fn from_prepared(p: Prepared) -> anyhow::Result<RoadNetwork> {
        let ch = Hierarchy::from_fast_graph(&p.ch)?;
        drop(p.ch);
        let lat0 = if p.graph.coords.is_empty() {
            0.0
        } else {
            p.graph.coords.iter().map(|c| c.0).sum::<f64>() / p.graph.coords.len() as f64
        };
        let m_per_deg_lon = M_PER_DEG_LAT * lat0.to_radians().cos();
        let xy = |c: (f64, f64)| [c.1 * m_per_deg_lon, c.0 * M_PER_DEG_LAT];
        let edge_length = EdgeTable::new(p.graph.node_count(), &p.graph.edges);
        let mut segments = Vec::with_capacity(p.graph.edges.len());
        for e in &p.graph.edges {
            let a = xy(p.graph.coords[e.from as usize]);
            let b = xy(p.graph.coords[e.to as usize]);
            segments.push(Segment::new(Line::new(a, b), (e.from, e.to)));
        }
        Ok(RoadNetwork {
            segments: RTree::bulk_load(segments),
            m_per_deg_lon,
            edge_length,
            scratch: Mutex::new(Scratch::default()),
            graph: p.graph,
            ch,
        })
    }

    /// The graph and its hierarchy as held for queries, for measuring their size.
    pub fn prepared_parts(&self) -> (&RoadGraph, &Hierarchy) {
        (&self.graph, &self.ch)
    }

    pub fn graph(&self) -> &RoadGraph {
        &self.graph
    }

    /// Where a point meets the network: projected onto the nearest road segment.
    pub fn snap(&self, p: &GeoPoint) -> Option<Snap> {
        let q = [p.lon() * self.m_per_deg_lon, p.lat() * M_PER_DEG_LAT];
        let seg = self.segments.nearest_neighbor(&q)?;
        let (a, b) = seg.data;
        let offset_m = seg.geom().distance_2(&q).sqrt();
        if offset_m > MAX_SNAP_M {
            return None;
        }
        let (fa, fb) = (seg.geom().from, seg.geom().to);
        let (dx, dy) = (fb[0] - fa[0], fb[1] - fa[1]);
        let len2 = dx * dx + dy * dy;
        let t = if len2 > 0.0 {
            (((q[0] - fa[0]) * dx + (q[1] - fa[1]) * dy) / len2).clamp(0.0, 1.0)
        } else {
            0.0
        };
        Some(Snap { a, b, t, offset_m })
    }

    /// The ways out of a snapped point onto the graph: (node, ms to reach it, metres).
    fn exits(&self, s: &Snap) -> Vec<Way> {
        let mut out = Vec::with_capacity(2);
        if let Some(&(ms, len)) = self.edge_length.get(&(s.a, s.b)) {
            out.push((
                s.b as usize,
                ((1.0 - s.t) * f64::from(ms)).round() as usize,
                (1.0 - s.t) * f64::from(len),
            ));
        }
        if let Some(&(ms, len)) = self.edge_length.get(&(s.b, s.a)) {
            out.push((s.a as usize, (s.t * f64::from(ms)).round() as usize, s.t * f64::from(len)));
        }
        out
    }

    /// Driving from `s` to `to` directly when both lie on the same segment and its direction
    /// allows it: (ms, metres).
    fn along_same_segment(&self, s: &Snap, to: &Snap) -> Option<(usize, f64)> {
        let t2 = if (to.a, to.b) == (s.a, s.b) {
            to.t
        } else if (to.a, to.b) == (s.b, s.a) {
            1.0 - to.t
        } else {
            return None;
        };
        let (edge, frac) = if t2 >= s.t { ((s.a, s.b), t2 - s.t) } else { ((s.b, s.a), s.t - t2) };
        let &(ms, len) = self.edge_length.get(&edge)?;
        Some(((frac * f64::from(ms)).round() as usize, frac * f64::from(len)))
    }

    /// The ways into a snapped point from the graph: (node, ms from it, metres).
    fn entries(&self, s: &Snap) -> Vec<Way> {
        let mut out = Vec::with_capacity(2);
        if let Some(&(ms, len)) = self.edge_length.get(&(s.a, s.b)) {
            out.push((s.a as usize, (s.t * f64::from(ms)).round() as usize, s.t * f64::from(len)));
        }
        if let Some(&(ms, len)) = self.edge_length.get(&(s.b, s.a)) {
            out.push((
                s.b as usize,
                ((1.0 - s.t) * f64::from(ms)).round() as usize,
                (1.0 - s.t) * f64::from(len),
            ));
        }
        out
    }

    /// Fastest time between two nodes in whole milliseconds, with its node path.
    pub fn node_time(&self, from: u32, to: u32) -> Option<(u64, Vec<u32>)> {
        if from as usize >= self.graph.node_count() || to as usize >= self.graph.node_count() {
            return None;
        }
        let mut scratch = self.scratch.lock().unwrap_or_else(|p| p.into_inner());
        let route = self.ch.to_one(&mut scratch, &[vec![(from, 0)]], &[(to, 0)]).pop()??;
        Some((route.ms, route.nodes))
    }

    /// Road length of a node path, metres.
    pub fn path_length_m(&self, nodes: &[u32]) -> f64 {
        nodes.windows(2).map(|w| self.edge_length.get(&(w[0], w[1])).map_or(0.0, |e| f64::from(e.1))).sum()
    }

    /// The centre of the network and the distance from it to its farthest node, metres.
    pub fn extent(&self) -> Option<(GeoPoint, f64)> {
        let n = self.graph.coords.len();
        if n == 0 {
            return None;
        }
        let (lat, lon) = self.graph.coords.iter().fold((0.0, 0.0), |a, c| (a.0 + c.0, a.1 + c.1));
        let centre = GeoPoint::new(lat / n as f64, lon / n as f64).ok()?;
        let radius = (0..n as u32).map(|i| centre.distance_m(&self.graph.point(i))).fold(0.0, f64::max);
        Some((centre, radius))
    }

    /// The points of a node path, each with the speed of the road leading to it (m/s).
    pub fn drive(&self, nodes: &[u32]) -> Vec<(GeoPoint, f64)> {
        nodes
            .windows(2)
            .filter_map(|w| {
                let (ms, len) = *self.edge_length.get(&(w[0], w[1]))?;
                Some((self.graph.point(w[1]), f64::from(len) / (f64::from(ms) / 1000.0)))
            })
            .collect()
    }

    /// Travel from a point to a snapped target: onto the road where the point meets it, in
    /// whichever direction the road allows, along the fastest path, and in to the target the
    /// same way; the sideways bits at walking-the-car speed.
    pub fn leg(&self, from: &GeoPoint, to_point: &GeoPoint, to: &Snap) -> Option<Leg> {
        self.legs_to(std::slice::from_ref(from), to_point, to).pop().flatten()
    }

    /// `leg` from each point to one target, the target's side of the search done once.
    fn legs_to(&self, from: &[GeoPoint], to_point: &GeoPoint, to: &Snap) -> Vec<Option<Leg>> {
        let entries = self.entries(to);
        if entries.is_empty() {
            return from.iter().map(|_| None).collect();
        }
        let snaps: Vec<Option<(Snap, Vec<Way>)>> = from
            .iter()
            .map(|p| {
                let s = self.snap(p)?;
                let exits = self.exits(&s);
                (!exits.is_empty()).then_some((s, exits))
            })
            .collect();
        let sources: Vec<Vec<(u32, u64)>> = snaps
            .iter()
            .map(|x| {
                x.as_ref()
                    .map_or_else(Vec::new, |(_, ex)| ex.iter().map(|e| (e.0 as u32, e.1 as u64)).collect())
            })
            .collect();
        let ends: Vec<(u32, u64)> = entries.iter().map(|e| (e.0 as u32, e.1 as u64)).collect();
        let routes = {
            let mut scratch = self.scratch.lock().unwrap_or_else(|p| p.into_inner());
            self.ch.to_one(&mut scratch, &sources, &ends)
        };
        snaps
            .iter()
            .zip(routes)
            .zip(from)
            .map(|((snap, route), from)| {
                let (s, exits) = snap.as_ref()?;
                let ch::Route { ms, nodes } = route?;
                let first = exits.iter().find(|e| e.0 as u32 == nodes[0]).map_or(0.0, |e| e.2);
                let last = entries.iter().find(|e| Some(&(e.0 as u32)) == nodes.last()).map_or(0.0, |e| e.2);
                let off = s.offset_m + to.offset_m;
                // Both on the same stretch of road, the way allowed along it may beat any detour.
                if let Some((same_ms, len)) = self.along_same_segment(s, to) {
                    if same_ms as u64 <= ms {
                        return Some(Leg {
                            time_s: same_ms as f64 / 1000.0 + off / OFF_ROAD_MPS,
                            distance_m: len + off,
                            route: vec![*from, *to_point],
                        });
                    }
                }
                let mut route = Vec::with_capacity(nodes.len() + 2);
                route.push(*from);
                route.extend(nodes.iter().map(|n| self.graph.point(*n)));
                route.push(*to_point);
                Some(Leg {
                    time_s: ms as f64 / 1000.0 + off / OFF_ROAD_MPS,
                    distance_m: first + self.path_length_m(&nodes) + last + off,
                    route,
                })
            })
            .collect()
    }
}

impl TravelTimes for RoadNetwork {
    fn legs(&self, from: &[GeoPoint], to: GeoPoint) -> Result<Vec<Option<Leg>>, NotRoutable> {
        let target = self
            .snap(&to)
            .ok_or_else(|| NotRoutable(format!("no road within {MAX_SNAP_M} m of the incident")))?;
        Ok(self.legs_to(from, &to, &target))
    }
}

/// Plain Dijkstra on the reversed graph from `target` until every one of `sources` is
/// settled: the travel time in ms from each source to `target`. The baseline the contraction
/// hierarchy is measured against, and an oracle for tests.
pub fn dijkstra_to(
    graph: &RoadGraph,
    reverse: &[Vec<(u32, u32)>],
    target: u32,
    sources: &[u32],
) -> Vec<Option<u64>> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut dist = vec![u64::MAX; graph.node_count()];
    let mut left = sources.iter().collect::<std::collections::HashSet<_>>().len();
    let mut heap = BinaryHeap::new();
    dist[target as usize] = 0;
    heap.push(Reverse((0u64, target)));
    let mut settled = vec![false; graph.node_count()];
    while let Some(Reverse((d, v))) = heap.pop() {
        if settled[v as usize] {
            continue;
        }
        settled[v as usize] = true;
        if sources.contains(&v) {
            left -= 1;
            if left == 0 {
                break;
            }
        }
        for &(u, w) in &reverse[v as usize] {
            let nd = d + u64::from(w);
            if nd < dist[u as usize] {
                dist[u as usize] = nd;
                heap.push(Reverse((nd, u)));
            }
        }
    }
    sources.iter().map(|s| (dist[*s as usize] != u64::MAX).then_some(dist[*s as usize])).collect()
}

/// Incoming edges per node, (from, time_ms), for `dijkstra_to`.
pub fn reverse_adjacency(graph: &RoadGraph) -> Vec<Vec<(u32, u32)>> {
    let mut rev = vec![Vec::new(); graph.node_count()];
    for e in &graph.edges {
        rev[e.to as usize].push((e.from, e.time_ms));
    }
    rev
}

/// A synthetic city: a `side` x `side` street grid, 120 m blocks, every third street one way
/// (alternating direction), avenues every tenth street faster. For benchmarks of growth.
pub fn grid(side: u32, origin: GeoPoint) -> RoadGraph {
    let mut g = RoadGraph::default();
    for y in 0..side {
        for x in 0..side {
            let p = origin.offset(f64::from(y) * 120.0, f64::from(x) * 120.0);
            g.coords.push((p.lat(), p.lon()));
            g.osm_ids.push(i64::from(y * side + x));
        }
    }
    let id = |x: u32, y: u32| y * side + x;
    let add = |g: &mut RoadGraph, a: u32, b: u32, street: u32| {
        let kmh = if street.is_multiple_of(10) { 60.0 } else { 30.0 };
        let time_ms = (120.0 / (kmh / 3.6) * 1000.0) as u32;
        let e = |from, to| graph::RoadEdge { from, to, time_ms, length_m: 120.0, way_id: i64::from(street) };
        match street % 3 {
            0 if street.is_multiple_of(2) => g.edges.push(e(a, b)),
            0 => g.edges.push(e(b, a)),
            _ => {
                g.edges.push(e(a, b));
                g.edges.push(e(b, a));
            }
        }
    };
    for y in 0..side {
        for x in 0..side - 1 {
            add(&mut g, id(x, y), id(x + 1, y), y);
        }
    }
    for x in 0..side {
        for y in 0..side - 1 {
            add(&mut g, id(x, y), id(x, y + 1), side + x);
        }
    }
    g
}

fn contract(graph: &RoadGraph) -> FastGraph {
    let mut input = InputGraph::new();
    for e in &graph.edges {
        input.add_edge(e.from as usize, e.to as usize, e.time_ms as usize);
    }
    input.freeze();
    fast_paths::prepare(&input)
}

fn prepare(extract: &Path, progress: bool) -> anyhow::Result<Prepared> {
    use kuzet_progress::{Progress, Show};
    let show = if progress { Show::auto() } else { Show::Quiet };
    let p = Progress::new(show, "preparing the road graph", "stages", Some(3));
    p.stage("reading the OpenStreetMap extract");
    let osm = osm::read(extract)?;
    p.advance(1);
    p.stage(&format!("building the car graph from {} drivable ways", osm.ways.len()));
    let graph = RoadGraph::build(&osm);
    p.advance(1);
    p.stage(&format!(
        "contracting {} nodes, {} edges (contraction hierarchies)",
        graph.node_count(),
        graph.edges.len()
    ));
    let ch = contract(&graph);
    p.advance(1);
    p.finish(&format!("ready: {} nodes, {} edges", graph.node_count(), graph.edges.len()));
    Ok(Prepared { graph, ch })
}

fn read_cache(path: &Path) -> Option<Prepared> {
    let file = std::fs::File::open(path).ok()?;
    match bincode::deserialize_from(std::io::BufReader::new(file)) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable road graph cache");
            None
        }
    }
}

fn write_cache(path: &Path, p: &Prepared) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Written to a file of its own, synced, then renamed: a crash or a second process
    // preparing the same extract never leaves a half cache that looks whole.
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    let mut w = std::io::BufWriter::new(tmp);
    bincode::serialize_into(&mut w, p)?;
    w.flush()?;
    let tmp = w.into_inner().map_err(|e| e.into_error())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)?;
    Ok(())
}

/// Writes `nodes.csv`, `edges.csv` and `ways.csv` (the drivable ways before the strongly
/// connected filter) for independent checks.
pub fn export(extract: &Path, out: &Path) -> anyhow::Result<(usize, usize)> {
    let osm = osm::read(extract)?;
    let graph = RoadGraph::build(&osm);
    std::fs::create_dir_all(out)?;
    let mut nodes = String::from("node,lat,lon\n");
    for (i, (lat, lon)) in graph.coords.iter().enumerate() {
        nodes.push_str(&format!("{i},{lat},{lon}\n"));
    }
    let mut edges = String::from("from,to,time_ms,length_m,way_id\n");
    for e in &graph.edges {
        edges.push_str(&format!("{},{},{},{:.2},{}\n", e.from, e.to, e.time_ms, e.length_m, e.way_id));
    }
    let mut ways = String::from("way_id,highway,oneway\n");
    for w in &osm.ways {
        ways.push_str(&format!("{},{},{}\n", w.id, w.highway, w.oneway.as_str()));
    }
    std::fs::write(out.join("nodes.csv"), nodes)?;
    std::fs::write(out.join("edges.csv"), edges)?;
    std::fs::write(out.join("ways.csv"), ways)?;
    Ok((graph.node_count(), graph.edges.len()))
}

/// Where the prepared graph cache lives by default.
pub fn default_cache_dir() -> PathBuf {
    PathBuf::from("target/roads-cache")
}

#[cfg(test)]
mod tests;
