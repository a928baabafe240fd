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

mod deliver;
mod handle;
mod insert;
mod intake;
mod write;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kuzet_actors::ids::IncidentId;
use kuzet_actors::outbound::{IncidentRecord, Waiter};
use kuzet_actors::spec::Devices;
use sqlx::postgres::{PgPool, PgPoolOptions};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::Instant;

use super::rows::{AlarmRow, AuditRow, Batch, CameraAlertRow, PositionRow, SightingRow, UnitStatusRow};
use super::spool::Spool;
use super::state::{Keeper, LocalState};

/// A write that takes longer is taken for a database that is gone: the batch is spooled.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an unreachable database is tried again.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long batch ids are kept (a spooled batch is replayed well within it).
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Positions written in one transaction at most: what an alarm arriving meanwhile may wait
/// for (a few milliseconds), while still few transactions at tens of thousands a second.
const POSITION_BATCH: usize = 1000;
/// How long positions wait for more before they are written (unless an urgent record comes).
const POSITION_LINGER: Duration = Duration::from_millis(25);
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
            crate::lanes::lower_priority("kuzet-writer");
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
        // An urgent record taken while positions were being gathered: the next batch's first.
        let mut carried: Option<Urgent> = None;
        loop {
            let mut batch = Batch::new();
            let mut waiters = Vec::new();
            let mut flushes = Vec::new();
            let draining = self.db_ok && !self.spool.is_empty();
            if let Some(u) = carried.take() {
                self.take(u, &mut batch, &mut waiters, &mut flushes);
            } else if !draining {
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
            // Take what else is waiting. A batch is urgent records only (alarms, incidents,
            // replies, statuses, audit) or positions only, at most POSITION_BATCH of them: an
            // alarm's acknowledgement never waits for positions written with it, and behind
            // at most one short transaction of them.
            if batch.positions.is_empty() {
                while batch.rows() < self.config.batch_max {
                    match urgent.try_recv() {
                        Ok(u) => self.take(u, &mut batch, &mut waiters, &mut flushes),
                        Err(_) => break,
                    }
                }
            }
            if batch.is_empty() || !batch.positions.is_empty() {
                let most = self.config.batch_max.min(POSITION_BATCH);
                while batch.positions.len() < most {
                    match positions.try_recv() {
                        Ok(p) => batch.positions.push(p),
                        Err(_) => break,
                    }
                }
                // Positions wait a little for more: fewer, larger transactions cost the writer
                // and the database far less. An urgent record ends the wait; it goes next.
                let until = Instant::now() + POSITION_LINGER;
                while !draining
                    && flushes.is_empty()
                    && !batch.positions.is_empty()
                    && batch.positions.len() < most
                {
                    tokio::select! {
                        biased;
                        u = urgent.recv(), if urgent_open => {
                            match u {
                                Some(u) => carried = Some(u),
                                None => urgent_open = false,
                            }
                            break;
                        }
                        p = positions.recv(), if positions_open => match p {
                            Some(p) => batch.positions.push(p),
                            None => positions_open = false,
                        },
                        _ = tokio::time::sleep_until(until) => break,
                    }
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

fn enum_str<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}
