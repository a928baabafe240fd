//! Motion gating, as Frigate does it: each frame's small grey copy against a running average
//! of the earlier ones. Where nothing changed, detection is skipped (and the frame is never
//! converted for it); where something moved, only that region (with a margin) is searched.
//! A full-frame detection every `full_every_s` finds people who stand still.

use std::time::Duration;

use serde::Deserialize;

/// A rectangle in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Rect {
    pub fn area(&self) -> u64 {
        self.w as u64 * self.h as u64
    }

    pub fn union(&self, o: &Rect) -> Rect {
        let (x0, y0) = (self.x.min(o.x), self.y.min(o.y));
        let (x1, y1) = ((self.x + self.w).max(o.x + o.w), (self.y + self.h).max(o.y + o.h));
        Rect { x: x0, y: y0, w: x1 - x0, h: y1 - y0 }
    }

    /// Whether `o` lies wholly inside.
    pub fn contains(&self, o: &Rect) -> bool {
        o.x >= self.x && o.y >= self.y && o.x + o.w <= self.x + self.w && o.y + o.h <= self.y + self.h
    }
}

/// Where to look for faces in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    /// Nothing moved: no detection.
    Skip,
    /// The whole frame.
    Full,
    /// Only this part of it.
    Region(Rect),
}

/// Motion gating settings (kuzet's `[vision.motion]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MotionConfig {
    /// Off: every frame is detected in full.
    pub enabled: bool,
    /// Width of the grey copy motion is looked for in; its height keeps the frame's shape.
    pub grid_width: u32,
    /// Weight of each new frame in the running average (0..1).
    pub alpha: f32,
    /// Change in grey level (0-255) that counts as motion.
    pub threshold: u8,
    /// Smallest changed area, in cells of the grey copy, that counts as something moving.
    pub min_area: u32,
    /// Each side of the moved region grows by this share of its larger side (faces sit above
    /// the moving body, and the body may move more than the head).
    pub margin: f32,
    /// A region covering more than this share of the frame is detected as the whole frame.
    pub full_area: f32,
    /// A full-frame detection at least this often, moving or not (people standing still).
    pub full_every_s: f64,
}

impl Default for MotionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            grid_width: 160,
            alpha: 0.05,
            threshold: 20,
            min_area: 4,
            margin: 0.5,
            full_area: 0.5,
            full_every_s: 2.0,
        }
    }
}

impl MotionConfig {
    /// Why these settings cannot work, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        if !(8..=1024).contains(&self.grid_width) {
            return Err("grid_width must be within 8..1024".into());
        }
        if !(self.alpha > 0.0 && self.alpha <= 1.0) {
            return Err("alpha must be within (0, 1]".into());
        }
        if !(self.margin.is_finite() && self.margin >= 0.0 && (0.0..=1.0).contains(&self.full_area)) {
            return Err("margin must be 0 or more and full_area within 0..1".into());
        }
        if !self.full_every_s.is_finite() || self.full_every_s < 0.0 {
            return Err("full_every_s must be a number of seconds, 0 or more".into());
        }
        Ok(())
    }

    /// The grey copy's size for a frame.
    pub fn grid(&self, width: u32, height: u32) -> (usize, usize) {
        let gw = self.grid_width.min(width).max(1) as usize;
        let gh = ((height as u64 * gw as u64 + width as u64 / 2) / width.max(1) as u64).max(1) as usize;
        (gw, gh)
    }
}

/// One camera's motion state.
pub struct Motion {
    cfg: MotionConfig,
    size: (u32, u32),
    grid: (usize, usize),
    avg: Vec<f32>,
    mask: Vec<bool>,
    grown: Vec<bool>,
    stack: Vec<usize>,
    last_full: Option<Duration>,
    moved: Vec<Rect>,
}

impl Motion {
    pub fn new(cfg: MotionConfig) -> Self {
        Self {
            cfg,
            size: (0, 0),
            grid: (0, 0),
            avg: Vec::new(),
            mask: Vec::new(),
            grown: Vec::new(),
            stack: Vec::new(),
            last_full: None,
            moved: Vec::new(),
        }
    }

    pub fn config(&self) -> &MotionConfig {
        &self.cfg
    }

    /// The regions that moved in the last frame, in frame pixels (before the margin).
    pub fn moved(&self) -> &[Rect] {
        &self.moved
    }

