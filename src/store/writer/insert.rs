//! A batch's rows into their tables, one multi-row statement per table.

use crate::store::rows::{
    AlarmRow, AuditRow, Batch, CameraAlertRow, EventRow, IncidentRow, PositionRow, SightingRow, UnitStatusRow,
};

/// The rows of `all`, one multi-row statement per table; the order of the tables here is the
/// order `split` keeps.
pub(super) async fn insert_rows(tx: &mut sqlx::PgConnection, all: &Batch) -> Result<(), sqlx::Error> {
    if !all.alarms.is_empty() {
        alarms(tx, &all.alarms).await?;
    }
    if !all.incidents.is_empty() {
        incidents(tx, &all.incidents).await?;
    }
    if !all.events.is_empty() {
        events(tx, &all.events).await?;
    }
    if !all.positions.is_empty() {
        positions(tx, &all.positions).await?;
    }
    if !all.sightings.is_empty() {
        sightings(tx, &all.sightings).await?;
    }
    if !all.camera_alerts.is_empty() {
        camera_alerts(tx, &all.camera_alerts).await?;
    }
    if !all.unit_statuses.is_empty() {
        unit_statuses(tx, &all.unit_statuses).await?;
    }
    if !all.audits.is_empty() {
        audits(tx, &all.audits).await?;
    }
    Ok(())
}

