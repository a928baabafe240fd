//! A camera's pipeline against a real RTSP server (kuzet-camsim, a separate process serving
//! H.264 clips): frames at the detection rate, a covered lens, the server killed (offline)
//! and back (recovered).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kuzet_vision::{Focus, Frame, FrameStats, HealthConfig, HealthState, Source, SourceConfig, SourceEvents};

const CAMSIM: &str = env!("CARGO_BIN_EXE_kuzet-camsim");

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A test card photo made by GStreamer itself (no fixture needed for health checks).
fn test_card(dir: &Path) -> PathBuf {
    let p = dir.join("card.png");
    let ok = Command::new("gst-launch-1.0")
        .args([
            "-q",
            "videotestsrc",
            "num-buffers=1",
            "pattern=smpte",
            "!",
            "video/x-raw,width=640,height=360",
        ])
        .args(["!", "pngenc", "!", "filesink"])
        .arg(format!("location={}", p.display()))
        .status()
        .unwrap()
        .success();
    assert!(ok, "gst-launch-1.0 made no test card");
    p
}

fn camsim(args: &[String]) -> (Child, u16) {
    let mut child = Command::new(CAMSIM).args(args).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port = line.trim().strip_prefix("ready ").unwrap_or_else(|| panic!("camsim said {line:?}"));
    (child, port.parse().unwrap())
}

#[derive(Default)]
struct Seen {
    frames: Vec<(Instant, u32, u32, f32)>,
    health: Vec<(Instant, HealthState, String)>,
}

struct Recorder(Mutex<Seen>);

impl SourceEvents for Recorder {
    fn frame(&self, _camera: usize, frame: Frame, stats: &FrameStats, _focus: Focus) {
        self.0.lock().unwrap().frames.push((Instant::now(), frame.width, frame.height, stats.std));
    }
    fn health(&self, _camera: usize, state: HealthState, detail: &str) {
        self.0.lock().unwrap().health.push((Instant::now(), state, detail.to_owned()));
    }
}

fn wait_for(rec: &Recorder, state: HealthState, after: usize, limit: Duration) -> usize {
    let t0 = Instant::now();
    loop {
        {
            let s = rec.0.lock().unwrap();
            if let Some(i) = s.health.iter().skip(after).position(|h| h.1 == state) {
                return after + i + 1;
            }
            assert!(t0.elapsed() < limit, "no {state:?} within {limit:?}; health so far: {:?}", s.health);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn rtsp_camera_frames_covered_offline_and_back() {
    let dir = scratch("camera_stream");
    let card = test_card(&dir);
    let clip = dir.join("clip.mp4");
    let out = Command::new(CAMSIM)
        .args(["clip", clip.to_str().unwrap(), "--size", "640x360", "--fps", "10"])
        .arg(format!("{}:4", card.display()))
        .arg("black:4")
        .arg(format!("{}:30", card.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "clip: {}", String::from_utf8_lossy(&out.stderr));
    let serve = |port: u16| {
        camsim(&["serve".into(), "--port".into(), port.to_string(), format!("/cam={}", clip.display())])
    };
    let (mut server, port) = serve(0);

    let rec = Arc::new(Recorder(Mutex::default()));
    let cfg = SourceConfig {
        camera: 0,
        name: "test".into(),
        uri: format!("rtsp://127.0.0.1:{port}/cam"),
        fps: 5,
        health: HealthConfig {
            offline_after: Duration::from_secs(2),
            frozen_after: Duration::from_secs(3600),
            covered_after: Duration::from_secs(1),
            uniform_std: 6.0,
        },
        backoff: (Duration::from_millis(200), Duration::from_secs(1)),
        // Every frame handed on: the test counts them.
        motion: None,
    };
    let source = Source::spawn(cfg, rec.clone()).unwrap();

    let i = wait_for(&rec, HealthState::Ok, 0, Duration::from_secs(20));
    let i = wait_for(&rec, HealthState::Covered, i, Duration::from_secs(20));
    let i = wait_for(&rec, HealthState::Ok, i, Duration::from_secs(20));
    {
        let s = rec.0.lock().unwrap();
        assert!(s.frames.iter().all(|f| (f.1, f.2) == (640, 360)), "frames are BGR 640x360");
        // The clip runs at 10 fps; the pipeline hands on at most 5 a second.
        let span = s.frames.last().unwrap().0 - s.frames[0].0;
        let allowed = (span.as_secs_f64() * 5.0).ceil() as usize + 2;
        assert!(s.frames.len() <= allowed, "{} frames in {span:?}", s.frames.len());
        assert!(s.frames.len() >= 10, "only {} frames", s.frames.len());
        assert!(s.frames.iter().any(|f| f.3 < 1.0), "black frames seen");
    }

    // The server dies: offline. It comes back on the same port: ok again.
    server.kill().unwrap();
    server.wait().unwrap();
    let i = wait_for(&rec, HealthState::Offline, i, Duration::from_secs(20));
    let (mut server, again) = serve(port);
    assert_eq!(again, port);
    wait_for(&rec, HealthState::Ok, i, Duration::from_secs(30));
    source.stop();
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn decodes_a_photo() {
    let dir = scratch("decode_photo");
    let card = test_card(&dir);
    let frame = kuzet_vision::decode_image(&std::fs::read(card).unwrap()).unwrap();
    assert_eq!((frame.width, frame.height), (640, 360));
    // The SMPTE card's first bar is white, its second yellow (BGR: no blue, green and red).
    assert!(frame.data[..3].iter().all(|&v| v >= 180), "{:?}", &frame.data[..3]);
    let at = (50 * 640 + 137) * 3;
    let yellow = &frame.data[at..at + 3];
    assert!(yellow[0] < 60 && yellow[1] > 150 && yellow[2] > 150, "{yellow:?}");
    assert!(kuzet_vision::decode_image(b"not a picture").is_err());
}