    /// Where to detect in a `width` x `height` frame whose grey copy (of `cfg.grid(..)` size)
    /// is `small`, seen at stream time `at`.
    pub fn update(&mut self, width: u32, height: u32, small: &[u8], at: Duration) -> Focus {
        self.moved.clear();
        let (gw, gh) = self.cfg.grid(width, height);
        let n = gw * gh;
        let due = self
            .last_full
            .is_none_or(|t| at.saturating_sub(t) >= Duration::from_secs_f64(self.cfg.full_every_s));
        if small.len() != n || self.size != (width, height) || self.avg.len() != n {
            // First frame, or the stream changed size: start the average over.
            self.size = (width, height);
            self.grid = (gw, gh);
            self.avg = small.iter().map(|&v| v as f32).collect();
            self.mask = vec![false; n];
            self.grown = vec![false; n];
            return self.full(at);
        }
        let thr = self.cfg.threshold as f32;
        let a = self.cfg.alpha;
        let mut changed = 0usize;
        for ((m, avg), &v) in self.mask.iter_mut().zip(self.avg.iter_mut()).zip(small) {
            let v = v as f32;
            *m = (v - *avg).abs() > thr;
            changed += *m as usize;
            *avg += a * (v - *avg);
        }
        if changed * 10 > n * 6 {
            // Most of the picture changed at once (lights, a camera that moved, a new clip):
            // take the new picture as the background.
            self.avg.iter_mut().zip(small).for_each(|(avg, &v)| *avg = v as f32);
            self.moved.push(Rect { x: 0, y: 0, w: width, h: height });
            return self.full(at);
        }
        if changed == 0 {
            return if due { self.full(at) } else { Focus::Skip };
        }
        self.dilate(gw, gh);
        self.components(gw, gh, width, height);
        let Some(union) = self.moved.iter().copied().reduce(|a, b| a.union(&b)) else {
            return if due { self.full(at) } else { Focus::Skip };
        };
        let grow = (union.w.max(union.h) as f32 * self.cfg.margin).round() as u32;
        let x0 = union.x.saturating_sub(grow);
        let y0 = union.y.saturating_sub(grow);
        let x1 = (union.x + union.w + grow).min(width);
        let y1 = (union.y + union.h + grow).min(height);
        let region = Rect { x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
        if due || region.area() as f64 >= self.cfg.full_area as f64 * width as f64 * height as f64 {
            return self.full(at);
        }
        Focus::Region(region)
    }

    fn full(&mut self, at: Duration) -> Focus {
        self.last_full = Some(at);
        Focus::Full
    }

    /// 3x3 dilation of the mask into `grown`: one moving object's cells join up.
    fn dilate(&mut self, gw: usize, gh: usize) {
        self.grown.fill(false);
        for y in 0..gh {
            for x in 0..gw {
                if !self.mask[y * gw + x] {
                    continue;
                }
                for yy in y.saturating_sub(1)..(y + 2).min(gh) {
                    for xx in x.saturating_sub(1)..(x + 2).min(gw) {
                        self.grown[yy * gw + xx] = true;
                    }
                }
            }
        }
    }

    /// Bounding boxes of the connected changed areas with at least `min_area` changed cells.
    fn components(&mut self, gw: usize, gh: usize, width: u32, height: u32) {
        let min_area = self.cfg.min_area.max(1) as usize;
        let cell = |x: usize, y: usize| -> Rect {
            let x0 = (x as u64 * width as u64 / gw as u64) as u32;
            let y0 = (y as u64 * height as u64 / gh as u64) as u32;
            let x1 = ((x as u64 + 1) * width as u64).div_ceil(gw as u64) as u32;
            let y1 = ((y as u64 + 1) * height as u64).div_ceil(gh as u64) as u32;
            Rect { x: x0, y: y0, w: x1 - x0, h: y1 - y0 }
        };
        for start in 0..gw * gh {
            if !self.grown[start] {
                continue;
            }
            self.grown[start] = false;
            self.stack.push(start);
            let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
            let mut area = 0;
            while let Some(i) = self.stack.pop() {
                let (x, y) = (i % gw, i / gw);
                area += self.mask[i] as usize;
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
                let push = |j: usize, g: &mut Vec<bool>, s: &mut Vec<usize>| {
                    if g[j] {
                        g[j] = false;
                        s.push(j);
                    }
                };
                if x > 0 {
                    push(i - 1, &mut self.grown, &mut self.stack);
                }
                if x + 1 < gw {
                    push(i + 1, &mut self.grown, &mut self.stack);
                }
                if y > 0 {
                    push(i - gw, &mut self.grown, &mut self.stack);
                }
                if y + 1 < gh {
                    push(i + gw, &mut self.grown, &mut self.stack);
                }
            }
            if area >= min_area {
                self.moved.push(cell(x0, y0).union(&cell(x1, y1)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Yuv;

    /// A 640x360 I420 picture: a textured still scene, and optionally a bright 60x80 patch.
    fn scene(patch: Option<(u32, u32)>, noise: u32) -> Vec<u8> {
        let (w, h) = (640u32, 360u32);
        let mut y = vec![0u8; (w * h) as usize];
        for r in 0..h {
            for c in 0..w {
                // Stripes and a gradient, plus a little frame-to-frame noise like an encoder's.
                let base = ((c / 16 + r / 24) % 2) * 60 + c * 100 / w + 40;
                let jitter = (r.wrapping_mul(7919) ^ c.wrapping_mul(104729) ^ noise.wrapping_mul(31)) % 5;
                y[(r * w + c) as usize] = (base + jitter) as u8;
            }
        }
        if let Some((px, py)) = patch {
            for r in py..py + 80 {
                for c in px..px + 60 {
                    y[(r * w + c) as usize] = 240;
                }
            }
        }
        let mut data = y;
        data.extend(std::iter::repeat_n(128u8, (w * h / 2) as usize));
        data
    }

    fn grey(data: &[u8], cfg: &MotionConfig) -> Vec<u8> {
        let (gw, gh) = cfg.grid(640, 360);
        Yuv::i420(640, 360, data).unwrap().small_grey(gw, gh)
    }

    #[test]
    fn a_still_scene_is_not_detected_after_the_first_frame() {
        let cfg = MotionConfig { full_every_s: 10.0, ..MotionConfig::default() };
        let mut m = Motion::new(cfg.clone());
        let mut decisions = Vec::new();
        for i in 0..40u32 {
            let small = grey(&scene(None, i), &cfg);
            decisions.push(m.update(640, 360, &small, Duration::from_millis(200 * i as u64)));
        }
        assert_eq!(decisions[0], Focus::Full);
        assert!(decisions[1..].iter().all(|d| *d == Focus::Skip), "{decisions:?}");
        // The periodic full-frame look comes when due.
        let small = grey(&scene(None, 99), &cfg);
        assert_eq!(m.update(640, 360, &small, Duration::from_secs(10)), Focus::Full);
        assert_eq!(m.update(640, 360, &small, Duration::from_millis(10_200)), Focus::Skip);
    }

    #[test]
    fn a_moving_patch_gives_a_region_that_covers_it() {
        let cfg = MotionConfig { full_every_s: 60.0, ..MotionConfig::default() };
        let mut m = Motion::new(cfg.clone());
        for i in 0..10u32 {
            let small = grey(&scene(None, i), &cfg);
            m.update(640, 360, &small, Duration::from_millis(200 * i as u64));
        }
        for step in 0..8u32 {
            let (px, py) = (100 + step * 30, 150);
            let small = grey(&scene(Some((px, py)), 10 + step), &cfg);
            let focus = m.update(640, 360, &small, Duration::from_millis(2_000 + 200 * step as u64));
            let patch = Rect { x: px, y: py, w: 60, h: 80 };
            let Focus::Region(r) = focus else { panic!("step {step}: {focus:?}") };
            assert!(r.contains(&patch), "step {step}: {r:?} does not hold {patch:?}");
            assert!(r.area() * 4 < 640 * 360, "step {step}: {r:?} is most of the frame");
            assert!(m.moved().iter().any(|b| b.union(&patch).area() < b.area() + patch.area()));
        }
    }

    #[test]
    fn a_change_of_the_whole_picture_is_detected_in_full_and_becomes_the_background() {
        let cfg = MotionConfig { full_every_s: 60.0, ..MotionConfig::default() };
        let mut m = Motion::new(cfg.clone());
        let dark: Vec<u8> = grey(&scene(None, 0), &cfg);
        let bright: Vec<u8> = dark.iter().map(|v| v.saturating_add(80)).collect();
        m.update(640, 360, &dark, Duration::ZERO);
        assert_eq!(m.update(640, 360, &dark, Duration::from_millis(200)), Focus::Skip);
        assert_eq!(m.update(640, 360, &bright, Duration::from_millis(400)), Focus::Full);
        assert_eq!(m.update(640, 360, &bright, Duration::from_millis(600)), Focus::Skip);
    }
}
