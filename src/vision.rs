//! Cameras wired to the actors: a GStreamer pipeline per camera with a stream, a pool of
//! inference threads (face detection, alignment, embedding), the watchlist gallery they
//! search, and the WantedPerson actors that turn matches into incidents or reviews. Edge
//! cameras' detections (MQTT) are matched against the same gallery.
//!
//! What is kept of a face: nothing unless it matches a watchlisted person at or above the
//! review threshold (and resembles no face a dispatcher rejected for that person on that
//! camera more than the person). A match's face and frame are written as JPEG, durably,
//! before the match is handed to the actors, so no alert points at missing evidence.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix::prelude::*;
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use kuzet_actors::camera::{HealthReport, Matched};
use kuzet_actors::directory::Directory;
use kuzet_actors::geo::GeoPoint;
use kuzet_actors::ids::{CameraId, PersonId, ReviewId, SightingId};
use kuzet_actors::outbound::{Outbox, Received};
use kuzet_actors::registry::Registry;
use kuzet_actors::snapshot::{SightingRef, WantedRef};
use kuzet_actors::spec::Devices;
use kuzet_actors::wanted::{RestoreReview, Update, WantedConfig, WantedPerson, WantedSpec, WatchDirectory};
use kuzet_vision::evidence::{jpeg_bgr, jpeg_crop, write_durable};
use kuzet_vision::{
    Embedding, FaceModels, Focus, Frame, FramePool, FrameStats, Gallery, HealthConfig, HealthState,
    ModelPaths, Source, SourceConfig, SourceEvents, DIM,
};
use sha2::{Digest, Sha256};

use crate::settings::VisionSettings;
use crate::store::watchlist::{self, Entry};

/// Counters for the status line (`vision.<name>`).
#[derive(Default)]
pub struct VisionStats {
    pub frames: AtomicU64,
    pub faces: AtomicU64,
    pub searches: AtomicU64,
    pub matches: AtomicU64,
    /// Matches that resembled a rejected face more than the person.
    pub suppressed: AtomicU64,
    pub evidence_failed: AtomicU64,
    pub inference_errors: AtomicU64,
    pub edge_faces: AtomicU64,
    /// Frames motion gating let go undetected.
    pub gated: AtomicU64,
    /// Frames detected only in the region that moved (the rest of `frames` in full).
    pub regions: AtomicU64,
}

