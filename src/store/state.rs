//! The local copy of what dispatch needs to start (`state.json` in the spool folder): the
//! devices, open incidents with their dispatch state, alarms recorded without their incident,
//! the last hour's alarms of ended incidents, units' last positions and statuses, and
//! cameras' open alerts. kuzet starts from it when the database cannot be reached at start.
//!
//! The writer keeps it: `Mirror` follows every batch once it is committed or spooled (never
//! before, so the copy is never ahead of the record), and the writer replaces the file with
//! it at most every `SAVE_EVERY`, off its own thread. The copy may lag the record by that
//! much; the spool, which holds everything newer that the database does not, is applied on top
//! of it at start.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use kuzet_actors::geo::GeoPoint;
use kuzet_actors::ids::{AlarmId, ButtonId, IncidentId, UnitId};
use kuzet_actors::incident::{IncidentSnapshot, Raiser, RestoredIncident};
use kuzet_actors::model::{AckState, AlarmKind, IncidentState, UnitStatus};
use kuzet_actors::outbound::{Audience, DispatchState, IntegrityAlert};
use kuzet_actors::registry::{OrphanAlarm, Restored};
use kuzet_actors::spec::Devices;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use uuid::Uuid;

use super::rows::{Batch, CameraAlertRow};
use super::spool::sync_dir;
use super::writer::WriterStats;

