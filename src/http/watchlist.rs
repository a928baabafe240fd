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
use crate::auth::Role;
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

/// A person to enrol, or whose entry to replace (same `id`).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolIn {
    /// The person's id.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    id: String,
    /// Shown to officers in offers and to dispatchers in reviews; not blank, no control characters.
    #[schema(value_type = super::schemas::Solid)]
    name: String,
    /// The law, warrant or court order the person is listed under; not blank, no control
    /// characters.
    #[schema(value_type = super::schemas::Solid)]
    legal_basis: String,
    /// A case reference, shown after the legal basis; no control characters.
    #[serde(default)]
    #[schema(value_type = Option<super::schemas::Text>)]
    case_ref: Option<String>,
    /// `low`, `medium` or `high`.
    #[schema(value_type = super::schemas::Danger)]
    danger: String,
    /// In the future: from then on the entry no longer matches.
    expires_at: DateTime<Utc>,
    /// Base64 (standard alphabet) JPEG or PNG photos of the person's face.
    #[schema(min_items = 1, max_items = 10)]
    photos: Vec<String>,
}

/// POST /api/v1/watchlist
#[utoipa::path(
    post, path = "/api/v1/watchlist", tag = "watchlist", operation_id = "enrol",
    summary = "Enrol a person from photos of their face, or replace their entry",
    description = "The entry matches at once. The whole body may be at most 24 MiB. Audited \
        (`watchlist.enroll`, with the photos' SHA-256). A `high` entry waits for a second \
        supervisor's approval.",
    request_body = EnrolIn,
    responses(
        (status = 200, description = "Enrolled", body = super::schemas::Enrolled),
        (status = 400, description = "A field missing, unknown or invalid (`id`, `danger`, `name`, `legal_basis`, `case_ref`, `expires_at`, `photos`, `body`)", body = super::schemas::BadRequest),
        (status = 404, description = "No watchlist in this process", body = super::schemas::Error),
        (status = 413, description = "A body over 24 MiB", body = super::schemas::BadRequest),
        (status = 503, description = "The face models could not be loaded, or the database failed", body = super::schemas::Error),
    )
)]
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
        enrolled_by: String::new(),
        approved_by: None,
    };
    let person = entry.id.to_string();
    let awaits = danger == Danger::High;
    match w.enroll(entry, photos, format!("user:{by}")).await {
        Ok(created) => Ok(HttpResponse::Ok().json(json!({
            "id": person, "created": created,
            "approval": if awaits { Some("pending") } else { None },
        }))),
        Err(e) if format!("{e:#}").contains("photo") => Err(ApiError::bad("photos", format!("{e:#}"))),
        Err(e) => Err(failed(e)),
    }
}

/// GET /api/v1/watchlist: the entries, without embeddings. Reading the list is audited like
/// any other search of it.
#[utoipa::path(
    get, path = "/api/v1/watchlist", tag = "watchlist", operation_id = "list_watchlist",
    summary = "Every entry on the list, expired ones too",
    description = "Without faces or embeddings, ordered by id. Every read is audited (`watchlist.list`).",
    responses(
        (status = 200, description = "The entries", body = Vec<super::schemas::WatchlistEntry>),
        (status = 404, description = "No watchlist (or no database) in this process", body = super::schemas::Error),
        (status = 503, description = "The database failed", body = super::schemas::Error),
    )
)]
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
                   "photos": e.photos, "enrolled_by": e.enrolled_by,
                   "approval": match (e.danger, &e.approved_by) {
                       (Danger::High, None) => Some("pending"),
                       (Danger::High, Some(_)) => Some("approved"),
                       _ => None,
                   },
                   "approved_by": e.approved_by})
        })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

/// Why an entry is taken off the list.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveIn {
    /// Why (the warrant was served, the order lapsed, ...): not blank, no control characters.
    #[schema(value_type = super::schemas::Solid)]
    reason: String,
}

/// DELETE /api/v1/watchlist/{id}
#[utoipa::path(
    delete, path = "/api/v1/watchlist/{id}", tag = "watchlist", operation_id = "remove_from_watchlist",
    summary = "Take a person off the list",
    description = "At once: no more matches; an incident already open goes on. Audited \
        (`watchlist.remove`, with the reason).",
    params(("id" = String, Path, pattern = "^[a-z0-9][a-z0-9-]{0,63}$", description = "The person's id")),
    request_body = RemoveIn,
    responses(
        (status = 200, description = "Removed", body = super::schemas::Removed),
        (status = 400, description = "`id` not valid; `reason` blank or holding a control character; `body` not JSON, no `reason`, another field", body = super::schemas::BadRequest),
        (status = 404, description = "Not on the list", body = super::schemas::Error),
        (status = 413, description = "A body over 24 MiB", body = super::schemas::BadRequest),
        (status = 503, description = "The database failed", body = super::schemas::Error),
    )
)]
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

