//! Camera health from the frames themselves: no frames (offline), the same frame over and
//! over (frozen), or a near-uniform picture (lens covered, sprayed or pointed at a wall).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::image::{Frame, Yuv};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// Not seen a frame yet.
    Starting,
    Ok,
    Offline,
    Frozen,
    Covered,
}

impl HealthState {
    pub fn as_str(&self) -> &'static str {
        match self {
            HealthState::Starting => "starting",
            HealthState::Ok => "ok",
            HealthState::Offline => "offline",
            HealthState::Frozen => "frozen",
            HealthState::Covered => "covered",
        }
    }
}

#[derive(Debug, Clone)]
pub struct HealthConfig {
    /// No frame for this long: offline.
    pub offline_after: Duration,
    /// Every frame identical for this long: frozen.
    pub frozen_after: Duration,
    /// Near-uniform for this long: covered.
    pub covered_after: Duration,
    /// Standard deviation of luma (0-255) below which a frame counts as uniform.
    pub uniform_std: f32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            offline_after: Duration::from_secs(10),
            frozen_after: Duration::from_secs(30),
            covered_after: Duration::from_secs(3),
            uniform_std: 6.0,
        }
    }
}

/// A small luma summary of a frame: a 16x9 grid of block means and the spread of luma.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameStats {
    pub grid: [u8; 144],
    pub std: f32,
}

impl FrameStats {
    /// Sampled on a 64x36 lattice: cheap enough to run on every frame in the pipeline thread.
    pub fn of(frame: &Frame) -> Self {
        let w = frame.width as usize;
        Self::sampled(frame.width, frame.height, |x, y| {
            let p = &frame.data[(y * w + x) * 3..(y * w + x) * 3 + 3];
            // BT.601 luma, integer.
            (29 * p[0] as u32 + 150 * p[1] as u32 + 77 * p[2] as u32) >> 8
        })
    }

    /// The same from a YUV picture's luma plane, before any conversion.
    pub fn of_yuv(yuv: &Yuv<'_>) -> Self {
        let (y, stride) = (yuv.planes[0], yuv.strides[0]);
        Self::sampled(yuv.width, yuv.height, |x, r| y[r * stride + x] as u32)
    }

    fn sampled(width: u32, height: u32, luma: impl Fn(usize, usize) -> u32) -> Self {
        const GW: usize = 16;
        const GH: usize = 9;
        const SUB: usize = 4;
        let (w, h) = (width as usize, height as usize);
        let mut sums = [0u32; GW * GH];
        let (mut s, mut s2, mut n) = (0f64, 0f64, 0f64);
        for gy in 0..GH * SUB {
            let y = (gy * 2 + 1) * h / (GH * SUB * 2);
            for gx in 0..GW * SUB {
                let x = (gx * 2 + 1) * w / (GW * SUB * 2);
                let l = luma(x, y);
                sums[(gy / SUB) * GW + gx / SUB] += l;
                s += l as f64;
                s2 += (l * l) as f64;
                n += 1.0;
            }
        }
        let mean = s / n;
        let std = ((s2 / n - mean * mean).max(0.0)).sqrt() as f32;
        let mut grid = [0u8; GW * GH];
        for (g, sum) in grid.iter_mut().zip(sums) {
            *g = (sum / (SUB * SUB) as u32) as u8;
        }
        Self { grid, std }
    }
}

/// Follows one camera's frames and says when its state changes.
pub struct Health {
    cfg: HealthConfig,
    state: HealthState,
    last_frame: Option<Instant>,
    last_grid: Option<[u8; 144]>,
    same_since: Option<Instant>,
    uniform_since: Option<Instant>,
    started: Instant,
}

impl Health {
    pub fn new(cfg: HealthConfig, now: Instant) -> Self {
        Self {
            cfg,
            state: HealthState::Starting,
            last_frame: None,
            last_grid: None,
            same_since: None,
            uniform_since: None,
            started: now,
        }
    }

    pub fn state(&self) -> HealthState {
        self.state
    }

