//! The watchlist in the database: enrolment (audited), the entries kuzet loads at start,
//! and the negative examples dispatchers' rejections leave behind.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use kuzet_actors::ids::PersonId;
use kuzet_actors::model::Danger;
use serde_json::json;
use sqlx::postgres::PgPool;

use super::rows::SightingRow;

/// One person on the list.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: PersonId,
    pub name: String,
    pub legal_basis: String,
    pub case_ref: Option<String>,
    pub danger: Danger,
    pub expires_at: DateTime<Utc>,
    /// Unit length, 128 floats.
    pub embedding: Vec<f32>,
    pub photos: i32,
    /// Who enrolled it (`user:name`), and who approved a high-danger entry.
    pub enrolled_by: String,
    pub approved_by: Option<String>,
}

impl Entry {
    /// The danger the matcher acts on: a high-danger entry that no second person has approved
    /// is held as medium (its matches wait for a dispatcher's review).
    pub fn acting_danger(&self) -> Danger {
        match (self.danger, &self.approved_by) {
            (Danger::High, None) => Danger::Medium,
            (d, _) => d,
        }
    }

    /// Whether the entry waits for a second person's approval.
    pub fn awaits_approval(&self) -> bool {
        self.danger == Danger::High && self.approved_by.is_none()
    }
}

/// Writes (or replaces) an entry with its face picture, and audits the enrolment: who, under
/// what legal basis, until when, from how many photos (with their SHA-256, not the pictures).
pub async fn enroll(
    pool: &PgPool,
    e: &Entry,
    face_jpeg: Option<&[u8]>,
    photo_sha256: &[String],
    actor: &str,
) -> anyhow::Result<bool> {
    let mut tx = pool.begin().await?;
    let created: bool = sqlx::query_scalar(
        "INSERT INTO watchlist AS w (id, name, legal_basis, case_ref, danger, expires_at, embedding, photos,
                                    face_jpeg, enrolled_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, legal_basis = EXCLUDED.legal_basis,
             case_ref = EXCLUDED.case_ref, danger = EXCLUDED.danger, expires_at = EXCLUDED.expires_at,
             embedding = EXCLUDED.embedding, photos = EXCLUDED.photos, face_jpeg = EXCLUDED.face_jpeg,
             enrolled_at = now(), enrolled_by = EXCLUDED.enrolled_by, approved_by = NULL, approved_at = NULL
         RETURNING (w.xmax = 0)",
    )
    .bind(e.id.as_str())
    .bind(&e.name)
    .bind(&e.legal_basis)
    .bind(&e.case_ref)
    .bind(e.danger.as_str())
    .bind(e.expires_at)
    .bind(&e.embedding)
    .bind(e.photos)
    .bind(face_jpeg)
    .bind(actor)
    .fetch_one(&mut *tx)
    .await
    .context("cannot write the watchlist entry")?;
    sqlx::query("SELECT audit_append($1, 'watchlist.enroll', $2, $3)")
        .bind(actor)
        .bind(e.id.as_str())
        .bind(json!({
            "created": created, "name": e.name, "legal_basis": e.legal_basis, "case_ref": e.case_ref,
            "danger": e.danger.as_str(), "expires_at": e.expires_at, "photos": e.photos,
            "photo_sha256": photo_sha256, "awaits_approval": e.danger == Danger::High,
        }))
        .execute(&mut *tx)
        .await
        .context("cannot audit the enrolment")?;
    tx.commit().await?;
    Ok(created)
}

