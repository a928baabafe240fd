//! The roads suite: preparing the Helsinki graph and synthetic cities of growing size (with a
//! road hierarchy), and drive-time queries beside Dijkstra.

use std::time::{Duration, Instant};

use kuzet_actors::geo::GeoPoint;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{percentiles, rss_kib, us, Percentiles};

/// Options of the roads suite.
#[derive(clap::Args, Clone, Debug)]
pub struct RoadsArgs {
    /// Sizes of the synthetic cities, in nodes (comma separated; empty: none).
    #[arg(long = "roads-sizes", value_delimiter = ',', default_value = "10000,100000,1000000")]
    pub sizes: Vec<usize>,
    /// Seed of the synthetic cities and of the query points.
    #[arg(long = "roads-seed", default_value_t = 11)]
    pub seed: u64,
    /// Timed drive-time queries of each kind per graph.
    #[arg(long = "roads-queries", default_value_t = 2000)]
    pub queries: usize,
    /// Plain Dijkstra baselines per graph and kind (slow on large graphs: a few hundred tell
    /// the ratio).
    #[arg(long = "roads-dijkstra", default_value_t = 200)]
    pub dijkstra: usize,
    /// Candidates for the dispatch-like re-rank lie within this distance of the incident, km.
    #[arg(long = "roads-near-km", default_value_t = 5.0)]
    pub near_km: f64,
    /// Also the uniform grid 10x the extract's size (the earlier growth measure).
    #[arg(long = "roads-grid", default_value_t = true, action = clap::ArgAction::Set)]
    pub grid: bool,
}

impl Default for RoadsArgs {
    fn default() -> Self {
        RoadsArgs {
            sizes: vec![10_000, 100_000, 1_000_000],
            seed: 11,
            queries: 2000,
            dijkstra: 200,
            near_km: 5.0,
            grid: true,
        }
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

struct QueryRow {
    graph: String,
    nodes: usize,
    kind: &'static str,
    p: Percentiles,
}

/// Drive times for 1 incident x 8 candidates: contraction hierarchies beside plain Dijkstra
/// and straight-line ranking; preparation cost as the graph grows.
pub(super) fn roads_bench(extract: &std::path::Path, opts: &RoadsArgs) -> anyhow::Result<()> {
    use kuzet::roads::{self, graph::RoadGraph};

    let origin = GeoPoint::new(60.10, 24.80).expect("constant point");
    let t = Instant::now();
    let helsinki = RoadGraph::build(&roads::osm::read(extract)?);
    let read_s = t.elapsed().as_secs_f64();
    anyhow::ensure!(helsinki.node_count() > 1, "{} has no drivable roads", extract.display());
    let side = ((helsinki.node_count() * 10) as f64).sqrt().round() as u32;

    println!("### Drive times: 1 incident x 8 candidates\n");
    println!(
        "Synthetic cities: `roads::synthetic_city(n, seed {}, ..)`: jittered street grid (segments 50-150 m), \
         locals 30/40 km/h with every third one way and 4% of segments removed, an arterial every 8th \
         row/column at 50 km/h, motorways every 64th at 90 km/h with interchanges every 16 nodes, an 80 km/h ring; \
         the largest strongly connected part.\n",
        opts.seed
    );
    println!(
        "| graph | nodes | edges | build s | contraction s | hierarchy readout + snapping index s | graph + hierarchy MiB | RSS growth MiB | peak RSS MiB |\n\
         |---|---|---|---|---|---|---|---|---|"
    );
    let mut rows = Vec::new();
    measure(&format!("{} (OpenStreetMap)", extract.display()), helsinki, read_s, opts, &mut rows)?;
    if opts.grid {
        let t = Instant::now();
        let g = roads::grid(side, origin);
        measure(&format!("uniform grid {side} x {side}"), g, t.elapsed().as_secs_f64(), opts, &mut rows)?;
    }
    for &n in &opts.sizes {
        let t = Instant::now();
        let g = roads::synthetic_city(n, opts.seed, origin);
        measure(&format!("synthetic city {n}"), g, t.elapsed().as_secs_f64(), opts, &mut rows)?;
    }
    println!(
        "\n| graph | nodes | query | n | p50 µs | p99 µs | p99.9 µs | max µs |\n|---|---|---|---|---|---|---|---|"
    );
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.graph,
            r.nodes,
            r.kind,
            r.p.n,
            us(r.p.p50),
            us(r.p.p99),
            us(r.p.p999),
            us(r.p.max)
        );
    }
    println!();
    Ok(())
}

