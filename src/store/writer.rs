//! The writer: everything kuzet records goes through here, off the alarm path. It runs on a
//! thread of its own (with its own connections), takes what the gateway and the actors hand
//! it, and writes it in batches: one transaction per batch, multi-row statements per table.
//!
//! Durability without latency: dispatch never waits for the writer. An alarm's MQTT PUBACK
//! does: the gateway acknowledges an alarm to the broker only once the batch holding it is
//! committed, or, while the database cannot be reached, appended to the spool and fsynced.
//! While the spool holds anything, new batches go behind it, so rows reach the database in
//! the order they happened; each batch carries an id the database remembers, so a batch
//! written twice (a commit whose answer was lost) counts once.
//!
//! A batch the database refuses for its content (a value it cannot hold, a broken constraint)
//! must not take the good rows in it with it, nor hold up what comes after it. It is written
//! again in one transaction that claims the batch's id as usual, with each part under a
//! savepoint: a part the database refuses is rolled back to its savepoint and split in two,
//! first half first, until the refused rows stand alone. Those are set aside in
//! `rejected-<batch id>.json` (fsynced, with its folder) before the rest commits. Parts keep the
//! batch's order (tables in the order `insert_rows` writes them), so an incident is written
//! before its timeline and audit entries keep their order on the hash chain. One transaction
//! and one id per batch keeps it exactly once: if the commit fails, nothing of the batch is in
//! the database and the whole batch is written again (or spooled), refused rows are set aside
//! again under the same name; if the commit went through unseen, the id skips the batch.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use kuzet_actors::button::{Alarm, AlarmAction};
use kuzet_actors::ids::{ButtonId, IncidentId, UnitId};
use kuzet_actors::outbound::{
    Audience, IncidentRecord, IntegrityAlert, Journal, SightingRecord, UnitStatusRecord, Waiter,
};
use kuzet_actors::spec::Devices;
use kuzet_actors::unit::Position;
use sqlx::postgres::{PgPool, PgPoolOptions};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::Instant;

use super::rows::{
    AlarmRow, AuditRow, Batch, CameraAlertRow, EventRow, IncidentRow, PositionRow, SightingRow, UnitStatusRow,
};
use super::spool::Spool;
use super::state::{Keeper, LocalState};

/// A write that takes longer is taken for a database that is gone: the batch is spooled.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an unreachable database is tried again.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long batch ids are kept (a spooled batch is replayed well within it).
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Migrations on a fresh database take seconds; longer is a database in trouble.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(120);

/// What a database kuzet started without needs before the spool goes in: the schema (it may
/// be a fresh one), and the registry file's devices, which the spooled alarms refer to.
#[derive(Debug, Clone)]
pub struct Catchup {
    pub registry: Devices,
    /// Who the devices' audit entries name.
    pub actor: String,
}

impl Catchup {
    async fn run(&self, pool: &PgPool) -> anyhow::Result<()> {
        super::migrate(pool).await?;
        let d = &self.registry;
        if !d.sites.is_empty() || !d.units.is_empty() || !d.cameras.is_empty() {
            let report =
                super::devices::sync(pool, d, &self.actor).await.context("cannot register devices")?;
            tracing::info!(?report, "registry file written to the database");
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub url: String,
    pub spool_dir: PathBuf,
    pub batch_max: usize,
    pub queue: usize,
}

/// What the writer has done, for metrics and tests.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub batches_written: AtomicU64,
    pub rows_written: AtomicU64,
    pub batches_spooled: AtomicU64,
    pub batches_replayed: AtomicU64,
    /// Batches with rows the database refused for their content (not for being unreachable);
    /// those rows are kept in the spool folder as rejected-<id>.json for an operator, the
    /// others are written.
    pub batches_rejected: AtomicU64,
    pub rows_rejected: AtomicU64,
    pub positions_shed: AtomicU64,
    pub incidents_not_recorded: AtomicU64,
    pub spool_bytes: AtomicU64,
    pub database_up: AtomicBool,
    /// Times the local copy (`state.json`) was replaced.
    pub state_saves: AtomicU64,
}

enum Urgent {
    Alarm(AlarmRow, oneshot::Sender<()>),
    Incident(IncidentRecord),
    UnitStatus(UnitStatusRow, Option<Waiter>),
    Audit(AuditRow),
    Sighting(SightingRow, AuditRow),
    Integrity(CameraAlertRow, Option<AuditRow>),
    /// Timeline entries already in the database for restored incidents, and the local copy
    /// to keep from now on.
    Seed(Vec<(IncidentId, usize)>, Box<LocalState>),
    Flush(oneshot::Sender<()>),
}

/// The handle the gateway and the actors write through. Cheap to clone.
#[derive(Clone)]
pub struct WriterHandle {
    urgent: mpsc::Sender<Urgent>,
    positions: mpsc::Sender<PositionRow>,
    stats: Arc<WriterStats>,
}

impl WriterHandle {
    /// Records an alarm; the receiver completes once it is durable (dropped: never).
    pub async fn alarm(
        &self,
        button: &str,
        a: &Alarm,
        incident: Option<IncidentId>,
    ) -> oneshot::Receiver<()> {
        let row = AlarmRow {
            alarm_id: a.alarm_id.0,
            button_id: button.to_owned(),
            action: match a.action {
                AlarmAction::Raise => "raise".into(),
                AlarmAction::Cancel => "cancel".into(),
            },
            kind: Some(a.kind.as_str().into()),
            device_at: a.at,
            received_at: a.received.at,
            incident_id: incident.map(|i| i.0),
        };
        let (tx, rx) = oneshot::channel();
        // Waits when the writer is behind: an alarm is never shed.
        let _ = self.urgent.send(Urgent::Alarm(row, tx)).await;
        rx
    }