/// Into `alarms`.
async fn alarms(tx: &mut sqlx::PgConnection, a: &[AlarmRow]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO alarms (alarm_id, button_id, action, kind, device_at, received_at, incident_id)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                              $6::timestamptz[], $7::uuid[])
         ON CONFLICT (alarm_id, action) DO NOTHING",
    )
    .bind(a.iter().map(|r| r.alarm_id).collect::<Vec<_>>())
    .bind(a.iter().map(|r| r.button_id.as_str()).collect::<Vec<_>>())
    .bind(a.iter().map(|r| r.action.as_str()).collect::<Vec<_>>())
    .bind(a.iter().map(|r| r.kind.as_deref()).collect::<Vec<_>>())
    .bind(a.iter().map(|r| r.device_at).collect::<Vec<_>>())
    .bind(a.iter().map(|r| r.received_at).collect::<Vec<_>>())
    .bind(a.iter().map(|r| r.incident_id).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Into `incidents`.
async fn incidents(tx: &mut sqlx::PgConnection, i: &[IncidentRow]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO incidents (id, kind, priority, state, site_id, subject_kind, subject_id, location,
                                opened_at, closed_at, escalated, snapshot, dispatch, updated_at)
         SELECT u.id, u.kind, u.priority, u.state, u.site_id,
                COALESCE(u.subject_kind, CASE WHEN jsonb_typeof(u.snapshot::jsonb -> 'wanted') = 'object'
                                              THEN 'person' WHEN u.site_id IS NOT NULL THEN 'site' END),
                COALESCE(u.subject_id, u.snapshot::jsonb -> 'wanted' ->> 'person_id', u.site_id),
                ST_SetSRID(ST_MakePoint(u.lon, u.lat), 4326)::geography, u.opened_at, u.closed_at,
                u.escalated, u.snapshot::jsonb, u.dispatch::jsonb, u.updated_at
         FROM UNNEST($1::uuid[], $2::text[], $3::int2[], $4::text[], $5::text[], $6::float8[],
                     $7::float8[], $8::timestamptz[], $9::timestamptz[], $10::text[], $11::text[],
                     $12::text[], $13::timestamptz[], $14::text[], $15::text[])
              AS u(id, kind, priority, state, site_id, lat, lon, opened_at, closed_at, escalated,
                   snapshot, dispatch, updated_at, subject_kind, subject_id)
         ON CONFLICT (id) DO UPDATE SET
             location = EXCLUDED.location,
             priority = EXCLUDED.priority, state = EXCLUDED.state, closed_at = EXCLUDED.closed_at,
             escalated = EXCLUDED.escalated, snapshot = EXCLUDED.snapshot,
             dispatch = EXCLUDED.dispatch, updated_at = EXCLUDED.updated_at",
    )
    .bind(i.iter().map(|r| r.id).collect::<Vec<_>>())
    .bind(i.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>())
    .bind(i.iter().map(|r| r.priority).collect::<Vec<_>>())
    .bind(i.iter().map(|r| r.state.as_str()).collect::<Vec<_>>())
    .bind(i.iter().map(|r| r.site_id.as_deref()).collect::<Vec<_>>())
    .bind(i.iter().map(|r| r.lat).collect::<Vec<_>>())
    .bind(i.iter().map(|r| r.lon).collect::<Vec<_>>())
    .bind(i.iter().map(|r| r.opened_at).collect::<Vec<_>>())
    .bind(i.iter().map(|r| r.closed_at).collect::<Vec<_>>())
    .bind(i.iter().map(|r| r.escalated.as_deref()).collect::<Vec<_>>())
    .bind(i.iter().map(|r| r.snapshot.as_str()).collect::<Vec<_>>())
    .bind(i.iter().map(|r| r.dispatch.as_str()).collect::<Vec<_>>())
    .bind(i.iter().map(|r| r.updated_at).collect::<Vec<_>>())
    .bind(i.iter().map(|r| r.subject_kind.as_deref()).collect::<Vec<_>>())
    .bind(i.iter().map(|r| r.subject_id.as_deref()).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Into `incident_events`.
async fn events(tx: &mut sqlx::PgConnection, e: &[EventRow]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO incident_events (incident_id, seq, at, t_us, event, unit_id, button_id, detail)
         SELECT * FROM UNNEST($1::uuid[], $2::int4[], $3::timestamptz[], $4::int8[], $5::text[],
                              $6::text[], $7::text[], $8::text[])
         ON CONFLICT (incident_id, seq) DO NOTHING",
    )
    .bind(e.iter().map(|r| r.incident_id).collect::<Vec<_>>())
    .bind(e.iter().map(|r| r.seq).collect::<Vec<_>>())
    .bind(e.iter().map(|r| r.at).collect::<Vec<_>>())
    .bind(e.iter().map(|r| r.t_us).collect::<Vec<_>>())
    .bind(e.iter().map(|r| r.event.as_str()).collect::<Vec<_>>())
    .bind(e.iter().map(|r| r.unit_id.as_deref()).collect::<Vec<_>>())
    .bind(e.iter().map(|r| r.button_id.as_deref()).collect::<Vec<_>>())
    .bind(e.iter().map(|r| r.detail.as_deref()).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Into `unit_positions`.
async fn positions(tx: &mut sqlx::PgConnection, p: &[PositionRow]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO unit_positions (unit_id, at, received_at, position, speed_mps, heading_deg)
         SELECT u.unit_id, u.at, u.received_at, ST_SetSRID(ST_MakePoint(u.lon, u.lat), 4326)::geography,
                u.speed, u.heading
         FROM UNNEST($1::text[], $2::timestamptz[], $3::timestamptz[], $4::float8[], $5::float8[],
                     $6::float4[], $7::float4[]) AS u(unit_id, at, received_at, lat, lon, speed, heading)
         ON CONFLICT (unit_id, at) DO NOTHING",
    )
    .bind(p.iter().map(|r| r.unit_id.as_str()).collect::<Vec<_>>())
    .bind(p.iter().map(|r| r.at).collect::<Vec<_>>())
    .bind(p.iter().map(|r| r.received_at).collect::<Vec<_>>())
    .bind(p.iter().map(|r| r.lat).collect::<Vec<_>>())
    .bind(p.iter().map(|r| r.lon).collect::<Vec<_>>())
    .bind(p.iter().map(|r| r.speed_mps).collect::<Vec<_>>())
    .bind(p.iter().map(|r| r.heading_deg).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Into `sightings (and a review's embedding)`.
async fn sightings(tx: &mut sqlx::PgConnection, v: &[SightingRow]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sightings (id, decision, person_id, camera_id, at, score, location, evidence,
                                incident_id, review_id)
         SELECT u.id, u.decision, u.person_id, u.camera_id, u.at, u.score,
                ST_SetSRID(ST_MakePoint(u.lon, u.lat), 4326)::geography, u.evidence, u.incident_id, u.review_id
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::float4[],
                     $7::float8[], $8::float8[], $9::bool[], $10::uuid[], $11::uuid[])
              AS u(id, decision, person_id, camera_id, at, score, lat, lon, evidence, incident_id, review_id)
         ON CONFLICT (id, decision) DO NOTHING",
    )
    .bind(v.iter().map(|r| r.id).collect::<Vec<_>>())
    .bind(v.iter().map(|r| r.decision.as_str()).collect::<Vec<_>>())
    .bind(v.iter().map(|r| r.person_id.as_str()).collect::<Vec<_>>())
    .bind(v.iter().map(|r| r.camera_id.as_str()).collect::<Vec<_>>())
    .bind(v.iter().map(|r| r.at).collect::<Vec<_>>())
    .bind(v.iter().map(|r| r.score).collect::<Vec<_>>())
    .bind(v.iter().map(|r| r.lat).collect::<Vec<_>>())
    .bind(v.iter().map(|r| r.lon).collect::<Vec<_>>())
    .bind(v.iter().map(|r| r.evidence).collect::<Vec<_>>())
    .bind(v.iter().map(|r| r.incident_id).collect::<Vec<_>>())
    .bind(v.iter().map(|r| r.review_id).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    // A decided review's faces are not kept: the embedding was only for a rejection
    // (which has left its negative example by now).
    for r in v.iter().filter(|r| matches!(r.decision.as_str(), "confirmed" | "rejected")) {
        sqlx::query("UPDATE sightings SET embedding = NULL WHERE id = $1 AND decision = 'review'")
            .bind(r.id)
            .execute(&mut *tx)
            .await?;
    }
    // Review sightings only, and few: one statement each.
    for r in v.iter().filter(|r| r.embedding.is_some()) {
        sqlx::query("UPDATE sightings SET embedding = $3 WHERE id = $1 AND decision = $2")
            .bind(r.id)
            .bind(r.decision.as_str())
            .bind(r.embedding.as_deref())
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Into `camera_alerts`.
async fn camera_alerts(tx: &mut sqlx::PgConnection, v: &[CameraAlertRow]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO camera_alerts (camera_id, at, state, detail, audience, custodial)
         SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::bool[])
         ON CONFLICT DO NOTHING",
    )
    .bind(v.iter().map(|r| r.camera_id.as_str()).collect::<Vec<_>>())
    .bind(v.iter().map(|r| r.at).collect::<Vec<_>>())
    .bind(v.iter().map(|r| r.state.as_str()).collect::<Vec<_>>())
    .bind(v.iter().map(|r| r.detail.as_deref()).collect::<Vec<_>>())
    .bind(v.iter().map(|r| r.audience.as_str()).collect::<Vec<_>>())
    .bind(v.iter().map(|r| r.custodial).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Into `unit_status`.
async fn unit_statuses(tx: &mut sqlx::PgConnection, u: &[UnitStatusRow]) -> Result<(), sqlx::Error> {
    // A status reported earlier than the recorded one (delivered late) changes nothing.
    sqlx::query(
        "INSERT INTO unit_status (unit_id, status, at, updated_at)
         SELECT u.unit_id, u.status, u.at, now()
         FROM UNNEST($1::text[], $2::text[], $3::timestamptz[]) AS u(unit_id, status, at)
         ON CONFLICT (unit_id) DO UPDATE SET status = EXCLUDED.status, at = EXCLUDED.at,
             updated_at = EXCLUDED.updated_at
         WHERE unit_status.at <= EXCLUDED.at",
    )
    .bind(u.iter().map(|r| r.unit_id.as_str()).collect::<Vec<_>>())
    .bind(u.iter().map(|r| r.status.as_str()).collect::<Vec<_>>())
    .bind(u.iter().map(|r| r.at).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Into `audit_log`.
async fn audits(tx: &mut sqlx::PgConnection, a: &[AuditRow]) -> Result<(), sqlx::Error> {
    // WITH ORDINALITY keeps the entries in the order they happened along the chain.
    sqlx::query(
        "INSERT INTO audit_log (actor, action, subject, details)
         SELECT u.actor, u.action, u.subject, u.details::jsonb
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY
              AS u(actor, action, subject, details, n)
         ORDER BY u.n",
    )
    .bind(a.iter().map(|r| r.actor.as_str()).collect::<Vec<_>>())
    .bind(a.iter().map(|r| r.action.as_str()).collect::<Vec<_>>())
    .bind(a.iter().map(|r| r.subject.as_deref()).collect::<Vec<_>>())
    .bind(a.iter().map(|r| r.details.as_str()).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}
