//! Area warnings (OASIS CAP 1.2) a dispatcher issues: an area, a message, an expiry; then
//! updates and a cancel, each a new CAP message naming the ones it changes. They go out on MQTT
//! through the outbox (`Notify::Warning`) and are read here as JSON, one CAP message, or an
//! Atom feed. Only a person issues one: nothing in kuzet makes a warning by itself.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Duration, DurationRound, Utc};
use kuzet_actors::geo::GeoPoint;
use kuzet_actors::outbound::{Notify, Outbox};
use kuzet_actors::warning::{Area, MsgType, Severity, Shape, Urgency, Warning};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::postgres::PgPool;
use std::sync::Arc;
use uuid::Uuid;

use super::{params, session, ApiError};
use crate::contract::cap;
use crate::store::warnings as store;

/// What issuing needs from the running kuzet.
#[derive(Clone)]
pub struct WarningDesk {
    pub outbox: Outbox,
    pub sender: String,
    pub sender_name: String,
}

/// The longest a warning may be in force before it must be issued again.
const MAX_IN_FORCE: Duration = Duration::days(7);
const MAX_POLYGON_POINTS: usize = 100;
/// Warnings kept in the list: those with a message in the last week.
const LIST_DAYS: i32 = 7;
const FEED_LIMIT: i64 = 500;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CircleIn {
    lat: f64,
    lon: f64,
    radius_m: f64,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AreaIn {
    description: String,
    #[serde(default)]
    circle: Option<CircleIn>,
    /// [lat, lon] pairs, at least three places.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Vec<f64>>>)]
    polygon: Option<Vec<[f64; 2]>>,
}

/// A new warning, or an update's changes (every field optional there: what is left out stays).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WarningIn {
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    headline: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    instruction: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    urgency: Option<String>,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    area: Option<AreaIn>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelIn {
    #[serde(default)]
    reason: Option<String>,
}

fn desk(req: &HttpRequest) -> Result<WarningDesk, ApiError> {
    req.app_data::<web::Data<WarningDesk>>()
        .map(|d| d.get_ref().clone())
        .ok_or_else(|| ApiError::NotFound("area warnings are not issued by this process".into()))
}

/// Free text from the API: the text rule, not blank, at most `max` characters.
fn text(name: &str, v: &str, max: usize) -> Result<String, ApiError> {
    let v = v.trim();
    if v.is_empty() {
        return Err(ApiError::bad(name, "required, not blank".into()));
    }
    if v.chars().count() > max {
        return Err(ApiError::bad(name, format!("{max} characters at most")));
    }
    params::text(name, v)?;
    Ok(v.to_owned())
}

fn point(name: &str, lat: f64, lon: f64) -> Result<GeoPoint, ApiError> {
    GeoPoint::new(lat, lon).map_err(|e| ApiError::bad(name, e.to_string()))
}

fn area(a: &AreaIn) -> Result<Area, ApiError> {
    let description = text("area.description", &a.description, 500)?;
    let shape = match (&a.circle, &a.polygon) {
        (Some(c), None) => {
            if !c.radius_m.is_finite() || !(10.0..=50_000.0).contains(&c.radius_m) {
                return Err(ApiError::bad("area.circle.radius_m", "10 to 50,000 metres".into()));
            }
            Shape::Circle { centre: point("area.circle", c.lat, c.lon)?, radius_m: c.radius_m }
        }
        (None, Some(p)) => {
            let mut pts = p
                .iter()
                .map(|[lat, lon]| point("area.polygon", *lat, *lon))
                .collect::<Result<Vec<_>, _>>()?;
            if pts.len() > 1 && pts.first() == pts.last() {
                pts.pop();
            }
            if pts.len() < 3 || pts.len() > MAX_POLYGON_POINTS {
                return Err(ApiError::bad(
                    "area.polygon",
                    format!("3 to {MAX_POLYGON_POINTS} places, as [lat, lon] pairs"),
                ));
            }
            // CAP polygons are closed: the first place again at the end.
            pts.push(pts[0]);
            Shape::Polygon(pts)
        }
        _ => return Err(ApiError::bad("area", "either circle or polygon".into())),
    };
    Ok(Area { description, shape })
}

fn expires(t: DateTime<Utc>, now: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    if t <= now {
        return Err(ApiError::bad("expires_at", "must be in the future".into()));
    }
    if t > now + MAX_IN_FORCE {
        return Err(ApiError::bad("expires_at", "at most 7 days ahead; issue it again after that".into()));
    }
    Ok(t.duration_trunc(Duration::seconds(1)).unwrap_or(t))
}

fn now_s() -> DateTime<Utc> {
    let now = Utc::now();
    now.duration_trunc(Duration::seconds(1)).unwrap_or(now)
}

fn id_param(req: &HttpRequest) -> Result<Uuid, ApiError> {
    let raw = req.match_info().get("id").unwrap_or_default();
    Uuid::parse_str(raw).map_err(|_| ApiError::bad("id", format!("{} is not a UUID", crate::text::echo(raw))))
}

fn failed(e: anyhow::Error) -> ApiError {
    tracing::error!(error = %format!("{e:#}"), "area warning request failed");
    ApiError::Unavailable(format!("{e:#}"))
}

/// The API's view of one message.
fn view(w: &Warning, messages: Option<i64>, now: DateTime<Utc>) -> Value {
    let area = match &w.area.shape {
        Shape::Circle { centre, radius_m } => {
            json!({"description": w.area.description,
                   "circle": {"lat": centre.lat(), "lon": centre.lon(), "radius_m": radius_m}})
        }
        Shape::Polygon(p) => json!({"description": w.area.description,
                                    "polygon": p.iter().map(|g| [g.lat(), g.lon()]).collect::<Vec<_>>()}),
    };
    json!({
        "warning_id": w.warning_id, "identifier": w.identifier, "msg_type": w.msg_type.as_str(),
        "sent": w.sent, "expires_at": w.expires,
        "in_force": w.msg_type != MsgType::Cancel && w.expires > now,
        "event": w.event, "headline": w.headline, "description": w.description,
        "instruction": w.instruction, "severity": w.severity.as_str().to_ascii_lowercase(),
        "urgency": w.urgency.as_str().to_ascii_lowercase(), "area": area,
        "references": w.references.iter().map(|r| &r.identifier).collect::<Vec<_>>(),
        "issued_by": w.issued_by, "messages": messages,
    })
}

/// Records a message (audited), then hands it to the outbox (MQTT, retained).
async fn issue(pool: &PgPool, desk: &WarningDesk, w: Warning) -> Result<HttpResponse, ApiError> {
    let xml = cap::alert_document(&w);
    store::insert(pool, &w, &xml).await.map_err(failed)?;
    let out = view(&w, None, Utc::now());
    desk.outbox.send(Notify::Warning(Arc::new(w)));
    Ok(HttpResponse::Ok().json(out))
}

/// POST /api/v1/warnings
/// POST /api/v1/warnings
#[utoipa::path(
    post, path = "/api/v1/warnings", tag = "warnings", operation_id = "issue_warning",
    summary = "Issue an area warning (a CAP 1.2 Alert)",
    description = "An area (a circle or a polygon), a message and an expiry at most 7 days ahead; \
        published retained on `kuzet/v1/warnings/{id}`, recorded and audited.",
    request_body = WarningIn,
    responses(
        (status = 200, description = "The warning as issued", body = super::schemas::Warning),
        (status = 400, description = "A field missing, blank, too long, out of range or unknown", body = super::schemas::BadRequest),
        (status = 404, description = "Area warnings are not issued by this process", body = super::schemas::Error),
        (status = 413, description = "A body over 16 KiB", body = super::schemas::BadRequest),
        (status = 503, description = "The database failed", body = super::schemas::Error),
    )
)]
pub async fn create(
    req: HttpRequest,
    body: web::Json<WarningIn>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    let desk = desk(&req)?;
    let b = body.into_inner();
    let now = now_s();
    let required =
        |v: &Option<String>, name: &str| v.clone().ok_or_else(|| ApiError::bad(name, "required".into()));
    let w = Warning {
        identifier: format!("urn:uuid:{}", Uuid::new_v4()),
        warning_id: Uuid::new_v4(),
        sender: desk.sender.clone(),
        sent: now,
        msg_type: MsgType::Alert,
        references: Vec::new(),
        category: "Security",
        event: text("event", b.event.as_deref().unwrap_or("Police operation"), 100)?,
        urgency: parse_urgency(b.urgency.as_deref())?.unwrap_or(Urgency::Immediate),
        severity: parse_severity(b.severity.as_deref())?.unwrap_or(Severity::Severe),
        headline: text("headline", &required(&b.headline, "headline")?, 160)?,
        description: text("description", &required(&b.description, "description")?, 2000)?,
        instruction: b.instruction.as_deref().map(|i| text("instruction", i, 1000)).transpose()?,
        expires: expires(b.expires_at.ok_or_else(|| ApiError::bad("expires_at", "required".into()))?, now)?,
        area: area(b.area.as_ref().ok_or_else(|| ApiError::bad("area", "required".into()))?)?,
        sender_name: desk.sender_name.clone(),
        issued_by: session::user(&req).username,
    };
    issue(&pool, &desk, w).await
}

