#!/usr/bin/env python3
"""Python reference of kuzet's face pipeline (vision/src/face.rs): YuNet detection, 5-point
alignment and SFace embeddings, as OpenCV's FaceDetectorYN + FaceRecognizerSF do them, with
numpy and onnxruntime only (no OpenCV).

    PY=target/tools-venv/bin/python
    $PY tests/vision/reference.py detect PHOTO                 faces in PHOTO as JSON, best first
    $PY tests/vision/reference.py crop PHOTO OUT.rgb           aligned crop of the largest face
    $PY tests/vision/reference.py embed-crops DIR              {"stem": [128 floats]} of DIR/*.rgb
    $PY tests/vision/reference.py compare-crops DIR RUST.json [--min-cosine 0.999]
    $PY tests/vision/reference.py pairs FACES_DIR FACES_JSON [--threshold 0.363]
    $PY tests/vision/reference.py bench --frames FILE.bgr --width W --height H --count N --threads T
  common option: --models DIR (default target/models: face_detection_yunet.onnx,
  face_recognition_sface.onnx, as scripts/models.sh makes them)

Images (PHOTO, FILE):
  - FILE.bgr: packed 8-bit BGR, rows without padding, with a sidecar FILE.json
    {"width": W, "height": H} (the Rust side dumps frames like that);
  - .jpg/.jpeg/.png (anything else): decoded with GStreamer's command line
    (gst-launch-1.0 ... decodebin ! videoconvert ! video/x-raw,format=BGR ! filesink), the
    size read from the negotiated caps (-v). GStreamer pads each BGR row to a multiple of 4
    bytes (stride = (3 W + 3) & ~3); the padding is removed. EXIF orientation is not applied.
  - *.rgb crops: packed 112x112x3 RGB uint8, already aligned.

Detection (YuNet 2023mar, input 'input' 1x3x640x640 float32 BGR 0-255 NCHW):
  s = 640 / max(W, H) (float32); the image is resized to round(W s) x round(H s) (at most 640)
  by bilinear sampling with pixel centres mapped back, src = (dst + 0.5) / s - 0.5, clamped to
  [0, W-1] / [0, H-1] (like OpenCV's INTER_LINEAR; values stay float, not rounded to uint8),
  and placed at the top left of a zero 640x640 canvas.
  Outputs cls_S, obj_S [1, N, 1], bbox_S [1, N, 4], kps_S [1, N, 10] for strides S = 8, 16, 32,
  N = (640/S)^2, row i = r * (640/S) + c. As OpenCV's face_detect.cpp (4.9+):
    score = sqrt(clip(cls, 0, 1) * clip(obj, 0, 1)), kept when >= 0.6
    cx = (c + bbox[0]) S, cy = (r + bbox[1]) S, w = exp(bbox[2]) S, h = exp(bbox[3]) S,
    x = cx - w/2, y = cy - h/2; landmark n = ((c + kps[2n]) S, (r + kps[2n+1]) S)
  then all coordinates / s (back to the input image). Non-maximum suppression as OpenCV's
  NMSBoxes: candidates sorted by score (stable, descending), the best 50 kept, then greedy:
  a box is kept when its IoU with every kept box is <= 0.3. (OpenCV truncates the boxes to int
  for the IoU; this uses the float boxes, as face.rs does.) Landmark order: right eye, left
  eye, nose tip, right and left mouth corner (the subject's right is on the image's left).
Alignment: the least-squares similarity transform (Umeyama, rotation + uniform scale +
  translation, no reflection) from the 5 landmarks to the ArcFace template for 112x112
  [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
  [70.7299, 92.2041]]; each crop pixel (u, v) (integer coordinates, as cv::warpAffine) samples
  the image at the inverse transform of (u, v) bilinearly, neighbours outside the image = 0,
  rounded (half up) to uint8; 112x112, BGR -> RGB.
Embedding (SFace 2021dec, input 'data' 1x3x112x112 float32 RGB 0-255 NCHW, output 'fc1'
  [1, 128]): L2-normalised; cosine = dot product.

Checked once by hand against OpenCV 5.0 (opencv-python-headless, in a scratch venv): on the
same 640x640 canvas FaceDetectorYN gives the same faces, order and scores (boxes, landmarks
within 3e-5 px, also with 6 faces in one image); alignCrop differs by at most 1 grey level
(OpenCV's fixed-point warp); FaceRecognizerSF.feature vs this embedding: cosine >= 0.999996.
(The resize is not OpenCV's: cv2.resize rounds to uint8, this keeps floats; ~2 px apart on
a 1200 px image.)

`compare-crops` and `pairs` end with a line 'vision parity: N passed, M failed' /
'vision pairs: ...'; exit 1 on a failure.
"""

