//! Faces: YuNet detection, 5-point alignment and SFace embeddings, on ONNX Runtime.
//!
//! The models are OpenCV-zoo's YuNet (input 1x3x640x640 BGR 0-255; outputs cls/obj/bbox/kps at
//! strides 8, 16, 32) and SFace (input 1x3x112x112 RGB 0-255; 128 floats), as scripts/models.sh
//! prepares them. Pre- and post-processing follow OpenCV's FaceDetectorYN and FaceRecognizerSF,
//! and tests/vision/reference.py does the same in Python.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;

use crate::image::Frame;
use crate::motion::Focus;

/// The detector's square input side.
pub const DETECT_SIZE: u32 = 640;
/// The aligned face crop's side.
pub const CROP_SIZE: u32 = 112;
/// Embedding length.
pub const DIM: usize = 128;

/// Where the five landmarks (right eye, left eye, nose tip, right and left mouth corner) of
/// a 112x112 crop belong (the ArcFace template SFace was trained with).
const TEMPLATE: [[f32; 2]; 5] =
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]];

const STRIDES: [u32; 3] = [8, 16, 32];

#[derive(Debug, thiserror::Error)]
pub enum FaceError {
    #[error("ONNX Runtime library {path}: {reason}")]
    Runtime { path: PathBuf, reason: String },
    #[error("model {path}: {reason}")]
    Model { path: PathBuf, reason: String },
    #[error("inference: {0}")]
    Inference(String),
}

impl From<ort::Error> for FaceError {
    fn from(e: ort::Error) -> Self {
        FaceError::Inference(e.to_string())
    }
}

/// A face found in a frame, in the frame's pixel coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
    pub score: f32,
    /// Right eye, left eye, nose tip, right and left mouth corner.
    pub landmarks: [[f32; 2]; 5],
}

impl Detection {
    pub fn area(&self) -> f32 {
        self.w.max(0.0) * self.h.max(0.0)
    }

    /// Intersection over union of the two boxes.
    pub fn iou(&self, o: &Detection) -> f32 {
        let ix = (self.x + self.w).min(o.x + o.w) - self.x.max(o.x);
        let iy = (self.y + self.h).min(o.y + o.h) - self.y.max(o.y);
        if ix <= 0.0 || iy <= 0.0 {
            return 0.0;
        }
        let inter = ix * iy;
        inter / (self.area() + o.area() - inter)
    }
}

/// A unit-length face embedding.
pub type Embedding = [f32; DIM];

/// Cosine similarity of two unit-length embeddings.
pub fn cosine(a: &Embedding, b: &Embedding) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The models and settings of one inference thread. A session runs one call at a time, so
/// each thread of the pool owns its own.
pub struct FaceModels {
    detector: Session,
    embedder: Session,
    /// Detections below this score are dropped.
    pub min_score: f32,
    /// Overlapping detections above this IoU are merged (non-maximum suppression).
    pub nms_iou: f32,
    input: Vec<f32>,
}

/// The settings of the face models.
#[derive(Debug, Clone)]
pub struct ModelPaths {
    /// libonnxruntime.so (scripts/models.sh puts it in target/models/).
    pub runtime: PathBuf,
    pub detector: PathBuf,
    pub embedder: PathBuf,
}

impl ModelPaths {
    /// The files scripts/models.sh prepares, in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            runtime: dir.join("libonnxruntime.so"),
            detector: dir.join("face_detection_yunet.onnx"),
            embedder: dir.join("face_recognition_sface.onnx"),
        }
    }
}

/// The process's ONNX Runtime environment, loaded once from `lib`.
pub fn runtime(lib: &Path) -> Result<Environment, FaceError> {
    static ENV: OnceLock<Result<Environment, String>> = OnceLock::new();
    let r = ENV.get_or_init(|| {
        if !lib.is_file() {
            return Err("not found (run scripts/models.sh)".into());
        }
        let b = ort::init_from(lib).map_err(|e| e.to_string())?;
        b.with_name("kuzet").build().map_err(|e| e.to_string())
    });
    r.clone().map_err(|reason| FaceError::Runtime { path: lib.to_owned(), reason })
}

