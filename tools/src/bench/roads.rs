//! The roads suite: preparing the Helsinki graph, and drive-time queries beside Dijkstra.

use std::time::Instant;

use kuzet_actors::geo::GeoPoint;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{percentiles, rss_kib, us};

/// Drive times for 1 incident x 8 candidates: contraction hierarchies beside plain Dijkstra
/// and straight-line ranking; preparation cost for the extract and a grid 10x its size.
pub(super) fn roads_bench(extract: &std::path::Path) -> anyhow::Result<()> {
    use kuzet::roads::{self, graph::RoadGraph, RoadNetwork};
    use kuzet_actors::travel::TravelTimes;

    let t = Instant::now();
    let helsinki = RoadGraph::build(&roads::osm::read(extract)?);
    let read_s = t.elapsed().as_secs_f64();
    anyhow::ensure!(helsinki.node_count() > 1, "{} has no drivable roads", extract.display());
    let side = ((helsinki.node_count() * 10) as f64).sqrt().round() as u32;
    let origin = GeoPoint::new(60.10, 24.80).expect("constant point");
    let graphs = [
        (format!("{} (OpenStreetMap)", extract.display()), helsinki),
        (format!("synthetic grid {side} x {side} (10x)"), roads::grid(side, origin)),
    ];
    println!("### Drive times: 1 incident x 8 candidates\n");
    println!("Reading and building the Helsinki graph from the extract: {:.0} ms.\n", read_s * 1e3);
    println!("| graph | nodes | edges | contraction s | prepared size MiB | RSS growth MiB |\n|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for (name, g) in graphs {
        let (nodes, edges) = (g.node_count(), g.edges.len());
        let rev = roads::reverse_adjacency(&g);
        let before = rss_kib();
        let t = Instant::now();
        let net = RoadNetwork::from_graph(g);
        let prep = t.elapsed().as_secs_f64();
        let grown = rss_kib().saturating_sub(before) as f64 / 1024.0;
        let size = bincode::serialized_size(&net.prepared_parts()).unwrap_or(0) as f64 / (1024.0 * 1024.0);
        println!("| {name} | {nodes} | {edges} | {prep:.2} | {size:.1} | {grown:.1} |");
        let mut rng = StdRng::seed_from_u64(11);
        let (mut ch, mut dij, mut straight, mut full) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..2000 {
            let target = rng.random_range(0..nodes as u32);
            let sources: Vec<u32> = (0..8).map(|_| rng.random_range(0..nodes as u32)).collect();
            let t = Instant::now();
            let times: Vec<Option<u64>> =
                sources.iter().map(|s| net.node_time(*s, target).map(|x| x.0)).collect();
            ch.push(t.elapsed());
            let t = Instant::now();
            let want = roads::dijkstra_to(net.graph(), &rev, target, &sources);
            dij.push(t.elapsed());
            anyhow::ensure!(times == want, "contraction hierarchy and Dijkstra disagree");
            let to = net.graph().point(target);
            let points: Vec<GeoPoint> = sources.iter().map(|s| net.graph().point(*s)).collect();
            let t = Instant::now();
            let mut d: Vec<(f64, usize)> =
                points.iter().enumerate().map(|(i, p)| (p.distance_m(&to), i)).collect();
            d.sort_by(|a, b| a.0.total_cmp(&b.0));
            std::hint::black_box(d);
            straight.push(t.elapsed());
            let t = Instant::now();
            std::hint::black_box(net.legs(&points, to).ok());
            full.push(t.elapsed());
        }
        rows.push((name, percentiles(ch), percentiles(dij), percentiles(straight), percentiles(full)));
    }
    println!("\n| graph | method | n | p50 µs | p99 µs | p99.9 µs | max µs |\n|---|---|---|---|---|---|---|");
    for (name, ch, dij, straight, full) in &rows {
        for (method, p) in [
            ("8 CH queries", ch),
            ("plain Dijkstra to all 8 (baseline)", dij),
            ("straight-line ranking (baseline)", straight),
            ("dispatch's full re-rank: snap + 8 CH + lengths + routes", full),
        ] {
            println!(
                "| {name} | {method} | {} | {} | {} | {} | {} |",
                p.n,
                us(p.p50),
                us(p.p99),
                us(p.p999),
                us(p.max)
            );
        }
    }
    println!();
    Ok(())
}