    /// Records a position unless the writer is behind (then it is shed and counted).
    pub fn position(&self, unit: &str, p: &Position) {
        let row = PositionRow {
            unit_id: unit.to_owned(),
            at: p.at,
            received_at: p.received.at,
            lat: p.point.lat(),
            lon: p.point.lon(),
            speed_mps: p.speed_mps.map(|v| v as f32),
            heading_deg: p.heading_deg.map(|v| v as f32),
        };
        if self.positions.try_send(row).is_err() {
            self.stats.positions_shed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Appends an audit entry with the next batch.
    pub async fn audit(&self, actor: &str, action: &str, subject: Option<&str>, details: serde_json::Value) {
        let row = AuditRow {
            actor: actor.to_owned(),
            action: action.to_owned(),
            subject: subject.map(str::to_owned),
            details: details.to_string(),
        };
        let _ = self.urgent.send(Urgent::Audit(row)).await;
    }

    /// Tells the writer how much of restored incidents' timelines is already recorded, and
    /// what the record held at start (the local copy starts from it).
    pub async fn seed(&self, written: Vec<(IncidentId, usize)>, state: LocalState) {
        let _ = self.urgent.send(Urgent::Seed(written, Box::new(state))).await;
    }

    /// Completes once everything handed over before it is durable.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.urgent.send(Urgent::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }
}

impl WriterStats {
    /// The counters for the status line, as `writer.<name>`.
    pub fn snapshot(&self) -> std::collections::BTreeMap<String, u64> {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            ("writer.batches_written", get(&self.batches_written)),
            ("writer.rows_written", get(&self.rows_written)),
            ("writer.batches_spooled", get(&self.batches_spooled)),
            ("writer.batches_replayed", get(&self.batches_replayed)),
            ("writer.batches_rejected", get(&self.batches_rejected)),
            ("writer.rows_rejected", get(&self.rows_rejected)),
            ("writer.positions_shed", get(&self.positions_shed)),
            ("writer.incidents_not_recorded", get(&self.incidents_not_recorded)),
            ("writer.spool_bytes", get(&self.spool_bytes)),
            ("writer.database_up", u64::from(self.database_up.load(Ordering::Relaxed))),
            ("writer.state_saves", get(&self.state_saves)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

impl Journal for WriterHandle {
    fn incident(&self, record: IncidentRecord) -> Result<(), Vec<Waiter>> {
        match self.urgent.try_send(Urgent::Incident(record)) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.stats.incidents_not_recorded.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("writer queue full: an incident change waits to be recorded");
                match e.into_inner() {
                    Urgent::Incident(r) => Err(r.waiters),
                    _ => Err(Vec::new()),
                }
            }
        }
    }

    fn unit_status(&self, r: UnitStatusRecord) -> bool {
        let row = UnitStatusRow { unit_id: r.unit.to_string(), status: enum_str(&r.status), at: r.at };
        self.urgent.try_send(Urgent::UnitStatus(row, r.waiter)).is_ok()
    }

    fn sighting(&self, r: SightingRecord) {
        let s = &r.sighting;
        let row = SightingRow {
            id: s.sighting_id.0,
            decision: r.decision.as_str().to_owned(),
            person_id: r.person_id.to_string(),
            camera_id: s.camera.to_string(),
            at: s.at,
            score: s.score,
            lat: s.location.lat(),
            lon: s.location.lon(),
            evidence: s.evidence,
            incident_id: r.incident_id.map(|i| i.0),
            review_id: r.review_id.map(|i| i.0),
            embedding: r.embedding.as_ref().map(|e| e.to_vec()),
        };
        // The match itself, audited: who (the camera) found whom, and what came of it.
        let audit = AuditRow {
            actor: format!("camera:{}", s.camera),
            action: format!("watchlist.match.{}", r.decision.as_str()),
            subject: Some(r.person_id.to_string()),
            details: serde_json::json!({"sighting_id": s.sighting_id, "score": s.score,
                "incident_id": r.incident_id, "review_id": r.review_id})
            .to_string(),
        };
        if self.urgent.try_send(Urgent::Sighting(row, audit)).is_err() {
            self.stats.incidents_not_recorded.fetch_add(1, Ordering::Relaxed);
            tracing::error!("writer queue full: a sighting was not recorded");
        }
    }

    fn integrity(&self, a: Arc<IntegrityAlert>) {
        let audience = match a.audience {
            Audience::Dispatch => "dispatch",
            Audience::Oversight => "oversight",
        };
        let row = CameraAlertRow {
            camera_id: a.camera.to_string(),
            at: a.at,
            state: a.state.clone(),
            detail: a.detail.clone(),
            audience: audience.to_owned(),
            custodial: a.custodial,
        };
        // A custodial camera's tampering is evidence about the police: on the chain too.
        let audit = a.custodial.then(|| AuditRow {
            actor: format!("camera:{}", a.camera),
            action: "camera.integrity".to_owned(),
            subject: Some(a.camera.to_string()),
            details: serde_json::json!({"state": a.state, "detail": a.detail, "at": a.at}).to_string(),
        });
        if self.urgent.try_send(Urgent::Integrity(row, audit)).is_err() {
            self.stats.incidents_not_recorded.fetch_add(1, Ordering::Relaxed);
            tracing::error!("writer queue full: a camera alert was not recorded");
        }
    }
}

/// How the writer starts.
enum Opening {
    /// Writes what an earlier run left in the spool before it returns (so that what is
    /// restored from the database is complete); this waits for the database.
    Online,
    /// The database could not be reached: starts on the spool at once, with the local copy
    /// (and what the spool adds to it), and catches the database up once it is back.
    Offline(Box<LocalState>, Catchup),
}

/// Starts the writer thread. Before returning, it writes whatever an earlier run left in
/// the spool (so that what is restored from the database is complete); this waits for the
/// database.
pub async fn start(config: WriterConfig) -> anyhow::Result<WriterHandle> {
    Ok(spawn(config, Opening::Online).await?.0)
}

/// Starts the writer without the database: it spools from the start and probes, and once the
/// database answers runs `catchup`, then writes the spool. Returns `state` with what the spool
/// holds applied to it: what kuzet starts from.
pub async fn start_offline(
    config: WriterConfig,
    state: LocalState,
    catchup: Catchup,
) -> anyhow::Result<(WriterHandle, LocalState)> {
    let (handle, state) = spawn(config, Opening::Offline(Box::new(state), catchup)).await?;
    Ok((handle, state.context("writer returned no state")?))
}

async fn spawn(config: WriterConfig, opening: Opening) -> anyhow::Result<(WriterHandle, Option<LocalState>)> {
    let (urgent_tx, urgent_rx) = mpsc::channel(config.queue.clamp(1024, 65536));
    let (pos_tx, pos_rx) = mpsc::channel(config.queue);
    let stats = Arc::new(WriterStats::default());
    let (ready_tx, ready_rx) = oneshot::channel::<anyhow::Result<Option<LocalState>>>();
    let thread_stats = stats.clone();
    std::thread::Builder::new()
        .name("kuzet-writer".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
            };
            rt.block_on(async move {
                let (mut w, state) = match Writer::open(config, thread_stats, opening).await {
                    Ok(w) => w,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(state));
                w.run(urgent_rx, pos_rx).await;
            });
        })
        .context("cannot start the writer thread")?;
    let state = ready_rx.await.context("writer thread died")??;
    Ok((WriterHandle { urgent: urgent_tx, positions: pos_tx, stats }, state))
}

struct Writer {
    config: WriterConfig,
    pool: PgPool,
    spool: Spool,
    stats: Arc<WriterStats>,
    /// Timeline entries recorded per open incident.
    written: HashMap<IncidentId, usize>,
    db_ok: bool,
    probe_ok: Arc<Notify>,
    probing: Arc<AtomicBool>,
    /// A new pool the probe reached the database with: connections of the old one may be
    /// stuck on the server that went away.
    recovered: Arc<std::sync::Mutex<Option<PgPool>>>,
    /// Due once the database is back, before anything is written to it.
    catchup: Option<Catchup>,
    /// The local copy, once seeded; what it holds is durable.
    copy: Option<Keeper>,
}

fn new_pool(url: &str) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(2)
        // Fail fast when the database is gone: the spool takes over.
        .acquire_timeout(Duration::from_secs(1))
        .connect_lazy(url)
        .context("invalid database url")
}

impl Writer {
    async fn open(
        config: WriterConfig,
        stats: Arc<WriterStats>,
        opening: Opening,
    ) -> anyhow::Result<(Self, Option<LocalState>)> {
        let pool = new_pool(&config.url)?;
        let spool = Spool::open(&config.spool_dir)?;
        let mut w = Self {
            config,
            pool,
            spool,
            stats,
            written: HashMap::new(),
            db_ok: true,
            probe_ok: Arc::new(Notify::new()),
            probing: Arc::new(AtomicBool::new(false)),
            recovered: Arc::new(std::sync::Mutex::new(None)),
            catchup: None,
            copy: None,
        };
        if let Opening::Offline(state, catchup) = opening {
            // What the spool holds is durable and may be newer than the copy: on top of it,
            // in order.
            let mut copy = Keeper::new(*state, &w.config.spool_dir, w.stats.clone());
            let mut batches = 0usize;
            w.spool.replay(|b| {
                copy.apply(&b);
                batches += 1;
            })?;
            tracing::info!(batches, bytes = w.spool.backlog(), "the spool applied to the local copy");
            let state = copy.state();
            w.copy = Some(copy);
            w.catchup = Some(catchup);
            w.db_ok = false;
            w.database_down("unreachable at start");
            return Ok((w, Some(state)));
        }
        if !w.spool.is_empty() {
            tracing::info!(spool = %w.spool.path().display(), bytes = w.spool.backlog(),
                "writing what the spool holds from an earlier run");
            while !w.spool.is_empty() {
                if !w.drain_some().await {
                    w.probe_ok.notified().await;
                    w.recovered().await;
                }
            }
        }
        w.stats.database_up.store(true, Ordering::Relaxed);
        Ok((w, None))
    }

