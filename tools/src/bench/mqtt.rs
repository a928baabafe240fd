//! The mqtt suite: alarm -> offer latency end to end while units report positions and other
//! alarms are worked, beside the raw broker round trip.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use chrono::Utc;
use rumqttc::QoS;
use serde_json::{json, Value};

use super::city::{bench_city, cancel_until_over, client, next_where, raise_until_offer, BenchCity};
use super::load::{is_kuzet, Cpu, LoadSpec, PositionLoad, Rates};
use super::{percentiles, row, BenchArgs, Percentiles};

/// The alarm suite; with `--broker both`, once through a plain Mosquitto and once through
/// kuzet's own broker in the same run, and the ratio of their alarm -> offer p99.
pub(super) async fn mqtt_bench(
    args: &BenchArgs,
    database: Option<String>,
    position_hz: f64,
) -> anyhow::Result<()> {
    if args.broker != "both" {
        return mqtt_bench_on(args, database, position_hz).await.map(|_| ());
    }
    let on = |broker: &str| BenchArgs { broker: broker.to_owned(), ..args.clone() };
    let plain = mqtt_bench_on(&on("mosquitto"), database.clone(), position_hz).await?;
    let own = mqtt_bench_on(&on("embedded"), database, position_hz).await?;
    println!(
        "kuzet's own broker against a plain Mosquitto, same run: alarm -> offer p99 {:.0} µs against {:.0} µs \
         ({:.2}x), p50 {:.0} µs against {:.0} µs ({:.2}x).\n",
        own.e2e.p99.as_secs_f64() * 1e6,
        plain.e2e.p99.as_secs_f64() * 1e6,
        own.e2e.p99.as_secs_f64() / plain.e2e.p99.as_secs_f64(),
        own.e2e.p50.as_secs_f64() * 1e6,
        plain.e2e.p50.as_secs_f64() * 1e6,
        own.e2e.p50.as_secs_f64() / plain.e2e.p50.as_secs_f64(),
    );
    Ok(())
}

/// The alarm suite at 1,000 and 10,000 units, 1 and 2 Hz, without and (with a database) with
/// everything recorded; one table of all runs at the end.
pub(super) async fn lanes_bench(args: &BenchArgs, base: Option<&str>) -> anyhow::Result<()> {
    let mut runs = Vec::new();
    for units in [1_000, 10_000] {
        for hz in [1.0, 2.0] {
            let a = BenchArgs { units, ..args.clone() };
            runs.push(mqtt_bench_on(&a, None, hz).await?);
            if let Some(base) = base {
                runs.push(mqtt_bench_on(&a, Some(super::store::fresh_database(base).await?), hz).await?);
            }
        }
    }
    println!("### All runs\n");
    println!(
        "| units | Hz asked | positions/s offered (min-max) | received (min-max) | recorded | kuzet CPU % of a core (bulk lane ms/s per 1k pos/s) \
         | raw p50/p99 µs | relay p50/p99 µs | alarm -> offer p50/p99 µs | inside kuzet p50/p99 µs \
         | feed - offer p50/p99 µs | p99 / relay p99 |"
    );
    println!("|---:|---:|---|---|---|---:|---|---|---|---|---|---:|");
    let us = |d: Duration| d.as_micros();
    for o in &runs {
        println!(
            "| {} | {}{} | {:.0} ({}-{}) | {:.0} ({}-{}) | {} | {:.0} % ({:.1}) | {}/{} | {}/{} | {}/{} | {}/{} | {:+}/{:+} | {:.2}x |",
            o.units,
            o.hz_asked,
            if o.reached() { String::new() } else { format!(" (achieved {:.2})", o.hz()) },
            o.offered.mean,
            o.offered.min,
            o.offered.max,
            o.received.mean,
            o.received.min,
            o.received.max,
            if o.recorded { "yes" } else { "no" },
            o.kuzet_cpu * 100.0,
            o.bulk_per_1k(),
            us(o.raw.p50),
            us(o.raw.p99),
            us(o.relay.p50),
            us(o.relay.p99),
            us(o.e2e.p50),
            us(o.e2e.p99),
            us(o.inside.p50),
            us(o.inside.p99),
            o.feed_gap_us.0,
            o.feed_gap_us.1,
            o.e2e.p99.as_secs_f64() / o.relay.p99.as_secs_f64(),
        );
    }
    println!();
    Ok(())
}

