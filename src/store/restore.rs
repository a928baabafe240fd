//! What kuzet picks up from the record when it starts: open incidents with their pending
//! offers and assigned units, alarms whose incident was never recorded, recent alarms (so a
//! redelivered one is not a new incident), units' last positions, and cameras' open alerts.

use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use kuzet_actors::geo::GeoPoint;
use kuzet_actors::ids::{AlarmId, ButtonId, IncidentId, UnitId};
use kuzet_actors::incident::{IncidentSnapshot, Raiser, RestoredIncident};
use kuzet_actors::model::{AckState, AlarmKind, UnitStatus};
use kuzet_actors::outbound::{Audience, DispatchState, IntegrityAlert};
use kuzet_actors::registry::{OrphanAlarm, Restored};
use kuzet_actors::spec::Devices;
use sqlx::postgres::PgPool;
use sqlx::Row;

/// Reads what to restore; also returns, per open incident, how many timeline entries are
/// already recorded (for the writer).
pub async fn load(
    pool: &PgPool,
    position_max_age: Duration,
) -> anyhow::Result<(Restored, Vec<(IncidentId, usize)>)> {
    let mut r = Restored::default();
    let mut written = Vec::new();

    let rows = sqlx::query(
        "SELECT id, snapshot::text AS snapshot, dispatch::text AS dispatch FROM incidents
         WHERE state NOT IN ('closed', 'cancelled') ORDER BY opened_at",
    )
    .fetch_all(pool)
    .await
    .context("cannot read open incidents")?;
    for row in rows {
        let id: uuid::Uuid = row.get("id");
        let snapshot: Option<String> = row.get("snapshot");
        let dispatch: Option<String> = row.get("dispatch");
        let parsed =
            snapshot.zip(dispatch).ok_or_else(|| anyhow::anyhow!("no state recorded")).and_then(|(s, d)| {
                let snapshot: IncidentSnapshot = serde_json::from_str(&s)?;
                let state: DispatchState = serde_json::from_str(&d)?;
                Ok((snapshot, state))
            });
        match parsed {
            Ok((snapshot, state)) => {
                written.push((snapshot.incident_id, snapshot.timeline.len()));
                r.incidents.push(RestoredIncident { snapshot, state });
            }
            Err(e) => tracing::error!(incident_id = %id, error = %e,
                "open incident cannot be restored: a dispatcher must take it over"),
        }
    }

    // Alarms whose incident was never recorded are opened again only within a day: an older
    // one is reported, not dispatched a day late.
    let rows = sqlx::query(
        "SELECT a.alarm_id, a.button_id, a.kind, a.received_at, a.incident_id, d.room
         FROM alarms a LEFT JOIN devices d ON d.id = a.button_id
         WHERE a.action = 'raise' AND a.incident_id IS NOT NULL
           AND a.received_at > now() - interval '1 day'
           AND NOT EXISTS (SELECT 1 FROM incidents i WHERE i.id = a.incident_id)
           AND NOT EXISTS (SELECT 1 FROM alarms c WHERE c.alarm_id = a.alarm_id AND c.action = 'cancel')
         ORDER BY a.received_at",
    )
    .fetch_all(pool)
    .await
    .context("cannot read alarms without an incident")?;
    for row in rows {
        let button: String = row.get("button_id");
        let Ok(button) = ButtonId::parse(&button) else { continue };
        let kind: Option<String> = row.get("kind");
        let kind = kind
            .and_then(|k| serde_json::from_value::<AlarmKind>(serde_json::Value::String(k)).ok())
            .unwrap_or_default();
        r.orphans.push(OrphanAlarm {
            incident_id: IncidentId(row.get("incident_id")),
            raiser: Raiser {
                button,
                alarm_id: AlarmId(row.get("alarm_id")),
                room: row.get("room"),
                kind,
                withdrawn: false,
            },
            received_at: row.get("received_at"),
        });
    }

    // An hour of alarms is far longer than any broker redelivery after a restart.
    let rows = sqlx::query(
        "SELECT a.button_id, a.alarm_id, a.incident_id, i.state FROM alarms a
         JOIN incidents i ON i.id = a.incident_id AND i.state IN ('closed', 'cancelled')
         WHERE a.action = 'raise' AND a.received_at > now() - interval '1 hour'
         ORDER BY a.received_at",
    )
    .fetch_all(pool)
    .await
    .context("cannot read recent alarms")?;
    for row in rows {
        let button: String = row.get("button_id");
        let Ok(button) = ButtonId::parse(&button) else { continue };
        let state: String = row.get("state");
        let ended = if state == "cancelled" { AckState::Cancelled } else { AckState::Cleared };
        r.recent_alarms.push((
            button,
            AlarmId(row.get("alarm_id")),
            IncidentId(row.get("incident_id")),
            ended,
        ));
    }

    let rows = sqlx::query(
        "SELECT DISTINCT ON (unit_id) unit_id, at, ST_Y(position::geometry) AS lat, ST_X(position::geometry) AS lon
         FROM unit_positions WHERE at > now() - make_interval(secs => $1)
         ORDER BY unit_id, at DESC",
    )
    .bind(position_max_age.as_secs_f64())
    .fetch_all(pool)
    .await
    .context("cannot read units' last positions")?;
    for row in rows {
        let unit: String = row.get("unit_id");
        let (Ok(unit), Ok(point)) = (UnitId::parse(&unit), GeoPoint::new(row.get("lat"), row.get("lon")))
        else {
            continue;
        };
        let at: DateTime<Utc> = row.get("at");
        r.positions.push((unit, point, at));
    }

    let rows = sqlx::query("SELECT unit_id, status, at FROM unit_status")
        .fetch_all(pool)
        .await
        .context("cannot read units' statuses")?;
    for row in rows {
        let unit: String = row.get("unit_id");
        let status: String = row.get("status");
        let (Ok(unit), Ok(status)) =
            (UnitId::parse(&unit), serde_json::from_value::<UnitStatus>(serde_json::Value::String(status)))
        else {
            continue;
        };
        r.statuses.push((unit, status, row.get("at")));
    }
    Ok((r, written))
}

/// Each registered camera's latest alert, where that is not `ok`. A camera no longer in the
/// registry is left out: nothing would ever close its alert.
pub async fn open_camera_alerts(pool: &PgPool, devices: &Devices) -> anyhow::Result<Vec<IntegrityAlert>> {
    let rows = sqlx::query(
        "SELECT * FROM (SELECT DISTINCT ON (camera_id) camera_id, at, state, detail, audience, custodial
                        FROM camera_alerts ORDER BY camera_id, at DESC) latest
         WHERE state <> 'ok'",
    )
    .fetch_all(pool)
    .await
    .context("cannot read cameras' latest alerts")?;
    let mut open = Vec::new();
    for row in rows {
        let camera: String = row.get("camera_id");
        let Some(spec) = devices.cameras.iter().find(|c| c.id.as_str() == camera) else { continue };
        let audience: String = row.get("audience");
        open.push(IntegrityAlert {
            camera: spec.id.clone(),
            state: row.get("state"),
            detail: row.get("detail"),
            at: row.get("at"),
            audience: if audience == "oversight" { Audience::Oversight } else { Audience::Dispatch },
            custodial: row.get("custodial"),
            site: spec.site.clone(),
            location: spec.location,
        });
    }
    Ok(open)
}
