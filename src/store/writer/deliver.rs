//! A batch to the database or, while it cannot be reached, to the spool; the spool
//! drained once the database is back.

use std::sync::atomic::Ordering;

use tokio::sync::oneshot;

use super::write::{isolate, timed, write, Failure};
use super::{new_pool, unreachable, Writer, CATCH_UP_TIMEOUT, PROBE_EVERY, WRITE_TIMEOUT};
use crate::store::rows::Batch;

impl Writer {
    /// Writes a new batch to the database, or to the spool when the database is down or
    /// the spool is not empty; then tells the waiters it is durable.
    pub(super) async fn store(&mut self, batch: Batch, waiters: Vec<oneshot::Sender<()>>) {
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
    pub(super) async fn drain_some(&mut self) -> bool {
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
    pub(super) async fn recovered(&mut self) {
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

    pub(super) fn copy_due(&mut self) -> bool {
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
        match crate::store::spool::write_durably(&path, &json) {
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

    pub(super) fn database_down(&mut self, why: &str) {
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

    pub(super) async fn prune(&mut self) {
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