import argparse
import glob
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort

DETECT_SIZE = 640
CROP_SIZE = 112
STRIDES = (8, 16, 32)
SCORE_THRESHOLD = 0.6
NMS_IOU = 0.3
TOP_K = 50
TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
# SFace's usual cosine threshold (OpenCV zoo).
SFACE_THRESHOLD = 0.363

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def die(msg):
    print(f"reference: error: {msg}", file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------------------------------------
# Images


def load_bgr(path):
    """The image at `path` as a uint8 array H x W x 3 (BGR)."""
    if path.endswith(".bgr"):
        side = path[: -len(".bgr")] + ".json"
        try:
            with open(side) as f:
                meta = json.load(f)
            w, h = int(meta["width"]), int(meta["height"])
        except (OSError, ValueError, KeyError) as e:
            die(f"{path}: needs a sidecar {side} with width and height ({e})")
        data = np.fromfile(path, dtype=np.uint8)
        if data.size != w * h * 3:
            die(f"{path}: {data.size} bytes, expected {w}x{h}x3 = {w * h * 3}")
        return data.reshape(h, w, 3)
    return decode_with_gstreamer(path)


def decode_with_gstreamer(path):
    if not os.path.isfile(path):
        die(f"{path}: not found")
    with tempfile.TemporaryDirectory(prefix="kuzet-ref-") as tmp:
        out = os.path.join(tmp, "frame.bgr")
        cmd = [
            "gst-launch-1.0", "-v", "filesrc", f"location={path}", "!", "decodebin", "!",
            "videoconvert", "!", "video/x-raw,format=BGR", "!",
            "filesink", "name=out", f"location={out}",
        ]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except FileNotFoundError:
            die("gst-launch-1.0 not found (Debian gstreamer1.0-tools; scripts/setup.sh installs it)")
        caps = [line for line in r.stdout.splitlines() if "GstFileSink:out.GstPad:sink: caps" in line]
        if r.returncode != 0 or not caps:
            die(f"{path}: gst-launch-1.0 failed ({r.returncode}): {(r.stderr or r.stdout)[-500:]}")
        m_w = re.search(r"width=\(int\)(\d+)", caps[-1])
        m_h = re.search(r"height=\(int\)(\d+)", caps[-1])
        if not (m_w and m_h and "format=(string)BGR" in caps[-1]):
            die(f"{path}: unexpected caps {caps[-1]}")
        w, h = int(m_w.group(1)), int(m_h.group(1))
        data = np.fromfile(out, dtype=np.uint8)
    stride = (w * 3 + 3) & ~3
    if data.size != stride * h:
        die(f"{path}: {data.size} bytes from GStreamer, expected stride {stride} x {h}")
    return np.ascontiguousarray(data.reshape(h, stride)[:, : w * 3].reshape(h, w, 3))


def load_rgb_crop(path):
    data = np.fromfile(path, dtype=np.uint8)
    if data.size != CROP_SIZE * CROP_SIZE * 3:
        die(f"{path}: {data.size} bytes, expected {CROP_SIZE}x{CROP_SIZE}x3")
    return data.reshape(CROP_SIZE, CROP_SIZE, 3)


# ---------------------------------------------------------------------------------------------
# Models


def session(path, threads=1):
    if not os.path.isfile(path):
        die(f"{path}: not found (run scripts/models.sh)")
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])


