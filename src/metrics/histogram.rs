//! A latency histogram of atomics: observing is a few relaxed adds, no lock, so it can sit
//! beside the alarm path; reading it for a scrape never stops an observer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (µs) of the latency buckets: 100 µs (an alarm's hops inside kuzet) up to an
/// hour (a unit's time on scene). Above the last: the `+Inf` bucket alone.
pub const LATENCY_BOUNDS_US: &[u64] = &[
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    120_000_000,
    300_000_000,
    600_000_000,
    1_800_000_000,
    3_600_000_000,
];

/// Counts per bucket (not cumulative: one add per observation), the sum in µs.
pub struct Histogram {
    bounds_us: &'static [u64],
    /// One per bound, then the one above every bound.
    buckets: Box<[AtomicU64]>,
    sum_us: AtomicU64,
}

/// A histogram as read for one scrape: cumulative counts, with `count` equal to the last
/// (`+Inf`) by construction.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramView {
    /// (upper bound in seconds, observations at or below it), in increasing order.
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_s: f64,
}

impl Histogram {
    pub fn new(bounds_us: &'static [u64]) -> Self {
        debug_assert!(bounds_us.windows(2).all(|w| w[0] < w[1]), "bounds increase");
        Self {
            bounds_us,
            buckets: (0..=bounds_us.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
        }
    }

    pub fn latency() -> Self {
        Self::new(LATENCY_BOUNDS_US)
    }

    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.observe_us(us);
    }

    pub fn observe_us(&self, us: u64) {
        // The first bucket whose bound is at or above the value (Prometheus' `le`).
        let i = self.bounds_us.partition_point(|b| *b < us);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Cumulative counts; the total is summed from the buckets read, so `+Inf` and `count`
    /// agree even while observations come in.
    pub fn view(&self) -> HistogramView {
        let mut total = 0u64;
        let mut buckets = Vec::with_capacity(self.bounds_us.len());
        for (b, n) in self.bounds_us.iter().zip(self.buckets.iter()) {
            total += n.load(Ordering::Relaxed);
            buckets.push((*b as f64 / 1e6, total));
        }
        total += self.buckets[self.bounds_us.len()].load(Ordering::Relaxed);
        HistogramView { buckets, count: total, sum_s: self.sum_us.load(Ordering::Relaxed) as f64 / 1e6 }
    }
}
