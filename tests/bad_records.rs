//! A row the database refuses takes nothing else with it: the writer writes the rest of its
//! batch, sets the refused row aside in `rejected-<id>.json`, and the waiters complete (real
//! PostGIS, the writer started on its own). And text that would be refused does not get that
//! far: the API answers 400 naming the field.

mod common;

use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use common::process::count;
use common::*;
use kuzet::store::rows::{AuditRow, Batch, PositionRow};
use kuzet::store::spool::Spool;
use kuzet::store::writer::{self, WriterConfig, WriterHandle};
use kuzet_actors::dispatch::Dispatch;
use kuzet_actors::ids::{ButtonId, IncidentId, SiteId, UnitId};
use kuzet_actors::incident::IncidentSnapshot;
use kuzet_actors::model::{IncidentKind, IncidentState, Priority};
use kuzet_actors::outbound::{DispatchState, IncidentRecord, Journal, Recorded};
use kuzet_actors::snapshot::TimelineEntry;
use kuzet_actors::subject::{SiteRef, Subject};
use sqlx::PgPool;

const REFUSED: &str = "refused by the test";

/// A fresh database with the schema, and a writer on it recording to `spool`.
async fn database() -> (String, PgPool) {
    let url = fresh_database().await;
    let pool = kuzet::store::connect(&url).await.expect("schema");
    (url, pool)
}

async fn start_writer(url: &str, spool: &Path) -> WriterHandle {
    let config =
        WriterConfig { url: url.to_owned(), spool_dir: spool.to_owned(), batch_max: 1000, queue: 1024 };
    writer::start(config).await.expect("writer starts")
}