fn session(env: &Environment, path: &Path, threads: usize) -> Result<Session, FaceError> {
    let model = |e: String| FaceError::Model { path: path.to_owned(), reason: e };
    if !path.is_file() {
        return Err(model("not found (run scripts/models.sh)".into()));
    }
    Session::builder(env)
        .map_err(|e| model(e.to_string()))?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|e| model(e.to_string()))?
        .with_intra_threads(threads.max(1))
        .map_err(|e| model(e.to_string()))?
        .with_inter_threads(1)
        .map_err(|e| model(e.to_string()))?
        // The pool's threads share the cores with the pipelines: spinning would steal them.
        .with_intra_op_spinning(false)
        .map_err(|e| model(e.to_string()))?
        .commit_from_file(path)
        .map_err(|e| model(e.to_string()))
}

impl FaceModels {
    /// Loads both models; `threads` is ONNX Runtime's intra-op thread count per session.
    pub fn load(paths: &ModelPaths, threads: usize) -> Result<Self, FaceError> {
        let env = runtime(&paths.runtime)?;
        Ok(Self {
            detector: session(&env, &paths.detector, threads)?,
            embedder: session(&env, &paths.embedder, threads)?,
            min_score: 0.6,
            nms_iou: 0.3,
            input: vec![0.0; (3 * DETECT_SIZE * DETECT_SIZE) as usize],
        })
    }

    /// Every face in `frame`, best first.
    pub fn detect(&mut self, frame: &Frame) -> Result<Vec<Detection>, FaceError> {
        self.detect_in(frame, &Focus::Full)
    }

    /// The faces where `focus` says to look (none for `Skip`), in frame coordinates. A region
    /// is searched at up to the frame's own resolution, so a face there is at least as large
    /// to the detector as in a full-frame look.
    pub fn detect_in(&mut self, frame: &Frame, focus: &Focus) -> Result<Vec<Detection>, FaceError> {
        let (x0, y0, rw, rh, max_scale) = match focus {
            Focus::Skip => return Ok(Vec::new()),
            Focus::Full => (0.0, 0.0, frame.width, frame.height, f32::INFINITY),
            Focus::Region(r) => {
                let w = r.w.min(frame.width.saturating_sub(r.x));
                let h = r.h.min(frame.height.saturating_sub(r.y));
                if w == 0 || h == 0 {
                    return Ok(Vec::new());
                }
                (r.x as f32, r.y as f32, w, h, 1.0)
            }
        };
        let side = DETECT_SIZE as usize;
        // One scale for both sides; the image sits at the top left, zeros to the right and below.
        let scale = (DETECT_SIZE as f32 / rw.max(rh) as f32).min(max_scale);
        let sw = ((rw as f32 * scale).round() as usize).min(side);
        let sh = ((rh as f32 * scale).round() as usize).min(side);
        self.input.fill(0.0);
        let plane = side * side;
        let inv = 1.0 / scale;
        // Pixel centres of the resized image mapped back (as OpenCV's INTER_LINEAR does), with
        // the border repeated; the taps and weights of each column are worked out once.
        let taps = |i: usize, origin: f32, size: u32| {
            let v = (origin + ((i as f32 + 0.5) * inv - 0.5).max(0.0)).clamp(0.0, (size - 1) as f32);
            let v0 = v.floor() as usize;
            (v0, (v0 + 1).min(size as usize - 1), v - v0 as f32)
        };
        let cols: Vec<(usize, usize, f32)> = (0..sw).map(|x| taps(x, x0, frame.width)).collect();
        let w = frame.width as usize;
        let data = &frame.data;
        for y in 0..sh {
            let (ya, yb, fy) = taps(y, y0, frame.height);
            let (ra, rb) = (ya * w * 3, yb * w * 3);
            for (x, &(xa, xb, fx)) in cols.iter().enumerate() {
                let at = y * side + x;
                for c in 0..3 {
                    let p = |r: usize, xx: usize| data[r + xx * 3 + c] as f32;
                    let top = p(ra, xa) * (1.0 - fx) + p(ra, xb) * fx;
                    let bottom = p(rb, xa) * (1.0 - fx) + p(rb, xb) * fx;
                    self.input[c * plane + at] = top * (1.0 - fy) + bottom * fy;
                }
            }
        }
        let outputs = self
            .detector
            .run(ort::inputs![TensorRef::from_array_view(([1usize, 3, side, side], &self.input[..]))?])?;
        let mut found = Vec::new();
        for stride in STRIDES {
            let get = |name: String| -> Result<&[f32], FaceError> {
                let v = outputs
                    .get(&name)
                    .ok_or_else(|| FaceError::Inference(format!("the detector has no output {name}")))?;
                Ok(v.try_extract_tensor::<f32>()?.1)
            };
            let cls = get(format!("cls_{stride}"))?;
            let obj = get(format!("obj_{stride}"))?;
            let bbox = get(format!("bbox_{stride}"))?;
            let kps = get(format!("kps_{stride}"))?;
            let cols = (DETECT_SIZE / stride) as usize;
            let s = stride as f32;
            for (i, (&c, &o)) in cls.iter().zip(obj).enumerate() {
                let score = (c.clamp(0.0, 1.0) * o.clamp(0.0, 1.0)).sqrt();
                if score < self.min_score {
                    continue;
                }
                let (r, col) = ((i / cols) as f32, (i % cols) as f32);
                let b = &bbox[i * 4..i * 4 + 4];
                let (cx, cy) = ((col + b[0]) * s, (r + b[1]) * s);
                let (w, h) = (b[2].exp() * s, b[3].exp() * s);
                let k = &kps[i * 10..i * 10 + 10];
                let mut landmarks = [[0.0; 2]; 5];
                for (n, l) in landmarks.iter_mut().enumerate() {
                    *l = [x0 + (k[2 * n] + col) * s * inv, y0 + (k[2 * n + 1] + r) * s * inv];
                }
                found.push(Detection {
                    x: x0 + (cx - w / 2.0) * inv,
                    y: y0 + (cy - h / 2.0) * inv,
                    w: w * inv,
                    h: h * inv,
                    score,
                    landmarks,
                });
            }
        }
        Ok(nms(found, self.nms_iou))
    }

