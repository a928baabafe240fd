//! Area warnings in the database: every CAP message as it went out (audited in the same
//! transaction), the newest of each warning, and the recent ones for the Atom feed.

use chrono::{DateTime, Utc};
use kuzet_actors::geo::GeoPoint;
use kuzet_actors::warning::{Area, MsgType, Reference, Severity, Shape, Urgency, Warning};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::postgres::PgPool;
use uuid::Uuid;

/// What a message says, as kept in `warnings.body` and read back by the API.
#[derive(Debug, Serialize, Deserialize)]
struct Body {
    sender: String,
    sender_name: String,
    references: Vec<(String, String, DateTime<Utc>)>,
    category: String,
    event: String,
    urgency: String,
    severity: String,
    description: String,
    instruction: Option<String>,
    area_description: String,
    /// [lat, lon] pairs: one with `radius_m` for a circle, else a closed polygon.
    points: Vec<[f64; 2]>,
    radius_m: Option<f64>,
}

fn body(w: &Warning) -> Body {
    let (points, radius_m) = match &w.area.shape {
        Shape::Circle { centre, radius_m } => (vec![[centre.lat(), centre.lon()]], Some(*radius_m)),
        Shape::Polygon(p) => (p.iter().map(|g| [g.lat(), g.lon()]).collect(), None),
    };
    Body {
        sender: w.sender.clone(),
        sender_name: w.sender_name.clone(),
        references: w.references.iter().map(|r| (r.sender.clone(), r.identifier.clone(), r.sent)).collect(),
        category: w.category.to_owned(),
        event: w.event.clone(),
        urgency: w.urgency.as_str().to_owned(),
        severity: w.severity.as_str().to_owned(),
        description: w.description.clone(),
        instruction: w.instruction.clone(),
        area_description: w.area.description.clone(),
        points,
        radius_m,
    }
}

type Row = (String, Uuid, String, DateTime<Utc>, DateTime<Utc>, String, serde_json::Value, String);

fn warning(row: Row) -> anyhow::Result<Warning> {
    let (identifier, warning_id, msg_type, sent, expires, headline, body, issued_by) = row;
    let b: Body = serde_json::from_value(body)?;
    let point = |p: &[f64; 2]| GeoPoint::new(p[0], p[1]).map_err(|e| anyhow::anyhow!("{e}"));
    let shape = match b.radius_m {
        Some(radius_m) => Shape::Circle {
            centre: point(b.points.first().ok_or_else(|| anyhow::anyhow!("a circle without a centre"))?)?,
            radius_m,
        },
        None => Shape::Polygon(b.points.iter().map(point).collect::<anyhow::Result<_>>()?),
    };
    Ok(Warning {
        identifier,
        warning_id,
        sender: b.sender,
        sent,
        msg_type: match msg_type.as_str() {
            "Alert" => MsgType::Alert,
            "Update" => MsgType::Update,
            _ => MsgType::Cancel,
        },
        references: b
            .references
            .into_iter()
            .map(|(sender, identifier, sent)| Reference { sender, identifier, sent })
            .collect(),
        // Police warnings are Security; kept as a field for other kinds later.
        category: if b.category == "Safety" { "Safety" } else { "Security" },
        event: b.event,
        urgency: Urgency::parse(&b.urgency).unwrap_or(Urgency::Immediate),
        severity: Severity::parse(&b.severity).unwrap_or(Severity::Severe),
        headline,
        description: b.description,
        instruction: b.instruction,
        expires,
        area: Area { description: b.area_description, shape },
        sender_name: b.sender_name,
        issued_by,
    })
}

const COLUMNS: &str = "identifier, warning_id, msg_type, sent, expires, headline, body, issued_by";

/// Writes a message as it goes out, and audits it (`warning.alert`, `warning.update`,
/// `warning.cancel`), in one transaction.
pub async fn insert(pool: &PgPool, w: &Warning, xml: &str) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO warnings (identifier, warning_id, msg_type, sent, expires, headline, body, xml, issued_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&w.identifier)
    .bind(w.warning_id)
    .bind(w.msg_type.as_str())
    .bind(w.sent)
    .bind(w.expires)
    .bind(&w.headline)
    .bind(serde_json::to_value(body(w))?)
    .bind(xml)
    .bind(&w.issued_by)
    .execute(&mut *tx)
    .await?;
    sqlx::query("SELECT audit_append($1, $2, $3, $4)")
        .bind(format!("user:{}", w.issued_by))
        .bind(format!("warning.{}", w.msg_type.as_str().to_ascii_lowercase()))
        .bind(w.warning_id.to_string())
        .bind(json!({"identifier": w.identifier, "headline": w.headline, "area": w.area.description,
                     "severity": w.severity.as_str(), "expires": w.expires,
                     "references": w.references.len()}))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Every message of a warning, oldest first.
pub async fn messages(pool: &PgPool, warning_id: Uuid) -> anyhow::Result<Vec<Warning>> {
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM warnings WHERE warning_id = $1 ORDER BY seq"
    )))
    .bind(warning_id)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(warning).collect()
}

/// The newest message of each warning sent in the last `days`, newest first, with how many
/// messages the warning has.
pub async fn latest(pool: &PgPool, days: i32) -> anyhow::Result<Vec<(Warning, i64)>> {
    type Counted =
        (String, Uuid, String, DateTime<Utc>, DateTime<Utc>, String, serde_json::Value, String, i64);
    // COLUMNS is a constant: nothing from outside is in the text.
    let rows: Vec<Counted> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS}, n FROM (
             SELECT *, count(*) OVER (PARTITION BY warning_id) AS n,
                    row_number() OVER (PARTITION BY warning_id ORDER BY seq DESC) AS k
             FROM warnings WHERE warning_id IN (
                 SELECT warning_id FROM warnings WHERE sent > now() - make_interval(days => $1))) w
         WHERE k = 1 ORDER BY seq DESC"
    )))
    .bind(days)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(|(a, b, c, d, e, f, g, h, n)| Ok((warning((a, b, c, d, e, f, g, h))?, n))).collect()
}

/// Messages for the feed: those sent in the last day, and the newest of every warning still
/// in force; newest first, at most `limit`.
pub async fn feed(pool: &PgPool, limit: i64) -> anyhow::Result<Vec<Warning>> {
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM warnings w
         WHERE sent > now() - interval '1 day'
            OR (expires > now() AND msg_type <> 'Cancel'
                AND seq = (SELECT max(seq) FROM warnings x WHERE x.warning_id = w.warning_id))
         ORDER BY seq DESC LIMIT $1"
    )))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(warning).collect()
}

/// One message as it went out.
pub async fn xml(pool: &PgPool, identifier: &str) -> anyhow::Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT xml FROM warnings WHERE identifier = $1")
        .bind(identifier)
        .fetch_optional(pool)
        .await?)
}
