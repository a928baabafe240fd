//! The index suite: the nearest-unit query over many units beside a brute-force scan.

use std::time::{Duration, Instant};

use kuzet_actors::geo::GeoPoint;
use kuzet_actors::ids::UnitId;
use kuzet_actors::index::UnitIndex;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::{percentiles, row};
use crate::sim;

/// Nearest available unit among `n`: the R-tree query beside a brute-force scan.
pub(super) fn index_bench(n: usize) {
    let mut rng = StdRng::seed_from_u64(42);
    let centre = GeoPoint::new(43.2389, 76.8897).expect("constant point");
    let now = Instant::now();
    let mut idx = UnitIndex::new();
    let mut pts = Vec::with_capacity(n);
    let build = Instant::now();
    for i in 0..n {
        let id = UnitId::parse(&format!("u{i}")).expect("generated id");
        let p = sim::random_point(&mut rng, centre, 30_000.0);
        idx.set_eligible(&id, true);
        idx.update_position(&id, p, now);
        pts.push(p);
    }
    let build = build.elapsed();
    let max_age = Duration::from_secs(120);
    let queries: Vec<GeoPoint> =
        (0..100_000).map(|_| sim::random_point(&mut rng, centre, 30_000.0)).collect();
    let mut one = Vec::with_capacity(queries.len());
    let mut eight = Vec::with_capacity(queries.len());
    for q in &queries {
        let t = Instant::now();
        std::hint::black_box(idx.nearest(q, 1, &[], max_age, now));
        one.push(t.elapsed());
        let t = Instant::now();
        std::hint::black_box(idx.nearest(q, 8, &[], max_age, now));
        eight.push(t.elapsed());
    }
    let mut brute = Vec::new();
    for q in queries.iter().take(300) {
        let t = Instant::now();
        let best = pts.iter().map(|p| q.distance_m(p)).fold(f64::INFINITY, f64::min);
        std::hint::black_box(best);
        brute.push(t.elapsed());
    }
    // A position update is a remove and an insert in the tree.
    let mut moves = Vec::with_capacity(10_000);
    for i in 0..10_000 {
        let id = UnitId::parse(&format!("u{}", i % n)).expect("generated id");
        let p = sim::random_point(&mut rng, centre, 30_000.0);
        let t = Instant::now();
        idx.update_position(&id, p, now);
        moves.push(t.elapsed());
    }
    let (one, eight, brute, moves) =
        (percentiles(one), percentiles(eight), percentiles(brute), percentiles(moves));
    println!("### Nearest available unit, {n} units (index built in {:.0} ms)\n", build.as_secs_f64() * 1e3);
    println!("| query | n | p50 µs | p99 µs | p99.9 µs | max µs |\n|---|---|---|---|---|---|");
    println!("{}", row("R-tree, 1 nearest", &one));
    println!("{}", row("R-tree, 8 nearest", &eight));
    println!("{}", row("brute-force scan, 1 nearest (baseline)", &brute));
    println!("{}", row("position update (remove + insert)", &moves));
    println!(
        "\nR-tree 1-NN p99 is {:.0}x faster than the scan's p50.\n",
        brute.p50.as_secs_f64() / one.p99.as_secs_f64().max(1e-9)
    );
}