/// The file's name in the spool folder.
pub const FILE: &str = "state.json";
/// How often the file is replaced at most, while something changed.
pub const SAVE_EVERY: Duration = Duration::from_millis(500);
const VERSION: u32 = 1;
/// As in `restore::load`: an alarm without its incident is opened again within a day, and an
/// hour of alarms is far longer than any broker redelivery.
const ORPHAN_WINDOW: chrono::TimeDelta = chrono::TimeDelta::days(1);
const RECENT_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// The file's content.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalState {
    pub version: u32,
    pub saved_at: DateTime<Utc>,
    /// Without passwords: broker credentials come from the registry file only.
    pub devices: Devices,
    pub incidents: Vec<StoredIncident>,
    pub orphans: Vec<StoredAlarm>,
    /// Incidents ended within a day: an alarm of theirs recorded late is not an orphan.
    pub ended: Vec<(Uuid, DateTime<Utc>)>,
    pub recent_alarms: Vec<RecentAlarm>,
    pub positions: Vec<StoredPosition>,
    pub statuses: Vec<StoredStatus>,
    /// Each camera's latest alert.
    pub camera_alerts: Vec<CameraAlertRow>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredIncident {
    pub snapshot: IncidentSnapshot,
    pub dispatch: DispatchState,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredAlarm {
    pub alarm_id: Uuid,
    pub button: String,
    pub incident_id: Uuid,
    pub kind: Option<String>,
    pub room: Option<String>,
    pub received_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecentAlarm {
    pub button: ButtonId,
    pub alarm_id: AlarmId,
    pub incident_id: IncidentId,
    pub ended: AckState,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredPosition {
    pub unit: String,
    pub at: DateTime<Utc>,
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredStatus {
    pub unit: String,
    /// available | busy | off_duty
    pub status: String,
    pub at: DateTime<Utc>,
}

impl LocalState {
    /// What was just read from the database, as the mirror starts from it.
    pub fn from_restored(devices: &Devices, r: &Restored, alerts: &[IntegrityAlert]) -> Self {
        let now = Utc::now();
        Self {
            version: VERSION,
            saved_at: now,
            devices: without_passwords(devices),
            incidents: r
                .incidents
                .iter()
                .map(|i| StoredIncident { snapshot: i.snapshot.clone(), dispatch: i.state.clone() })
                .collect(),
            orphans: r
                .orphans
                .iter()
                .map(|o| StoredAlarm {
                    alarm_id: o.raiser.alarm_id.0,
                    button: o.raiser.button.to_string(),
                    incident_id: o.incident_id.0,
                    kind: Some(o.raiser.kind.as_str().to_owned()),
                    room: o.raiser.room.clone(),
                    received_at: o.received_at,
                })
                .collect(),
            ended: r.recent_alarms.iter().map(|(_, _, i, _)| (i.0, now)).collect(),
            recent_alarms: r
                .recent_alarms
                .iter()
                .map(|(b, a, i, e)| RecentAlarm {
                    button: b.clone(),
                    alarm_id: *a,
                    incident_id: *i,
                    ended: *e,
                    at: now,
                })
                .collect(),
            positions: r
                .positions
                .iter()
                .map(|(u, p, at)| StoredPosition { unit: u.to_string(), at: *at, lat: p.lat(), lon: p.lon() })
                .collect(),
            statuses: r
                .statuses
                .iter()
                .map(|(u, s, at)| StoredStatus { unit: u.to_string(), status: enum_str(s), at: *at })
                .collect(),
            camera_alerts: alerts
                .iter()
                .map(|a| CameraAlertRow {
                    camera_id: a.camera.to_string(),
                    at: a.at,
                    state: a.state.clone(),
                    detail: a.detail.clone(),
                    audience: match a.audience {
                        Audience::Dispatch => "dispatch".into(),
                        Audience::Oversight => "oversight".into(),
                    },
                    custodial: a.custodial,
                })
                .collect(),
        }
    }

    /// Nothing but `devices`: kuzet starts with no record at all.
    pub fn empty(devices: &Devices) -> Self {
        Self::from_restored(devices, &Restored::default(), &[])
    }

    /// What to hand the registry, as `restore::load` reads it from the database, and each
    /// open incident's timeline entries already recorded (for the writer).
    pub fn restored(&self, position_max_age: Duration) -> (Restored, Vec<(IncidentId, usize)>) {
        let now = Utc::now();
        let mut r = Restored::default();
        let mut incidents = self.incidents.clone();
        incidents.sort_by_key(|i| i.snapshot.opened_at);
        let written = incidents.iter().map(|i| (i.snapshot.incident_id, i.snapshot.timeline.len())).collect();
        r.incidents = incidents
            .into_iter()
            .map(|i| RestoredIncident { snapshot: i.snapshot, state: i.dispatch })
            .collect();
        let mut orphans: Vec<_> =
            self.orphans.iter().filter(|o| now - o.received_at < ORPHAN_WINDOW).collect();
        orphans.sort_by_key(|o| o.received_at);
        for o in orphans {
            let Ok(button) = ButtonId::parse(&o.button) else { continue };
            let kind = o
                .kind
                .as_ref()
                .and_then(|k| serde_json::from_value::<AlarmKind>(serde_json::Value::String(k.clone())).ok())
                .unwrap_or_default();
            r.orphans.push(OrphanAlarm {
                incident_id: IncidentId(o.incident_id),
                raiser: Raiser {
                    button,
                    alarm_id: AlarmId(o.alarm_id),
                    room: o.room.clone(),
                    kind,
                    withdrawn: false,
                },
                received_at: o.received_at,
            });
        }
        r.recent_alarms = self
            .recent_alarms
            .iter()
            .filter(|a| now - a.at < RECENT_WINDOW)
            .map(|a| (a.button.clone(), a.alarm_id, a.incident_id, a.ended))
            .collect();
        let max_age = chrono::TimeDelta::from_std(position_max_age).unwrap_or(chrono::TimeDelta::MAX);
        for p in self.positions.iter().filter(|p| now - p.at < max_age) {
            if let (Ok(unit), Ok(point)) = (UnitId::parse(&p.unit), GeoPoint::new(p.lat, p.lon)) {
                r.positions.push((unit, point, p.at));
            }
        }
        for s in &self.statuses {
            let status = serde_json::from_value::<UnitStatus>(serde_json::Value::String(s.status.clone()));
            if let (Ok(unit), Ok(status)) = (UnitId::parse(&s.unit), status) {
                r.statuses.push((unit, status, s.at));
            }
        }
        (r, written)
    }

    /// Cameras' alerts that are not `ok`, for registered cameras (as `restore::open_camera_alerts`).
    pub fn open_alerts(&self) -> Vec<IntegrityAlert> {
        let mut open = Vec::new();
        for a in self.camera_alerts.iter().filter(|a| a.state != "ok") {
            let Some(spec) = self.devices.cameras.iter().find(|c| c.id.as_str() == a.camera_id) else {
                continue;
            };
            open.push(IntegrityAlert {
                camera: spec.id.clone(),
                state: a.state.clone(),
                detail: a.detail.clone(),
                at: a.at,
                audience: if a.audience == "oversight" { Audience::Oversight } else { Audience::Dispatch },
                custodial: a.custodial,
                site: spec.site.clone(),
                location: spec.location,
            });
        }
        open
    }

    /// The copy in `dir`; None when there is none.
    pub fn load(dir: &Path) -> anyhow::Result<Option<Self>> {
        let path = dir.join(FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let state: Self = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a state kuzet wrote", path.display()))?;
        anyhow::ensure!(
            state.version == VERSION,
            "{} has version {}, not {VERSION}",
            path.display(),
            state.version
        );
        Ok(Some(state))
    }
}

/// Replaces `path` with `bytes` so that a crash leaves either the old file or the new one,
/// whole: a temporary file beside it, fsynced, renamed over it, and the folder fsynced.
pub fn replace_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = PathBuf::from(path);
    tmp.as_mut_os_string().push(".tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    sync_dir(dir)
}

/// `devices` with no broker password in them.
pub fn without_passwords(devices: &Devices) -> Devices {
    let mut d = devices.clone();
    d.sites.iter_mut().flat_map(|s| s.buttons.iter_mut()).for_each(|b| b.password = None);
    d.units.iter_mut().for_each(|u| u.password = None);
    d.cameras.iter_mut().for_each(|c| c.password = None);
    d
}

/// The local copy's devices with the registry file's written over them, as `devices::sync`
/// would leave the database: the file's sites, buttons, units and cameras replace those with
/// the same id (a button may move to another site), the others stay.
pub fn merge_devices(local: &Devices, file: &Devices) -> Devices {
    let mut out = local.clone();
    let file_buttons: std::collections::HashSet<&str> =
        file.sites.iter().flat_map(|s| s.buttons.iter().map(|b| b.id.as_str())).collect();
    for s in &mut out.sites {
        s.buttons.retain(|b| !file_buttons.contains(b.id.as_str()));
    }
    for site in &file.sites {
        match out.sites.iter_mut().find(|s| s.id == site.id) {
            Some(s) => {
                let kept = std::mem::take(&mut s.buttons);
                *s = site.clone();
                s.buttons.extend(kept);
            }
            None => out.sites.push(site.clone()),
        }
    }
    out.units.retain(|u| !file.units.iter().any(|f| f.id == u.id));
    out.units.extend(file.units.iter().cloned());
    out.cameras.retain(|c| !file.cameras.iter().any(|f| f.id == c.id));
    out.cameras.extend(file.cameras.iter().cloned());
    out
}

fn enum_str<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// The writer's copy in memory, kept by applying each durable batch.
pub struct Mirror {
    devices: Devices,
    rooms: HashMap<String, Option<String>>,
    incidents: HashMap<Uuid, StoredIncident>,
    orphans: HashMap<Uuid, StoredAlarm>,
    ended: HashMap<Uuid, DateTime<Utc>>,
    recent: HashMap<Uuid, RecentAlarm>,
    positions: HashMap<String, StoredPosition>,
    statuses: HashMap<String, StoredStatus>,
    alerts: HashMap<String, CameraAlertRow>,
    /// Something changed since the last `state()`.
    pub changed: bool,
}

impl Mirror {
    pub fn new(s: LocalState) -> Self {
        let rooms = s
            .devices
            .sites
            .iter()
            .flat_map(|site| site.buttons.iter().map(|b| (b.id.to_string(), b.room.clone())))
            .collect();
        Self {
            rooms,
            incidents: s.incidents.into_iter().map(|i| (i.snapshot.incident_id.0, i)).collect(),
            orphans: s.orphans.into_iter().map(|o| (o.alarm_id, o)).collect(),
            ended: s.ended.into_iter().collect(),
            recent: s.recent_alarms.into_iter().map(|a| (a.alarm_id.0, a)).collect(),
            positions: s.positions.into_iter().map(|p| (p.unit.clone(), p)).collect(),
            statuses: s.statuses.into_iter().map(|p| (p.unit.clone(), p)).collect(),
            alerts: s.camera_alerts.into_iter().map(|a| (a.camera_id.clone(), a)).collect(),
            devices: s.devices,
            changed: true,
        }
    }

    /// Follows a batch that is now durable. Alarms before incidents, as in the batch: an
    /// alarm and its incident's first record may come together.
    pub fn apply(&mut self, b: &Batch) {
        let now = Utc::now();
        for a in &b.alarms {
            match (a.action.as_str(), a.incident_id) {
                ("raise", Some(incident))
                    if !self.incidents.contains_key(&incident) && !self.ended.contains_key(&incident) =>
                {
                    self.orphans.insert(
                        a.alarm_id,
                        StoredAlarm {
                            alarm_id: a.alarm_id,
                            button: a.button_id.clone(),
                            incident_id: incident,
                            kind: a.kind.clone(),
                            room: self.rooms.get(&a.button_id).cloned().flatten(),
                            received_at: a.received_at,
                        },
                    );
                }
                ("cancel", _) => {
                    self.orphans.remove(&a.alarm_id);
                }
                _ => {}
            }
        }
        for row in &b.incidents {
            let parsed = serde_json::from_str::<IncidentSnapshot>(&row.snapshot)
                .and_then(|s| Ok((s, serde_json::from_str::<DispatchState>(&row.dispatch)?)));
            let (snapshot, dispatch) = match parsed {
                Ok(x) => x,
                Err(e) => {
                    tracing::error!(incident_id = %row.id, error = %e, "incident left out of the local copy");
                    continue;
                }
            };
            self.orphans.retain(|_, o| o.incident_id != row.id);
            if snapshot.state.is_open() {
                self.incidents.insert(row.id, StoredIncident { snapshot, dispatch });
                continue;
            }
            self.incidents.remove(&row.id);
            self.ended.insert(row.id, now);
            let ended = if snapshot.state == IncidentState::Cancelled {
                AckState::Cancelled
            } else {
                AckState::Cleared
            };
            for r in &snapshot.raised_by {
                self.recent.insert(
                    r.alarm_id.0,
                    RecentAlarm {
                        button: r.button.clone(),
                        alarm_id: r.alarm_id,
                        incident_id: snapshot.incident_id,
                        ended,
                        at: now,
                    },
                );
            }
        }
        for p in &b.positions {
            if self.positions.get(&p.unit_id).is_none_or(|old| old.at < p.at) {
                let stored = StoredPosition { unit: p.unit_id.clone(), at: p.at, lat: p.lat, lon: p.lon };
                self.positions.insert(p.unit_id.clone(), stored);
            }
        }
        // As the database: a status reported earlier than the recorded one changes nothing.
        for s in &b.unit_statuses {
            if self.statuses.get(&s.unit_id).is_none_or(|old| old.at <= s.at) {
                let stored = StoredStatus { unit: s.unit_id.clone(), status: s.status.clone(), at: s.at };
                self.statuses.insert(s.unit_id.clone(), stored);
            }
        }
        for a in &b.camera_alerts {
            if self.alerts.get(&a.camera_id).is_none_or(|old| old.at <= a.at) {
                self.alerts.insert(a.camera_id.clone(), a.clone());
            }
        }
        self.changed |= !(b.alarms.is_empty()
            && b.incidents.is_empty()
            && b.positions.is_empty()
            && b.unit_statuses.is_empty()
            && b.camera_alerts.is_empty());
    }

    /// The copy as it stands, without what has aged out; clears `changed`.
    pub fn state(&mut self) -> LocalState {
        let now = Utc::now();
        self.orphans.retain(|_, o| now - o.received_at < ORPHAN_WINDOW);
        self.ended.retain(|_, at| now - *at < ORPHAN_WINDOW);
        self.recent.retain(|_, a| now - a.at < RECENT_WINDOW);
        self.changed = false;
        LocalState {
            version: VERSION,
            saved_at: now,
            devices: self.devices.clone(),
            incidents: self.incidents.values().cloned().collect(),
            orphans: self.orphans.values().cloned().collect(),
            ended: self.ended.iter().map(|(k, v)| (*k, *v)).collect(),
            recent_alarms: self.recent.values().cloned().collect(),
            positions: self.positions.values().cloned().collect(),
            statuses: self.statuses.values().cloned().collect(),
            camera_alerts: self.alerts.values().cloned().collect(),
        }
    }
}

/// The mirror and its file, for the writer: replaced on the blocking pool, one replacement
/// at a time (so they land in order), at most every `SAVE_EVERY`.
pub struct Keeper {
    mirror: Mirror,
    path: PathBuf,
    stats: Arc<WriterStats>,
    next_save: Instant,
    saving: Option<tokio::task::JoinHandle<()>>,
    /// The last replacement failed: the copy is due again.
    failed: Arc<AtomicBool>,
}

impl Keeper {
    pub fn new(state: LocalState, dir: &Path, stats: Arc<WriterStats>) -> Self {
        Self {
            mirror: Mirror::new(state),
            path: dir.join(FILE),
            stats,
            next_save: Instant::now(),
            saving: None,
            failed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Follows a batch that is now durable.
    pub fn apply(&mut self, b: &Batch) {
        self.mirror.apply(b);
    }

    /// The copy as it stands (it is still written out).
    pub fn state(&mut self) -> LocalState {
        let s = self.mirror.state();
        self.mirror.changed = true;
        s
    }

    /// The copy has changes not yet on disk.
    pub fn due(&mut self) -> bool {
        if self.failed.swap(false, Ordering::AcqRel) {
            self.mirror.changed = true;
        }
        self.mirror.changed
    }

    /// When the next replacement may start.
    pub fn next_save(&self) -> Instant {
        self.next_save
    }

    /// Starts replacing the file when the copy changed and a replacement is due.
    pub fn save(&mut self) {
        let now = Instant::now();
        if !self.due() || now < self.next_save {
            return;
        }
        if self.saving.as_ref().is_some_and(|h| !h.is_finished()) {
            self.next_save = now + Duration::from_millis(20);
            return;
        }
        let bytes = match serde_json::to_vec(&self.mirror.state()) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode the local copy");
                return;
            }
        };
        self.next_save = now + SAVE_EVERY;
        let (path, stats, failed) = (self.path.clone(), self.stats.clone(), self.failed.clone());
        self.saving = Some(tokio::task::spawn_blocking(move || match replace_durably(&path, &bytes) {
            Ok(()) => {
                stats.state_saves.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::error!(error = %e, path = %path.display(), "cannot write the local copy");
                failed.store(true, Ordering::Release);
            }
        }));
    }

    /// Waits for the replacement under way; the next one may start at once.
    pub async fn settle(&mut self) {
        if let Some(h) = self.saving.take() {
            let _ = h.await;
        }
        self.next_save = Instant::now();
    }
}

#[cfg(test)]
mod tests;