impl VisionStats {
    pub fn snapshot(&self) -> std::collections::BTreeMap<String, u64> {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            ("vision.frames", g(&self.frames)),
            ("vision.faces", g(&self.faces)),
            ("vision.searches", g(&self.searches)),
            ("vision.matches", g(&self.matches)),
            ("vision.suppressed", g(&self.suppressed)),
            ("vision.evidence_failed", g(&self.evidence_failed)),
            ("vision.inference_errors", g(&self.inference_errors)),
            ("vision.edge_faces", g(&self.edge_faces)),
            ("vision.gated", g(&self.gated)),
            ("vision.regions", g(&self.regions)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

/// The watchlist search and what follows a match; shared by the inference threads and the
/// MQTT gateway (edge detections).
pub struct Matcher {
    gallery: RwLock<Gallery>,
    review_threshold: f32,
    rematch: Duration,
    evidence_dir: PathBuf,
    directory: Directory,
    /// When each camera last reported each person.
    last: Mutex<HashMap<(String, String), Instant>>,
    /// Searches per camera since the last audit entry.
    searched: Mutex<HashMap<String, (u64, u64)>>,
    pub stats: VisionStats,
}

/// A face to match: its embedding, and for kuzet's own pipeline the pictures to keep.
pub struct Probe<'a> {
    pub embedding: &'a Embedding,
    pub evidence: Option<(&'a Frame, &'a [u8])>,
    /// When the camera saw it, if the camera says (edge cameras); else now.
    pub seen_at: Option<DateTime<Utc>>,
}

/// How far a camera's own clock may be trusted for when it saw a face: a time further off
/// (a camera without NTP, a message stuck in a queue) is replaced by kuzet's.
const SEEN_AT_AHEAD_S: i64 = 30;
const SEEN_AT_BEHIND_S: i64 = 600;

impl Matcher {
    pub fn new(settings: &VisionSettings, directory: Directory) -> Self {
        Self {
            gallery: RwLock::new(Gallery::new()),
            review_threshold: settings.review_threshold,
            rematch: VisionSettings::secs(settings.rematch_s),
            evidence_dir: settings.evidence_dir.clone(),
            directory,
            last: Mutex::new(HashMap::new()),
            searched: Mutex::new(HashMap::new()),
            stats: VisionStats::default(),
        }
    }

    pub fn gallery(&self) -> std::sync::RwLockReadGuard<'_, Gallery> {
        self.gallery.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn gallery_mut(&self) -> std::sync::RwLockWriteGuard<'_, Gallery> {
        self.gallery.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Where a sighting's pictures are.
    pub fn evidence_path(&self, sighting: SightingId, which: &str) -> PathBuf {
        self.evidence_dir.join(sighting.to_string()).join(which)
    }

    /// Searches the list for one face seen by `camera`; on a match, saves the evidence and
    /// hands the match to the camera's actor. Runs on an inference thread (or a blocking
    /// task for edge detections), never on an actor's event loop.
    pub fn search(&self, camera: &str, probe: Probe<'_>) -> Option<SightingId> {
        // Counted when the search and what follows it are done, whichever way it ends.
        let _done = CountOnDrop(&self.stats.searches);
        let hit = self.gallery().search(probe.embedding, camera, Utc::now().timestamp());
        let matched = hit.as_ref().is_some_and(|h| h.score >= self.review_threshold);
        {
            let mut s = self.searched.lock().unwrap_or_else(|p| p.into_inner());
            let e = s.entry(camera.to_owned()).or_default();
            e.0 += 1;
            e.1 += u64::from(matched);
        }
        let hit = hit.filter(|_| matched)?;
        if hit.negative.is_some_and(|n| n >= hit.score) {
            self.stats.suppressed.fetch_add(1, Ordering::Relaxed);
            tracing::info!(camera, person = %hit.person, score = hit.score, negative = hit.negative,
                "match suppressed: closer to a face a dispatcher rejected");
            return None;
        }
        let now = Instant::now();
        {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            let key = (camera.to_owned(), hit.person.clone());
            if last.get(&key).is_some_and(|t| now.duration_since(*t) < self.rematch) {
                return None;
            }
            last.insert(key, now);
        }
        let cam = self.directory.camera(camera)?;
        let person = PersonId::parse(&hit.person).ok()?;
        let sighting_id = SightingId::new_random();
        let evidence = match probe.evidence {
            Some((frame, crop)) => match self.save_evidence(sighting_id, frame, crop) {
                Ok(()) => true,
                Err(e) => {
                    self.stats.evidence_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(camera, %sighting_id, error = %e, "evidence not saved; the match goes on without it");
                    false
                }
            },
            None => false,
        };
        self.stats.matches.fetch_add(1, Ordering::Relaxed);
        tracing::info!(camera, person = %person, score = hit.score, %sighting_id, evidence, "watchlist match");
        let now = Utc::now();
        let at = probe
            .seen_at
            .filter(|t| {
                *t <= now + chrono::Duration::seconds(SEEN_AT_AHEAD_S)
                    && *t >= now - chrono::Duration::seconds(SEEN_AT_BEHIND_S)
            })
            .unwrap_or(now);
        cam.do_send(Matched {
            sighting_id,
            person,
            score: hit.score,
            at,
            embedding: Arc::from(&probe.embedding[..]),
            evidence,
            received: Received::now(),
        });
        Some(sighting_id)
    }

    fn save_evidence(&self, id: SightingId, frame: &Frame, crop: &[u8]) -> anyhow::Result<()> {
        let face = jpeg_crop(crop, 90)?;
        let whole = jpeg_bgr(frame, 85)?;
        write_durable(&self.evidence_path(id, "face.jpg"), &face)?;
        write_durable(&self.evidence_path(id, "frame.jpg"), &whole)?;
        Ok(())
    }

    /// Searches per camera (and matches among them) since the last call.
    pub fn take_search_counts(&self) -> Vec<(String, u64, u64)> {
        let mut s = self.searched.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = s.drain().map(|(c, (n, m))| (c, n, m)).collect();
        v.sort();
        v
    }
}

struct CountOnDrop<'a>(&'a AtomicU64);

impl Drop for CountOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Edge cameras' faces searched against the watchlist by a fixed pool of threads, with a
/// bounded queue in front: a camera flooding detections can take only so much of kuzet, and
/// what is over that is refused at once (the caller says so to the camera) instead of piling
/// up as blocking tasks.
pub struct EdgeSearches {
    matcher: Arc<Matcher>,
    jobs: std::sync::mpsc::SyncSender<EdgeJob>,
    /// Messages queued, not yet taken by a thread.
    waiting: Arc<AtomicU64>,
}

struct EdgeJob {
    camera: String,
    at: DateTime<Utc>,
    faces: Vec<Embedding>,
}

impl EdgeSearches {
    /// Starts `workers` threads; at most `queue` messages wait for them. The threads end when
    /// this is dropped.
    pub fn start(matcher: Arc<Matcher>, workers: usize, queue: usize) -> std::io::Result<Self> {
        let (jobs, rx) = std::sync::mpsc::sync_channel::<EdgeJob>(queue);
        let rx = Arc::new(Mutex::new(rx));
        let waiting = Arc::new(AtomicU64::new(0));
        for i in 0..workers {
            let (rx, m, waiting) = (rx.clone(), matcher.clone(), waiting.clone());
            std::thread::Builder::new().name(format!("edge-search-{i}")).spawn(move || loop {
                let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                let Ok(job) = job else { return };
                waiting.fetch_sub(1, Ordering::Relaxed);
                for f in &job.faces {
                    m.search(&job.camera, Probe { embedding: f, evidence: None, seen_at: Some(job.at) });
                }
            })?;
        }
        Ok(Self { matcher, jobs, waiting })
    }

