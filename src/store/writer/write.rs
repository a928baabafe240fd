//! One transaction per batch, claimed by its id; a refused batch written again part by part.

use sqlx::postgres::PgPool;

use super::insert::insert_rows;
use super::{unreachable, WRITE_TIMEOUT};
use crate::store::rows::Batch;

pub(super) enum Failure {
    Down(String),
    Refused(sqlx::Error),
}

/// One step of a write, with the writer's timeout, its failure sorted.
pub(super) async fn timed<T>(
    step: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(WRITE_TIMEOUT, step).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) if unreachable(&e) => Err(Failure::Down(e.to_string())),
        Ok(Err(e)) => Err(Failure::Refused(e)),
        Err(_) => Err(Failure::Down("write timed out".into())),
    }
}

/// A batch written apart, not yet committed.
pub(super) struct Isolated {
    pub(super) tx: sqlx::Transaction<'static, sqlx::Postgres>,
    pub(super) written: usize,
    /// The rows refused, under the batch's id.
    pub(super) refused: Batch,
    pub(super) errors: Vec<String>,
}

/// Writes `batch` in one transaction, part by part under savepoints, halving each part the
/// database refuses until the refused rows stand alone (see the module header). None when the
/// database already holds the batch.
pub(super) async fn isolate(pool: &PgPool, batch: &Batch) -> Result<Option<Isolated>, Failure> {
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
pub(super) async fn write(pool: &PgPool, batches: &[Batch]) -> Result<usize, sqlx::Error> {
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

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::store::rows::{AuditRow, PositionRow};

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