/// POST /api/v1/watchlist/{id}/approve: a second supervisor approves a high-danger entry
/// (one that dispatches without review on a match). Body: `{}` or `{"note": "..."}`.
#[utoipa::path(
    post, path = "/api/v1/watchlist/{id}/approve", tag = "watchlist", operation_id = "approve_entry",
    summary = "Approve another supervisor's high-danger entry",
    description = "From then on a match at or above `vision.auto_threshold` opens an incident at once. \
        Audited (`watchlist.approve`). Not by the supervisor who enrolled it (403).",
    params(("id" = String, Path, pattern = "^[a-z0-9][a-z0-9-]{0,63}$", description = "The person's id")),
    request_body = NoteIn,
    responses(
        (status = 200, description = "Approved", body = super::schemas::Approved),
        (status = 400, description = "`id` not valid; `body` not `{}` or `{\"note\"}`; `note` too long or holding a control character", body = super::schemas::BadRequest),
        (status = 403, description = "The signed-in user enrolled the entry", body = super::schemas::Error),
        (status = 404, description = "No such entry", body = super::schemas::Error),
        (status = 409, description = "The entry is not `high`, or is already approved", body = super::schemas::Error),
        (status = 413, description = "A body over 4 KiB", body = super::schemas::BadRequest),
        (status = 503, description = "The database failed", body = super::schemas::Error),
    )
)]
pub async fn approve(
    req: HttpRequest,
    body: web::Json<NoteIn>,
    w: Option<web::Data<Watch>>,
) -> Result<HttpResponse, ApiError> {
    use crate::store::watchlist::ApprovalError as E;
    let w = watch(&w)?;
    let raw = req.match_info().get("id").unwrap_or_default();
    let id = PersonId::parse(raw).map_err(|e| ApiError::bad("id", e.to_string()))?;
    body.check()?;
    let by = session::user(&req).username;
    match w.approve(id.as_str(), &format!("user:{by}")).await {
        Ok(e) => Ok(HttpResponse::Ok().json(json!({
            "id": e.id, "danger": e.danger, "approval": "approved",
            "enrolled_by": e.enrolled_by, "approved_by": e.approved_by,
        }))),
        Err(e @ E::NotFound(_)) => Err(ApiError::NotFound(e.to_string())),
        Err(e @ (E::NotHigh(_) | E::Already(_))) => Err(ApiError::Conflict(e.to_string())),
        Err(e @ E::SamePerson(..)) => Err(ApiError::Forbidden(e.to_string())),
        Err(E::Database(e)) => Err(ApiError::Database(e)),
    }
}

/// The body of a decision: a JSON object, with an optional note for the audit log. A decision
/// needs one so that no page on another site can make it with a plain form.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteIn {
    /// Kept in the audit entry: at most 500 characters, no control characters.
    #[serde(default)]
    #[schema(value_type = Option<super::schemas::Text>)]
    note: Option<String>,
}

impl NoteIn {
    fn check(&self) -> Result<(), ApiError> {
        match &self.note {
            Some(n) if n.chars().count() > 500 => Err(ApiError::bad("note", "500 characters at most".into())),
            Some(n) => params::text("note", n),
            None => Ok(()),
        }
    }
}

/// Whether an officer's own incidents need what `person` and `sighting` name: an incident about
/// that person, or holding that sighting, which their unit was offered or worked, opened in the
/// last day. The live incidents first (the record is written behind them), then the record.
async fn officers_incident(
    req: &HttpRequest,
    pool: &sqlx::PgPool,
    person: Option<&str>,
    sighting: Option<SightingId>,
) -> Result<bool, ApiError> {
    let user = session::user(req);
    let Some(unit) = user.unit_id else { return Ok(false) };
    if let Some(live) = req.app_data::<web::Data<super::live::LiveState>>() {
        let open = live.registry.send(kuzet_actors::registry::ListIncidents).await.unwrap_or_default();
        let theirs = open.iter().filter(|s| {
            s.units.iter().any(|a| a.unit.as_str() == unit)
                || s.offers.iter().any(|o| o.unit.as_str() == unit)
                || s.timeline.iter().any(|t| t.unit.as_ref().is_some_and(|u| u.as_str() == unit))
        });
        for s in theirs {
            let about = person.is_some_and(|p| s.subject.person().is_some_and(|w| w.person_id.as_str() == p));
            let holds = sighting.is_some_and(|id| s.sightings.iter().any(|g| g.sighting_id == id));
            if about || holds {
                return Ok(true);
            }
        }
    }
    let recorded: bool = sqlx::query_scalar(
        "SELECT EXISTS (
             SELECT 1 FROM incidents i JOIN incident_events e ON e.incident_id = i.id
             WHERE e.unit_id = $1 AND i.opened_at > now() - interval '1 day'
               AND ((i.subject_kind = 'person' AND i.subject_id = $2)
                    OR i.id IN (SELECT incident_id FROM sightings WHERE id = $3)))",
    )
    .bind(&unit)
    .bind(person)
    .bind(sighting.map(|s| s.0))
    .fetch_one(pool)
    .await?;
    Ok(recorded)
}

