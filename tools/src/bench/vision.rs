//! `kuzet-bench --suite vision`: the face pipeline's throughput at 720p with one face, beside
//! the same models run by Python's onnxruntime on the same frames; how many 5 fps camera
//! streams this machine keeps up with; and watchlist search time by list size.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use kuzet_vision::{
    Embedding, FaceModels, Frame, FramePool, FrameStats, Gallery, HealthConfig, HealthState, ModelPaths,
    Source, SourceConfig, SourceEvents, DIM,
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

pub fn vision_bench(models_dir: &Path) -> anyhow::Result<()> {
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
    Ok(())
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
    fn frame(&self, camera: usize, frame: Frame, _: &FrameStats) {
        self.pool.submit(camera, frame);
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
            while let Some((cam, f, _)) = pool.take() {
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