/// Prepares `g`, prints its preparation row and adds its query rows.
fn measure(
    name: &str,
    g: kuzet::roads::graph::RoadGraph,
    build_s: f64,
    opts: &RoadsArgs,
    rows: &mut Vec<QueryRow>,
) -> anyhow::Result<()> {
    use kuzet::roads::{self, RoadNetwork};
    use kuzet_actors::travel::TravelTimes;

    let (nodes, edges) = (g.node_count(), g.edges.len());
    let before = rss_kib();
    let t = Instant::now();
    let (net, contraction_s) = RoadNetwork::from_graph_timed(g);
    let index_s = t.elapsed().as_secs_f64() - contraction_s;
    let grown = rss_kib().saturating_sub(before) as f64 / 1024.0;
    let size = bincode::serialized_size(&net.prepared_parts()).unwrap_or(0) as f64 / (1024.0 * 1024.0);
    let peak = peak_rss_kib() as f64 / 1024.0;
    println!(
        "| {name} | {nodes} | {edges} | {build_s:.2} | {contraction_s:.2} | {index_s:.2} | {size:.1} | {grown:.0} | {peak:.0} |"
    );
    let rev = roads::reverse_adjacency(net.graph());
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let graph = net.graph();
    let point = |n: u32| graph.point(n);
    // Candidates near the incident, as dispatch shortlists them by straight line: rejection
    // sampling, falling back to anywhere if the city is sparse around the incident.
    let near = |rng: &mut StdRng, target: u32| -> Vec<u32> {
        let to = point(target);
        let mut out = Vec::with_capacity(8);
        for _ in 0..200_000 {
            let s = rng.random_range(0..nodes as u32);
            if point(s).distance_m(&to) <= opts.near_km * 1000.0 {
                out.push(s);
                if out.len() == 8 {
                    return out;
                }
            }
        }
        out.extend((out.len()..8).map(|_| rng.random_range(0..nodes as u32)));
        out
    };
    let (mut p2p, mut far_full, mut near_full, mut straight) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut baseline_sets = Vec::new();
    let load0 = loadavg();
    for i in 0..opts.queries {
        let target = rng.random_range(0..nodes as u32);
        let to = point(target);
        // Point to point, anywhere in the city.
        let s = rng.random_range(0..nodes as u32);
        let t = Instant::now();
        std::hint::black_box(net.node_time(s, target));
        p2p.push(t.elapsed());
        // 8 candidates anywhere: the worst case for the re-rank.
        let far: Vec<u32> = (0..8).map(|_| rng.random_range(0..nodes as u32)).collect();
        let points: Vec<GeoPoint> = far.iter().map(|s| point(*s)).collect();
        let t = Instant::now();
        std::hint::black_box(net.legs(&points, to).ok());
        far_full.push(t.elapsed());
        // 8 candidates within reach, as dispatch asks.
        let close = near(&mut rng, target);
        let points: Vec<GeoPoint> = close.iter().map(|s| point(*s)).collect();
        let t = Instant::now();
        std::hint::black_box(net.legs(&points, to).ok());
        near_full.push(t.elapsed());
        let t = Instant::now();
        let mut d: Vec<(f64, usize)> =
            points.iter().enumerate().map(|(i, p)| (p.distance_m(&to), i)).collect();
        d.sort_by(|a, b| a.0.total_cmp(&b.0));
        std::hint::black_box(d);
        straight.push(t.elapsed());
        if i < opts.dijkstra {
            baseline_sets.push((target, far, close));
        }
    }
    let load1 = loadavg();
    println!("<!-- {name}: load average {load0} before the queries, {load1} after -->");
    // Dijkstra apart from the timed queries: its megabytes of labels a call would otherwise
    // evict the hierarchy from the caches between them.
    let (mut far_ch, mut far_dij, mut near_ch, mut near_dij) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (target, far, close) in &baseline_sets {
        let (ch, dij) = against_dijkstra(&net, &rev, *target, far)?;
        far_ch.push(ch);
        far_dij.push(dij);
        let (ch, dij) = against_dijkstra(&net, &rev, *target, close)?;
        near_ch.push(ch);
        near_dij.push(dij);
    }
    let mut add = |kind: &'static str, v: Vec<Duration>| {
        if !v.is_empty() {
            rows.push(QueryRow { graph: name.to_string(), nodes, kind, p: percentiles(v) });
        }
    };
    add("point to point, 1 CH query", p2p);
    add("re-rank, 8 candidates anywhere: dispatch's legs (snap + CH + lengths + routes)", far_full);
    add("8 candidates anywhere: 8 CH node queries (beside Dijkstra)", far_ch);
    add("8 candidates anywhere: plain Dijkstra to all 8 (baseline)", far_dij);
    add("re-rank, 8 candidates within the near radius: dispatch's legs", near_full);
    add("8 near candidates: 8 CH node queries (beside Dijkstra)", near_ch);
    add("8 near candidates: plain Dijkstra to all 8 (baseline)", near_dij);
    add("8 near candidates: straight-line ranking (baseline)", straight);
    Ok(())
}

/// Times the 8 node queries through the hierarchy and plain Dijkstra for the same pairs, and
/// checks they agree.
fn against_dijkstra(
    net: &kuzet::roads::RoadNetwork,
    rev: &[Vec<(u32, u32)>],
    target: u32,
    sources: &[u32],
) -> anyhow::Result<(Duration, Duration)> {
    let t = Instant::now();
    let times: Vec<Option<u64>> = sources.iter().map(|s| net.node_time(*s, target).map(|x| x.0)).collect();
    let ch = t.elapsed();
    let t = Instant::now();
    let want = kuzet::roads::dijkstra_to(net.graph(), rev, target, sources);
    let dij = t.elapsed();
    anyhow::ensure!(times == want, "contraction hierarchy and Dijkstra disagree");
    Ok((ch, dij))
}