    async fn run(&mut self, mut urgent: mpsc::Receiver<Urgent>, mut positions: mpsc::Receiver<PositionRow>) {
        let mut prune = tokio::time::interval(PRUNE_EVERY);
        let (mut urgent_open, mut positions_open) = (true, true);
        loop {
            let mut batch = Batch::new();
            let mut waiters = Vec::new();
            let mut flushes = Vec::new();
            let draining = self.db_ok && !self.spool.is_empty();
            if !draining {
                if !urgent_open && !positions_open {
                    return;
                }
                tokio::select! {
                    biased;
                    u = urgent.recv(), if urgent_open => match u {
                        Some(u) => self.take(u, &mut batch, &mut waiters, &mut flushes),
                        None => urgent_open = false,
                    },
                    p = positions.recv(), if positions_open => match p {
                        Some(p) => batch.positions.push(p),
                        None => positions_open = false,
                    },
                    _ = self.probe_ok.notified(), if !self.db_ok => self.recovered().await,
                    _ = prune.tick() => self.prune().await,
                    _ = tokio::time::sleep_until(self.copy.as_ref().map_or_else(Instant::now, |c| c.next_save())),
                        if self.copy_due() => {}
                }
            }
            // Take what else is waiting, alarms and incidents first.
            while batch.rows() < self.config.batch_max {
                if let Ok(u) = urgent.try_recv() {
                    self.take(u, &mut batch, &mut waiters, &mut flushes);
                } else if let Ok(p) = positions.try_recv() {
                    batch.positions.push(p);
                } else {
                    break;
                }
            }
            if !batch.is_empty() {
                self.store(batch, waiters).await;
            } else {
                for w in waiters {
                    let _ = w.send(());
                }
            }
            if !flushes.is_empty() {
                // Positions come on their own channel: take everything sent before the flush.
                loop {
                    let mut more = Batch::new();
                    while more.rows() < self.config.batch_max {
                        match positions.try_recv() {
                            Ok(p) => more.positions.push(p),
                            Err(_) => break,
                        }
                    }
                    if more.is_empty() {
                        break;
                    }
                    self.store(more, Vec::new()).await;
                }
            }
            if self.db_ok && !self.spool.is_empty() {
                self.drain_some().await;
            }
            if let Some(c) = &mut self.copy {
                if !flushes.is_empty() {
                    // A flush (a clean stop among them) leaves the copy as current as the record.
                    c.settle().await;
                    c.save();
                    c.settle().await;
                }
                c.save();
            }
            for f in flushes {
                let _ = f.send(());
            }
            self.stats.spool_bytes.store(self.spool.backlog(), Ordering::Relaxed);
        }
    }