fn parse_severity(s: Option<&str>) -> Result<Option<Severity>, ApiError> {
    s.map(|v| {
        Severity::parse(v)
            .ok_or_else(|| ApiError::bad("severity", "extreme, severe, moderate or minor".into()))
    })
    .transpose()
}

fn parse_urgency(s: Option<&str>) -> Result<Option<Urgency>, ApiError> {
    s.map(|v| Urgency::parse(v).ok_or_else(|| ApiError::bad("urgency", "immediate or expected".into())))
        .transpose()
}

/// The warning's newest message, which must still be in force to be changed.
async fn in_force(pool: &PgPool, id: Uuid) -> Result<(Warning, Vec<Warning>), ApiError> {
    let all = store::messages(pool, id).await.map_err(failed)?;
    let last = all.last().cloned().ok_or_else(|| ApiError::NotFound(format!("no warning {id}")))?;
    if last.msg_type == MsgType::Cancel {
        return Err(ApiError::Conflict(format!("warning {id} is cancelled")));
    }
    if last.expires <= Utc::now() {
        return Err(ApiError::Conflict(format!("warning {id} has expired; issue a new one")));
    }
    Ok((last, all))
}

/// The next message of a warning: every earlier one referenced.
fn next(last: &Warning, all: &[Warning], msg_type: MsgType, by: String) -> Warning {
    Warning {
        identifier: format!("urn:uuid:{}", Uuid::new_v4()),
        sent: now_s(),
        msg_type,
        references: all.iter().map(Warning::as_reference).collect(),
        issued_by: by,
        ..last.clone()
    }
}

