//! The audit log in a real PostGIS: append-only by the database's own rules, and any row
//! forged with those rules switched off is found by `kuzet audit verify`.

mod common;

use kuzet::store::{self, audit};
use serde_json::json;
use sqlx::postgres::PgPool;

async fn filled(n: usize) -> (PgPool, String) {
    let url = common::fresh_database().await;
    let pool = store::connect(&url).await.expect("schema applies");
    for i in 0..n {
        let seq = audit::append(
            &pool,
            "dispatcher:aigerim",
            "incident.assign",
            Some(&format!("incident-{i}")),
            &json!({"unit": "unit-0001", "n": i}),
        )
        .await
        .expect("append");
        assert_eq!(seq, i as i64 + 1);
    }
    (pool, url)
}

/// Runs SQL as a superuser with the log's protections off, as an intruder with database
/// access would.
async fn forge(pool: &PgPool, sql: &str) {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica").execute(&mut *tx).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
}

#[actix_rt::test]
async fn an_intact_log_verifies() {
    let (pool, _) = filled(5).await;
    let v = audit::verify(&pool).await.unwrap();
    assert_eq!(v, audit::Verification { rows: 5, first_break: None });
}

#[actix_rt::test]
async fn entries_appended_while_verifying_do_not_look_like_a_cut() {
    let (pool, _) = filled(50).await;
    let writer = pool.clone();
    let appends = tokio::spawn(async move {
        for i in 0..300 {
            audit::append(&writer, "user:a", "audit.read", None, &json!({"i": i})).await.unwrap();
        }
    });
    let mut verified = 0;
    while !appends.is_finished() {
        let v = audit::verify(&pool).await.unwrap();
        assert!(v.first_break.is_none(), "a growing log verified as broken: {:?}", v.first_break);
        verified += 1;
    }
    appends.await.unwrap();
    assert!(verified > 1, "verified during the appends");
    assert_eq!(audit::verify(&pool).await.unwrap().rows, 350);
}

#[actix_rt::test]
async fn the_database_refuses_to_edit_or_delete_audit_rows() {
    let (pool, _) = filled(2).await;
    for sql in [
        "UPDATE audit_log SET actor = 'someone-else' WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 2",
        "TRUNCATE audit_log",
    ] {
        let err = sqlx::query(sql).execute(&pool).await.expect_err(sql).to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(audit::verify(&pool).await.unwrap().rows, 2);
}

#[actix_rt::test]
async fn an_edited_row_is_found() {
    let (pool, _) = filled(4).await;
    forge(&pool, "UPDATE audit_log SET details = '{\"unit\": \"unit-0666\"}' WHERE seq = 3").await;
    let b = audit::verify(&pool).await.unwrap().first_break.expect("forgery found");
    assert_eq!(b, audit::Break { seq: 3, reason: audit::BreakReason::Edited });
}

#[actix_rt::test]
async fn a_removed_row_is_found() {
    let (pool, _) = filled(4).await;
    forge(&pool, "DELETE FROM audit_log WHERE seq = 2").await;
    let b = audit::verify(&pool).await.unwrap().first_break.expect("removal found");
    assert_eq!(b, audit::Break { seq: 3, reason: audit::BreakReason::Gap { expected: 2 } });
}

#[actix_rt::test]
async fn a_row_rehashed_in_place_still_breaks_the_chain_after_it() {
    let (pool, _) = filled(4).await;
    // The intruder edits row 2 and recomputes its hash so it verifies on its own: row 3 still
    // names the old hash as its predecessor.
    forge(
        &pool,
        "UPDATE audit_log SET action = 'incident.cancel', hash = digest(prev_hash || convert_to(audit_canonical(seq, at, actor, 'incident.cancel', subject, details), 'UTF8'), 'sha256') WHERE seq = 2",
    )
    .await;
    let b = audit::verify(&pool).await.unwrap().first_break.expect("forgery found");
    assert_eq!(b, audit::Break { seq: 3, reason: audit::BreakReason::BrokenLink });
}

#[actix_rt::test]
async fn rows_cut_from_the_end_are_found() {
    let (pool, _) = filled(4).await;
    forge(&pool, "DELETE FROM audit_log WHERE seq >= 3").await;
    let b = audit::verify(&pool).await.unwrap().first_break.expect("cut found");
    assert_eq!(b, audit::Break { seq: 3, reason: audit::BreakReason::TailRemoved });
}

#[actix_rt::test]
async fn the_verify_command_names_the_first_broken_row() {
    let (pool, url) = filled(3).await;
    let run = |url: String| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kuzet"))
            .args(["audit", "verify", "--database-url", &url])
            .output()
            .unwrap()
    };
    let ok = run(url.clone());
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("3 rows, chain intact"));
    forge(&pool, "UPDATE audit_log SET actor = 'nobody' WHERE seq = 2").await;
    let bad = run(url);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stdout).contains("broken at row 2"),
        "{}",
        String::from_utf8_lossy(&bad.stdout)
    );
}