    /// The 112x112 RGB crop of `face`, aligned to the template.
    pub fn align(frame: &Frame, face: &Detection) -> Vec<u8> {
        let (a, b, tx, ty) = similarity(&face.landmarks, &TEMPLATE);
        // Inverse of [a -b; b a] + t: each crop pixel looks up where it came from.
        let d = a * a + b * b;
        let (ia, ib) = (a / d, -b / d);
        let n = CROP_SIZE as usize;
        let mut out = vec![0u8; n * n * 3];
        for v in 0..n {
            for u in 0..n {
                let (px, py) = (u as f32 - tx, v as f32 - ty);
                let sx = ia * px - ib * py;
                let sy = ib * px + ia * py;
                let o = (v * n + u) * 3;
                // BGR in, RGB out.
                for c in 0..3 {
                    out[o + c] = frame.sample(sx, sy, 2 - c).round().clamp(0.0, 255.0) as u8;
                }
            }
        }
        out
    }

    /// The unit-length embedding of an aligned RGB crop.
    pub fn embed(&mut self, crop: &[u8]) -> Result<Embedding, FaceError> {
        let n = CROP_SIZE as usize;
        assert_eq!(crop.len(), n * n * 3, "an aligned crop is 112x112 RGB");
        let plane = n * n;
        let mut input = vec![0f32; 3 * plane];
        for (i, px) in crop.chunks_exact(3).enumerate() {
            for c in 0..3 {
                input[c * plane + i] = px[c] as f32;
            }
        }
        let outputs =
            self.embedder.run(ort::inputs![TensorRef::from_array_view(([1usize, 3, n, n], &input[..]))?])?;
        let raw = outputs[0].try_extract_tensor::<f32>()?.1;
        if raw.len() != DIM {
            return Err(FaceError::Inference(format!("the embedder gave {} values, not {DIM}", raw.len())));
        }
        let mut e = [0f32; DIM];
        e.copy_from_slice(raw);
        normalize(&mut e);
        Ok(e)
    }

    /// Detects, aligns and embeds every face in `frame` (best first).
    pub fn faces(&mut self, frame: &Frame) -> Result<Vec<Face>, FaceError> {
        self.faces_in(frame, &Focus::Full)
    }

    /// `faces` where `focus` says to look.
    pub fn faces_in(&mut self, frame: &Frame, focus: &Focus) -> Result<Vec<Face>, FaceError> {
        let mut out = Vec::new();
        for d in self.detect_in(frame, focus)? {
            let crop = Self::align(frame, &d);
            let embedding = self.embed(&crop)?;
            out.push(Face { detection: d, crop, embedding });
        }
        Ok(out)
    }
}