/// The batches set aside in `dir`.
fn rejected(dir: &Path) -> Vec<Batch> {
    std::fs::read_dir(dir)
        .expect("spool folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("rejected-")))
        .map(|p| serde_json::from_slice(&std::fs::read(&p).expect("readable")).expect("a batch"))
        .collect()
}

/// `school-1`, which incidents at a site refer to.
async fn add_school(pool: &PgPool) {
    sqlx::query(
        "INSERT INTO sites (id, name, kind, location) \
         VALUES ('school-1', 'School 1', 'school', ST_SetSRID(ST_MakePoint(76.945, 43.238), 4326)::geography)",
    )
    .execute(pool)
    .await
    .unwrap();
}

async fn audit_actions(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT action FROM audit_log ORDER BY seq").fetch_all(pool).await.unwrap()
}

async fn assert_chain_intact(pool: &PgPool) {
    let v = kuzet::store::audit::verify(pool).await.expect("verified");
    assert!(v.first_break.is_none(), "{v:?}");
}

fn entry(
    event: &'static str,
    unit: Option<&str>,
    button: Option<&str>,
    detail: Option<&str>,
) -> TimelineEntry {
    TimelineEntry {
        at: Utc::now(),
        t_us: 1,
        event: Cow::Borrowed(event),
        unit: unit.map(|u| UnitId::parse(u).unwrap()),
        button: button.map(|b| ButtonId::parse(b).unwrap()),
        detail: detail.map(str::to_owned),
    }
}

#[actix_rt::test]
async fn a_refused_timeline_entry_leaves_the_rest_of_its_incident_recorded() {
    let (url, pool) = database().await;
    // The database refuses one value, as it would a NUL the codec let through: the row holding
    // it fails, the incident's snapshot (jsonb) and the entry's audit row do not.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER TABLE incident_events ADD CONSTRAINT refused_by_test CHECK (detail IS DISTINCT FROM '{REFUSED}')"
    )))
    .execute(&pool)
    .await
    .unwrap();
    add_school(&pool).await;
    let dir = spool_dir();
    let w = start_writer(&url, &dir).await;

    // One record is one batch: the incident, its four timeline entries and their audit rows.
    let plan = kuzet::settings::Settings::defaults().dispatch.plans[&IncidentKind::SchoolAlarm].clone();
    let id = IncidentId::new_random();
    let snapshot = IncidentSnapshot {
        incident_id: id,
        kind: IncidentKind::SchoolAlarm,
        priority: Priority(1),
        state: IncidentState::Dispatching,
        location: school_location(),
        subject: Subject::Site(SiteRef {
            id: SiteId::parse("school-1").unwrap(),
            name: "School 1".into(),
            room: None,
        }),
        raised_by: Vec::new(),
        opened_at: Utc::now(),
        units: Vec::new(),
        offers: Vec::new(),
        escalated: None,
        timeline: vec![
            entry("alarm_received", None, Some("btn-a"), None),
            entry("offer_published", Some("u1"), None, None),
            entry("reply_decline", Some("u1"), None, Some(REFUSED)),
            entry("offer_published", Some("u2"), None, None),
        ],
        sightings: Vec::new(),
    };
    let (waiter, recorded) = Recorded::pair();
    let record = IncidentRecord {
        snapshot: std::sync::Arc::new(snapshot),
        state: DispatchState { dispatch: Dispatch::new(plan), offer_expiry: Vec::new() },
        waiters: vec![waiter],
    };
    assert!(w.incident(record).is_ok(), "the writer took the record");
    let done = tokio::time::timeout(Duration::from_secs(10), recorded.wait()).await;
    assert_eq!(done, Ok(true), "the record's waiter completed");

    assert_eq!(count(&pool, "SELECT count(*) FROM incidents").await, 1);
    let seqs: Vec<i32> =
        sqlx::query_scalar("SELECT seq FROM incident_events WHERE incident_id = $1 ORDER BY seq")
            .bind(id.0)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(seqs, vec![0, 1, 3], "every entry but the refused one");
    assert_eq!(
        audit_actions(&pool).await,
        vec!["incident.open", "incident.offer", "incident.decline", "incident.offer"],
        "every audit row once, in order"
    );
    assert_chain_intact(&pool).await;
    assert_eq!(count(&pool, "SELECT count(*) FROM writer_batches").await, 1, "one batch, one id");

    let set_aside = rejected(&dir);
    assert_eq!(set_aside.len(), 1, "one file set aside");
    assert_eq!(set_aside[0].rows(), 1, "only the refused row: {:?}", set_aside[0]);
    assert_eq!(set_aside[0].events[0].seq, 2);
    assert_eq!(set_aside[0].events[0].detail.as_deref(), Some(REFUSED));
    assert_eq!(w.stats().rows_rejected.load(Ordering::Relaxed), 1);
    assert_eq!(w.stats().batches_rejected.load(Ordering::Relaxed), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

fn audit(action: &str, subject: Option<&str>) -> AuditRow {
    AuditRow {
        actor: "kuzet".into(),
        action: action.into(),
        subject: subject.map(str::to_owned),
        details: "{}".into(),
    }
}

fn position(unit: &str) -> PositionRow {
    let at = Utc::now();
    PositionRow {
        unit_id: unit.into(),
        at,
        received_at: at,
        lat: 43.2,
        lon: 76.9,
        speed_mps: Some(1.0),
        heading_deg: None,
    }
}

#[actix_rt::test]
async fn a_nul_in_a_spooled_batch_costs_only_its_row() {
    let (url, pool) = database().await;
    let dir = spool_dir();
    // An earlier run spooled two batches; the first holds a NUL, which PostgreSQL text cannot
    // hold (the codec refuses it now; older spools and other paths may still carry one).
    let mut first = Batch::new();
    first.positions.extend([position("u1"), position("u2")]);
    first.audits.extend([
        audit("test.one", None),
        audit("test.two", Some("a\0b")),
        audit("test.three", None),
    ]);
    let mut second = Batch::new();
    second.audits.push(audit("test.four", None));
    let mut spool = Spool::open(&dir).expect("spool");
    spool.append(&first).unwrap();
    spool.append(&second).unwrap();
    drop(spool);

    // The writer writes the spool before it returns.
    let w = start_writer(&url, &dir).await;
    assert_eq!(audit_actions(&pool).await, vec!["test.one", "test.three", "test.four"]);
    assert_chain_intact(&pool).await;
    assert_eq!(count(&pool, "SELECT count(*) FROM unit_positions").await, 2);
    let set_aside = rejected(&dir);
    assert_eq!(set_aside.len(), 1);
    assert_eq!(set_aside[0].id, first.id, "named after the batch it came from");
    assert_eq!(set_aside[0].rows(), 1);
    assert_eq!(set_aside[0].audits[0].subject.as_deref(), Some("a\0b"));
    assert_eq!(std::fs::metadata(dir.join("spool.jsonl")).unwrap().len(), 0, "the spool is emptied");
    assert_eq!(w.stats().rows_rejected.load(Ordering::Relaxed), 1);

    // Written once: the same batches spooled again (a commit whose answer was lost) add nothing.
    drop(w);
    let mut spool = Spool::open(&dir).expect("spool");
    spool.append(&first).unwrap();
    spool.append(&second).unwrap();
    drop(spool);
    let _w = start_writer(&url, &dir).await;
    assert_eq!(audit_actions(&pool).await, vec!["test.one", "test.three", "test.four"]);
    assert_eq!(count(&pool, "SELECT count(*) FROM unit_positions").await, 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_rt::test]
async fn the_api_refuses_control_characters_in_text_fields_by_name() {
    let t = spawn_app(BrokerKind::Embedded, city(&["u1"]), |_| {}).await;
    let base = format!("http://{}", t.app.http_addr().unwrap());
    let token = sign_in_as(t.app.pool().unwrap(), &base, kuzet::auth::Role::Dispatcher).await;
    let incident = uuid::Uuid::new_v4();
    for (reason, refused) in [("a drill", false), ("a\0drill", true), ("a\u{2028}drill", true)] {
        let mut res = client()
            .post(format!("{base}/api/v1/incidents/{incident}/cancel"))
            .bearer_auth(&token)
            .send_json(&serde_json::json!({ "reason": reason }))
            .await
            .expect("answered");
        let body: serde_json::Value = res.json().await.expect("JSON");
        if refused {
            assert_eq!(res.status(), 400, "{reason:?}: {body}");
            assert_eq!(body["parameter"], "reason", "{body}");
        } else {
            assert_eq!(res.status(), 404, "a clean reason reaches the (absent) incident: {body}");
        }
    }
    let mut res = client()
        .post(format!("{base}/api/v1/session"))
        .send_json(&serde_json::json!({"username": "dispatcher\0", "password": "x"}))
        .await
        .expect("answered");
    let body: serde_json::Value = res.json().await.expect("JSON");
    assert_eq!((res.status().as_u16(), &body["parameter"]), (400, &serde_json::json!("username")), "{body}");
}

#[actix_rt::test]
async fn incidents_spooled_before_subjects_were_recorded_get_theirs_from_the_snapshot() {
    let (url, pool) = database().await;
    add_school(&pool).await;
    let dir = spool_dir();
    // Rows as an older kuzet spooled them: no subject fields at all.
    let row = |id: u128, kind: &str, site: Option<&str>, snapshot: serde_json::Value| {
        let mut v = serde_json::json!({
            "id": uuid::Uuid::from_u128(id), "kind": kind, "priority": 1, "state": "dispatching",
            "site_id": site, "lat": 43.238, "lon": 76.945, "opened_at": Utc::now(), "closed_at": null,
            "escalated": null, "snapshot": snapshot.to_string(), "dispatch": "{}", "updated_at": Utc::now(),
        });
        v.as_object_mut().unwrap().retain(|k, _| !k.starts_with("subject"));
        serde_json::from_value::<kuzet::store::rows::IncidentRow>(v).expect("an older row reads")
    };
    let mut batch = Batch::new();
    batch.incidents.push(row(
        1,
        "school_alarm",
        Some("school-1"),
        serde_json::json!({"site": {"id": "school-1"}}),
    ));
    batch.incidents.push(row(
        2,
        "wanted_person",
        None,
        serde_json::json!({"site": null, "wanted": {"person_id": "wp-9", "name": "W"}}),
    ));
    assert!(batch.incidents.iter().all(|r| r.subject_kind.is_none() && r.subject_id.is_none()));
    let mut spool = Spool::open(&dir).expect("spool");
    spool.append(&batch).unwrap();
    drop(spool);

    let _w = start_writer(&url, &dir).await;
    let subjects: Vec<(String, String)> =
        sqlx::query_as("SELECT subject_kind, subject_id FROM incidents ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(subjects, [("site".into(), "school-1".into()), ("person".into(), "wp-9".into())]);
    let _ = std::fs::remove_dir_all(&dir);
}
