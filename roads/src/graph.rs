//! The car routing graph: one node per OSM node that a drivable way uses, one directed edge
//! per way segment and allowed direction, weighted by travel time in whole milliseconds (so
//! path times are exact sums, comparable bit for bit with another implementation). Only the
//! largest strongly connected part is kept: from any node, every other node is reachable.

use std::collections::HashMap;

use kuzet_actors::geo::GeoPoint;
use serde::{Deserialize, Serialize};

use super::osm::{Extract, Oneway};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RoadEdge {
    pub from: u32,
    pub to: u32,
    pub time_ms: u32,
    pub length_m: f32,
    pub way_id: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RoadGraph {
    /// (lat, lon) by node index.
    pub coords: Vec<(f64, f64)>,
    pub osm_ids: Vec<i64>,
    pub edges: Vec<RoadEdge>,
}

impl RoadGraph {
    /// Builds the graph of an extract's drivable ways and keeps its largest strongly
    /// connected part.
    pub fn build(extract: &Extract) -> RoadGraph {
        let mut index: HashMap<i64, u32> = HashMap::new();
        let mut g = RoadGraph::default();
        let mut node = |g: &mut RoadGraph, id: i64| -> Option<u32> {
            let c = *extract.nodes.get(&id)?;
            Some(*index.entry(id).or_insert_with(|| {
                g.coords.push(c);
                g.osm_ids.push(id);
                (g.coords.len() - 1) as u32
            }))
        };
        for w in &extract.ways {
            let mps = w.speed_kmh / 3.6;
            for pair in w.nodes.windows(2) {
                // A way cut by the extract's boundary loses its outside nodes: skip those segments.
                let (Some(a), Some(b)) = (node(&mut g, pair[0]), node(&mut g, pair[1])) else {
                    continue;
                };
                if a == b {
                    continue;
                }
                let length_m = point(g.coords[a as usize]).distance_m(&point(g.coords[b as usize]));
                let time_ms = ((length_m / mps) * 1000.0).round().max(1.0) as u32;
                let edge = |from, to| RoadEdge { from, to, time_ms, length_m: length_m as f32, way_id: w.id };
                if w.oneway != Oneway::Backward {
                    g.edges.push(edge(a, b));
                }
                if w.oneway != Oneway::Forward {
                    g.edges.push(edge(b, a));
                }
            }
        }
        g.largest_component()
    }

    pub fn node_count(&self) -> usize {
        self.coords.len()
    }

    pub fn point(&self, node: u32) -> GeoPoint {
        point(self.coords[node as usize])
    }

    /// The subgraph of the largest strongly connected component, renumbered.
    pub(crate) fn largest_component(self) -> RoadGraph {
        let comp = strongly_connected(self.coords.len(), &self.edges);
        let mut sizes = HashMap::new();
        for c in &comp {
            *sizes.entry(*c).or_insert(0usize) += 1;
        }
        let Some((&best, _)) = sizes.iter().max_by_key(|(c, n)| (**n, std::cmp::Reverse(**c))) else {
            return self;
        };
        let mut renum = vec![u32::MAX; self.coords.len()];
        let mut out = RoadGraph::default();
        for (i, c) in comp.iter().enumerate() {
            if *c == best {
                renum[i] = out.coords.len() as u32;
                out.coords.push(self.coords[i]);
                out.osm_ids.push(self.osm_ids[i]);
            }
        }
        for e in self.edges {
            let (f, t) = (renum[e.from as usize], renum[e.to as usize]);
            if f != u32::MAX && t != u32::MAX {
                out.edges.push(RoadEdge { from: f, to: t, ..e });
            }
        }
        out
    }
}

pub fn point((lat, lon): (f64, f64)) -> GeoPoint {
    GeoPoint::new(lat, lon).unwrap_or_else(|_| GeoPoint::new(0.0, 0.0).expect("origin is valid"))
}

/// Tarjan's algorithm, iterative (city graphs are deep enough to overflow a recursive one).
/// Returns a component id per node.
pub fn strongly_connected(n: usize, edges: &[RoadEdge]) -> Vec<u32> {
    let mut adj_start = vec![0usize; n + 1];
    for e in edges {
        adj_start[e.from as usize + 1] += 1;
    }
    for i in 0..n {
        adj_start[i + 1] += adj_start[i];
    }
    let mut adj = vec![0u32; edges.len()];
    let mut fill = adj_start.clone();
    for e in edges {
        adj[fill[e.from as usize]] = e.to;
        fill[e.from as usize] += 1;
    }
    const UNSEEN: u32 = u32::MAX;
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0u32; n];
    let mut on_stack = vec![false; n];
    let mut comp = vec![UNSEEN; n];
    let mut stack = Vec::new();
    let mut call: Vec<(u32, usize)> = Vec::new();
    let mut next_index = 0u32;
    let mut next_comp = 0u32;
    for root in 0..n as u32 {
        if index[root as usize] != UNSEEN {
            continue;
        }
        call.push((root, adj_start[root as usize]));
        index[root as usize] = next_index;
        low[root as usize] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root as usize] = true;
        while let Some(&mut (v, ref mut pos)) = call.last_mut() {
            let vi = v as usize;
            if *pos < adj_start[vi + 1] {
                let w = adj[*pos];
                *pos += 1;
                let wi = w as usize;
                if index[wi] == UNSEEN {
                    index[wi] = next_index;
                    low[wi] = next_index;
                    next_index += 1;
                    stack.push(w);
                    on_stack[wi] = true;
                    call.push((w, adj_start[wi]));
                } else if on_stack[wi] {
                    low[vi] = low[vi].min(index[wi]);
                }
                continue;
            }
            call.pop();
            if let Some(&(parent, _)) = call.last() {
                low[parent as usize] = low[parent as usize].min(low[vi]);
            }
            if low[vi] == index[vi] {
                while let Some(w) = stack.pop() {
                    on_stack[w as usize] = false;
                    comp[w as usize] = next_comp;
                    if w == v {
                        break;
                    }
                }
                next_comp += 1;
            }
        }
    }
    comp
}

