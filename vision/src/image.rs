//! Frames as the pipelines hand them over: packed 8-bit BGR, rows without padding.

use std::sync::Arc;

/// One decoded video frame or photo, BGR, `width * height * 3` bytes.
#[derive(Clone)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub data: Arc<[u8]>,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Frame({}x{})", self.width, self.height)
    }
}

impl Frame {
    /// A frame from packed BGR bytes; `None` when the size does not match.
    pub fn new(width: u32, height: u32, data: impl Into<Arc<[u8]>>) -> Option<Self> {
        let data = data.into();
        (data.len() == width as usize * height as usize * 3 && width > 0 && height > 0).then_some(Self {
            width,
            height,
            data,
        })
    }

    /// A frame of one colour, for tests and synthetic sources.
    pub fn filled(width: u32, height: u32, bgr: [u8; 3]) -> Self {
        let data: Vec<u8> = bgr.iter().copied().cycle().take(width as usize * height as usize * 3).collect();
        Self { width, height, data: data.into() }
    }

    /// Bilinear sample of channel `c` at (x, y) in pixel-centre coordinates; 0 outside.
    #[inline]
    pub fn sample(&self, x: f32, y: f32, c: usize) -> f32 {
        let (w, h) = (self.width as i64, self.height as i64);
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = (x - x0, y - y0);
        let (x0, y0) = (x0 as i64, y0 as i64);
        let px = |xx: i64, yy: i64| -> f32 {
            if xx < 0 || yy < 0 || xx >= w || yy >= h {
                0.0
            } else {
                self.data[((yy * w + xx) * 3) as usize + c] as f32
            }
        };
        let top = px(x0, y0) * (1.0 - fx) + px(x0 + 1, y0) * fx;
        let bottom = px(x0, y0 + 1) * (1.0 - fx) + px(x0 + 1, y0 + 1) * fx;
        top * (1.0 - fy) + bottom * fy
    }

    /// Bilinear sample with the border pixels repeated outside (as a resize does).
    #[inline]
    pub fn sample_clamped(&self, x: f32, y: f32, c: usize) -> f32 {
        let x = x.clamp(0.0, (self.width - 1) as f32);
        let y = y.clamp(0.0, (self.height - 1) as f32);
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(self.width as usize - 1), (y0 + 1).min(self.height as usize - 1));
        let (fx, fy) = (x - x0 as f32, y - y0 as f32);
        let w = self.width as usize;
        let px = |xx: usize, yy: usize| self.data[(yy * w + xx) * 3 + c] as f32;
        let top = px(x0, y0) * (1.0 - fx) + px(x1, y0) * fx;
        let bottom = px(x0, y1) * (1.0 - fx) + px(x1, y1) * fx;
        top * (1.0 - fy) + bottom * fy
    }

    /// The rectangle (clamped to the frame) as a new frame.
    pub fn crop(&self, x: f32, y: f32, w: f32, h: f32) -> Option<Frame> {
        let x0 = x.max(0.0).floor() as u32;
        let y0 = y.max(0.0).floor() as u32;
        let x1 = ((x + w).ceil() as u32).min(self.width);
        let y1 = ((y + h).ceil() as u32).min(self.height);
        if x1 <= x0 || y1 <= y0 {
            return None;
        }
        let (cw, ch) = (x1 - x0, y1 - y0);
        let mut out = Vec::with_capacity((cw * ch * 3) as usize);
        for row in y0..y1 {
            let start = ((row * self.width + x0) * 3) as usize;
            out.extend_from_slice(&self.data[start..start + (cw * 3) as usize]);
        }
        Frame::new(cw, ch, out)
    }
}

/// The colour matrix of a YUV picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matrix {
    Bt601,
    Bt709,
}

