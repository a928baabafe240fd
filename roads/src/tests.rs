use super::osm::{Extract, Oneway, Way};
use super::*;

/// A network on a 100 m grid near Helsinki: `nodes` are (id, east, north) in grid steps.
fn network(nodes: &[(i64, f64, f64)], ways: &[(i64, Oneway, &[i64])]) -> RoadNetwork {
    let origin = GeoPoint::new(60.17, 24.94).unwrap();
    let nodes = nodes
        .iter()
        .map(|(id, e, n)| {
            let p = origin.offset(n * 100.0, e * 100.0);
            (*id, (p.lat(), p.lon()))
        })
        .collect();
    let ways = ways
        .iter()
        .map(|(id, oneway, nodes)| Way {
            id: *id,
            highway: "residential".into(),
            oneway: *oneway,
            speed_kmh: 36.0,
            nodes: nodes.to_vec(),
        })
        .collect();
    RoadNetwork::from_graph(RoadGraph::build(&Extract { ways, nodes }))
}

fn node(net: &RoadNetwork, osm: i64) -> u32 {
    net.graph().osm_ids.iter().position(|id| *id == osm).unwrap() as u32
}

#[test]
fn a_one_way_block_is_driven_the_long_way_round() {
    // 1 -> 2 -> 3 -> 4 -> 1, clockwise one way around a 100 m square.
    let net = network(
        &[(1, 0.0, 0.0), (2, 0.0, 1.0), (3, 1.0, 1.0), (4, 1.0, 0.0)],
        &[(1, Oneway::Forward, &[1, 2, 3, 4, 1])],
    );
    let (a, d) = (node(&net, 1), node(&net, 4));
    let (back, path) = net.node_time(a, d).unwrap();
    assert_eq!(path.len(), 4, "three sides of the block");
    assert!((back as i64 - 30_000).abs() <= 10, "{back}");
    let (direct, _) = net.node_time(d, a).unwrap();
    assert!((direct as i64 - 10_000).abs() <= 10, "{direct}");
    assert!((net.path_length_m(&path) - 300.0).abs() < 2.0);
}

#[test]
fn across_the_river_the_route_takes_the_bridge() {
    // Two banks (north y=2, south y=0) joined only by a bridge far east at x=5.
    let net = network(
        &[(1, 0.0, 0.0), (2, 5.0, 0.0), (3, 5.0, 2.0), (4, 0.0, 2.0)],
        &[(1, Oneway::Both, &[1, 2]), (2, Oneway::Both, &[2, 3]), (3, Oneway::Both, &[3, 4])],
    );
    let (south, north) = (node(&net, 1), node(&net, 4));
    let (ms, path) = net.node_time(south, north).unwrap();
    assert_eq!(path.len(), 4);
    assert!((ms as i64 - 120_000).abs() <= 20, "1.2 km at 10 m/s: {ms}");
    // The straight line is 200 m; the leg reports the road.
    let (from, to) = (net.graph().point(south), net.graph().point(north));
    let leg = net.leg(&from, &to, &net.snap(&to).unwrap()).unwrap();
    assert!((leg.distance_m - 1200.0).abs() < 5.0, "{leg:?}");
    assert!((leg.time_s - 120.0).abs() < 0.1, "{leg:?}");
    assert!(leg.route.len() >= 4, "the unit, the bridge's ends, the incident: {leg:?}");
    assert_eq!((leg.route[0], *leg.route.last().unwrap()), (from, to));
}

#[test]
fn points_meet_the_nearest_road_part_way_along_or_not_at_all() {
    let net = network(&[(1, 0.0, 0.0), (2, 2.0, 0.0)], &[(1, Oneway::Both, &[1, 2])]);
    let origin = net.graph().point(node(&net, 1));
    let s = net.snap(&origin.offset(30.0, 50.0)).unwrap();
    assert!((s.offset_m - 30.0).abs() < 0.5, "{s:?}");
    let along = if s.a == node(&net, 1) { s.t } else { 1.0 - s.t };
    assert!((along - 0.25).abs() < 0.01, "50 m of 200 m: {s:?}");
    assert_eq!(net.snap(&origin.offset(20.0, 150.0)).unwrap().node(), node(&net, 2));
    assert!(net.snap(&origin.offset(MAX_SNAP_M + 50.0, 0.0)).is_none(), "too far from any road");
}

#[test]
fn a_point_mid_road_drives_the_road_not_to_its_nearest_end_first() {
    // A 1 km two-way street 1 -> 2 -> 3 (500 m each) at 36 km/h.
    let net = network(&[(1, 0.0, 0.0), (2, 5.0, 0.0), (3, 10.0, 0.0)], &[(1, Oneway::Both, &[1, 2, 3])]);
    let start = net.graph().point(node(&net, 1));
    // A unit 100 m along from node 1, an incident 300 m along: 200 m of road, 20 s.
    let (unit, incident) = (start.offset(0.0, 100.0), start.offset(0.0, 300.0));
    let leg = net.leg(&unit, &incident, &net.snap(&incident).unwrap()).unwrap();
    assert!((leg.time_s - 20.0).abs() < 0.2, "{leg:?}");
    assert!((leg.distance_m - 200.0).abs() < 2.0, "{leg:?}");
}

