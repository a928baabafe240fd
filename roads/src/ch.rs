//! Queries over the contraction hierarchy `fast_paths` prepares, many sources to one target.
//! Dispatch asks for the time from each of several units to one incident: one upward search
//! back from the incident, kept, then one forward upward search per unit that stops as soon as
//! it cannot beat its best meeting, instead of a full bidirectional query per unit. The graph
//! is read out of `FastGraph` through its serde form (its fields are private) into u32 arrays,
//! half the memory of its usize ones.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use fast_paths::FastGraph;
use serde::{Deserialize, Serialize};

const NONE: u32 = u32::MAX;

/// `FastGraph`'s serde form, field for field (bincode is positional).
#[derive(Deserialize)]
struct FastGraphForm {
    _num_nodes: usize,
    ranks: Vec<usize>,
    edges_fwd: Vec<EdgeForm>,
    first_edge_ids_fwd: Vec<usize>,
    edges_bwd: Vec<EdgeForm>,
    first_edge_ids_bwd: Vec<usize>,
}

#[derive(Deserialize)]
struct EdgeForm {
    base_node: usize,
    adj_node: usize,
    weight: usize,
    replaced_in_edge: usize,
    replaced_out_edge: usize,
}

/// An edge of the hierarchy in its driving direction `from` -> `to`; a shortcut through a
/// node c is made of an in-edge of c (`down_in`, in `bwd`) and an out-edge of c (`down_out`,
/// in `fwd`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Arc {
    from: u32,
    to: u32,
    weight: u32,
    down_in: u32,
    down_out: u32,
}

/// The hierarchy: for each node, its edges to higher-ranked nodes, leaving (`fwd`) and
/// arriving (`bwd`), indexed by rank as `fast_paths` lays them out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hierarchy {
    rank: Vec<u32>,
    fwd_first: Vec<u32>,
    fwd: Vec<Arc>,
    bwd_first: Vec<u32>,
    bwd: Vec<Arc>,
}

/// A fastest path: its time in ms and its nodes, from the source node it left to the target
/// node it reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub ms: u64,
    pub nodes: Vec<u32>,
}

fn narrow(v: usize) -> u32 {
    if v == usize::MAX {
        NONE
    } else {
        u32::try_from(v).unwrap_or(NONE - 1)
    }
}

impl Hierarchy {
    pub fn from_fast_graph(fg: &FastGraph) -> anyhow::Result<Hierarchy> {
        let bytes = bincode::serialize(fg)?;
        let form: FastGraphForm = bincode::deserialize(&bytes)?;
        drop(bytes);
        anyhow::ensure!(
            form.first_edge_ids_fwd.last().copied() == Some(form.edges_fwd.len())
                && form.first_edge_ids_bwd.last().copied() == Some(form.edges_bwd.len()),
            "unexpected contraction hierarchy layout"
        );
        let arc = |e: &EdgeForm, forward: bool| {
            let (from, to) = if forward { (e.base_node, e.adj_node) } else { (e.adj_node, e.base_node) };
            Arc {
                from: narrow(from),
                to: narrow(to),
                weight: narrow(e.weight),
                down_in: narrow(e.replaced_in_edge),
                down_out: narrow(e.replaced_out_edge),
            }
        };
        Ok(Hierarchy {
            rank: form.ranks.iter().map(|r| narrow(*r)).collect(),
            fwd_first: form.first_edge_ids_fwd.iter().map(|r| narrow(*r)).collect(),
            fwd: form.edges_fwd.iter().map(|e| arc(e, true)).collect(),
            bwd_first: form.first_edge_ids_bwd.iter().map(|r| narrow(*r)).collect(),
            bwd: form.edges_bwd.iter().map(|e| arc(e, false)).collect(),
        })
    }

    pub fn node_count(&self) -> usize {
        self.rank.len()
    }

    fn out_arcs(&self, node: u32) -> &[Arc] {
        let r = self.rank[node as usize] as usize;
        &self.fwd[self.fwd_first[r] as usize..self.fwd_first[r + 1] as usize]
    }

    fn in_arcs(&self, node: u32) -> &[Arc] {
        let r = self.rank[node as usize] as usize;
        &self.bwd[self.bwd_first[r] as usize..self.bwd_first[r + 1] as usize]
    }