/// GET /api/v1/watchlist/{id}/face.jpg: the enrolment face shown beside a match. Officers see
/// only the person their own incident is about.
#[utoipa::path(
    get, path = "/api/v1/watchlist/{id}/face.jpg", tag = "watchlist", operation_id = "watchlist_face",
    summary = "An entry's picture: the aligned face from its first photo",
    description = "112x112 JPEG, `Cache-Control: private, no-store`. Every picture served is audited \
        (`picture.read`). An officer gets only the person an incident of their unit (within the last \
        day) is about.",
    params(("id" = String, Path, pattern = "^[a-z0-9][a-z0-9-]{0,63}$", description = "The person's id")),
    responses(
        (status = 200, description = "The picture", content_type = "image/jpeg", body = Vec<u8>),
        (status = 400, description = "`id` not valid", body = super::schemas::BadRequest),
        (status = 403, description = "An officer, and the person is no subject of their unit's incidents", body = super::schemas::Error),
        (status = 404, description = "No such entry or picture", body = super::schemas::Error),
        (status = 503, description = "The database failed (no picture is served unaudited)", body = super::schemas::Error),
    )
)]
pub async fn face(req: HttpRequest, w: Option<web::Data<Watch>>) -> Result<HttpResponse, ApiError> {
    let w = watch(&w)?;
    let pool = w.pool.as_ref().ok_or_else(|| ApiError::NotFound("no database".into()))?;
    let raw = req.match_info().get("id").unwrap_or_default();
    let id = PersonId::parse(raw).map_err(|e| ApiError::bad("id", e.to_string()))?;
    if session::user(&req).role == Role::Officer
        && !officers_incident(&req, pool, Some(id.as_str()), None).await?
    {
        return Err(ApiError::Forbidden(format!("{id} is not the subject of an incident of your unit")));
    }
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
#[utoipa::path(
    get, path = "/api/v1/reviews", tag = "reviews", operation_id = "list_reviews",
    summary = "Face matches waiting for a dispatcher, oldest first",
    description = "From kuzet's live state, with every sighting. Not audited.",
    responses(
        (status = 200, description = "The pending reviews", body = Vec<super::schemas::Review>),
        (status = 404, description = "No watchlist in this process", body = super::schemas::Error),
    )
)]
pub async fn reviews(w: Option<web::Data<Watch>>) -> Result<HttpResponse, ApiError> {
    let w = watch(&w)?;
    let list: Vec<_> = w.people.pending_reviews().iter().map(|r| (**r).clone()).collect();
    Ok(HttpResponse::Ok().json(list))
}

/// POST /api/v1/reviews/{id}/confirm
#[utoipa::path(
    post, path = "/api/v1/reviews/{id}/confirm", tag = "reviews", operation_id = "confirm_review",
    summary = "Confirm a face match: an incident for the person",
    description = "Opens a `wanted_person` incident where the person was seen last (or moves theirs). \
        Audited (`review.confirm`); the timeline says who confirmed.",
    params(("id" = uuid::Uuid, Path, description = "The review's id")),
    request_body(content = NoteIn, description = "`{}` or `{\"note\": \"...\"}`"),
    responses(
        (status = 200, description = "The decided review (`confirmed`, with `incident_id`)", body = super::schemas::Review),
        (status = 400, description = "`id` not a UUID; `body` missing or not `{}`/`{\"note\"}`; `note` too long or holding a control character", body = super::schemas::BadRequest),
        (status = 404, description = "No pending review with this id, or the person is no longer on the list", body = super::schemas::Error),
        (status = 413, description = "A body over 4 KiB", body = super::schemas::BadRequest),
        (status = 503, description = "The incident could not be opened, or the database failed", body = super::schemas::Error),
    )
)]
pub async fn confirm(
    req: HttpRequest,
    body: web::Json<NoteIn>,
    w: Option<web::Data<Watch>>,
) -> Result<HttpResponse, ApiError> {
    decide(req, body, w, true).await
}

