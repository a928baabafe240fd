//! `kuzet-bench --suite reconnect`: N devices reconnecting at once to a private Mosquitto (after
//! a broker restart or a network outage), with a password each, beside the same storm to a
//! broker that admits anyone (no password check) in the same run: the ratio is what checking
//! the passwords costs. Mosquitto 2.0.11 hashes with PBKDF2-SHA512 at a fixed 101 iterations
//! (`$7$101$`); a slow hash would stall its single thread while every device waits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use base64::Engine as _;
use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, Incoming, MqttOptions, NetworkOptions};
use tokio::sync::watch;

use super::{percentiles, Percentiles};
use kuzet::mosquitto::{Access, MosquittoProcess};

#[derive(clap::Args, Clone, Debug)]
pub struct ReconnectArgs {
    /// Devices in the reconnect storm (`--suite reconnect`).
    #[arg(long, default_value_t = 10_000)]
    pub storm_devices: usize,
    /// Storms of each kind (anonymous, with passwords), alternating.
    #[arg(long, default_value_t = 2)]
    pub storm_rounds: usize,
    /// Connects in flight at most; 0: every device at once.
    #[arg(long, default_value_t = 0)]
    pub storm_concurrency: usize,
}

/// A device that has not had its CONNACK by then counts as not connected.
const STORM_DEADLINE: Duration = Duration::from_secs(300);
/// A device's wait before it tries again after a failed connect.
const RETRY_AFTER: Duration = Duration::from_millis(500);

struct Device {
    id: String,
    password: String,
}

struct Storm {
    access: &'static str,
    devices: usize,
    connected: usize,
    /// Connects that failed and were tried again (timeouts, resets).
    retries: usize,
    /// From the release of every device to the last CONNACK.
    all_connected: Duration,
    /// Each device's own connect: from its first attempt to its CONNACK, retries included.
    latency: Percentiles,
    peak_in_flight: usize,
    broker_cpu: Duration,
    client_cpu: Duration,
    listen_overflows: u64,
}