/// What one run measured, for the summary table.
pub(super) struct Outcome {
    pub(super) units: usize,
    pub(super) hz_asked: f64,
    pub(super) recorded: bool,
    pub(super) offered: Rates,
    pub(super) received: Rates,
    /// kuzet's CPU seconds per second of the run.
    pub(super) kuzet_cpu: f64,
    /// The bulk lane's share of it.
    pub(super) bulk_cpu: f64,
    pub(super) raw: Percentiles,
    pub(super) relay: Percentiles,
    pub(super) e2e: Percentiles,
    pub(super) inside: Percentiles,
    pub(super) chosen: Percentiles,
    pub(super) console: Percentiles,
    /// The console's first event minus the tablet's offer, µs (negative: the console first).
    pub(super) feed_gap_us: (i64, i64),
}

impl Outcome {
    /// Units times the rate achieved.
    pub(super) fn hz(&self) -> f64 {
        self.received.mean / self.units.max(1) as f64
    }

    /// Whether the run reached the rate it asked for (within 5 %).
    pub(super) fn reached(&self) -> bool {
        self.received.mean >= 0.95 * self.units as f64 * self.hz_asked
    }

    /// kuzet's CPU, in milliseconds per second, per 1,000 positions a second received.
    pub(super) fn cpu_per_1k(&self) -> f64 {
        self.kuzet_cpu * 1e3 / (self.received.mean / 1e3).max(1e-9)
    }

    /// The bulk lane's CPU, in milliseconds per second, per 1,000 positions a second.
    pub(super) fn bulk_per_1k(&self) -> f64 {
        self.bulk_cpu * 1e3 / (self.received.mean / 1e3).max(1e-9)
    }
}

