//! The audit log: append-only (the database refuses UPDATE, DELETE and TRUNCATE) and
//! hash-chained: each row's hash covers its content and the previous row's hash, computed by
//! the database on insert. `verify` recomputes the chain and names the first row that was
//! edited, removed or inserted out of order. A superuser can recompute the hashes after an
//! edit: `checkpoint` anchors the chain's head outside the database against that.

use sha2::{Digest, Sha256};
use sqlx::postgres::PgPool;
use sqlx::Row;

/// Appends one entry; returns its sequence number.
pub async fn append(
    pool: &PgPool,
    actor: &str,
    action: &str,
    subject: Option<&str>,
    details: &serde_json::Value,
) -> anyhow::Result<i64> {
    let seq: i64 = sqlx::query_scalar("SELECT audit_append($1, $2, $3, $4)")
        .bind(actor)
        .bind(action)
        .bind(subject)
        .bind(details)
        .fetch_one(pool)
        .await?;
    Ok(seq)
}

/// The first break in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub seq: i64,
    pub reason: BreakReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakReason {
    /// The row's content no longer matches its hash: it was edited.
    Edited,
    /// The row does not follow the row before it: one was removed or inserted out of order.
    BrokenLink,
    /// The sequence skips or repeats a number.
    Gap { expected: i64 },
    /// The log ends before the last row the database recorded: rows were removed at the end.
    TailRemoved,
    /// The last row's hash is not the one the database recorded: it was edited and rehashed.
    TailRehashed,
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.reason {
            BreakReason::Edited => {
                write!(f, "row {} was edited: its content does not match its hash", self.seq)
            }
            BreakReason::BrokenLink => write!(
                f,
                "row {} does not chain to the row before it: a row was removed or inserted out of order",
                self.seq
            ),
            BreakReason::Gap { expected } => {
                write!(f, "row {} follows row {}: rows are missing or out of order", self.seq, expected - 1)
            }
            BreakReason::TailRemoved => {
                write!(f, "the log ends before row {}: rows were removed at its end", self.seq)
            }
            BreakReason::TailRehashed => {
                write!(
                    f,
                    "row {} is not the last row the database recorded: it was edited and rehashed",
                    self.seq
                )
            }
        }
    }
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub rows: u64,
    pub first_break: Option<Break>,
}

/// The text a row's hash covers; must match the database's `audit_canonical` exactly.
fn canonical(seq: i64, at: &str, actor: &str, action: &str, subject: &str, details: &str) -> String {
    format!("{seq}|{at}|{actor}|{action}|{subject}|{details}")
}

/// Recomputes the whole chain in order, streaming the rows.
pub async fn verify(pool: &PgPool) -> anyhow::Result<Verification> {
    Ok(verify_after(pool, 0, &[0u8; 32]).await?.0)
}

/// Recomputes the chain from the row after `after` (whose hash is `after_hash`; 0 and 32 zero
/// bytes for the whole chain) to its end. Also returns the last row reached, as (seq, hash).
pub async fn verify_after(
    pool: &PgPool,
    after: i64,
    after_hash: &[u8],
) -> anyhow::Result<(Verification, (i64, Vec<u8>))> {
    use futures_util::TryStreamExt as _;
    // One snapshot for the rows and the head: an entry appended between two separate reads
    // (a sign-in, this very read's audit) would look like rows cut off at the end.
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    let mut rows = sqlx::query(
        "SELECT seq, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS at, actor, action, \
         coalesce(subject, '') AS subject, details::text AS details, prev_hash, hash FROM audit_log \
         WHERE seq > $1 ORDER BY seq",
    )
    .bind(after)
    .fetch(&mut *tx);
    let mut prev_hash = after_hash.to_vec();
    let mut expected_seq = after + 1;
    let mut count = 0u64;
    while let Some(row) = rows.try_next().await? {
        count += 1;
        let seq: i64 = row.try_get("seq")?;
        let stored_prev: Vec<u8> = row.try_get("prev_hash")?;
        let stored: Vec<u8> = row.try_get("hash")?;
        let text = canonical(
            seq,
            row.try_get("at")?,
            row.try_get("actor")?,
            row.try_get("action")?,
            row.try_get("subject")?,
            row.try_get("details")?,
        );
        let mut h = Sha256::new();
        h.update(&stored_prev);
        h.update(text.as_bytes());
        let recomputed = h.finalize().to_vec();
        let reason = if seq != expected_seq {
            Some(BreakReason::Gap { expected: expected_seq })
        } else if stored_prev != prev_hash {
            Some(BreakReason::BrokenLink)
        } else if recomputed != stored {
            Some(BreakReason::Edited)
        } else {
            None
        };
        if let Some(reason) = reason {
            let v = Verification { rows: count, first_break: Some(Break { seq, reason }) };
            return Ok((v, (expected_seq - 1, prev_hash)));
        }
        prev_hash = stored;
        expected_seq = seq + 1;
    }
    drop(rows);
    // The chain alone cannot show rows cut off at its end: audit_head, kept by the insert
    // trigger, says which row was last and its hash.
    let (head_seq, head_hash): (i64, Vec<u8>) =
        sqlx::query_as("SELECT seq, hash FROM audit_head WHERE singleton").fetch_one(&mut *tx).await?;
    tx.commit().await?;
    let last = expected_seq - 1;
    let first_break = if head_seq > last {
        Some(Break { seq: last + 1, reason: BreakReason::TailRemoved })
    } else if head_seq == last && last > 0 && head_hash != prev_hash {
        Some(Break { seq: last, reason: BreakReason::TailRehashed })
    } else {
        None
    };
    Ok((Verification { rows: count, first_break }, (last, prev_hash)))
}
