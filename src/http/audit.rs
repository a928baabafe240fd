//! The audit log for oversight, read-only: its rows in order, and whether the hash chain is
//! intact. Reading it is itself audited.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::postgres::PgPool;

use super::{params, session, ApiError};
use crate::auth::Role;

const MAX_LIMIT: i64 = 1000;
/// Audit actions only oversight reads: custodial cameras' integrity alerts.
const OVERSIGHT_ONLY: &[&str] = &["camera.integrity"];

fn int(
    q: &HashMap<String, String>,
    name: &str,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, ApiError> {
    match q.get(name) {
        None => Ok(default),
        Some(v) => v.parse::<i64>().ok().filter(|n| range.contains(n)).ok_or_else(|| {
            ApiError::bad(name, format!("an integer from {} to {}", range.start(), range.end()))
        }),
    }
}

/// GET /api/v1/audit?after=SEQ&limit=N&action=NAME: rows with a `seq` above `after`, oldest
/// first; `next_after` is where the next page starts.
#[utoipa::path(
    get, path = "/api/v1/audit", tag = "audit", operation_id = "list_audit",
    summary = "The audit log's rows, oldest first",
    description = "Rows with a `seq` above `after`. A supervisor's page leaves custodial cameras' \
        alerts (`camera.integrity`) out and counts them in `withheld`. Every read is audited \
        (`audit.read`).",
    params(
        ("after" = Option<i64>, Query, minimum = 0, description = "Rows after this `seq` (default 0)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "At most this many (default 100)"),
        ("action" = Option<String>, Query, description = "Only rows of this action, e.g. `watchlist.enroll`"),
    ),
    responses(
        (status = 200, description = "A page of the log", body = super::schemas::AuditPage),
        (status = 400, description = "A parameter out of range or unknown", body = super::schemas::BadRequest),
        (status = 503, description = "The database failed", body = super::schemas::Error),
    )
)]
pub async fn list(req: HttpRequest, pool: web::Data<PgPool>) -> Result<HttpResponse, ApiError> {
    let q = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map_err(|_| ApiError::bad("query string", "cannot be decoded".into()))?
        .into_inner();
    if let Some(k) = q.keys().find(|k| !["after", "limit", "action"].contains(&k.as_str())) {
        return Err(ApiError::bad(k, "unknown parameter (after, limit, action)".into()));
    }
    let after = int(&q, "after", 0, 0..=i64::MAX)?;
    let limit = int(&q, "limit", 100, 1..=MAX_LIMIT)?;
    let action = q.get("action").cloned();
    // PostgreSQL text holds no NUL: refused here, not a database error (503).
    if let Some(a) = &action {
        params::text("action", a)?;
    }
    let user = session::user(&req);
    // Custodial cameras' tampering is oversight's business: watching the police is not left to
    // the police. Anyone else reads the log without those rows (and is told how many).
    let withheld_actions: &[&str] = if user.role == Role::Oversight { &[] } else { OVERSIGHT_ONLY };
    type Row = (i64, DateTime<Utc>, String, String, Option<String>, Value, String);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT seq, at, actor, action, subject, details, encode(hash, 'hex') FROM audit_log
         WHERE seq > $1 AND ($3::text IS NULL OR action = $3) ORDER BY seq LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .bind(&action)
    .fetch_all(pool.get_ref())
    .await?;
    let next_after = rows.last().map(|r| r.0);
    let before = rows.len();
    let rows: Vec<Row> = rows.into_iter().filter(|r| !withheld_actions.contains(&r.3.as_str())).collect();
    let withheld = before - rows.len();
    sqlx::query("SELECT audit_append($1, 'audit.read', NULL, $2)")
        .bind(format!("user:{}", user.username))
        .bind(json!({"after": after, "limit": limit, "action": action, "rows": rows.len()}))
        .execute(pool.get_ref())
        .await?;
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|(seq, at, actor, action, subject, details, hash)| {
            json!({"seq": seq, "at": at, "actor": actor, "action": action, "subject": subject,
                   "details": details, "hash": hash})
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"rows": rows, "next_after": next_after, "withheld": withheld})))
}

/// GET /api/v1/audit/verify: the whole chain recomputed, as `kuzet audit verify` does.
#[utoipa::path(
    get, path = "/api/v1/audit/verify", tag = "audit", operation_id = "verify_audit",
    summary = "Whether the audit log's hash chain is intact",
    description = "Recomputes the whole chain in one consistent snapshot of the database, as \
        `kuzet audit verify` does.",
    responses(
        (status = 200, description = "The chain's state", body = super::schemas::AuditVerify),
        (status = 503, description = "The database failed", body = super::schemas::Error),
    )
)]
pub async fn verify(pool: web::Data<PgPool>) -> Result<HttpResponse, ApiError> {
    let v = crate::store::audit::verify(pool.get_ref())
        .await
        .map_err(|e| ApiError::Unavailable(format!("{e:#}")))?;
    Ok(HttpResponse::Ok().json(match v.first_break {
        None => json!({"rows": v.rows, "intact": true}),
        Some(b) => {
            json!({"rows": v.rows, "intact": false, "first_break": {"seq": b.seq, "reason": b.to_string()}})
        }
    }))
}