    fn take(
        &mut self,
        u: Urgent,
        batch: &mut Batch,
        waiters: &mut Vec<oneshot::Sender<()>>,
        flushes: &mut Vec<oneshot::Sender<()>>,
    ) {
        match u {
            Urgent::Alarm(row, done) => {
                batch.alarms.push(row);
                waiters.push(done);
            }
            Urgent::Incident(mut r) => {
                waiters.append(&mut r.waiters);
                self.incident_rows(r, batch);
            }
            Urgent::UnitStatus(row, waiter) => {
                batch.put_unit_status(row);
                waiters.extend(waiter);
            }
            Urgent::Audit(a) => batch.audits.push(a),
            Urgent::Sighting(row, audit) => {
                batch.sightings.push(row);
                batch.audits.push(audit);
            }
            Urgent::Integrity(row, audit) => {
                batch.camera_alerts.push(row);
                batch.audits.extend(audit);
            }
            Urgent::Seed(s, state) => {
                self.written.extend(s);
                // Started without the database, the writer keeps its copy since it opened.
                if self.copy.is_none() {
                    self.copy = Some(Keeper::new(*state, &self.config.spool_dir, self.stats.clone()));
                }
            }
            Urgent::Flush(f) => flushes.push(f),
        }
    }

    /// The incident's row, its new timeline entries, and an audit entry for each dispatch
    /// action among them.
    fn incident_rows(&mut self, r: IncidentRecord, batch: &mut Batch) {
        let s = &r.snapshot;
        let open = s.state.is_open();
        let (snapshot, dispatch) = match (serde_json::to_string(&**s), serde_json::to_string(&r.state)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(incident_id = %s.incident_id, error = %e, "cannot encode an incident for the record");
                return;
            }
        };
        let now = Utc::now();
        batch.put_incident(IncidentRow {
            id: s.incident_id.0,
            kind: s.kind.as_str().to_owned(),
            priority: i16::from(s.priority.0),
            state: enum_str(&s.state),
            site_id: s.subject.site().map(|x| x.id.to_string()),
            lat: s.location.lat(),
            lon: s.location.lon(),
            opened_at: s.opened_at,
            closed_at: (!open).then(|| s.timeline.last().map_or(now, |e| e.at)),
            escalated: s.escalated.map(|e| e.as_str().to_owned()),
            snapshot,
            dispatch,
            updated_at: now,
        });
        let from = self.written.get(&s.incident_id).copied().unwrap_or(0);
        for (seq, e) in s.timeline.iter().enumerate().skip(from) {
            batch.events.push(EventRow {
                incident_id: s.incident_id.0,
                seq: seq as i32,
                at: e.at,
                t_us: e.t_us.min(i64::MAX as u64) as i64,
                event: e.event.to_string(),
                unit_id: e.unit.as_ref().map(|u| u.to_string()),
                button_id: e.button.as_ref().map(|b| b.to_string()),
                detail: e.detail.clone(),
            });
            if let Some(a) = audit_for(s.incident_id, &e.event, e.unit.as_ref(), e.button.as_ref(), &e.detail)
            {
                batch.audits.push(a);
            }
        }
        if open {
            self.written.insert(s.incident_id, s.timeline.len());
        } else {
            self.written.remove(&s.incident_id);
        }
    }

    /// Writes a new batch to the database, or to the spool when the database is down or
    /// the spool is not empty; then tells the waiters it is durable.
    async fn store(&mut self, batch: Batch, waiters: Vec<oneshot::Sender<()>>) {
        if self.db_ok && self.spool.is_empty() {
            match tokio::time::timeout(WRITE_TIMEOUT, write(&self.pool, std::slice::from_ref(&batch))).await {
                Ok(Ok(_)) => {
                    self.count_written(&batch);
                    self.mirror_apply(&batch);
                    for w in waiters {
                        let _ = w.send(());
                    }
                    return;
                }
                Ok(Err(e)) if !unreachable(&e) => match self.write_apart(&batch, &e).await {
                    Apart::Done { rows, saved } => {
                        self.stats.batches_written.fetch_add(1, Ordering::Relaxed);
                        self.stats.rows_written.fetch_add(rows as u64, Ordering::Relaxed);
                        // Rows neither in the database nor on disk: not acknowledged, so the
                        // devices send them again.
                        if saved {
                            // Refused rows are set aside on disk: durable too.
                            self.mirror_apply(&batch);
                            for w in waiters {
                                let _ = w.send(());
                            }
                        }
                        return;
                    }
                    Apart::Down(why) => self.database_down(&why),
                },
                Ok(Err(e)) => self.database_down(&e.to_string()),
                Err(_) => self.database_down("write timed out"),
            }
        }
        match self.spool.append(&batch) {
            Ok(()) => {
                self.stats.batches_spooled.fetch_add(1, Ordering::Relaxed);
                self.mirror_apply(&batch);
                for w in waiters {
                    let _ = w.send(());
                }
            }
            // Not durable anywhere: the waiters are dropped, so the alarms are not
            // acknowledged and the broker delivers them again.
            Err(e) => tracing::error!(error = %e, rows = batch.rows(), "cannot spool a batch"),
        }
    }

