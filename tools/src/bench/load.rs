//! The position load as a separate process (so that its CPU is not kuzet's, and it can run at a
//! lower priority), what it achieved second by second, and CPU time read from /proc.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write as _};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use kuzet_actors::geo::GeoPoint;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rumqttc::QoS;
use serde_json::json;

use super::city::{bench_plan, client, BENCH_PASSWORD_ENV};
use crate::sim;

/// Clock ticks per second in /proc's CPU times (USER_HZ: 100 on every Linux kuzet runs on).
const TICKS_PER_S: f64 = 100.0;

/// Publishers the load is spread over, as a fleet's tablets would be over connections.
const PUBLISHERS: usize = 4;

/// What the load generator is told (argument `--load-child`).
pub struct LoadSpec {
    pub host: String,
    pub port: u16,
    pub units: usize,
    pub hz: f64,
}

impl LoadSpec {
    fn arg(&self) -> String {
        format!("{}:{}:{}:{}", self.host, self.port, self.units, self.hz)
    }

    fn parse(s: &str) -> anyhow::Result<Self> {
        let p: Vec<&str> = s.split(':').collect();
        anyhow::ensure!(p.len() == 4, "--load-child host:port:units:hz");
        Ok(Self { host: p[0].to_owned(), port: p[1].parse()?, units: p[2].parse()?, hz: p[3].parse()? })
    }
}

/// The load generator running as a child process at `nice`; counts what it sent each second.
pub struct PositionLoad {
    child: Child,
    sent: Arc<Mutex<Vec<u64>>>,
}

impl PositionLoad {
    pub fn start(spec: &LoadSpec, nice: i32, password: Option<&str>) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find kuzet-bench itself")?;
        let mut cmd = Command::new("nice");
        cmd.arg("-n").arg(nice.to_string()).arg(exe).arg("--load-child").arg(spec.arg());
        if let Some(p) = password {
            cmd.env(BENCH_PASSWORD_ENV, p);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start the load generator (nice kuzet-bench --load-child)")?;
        let out = child.stdout.take().context("no stdout")?;
        let sent = Arc::new(Mutex::new(Vec::new()));
        let into = sent.clone();
        std::thread::Builder::new().name("bench-load-reader".into()).spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("sent ").and_then(|n| n.parse().ok()) {
                    into.lock().unwrap_or_else(|p| p.into_inner()).push(n);
                }
            }
        })?;
        Ok(Self { child, sent })
    }

    /// Positions sent in each second so far.
    pub fn sent(&self) -> Vec<u64> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn stop(mut self) {
        // Closing its stdin stops it.
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The load generator's body (`kuzet-bench --load-child host:port:units:hz`): every unit of the
/// bench city reports at `hz`, spread evenly over the second and over `PUBLISHERS` clients; a
/// line `sent N` each second. Ends when stdin closes.
pub fn run_child(spec: &str) -> anyhow::Result<()> {
    let spec = LoadSpec::parse(spec)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let plan = bench_plan(spec.units);
        let units: Vec<String> = sim::city(&plan).units.iter().map(|u| u.id.to_string()).collect();
        let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
        for k in 0..PUBLISHERS.min(units.len()) {
            let (c, _) = client(&spec.host, spec.port, &format!("bench-positions-{k}"), None, &[]).await?;
            let ids: Vec<String> = units.iter().skip(k).step_by(PUBLISHERS).cloned().collect();
            let rate = ids.len() as f64 * spec.hz;
            let (centre, sent) = (plan.centre, sent.clone());
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(k as u64);
                let mut pos: Vec<GeoPoint> =
                    ids.iter().map(|_| sim::random_point(&mut rng, centre, 8_000.0)).collect();
                // Every 5 ms, what is due by then: the rate holds whatever the timer's grain.
                let mut tick = tokio::time::interval(Duration::from_millis(5));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                let start = Instant::now();
                let (mut done, mut i) = (0u64, 0usize);
                loop {
                    tick.tick().await;
                    let due = (start.elapsed().as_secs_f64() * rate) as u64;
                    while done < due {
                        let p = pos[i].offset(rng.random_range(-10.0..10.0), rng.random_range(-10.0..10.0));
                        pos[i] = p;
                        let body =
                            json!({"at": Utc::now(), "lat": p.lat(), "lon": p.lon(), "speed_mps": 9.0})
                                .to_string();
                        let topic = format!("kuzet/v1/units/{}/position", ids[i]);
                        if c.publish(topic, QoS::AtLeastOnce, false, body).await.is_err() {
                            return;
                        }
                        sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        done += 1;
                        i = (i + 1) % ids.len();
                    }
                }
            });
        }
        // Stops when the parent closes stdin.
        let (gone_tx, mut gone) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut sink = String::new();
            while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
            let _ = gone_tx.send(());
        });
        let mut second = tokio::time::interval(Duration::from_secs(1));
        second.tick().await;
        let mut last = 0;
        loop {
            tokio::select! {
                _ = &mut gone => return Ok(()),
                _ = second.tick() => {
                    let now = sent.load(std::sync::atomic::Ordering::Relaxed);
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "sent {}", now - last)?;
                    out.flush()?;
                    last = now;
                }
            }
        }
    })
}

