//! Counters kept by the adapters: what came in, what was refused and why, what went out.
//! Cheap atomics, read by `Application::metrics`, logged periodically by `serve`, and served
//! to Prometheus (`metrics.listen`, `GET /metrics`) with what the outbound fan-out's metrics
//! sink counts (`fanout`: incidents, offers, per-hop latency, cameras) and the writer's.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::mqtt::codec::RejectCode;

pub mod exposition;
pub mod fanout;
pub mod histogram;
pub mod scrape;
pub mod server;

pub use fanout::{FanoutStats, Hop, MetricsSink};
pub use scrape::{render, Sources};

#[derive(Default)]
pub struct Metrics {
    pub received: AtomicU64,
    pub published: AtomicU64,
    pub publish_failed: AtomicU64,
    /// Publishes that found the client's queue full and waited for room (nothing is dropped).
    pub publish_waited: AtomicU64,
    /// Position reports taken (the bulk lane's load).
    pub positions: AtomicU64,
    /// Position reports older than the unit's newest (delivered late): recorded, but they
    /// move nothing.
    pub positions_late: AtomicU64,
    pub broker_disconnects: AtomicU64,
    /// kuzet's outbound connection (`-out`) is connected.
    pub outbound_up: AtomicBool,
    /// Messages the broker dropped because a client's queue was full (broker.max_queued_messages),
    /// summed over broker restarts.
    pub broker_dropped: AtomicU64,
    /// The broker's own count as last reported (it starts again from 0 when the broker does).
    broker_dropped_reported: AtomicU64,
    /// Alarms over their button's rate limit: acted on all the same, and flagged on the incident.
    pub alarms_over_limit: AtomicU64,
    /// Edge cameras' detections refused because the watchlist search's queue was full.
    pub detections_shed: AtomicU64,
    rejects: [AtomicU64; RejectCode::ALL.len()],
}

impl Metrics {
    pub fn reject(&self, code: RejectCode) {
        self.rejects[code as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn rejects(&self, code: RejectCode) -> u64 {
        self.rejects[code as usize].load(Ordering::Relaxed)
    }

    pub fn rejects_total(&self) -> u64 {
        self.rejects.iter().map(|r| r.load(Ordering::Relaxed)).sum()
    }

    /// Takes the broker's cumulative dropped count; returns how many are new since the last.
    pub fn broker_dropped_now(&self, reported: u64) -> u64 {
        let last = self.broker_dropped_reported.swap(reported, Ordering::Relaxed);
        // Lower than before: the broker restarted and counts from 0 again.
        let new = if reported >= last { reported - last } else { reported };
        self.broker_dropped.fetch_add(new, Ordering::Relaxed);
        new
    }

    /// Every counter by name, for logs and tests.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        m.insert("received".into(), get(&self.received));
        m.insert("published".into(), get(&self.published));
        m.insert("publish_failed".into(), get(&self.publish_failed));
        m.insert("publish_waited".into(), get(&self.publish_waited));
        m.insert("positions".into(), get(&self.positions));
        m.insert("positions_late".into(), get(&self.positions_late));
        m.insert("broker_disconnects".into(), get(&self.broker_disconnects));
        m.insert("broker_dropped".into(), get(&self.broker_dropped));
        m.insert("alarms_over_limit".into(), get(&self.alarms_over_limit));
        m.insert("detections_shed".into(), get(&self.detections_shed));
        for code in RejectCode::ALL {
            m.insert(format!("rejects.{}", code.as_str()), self.rejects(code));
        }
        m
    }
}

#[cfg(test)]
mod tests;