#[test]
fn a_point_on_a_one_way_street_must_drive_on_in_its_direction() {
    // Clockwise one-way block, 100 m sides; a unit half-way along 1 -> 2 must go on to 2.
    let net = network(
        &[(1, 0.0, 0.0), (2, 0.0, 1.0), (3, 1.0, 1.0), (4, 1.0, 0.0)],
        &[(1, Oneway::Forward, &[1, 2, 3, 4, 1])],
    );
    let p1 = net.graph().point(node(&net, 1));
    let unit = p1.offset(50.0, 0.0);
    // The incident just behind it, 10 m towards 1: the only way is round the block.
    let incident = p1.offset(40.0, 0.0);
    let leg = net.leg(&unit, &incident, &net.snap(&incident).unwrap()).unwrap();
    assert!((leg.distance_m - 390.0).abs() < 3.0, "{leg:?}");
}

#[test]
fn contraction_hierarchy_times_equal_plain_dijkstra_on_a_grid() {
    let g = grid(20, GeoPoint::new(60.17, 24.94).unwrap());
    let rev = reverse_adjacency(&g);
    let net = RoadNetwork::from_graph(g.clone());
    for target in [0u32, 57, 211, 399] {
        let sources: Vec<u32> = (0..400).step_by(37).collect();
        let want = dijkstra_to(&g, &rev, target, &sources);
        for (s, w) in sources.iter().zip(want) {
            assert_eq!(net.node_time(*s, target).map(|t| t.0), w, "{s} -> {target}");
        }
    }
}

#[test]
fn the_prepared_graph_round_trips_through_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let net = network(&[(1, 0.0, 0.0), (2, 1.0, 0.0), (3, 2.0, 0.0)], &[(1, Oneway::Both, &[1, 2, 3])]);
    let path = dir.path().join("c.bin");
    write_cache(&path, &Prepared { graph: net.graph.clone(), ch: contract(&net.graph) }).unwrap();
    let back = RoadNetwork::from_prepared(read_cache(&path).expect("cache reads back")).unwrap();
    assert_eq!(back.node_time(0, 2).map(|t| t.0), net.node_time(0, 2).map(|t| t.0));
    std::fs::write(&path, b"garbage").unwrap();
    assert!(read_cache(&path).is_none(), "a corrupt cache is ignored, not trusted");
}

#[test]
fn many_units_to_one_incident_match_dijkstra_and_drive_real_roads() {
    let g = synthetic_city(30_000, 9, GeoPoint::new(60.10, 24.80).unwrap());
    let rev = reverse_adjacency(&g);
    let net = RoadNetwork::from_graph(g.clone());
    let n = g.node_count() as u32;
    let time: std::collections::HashMap<(u32, u32), u32> = {
        let mut m = std::collections::HashMap::new();
        for e in &g.edges {
            let t = m.entry((e.from, e.to)).or_insert(u32::MAX);
            *t = (*t).min(e.time_ms);
        }
        m
    };
    for k in 0..40u32 {
        let target = (k * 7919 + 13) % n;
        let sources: Vec<u32> = (0..8).map(|i| (k * 104_729 + i * 15_485_863) % n).collect();
        let want = dijkstra_to(&g, &rev, target, &sources);
        for (s, w) in sources.iter().zip(&want) {
            let (ms, path) = net.node_time(*s, target).unwrap();
            assert_eq!(Some(ms), *w, "{s} -> {target}");
            assert_eq!((path[0], *path.last().unwrap()), (*s, target));
            let driven: u64 = path.windows(2).map(|p| u64::from(time[&(p[0], p[1])])).sum();
            assert_eq!(driven, ms, "the path's edges add up to its time");
        }
        // Through dispatch's entry point, from the nodes' own positions: onto the road where
        // each snaps, by Dijkstra between every way on and every way off.
        let points: Vec<GeoPoint> = sources.iter().map(|s| g.point(*s)).collect();
        let to = g.point(target);
        let ts = net.snap(&to).unwrap();
        let legs = net.legs(&points, to).unwrap();
        for (p, leg) in points.iter().zip(&legs) {
            let s = net.snap(p).unwrap();
            let exits = net.exits(&s);
            let starts: Vec<u32> = exits.iter().map(|e| e.0 as u32).collect();
            let mut best = net.along_same_segment(&s, &ts).map_or(u64::MAX, |x| x.0 as u64);
            for en in net.entries(&ts) {
                for (ex, d) in exits.iter().zip(dijkstra_to(&g, &rev, en.0 as u32, &starts)) {
                    best = best.min(d.unwrap() + ex.1 as u64 + en.1 as u64);
                }
            }
            let want = best as f64 / 1000.0 + (s.offset_m + ts.offset_m) / OFF_ROAD_MPS;
            let got = leg.as_ref().unwrap().time_s;
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }
}