/// POST /api/v1/warnings/{id}/update: what is given replaces what the warning said.
/// POST /api/v1/warnings/{id}/update
#[utoipa::path(
    post, path = "/api/v1/warnings/{id}/update", tag = "warnings", operation_id = "update_warning",
    summary = "Update a warning in force (a CAP Update naming the messages before it)",
    description = "Every field optional: what is left out stays.",
    params(("id" = uuid::Uuid, Path, description = "The warning's id")),
    request_body = WarningIn,
    responses(
        (status = 200, description = "The warning as updated", body = super::schemas::Warning),
        (status = 400, description = "`id` not a UUID; a field blank, too long, out of range or unknown", body = super::schemas::BadRequest),
        (status = 404, description = "No such warning, or none issued by this process", body = super::schemas::Error),
        (status = 409, description = "The warning is cancelled or has expired", body = super::schemas::Error),
        (status = 413, description = "A body over 16 KiB", body = super::schemas::BadRequest),
        (status = 503, description = "The database failed", body = super::schemas::Error),
    )
)]
pub async fn update(
    req: HttpRequest,
    body: web::Json<WarningIn>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    let desk = desk(&req)?;
    let id = id_param(&req)?;
    let b = body.into_inner();
    let (last, all) = in_force(&pool, id).await?;
    let mut w = next(&last, &all, MsgType::Update, session::user(&req).username);
    if let Some(v) = &b.event {
        w.event = text("event", v, 100)?;
    }
    if let Some(v) = &b.headline {
        w.headline = text("headline", v, 160)?;
    }
    if let Some(v) = &b.description {
        w.description = text("description", v, 2000)?;
    }
    if let Some(v) = &b.instruction {
        w.instruction = Some(text("instruction", v, 1000)?);
    }
    if let Some(s) = parse_severity(b.severity.as_deref())? {
        w.severity = s;
    }
    if let Some(u) = parse_urgency(b.urgency.as_deref())? {
        w.urgency = u;
    }
    if let Some(t) = b.expires_at {
        w.expires = expires(t, w.sent)?;
    }
    if let Some(a) = &b.area {
        w.area = area(a)?;
    }
    issue(&pool, &desk, w).await
}

/// POST /api/v1/warnings/{id}/cancel: the all-clear, `{}` or `{"reason": "..."}`.
/// POST /api/v1/warnings/{id}/cancel
#[utoipa::path(
    post, path = "/api/v1/warnings/{id}/cancel", tag = "warnings", operation_id = "cancel_warning",
    summary = "Cancel a warning in force (a CAP Cancel)",
    params(("id" = uuid::Uuid, Path, description = "The warning's id")),
    request_body(content = CancelIn, description = "`{}` or `{\"reason\": \"...\"}`"),
    responses(
        (status = 200, description = "The cancelled warning", body = super::schemas::Warning),
        (status = 400, description = "`id` not a UUID; `reason` blank, too long or holding a control character; `body`", body = super::schemas::BadRequest),
        (status = 404, description = "No such warning, or none issued by this process", body = super::schemas::Error),
        (status = 409, description = "The warning is cancelled already or has expired", body = super::schemas::Error),
        (status = 413, description = "A body over 4 KiB", body = super::schemas::BadRequest),
        (status = 503, description = "The database failed", body = super::schemas::Error),
    )
)]
pub async fn cancel(
    req: HttpRequest,
    body: web::Json<CancelIn>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    let desk = desk(&req)?;
    let id = id_param(&req)?;
    let reason = body.reason.as_deref().map(|r| text("reason", r, 500)).transpose()?;
    let (last, all) = in_force(&pool, id).await?;
    let mut w = next(&last, &all, MsgType::Cancel, session::user(&req).username);
    w.description = match reason {
        Some(r) => format!("Cancelled: {r}"),
        None => "Cancelled: the warning no longer applies.".into(),
    };
    w.instruction = None;
    issue(&pool, &desk, w).await
}

