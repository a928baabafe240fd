//! The demo's cameras: clips of real photos (the test fixtures scripts/setup.sh fetches)
//! served over RTSP by kuzet-camsim, and a watchlist entry for the person one of them shows.
//!
//! - `cam-demo-1`, beside the first school: a person on the watchlist (high danger);
//! - `cam-demo-2`, beside the second: a passer-by who is on no list;
//! - `cam-demo-3`, a custodial camera whose lens is covered (an oversight alert).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::Context as _;
use chrono::Utc;
use kuzet_actors::camera::CameraSpec;
use kuzet_actors::geo::GeoPoint;
use kuzet_actors::ids::{CameraId, PersonId};
use kuzet_actors::model::Danger;

use kuzet::startup::Application;
use kuzet::store::watchlist::Entry;

const FACES: &str = "target/faces";

/// kuzet-camsim serving the demo clips; stopped on drop.
pub struct DemoCameras {
    child: Child,
    pub cameras: Vec<CameraSpec>,
}

impl Drop for DemoCameras {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn camsim() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe.parent().context("no folder")?.join("kuzet-camsim");
    anyhow::ensure!(bin.is_file(), "{} missing (cargo build --release --workspace)", bin.display());
    Ok(bin)
}

fn clip(bin: &Path, dir: &Path, name: &str, segments: &[String]) -> anyhow::Result<PathBuf> {
    let out = dir.join(name);
    if out.is_file() {
        return Ok(out);
    }
    let tmp = dir.join(format!("{name}.part.mp4"));
    let r = Command::new(bin)
        .args(["clip", tmp.to_str().unwrap_or_default(), "--size", "960x540", "--fps", "10"])
        .args(segments)
        .output()?;
    anyhow::ensure!(r.status.success(), "camsim clip {name}: {}", String::from_utf8_lossy(&r.stderr));
    std::fs::rename(&tmp, &out)?;
    Ok(out)
}

/// Makes the clips (once), starts kuzet-camsim and describes the cameras, placed near
/// `near[0]` and `near[1]`.
pub fn start(near: &[GeoPoint]) -> anyhow::Result<DemoCameras> {
    let bin = camsim()?;
    let photo = |p: &str, secs: u32| -> anyhow::Result<String> {
        let path = Path::new(FACES).join(p);
        anyhow::ensure!(path.is_file(), "{} missing (scripts/setup.sh)", path.display());
        Ok(format!("{}:{secs}", path.display()))
    };
    let dir = PathBuf::from("target/demo-clips");
    std::fs::create_dir_all(&dir)?;
    let wanted = clip(&bin, &dir, "wanted.mp4", &[photo("face_recognition/obama.jpg", 60)?])?;
    let passer = clip(&bin, &dir, "passer-by.mp4", &[photo("face_recognition/biden.jpg", 60)?])?;
    let covered = clip(&bin, &dir, "covered.mp4", &["black:60".into()])?;
    let mut child = Command::new(&bin)
        .arg("serve")
        .arg(format!("/wanted={}", wanted.display()))
        .arg(format!("/passer-by={}", passer.display()))
        .arg(format!("/covered={}", covered.display()))
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start kuzet-camsim")?;
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().context("camsim stdout")?),
        &mut line,
    )?;
    let port: u16 =
        line.trim().strip_prefix("ready ").and_then(|p| p.parse().ok()).context("camsim did not start")?;
    let base = near.first().copied().context("the demo city has no sites")?;
    let second = near.get(1).copied().unwrap_or(base.offset(800.0, 0.0));
    let cam = |id: &str, at: GeoPoint, mount: &str, custodial: bool| CameraSpec {
        id: CameraId::parse(id).expect("a valid id"),
        location: at,
        site: None,
        custodial,
        stream_uri: Some(format!("rtsp://127.0.0.1:{port}/{mount}")),
        password: None,
    };
    Ok(DemoCameras {
        child,
        cameras: vec![
            cam("cam-demo-1", base.offset(60.0, 40.0), "wanted", false),
            cam("cam-demo-2", second.offset(-50.0, 30.0), "passer-by", false),
            cam("cam-demo-3", base.offset(-900.0, 600.0), "covered", true),
        ],
    })
}

/// Puts the person `cam-demo-1` shows on the watchlist, from two other photos of him.
pub async fn enrol(app: &Application) -> anyhow::Result<()> {
    let watch = app.watch().context("no watchlist")?;
    let photos = ["face_recognition/obama2.jpg", "face_recognition/obama3.jpg"]
        .iter()
        .map(|p| kuzet::vision::read_photo(&Path::new(FACES).join(p)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let entry = Entry {
        id: PersonId::parse("demo-wanted-1").expect("a valid id"),
        name: "Demo Wanted Person".into(),
        legal_basis: "demo: arrest warrant (not a real case)".into(),
        case_ref: Some("DEMO-0001".into()),
        danger: Danger::High,
        expires_at: Utc::now() + chrono::Duration::days(1),
        embedding: Vec::new(),
        photos: 0,
        enrolled_by: String::new(),
        approved_by: None,
    };
    let id = entry.id.clone();
    watch.enroll(entry, photos, "user:demo".into()).await?;
    // High danger dispatches without review, so a second person approves it.
    watch.approve(id.as_str(), "user:demo-supervisor").await?;
    Ok(())
}