pub async fn reconnect_bench(args: &ReconnectArgs) -> anyhow::Result<()> {
    let n = args.storm_devices;
    anyhow::ensure!(n > 0 && args.storm_rounds > 0, "--storm-devices and --storm-rounds must be above 0");
    raise_fd_limit(n)?;
    println!("### Reconnect storm: {n} devices at once to Mosquitto\n");
    println!("{}\n", broker_version());
    let devices: Vec<Device> = (0..n)
        .map(|i| Device {
            id: format!("btn-{i:06}"),
            // 128 random bits, as provisioning gives each device.
            password: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>()),
        })
        .collect();
    let passwords_plain: String = devices.iter().map(|d| format!("{}:{}\n", d.id, d.password)).collect();
    let acl: String = devices
        .iter()
        .map(|d| {
            format!(
                "user {0}\ntopic write kuzet/v1/buttons/{0}/alarm\ntopic write kuzet/v1/buttons/{0}/heartbeat\n\
                 topic write kuzet/v1/buttons/{0}/online\ntopic read kuzet/v1/buttons/{0}/ack\n\
                 topic read kuzet/v1/rejects/{0}\n\n",
                d.id
            )
        })
        .collect();
    let hash_time = time_passwd_hashing(&passwords_plain)?;
    println!(
        "`mosquitto_passwd -U` for {n} users: {:.2} s ({:.0} µs a password)\n",
        hash_time.as_secs_f64(),
        hash_time.as_secs_f64() * 1e6 / n as f64
    );

    let devices = Arc::new(devices);
    let mut storms = Vec::new();
    for _ in 0..args.storm_rounds {
        for with_passwords in [false, true] {
            let access =
                with_passwords.then(|| Access { passwords_plain: passwords_plain.clone(), acl: acl.clone() });
            let started = Instant::now();
            let broker = MosquittoProcess::start(access)?;
            let start_time = started.elapsed();
            let name = if with_passwords { "passwords" } else { "anonymous" };
            eprintln!("storm: {name}, broker started in {:.2} s", start_time.as_secs_f64());
            storms.push(storm(&broker, &devices, with_passwords, args.storm_concurrency).await?);
        }
    }

    println!(
        "All devices released at once on one client thread (tokio, current thread) while the broker \
         has the other core; each device connects with its own username and password (clean session, \
         no subscriptions). Latency: one device's connect, from its first attempt to its CONNACK.\n"
    );
    println!(
        "| broker access | devices | connected | retries | all CONNACK (s) | connects/s | p50 (ms) | p99 (ms) | max (ms) | peak in flight | broker CPU (s) | broker CPU/connect (µs) | client CPU (s) | listen overflows |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for s in &storms {
        println!(
            "| {} | {} | {} | {} | {:.2} | {:.0} | {:.1} | {:.1} | {:.1} | {} | {:.2} | {:.0} | {:.2} | {} |",
            s.access,
            s.devices,
            s.connected,
            s.retries,
            s.all_connected.as_secs_f64(),
            s.connected as f64 / s.all_connected.as_secs_f64(),
            ms(s.latency.p50),
            ms(s.latency.p99),
            ms(s.latency.max),
            s.peak_in_flight,
            s.broker_cpu.as_secs_f64(),
            s.broker_cpu.as_secs_f64() * 1e6 / s.connected.max(1) as f64,
            s.client_cpu.as_secs_f64(),
            s.listen_overflows,
        );
    }
    // Medians over the rounds, passwords against anonymous.
    let median = |access: &str, f: &dyn Fn(&Storm) -> f64| {
        let mut v: Vec<f64> = storms.iter().filter(|s| s.access == access).map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let ratio = |f: &dyn Fn(&Storm) -> f64| median("passwords", f) / median("anonymous", f);
    println!(
        "\nPasswords against anonymous (medians of {} rounds): all CONNACK ×{:.2}, p99 ×{:.2}, broker CPU per connect ×{:.2}.\n",
        args.storm_rounds,
        ratio(&|s| s.all_connected.as_secs_f64()),
        ratio(&|s| s.latency.p99.as_secs_f64()),
        ratio(&|s| s.broker_cpu.as_secs_f64() / s.connected.max(1) as f64),
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One storm: every device connects at once; returns when all have their CONNACK or the
/// deadline passes. The connections stay open until every device is in, as they would.
async fn storm(
    broker: &MosquittoProcess,
    devices: &Arc<Vec<Device>>,
    with_passwords: bool,
    concurrency: usize,
) -> anyhow::Result<Storm> {
    let pid = broker_pid()?;
    let (go_tx, go_rx) = watch::channel(false);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let retries = Arc::new(AtomicUsize::new(0));
    let limit = Arc::new(tokio::sync::Semaphore::new(if concurrency == 0 {
        tokio::sync::Semaphore::MAX_PERMITS
    } else {
        concurrency
    }));
    let port = broker.port;
    let mut tasks = Vec::with_capacity(devices.len());
    for i in 0..devices.len() {
        let devices = devices.clone();
        let mut go = go_rx.clone();
        let (in_flight, peak, retries, limit) =
            (in_flight.clone(), peak.clone(), retries.clone(), limit.clone());
        tasks.push(tokio::spawn(async move {
            let d = &devices[i];
            let mut o = MqttOptions::new(d.id.clone(), "127.0.0.1", port);
            // The same CONNECT either way; the anonymous broker does not check the password.
            o.set_credentials(d.id.clone(), d.password.clone());
            o.set_keep_alive(Duration::from_secs(600));
            o.set_clean_session(true);
            let (client, mut eventloop) = AsyncClient::new(o, 1);
            let mut net = NetworkOptions::new();
            net.set_tcp_nodelay(true);
            // Longer than the storm: a device that waits is not a device that failed.
            net.set_connection_timeout(STORM_DEADLINE.as_secs());
            eventloop.set_network_options(net);
            let _ = go.wait_for(|g| *g).await;
            let _permit = limit.acquire().await;
            let started = Instant::now();
            let now = in_flight.fetch_add(1, Ordering::Relaxed) + 1;
            peak.fetch_max(now, Ordering::Relaxed);
            let result = connect(&mut eventloop, &retries).await;
            in_flight.fetch_sub(1, Ordering::Relaxed);
            result.map(|()| (started.elapsed(), Instant::now(), client, eventloop))
        }));
    }
    // Let every task reach the start line before the clock starts.
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let broker_cpu0 = cpu_time(&format!("/proc/{pid}/stat"))?;
    let client_cpu0 = cpu_time("/proc/self/stat")?;
    let overflows0 = listen_overflows();
    let t0 = Instant::now();
    go_tx.send(true).context("no device is waiting")?;
    let mut latencies = Vec::with_capacity(tasks.len());
    let mut last = t0;
    let mut open: Vec<(AsyncClient, EventLoop)> = Vec::with_capacity(tasks.len());
    let mut failed = 0;
    for mut t in tasks {
        let done = tokio::time::timeout_at((t0 + STORM_DEADLINE).into(), &mut t).await;
        if done.is_err() {
            t.abort();
        }
        match done {
            Ok(Ok(Ok((latency, at, client, eventloop)))) => {
                latencies.push(latency);
                last = last.max(at);
                open.push((client, eventloop));
            }
            Ok(Ok(Err(e))) => {
                failed += 1;
                if failed == 1 {
                    eprintln!("storm: a device did not connect: {e:#}");
                }
            }
            Ok(Err(e)) => bail!("a device's task failed: {e}"),
            Err(_) => failed += 1,
        }
    }
    let broker_cpu = cpu_time(&format!("/proc/{pid}/stat"))? - broker_cpu0;
    let client_cpu = cpu_time("/proc/self/stat")? - client_cpu0;
    let listen_overflows = listen_overflows().saturating_sub(overflows0);
    if latencies.is_empty() {
        bail!("no device connected");
    }
    let access = if with_passwords { "passwords" } else { "anonymous" };
    eprintln!("storm: {access}: {} connected, {failed} not", latencies.len());
    drop(open);
    Ok(Storm {
        access,
        devices: devices.len(),
        connected: latencies.len(),
        retries: retries.load(Ordering::Relaxed),
        all_connected: last - t0,
        latency: percentiles(latencies),
        peak_in_flight: peak.load(Ordering::Relaxed),
        broker_cpu,
        client_cpu,
        listen_overflows,
    })
}

/// Polls until the CONNACK; a failed attempt is tried again after a pause, as a device does.
/// A refusal (bad credentials) is not tried again: that is the benchmark's mistake.
async fn connect(eventloop: &mut EventLoop, retries: &AtomicUsize) -> anyhow::Result<()> {
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Incoming::ConnAck(_))) => return Ok(()),
            Ok(_) => {}
            Err(ConnectionError::ConnectionRefused(code)) => bail!("refused: {code:?}"),
            Err(_) => {
                retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}

/// How long `mosquitto_passwd -U` takes to hash `plain` (a copy, in a folder of its own).
fn time_passwd_hashing(plain: &str) -> anyhow::Result<Duration> {
    let dir = std::env::temp_dir().join(format!("kuzet-bench-passwd-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("passwd");
    std::fs::write(&file, plain)?;
    let started = Instant::now();
    let st = std::process::Command::new(kuzet::mosquitto::find_bin("mosquitto_passwd")?)
        .arg("-U")
        .arg(&file)
        .status()
        .context("cannot run mosquitto_passwd")?;
    let took = started.elapsed();
    let hashed = std::fs::read_to_string(&file).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    if !st.success() {
        bail!("mosquitto_passwd -U failed");
    }
    if let Some(line) = hashed.lines().next() {
        let scheme: Vec<&str> = line.split('$').take(3).collect();
        println!("Hash: `${}${}$...` (PBKDF2-SHA512, {} iterations)\n", scheme[1], scheme[2], scheme[2]);
    }
    Ok(took)
}

fn broker_version() -> String {
    kuzet::mosquitto::find_bin("mosquitto")
        .ok()
        .and_then(|bin| std::process::Command::new(bin).arg("-h").output().ok())
        .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_owned))
        .unwrap_or_else(|| "mosquitto (version unknown)".into())
}

/// The Mosquitto this process started: its child named mosquitto. The bench runs one at a time.
fn broker_pid() -> anyhow::Result<u32> {
    let me = std::process::id();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(pid) = entry?.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let ppid = stat[close + 1..].split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok());
        if &stat[open + 1..close] == "mosquitto" && ppid == Some(me) {
            return Ok(pid);
        }
    }
    bail!("cannot find the broker's process")
}