    /// Queues one message's faces; never waits. Err: the queue is full (how many wait).
    pub fn try_search(&self, camera: &str, at: DateTime<Utc>, faces: Vec<Embedding>) -> Result<(), u64> {
        let n = faces.len() as u64;
        // Counted before the send: a thread may take the job at once.
        self.waiting.fetch_add(1, Ordering::Relaxed);
        match self.jobs.try_send(EdgeJob { camera: camera.to_owned(), at, faces }) {
            Ok(()) => {
                self.matcher.stats.edge_faces.fetch_add(n, Ordering::Relaxed);
                Ok(())
            }
            Err(_) => Err(self.waiting.fetch_sub(1, Ordering::Relaxed) - 1),
        }
    }
}

pub use kuzet_contract::embedding_from;
// Edge cameras' embeddings are checked by the contract, against the models' size.
const _: () = assert!(kuzet_contract::EMBEDDING_DIM == DIM);

/// What enrolment makes of a set of photos.
pub struct Enrolment {
    pub embedding: Embedding,
    /// The first photo's aligned face, JPEG.
    pub face_jpeg: Vec<u8>,
    pub photo_sha256: Vec<String>,
}

/// The largest face in each photo, embedded; the mean embedding (unit length) stands for the
/// person. A photo with no face is an error that names it.
pub fn enrolment(models: &mut FaceModels, photos: &[(String, Vec<u8>)]) -> anyhow::Result<Enrolment> {
    let quiet = kuzet_progress::Progress::new(kuzet_progress::Show::Quiet, "enrolling", "photos", None);
    enrolment_shown(models, photos, &quiet)
}

/// `enrolment`, advancing `progress` a photo at a time.
pub fn enrolment_shown(
    models: &mut FaceModels,
    photos: &[(String, Vec<u8>)],
    progress: &kuzet_progress::Progress,
) -> anyhow::Result<Enrolment> {
    anyhow::ensure!(!photos.is_empty(), "at least one photo is needed");
    let mut sum = [0f32; DIM];
    let mut face_jpeg = None;
    let mut sha = Vec::with_capacity(photos.len());
    for (name, bytes) in photos {
        let frame = kuzet_vision::decode_image(bytes).with_context(|| format!("photo {name}"))?;
        let faces = models.faces(&frame).with_context(|| format!("photo {name}"))?;
        let face = faces
            .into_iter()
            .max_by(|a, b| a.detection.area().total_cmp(&b.detection.area()))
            .with_context(|| format!("photo {name}: no face found"))?;
        sum.iter_mut().zip(&face.embedding).for_each(|(s, e)| *s += e);
        if face_jpeg.is_none() {
            face_jpeg = Some(jpeg_crop(&face.crop, 90)?);
        }
        sha.push(hex(&Sha256::digest(bytes)));
        progress.advance(1);
    }
    kuzet_vision::face::normalize(&mut sum);
    Ok(Enrolment { embedding: sum, face_jpeg: face_jpeg.unwrap_or_default(), photo_sha256: sha })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The watchlist side of a running kuzet: the matcher, the people's actors, and what the
/// HTTP API needs to enrol and decide.
pub struct Watch {
    pub matcher: Arc<Matcher>,
    pub people: WatchDirectory,
    pub pool: Option<sqlx::PgPool>,
    registry: Addr<Registry>,
    outbox: Outbox,
    wanted_cfg: WantedConfig,
    /// Models for enrolment over HTTP (loaded on first use).
    enroller: Mutex<Option<FaceModels>>,
    model_paths: ModelPaths,
    intra_threads: usize,
}

impl Watch {
    /// Puts an entry in the gallery and starts (or updates) the person's actor.
    pub fn put(&self, e: &Entry) {
        let mut emb = [0f32; DIM];
        if e.embedding.len() != DIM {
            tracing::error!(person = %e.id, "watchlist entry without a 128-float embedding: not loaded");
            return;
        }
        emb.copy_from_slice(&e.embedding);
        self.matcher.gallery_mut().upsert(e.id.as_str(), &emb, e.expires_at.timestamp());
        let spec = WantedSpec {
            person: WantedRef {
                person_id: e.id.clone(),
                name: e.name.clone(),
                danger: e.acting_danger(),
                legal_basis: match &e.case_ref {
                    Some(c) => format!("{} ({c})", e.legal_basis),
                    None => e.legal_basis.clone(),
                },
            },
            expires_at: e.expires_at,
        };
        match self.people.person(e.id.as_str()) {
            Some(addr) => addr.do_send(Update(Some(spec))),
            None => {
                let addr = WantedPerson::new(
                    spec,
                    self.wanted_cfg.clone(),
                    self.registry.clone().recipient(),
                    self.people.clone(),
                    self.outbox.clone(),
                )
                .start();
                self.people.insert(e.id.clone(), addr);
            }
        }
    }

    /// Takes a person off the list: no more matches, their actor stops (an open incident
    /// goes on), the entry leaves the database (audited). False when there was no such entry.
    pub async fn remove(&self, person: &str, actor: &str, reason: &str) -> anyhow::Result<bool> {
        let pool = self.pool.as_ref().context("removal needs the database")?;
        let removed = watchlist::remove(pool, person, actor, reason).await?;
        self.matcher.gallery_mut().remove(person);
        if let Some(addr) = self.people.remove(person) {
            addr.do_send(Update(None));
        }
        Ok(removed)
    }

    /// A second person approves a high-danger entry: from now on a match above the automatic
    /// threshold opens an incident without review.
    pub async fn approve(&self, person: &str, actor: &str) -> Result<Entry, watchlist::ApprovalError> {
        let pool = self.pool.as_ref().ok_or_else(|| watchlist::ApprovalError::NotFound(person.to_owned()))?;
        let entry = watchlist::approve(pool, person, actor).await?;
        self.put(&entry);
        Ok(entry)
    }

    /// Enrols from photos with the enrolment models (loaded on first use) off the caller's
    /// thread, writes the entry (audited) and puts it to work.
    pub async fn enroll(
        self: &Arc<Self>,
        mut entry: Entry,
        photos: Vec<(String, Vec<u8>)>,
        actor: String,
    ) -> anyhow::Result<bool> {
        let pool = self.pool.clone().context("enrolment needs the database")?;
        let me = self.clone();
        let entry_id = entry.id.to_string();
        let e = actix_rt::task::spawn_blocking(move || {
            let mut guard = me.enroller.lock().unwrap_or_else(|p| p.into_inner());
            let what = format!("enrolling {}", entry_id);
            let progress = kuzet_progress::Progress::new(
                kuzet_progress::Show::Log,
                &what,
                "photos",
                Some(photos.len() as u64),
            );
            if guard.is_none() {
                progress.stage("loading the face models");
                *guard = Some(FaceModels::load(&me.model_paths, me.intra_threads)?);
            }
            let e = enrolment_shown(guard.as_mut().expect("loaded above"), &photos, &progress);
            progress.finish(if e.is_ok() { "done" } else { "refused" });
            e
        })
        .await
        .context("enrolment thread failed")??;
        entry.embedding = e.embedding.to_vec();
        entry.photos = e.photo_sha256.len() as i32;
        // A new enrolment is a new entry: any approval it had is gone.
        entry.enrolled_by = actor.clone();
        entry.approved_by = None;
        let created = watchlist::enroll(&pool, &entry, Some(&e.face_jpeg), &e.photo_sha256, &actor).await?;
        self.put(&entry);
        Ok(created)
    }
}

/// The running camera pipelines and inference threads.
pub struct Vision {
    pub watch: Arc<Watch>,
    frames: FramePool,
    sources: Vec<Source>,
    workers: Vec<JoinHandle<()>>,
}

struct Events {
    frames: FramePool,
    cameras: Vec<CameraId>,
    directory: Directory,
    matcher: Arc<Matcher>,
}

impl SourceEvents for Events {
    fn frame(&self, camera: usize, frame: Frame, _stats: &FrameStats, focus: Focus) {
        self.frames.submit_focus(camera, frame, focus);
    }

    fn gated(&self, _camera: usize, _stats: &FrameStats) {
        self.matcher.stats.gated.fetch_add(1, Ordering::Relaxed);
    }

    fn health(&self, camera: usize, state: HealthState, detail: &str) {
        if let Some(addr) = self.cameras.get(camera).and_then(|c| self.directory.camera(c.as_str())) {
            addr.do_send(HealthReport { state: state.as_str(), detail: detail.to_owned(), at: Utc::now() });
        }
    }
}

pub struct VisionParts<'a> {
    pub settings: &'a VisionSettings,
    pub devices: &'a Devices,
    pub directory: Directory,
    pub people: WatchDirectory,
    pub registry: Addr<Registry>,
    pub outbox: Outbox,
    pub pool: Option<sqlx::PgPool>,
    pub auto_threshold: f32,
}

impl Vision {
    /// Loads the watchlist, starts the people's actors, and (when vision is enabled) the
    /// inference threads and a pipeline per camera with a stream.
    pub async fn start(p: VisionParts<'_>) -> anyhow::Result<Self> {
        let s = p.settings;
        let matcher = Arc::new(Matcher::new(s, p.directory.clone()));
        let watch = Arc::new(Watch {
            matcher: matcher.clone(),
            people: p.people.clone(),
            pool: p.pool.clone(),
            registry: p.registry.clone(),
            outbox: p.outbox.clone(),
            wanted_cfg: WantedConfig {
                auto_threshold: p.auto_threshold,
                review_window: Duration::from_secs(s.review_window_s),
                trajectory_len: 100,
            },
            enroller: Mutex::new(None),
            model_paths: ModelPaths::in_dir(&s.models_dir),
            intra_threads: s.intra_threads,
        });
        if let Some(pool) = &p.pool {
            let entries = watchlist::load(pool).await?;
            for e in &entries {
                watch.put(e);
            }
            let negatives = watchlist::negatives(pool).await?;
            {
                let mut g = matcher.gallery_mut();
                for (person, camera, emb) in &negatives {
                    if let Ok(e) = <[f32; DIM]>::try_from(emb.as_slice()) {
                        g.add_negative(person, camera, e);
                    }
                }
            }
            let reviews = restore_reviews(pool, &p.people).await?;
            tracing::info!(people = entries.len(), negatives = negatives.len(), reviews, "watchlist loaded");
        }
        let mut me = Self { watch, frames: FramePool::new(), sources: Vec::new(), workers: Vec::new() };
        if !s.enabled {
            tracing::info!("vision.enabled = false: no camera pipelines (edge detections are still matched)");
            return Ok(me);
        }
        let paths = ModelPaths::in_dir(&s.models_dir);
        for i in 0..s.threads {
            let mut models = FaceModels::load(&paths, s.intra_threads).with_context(|| {
                format!("face models in {} (run scripts/models.sh)", s.models_dir.display())
            })?;
            models.min_score = s.min_face_score;
            let (frames, matcher) = (me.frames.clone(), matcher.clone());
            let cameras: Vec<CameraId> = p.devices.cameras.iter().map(|c| c.id.clone()).collect();
            let h = std::thread::Builder::new()
                .name(format!("kuzet-faces-{i}"))
                .spawn(move || infer(models, frames, matcher, cameras))?;
            me.workers.push(h);
        }
        let cameras: Vec<CameraId> = p.devices.cameras.iter().map(|c| c.id.clone()).collect();
        let events: Arc<dyn SourceEvents> = Arc::new(Events {
            frames: me.frames.clone(),
            cameras: cameras.clone(),
            directory: p.directory.clone(),
            matcher: matcher.clone(),
        });
        for c in &p.devices.cameras {
            let slot = me.frames.add_camera();
            let Some(uri) = c.stream_uri.clone() else {
                continue;
            };
            let cfg = SourceConfig {
                camera: slot,
                name: c.id.to_string(),
                uri,
                fps: s.fps,
                health: HealthConfig {
                    offline_after: VisionSettings::secs(s.offline_after_s),
                    frozen_after: VisionSettings::secs(s.frozen_after_s),
                    covered_after: VisionSettings::secs(s.covered_after_s),
                    ..HealthConfig::default()
                },
                backoff: (Duration::from_millis(500), Duration::from_secs(10)),
                motion: Some(s.motion_for(c.id.as_str())),
            };
            me.sources.push(Source::spawn(cfg, events.clone())?);
        }
        tracing::info!(pipelines = me.sources.len(), threads = s.threads, "camera pipelines started");
        Ok(me)
    }