    /// Writes the next spooled batches to the database; false when the database failed.
    async fn drain_some(&mut self) -> bool {
        let (batches, next) = match self.spool.peek(self.config.batch_max) {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the spool");
                return false;
            }
        };
        if batches.is_empty() {
            return true;
        }
        match tokio::time::timeout(WRITE_TIMEOUT, write(&self.pool, &batches)).await {
            Ok(Ok(fresh)) => {
                self.stats.batches_replayed.fetch_add(batches.len() as u64, Ordering::Relaxed);
                self.stats.rows_written.fetch_add(fresh as u64, Ordering::Relaxed);
            }
            Ok(Err(e)) if !unreachable(&e) => {
                // One batch at a time, each without the rows the database refuses. Those
                // written before an outage here are skipped by their ids when tried again.
                let mut rows = 0;
                for b in &batches {
                    match self.write_apart(b, &e).await {
                        Apart::Done { rows: n, .. } => rows += n,
                        Apart::Down(why) => {
                            self.database_down(&why);
                            return false;
                        }
                    }
                }
                self.stats.batches_replayed.fetch_add(batches.len() as u64, Ordering::Relaxed);
                self.stats.rows_written.fetch_add(rows as u64, Ordering::Relaxed);
            }
            Ok(Err(e)) => {
                self.database_down(&e.to_string());
                return false;
            }
            Err(_) => {
                self.database_down("write timed out");
                return false;
            }
        }
        if let Err(e) = self.spool.advance(next) {
            tracing::error!(error = %e, "cannot advance the spool");
            return false;
        }
        if self.spool.is_empty() {
            tracing::info!("spool drained: the database holds everything again");
        }
        true
    }

    /// The probe reached the database: use its pool from now on, and catch the database up
    /// first if kuzet started without it.
    async fn recovered(&mut self) {
        let pool = self.recovered.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(pool) = pool {
            let old = std::mem::replace(&mut self.pool, pool);
            tokio::spawn(async move { old.close().await });
        }
        if let Some(c) = &self.catchup {
            tracing::info!("database reachable: applying the schema and the registry file before the spool");
            let done = match tokio::time::timeout(CATCH_UP_TIMEOUT, c.run(&self.pool)).await {
                Ok(r) => r,
                Err(_) => Err(anyhow::anyhow!("timed out")),
            };
            if let Err(e) = done {
                // Tried again with the next probe; the spool keeps everything meanwhile.
                tracing::error!(error = %format!("{e:#}"), "cannot prepare the database: still recording to the spool");
                self.database_down("catch-up failed");
                return;
            }
            self.catchup = None;
        }
        tracing::info!(bytes = self.spool.backlog(), "database reachable again: writing the spool");
        self.db_ok = true;
        self.stats.database_up.store(true, Ordering::Relaxed);
    }

    fn mirror_apply(&mut self, b: &Batch) {
        if let Some(c) = &mut self.copy {
            c.apply(b);
        }
    }

    fn copy_due(&mut self) -> bool {
        self.copy.as_mut().is_some_and(|c| c.due())
    }

    fn count_written(&self, b: &Batch) {
        self.stats.batches_written.fetch_add(1, Ordering::Relaxed);
        self.stats.rows_written.fetch_add(b.rows() as u64, Ordering::Relaxed);
    }

    /// The database refused `batch` (with `e`) for its content: writes it again in parts, so
    /// that only the rows it refuses are left out, and sets those aside.
    async fn write_apart(&self, batch: &Batch, e: &sqlx::Error) -> Apart {
        tracing::warn!(error = %e, batch = %batch.id, rows = batch.rows(),
            "the database refused a batch: writing its rows apart");
        let done = match isolate(&self.pool, batch).await {
            Ok(None) => return Apart::Done { rows: 0, saved: true },
            Ok(Some(done)) => done,
            Err(Failure::Down(why)) => return Apart::Down(why),
            // Refused outside any part (a savepoint, the batch id): the batch as a whole.
            Err(Failure::Refused(e)) => {
                return Apart::Done { rows: 0, saved: self.set_aside(batch, &[e.to_string()]) }
            }
        };
        // On disk before the rest commits: a crash in between leaves the batch to be written
        // again, never refused rows that are nowhere.
        let saved = done.refused.is_empty() || self.set_aside(&done.refused, &done.errors);
        match timed(done.tx.commit()).await {
            Ok(()) => Apart::Done { rows: done.written, saved },
            Err(Failure::Down(why)) => Apart::Down(why),
            Err(Failure::Refused(e)) => {
                Apart::Done { rows: 0, saved: self.set_aside(batch, &[e.to_string()]) }
            }
        }
    }

    /// Keeps rows the database refused as `rejected-<batch id>.json` in the spool folder, for
    /// an operator; false when that failed (the rows are then only in the log).
    fn set_aside(&self, b: &Batch, errors: &[String]) -> bool {
        self.stats.batches_rejected.fetch_add(1, Ordering::Relaxed);
        self.stats.rows_rejected.fetch_add(b.rows() as u64, Ordering::Relaxed);
        let path = self.config.spool_dir.join(format!("rejected-{}.json", b.id));
        let json = serde_json::to_vec(b).unwrap_or_default();
        match super::spool::write_durably(&path, &json) {
            Ok(()) => {
                tracing::error!(errors = ?errors, batch = %b.id, rows = b.rows(), kept_in = %path.display(),
                    "the database refused rows: set aside");
                true
            }
            Err(e) => {
                tracing::error!(errors = ?errors, batch = %b.id, error = %e, kept_in = %path.display(),
                    rows = %String::from_utf8_lossy(&json), "the database refused rows, and they could not be set aside");
                false
            }
        }
    }

    fn database_down(&mut self, why: &str) {
        if self.db_ok {
            tracing::error!(error = why, spool = %self.spool.path().display(),
                "database unreachable: recording to the spool until it is back");
        }
        self.db_ok = false;
        self.stats.database_up.store(false, Ordering::Relaxed);
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let (url, notify, probing) = (self.config.url.clone(), self.probe_ok.clone(), self.probing.clone());
        let slot = self.recovered.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                // A fresh pool each time: the old one's connections went down with the server.
                let Ok(pool) = new_pool(&url) else { continue };
                let ok = tokio::time::timeout(WRITE_TIMEOUT, sqlx::query("SELECT 1").execute(&pool)).await;
                tracing::debug!(result = ?ok, "database probe");
                if matches!(ok, Ok(Ok(_))) {
                    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(pool);
                    probing.store(false, Ordering::Release);
                    notify.notify_one();
                    return;
                }
                pool.close().await;
            }
        });
    }

    async fn prune(&mut self) {
        if !self.db_ok {
            return;
        }
        let r = sqlx::query("DELETE FROM writer_batches WHERE written_at < now() - interval '1 day'")
            .execute(&self.pool)
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "cannot prune writer_batches");
        }
    }
}

/// What became of a batch written apart.
enum Apart {
    /// `rows` are in the database and the others set aside (`saved`), or only in the log.
    Done { rows: usize, saved: bool },
    /// The database could not be reached: nothing of the batch was committed.
    Down(String),
}

enum Failure {
    Down(String),
    Refused(sqlx::Error),
}