/// User plus system CPU time of a process, from its /proc stat file.
fn cpu_time(stat_path: &str) -> anyhow::Result<Duration> {
    // In clock ticks of USER_HZ, which is 100 on Linux.
    const TICKS_PER_S: f64 = 100.0;
    let stat = std::fs::read_to_string(stat_path).with_context(|| format!("cannot read {stat_path}"))?;
    let after = stat.rfind(')').map(|i| &stat[i + 1..]).context("bad stat line")?;
    // After the command: state is field 3, utime 14 and stime 15.
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<u64>().ok()).context("bad stat line");
    Ok(Duration::from_secs_f64((ticks(14)? + ticks(15)?) as f64 / TICKS_PER_S))
}

/// Connections the kernel dropped because a listener's accept queue was full (all listeners of
/// this network namespace: TcpExt ListenOverflows).
fn listen_overflows() -> u64 {
    let text = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "ListenOverflows")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// Each device holds a socket here and one in the broker (our child, with our limits): raises
/// the soft open-file limit towards the hard one when it is too low (`prlimit`, util-linux).
fn raise_fd_limit(devices: usize) -> anyhow::Result<()> {
    let need = devices as u64 + 512;
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let Some(line) = limits.lines().find(|l| l.starts_with("Max open files")) else {
        return Ok(());
    };
    let parse = |s: &str| if s == "unlimited" { Some(u64::MAX) } else { s.parse::<u64>().ok() };
    let nums: Vec<Option<u64>> =
        line["Max open files".len()..].split_whitespace().take(2).map(parse).collect();
    let (Some(Some(soft)), Some(Some(hard))) = (nums.first().copied(), nums.get(1).copied()) else {
        return Ok(());
    };
    if soft >= need {
        return Ok(());
    }
    if hard < need {
        bail!("{devices} devices need {need} open files, the hard limit is {hard}: raise it (ulimit -Hn, limits.conf)");
    }
    let st = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={hard}:{hard}"))
        .status();
    if !matches!(st, Ok(s) if s.success()) {
        bail!("{devices} devices need {need} open files, the limit is {soft}: run `ulimit -n {hard}` first");
    }
    eprintln!("storm: open-file limit raised from {soft} to {hard}");
    Ok(())
}