class Models:
    def __init__(self, models_dir, threads=1):
        self.detector = session(os.path.join(models_dir, "face_detection_yunet.onnx"), threads)
        self.embedder = session(os.path.join(models_dir, "face_recognition_sface.onnx"), threads)
        self.det_in = self.detector.get_inputs()[0].name
        self.det_out = [o.name for o in self.detector.get_outputs()]
        self.emb_in = self.embedder.get_inputs()[0].name

    # --- detection -------------------------------------------------------------------------

    @staticmethod
    def blob(img):
        """The detector's input: 1x3x640x640 float32 BGR, letterboxed; and the scale s."""
        h, w = img.shape[:2]
        f32 = np.float32
        scale = f32(DETECT_SIZE) / f32(max(w, h))
        inv = f32(1.0) / scale
        sw = min(DETECT_SIZE, int(np.floor(f32(w) * scale + f32(0.5))))
        sh = min(DETECT_SIZE, int(np.floor(f32(h) * scale + f32(0.5))))

        def axis(n_out, n_in):
            src = (np.arange(n_out, dtype=f32) + f32(0.5)) * inv - f32(0.5)
            src = np.clip(src, f32(0), f32(n_in - 1))
            i0 = np.floor(src).astype(np.int64)
            i1 = np.minimum(i0 + 1, n_in - 1)
            frac = (src - i0.astype(f32)).astype(f32)
            return i0, i1, frac

        x0, x1, fx = axis(sw, w)
        y0, y1, fy = axis(sh, h)
        r0, r1 = img[y0], img[y1]  # gathered as uint8, converted only at the output size
        fx = fx[None, :, None]
        top = r0[:, x0].astype(f32) * (f32(1) - fx) + r0[:, x1].astype(f32) * fx
        bottom = r1[:, x0].astype(f32) * (f32(1) - fx) + r1[:, x1].astype(f32) * fx
        fy = fy[:, None, None]
        resized = top * (f32(1) - fy) + bottom * fy
        canvas = np.zeros((3, DETECT_SIZE, DETECT_SIZE), dtype=f32)
        canvas[:, :sh, :sw] = resized.transpose(2, 0, 1)
        return canvas[None], scale

    def detect(self, img):
        """Faces in img, best first: dicts with x, y, w, h, score, landmarks [[x, y] * 5]."""
        blob, scale = self.blob(img)
        outs = dict(zip(self.det_out, self.detector.run(None, {self.det_in: blob})))
        f32 = np.float32
        inv = f32(1.0) / scale
        cands = []
        for s in STRIDES:
            cols = DETECT_SIZE // s
            cls = outs[f"cls_{s}"].reshape(-1)
            obj = outs[f"obj_{s}"].reshape(-1)
            bbox = outs[f"bbox_{s}"].reshape(-1, 4)
            kps = outs[f"kps_{s}"].reshape(-1, 10)
            score = np.sqrt(np.clip(cls, 0, 1) * np.clip(obj, 0, 1)).astype(f32)
            for i in np.nonzero(score >= f32(SCORE_THRESHOLD))[0]:
                r, c = f32(i // cols), f32(i % cols)
                b, k, sf = bbox[i], kps[i], f32(s)
                cx, cy = (c + b[0]) * sf, (r + b[1]) * sf
                bw, bh = np.exp(b[2]) * sf, np.exp(b[3]) * sf
                lm = [[float((k[2 * n] + c) * sf * inv), float((k[2 * n + 1] + r) * sf * inv)] for n in range(5)]
                cands.append({
                    "x": float((cx - bw / f32(2)) * inv), "y": float((cy - bh / f32(2)) * inv),
                    "w": float(bw * inv), "h": float(bh * inv),
                    "score": float(score[i]), "landmarks": lm,
                })
        return nms(cands, NMS_IOU, TOP_K)

    # --- alignment and embedding -------------------------------------------------------------

    @staticmethod
    def align(img, face):
        """The 112x112 RGB uint8 crop of `face`, aligned to the ArcFace template."""
        m = umeyama(np.array(face["landmarks"], dtype=np.float64), TEMPLATE)
        # Inverse of the 2x3 similarity: crop pixel -> image position.
        a = m[:, :2]
        t = m[:, 2]
        ainv = np.linalg.inv(a)
        v, u = np.mgrid[0:CROP_SIZE, 0:CROP_SIZE].astype(np.float64)
        pts = np.stack([u.ravel() - t[0], v.ravel() - t[1]])
        src = ainv @ pts
        out = sample_zero(img, src[0].astype(np.float32), src[1].astype(np.float32))
        out = np.floor(out + np.float32(0.5)).clip(0, 255).astype(np.uint8)
        return out.reshape(CROP_SIZE, CROP_SIZE, 3)[:, :, ::-1].copy()  # BGR -> RGB

    def embed(self, crop_rgb):
        x = crop_rgb.astype(np.float32).transpose(2, 0, 1)[None]
        e = self.embedder.run(None, {self.emb_in: np.ascontiguousarray(x)})[0].reshape(-1)
        if e.size != 128:
            die(f"SFace gave {e.size} values, expected 128")
        n = np.linalg.norm(e.astype(np.float64))
        return (e / n).astype(np.float32) if n > 0 else e

    def largest(self, img):
        faces = self.detect(img)
        if not faces:
            return None
        return max(faces, key=lambda f: max(f["w"], 0) * max(f["h"], 0))


def iou(a, b):
    ix = min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"])
    iy = min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"])
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = ix * iy
    return inter / (a["w"] * a["h"] + b["w"] * b["h"] - inter)


def nms(cands, threshold, top_k):
    # Python's sort is stable: equal scores keep their order (stride 8 first, row-major).
    order = sorted(cands, key=lambda d: -d["score"])[:top_k]
    keep = []
    for d in order:
        if all(iou(k, d) <= threshold for k in keep):
            keep.append(d)
    return keep


def umeyama(src, dst):
    """2x3 least-squares similarity (no reflection) taking src (Nx2) onto dst (Nx2)."""
    n = src.shape[0]
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    cov = d.T @ s / n
    sign = np.ones(2)
    if np.linalg.det(cov) < 0:
        sign[1] = -1
    u, sv, vt = np.linalg.svd(cov)
    r = u @ np.diag(sign) @ vt
    var = (s ** 2).sum() / n
    scale = (sv * sign).sum() / var
    t = md - scale * r @ ms
    return np.hstack([scale * r, t[:, None]])


def sample_zero(img, sx, sy):
    """Bilinear samples (len(sx) x 3, float32) of img at (sx, sy); pixels outside count as 0."""
    h, w = img.shape[:2]
    x0 = np.floor(sx)
    y0 = np.floor(sy)
    fx = (sx - x0)[:, None]
    fy = (sy - y0)[:, None]
    x0 = x0.astype(np.int64)
    y0 = y0.astype(np.int64)
    im = img.astype(np.float32)

    def px(xx, yy):
        ok = (xx >= 0) & (yy >= 0) & (xx < w) & (yy < h)
        v = im[np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)]
        return np.where(ok[:, None], v, np.float32(0))

    one = np.float32(1)
    top = px(x0, y0) * (one - fx) + px(x0 + 1, y0) * fx
    bottom = px(x0, y0 + 1) * (one - fx) + px(x0 + 1, y0 + 1) * fx
    return top * (one - fy) + bottom * fy