/// One step of a write, with the writer's timeout, its failure sorted.
async fn timed<T>(step: impl std::future::Future<Output = Result<T, sqlx::Error>>) -> Result<T, Failure> {
    match tokio::time::timeout(WRITE_TIMEOUT, step).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) if unreachable(&e) => Err(Failure::Down(e.to_string())),
        Ok(Err(e)) => Err(Failure::Refused(e)),
        Err(_) => Err(Failure::Down("write timed out".into())),
    }
}

/// A batch written apart, not yet committed.
struct Isolated {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    written: usize,
    /// The rows refused, under the batch's id.
    refused: Batch,
    errors: Vec<String>,
}

/// Writes `batch` in one transaction, part by part under savepoints, halving each part the
/// database refuses until the refused rows stand alone (see the module header). None when the
/// database already holds the batch.
async fn isolate(pool: &PgPool, batch: &Batch) -> Result<Option<Isolated>, Failure> {
    let mut tx = timed(pool.begin()).await?;
    if timed(claim(&mut tx, &[batch.id])).await?.is_empty() {
        return Ok(None);
    }
    let mut refused = Batch { id: batch.id, ..Batch::default() };
    let (mut written, mut errors) = (0, Vec::new());
    // A stack, first half on top: parts are written in the batch's order.
    let mut parts = vec![batch.clone()];
    while let Some(part) = parts.pop() {
        timed(sqlx::query("SAVEPOINT part").execute(&mut *tx)).await?;
        match timed(insert_rows(&mut tx, &part)).await {
            Ok(()) => written += part.rows(),
            Err(Failure::Refused(e)) => {
                timed(sqlx::query("ROLLBACK TO SAVEPOINT part").execute(&mut *tx)).await?;
                if part.rows() > 1 {
                    let (first, second) = split(part);
                    parts.push(second);
                    parts.push(first);
                } else {
                    errors.push(e.to_string());
                    refused.absorb(part);
                }
            }
            Err(down) => return Err(down),
        }
        // Kept or rolled back, the savepoint goes: the next one is not nested in it.
        timed(sqlx::query("RELEASE SAVEPOINT part").execute(&mut *tx)).await?;
    }
    Ok(Some(Isolated { tx, written, refused, errors }))
}

/// `b`'s rows in two halves, in the order `insert_rows` writes them (the first half's tables
/// come first). Both halves keep `b`'s id: only whole batches are claimed in `writer_batches`.
fn split(mut b: Batch) -> (Batch, Batch) {
    fn tail<T>(v: &mut Vec<T>, keep: &mut usize) -> Vec<T> {
        let k = (*keep).min(v.len());
        *keep -= k;
        v.split_off(k)
    }
    let mut keep = b.rows() / 2;
    let second = Batch {
        id: b.id,
        alarms: tail(&mut b.alarms, &mut keep),
        incidents: tail(&mut b.incidents, &mut keep),
        events: tail(&mut b.events, &mut keep),
        positions: tail(&mut b.positions, &mut keep),
        sightings: tail(&mut b.sightings, &mut keep),
        camera_alerts: tail(&mut b.camera_alerts, &mut keep),
        unit_statuses: tail(&mut b.unit_statuses, &mut keep),
        audits: tail(&mut b.audits, &mut keep),
    };
    (b, second)
}

/// Records `ids` in `writer_batches`; the ones the database did not hold yet.
async fn claim(tx: &mut sqlx::PgConnection, ids: &[uuid::Uuid]) -> Result<Vec<uuid::Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO writer_batches (id) SELECT * FROM UNNEST($1::uuid[]) ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(ids)
    .fetch_all(tx)
    .await
}

/// Writes `batches` in one transaction, skipping those the database already holds; returns
/// the rows written.
async fn write(pool: &PgPool, batches: &[Batch]) -> Result<usize, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let ids: Vec<uuid::Uuid> = batches.iter().map(|b| b.id).collect();
    let fresh = claim(&mut tx, &ids).await?;
    // The usual case, one new batch, is written as it is; only replays are merged.
    let merged;
    let all: &Batch = match batches {
        [one] if fresh.len() == 1 => one,
        _ => {
            let mut m = Batch::new();
            for b in batches.iter().filter(|b| fresh.contains(&b.id)) {
                m.absorb(b.clone());
            }
            merged = m;
            &merged
        }
    };
    insert_rows(&mut tx, all).await?;
    tx.commit().await?;
    Ok(all.rows())
}