/// GET /api/v1/warnings: the newest message of each warning of the last week, newest first.
/// GET /api/v1/warnings
#[utoipa::path(
    get, path = "/api/v1/warnings", tag = "warnings", operation_id = "list_warnings",
    summary = "Warnings with a message in the last week, the latest message of each",
    responses(
        (status = 200, description = "The warnings", body = Vec<super::schemas::Warning>),
        (status = 503, description = "The database failed", body = super::schemas::Error),
    )
)]
pub async fn list(pool: web::Data<PgPool>) -> Result<HttpResponse, ApiError> {
    let now = Utc::now();
    let rows = store::latest(&pool, LIST_DAYS).await.map_err(failed)?;
    let out: Vec<Value> = rows.iter().map(|(w, n)| view(w, Some(*n), now)).collect();
    Ok(HttpResponse::Ok().json(out))
}

/// GET /api/v1/warnings/feed.atom: the messages of the last day and every warning in force.
/// GET /api/v1/warnings/feed.atom
#[utoipa::path(
    get, path = "/api/v1/warnings/feed.atom", tag = "warnings", operation_id = "warnings_feed",
    summary = "The warnings' CAP messages as an Atom feed",
    responses(
        (status = 200, description = "The feed", content_type = "application/atom+xml; charset=utf-8", body = String),
        (status = 404, description = "Area warnings are not issued by this process", body = super::schemas::Error),
        (status = 503, description = "The database failed", body = super::schemas::Error),
    )
)]
pub async fn feed(req: HttpRequest, pool: web::Data<PgPool>) -> Result<HttpResponse, ApiError> {
    let desk = desk(&req)?;
    let messages = store::feed(&pool, FEED_LIMIT).await.map_err(failed)?;
    let updated = messages.first().map(|w| w.sent).unwrap_or_else(now_s);
    let id = format!("tag:kuzet,2026:{}:warnings", desk.sender);
    let doc = cap::atom_feed(
        &cap::Feed {
            id: &id,
            title: &format!("{}: area warnings", desk.sender_name),
            author: &desk.sender_name,
            self_href: "/api/v1/warnings/feed.atom",
            message_href: "/api/v1/warnings/messages/{identifier}",
            updated,
        },
        &messages,
    );
    Ok(HttpResponse::Ok()
        .content_type("application/atom+xml; charset=utf-8")
        .insert_header(("Cache-Control", "private, no-cache"))
        .body(doc))
}

/// GET /api/v1/warnings/messages/{identifier}: one CAP message as it went out.
/// GET /api/v1/warnings/messages/{identifier}
#[utoipa::path(
    get, path = "/api/v1/warnings/messages/{identifier}", tag = "warnings", operation_id = "warning_message",
    summary = "One CAP 1.2 message",
    params(("identifier" = String, Path, pattern = "^urn:uuid:[0-9a-fA-F-]{36}$", description = "`urn:uuid:UUID`")),
    responses(
        (status = 200, description = "The message", content_type = "application/cap+xml; charset=utf-8", body = String),
        (status = 400, description = "`identifier` not `urn:uuid:UUID`", body = super::schemas::BadRequest),
        (status = 404, description = "No such message", body = super::schemas::Error),
        (status = 503, description = "The database failed", body = super::schemas::Error),
    )
)]
pub async fn message(req: HttpRequest, pool: web::Data<PgPool>) -> Result<HttpResponse, ApiError> {
    let raw = req.match_info().get("identifier").unwrap_or_default();
    let ok = raw.strip_prefix("urn:uuid:").is_some_and(|u| Uuid::parse_str(u).is_ok());
    if !ok {
        return Err(ApiError::bad("identifier", format!("{} is not urn:uuid:UUID", crate::text::echo(raw))));
    }
    match store::xml(&pool, raw).await.map_err(failed)? {
        Some(x) => Ok(HttpResponse::Ok()
            .content_type("application/cap+xml; charset=utf-8")
            .insert_header(("Cache-Control", "private, no-cache"))
            .body(x)),
        None => Err(ApiError::NotFound(format!("no warning message {raw}"))),
    }
}