#[cfg(test)]
mod tests {
    use super::super::osm::Way;
    use super::*;

    /// Nodes 1..=n placed 100 m apart along a line east of a point in Helsinki.
    fn extract(ways: Vec<(i64, Oneway, Vec<i64>)>, nodes: &[i64]) -> Extract {
        let origin = GeoPoint::new(60.17, 24.94).unwrap();
        let nodes = nodes
            .iter()
            .map(|id| {
                let p = origin.offset(0.0, *id as f64 * 100.0);
                (*id, (p.lat(), p.lon()))
            })
            .collect();
        let ways = ways
            .into_iter()
            .map(|(id, oneway, nodes)| Way {
                id,
                highway: "residential".into(),
                oneway,
                speed_kmh: 36.0,
                nodes,
            })
            .collect();
        Extract { ways, nodes }
    }

    #[test]
    fn two_way_and_one_way_segments_make_the_right_edges() {
        let g = RoadGraph::build(&extract(
            vec![
                (10, Oneway::Both, vec![1, 2, 3]),
                (11, Oneway::Forward, vec![3, 4]),
                (12, Oneway::Backward, vec![1, 4]),
            ],
            &[1, 2, 3, 4],
        ));
        assert_eq!(g.node_count(), 4, "a one-way loop keeps every node reachable");
        assert_eq!(g.edges.len(), 6);
        let e = g.edges.iter().find(|e| e.way_id == 11).unwrap();
        assert_eq!((g.osm_ids[e.from as usize], g.osm_ids[e.to as usize]), (3, 4));
        let e = g.edges.iter().find(|e| e.way_id == 12).unwrap();
        assert_eq!(
            (g.osm_ids[e.from as usize], g.osm_ids[e.to as usize]),
            (4, 1),
            "backward runs against node order"
        );
        // 100 m at 36 km/h (10 m/s) is 10 s.
        assert!(g.edges.iter().filter(|e| e.way_id == 10).all(|e| (e.time_ms as i64 - 10_000).abs() <= 2));
    }

    #[test]
    fn a_dead_end_one_way_and_an_island_are_dropped() {
        let g = RoadGraph::build(&extract(
            vec![
                (1, Oneway::Both, vec![1, 2, 3]),
                // One way out to 4 and no way back: 4 is not strongly connected.
                (2, Oneway::Forward, vec![3, 4]),
                // An island: 8-9 connected to nothing else.
                (3, Oneway::Both, vec![8, 9]),
            ],
            &[1, 2, 3, 4, 8, 9],
        ));
        let mut ids = g.osm_ids.clone();
        ids.sort();
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(g.edges.len(), 4);
    }

    #[test]
    fn a_way_cut_by_the_extract_keeps_its_inside_segments() {
        let g = RoadGraph::build(&extract(vec![(1, Oneway::Both, vec![1, 2, 99, 3])], &[1, 2, 3]));
        assert_eq!(g.node_count(), 2, "1-2 stays; 2-99 and 99-3 have no coordinates");
    }

    #[test]
    fn tarjan_finds_components() {
        let e = |from, to| RoadEdge { from, to, time_ms: 1, length_m: 1.0, way_id: 0 };
        let comp = strongly_connected(5, &[e(0, 1), e(1, 2), e(2, 0), e(2, 3), e(3, 4), e(4, 3)]);
        assert_eq!(comp[0], comp[1]);
        assert_eq!(comp[1], comp[2]);
        assert_eq!(comp[3], comp[4]);
        assert_ne!(comp[0], comp[3]);
    }
}