    /// The fastest path from each source (any of its start nodes, each with the ms already
    /// spent reaching it) to the target (any of its end nodes, each with the ms still to go).
    pub fn to_one(
        &self,
        scratch: &mut Scratch,
        sources: &[Vec<(u32, u64)>],
        target: &[(u32, u64)],
    ) -> Vec<Option<Route>> {
        scratch.fit(self.node_count());
        scratch.back.clear();
        for &(node, w) in target {
            scratch.back.reach(node, w, NONE);
        }
        // The whole upward space of the target: every meeting node a source may use.
        while let Some(Reverse((d, v))) = scratch.back.heap.pop() {
            if d > scratch.back.dist[v as usize] {
                continue;
            }
            // Stall on demand, as forward below: a stalled node keeps a time that is a real
            // path's, only not the fastest, so meetings through it never win wrongly.
            let back = &scratch.back;
            if self.out_arcs(v).iter().any(|a| {
                let du = back.dist[a.to as usize];
                du != u64::MAX && du + u64::from(a.weight) < d
            }) {
                continue;
            }
            for (i, a) in self.in_arcs(v).iter().enumerate() {
                let i = (self.bwd_first[self.rank[v as usize] as usize] as usize + i) as u32;
                scratch.back.reach(a.from, d + u64::from(a.weight), i);
            }
        }
        let out = sources.iter().map(|starts| self.one_source(scratch, starts)).collect();
        scratch.back.clear();
        out
    }

    fn one_source(&self, scratch: &mut Scratch, starts: &[(u32, u64)]) -> Option<Route> {
        let Scratch { back, fore, .. } = scratch;
        fore.clear();
        for &(node, w) in starts {
            fore.reach(node, w, NONE);
        }
        let (mut best, mut meet) = (u64::MAX, NONE);
        while let Some(Reverse((d, v))) = fore.heap.pop() {
            if d >= best {
                break;
            }
            if d > fore.dist[v as usize] {
                continue;
            }
            let b = back.dist[v as usize];
            if b != u64::MAX && d + b < best {
                best = d + b;
                meet = v;
            }
            // Stall on demand: reached more cheaply through a higher node coming down, this
            // node's upward edges cannot be on a fastest path from here.
            if self.in_arcs(v).iter().any(|a| {
                let du = fore.dist[a.from as usize];
                du != u64::MAX && du + u64::from(a.weight) < d
            }) {
                continue;
            }
            let first = self.fwd_first[self.rank[v as usize] as usize] as usize;
            for (i, a) in self.out_arcs(v).iter().enumerate() {
                fore.reach(a.to, d + u64::from(a.weight), (first + i) as u32);
            }
        }
        if meet == NONE {
            fore.clear();
            return None;
        }
        // Up from the source to the meeting node, then down to the target.
        let mut up = Vec::new();
        let mut v = meet;
        while fore.via[v as usize] != NONE {
            let a = self.fwd[fore.via[v as usize] as usize];
            up.push((true, fore.via[v as usize]));
            v = a.from;
        }
        let mut nodes = vec![v];
        for &(f, i) in up.iter().rev() {
            self.unpack(f, i, &mut nodes);
        }
        let mut v = meet;
        while back.via[v as usize] != NONE {
            let i = back.via[v as usize];
            self.unpack(false, i, &mut nodes);
            v = self.bwd[i as usize].to;
        }
        fore.clear();
        Some(Route { ms: best, nodes })
    }

    /// Appends the nodes after the first of an edge, shortcuts expanded to road edges.
    fn unpack(&self, forward: bool, edge: u32, nodes: &mut Vec<u32>) {
        let mut stack = vec![(forward, edge)];
        while let Some((f, i)) = stack.pop() {
            let a = if f { self.fwd[i as usize] } else { self.bwd[i as usize] };
            if a.down_in == NONE {
                nodes.push(a.to);
            } else {
                stack.push((true, a.down_out));
                stack.push((false, a.down_in));
            }
        }
    }
}

/// One search's labels, reset by the nodes it touched rather than by the whole graph.
#[derive(Default)]
struct Search {
    dist: Vec<u64>,
    via: Vec<u32>,
    touched: Vec<u32>,
    heap: BinaryHeap<Reverse<(u64, u32)>>,
}

impl Search {
    fn fit(&mut self, n: usize) {
        if self.dist.len() != n {
            self.dist = vec![u64::MAX; n];
            self.via = vec![NONE; n];
            self.touched.clear();
        }
    }

    fn reach(&mut self, node: u32, d: u64, via: u32) {
        let i = node as usize;
        if d < self.dist[i] {
            if self.dist[i] == u64::MAX {
                self.touched.push(node);
            }
            self.dist[i] = d;
            self.via[i] = via;
            self.heap.push(Reverse((d, node)));
        }
    }

    fn clear(&mut self) {
        for &n in &self.touched {
            self.dist[n as usize] = u64::MAX;
            self.via[n as usize] = NONE;
        }
        self.touched.clear();
        self.heap.clear();
    }
}

/// The working memory of queries, reused across them (one per concurrent caller).
#[derive(Default)]
pub struct Scratch {
    back: Search,
    fore: Search,
}

impl Scratch {
    fn fit(&mut self, n: usize) {
        self.back.fit(n);
        self.fore.fit(n);
    }
}
