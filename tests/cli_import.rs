//! `kuzet import devices` as an operator runs it: a bad file is refused naming the feature and
//! leaves the database as it was; a good one is imported and kuzet then runs on it.

mod common;

use std::process::Command;

use common::fresh_database;

fn import(file: &str, db: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kuzet"))
        .args(["import", "devices", file, "--database-url", db])
        .output()
        .expect("kuzet runs")
}

#[actix_rt::test]
async fn a_bad_feature_is_named_and_nothing_is_imported_then_a_good_file_is() {
    let db = fresh_database().await;
    let bad = import("tests/fixtures/devices/bad-feature-3.geojson", &db);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("feature 3:") && stderr.contains("nothing was imported"), "{stderr}");
    let pool = kuzet::store::connect(&db).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT (SELECT count(*) FROM sites) + (SELECT count(*) FROM devices)")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0, "the good features before the bad one were not imported either");

    let good = import("tests/fixtures/devices/good.geojson", &db);
    let stdout = String::from_utf8_lossy(&good.stdout);
    assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
    assert!(stdout.starts_with("imported "), "{stdout}");
    // Off a terminal, long work says how far it got in log lines (kuzet_progress).
    let stderr = String::from_utf8_lossy(&good.stderr);
    assert!(
        stderr.contains("importing sites: started,") && stderr.contains(" features (100%), "),
        "{stderr}"
    );
    let devices = kuzet::store::devices::load(&pool).await.unwrap();
    assert!(!devices.sites.is_empty() && !devices.units.is_empty(), "{devices:?}");
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'devices.import'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(audited, 1);
}