/// A per-second series, summed up.
pub struct Rates {
    pub mean: f64,
    pub min: u64,
    pub max: u64,
}

impl Rates {
    /// The full seconds of `per_s`, without the first (the load ramping up) when there are
    /// more than two.
    pub fn of(per_s: &[u64]) -> Self {
        let s = if per_s.len() > 2 { &per_s[1..] } else { per_s };
        if s.is_empty() {
            return Self { mean: 0.0, min: 0, max: 0 };
        }
        Self {
            mean: s.iter().sum::<u64>() as f64 / s.len() as f64,
            min: *s.iter().min().unwrap_or(&0),
            max: *s.iter().max().unwrap_or(&0),
        }
    }
}

/// CPU seconds used so far by this process's threads, by thread name, and by other processes.
#[derive(Clone, Default)]
pub struct Cpu {
    threads: HashMap<String, u64>,
    others: HashMap<u32, u64>,
}

fn stat_ticks(path: &str) -> Option<(String, u64)> {
    let s = std::fs::read_to_string(path).ok()?;
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let name = s[open + 1..close].to_owned();
    let f: Vec<&str> = s[close + 2..].split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime); f starts at field 3.
    Some((name, f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?))
}

impl Cpu {
    /// This process's threads (summed by name) and the processes `pids`.
    pub fn now(pids: &[u32]) -> Self {
        let mut threads = HashMap::new();
        if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
            for t in dir.flatten() {
                let path = format!("{}/stat", t.path().display());
                if let Some((name, ticks)) = stat_ticks(&path) {
                    *threads.entry(name).or_insert(0) += ticks;
                }
            }
        }
        let others =
            pids.iter().filter_map(|p| Some((*p, stat_ticks(&format!("/proc/{p}/stat"))?.1))).collect();
        Self { threads, others }
    }

    /// CPU seconds between `self` and `later` of this process's threads whose name `keep`
    /// accepts.
    pub fn threads_since(&self, later: &Cpu, keep: impl Fn(&str) -> bool) -> f64 {
        let ticks: u64 = later
            .threads
            .iter()
            .filter(|(n, _)| keep(n))
            .map(|(n, t)| t.saturating_sub(*self.threads.get(n).unwrap_or(&0)))
            .sum();
        ticks as f64 / TICKS_PER_S
    }

    /// CPU seconds of process `pid` between `self` and `later`.
    pub fn process_since(&self, later: &Cpu, pid: u32) -> f64 {
        let (a, b) =
            (self.others.get(&pid).copied().unwrap_or(0), later.others.get(&pid).copied().unwrap_or(0));
        b.saturating_sub(a) as f64 / TICKS_PER_S
    }
}

/// CPU seconds the calling thread has used.
pub fn thread_cpu() -> f64 {
    stat_ticks("/proc/thread-self/stat").map_or(0.0, |(_, t)| t as f64 / TICKS_PER_S)
}

/// kuzet's threads in the bench process: all but the harness's own (named `bench-...`).
pub fn is_kuzet(thread: &str) -> bool {
    !thread.starts_with("bench-")
}

/// Lowers the CPU priority of the PostgreSQL server the bench writes to (the postmaster
/// `backend` was forked by, and every process it has forked; later backends inherit it):
/// on two cores, the database competes with what is measured.
pub fn renice_database(backend: u32, nice: i32) -> anyhow::Result<usize> {
    let stat = std::fs::read_to_string(format!("/proc/{backend}/stat"))?;
    let after = &stat[stat.rfind(')').context("bad stat")? + 2..];
    let postmaster: u32 = after.split_whitespace().nth(1).context("no ppid")?.parse()?;
    let mut pids = vec![postmaster];
    for e in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some(close) = s.rfind(')') else { continue };
        if s[close + 2..].split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) == Some(postmaster) {
            pids.push(pid);
        }
    }
    let status = Command::new("renice")
        .arg("-n")
        .arg(nice.to_string())
        .arg("-p")
        .args(pids.iter().map(|p| p.to_string()))
        .stdout(Stdio::null())
        .status()
        .context("cannot run renice")?;
    anyhow::ensure!(status.success(), "renice failed");
    Ok(pids.len())
}