/// A decoded picture as the decoder gives it: planar YUV 4:2:0 (I420), borrowed, rows possibly
/// padded. Motion gating reads only its luma; it becomes a BGR `Frame` only when detected.
pub struct Yuv<'a> {
    pub width: u32,
    pub height: u32,
    pub planes: [&'a [u8]; 3],
    pub strides: [usize; 3],
    pub matrix: Matrix,
}

impl<'a> Yuv<'a> {
    /// Packed I420 (no padding) in `data`.
    pub fn i420(width: u32, height: u32, data: &'a [u8]) -> Option<Self> {
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        if data.len() < w * h + 2 * cw * ch || w == 0 || h == 0 {
            return None;
        }
        let (y, rest) = data.split_at(w * h);
        let (u, v) = rest.split_at(cw * ch);
        Some(Self { width, height, planes: [y, u, v], strides: [w, cw, cw], matrix: Matrix::Bt601 })
    }

    /// A `gw` x `gh` grey copy: each cell the mean luma of its block (every other row and
    /// column sampled: enough against noise at a quarter of the reads).
    pub fn small_grey(&self, gw: usize, gh: usize) -> Vec<u8> {
        let (w, h) = (self.width as usize, self.height as usize);
        let (y, stride) = (self.planes[0], self.strides[0]);
        let mut out = vec![0u8; gw * gh];
        let mut sums = vec![0u32; gw];
        let mut counts = vec![0u32; gw];
        for gy in 0..gh {
            let (r0, r1) = (gy * h / gh, ((gy + 1) * h / gh).max(gy * h / gh + 1));
            sums.fill(0);
            counts.fill(0);
            for r in (r0..r1.min(h)).step_by(2) {
                let row = &y[r * stride..r * stride + w];
                for gx in 0..gw {
                    let (c0, c1) = (gx * w / gw, ((gx + 1) * w / gw).max(gx * w / gw + 1));
                    let mut s = 0u32;
                    let mut n = 0u32;
                    for &v in row[c0..c1.min(w)].iter().step_by(2) {
                        s += v as u32;
                        n += 1;
                    }
                    sums[gx] += s;
                    counts[gx] += n;
                }
            }
            for gx in 0..gw {
                out[gy * gw + gx] = (sums[gx] / counts[gx].max(1)) as u8;
            }
        }
        out
    }

    /// Packed BGR (limited-range YUV, as H.264 cameras send).
    pub fn to_bgr(&self) -> Frame {
        let (w, h) = (self.width as usize, self.height as usize);
        // Coefficients x256: (Y scale, V->R, U->G, V->G, U->B).
        let (ky, vr, ug, vg, ub) = match self.matrix {
            Matrix::Bt601 => (298i32, 409i32, 100i32, 208i32, 516i32),
            Matrix::Bt709 => (298, 459, 55, 136, 541),
        };
        // Made in place: a Vec turned into an Arc would be copied, 2.7 MB a 720p frame.
        let mut data: Arc<[u8]> = std::iter::repeat_n(0u8, w * h * 3).collect();
        let out = Arc::get_mut(&mut data).expect("just made");
        let [ys, us, vs] = self.strides;
        for r in 0..h {
            let yrow = &self.planes[0][r * ys..r * ys + w];
            let urow = &self.planes[1][(r / 2) * us..];
            let vrow = &self.planes[2][(r / 2) * vs..];
            let orow = &mut out[r * w * 3..(r + 1) * w * 3];
            for (c, (o, &yv)) in orow.chunks_exact_mut(3).zip(yrow).enumerate() {
                let cy = ky * (yv as i32 - 16);
                let d = urow[c / 2] as i32 - 128;
                let e = vrow[c / 2] as i32 - 128;
                let clamp = |v: i32| ((v + 128) >> 8).clamp(0, 255) as u8;
                o[0] = clamp(cy + ub * d);
                o[1] = clamp(cy - ug * d - vg * e);
                o[2] = clamp(cy + vr * e);
            }
        }
        Frame { width: self.width, height: self.height, data }
    }
}