def cosine(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# ---------------------------------------------------------------------------------------------
# Subcommands


def crops_in(d):
    files = sorted(glob.glob(os.path.join(d, "*.rgb")))
    return [(os.path.splitext(os.path.basename(f))[0], f) for f in files]


def cmd_detect(args):
    m = Models(args.models)
    img = load_bgr(args.photo)
    faces = m.detect(img)
    print(json.dumps({"width": img.shape[1], "height": img.shape[0], "faces": faces}))


def cmd_crop(args):
    m = Models(args.models)
    img = load_bgr(args.photo)
    face = m.largest(img)
    if face is None:
        die(f"{args.photo}: no face")
    m.align(img, face).tofile(args.out)
    print(json.dumps(face))


def cmd_embed_crops(args):
    m = Models(args.models)
    out = {name: [float(v) for v in m.embed(load_rgb_crop(f))] for name, f in crops_in(args.dir)}
    print(json.dumps(out))


def cmd_compare_crops(args):
    m = Models(args.models)
    with open(args.rust_json) as f:
        rust = json.load(f)
    passed = failed = 0
    for name, f in crops_in(args.dir):
        mine = m.embed(load_rgb_crop(f))
        theirs = rust.get(name)
        if theirs is None or len(theirs) != 128:
            print(f"{name}: FAIL (no 128-float embedding in {args.rust_json})")
            failed += 1
            continue
        c = cosine(mine, theirs)
        ok = c >= args.min_cosine
        print(f"{name}: cosine {c:.6f} {'ok' if ok else 'FAIL'} (min {args.min_cosine})")
        passed += ok
        failed += not ok
    if passed + failed == 0:
        print(f"no crops (*.rgb) in {args.dir}")
    print(f"vision parity: {passed} passed, {failed} failed")
    sys.exit(1 if failed or passed == 0 else 0)


def cmd_pairs(args):
    m = Models(args.models)
    with open(args.faces_json) as f:
        photos = json.load(f)["photos"]
    emb = []
    missing = 0
    for p in photos:
        img = load_bgr(os.path.join(args.faces_dir, p["path"]))
        face = m.largest(img)
        if face is None:
            print(f"{p['path']}: no face found")
            missing += 1
            continue
        emb.append((p, m.embed(m.align(img, face))))
        print(f"{p['path']} ({p['person']}): {img.shape[1]}x{img.shape[0]}, face "
              f"{face['w']:.0f}x{face['h']:.0f} at ({face['x']:.0f}, {face['y']:.0f}), score {face['score']:.3f}")
    t = args.threshold
    same, diff = [], []
    ta = fr = tr = fa = 0
    for (pa, ea), (pb, eb) in itertools.combinations(emb, 2):
        c = cosine(ea, eb)
        is_same = pa["person"] == pb["person"]
        (same if is_same else diff).append(c)
        accept = c >= t
        if is_same:
            ta += accept
            fr += not accept
        else:
            fa += accept
            tr += not accept
        verdict = "accept" if accept else "reject"
        print(f"{'same' if is_same else 'different':9} {c:+.4f} {verdict}  {pa['path']} ~ {pb['path']}")
    rng = lambda v: f"{min(v):.4f}..{max(v):.4f} ({len(v)} pairs)" if v else "none"
    print(f"same person: {rng(same)}; different people: {rng(diff)}")
    print(f"at threshold {t}: true accept {ta}, false reject {fr}, true reject {tr}, false accept {fa}")
    print(f"vision pairs: {ta + tr} passed, {fr + fa + missing} failed")
    sys.exit(1 if fr + fa + missing else 0)


def cmd_bench(args):
    m = Models(args.models, threads=args.threads)
    w, h = args.width, args.height
    size = w * h * 3
    data = np.fromfile(args.frames, dtype=np.uint8)
    if data.size < size or data.size % size:
        die(f"{args.frames}: {data.size} bytes is not a whole number of {w}x{h} BGR frames")
    frames = data.reshape(-1, h, w, 3)
    # One warm-up frame outside the timing (session start-up, allocations).
    m.largest(frames[0])
    faces = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(args.count):
        img = frames[i % len(frames)]
        face = m.largest(img)
        if face is not None:
            m.embed(m.align(img, face))
            faces += 1
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"frames": args.count, "seconds": round(secs, 4), "cpu_seconds": round(cpu, 4),
                      "fps": round(args.count / secs, 2) if secs > 0 else None, "faces": faces}))