    /// (frames handed to the pool, frames replaced before inference took them).
    pub fn frame_counts(&self) -> (u64, u64) {
        self.frames.counts()
    }

    /// Stops the pipelines and the inference threads.
    pub fn stop(&mut self) {
        for s in self.sources.drain(..) {
            s.stop();
        }
        self.frames.stop();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Drop for Vision {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An inference thread: the newest frame of any camera, its faces, each searched.
fn infer(mut models: FaceModels, frames: FramePool, matcher: Arc<Matcher>, cameras: Vec<CameraId>) {
    while let Some((cam, frame, focus, _at)) = frames.take() {
        matcher.stats.frames.fetch_add(1, Ordering::Relaxed);
        if matches!(focus, Focus::Region(_)) {
            matcher.stats.regions.fetch_add(1, Ordering::Relaxed);
        }
        let faces = match models.faces_in(&frame, &focus) {
            Ok(f) => f,
            Err(e) => {
                matcher.stats.inference_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "face inference failed");
                continue;
            }
        };
        let Some(camera) = cameras.get(cam) else { continue };
        for f in &faces {
            matcher.stats.faces.fetch_add(1, Ordering::Relaxed);
            matcher.search(
                camera.as_str(),
                Probe { embedding: &f.embedding, evidence: Some((&frame, &f.crop)), seen_at: None },
            );
        }
    }
}

/// Writes one audit entry per camera for the searches of the list since the last call: every
/// face a camera saw was a search of the watchlist, and the log says how many, and how many
/// matched, without a row per frame.
pub async fn audit_searches(matcher: &Matcher, writer: &crate::store::writer::WriterHandle, period_s: u64) {
    for (camera, searches, matches) in matcher.take_search_counts() {
        let details = serde_json::json!({"searches": searches, "matches": matches, "period_s": period_s});
        writer.audit(&format!("camera:{camera}"), "watchlist.search", None, details).await;
    }
}

/// Hands the reviews that were waiting at the last stop back to their people; how many.
async fn restore_reviews(pool: &sqlx::PgPool, people: &WatchDirectory) -> anyhow::Result<usize> {
    let mut by_review: std::collections::BTreeMap<(String, uuid::Uuid), Vec<_>> = Default::default();
    for s in watchlist::pending_reviews(pool).await? {
        let (Ok(camera), Ok(location), Some(review_id)) =
            (CameraId::parse(&s.camera_id), GeoPoint::new(s.lat, s.lon), s.review_id)
        else {
            continue;
        };
        let sighting = SightingRef {
            sighting_id: SightingId(s.id),
            camera,
            at: s.at,
            location,
            score: s.score,
            evidence: s.evidence,
        };
        let emb = s.embedding.filter(|e| e.len() == DIM).map(|e| Arc::<[f32]>::from(e.as_slice()));
        by_review.entry((s.person_id, review_id)).or_default().push((sighting, emb));
    }
    let n = by_review.len();
    for ((person, review_id), sightings) in by_review {
        match people.person(&person) {
            Some(addr) => addr.do_send(RestoreReview { review_id: ReviewId(review_id), sightings }),
            None => tracing::warn!(%person, %review_id, "pending review of a person no longer on the list"),
        }
    }
    Ok(n)
}

/// Reads a photo file for enrolment.
pub fn read_photo(path: &Path) -> anyhow::Result<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok((path.display().to_string(), bytes))
}