/// The rows of `all`, one multi-row statement per table; the order of the tables here is the
/// order `split` keeps.
async fn insert_rows(tx: &mut sqlx::PgConnection, all: &Batch) -> Result<(), sqlx::Error> {
    if !all.alarms.is_empty() {
        let a = &all.alarms;
        sqlx::query(
            "INSERT INTO alarms (alarm_id, button_id, action, kind, device_at, received_at, incident_id)
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                                  $6::timestamptz[], $7::uuid[])
             ON CONFLICT (alarm_id, action) DO NOTHING",
        )
        .bind(a.iter().map(|r| r.alarm_id).collect::<Vec<_>>())
        .bind(a.iter().map(|r| r.button_id.as_str()).collect::<Vec<_>>())
        .bind(a.iter().map(|r| r.action.as_str()).collect::<Vec<_>>())
        .bind(a.iter().map(|r| r.kind.as_deref()).collect::<Vec<_>>())
        .bind(a.iter().map(|r| r.device_at).collect::<Vec<_>>())
        .bind(a.iter().map(|r| r.received_at).collect::<Vec<_>>())
        .bind(a.iter().map(|r| r.incident_id).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    if !all.incidents.is_empty() {
        let i = &all.incidents;
        sqlx::query(
            "INSERT INTO incidents (id, kind, priority, state, site_id, location, opened_at, closed_at,
                                    escalated, snapshot, dispatch, updated_at)
             SELECT u.id, u.kind, u.priority, u.state, u.site_id,
                    ST_SetSRID(ST_MakePoint(u.lon, u.lat), 4326)::geography, u.opened_at, u.closed_at,
                    u.escalated, u.snapshot::jsonb, u.dispatch::jsonb, u.updated_at
             FROM UNNEST($1::uuid[], $2::text[], $3::int2[], $4::text[], $5::text[], $6::float8[],
                         $7::float8[], $8::timestamptz[], $9::timestamptz[], $10::text[], $11::text[],
                         $12::text[], $13::timestamptz[])
                  AS u(id, kind, priority, state, site_id, lat, lon, opened_at, closed_at, escalated,
                       snapshot, dispatch, updated_at)
             ON CONFLICT (id) DO UPDATE SET
                 location = EXCLUDED.location,
                 priority = EXCLUDED.priority, state = EXCLUDED.state, closed_at = EXCLUDED.closed_at,
                 escalated = EXCLUDED.escalated, snapshot = EXCLUDED.snapshot,
                 dispatch = EXCLUDED.dispatch, updated_at = EXCLUDED.updated_at",
        )
        .bind(i.iter().map(|r| r.id).collect::<Vec<_>>())
        .bind(i.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>())
        .bind(i.iter().map(|r| r.priority).collect::<Vec<_>>())
        .bind(i.iter().map(|r| r.state.as_str()).collect::<Vec<_>>())
        .bind(i.iter().map(|r| r.site_id.as_deref()).collect::<Vec<_>>())
        .bind(i.iter().map(|r| r.lat).collect::<Vec<_>>())
        .bind(i.iter().map(|r| r.lon).collect::<Vec<_>>())
        .bind(i.iter().map(|r| r.opened_at).collect::<Vec<_>>())
        .bind(i.iter().map(|r| r.closed_at).collect::<Vec<_>>())
        .bind(i.iter().map(|r| r.escalated.as_deref()).collect::<Vec<_>>())
        .bind(i.iter().map(|r| r.snapshot.as_str()).collect::<Vec<_>>())
        .bind(i.iter().map(|r| r.dispatch.as_str()).collect::<Vec<_>>())
        .bind(i.iter().map(|r| r.updated_at).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    if !all.events.is_empty() {
        let e = &all.events;
        sqlx::query(
            "INSERT INTO incident_events (incident_id, seq, at, t_us, event, unit_id, button_id, detail)
             SELECT * FROM UNNEST($1::uuid[], $2::int4[], $3::timestamptz[], $4::int8[], $5::text[],
                                  $6::text[], $7::text[], $8::text[])
             ON CONFLICT (incident_id, seq) DO NOTHING",
        )
        .bind(e.iter().map(|r| r.incident_id).collect::<Vec<_>>())
        .bind(e.iter().map(|r| r.seq).collect::<Vec<_>>())
        .bind(e.iter().map(|r| r.at).collect::<Vec<_>>())
        .bind(e.iter().map(|r| r.t_us).collect::<Vec<_>>())
        .bind(e.iter().map(|r| r.event.as_str()).collect::<Vec<_>>())
        .bind(e.iter().map(|r| r.unit_id.as_deref()).collect::<Vec<_>>())
        .bind(e.iter().map(|r| r.button_id.as_deref()).collect::<Vec<_>>())
        .bind(e.iter().map(|r| r.detail.as_deref()).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    if !all.positions.is_empty() {
        let p = &all.positions;
        sqlx::query(
            "INSERT INTO unit_positions (unit_id, at, received_at, position, speed_mps, heading_deg)
             SELECT u.unit_id, u.at, u.received_at, ST_SetSRID(ST_MakePoint(u.lon, u.lat), 4326)::geography,
                    u.speed, u.heading
             FROM UNNEST($1::text[], $2::timestamptz[], $3::timestamptz[], $4::float8[], $5::float8[],
                         $6::float4[], $7::float4[]) AS u(unit_id, at, received_at, lat, lon, speed, heading)
             ON CONFLICT (unit_id, at) DO NOTHING",
        )
        .bind(p.iter().map(|r| r.unit_id.as_str()).collect::<Vec<_>>())
        .bind(p.iter().map(|r| r.at).collect::<Vec<_>>())
        .bind(p.iter().map(|r| r.received_at).collect::<Vec<_>>())
        .bind(p.iter().map(|r| r.lat).collect::<Vec<_>>())
        .bind(p.iter().map(|r| r.lon).collect::<Vec<_>>())
        .bind(p.iter().map(|r| r.speed_mps).collect::<Vec<_>>())
        .bind(p.iter().map(|r| r.heading_deg).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    if !all.sightings.is_empty() {
        let v = &all.sightings;
        sqlx::query(
            "INSERT INTO sightings (id, decision, person_id, camera_id, at, score, location, evidence,
                                    incident_id, review_id)
             SELECT u.id, u.decision, u.person_id, u.camera_id, u.at, u.score,
                    ST_SetSRID(ST_MakePoint(u.lon, u.lat), 4326)::geography, u.evidence, u.incident_id, u.review_id
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::float4[],
                         $7::float8[], $8::float8[], $9::bool[], $10::uuid[], $11::uuid[])
                  AS u(id, decision, person_id, camera_id, at, score, lat, lon, evidence, incident_id, review_id)
             ON CONFLICT (id, decision) DO NOTHING",
        )
        .bind(v.iter().map(|r| r.id).collect::<Vec<_>>())
        .bind(v.iter().map(|r| r.decision.as_str()).collect::<Vec<_>>())
        .bind(v.iter().map(|r| r.person_id.as_str()).collect::<Vec<_>>())
        .bind(v.iter().map(|r| r.camera_id.as_str()).collect::<Vec<_>>())
        .bind(v.iter().map(|r| r.at).collect::<Vec<_>>())
        .bind(v.iter().map(|r| r.score).collect::<Vec<_>>())
        .bind(v.iter().map(|r| r.lat).collect::<Vec<_>>())
        .bind(v.iter().map(|r| r.lon).collect::<Vec<_>>())
        .bind(v.iter().map(|r| r.evidence).collect::<Vec<_>>())
        .bind(v.iter().map(|r| r.incident_id).collect::<Vec<_>>())
        .bind(v.iter().map(|r| r.review_id).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        // A decided review's faces are not kept: the embedding was only for a rejection
        // (which has left its negative example by now).
        for r in v.iter().filter(|r| matches!(r.decision.as_str(), "confirmed" | "rejected")) {
            sqlx::query("UPDATE sightings SET embedding = NULL WHERE id = $1 AND decision = 'review'")
                .bind(r.id)
                .execute(&mut *tx)
                .await?;
        }
        // Review sightings only, and few: one statement each.
        for r in v.iter().filter(|r| r.embedding.is_some()) {
            sqlx::query("UPDATE sightings SET embedding = $3 WHERE id = $1 AND decision = $2")
                .bind(r.id)
                .bind(r.decision.as_str())
                .bind(r.embedding.as_deref())
                .execute(&mut *tx)
                .await?;
        }
    }
    if !all.camera_alerts.is_empty() {
        let v = &all.camera_alerts;
        sqlx::query(
            "INSERT INTO camera_alerts (camera_id, at, state, detail, audience, custodial)
             SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::bool[])
             ON CONFLICT DO NOTHING",
        )
        .bind(v.iter().map(|r| r.camera_id.as_str()).collect::<Vec<_>>())
        .bind(v.iter().map(|r| r.at).collect::<Vec<_>>())
        .bind(v.iter().map(|r| r.state.as_str()).collect::<Vec<_>>())
        .bind(v.iter().map(|r| r.detail.as_deref()).collect::<Vec<_>>())
        .bind(v.iter().map(|r| r.audience.as_str()).collect::<Vec<_>>())
        .bind(v.iter().map(|r| r.custodial).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    if !all.unit_statuses.is_empty() {
        let u = &all.unit_statuses;
        // A status reported earlier than the recorded one (delivered late) changes nothing.
        sqlx::query(
            "INSERT INTO unit_status (unit_id, status, at, updated_at)
             SELECT u.unit_id, u.status, u.at, now()
             FROM UNNEST($1::text[], $2::text[], $3::timestamptz[]) AS u(unit_id, status, at)
             ON CONFLICT (unit_id) DO UPDATE SET status = EXCLUDED.status, at = EXCLUDED.at,
                 updated_at = EXCLUDED.updated_at
             WHERE unit_status.at <= EXCLUDED.at",
        )
        .bind(u.iter().map(|r| r.unit_id.as_str()).collect::<Vec<_>>())
        .bind(u.iter().map(|r| r.status.as_str()).collect::<Vec<_>>())
        .bind(u.iter().map(|r| r.at).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    if !all.audits.is_empty() {
        let a = &all.audits;
        // WITH ORDINALITY keeps the entries in the order they happened along the chain.
        sqlx::query(
            "INSERT INTO audit_log (actor, action, subject, details)
             SELECT u.actor, u.action, u.subject, u.details::jsonb
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY
                  AS u(actor, action, subject, details, n)
             ORDER BY u.n",
        )
        .bind(a.iter().map(|r| r.actor.as_str()).collect::<Vec<_>>())
        .bind(a.iter().map(|r| r.action.as_str()).collect::<Vec<_>>())
        .bind(a.iter().map(|r| r.subject.as_deref()).collect::<Vec<_>>())
        .bind(a.iter().map(|r| r.details.as_str()).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// True when the error says the database cannot be reached (as opposed to refusing what was
/// sent): connection failures, shutdowns, pool timeouts.
pub(crate) fn unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            let code = d.code().unwrap_or_default();
            // 08: connection exception; 57: operator intervention (shutdown); 53: resources.
            code.starts_with("08") || code.starts_with("57") || code.starts_with("53")
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        _ => false,
    }
}

/// A dispatch action among an incident's new timeline entries, as an audit entry.
fn audit_for(
    incident: IncidentId,
    event: &str,
    unit: Option<&UnitId>,
    button: Option<&ButtonId>,
    detail: &Option<String>,
) -> Option<AuditRow> {
    let (actor, action) = match event {
        "alarm_received" => (button.map(|b| format!("button:{b}"))?, "incident.open"),
        "alarm_joined" => (button.map(|b| format!("button:{b}"))?, "incident.join"),
        "alarm_withdrawn" => (button.map(|b| format!("button:{b}"))?, "alarm.withdraw"),
        "cancel_requested" => (button.map(|b| format!("button:{b}"))?, "incident.cancel"),
        "offer_published" => ("kuzet".to_owned(), "incident.offer"),
        "offer_timed_out" => ("kuzet".to_owned(), "incident.offer_expired"),
        "reply_accept" => (unit.map(|u| format!("unit:{u}"))?, "incident.accept"),
        "reply_decline" => (unit.map(|u| format!("unit:{u}"))?, "incident.decline"),
        "escalated" => ("kuzet".to_owned(), "incident.escalate"),
        "closed" => ("kuzet".to_owned(), "incident.close"),
        "restored" => ("kuzet".to_owned(), "incident.restore"),
        _ => return None,
    };
    let mut details = serde_json::Map::new();
    if let Some(u) = unit {
        details.insert("unit".into(), u.to_string().into());
    }
    if let Some(d) = detail {
        details.insert("detail".into(), d.clone().into());
    }
    Some(AuditRow {
        actor,
        action: action.to_owned(),
        subject: Some(incident.to_string()),
        details: serde_json::Value::Object(details).to_string(),
    })
}

fn enum_str<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audit(n: usize) -> AuditRow {
        AuditRow { actor: "kuzet".into(), action: format!("a{n}"), subject: None, details: "{}".into() }
    }

    fn position(n: usize) -> PositionRow {
        let at = Utc::now();
        PositionRow {
            unit_id: format!("u{n}"),
            at,
            received_at: at,
            lat: 0.0,
            lon: 0.0,
            speed_mps: None,
            heading_deg: None,
        }
    }

    #[test]
    fn halves_keep_the_order_rows_are_written_in() {
        let mut b = Batch::new();
        b.positions.extend((0..3).map(position));
        b.audits.extend((0..4).map(audit));
        let (first, second) = split(b.clone());
        assert_eq!((first.rows(), second.rows()), (3, 4));
        assert_eq!((first.id, second.id), (b.id, b.id));
        assert_eq!(first.positions.len(), 3, "positions are written before audits");
        let (a, c) = split(second);
        let actions = |x: &Batch| x.audits.iter().map(|r| r.action.clone()).collect::<Vec<_>>();
        assert_eq!(
            (actions(&a), actions(&c)),
            (vec!["a0".to_owned(), "a1".into()], vec!["a2".to_owned(), "a3".into()])
        );
        let mut one = Batch::new();
        one.audits.push(audit(9));
        let (empty, same) = split(one);
        assert_eq!((empty.rows(), same.rows()), (0, 1));
    }
}