/// Why an approval was not given.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("{0} is not on the list")]
    NotFound(String),
    #[error("{0} is not a high-danger entry: it needs no approval")]
    NotHigh(String),
    #[error("{0} is already approved")]
    Already(String),
    #[error("{0} was enrolled by {1}: a second person approves it")]
    SamePerson(String, String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A second person approves a high-danger entry (audited in the same transaction); the entry
/// as it now stands.
pub async fn approve(pool: &PgPool, person: &str, actor: &str) -> Result<Entry, ApprovalError> {
    let mut tx = pool.begin().await?;
    let row: Option<(String, String, Option<String>)> =
        sqlx::query_as("SELECT danger, enrolled_by, approved_by FROM watchlist WHERE id = $1 FOR UPDATE")
            .bind(person)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((danger, enrolled_by, approved_by)) = row else {
        return Err(ApprovalError::NotFound(person.to_owned()));
    };
    if danger != "high" {
        return Err(ApprovalError::NotHigh(person.to_owned()));
    }
    if approved_by.is_some() {
        return Err(ApprovalError::Already(person.to_owned()));
    }
    if enrolled_by == actor {
        return Err(ApprovalError::SamePerson(person.to_owned(), enrolled_by));
    }
    sqlx::query("UPDATE watchlist SET approved_by = $2, approved_at = now() WHERE id = $1")
        .bind(person)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT audit_append($1, 'watchlist.approve', $2, $3)")
        .bind(actor)
        .bind(person)
        .bind(json!({"danger": "high", "enrolled_by": enrolled_by}))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    load(pool)
        .await
        .map_err(|e| ApprovalError::Database(sqlx::Error::Protocol(format!("{e:#}"))))?
        .into_iter()
        .find(|e| e.id.as_str() == person)
        .ok_or_else(|| ApprovalError::NotFound(person.to_owned()))
}

/// Every entry (expired ones too: they stay listed, they just do not match).
pub async fn load(pool: &PgPool) -> anyhow::Result<Vec<Entry>> {
    type Row = (
        String,
        String,
        String,
        Option<String>,
        String,
        DateTime<Utc>,
        Vec<f32>,
        i32,
        String,
        Option<String>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, name, legal_basis, case_ref, danger, expires_at, embedding, photos, enrolled_by, approved_by
         FROM watchlist ORDER BY id COLLATE \"C\"",
    )
    .fetch_all(pool)
    .await
    .context("cannot read the watchlist")?;
    rows.into_iter()
        .map(
            |(
                id,
                name,
                legal_basis,
                case_ref,
                danger,
                expires_at,
                embedding,
                photos,
                enrolled_by,
                approved_by,
            )| {
                Ok(Entry {
                    enrolled_by,
                    approved_by,
                    id: PersonId::parse(&id).with_context(|| format!("watchlist id {id:?}"))?,
                    danger: Danger::parse(&danger)
                        .with_context(|| format!("watchlist {id}: danger {danger:?}"))?,
                    name,
                    legal_basis,
                    case_ref,
                    expires_at,
                    embedding,
                    photos,
                })
            },
        )
        .collect()
}

/// (person, camera, embedding) of every negative example.
pub async fn negatives(pool: &PgPool) -> anyhow::Result<Vec<(String, String, Vec<f32>)>> {
    sqlx::query_as("SELECT person_id, camera_id, embedding FROM watchlist_negatives ORDER BY id")
        .fetch_all(pool)
        .await
        .context("cannot read negative examples")
}

/// Keeps a rejected face as a negative example for the person on that camera (audited).
pub async fn add_negative(
    pool: &PgPool,
    person: &str,
    camera: &str,
    embedding: &[f32],
    review: uuid::Uuid,
    actor: &str,
) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO watchlist_negatives (person_id, camera_id, embedding, review_id, added_by)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(person)
    .bind(camera)
    .bind(embedding)
    .bind(review)
    .bind(actor)
    .execute(&mut *tx)
    .await
    .context("cannot store the negative example")?;
    sqlx::query("SELECT audit_append($1, 'watchlist.negative', $2, $3)")
        .bind(actor)
        .bind(person)
        .bind(json!({"camera": camera, "review_id": review}))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The enrolment face picture shown beside a match.
pub async fn face_jpeg(pool: &PgPool, person: &str) -> anyhow::Result<Option<Vec<u8>>> {
    let v: Option<Option<Vec<u8>>> = sqlx::query_scalar("SELECT face_jpeg FROM watchlist WHERE id = $1")
        .bind(person)
        .fetch_optional(pool)
        .await?;
    Ok(v.flatten())
}

/// The sightings of reviews nobody confirmed or rejected, oldest first (as the writer wrote
/// them: decision `review`, with their review and embedding).
pub async fn pending_reviews(pool: &PgPool) -> anyhow::Result<Vec<SightingRow>> {
    type Row = (uuid::Uuid, String, uuid::Uuid, String, DateTime<Utc>, f32, f64, f64, bool, Option<Vec<f32>>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT s.review_id, s.person_id, s.id, s.camera_id, s.at, s.score, ST_Y(s.location::geometry),
                ST_X(s.location::geometry), s.evidence, s.embedding
         FROM sightings s
         WHERE s.decision = 'review' AND s.review_id IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM sightings d
                           WHERE d.review_id = s.review_id AND d.decision IN ('confirmed', 'rejected'))
         ORDER BY s.at, s.id",
    )
    .fetch_all(pool)
    .await
    .context("cannot read pending reviews")?;
    Ok(rows
        .into_iter()
        .map(|(review_id, person_id, id, camera_id, at, score, lat, lon, evidence, embedding)| SightingRow {
            id,
            decision: "review".into(),
            person_id,
            camera_id,
            at,
            score,
            lat,
            lon,
            evidence,
            incident_id: None,
            review_id: Some(review_id),
            embedding,
        })
        .collect())
}

/// Takes a person off the list (their negative examples go with them; sightings stay as
/// history), audited. False when there was no such entry.
pub async fn remove(pool: &PgPool, person: &str, actor: &str, reason: &str) -> anyhow::Result<bool> {
    let mut tx = pool.begin().await?;
    let gone = sqlx::query("DELETE FROM watchlist WHERE id = $1").bind(person).execute(&mut *tx).await?;
    if gone.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query("SELECT audit_append($1, 'watchlist.remove', $2, $3)")
        .bind(actor)
        .bind(person)
        .bind(json!({"reason": reason}))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}