/// A detected face with its aligned crop and embedding.
#[derive(Clone)]
pub struct Face {
    pub detection: Detection,
    /// 112x112 RGB.
    pub crop: Vec<u8>,
    pub embedding: Embedding,
}

/// Scales `e` to unit length (leaves a zero vector alone).
pub fn normalize(e: &mut [f32]) {
    let n = e.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        e.iter_mut().for_each(|x| *x /= n);
    }
}

/// Greedy non-maximum suppression, best score first.
fn nms(mut d: Vec<Detection>, iou: f32) -> Vec<Detection> {
    d.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut keep: Vec<Detection> = Vec::new();
    for c in d {
        if keep.iter().all(|k| k.iou(&c) <= iou) {
            keep.push(c);
        }
    }
    keep
}

/// The least-squares similarity transform (rotation, uniform scale, translation; no
/// reflection) taking `src` onto `dst`: x' = a x - b y + tx, y' = b x + a y + ty.
pub fn similarity(src: &[[f32; 2]; 5], dst: &[[f32; 2]; 5]) -> (f32, f32, f32, f32) {
    let mean = |p: &[[f32; 2]; 5]| {
        let (sx, sy) = p.iter().fold((0.0, 0.0), |(x, y), q| (x + q[0], y + q[1]));
        (sx / 5.0, sy / 5.0)
    };
    let (msx, msy) = mean(src);
    let (mdx, mdy) = mean(dst);
    // In complex numbers: (a + ib) = sum(conj(z) w) / sum(|z|^2) over the centred points.
    let (mut num_re, mut num_im, mut den) = (0.0f32, 0.0f32, 0.0f32);
    for (s, d) in src.iter().zip(dst) {
        let (zx, zy) = (s[0] - msx, s[1] - msy);
        let (wx, wy) = (d[0] - mdx, d[1] - mdy);
        num_re += zx * wx + zy * wy;
        num_im += zx * wy - zy * wx;
        den += zx * zx + zy * zy;
    }
    if den <= f32::EPSILON {
        return (1.0, 0.0, mdx - msx, mdy - msy);
    }
    let (a, b) = (num_re / den, num_im / den);
    (a, b, mdx - (a * msx - b * msy), mdy - (b * msx + a * msy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similarity_recovers_a_known_transform() {
        let (a, b, tx, ty) = (0.8f32 * 0.3f32.cos(), 0.8 * 0.3f32.sin(), 12.0, -7.5);
        let src = [[10.0, 20.0], [60.0, 22.0], [35.0, 45.0], [15.0, 70.0], [55.0, 71.0]];
        let mut dst = [[0.0; 2]; 5];
        for (d, s) in dst.iter_mut().zip(&src) {
            *d = [a * s[0] - b * s[1] + tx, b * s[0] + a * s[1] + ty];
        }
        let got = similarity(&src, &dst);
        for (g, w) in [got.0, got.1, got.2, got.3].iter().zip([a, b, tx, ty]) {
            assert!((g - w).abs() < 1e-3, "{got:?}");
        }
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes() {
        let d =
            |x: f32, score: f32| Detection { x, y: 0.0, w: 10.0, h: 10.0, score, landmarks: [[0.0; 2]; 5] };
        let kept = nms(vec![d(0.0, 0.7), d(1.0, 0.9), d(50.0, 0.8)], 0.3);
        assert_eq!(kept.iter().map(|k| k.score).collect::<Vec<_>>(), vec![0.9, 0.8]);
    }

    #[test]
    fn align_of_a_template_face_is_the_identity() {
        // A frame that is itself a 112x112 crop with the landmarks on the template.
        let mut data = vec![0u8; 112 * 112 * 3];
        for (i, px) in data.chunks_exact_mut(3).enumerate() {
            px.copy_from_slice(&[(i % 251) as u8, (i % 13) as u8 * 10, (i / 112) as u8]);
        }
        let frame = Frame::new(112, 112, data.clone()).unwrap();
        let face = Detection { x: 0.0, y: 0.0, w: 112.0, h: 112.0, score: 1.0, landmarks: TEMPLATE };
        let crop = FaceModels::align(&frame, &face);
        for (o, i) in crop.chunks_exact(3).zip(data.chunks_exact(3)) {
            assert_eq!(o, [i[2], i[1], i[0]]);
        }
    }
}
