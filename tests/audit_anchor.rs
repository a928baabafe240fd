//! The audit chain against a database superuser: kuzet serves as a role that may only append
//! to the log (granted by `kuzet migrate`), and signs the chain's head into a checkpoint file
//! and onto MQTT; `kuzet audit verify` with those checkpoints catches a log rewritten and
//! rehashed, or cut short, which the chain alone cannot. Real PostGIS, real Mosquitto, kuzet
//! as a process where its command line is what is tested.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::process::*;
use common::*;
use kuzet::store::checkpoint::{self, Checkpoint};
use serde_json::json;
use sqlx::postgres::PgPool;
use sqlx::Connection as _;

fn kuzet(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_kuzet"))
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .expect("kuzet runs");
    eprintln!(
        "kuzet {}\n{}{}",
        args.first().unwrap_or(&""),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn lines(path: &Path) -> Vec<Checkpoint> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a checkpoint line"))
        .collect()
}

async fn wait_lines(path: &Path, n: usize) {
    wait_until(&format!("{n} checkpoint(s) in {}", path.display()), Duration::from_secs(60), || async {
        lines(path).len() >= n
    })
    .await;
}

async fn head(pool: &PgPool) -> i64 {
    count(pool, "SELECT coalesce(max(seq), 0) FROM audit_log").await
}

/// One kuzet run on `database_url` with its own Mosquitto, registry, key and checkpoint file.
struct Run {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    log: PathBuf,
    mosquitto: kuzet::mosquitto::MosquittoProcess,
}

impl Run {
    fn new(name: &str, database_url: &str, owner_url: Option<&str>) -> Self {
        let devices = city(&["u1"]);
        let mosquitto = mosquitto_with_acl(&devices);
        let dir = tempfile::tempdir().unwrap();
        let registry = dir.path().join("registry.toml");
        std::fs::write(&registry, kuzet::registry_file::to_toml(&devices).unwrap()).unwrap();
        let spool = dir.path().join("spool");
        let (mut env, log) = ProcessEnv {
            name,
            mqtt_port: mosquitto.port,
            database_url,
            spool_dir: &spool,
            registry: &registry,
            http_listen: String::new(),
            offer_timeout_s: 30,
        }
        .build();
        let key = dir.path().join("audit/checkpoint.key");
        env.push(("KUZET_AUDIT__KEY_FILE".into(), key.display().to_string()));
        env.push((
            "KUZET_AUDIT__CHECKPOINT_FILE".into(),
            dir.path().join("audit/checkpoints.jsonl").display().to_string(),
        ));
        // A checkpoint at start, then one a second after each time the log grows.
        env.push(("KUZET_AUDIT__CHECKPOINT_EVERY_S".into(), "1".into()));
        if let Some(owner) = owner_url {
            env.push(("KUZET_DATABASE__OWNER_URL".into(), owner.to_owned()));
        }
        Self { dir, env, log, mosquitto }
    }

    fn checkpoints(&self) -> PathBuf {
        self.dir.path().join("audit/checkpoints.jsonl")
    }

    fn public_key(&self) -> PathBuf {
        self.dir.path().join("audit/checkpoint.pub")
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kuzet audit verify` with this run's checkpoints (or `file` instead).
    fn verify(&self, url: &str, file: Option<&Path>) -> Output {
        let cp = file.map(Path::to_owned).unwrap_or_else(|| self.checkpoints());
        kuzet(&[
            "audit",
            "verify",
            "--database-url",
            url,
            "--checkpoints",
            cp.to_str().unwrap(),
            "--public-key",
            self.public_key().to_str().unwrap(),
        ])
    }
}

/// The checkpoints a client reading `kuzet/v1/audit/checkpoint` on `run`'s broker gets.
async fn subscriber(run: &Run) -> kuzet_tools::sim::DeviceLink {
    kuzet_tools::sim::connect_observer(
        "127.0.0.1",
        run.mosquitto.port,
        "kuzet",
        SERVICE_PASSWORD,
        &[checkpoint::TOPIC.to_owned()],
    )
    .await
    .expect("the service account connects")
}

async fn next_checkpoint(link: &mut kuzet_tools::sim::DeviceLink) -> Checkpoint {
    let (_, v) = tokio::time::timeout(Duration::from_secs(30), link.rx.recv())
        .await
        .expect("a checkpoint arrives")
        .expect("connected");
    serde_json::from_value(v).expect("a checkpoint")
}

/// kuzet as superuser (as the demo runs): the registry's entries at start are checkpointed,
/// then `extra` more entries, appended in one statement, are checkpointed on the next period.
/// kuzet is killed after that. Returns the run, the pool, the url and the two checkpoints' seq.
async fn anchored(name: &str, extra: usize) -> (Run, PgPool, String, i64, i64) {
    let url = fresh_database().await;
    let run = Run::new(name, &url, None);
    let serve = KuzetProcess::start(&run.env, &run.log);
    wait_lines(&run.checkpoints(), 1).await;
    let pool = kuzet::store::connect(&url).await.expect("database");
    let first = lines(&run.checkpoints())[0].seq;
    assert!(first > 0, "the registry's devices were audited before the first checkpoint");
    assert_eq!(head(&pool).await, first, "the checkpoint at start is the head at start");
    // One statement: the head moves once, so the next checkpoint is of all of them.
    sqlx::query(
        "SELECT count(audit_append('dispatcher:aigerim', 'incident.assign', 'incident-7', jsonb_build_object('n', n))) \
         FROM generate_series(1, $1) n",
    )
    .bind(extra as i32)
    .execute(&pool)
    .await
    .unwrap();
    let second = first + extra as i64;
    wait_lines(&run.checkpoints(), 2).await;
    let cps = lines(&run.checkpoints());
    assert_eq!(cps.iter().map(|c| c.seq).collect::<Vec<_>>(), [first, second], "one checkpoint per head");
    // Signed by the key whose public half kuzet wrote beside it.
    let key = checkpoint::read_public_key(&run.public_key()).unwrap();
    assert!(cps.iter().all(|c| c.signed_by(&key)));

    // Published as written, and retained: once the broker has it, a subscriber that comes
    // after kuzet is gone still gets it.
    let mut live = subscriber(&run).await;
    while next_checkpoint(&mut live).await != cps[1] {}
    drop(serve);
    let mut later = subscriber(&run).await;
    assert_eq!(next_checkpoint(&mut later).await, cps[1], "the last checkpoint is retained");

    let out = run.verify(&url, None);
    assert!(out.status.success(), "the intact log verifies against its checkpoints");
    assert!(stdout(&out).contains(&format!("2 signed checkpoints hold, the last at row {second}")));
    (run, pool, url, first, second)
}

/// As a superuser with the triggers off: rewrites row `seq`'s details and recomputes every
/// later row's hash and the head, so that the chain verifies again.
async fn rewrite_and_rehash(url: &str, seq: i64) {
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    let mut tx = c.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica").execute(&mut *tx).await.unwrap();
    sqlx::query("UPDATE audit_log SET details = '{\"unit\": \"nobody\"}' WHERE seq = $1")
        .bind(seq)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "DO $$ DECLARE r record; prev bytea; BEGIN
           FOR r IN SELECT * FROM audit_log WHERE seq >= (SELECT min(seq) FROM audit_log
                      WHERE details = '{\"unit\": \"nobody\"}') ORDER BY seq LOOP
             prev := coalesce((SELECT hash FROM audit_log WHERE seq = r.seq - 1), decode(repeat('00', 32), 'hex'));
             UPDATE audit_log SET prev_hash = prev,
               hash = sha256(prev || convert_to(audit_canonical(r.seq, r.at, r.actor, r.action, r.subject, r.details), 'UTF8'))
             WHERE seq = r.seq;
           END LOOP;
           UPDATE audit_head SET hash = (SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1);
         END $$",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

#[actix_rt::test]
async fn a_rewritten_and_rehashed_log_passes_the_chain_but_not_the_checkpoints() {
    let (run, pool, url, first, second) = anchored("anchor-rewrite", 5).await;
    assert!(
        run.log_text().contains("the audit log can be rewritten by the role kuzet connects as"),
        "kuzet serving as superuser says so"
    );

    let forged = first + 2;
    rewrite_and_rehash(&url, forged).await;
    let details: serde_json::Value = sqlx::query_scalar("SELECT details FROM audit_log WHERE seq = $1")
        .bind(forged)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(details, json!({"unit": "nobody"}), "the row was rewritten");

    let plain = kuzet(&["audit", "verify", "--database-url", &url]);
    assert!(plain.status.success(), "the rehashed chain passes on its own");
    assert!(stdout(&plain).contains("chain intact"));

    let out = run.verify(&url, None);
    assert_eq!(out.status.code(), Some(1), "the checkpoints catch it");
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "checkpoint on line 2 (row {second}, taken {})",
            lines(&run.checkpoints())[1].at
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "a row from {} to {second} was rewritten (row {first} still matches its checkpoint)",
            first + 1
        )),
        "names where the rewrite is: {text}"
    );

    // The intruder also re-signs nothing: a checkpoint line brought in line with the forged
    // head fails its signature.
    let forged_head: Vec<u8> = sqlx::query_scalar("SELECT hash FROM audit_log WHERE seq = $1")
        .bind(second)
        .fetch_one(&pool)
        .await
        .unwrap();
    let mut cps = lines(&run.checkpoints());
    cps[1].hash = checkpoint::hex(&forged_head);
    let doctored = run.dir.path().join("doctored.jsonl");
    let text: String = cps.iter().map(|c| serde_json::to_string(c).unwrap() + "\n").collect();
    std::fs::write(&doctored, text).unwrap();
    let out = run.verify(&url, Some(&doctored));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains(&format!(
            "checkpoint on line 2 (row {second}, taken {}) has a signature the public key does not verify",
            cps[1].at
        )),
        "{}",
        stdout(&out)
    );
}

#[actix_rt::test]
async fn a_tail_cut_after_a_checkpoint_is_caught() {
    let (run, _pool, url, first, second) = anchored("anchor-cut", 3).await;
    // The last two rows go, and the head is set back to the row before them.
    let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut tx = c.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica").execute(&mut *tx).await.unwrap();
    sqlx::query("DELETE FROM audit_log WHERE seq > $1").bind(second - 2).execute(&mut *tx).await.unwrap();
    sqlx::query("UPDATE audit_head SET seq = $1, hash = (SELECT hash FROM audit_log WHERE seq = $1)")
        .bind(second - 2)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let plain = kuzet(&["audit", "verify", "--database-url", &url]);
    assert!(plain.status.success(), "the shortened chain passes on its own");

    let out = run.verify(&url, None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains(&format!("checkpoint on line 2 (row {second}")), "{}", stdout(&out));
    assert!(stdout(&out).contains(&format!("the log has no row {second}: rows were removed from its end")));
    assert!(second - 2 > first, "the cut is after the first checkpoint, which holds");
}

#[actix_rt::test]
async fn the_app_role_appends_to_the_log_and_cannot_change_it() {
    let owner_url = fresh_database().await;
    let role = format!("kuzet_app_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let owner = kuzet::store::connect(&owner_url).await.expect("database");
    // Roles are the cluster's; the test cluster trusts 127.0.0.1, so no password.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE ROLE {role} LOGIN"))).execute(&owner).await.unwrap();
    let app_url = owner_url.replacen("postgres@", &format!("{role}@"), 1);
    assert_ne!(app_url, owner_url);

    let out = kuzet(&["migrate", "--database-url", &owner_url, "--app-role", &role]);
    assert!(out.status.success(), "kuzet migrate grants the app role");

    let app = sqlx::postgres::PgPoolOptions::new().max_connections(2).connect(&app_url).await.unwrap();
    for sql in [
        "UPDATE audit_log SET actor = 'intruder'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        "UPDATE audit_head SET seq = 0",
    ] {
        let e = sqlx::query(sql).execute(&app).await.expect_err(sql);
        assert!(e.to_string().contains("permission denied"), "{sql}: {e}");
    }

    // kuzet serves as the app role, migrating as the owner at start: the registry's devices
    // are audited through it, and checkpointed.
    let run = Run::new("anchor-role", &app_url, Some(&owner_url));
    let serve = KuzetProcess::start(&run.env, &run.log);
    wait_lines(&run.checkpoints(), 1).await;
    let registered = count(&app, "SELECT count(*) FROM audit_log WHERE actor LIKE 'registry:%'").await;
    assert!(registered > 0, "kuzet appended the registry's entries as the app role");
    // A panic alarm: its incident is audited by kuzet's writer, in the batch with the alarm,
    // the incident and its timeline, all written as the app role.
    let mut btn = kuzet_tools::sim::connect_device(
        "127.0.0.1",
        run.mosquitto.port,
        kuzet::mqtt::topics::DeviceKind::Button,
        "btn-a",
        &pw("btn-a"),
        &[kuzet::mqtt::topics::button_ack("btn-a")],
    )
    .await
    .expect("the button connects");
    // As a button does (docs/mqtt.md): the same alarm again until kuzet acknowledges it. The
    // first may come before kuzet's alarm connection has subscribed for the first time.
    let alarm = raise(&uuid::Uuid::new_v4());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        publish(&btn, kuzet::mqtt::topics::DeviceKind::Button, "btn-a", "alarm", alarm.clone()).await;
        let acked = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some((topic, _)) = btn.rx.recv().await {
                if topic.ends_with("/ack") {
                    return;
                }
            }
            std::future::pending::<()>().await
        })
        .await;
        if acked.is_ok() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no ack for the alarm within 30 s");
    }
    wait_until("the alarm's incident in the audit log", Duration::from_secs(30), || async {
        count(
            &app,
            "SELECT count(*) FROM audit_log WHERE actor = 'button:btn-a' AND action = 'incident.open'",
        )
        .await
            == 1
    })
    .await;
    let by_app =
        kuzet::store::audit::append(&app, "user:test", "audit.read", None, &json!({})).await.unwrap();
    assert!(by_app > registered, "the app role appends directly too");
    // kuzet checkpoints it as the app role: it reads the log.
    wait_until("a checkpoint of the app role's entry", Duration::from_secs(30), || async {
        lines(&run.checkpoints()).last().is_some_and(|c| c.seq >= by_app)
    })
    .await;
    drop(serve);
    assert!(
        !run.log_text().contains("the audit log can be rewritten"),
        "no warning when kuzet cannot rewrite the log"
    );
    // The grants at serve's start did not widen the role's.
    let e = sqlx::query("DELETE FROM audit_log").execute(&app).await.expect_err("delete refused");
    assert!(e.to_string().contains("permission denied"), "{e}");
    // The app role verifies too (it reads the log), checkpoints included.
    let out = run.verify(&app_url, None);
    assert!(out.status.success(), "{}", stdout(&out));
}

#[actix_rt::test]
async fn stopping_checkpoints_what_was_appended_since_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let (key, file) = (dir.path().join("checkpoint.key"), dir.path().join("checkpoints.jsonl"));
    let f = file.clone();
    let t = spawn_app(BrokerKind::Mosquitto, city(&["u1"]), move |s| {
        s.audit.key_file = key;
        s.audit.checkpoint_file = f;
        s.audit.checkpoint_every_s = 3600;
    })
    .await;
    wait_lines(&file, 1).await;
    let pool = t.app.pool().expect("a database").clone();
    let seq = kuzet::store::audit::append(&pool, "user:test", "audit.read", None, &json!({})).await.unwrap();
    assert_eq!(lines(&file).len(), 1, "no checkpoint before the period ends");
    t.app.stop().await;
    assert_eq!(lines(&file).iter().map(|c| c.seq).collect::<Vec<_>>(), [seq - 1, seq]);
}
