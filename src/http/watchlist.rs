//! The watchlist and face-match routes: enrolment, the list (audited), reviews waiting for a
//! dispatcher with confirm and reject, and the evidence pictures of sightings.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use kuzet_actors::ids::{PersonId, ReviewId, SightingId};
use kuzet_actors::model::Danger;
use kuzet_actors::wanted::{Decide, DecideError};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{params, session, ApiError};
use crate::store::watchlist::{self, Entry};
use crate::vision::Watch;

/// Photos one enrolment may carry, and the size of each.
const MAX_PHOTOS: usize = 10;
pub const MAX_ENROL_BYTES: usize = 24 * 1024 * 1024;

fn watch(w: &Option<web::Data<Watch>>) -> Result<&Arc<Watch>, ApiError> {
    w.as_deref().ok_or_else(|| ApiError::NotFound("the watchlist is not available".into()))
}

fn uuid_param(req: &HttpRequest, name: &str) -> Result<Uuid, ApiError> {
    let raw = req.match_info().get(name).unwrap_or_default();
    Uuid::parse_str(raw).map_err(|_| ApiError::bad(name, format!("{raw:?} is not a UUID")))
}

fn failed(e: anyhow::Error) -> ApiError {
    tracing::error!(error = %format!("{e:#}"), "watchlist request failed");
    ApiError::Unavailable(format!("{e:#}"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolIn {
    id: String,
    name: String,
    legal_basis: String,
    #[serde(default)]
    case_ref: Option<String>,
    danger: String,
    expires_at: DateTime<Utc>,
    /// Base64 (standard alphabet) JPEG or PNG photos of the person's face.
    photos: Vec<String>,
}

/// POST /api/v1/watchlist
pub async fn enrol(
    req: HttpRequest,
    body: web::Json<EnrolIn>,
    w: Option<web::Data<Watch>>,
) -> Result<HttpResponse, ApiError> {
    let w = watch(&w)?;
    let by = session::user(&req).username;
    let b = body.into_inner();
    let id = PersonId::parse(&b.id).map_err(|e| ApiError::bad("id", e.to_string()))?;
    let danger =
        Danger::parse(&b.danger).ok_or_else(|| ApiError::bad("danger", "low, medium or high".into()))?;
    if b.legal_basis.trim().is_empty() {
        return Err(ApiError::bad("legal_basis", "a legal basis or case reference is required".into()));
    }
    if b.name.trim().is_empty() {
        return Err(ApiError::bad("name", "required".into()));
    }
    params::text("name", &b.name)?;
    params::text("legal_basis", &b.legal_basis)?;
    if let Some(c) = &b.case_ref {
        params::text("case_ref", c)?;
    }
    if b.expires_at <= Utc::now() {
        return Err(ApiError::bad("expires_at", "must be in the future".into()));
    }
    if b.photos.is_empty() || b.photos.len() > MAX_PHOTOS {
        return Err(ApiError::bad("photos", format!("1 to {MAX_PHOTOS} photos")));
    }
    let mut photos = Vec::with_capacity(b.photos.len());
    for (i, p) in b.photos.iter().enumerate() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(p)
            .map_err(|e| ApiError::bad("photos", format!("photo {i} is not base64: {e}")))?;
        photos.push((format!("photo {i}"), bytes));
    }
    let entry = Entry {
        id,
        name: b.name,
        legal_basis: b.legal_basis,
        case_ref: b.case_ref,
        danger,
        expires_at: b.expires_at,
        embedding: Vec::new(),
        photos: 0,
    };
    let person = entry.id.to_string();
    match w.enroll(entry, photos, format!("user:{by}")).await {
        Ok(created) => Ok(HttpResponse::Ok().json(json!({"id": person, "created": created}))),
        Err(e) if format!("{e:#}").contains("photo") => Err(ApiError::bad("photos", format!("{e:#}"))),
        Err(e) => Err(failed(e)),
    }
}

/// GET /api/v1/watchlist: the entries, without embeddings. Reading the list is audited like
/// any other search of it.
pub async fn list(req: HttpRequest, w: Option<web::Data<Watch>>) -> Result<HttpResponse, ApiError> {
    let w = watch(&w)?;
    let pool = w.pool.as_ref().ok_or_else(|| ApiError::NotFound("no database".into()))?;
    let by = session::user(&req).username;
    let entries = watchlist::load(pool).await.map_err(failed)?;
    sqlx::query("SELECT audit_append($1, 'watchlist.list', NULL, $2)")
        .bind(format!("user:{by}"))
        .bind(json!({"entries": entries.len()}))
        .execute(pool)
        .await?;
    let now = Utc::now();
    let out: Vec<_> = entries
        .iter()
        .map(|e| {
            json!({"id": e.id, "name": e.name, "legal_basis": e.legal_basis, "case_ref": e.case_ref,
                   "danger": e.danger, "expires_at": e.expires_at, "expired": e.expires_at <= now,
                   "photos": e.photos})
        })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveIn {
    /// Why (the warrant was served, the order lapsed, ...).
    reason: String,
}

/// DELETE /api/v1/watchlist/{id}
pub async fn remove(
    req: HttpRequest,
    body: web::Json<RemoveIn>,
    w: Option<web::Data<Watch>>,
) -> Result<HttpResponse, ApiError> {
    let w = watch(&w)?;
    let raw = req.match_info().get("id").unwrap_or_default();
    let id = PersonId::parse(raw).map_err(|e| ApiError::bad("id", e.to_string()))?;
    let b = body.into_inner();
    let by = session::user(&req).username;
    if b.reason.trim().is_empty() {
        return Err(ApiError::bad("reason", "required".into()));
    }
    params::text("reason", &b.reason)?;
    match w.remove(id.as_str(), &format!("user:{by}"), &b.reason).await.map_err(failed)? {
        true => Ok(HttpResponse::Ok().json(json!({"id": id, "removed": true}))),
        false => Err(ApiError::NotFound(format!("{id} is not on the list"))),
    }
}

/// GET /api/v1/watchlist/{id}/face.jpg: the enrolment face shown beside a match.
pub async fn face(req: HttpRequest, w: Option<web::Data<Watch>>) -> Result<HttpResponse, ApiError> {
    let w = watch(&w)?;
    let pool = w.pool.as_ref().ok_or_else(|| ApiError::NotFound("no database".into()))?;
    let raw = req.match_info().get("id").unwrap_or_default();
    let id = PersonId::parse(raw).map_err(|e| ApiError::bad("id", e.to_string()))?;
    match watchlist::face_jpeg(pool, id.as_str()).await.map_err(failed)? {
        Some(jpeg) => {
            audit_picture(&req, w, id.as_str(), "watchlist.face").await?;
            Ok(picture(jpeg))
        }
        None => Err(ApiError::NotFound(format!("no face picture for {id}"))),
    }
}

/// Who looked at whose picture is kept: every picture served is an audit entry.
async fn audit_picture(req: &HttpRequest, w: &Watch, subject: &str, which: &str) -> Result<(), ApiError> {
    if let Some(pool) = &w.pool {
        sqlx::query("SELECT audit_append($1, 'picture.read', $2, $3)")
            .bind(format!("user:{}", session::user(req).username))
            .bind(subject)
            .bind(json!({ "picture": which }))
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// A picture: private to the signed-in browser, never kept by a shared cache.
fn picture(jpeg: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("image/jpeg")
        .insert_header(("Cache-Control", "private, no-store"))
        .body(jpeg)
}

/// GET /api/v1/reviews: face matches waiting for a dispatcher, oldest first.
pub async fn reviews(w: Option<web::Data<Watch>>) -> Result<HttpResponse, ApiError> {
    let w = watch(&w)?;
    let list: Vec<_> = w.people.pending_reviews().iter().map(|r| (**r).clone()).collect();
    Ok(HttpResponse::Ok().json(list))
}

/// POST /api/v1/reviews/{id}/confirm and /reject.
pub async fn decide(req: HttpRequest, w: Option<web::Data<Watch>>) -> Result<HttpResponse, ApiError> {
    let w = watch(&w)?;
    let review_id = ReviewId(uuid_param(&req, "id")?);
    let confirm = req.path().ends_with("/confirm");
    let by = session::user(&req).username;
    let review = w
        .people
        .review(review_id)
        .ok_or_else(|| ApiError::NotFound(format!("no pending review {review_id}")))?;
    let person = w
        .people
        .person(review.person.person_id.as_str())
        .ok_or_else(|| ApiError::NotFound(format!("{} is no longer on the list", review.person.person_id)))?;
    let decided = person
        .send(Decide { review_id, confirm, by: by.clone() })
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .map_err(|e| match e {
            DecideError::NoSuchReview(_) => ApiError::NotFound(e.to_string()),
            DecideError::Registry(_) => ApiError::Unavailable(e.to_string()),
        })?;
    let actor = format!("user:{by}");
    // A rejected match was someone else: their pictures go (the negative example stays, as
    // an embedding, so the same face is not matched again).
    let mut deleted = 0;
    if !confirm {
        let dirs: Vec<_> = decided
            .review
            .sightings
            .iter()
            .filter_map(|s| w.matcher.evidence_path(s.sighting_id, "face.jpg").parent().map(|d| d.to_owned()))
            .collect();
        deleted = actix_rt::task::spawn_blocking(move || {
            dirs.iter().filter(|d| std::fs::remove_dir_all(d).is_ok()).count()
        })
        .await
        .unwrap_or(0);
    }
    for (camera, emb) in &decided.negatives {
        let Ok(e) = <[f32; kuzet_vision::DIM]>::try_from(&emb[..]) else { continue };
        w.matcher.gallery_mut().add_negative(review.person.person_id.as_str(), camera.as_str(), e);
        if let Some(pool) = &w.pool {
            watchlist::add_negative(
                pool,
                review.person.person_id.as_str(),
                camera.as_str(),
                emb,
                review_id.0,
                &actor,
            )
            .await
            .map_err(failed)?;
        }
    }
    if let Some(pool) = &w.pool {
        sqlx::query("SELECT audit_append($1, $2, $3, $4)")
            .bind(&actor)
            .bind(if confirm { "review.confirm" } else { "review.reject" })
            .bind(review.person.person_id.as_str())
            .bind(json!({"review_id": review_id, "incident_id": decided.review.incident_id,
                         "sightings": decided.review.sightings.len(), "negatives": decided.negatives.len(),
                         "evidence_deleted": deleted}))
            .execute(pool)
            .await?;
    }
    Ok(HttpResponse::Ok().json(&*decided.review))
}

/// GET /api/v1/sightings/{id}/face.jpg and /frame.jpg
pub async fn evidence(req: HttpRequest, w: Option<web::Data<Watch>>) -> Result<HttpResponse, ApiError> {
    let w = watch(&w)?;
    let id = SightingId(uuid_param(&req, "id")?);
    let which = if req.path().ends_with("/face.jpg") { "face.jpg" } else { "frame.jpg" };
    let path = w.matcher.evidence_path(id, which);
    match actix_rt::task::spawn_blocking(move || std::fs::read(path)).await {
        Ok(Ok(bytes)) => {
            audit_picture(&req, w, &id.to_string(), &format!("sighting.{}", which.trim_end_matches(".jpg")))
                .await?;
            Ok(picture(bytes))
        }
        _ => Err(ApiError::NotFound(format!("no {which} for sighting {id}"))),
    }
}