/// POST /api/v1/reviews/{id}/reject
#[utoipa::path(
    post, path = "/api/v1/reviews/{id}/reject", tag = "reviews", operation_id = "reject_review",
    summary = "Reject a face match: someone else",
    description = "Every face of the review becomes a negative example for the person on its camera; \
        the review's pictures are deleted. Audited (`review.reject`).",
    params(("id" = uuid::Uuid, Path, description = "The review's id")),
    request_body(content = NoteIn, description = "`{}` or `{\"note\": \"...\"}`"),
    responses(
        (status = 200, description = "The decided review (`rejected`)", body = super::schemas::Review),
        (status = 400, description = "`id` not a UUID; `body` missing or not `{}`/`{\"note\"}`; `note` too long or holding a control character", body = super::schemas::BadRequest),
        (status = 404, description = "No pending review with this id, or the person is no longer on the list", body = super::schemas::Error),
        (status = 413, description = "A body over 4 KiB", body = super::schemas::BadRequest),
        (status = 503, description = "The database failed", body = super::schemas::Error),
    )
)]
pub async fn reject(
    req: HttpRequest,
    body: web::Json<NoteIn>,
    w: Option<web::Data<Watch>>,
) -> Result<HttpResponse, ApiError> {
    decide(req, body, w, false).await
}

/// A dispatcher's decision on a review, with a body: `{}` or `{"note": "..."}`.
async fn decide(
    req: HttpRequest,
    body: web::Json<NoteIn>,
    w: Option<web::Data<Watch>>,
    confirm: bool,
) -> Result<HttpResponse, ApiError> {
    let w = watch(&w)?;
    body.check()?;
    let review_id = ReviewId(uuid_param(&req, "id")?);
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
                         "evidence_deleted": deleted, "note": body.note}))
            .execute(pool)
            .await?;
    }
    Ok(HttpResponse::Ok().json(&*decided.review))
}

/// GET /api/v1/sightings/{id}/face.jpg
#[utoipa::path(
    get, path = "/api/v1/sightings/{id}/face.jpg", tag = "reviews", operation_id = "sighting_face",
    summary = "A sighting's aligned face (112x112)",
    description = "From the evidence folder, `Cache-Control: private, no-store`; audited \
        (`picture.read`). An officer gets only the sightings of an incident of their unit (within \
        the last day).",
    params(("id" = uuid::Uuid, Path, description = "The sighting's id")),
    responses(
        (status = 200, description = "The picture", content_type = "image/jpeg", body = Vec<u8>),
        (status = 400, description = "`id` not a UUID", body = super::schemas::BadRequest),
        (status = 403, description = "An officer, and the sighting is in no incident of their unit", body = super::schemas::Error),
        (status = 404, description = "No such picture", body = super::schemas::Error),
        (status = 503, description = "The database failed (no picture is served unaudited)", body = super::schemas::Error),
    )
)]
pub async fn sighting_face(req: HttpRequest, w: Option<web::Data<Watch>>) -> Result<HttpResponse, ApiError> {
    evidence(req, w, "face.jpg").await
}

/// GET /api/v1/sightings/{id}/frame.jpg
#[utoipa::path(
    get, path = "/api/v1/sightings/{id}/frame.jpg", tag = "reviews", operation_id = "sighting_frame",
    summary = "The whole camera frame a sighting's face was found in",
    description = "From the evidence folder, `Cache-Control: private, no-store`; audited \
        (`picture.read`). An officer gets only the sightings of an incident of their unit (within \
        the last day).",
    params(("id" = uuid::Uuid, Path, description = "The sighting's id")),
    responses(
        (status = 200, description = "The picture", content_type = "image/jpeg", body = Vec<u8>),
        (status = 400, description = "`id` not a UUID", body = super::schemas::BadRequest),
        (status = 403, description = "An officer, and the sighting is in no incident of their unit", body = super::schemas::Error),
        (status = 404, description = "No such picture", body = super::schemas::Error),
        (status = 503, description = "The database failed (no picture is served unaudited)", body = super::schemas::Error),
    )
)]
pub async fn sighting_frame(req: HttpRequest, w: Option<web::Data<Watch>>) -> Result<HttpResponse, ApiError> {
    evidence(req, w, "frame.jpg").await
}

/// A sighting's picture, `which` is `face.jpg` or `frame.jpg`.
async fn evidence(
    req: HttpRequest,
    w: Option<web::Data<Watch>>,
    which: &str,
) -> Result<HttpResponse, ApiError> {
    let w = watch(&w)?;
    let id = SightingId(uuid_param(&req, "id")?);
    if session::user(&req).role == Role::Officer {
        let pool = w.pool.as_ref().ok_or_else(|| ApiError::NotFound("no database".into()))?;
        if !officers_incident(&req, pool, None, Some(id)).await? {
            return Err(ApiError::Forbidden(format!("sighting {id} is not in an incident of your unit")));
        }
    }
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
