//! Processes and records for the durability tests: kuzet as its own process (to be killed),
//! a private PostGIS cluster a test may stop, and checks of what the record holds.

use std::process::{Child, Command};
use std::time::Duration;

use kuzet_tools::sim::DeviceLink;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::publish_raw;

pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(pool).await.expect(sql)
}

/// Every incident's timeline in the database runs 0, 1, 2, ... with no gap or repeat.
pub async fn assert_timelines_whole(pool: &PgPool) {
    let rows = sqlx::query(
        "SELECT incident_id, count(*) AS n, min(seq) AS lo, max(seq) AS hi FROM incident_events GROUP BY incident_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(!rows.is_empty(), "no timeline recorded");
    for r in rows {
        let (n, lo, hi): (i64, i32, i32) = (r.get("n"), r.get("lo"), r.get("hi"));
        assert_eq!(
            (lo, i64::from(hi) + 1),
            (0, n),
            "timeline of {} has gaps",
            r.get::<Uuid, _>("incident_id")
        );
    }
    // Each snapshot's timeline is exactly the rows recorded for it.
    let mismatched = count(
        pool,
        "SELECT count(*) FROM incidents i WHERE jsonb_array_length(i.snapshot->'timeline')
           <> (SELECT count(*) FROM incident_events e WHERE e.incident_id = i.id)",
    )
    .await;
    assert_eq!(mismatched, 0, "snapshot timelines differ from the recorded events");
}

/// kuzet as a separate process, as it runs in production.
pub struct KuzetProcess {
    child: Child,
}

impl KuzetProcess {
    pub fn start(env: &[(String, String)], log: &std::path::Path) -> Self {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_kuzet"))
            .arg("serve")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "info,kuzet=debug")
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("kuzet starts");
        Self { child }
    }

    pub fn kill_9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

impl Drop for KuzetProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private PostGIS cluster for one test, which it may stop and start.
pub struct OwnCluster {
    pub dir: std::path::PathBuf,
}

/// `scripts/pg.sh CMD DIR`; its last line of output.
pub fn pg_sh(cmd: &str, dir: &std::path::Path) -> String {
    let out = Command::new("scripts/pg.sh").arg(cmd).arg(dir).output().expect("pg.sh runs");
    assert!(out.status.success(), "pg.sh {cmd}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_owned()
}

impl OwnCluster {
    pub fn pg(&self, cmd: &str) -> String {
        pg_sh(cmd, &self.dir)
    }

    pub fn start() -> (Self, String) {
        let me = Self {
            dir: std::env::current_dir()
                .unwrap()
                .join(format!("target/pg-{}", &Uuid::new_v4().simple().to_string()[..8])),
        };
        let line = me.pg("start");
        let url = line.strip_prefix("DATABASE_URL=").expect("pg.sh prints the url").to_owned();
        (me, url)
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = Command::new("scripts/pg.sh").arg("stop").arg(&self.dir).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until kuzet answers: a malformed position from `unit` comes back as a reject.
pub async fn wait_kuzet(unit: &mut DeviceLink, id: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        publish_raw(unit, &format!("kuzet/v1/units/{id}/position"), b"{not json".to_vec()).await;
        let got = tokio::time::timeout(Duration::from_millis(500), async {
            loop {
                match unit.rx.recv().await {
                    Some((topic, _)) if topic.starts_with("kuzet/v1/rejects/") => return,
                    Some(_) => continue,
                    None => std::future::pending::<()>().await,
                }
            }
        })
        .await;
        if got.is_ok() {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "kuzet did not come up");
    }
}

/// What differs between the tests that run kuzet as a process.
pub struct ProcessEnv<'a> {
    /// A word naming the test, in kuzet's client id and its log file.
    pub name: &'a str,
    pub mqtt_port: u16,
    pub database_url: &'a str,
    pub spool_dir: &'a std::path::Path,
    pub registry: &'a std::path::Path,
    /// Empty: no HTTP API.
    pub http_listen: String,
    pub offer_timeout_s: u32,
}

impl ProcessEnv<'_> {
    /// kuzet's settings as environment variables (one unit per school alarm; the same
    /// accounts on every start, so the broker keeps kuzet's sessions across kills), and a log file
    /// under target/test-logs that is kept after the test for reading when it fails.
    pub fn build(&self) -> (Vec<(String, String)>, std::path::PathBuf) {
        let env = [
            ("KUZET_MQTT__URL", format!("mqtt://127.0.0.1:{}", self.mqtt_port)),
            ("KUZET_MQTT__PASSWORD", super::SERVICE_PASSWORD.to_owned()),
            ("KUZET_DATABASE__URL", self.database_url.to_owned()),
            ("KUZET_DATABASE__SPOOL_DIR", self.spool_dir.display().to_string()),
            ("KUZET_HTTP__LISTEN", self.http_listen.clone()),
            ("KUZET_REGISTRY__FILE", self.registry.display().to_string()),
            ("KUZET_DISPATCH__PLANS__SCHOOL_ALARM__UNITS_REQUIRED", "1".into()),
            ("KUZET_DISPATCH__PLANS__SCHOOL_ALARM__OFFER_TIMEOUT", self.offer_timeout_s.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        std::fs::create_dir_all("target/test-logs").expect("target/test-logs");
        let log = std::path::PathBuf::from(format!(
            "target/test-logs/{}-{}.log",
            self.name,
            Uuid::new_v4().simple()
        ));
        eprintln!("kuzet's log: {}", log.display());
        (env, log)
    }
}