    /// A frame arrived; returns the new state when it changed.
    pub fn frame(&mut self, stats: &FrameStats, now: Instant) -> Option<HealthState> {
        self.last_frame = Some(now);
        if self.last_grid.as_ref() == Some(&stats.grid) {
            self.same_since.get_or_insert(now);
        } else {
            self.same_since = None;
            self.last_grid = Some(stats.grid);
        }
        if stats.std < self.cfg.uniform_std {
            self.uniform_since.get_or_insert(now);
        } else {
            self.uniform_since = None;
        }
        let held = |since: Option<Instant>, d: Duration| since.is_some_and(|s| now.duration_since(s) >= d);
        // Covered first: a covered lens also gives identical frames.
        let next = if held(self.uniform_since, self.cfg.covered_after) {
            HealthState::Covered
        } else if held(self.same_since, self.cfg.frozen_after) {
            HealthState::Frozen
        } else if self.uniform_since.is_some() || self.same_since.is_some() {
            // Not long enough to call it: keep whatever was said (Starting turns Ok).
            match self.state {
                HealthState::Starting | HealthState::Offline => HealthState::Ok,
                s => s,
            }
        } else {
            HealthState::Ok
        };
        self.set(next)
    }

    /// Time passes without frames; returns the new state when it changed.
    pub fn tick(&mut self, now: Instant) -> Option<HealthState> {
        let since = self.last_frame.unwrap_or(self.started);
        if now.duration_since(since) >= self.cfg.offline_after {
            self.same_since = None;
            self.uniform_since = None;
            return self.set(HealthState::Offline);
        }
        None
    }

    fn set(&mut self, s: HealthState) -> Option<HealthState> {
        (s != self.state).then(|| {
            self.state = s;
            s
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noisy(seed: u8) -> Frame {
        let data: Vec<u8> = (0..320 * 180 * 3).map(|i: usize| (i.wrapping_mul(31) as u8) ^ seed).collect();
        Frame::new(320, 180, data).unwrap()
    }

    #[test]
    fn states_follow_the_frames() {
        let t0 = Instant::now();
        let cfg = HealthConfig {
            offline_after: Duration::from_secs(5),
            frozen_after: Duration::from_secs(4),
            covered_after: Duration::from_secs(2),
            uniform_std: 6.0,
        };
        let mut h = Health::new(cfg, t0);
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(h.frame(&FrameStats::of(&noisy(1)), at(0)), Some(HealthState::Ok));
        assert_eq!(h.frame(&FrameStats::of(&noisy(2)), at(1)), None);
        // The same picture from 2 s on: frozen once it has held 4 s; a new one: ok again.
        for s in 2..6 {
            assert_eq!(h.frame(&FrameStats::of(&noisy(3)), at(s)), None);
        }
        assert_eq!(h.frame(&FrameStats::of(&noisy(3)), at(7)), Some(HealthState::Frozen));
        assert_eq!(h.frame(&FrameStats::of(&noisy(4)), at(8)), Some(HealthState::Ok));
        // Black for 2 s: covered (before frozen, though the frames are identical too).
        let black = FrameStats::of(&Frame::filled(320, 180, [0, 0, 0]));
        assert!(black.std < 1.0);
        assert_eq!(h.frame(&black, at(9)), None);
        assert_eq!(h.frame(&black, at(11)), Some(HealthState::Covered));
        // Nothing for 5 s: offline; a frame: ok.
        assert_eq!(h.tick(at(13)), None);
        assert_eq!(h.tick(at(16)), Some(HealthState::Offline));
        assert_eq!(h.frame(&FrameStats::of(&noisy(5)), at(17)), Some(HealthState::Ok));
    }

    #[test]
    fn a_camera_that_never_sends_goes_offline() {
        let t0 = Instant::now();
        let mut h = Health::new(HealthConfig::default(), t0);
        assert_eq!(h.tick(t0 + Duration::from_secs(9)), None);
        assert_eq!(h.tick(t0 + Duration::from_secs(10)), Some(HealthState::Offline));
        assert_eq!(h.tick(t0 + Duration::from_secs(11)), None);
    }
}