def main():
    ap = argparse.ArgumentParser(description="Python reference of kuzet's face pipeline")
    ap.add_argument("--models", default=os.path.join(REPO, "target", "models"),
                    help="folder with face_detection_yunet.onnx and face_recognition_sface.onnx")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("detect", help="faces in a photo as JSON")
    p.add_argument("photo")
    p.set_defaults(fn=cmd_detect)
    p = sub.add_parser("crop", help="aligned 112x112 RGB crop of the largest face")
    p.add_argument("photo")
    p.add_argument("out")
    p.set_defaults(fn=cmd_crop)
    p = sub.add_parser("embed-crops", help="embeddings of DIR/*.rgb as JSON")
    p.add_argument("dir")
    p.set_defaults(fn=cmd_embed_crops)
    p = sub.add_parser("compare-crops", help="compare with the Rust side's embeddings")
    p.add_argument("dir")
    p.add_argument("rust_json")
    p.add_argument("--min-cosine", type=float, default=0.999)
    p.set_defaults(fn=cmd_compare_crops)
    p = sub.add_parser("pairs", help="all photo pairs of faces.json: cosines and confusion counts")
    p.add_argument("faces_dir")
    p.add_argument("faces_json")
    p.add_argument("--threshold", type=float, default=SFACE_THRESHOLD)
    p.set_defaults(fn=cmd_pairs)
    p = sub.add_parser("bench", help="detect + align + embed the largest face per frame")
    p.add_argument("--frames", required=True)
    p.add_argument("--width", type=int, required=True)
    p.add_argument("--height", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(fn=cmd_bench)
    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