/// One run of the alarm suite on `args.broker`.
pub(super) async fn mqtt_bench_on(
    args: &BenchArgs,
    database: Option<String>,
    position_hz: f64,
) -> anyhow::Result<Outcome> {
    let BenchCity { app, devices, plan, spool, _mosquitto } = bench_city(args, database.as_deref(), |s| {
        // The load is every unit reporting at position_hz: let each take that, with room.
        s.limits.position.per_s = s.limits.position.per_s.max(2.0 * position_hz);
    })
    .await?;
    let (host, port) = (app.broker().0.to_owned(), app.broker().1);
    let broker_pid = _mosquitto.as_ref().map(|m| m.pid());

    // The units' positions come from another process, at a lower priority: on two cores it
    // competes with what is measured.
    let load = PositionLoad::start(
        &LoadSpec { host: host.clone(), port, units: args.units, hz: position_hz },
        args.load_nice,
        super::city::bench_password(),
    )?;
    let relay = Relay::start(&host, port).await?;
    // The devices run on a thread and runtime of their own, as they would in other processes:
    // kuzet's actors keep the actix thread to themselves.
    let (go_tx, go_rx) = tokio::sync::oneshot::channel();
    // A console watching, as one always is: its feed is the hub the WebSockets read
    // (taken here before the socket's own write).
    let feed = app.live().subscribe();
    // Half the schools raise the measured alarms; the other half the background ones.
    let schools: Vec<(String, String)> =
        devices.sites.iter().map(|s| (s.buttons[0].id.to_string(), s.id.to_string())).collect();
    let (measured, busy) = schools.split_at(schools.len() / 2);
    let harness = Harness {
        feed,
        host,
        port,
        alarms: args.alarms,
        buttons: measured.to_vec(),
        busy: busy.to_vec(),
        busy_hz: args.busy_hz,
        min_run: Duration::from_secs(args.min_run_s),
        go: go_rx,
        positions: app.metrics().clone(),
    };
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name("bench-devices".into()).spawn(move || {
        let result = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(devices_side(harness)));
        let _ = done_tx.send(result);
    })?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while app.available_units().await < args.units {
        if Instant::now() > deadline {
            bail!("only {} of {} units reported within 60 s", app.available_units().await, args.units);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A second for the load to settle, then the measured window.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = plan;
    let sent_before = load.sent().len();
    let cpu_before = Cpu::now(&broker_pid.into_iter().collect::<Vec<_>>());
    let _ = go_tx.send(());
    let Samples { raw, relayed, e2e, inside, chosen, console, gaps, elapsed, busy, received } =
        done_rx.await.context("device thread ended early")??;
    let cpu_after = Cpu::now(&broker_pid.into_iter().collect::<Vec<_>>());
    let offered = load.sent();
    load.stop();
    relay.stop();
    let offered = Rates::of(&offered[sent_before.min(offered.len())..]);
    let received = Rates::of(&received);
    let secs = elapsed.as_secs_f64();
    let kuzet_cpu = cpu_before.threads_since(&cpu_after, is_kuzet) / secs;
    let bulk_cpu = cpu_before.threads_since(&cpu_after, |t| t == "kuzet-bulk") / secs;
    let writer_cpu = cpu_before.threads_since(&cpu_after, |t| t == "kuzet-writer") / secs;
    let broker_cpu = broker_pid.map(|p| cpu_before.process_since(&cpu_after, p) / secs);
    anyhow::ensure!(
        console.len() == e2e.len(),
        "the console feed saw {} of {} incidents",
        console.len(),
        e2e.len()
    );
    anyhow::ensure!(!inside.is_empty(), "no incident timeline was seen");
    let out = Outcome {
        units: args.units,
        hz_asked: position_hz,
        recorded: database.is_some(),
        offered,
        received,
        kuzet_cpu,
        bulk_cpu,
        raw: percentiles(raw),
        relay: percentiles(relayed),
        e2e: percentiles(e2e),
        inside: percentiles(inside),
        chosen: percentiles(chosen),
        console: percentiles(console),
        feed_gap_us: signed_p50_p99(gaps),
    };
    let hz = if out.reached() {
        format!("{position_hz} Hz")
    } else {
        format!("{:.2} Hz achieved (asked {position_hz} Hz: not reached)", out.hz())
    };
    println!(
        "### Alarm -> offer at the tablet, through {} on loopback, {} units at {hz}, {}\n",
        if args.broker == "embedded" {
            "kuzet's own broker (Mosquitto with every account's password and ACL, persistence on)"
        } else {
            "a plain Mosquitto (anonymous, no ACL, no persistence)"
        },
        args.units,
        if database.is_some() {
            "every alarm, incident and position recorded in PostGIS"
        } else {
            "no database"
        }
    );
    println!(
        "Load achieved, per second of the {:.1} s run (first second left out): positions offered {:.0} \
         (min {}, max {}), received by kuzet {:.0} (min {}, max {}). The load generator runs at nice {}{}.\n",
        secs,
        out.offered.mean,
        out.offered.min,
        out.offered.max,
        out.received.mean,
        out.received.min,
        out.received.max,
        args.load_nice,
        if database.is_some() && args.db_nice > 0 {
            format!(", PostgreSQL at nice {}", args.db_nice)
        } else {
            String::new()
        },
    );
    println!(
        "kuzet's CPU: {:.1} % of one core in all ({:.1} ms a second per 1,000 positions a second, the alarms \
         and their background included); the bulk lane {:.1} % ({:.1} ms per 1,000 positions a second), the \
         writer {:.1} %, the rest (actors, gateway) {:.1} %{}.\n",
        out.kuzet_cpu * 100.0,
        out.cpu_per_1k(),
        bulk_cpu * 100.0,
        out.bulk_per_1k(),
        writer_cpu * 100.0,
        (out.kuzet_cpu - bulk_cpu - writer_cpu) * 100.0,
        broker_cpu.map(|b| format!("; the broker's: {:.1} % of one core", b * 100.0)).unwrap_or_default(),
    );
    println!("| path | n | p50 µs | p99 µs | p99.9 µs | max µs |\n|---|---|---|---|---|---|");
    println!("{}", row("raw broker publish -> subscriber (one hop, baseline)", &out.raw));
    println!("{}", row("publish -> relay client -> subscriber (two hops, baseline)", &out.relay));
    println!("{}", row("button alarm -> kuzet -> tablet offer", &out.e2e));
    println!("{}", row("inside kuzet: alarm received -> offer handed to the MQTT client", &out.inside));
    println!("{}", row("of which: alarm received -> units chosen by the router", &out.chosen));
    println!("{}", row("button alarm -> kuzet -> the console's live feed (incident event)", &out.console));
    println!(
        "\nThe console's first event for an incident against the tablet's offer: p50 {:+} µs, p99 {:+} µs \
         (negative: the console had it first).",
        out.feed_gap_us.0, out.feed_gap_us.1
    );
    println!(
        "\nMeanwhile (achieved, over the run): {:.1} other alarms a second raised, {:.1} cleared; {:.1} replies and \
         progress reports a second sent by their tablets (acknowledged by kuzet once recorded).",
        busy.raised as f64 / secs,
        busy.cleared as f64 / secs,
        busy.reports as f64 / secs,
    );
    println!(
        "\np99 ratios: alarm -> offer / two-hop relay {:.2}x, / raw broker {:.2}x. kuzet received {} messages, \
         refused {}, {} positions late.\n",
        out.e2e.p99.as_secs_f64() / out.relay.p99.as_secs_f64(),
        out.e2e.p99.as_secs_f64() / out.raw.p99.as_secs_f64(),
        app.metrics().received.load(Ordering::Relaxed),
        app.metrics().rejects_total(),
        app.metrics().positions_late.load(Ordering::Relaxed),
    );
    if let Some(w) = app.writer() {
        let s = w.stats();
        println!(
            "Writer: {} rows in {} batches, {} positions shed, {} batches spooled.\n",
            s.rows_written.load(Ordering::Relaxed),
            s.batches_written.load(Ordering::Relaxed),
            s.positions_shed.load(Ordering::Relaxed),
            s.batches_spooled.load(Ordering::Relaxed),
        );
    }
    app.stop().await;
    let _ = std::fs::remove_dir_all(&spool);
    Ok(out)
}

/// p50 and p99 of signed microsecond values.
fn signed_p50_p99(mut v: Vec<i64>) -> (i64, i64) {
    if v.is_empty() {
        return (0, 0);
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    (at(0.5), at(0.99))
}

/// The two-hop baseline: a client that forwards every message on `bench/relay/in` to
/// `bench/relay/out` and does nothing else, on a thread of its own.
struct Relay {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Relay {
    async fn start(host: &str, port: u16) -> anyhow::Result<Self> {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<anyhow::Result<()>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let host = host.to_owned();
        std::thread::Builder::new().name("bench-relay".into()).spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
            };
            rt.block_on(async move {
                let (c, mut rx) = match client(&host, port, "bench-relay", None, &["bench/relay/in"]).await {
                    Ok(x) => x,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let mut stop = stop_rx;
                loop {
                    tokio::select! {
                        _ = &mut stop => return,
                        m = rx.recv() => {
                            let Some((_, _, payload)) = m else { return };
                            if c.publish_bytes("bench/relay/out", QoS::AtLeastOnce, false, payload).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        })?;
        ready_rx.await.context("relay thread died")??;
        Ok(Self { stop: Some(stop_tx) })
    }

    fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

struct Harness {
    feed: tokio::sync::broadcast::Receiver<Arc<kuzet::feed::LiveEvent>>,
    host: String,
    port: u16,
    alarms: usize,
    /// (button, site) of the schools whose alarms are measured.
    buttons: Vec<(String, String)>,
    /// (button, site) of the schools raising the background alarms.
    busy: Vec<(String, String)>,
    busy_hz: f64,
    min_run: Duration,
    go: tokio::sync::oneshot::Receiver<()>,
    /// kuzet's counters: positions taken, read each second.
    positions: Arc<kuzet::metrics::Metrics>,
}

/// What the device side measured.
struct Samples {
    /// Raw broker publish -> subscriber.
    raw: Vec<Duration>,
    /// Publish -> relay client -> subscriber.
    relayed: Vec<Duration>,
    /// Button alarm -> tablet offer.
    e2e: Vec<Duration>,
    /// kuzet's own alarm -> offer hop, from the incidents' timelines.
    inside: Vec<Duration>,
    /// The alarm -> units chosen part of it.
    chosen: Vec<Duration>,
    /// Button alarm -> the incident's first event on the consoles' feed.
    console: Vec<Duration>,
    /// That event minus the offer's arrival at the tablet, µs.
    gaps: Vec<i64>,
    elapsed: Duration,
    /// Positions kuzet took in each second of the run.
    received: Vec<u64>,
    busy: BusyCounts,
}

/// The background load as achieved.
#[derive(Default)]
struct BusyCounts {
    raised: u64,
    cleared: u64,
    /// Replies and progress reports sent.
    reports: u64,
}

/// Background alarms at `hz` from `schools`, each accepted and worked to cleared by the
/// tablet offered it. Runs until `stop`; returns what it achieved.
async fn busy_city(
    host: String,
    port: u16,
    schools: Vec<(String, String)>,
    hz: f64,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<BusyCounts> {
    let mut counts = BusyCounts::default();
    if hz <= 0.0 || schools.is_empty() {
        return Ok(counts);
    }
    let sites: std::collections::HashSet<String> = schools.iter().map(|s| s.1.clone()).collect();
    let (buttons, mut acks) =
        client(&host, port, "bench-busy-buttons", None, &["kuzet/v1/buttons/+/ack"]).await?;
    let (tablets, mut offers) =
        client(&host, port, "bench-busy-tablets", None, &["kuzet/v1/units/+/offers"]).await?;
    let reports = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / hz));
    let mut next = 0usize;
    while !stop.load(Ordering::Relaxed) {
        tokio::select! {
            _ = tick.tick() => {
                let (btn, _) = &schools[next % schools.len()];
                next += 1;
                let body = json!({"alarm_id": uuid::Uuid::new_v4(), "action": "raise", "kind": "intruder", "at": Utc::now()});
                buttons.publish(format!("kuzet/v1/buttons/{btn}/alarm"), QoS::AtLeastOnce, false, body.to_string()).await?;
                counts.raised += 1;
            }
            Some((_, topic, payload)) = offers.recv() => {
                let Ok(offer) = serde_json::from_slice::<Value>(&payload) else { continue };
                if !offer["site"]["id"].as_str().is_some_and(|s| sites.contains(s)) {
                    continue;
                }
                let unit = topic.split('/').nth(3).unwrap_or_default().to_owned();
                let (c, n) = (tablets.clone(), reports.clone());
                tokio::spawn(async move {
                    let reply = json!({"offer_id": offer["offer_id"], "decision": "accept"});
                    let _ = c.publish(format!("kuzet/v1/units/{unit}/reply"), QoS::AtLeastOnce, false, reply.to_string()).await;
                    n.fetch_add(1, Ordering::Relaxed);
                    for state in ["en_route", "on_scene", "cleared"] {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        let p = json!({"incident_id": offer["incident_id"], "state": state, "at": Utc::now()});
                        let _ = c.publish(format!("kuzet/v1/units/{unit}/progress"), QoS::AtLeastOnce, false, p.to_string()).await;
                        n.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            Some((_, _, payload)) = acks.recv() => {
                if serde_json::from_slice::<Value>(&payload).is_ok_and(|v| v["state"] == "cleared") {
                    counts.cleared += 1;
                }
            }
        }
    }
    counts.reports = reports.load(Ordering::Relaxed);
    Ok(counts)
}

async fn devices_side(h: Harness) -> anyhow::Result<Samples> {
    let (host, port) = (h.host.as_str(), h.port);
    // The alarm as a button sends it; the raw baseline uses a payload of the same size.
    let sample_alarm =
        json!({"alarm_id": uuid::Uuid::new_v4(), "action": "raise", "kind": "intruder", "at": Utc::now()})
            .to_string();

    // Raw broker round trip: publish -> subscriber, QoS 1, same library, same payload size;
    // and the same through the relay client (two hops).
    let (raw_pub, _) = client(host, port, "bench-raw-pub", None, &[]).await?;
    let (_raw_sub, mut raw_rx) =
        client(host, port, "bench-raw-sub", None, &["bench/raw", "bench/relay/out"]).await?;
    h.go.await.context("bench was stopped")?;
    // kuzet's intake, second by second.
    let (stop_count, mut counting) = tokio::sync::oneshot::channel::<()>();
    let metrics = h.positions.clone();
    let counter = tokio::spawn(async move {
        let mut per_s = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        let mut last = metrics.positions.load(Ordering::Relaxed);
        loop {
            tokio::select! {
                _ = &mut counting => return per_s,
                _ = tick.tick() => {
                    let now = metrics.positions.load(Ordering::Relaxed);
                    per_s.push(now - last);
                    last = now;
                }
            }
        }
    });

    let (button, mut acks) = client(host, port, "bench-buttons", None, &["kuzet/v1/buttons/+/ack"]).await?;
    // A console reading the incidents' final snapshots, for kuzet's own hop times.
    let (_console, mut snapshots) =
        client(host, port, "bench-console", None, &["kuzet/v1/incidents/+"]).await?;
    let (stop_console, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let console_task = tokio::spawn(async move {
        let (mut inside, mut chosen) = (Vec::new(), Vec::new());
        loop {
            tokio::select! {
                _ = &mut stopped => return (inside, chosen),
                m = snapshots.recv() => {
                    let Some((_, _, payload)) = m else { return (inside, chosen) };
                    let Ok(v) = serde_json::from_slice::<Value>(&payload) else { continue };
                    if v["state"] != "cancelled" {
                        continue;
                    }
                    let t_us = |event: &str| {
                        v["timeline"].as_array()?.iter().find(|e| e["event"] == event)?["t_us"].as_u64()
                    };
                    if let (Some(o), Some(c)) = (t_us("offer_published"), t_us("units_chosen")) {
                        inside.push(Duration::from_micros(o));
                        chosen.push(Duration::from_micros(c));
                    }
                }
            }
        }
    });
    // When each incident first reached the consoles' feed.
    let first_seen: Arc<std::sync::Mutex<std::collections::HashMap<String, Instant>>> = Arc::default();
    let seen = first_seen.clone();
    let mut feed = h.feed;
    let watcher = tokio::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match feed.recv().await {
                Ok(e) if e.text.starts_with(r#"{"type":"incident","#) => {
                    let at = Instant::now();
                    let Ok(v) = serde_json::from_str::<Value>(&e.text) else { continue };
                    if let Some(id) = v["data"]["incident_id"].as_str() {
                        seen.lock().unwrap_or_else(|p| p.into_inner()).entry(id.to_owned()).or_insert(at);
                    }
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
        }
    });
    let mut console = Vec::with_capacity(h.alarms);
    let (_tablets, mut offers) = client(
        host,
        port,
        "bench-tablets",
        None,
        &["kuzet/v1/units/+/offers", "kuzet/v1/units/+/incidents/+"],
    )
    .await?;

    let busy_stop = Arc::new(AtomicBool::new(false));
    let busy = tokio::spawn(busy_city(h.host.clone(), port, h.busy.clone(), h.busy_hz, busy_stop.clone()));
    let buttons = &h.buttons;
    let mut raw = Vec::with_capacity(h.alarms);
    let mut relayed = Vec::with_capacity(h.alarms);
    let mut gaps = Vec::with_capacity(h.alarms);
    let mut e2e = Vec::with_capacity(h.alarms);
    let started = Instant::now();
    let mut i = 0;
    while i < h.alarms || started.elapsed() < h.min_run {
        // Interleave the baseline with the real thing so both see the same load.
        let payload = sample_alarm.clone().into_bytes();
        let t = Instant::now();
        raw_pub.publish("bench/raw", QoS::AtLeastOnce, false, payload.clone()).await?;
        let (at, _) = next_where(&mut raw_rx, |topic, _| topic == "bench/raw").await?;
        raw.push(at - t);
        let t = Instant::now();
        raw_pub.publish("bench/relay/in", QoS::AtLeastOnce, false, payload).await?;
        let (at, _) = next_where(&mut raw_rx, |topic, _| topic == "bench/relay/out").await?;
        relayed.push(at - t);

        let (btn, site) = &buttons[i % buttons.len()];
        let (alarm_id, t, at, incident) = raise_until_offer(&button, &mut offers, btn, site).await?;
        e2e.push(at - t);
        // The feed's event may follow the offer.
        let wait_until = Instant::now() + Duration::from_secs(2);
        loop {
            let seen = first_seen.lock().unwrap_or_else(|p| p.into_inner()).get(&incident).copied();
            if let Some(seen) = seen {
                console.push(seen - t);
                let gap = if seen >= at {
                    (seen - at).as_micros() as i64
                } else {
                    -((at - seen).as_micros() as i64)
                };
                gaps.push(gap);
                break;
            }
            if Instant::now() > wait_until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        cancel_until_over(&button, &mut offers, &mut acks, btn, alarm_id, &incident).await?;
        i += 1;
    }
    let elapsed = started.elapsed();
    busy_stop.store(true, Ordering::Relaxed);
    let busy = busy.await.context("background load panicked")??;
    let _ = stop_count.send(());
    let received = counter.await.unwrap_or_default();
    let _ = stop_console.send(());
    let (inside, chosen) = console_task.await.unwrap_or_default();
    watcher.abort();
    Ok(Samples { raw, relayed, e2e, inside, chosen, console, gaps, elapsed, busy, received })
}
