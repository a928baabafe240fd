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
