//! `kuzet-bench`: alarm -> offer latency end to end through a private broker while units
//! report positions, beside the raw broker round trip measured in the same run with the
//! same client library and payload size; and the nearest-unit query over 100k units beside
//! a brute-force scan. With a database: the same alarm path while the writer records 20k
//! positions a second, the writer's throughput beside single-row inserts, and 100k devices
//! loaded from PostGIS with their actors spawned. Prints a Markdown report.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use chrono::Utc;
use kuzet_actors::geo::GeoPoint;
use kuzet_actors::ids::UnitId;
use kuzet_actors::index::UnitIndex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rumqttc::{AsyncClient, Event, EventLoop, Incoming, MqttOptions, QoS};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use kuzet::mosquitto::MosquittoProcess;
use kuzet::settings::Settings;
use kuzet::startup::Application;

use crate::sim::{self, CityPlan};

pub mod reconnect;
mod vision;

#[derive(clap::Args, Clone, Debug)]
pub struct BenchArgs {
    /// Alarms to measure end to end.
    #[arg(long, default_value_t = 10_000)]
    pub alarms: usize,
    /// Units reporting a position once a second during the run.
    #[arg(long, default_value_t = 1_000)]
    pub units: usize,
    /// Broker to run through: mosquitto (a private, plain instance), embedded (kuzet's own:
    /// Mosquitto with passwords, ACL and persistence) or both (the mqtt suite, one run each).
    #[arg(long, default_value = "mosquitto")]
    pub broker: String,
    /// Units in the nearest-unit query benchmark.
    #[arg(long, default_value_t = 100_000)]
    pub index_units: usize,
    /// What to run: all, index, mqtt, flood, roads, store, vision or reconnect (not part of all).
    #[arg(long, default_value = "all")]
    pub suite: String,
    /// A PostgreSQL + PostGIS server for the store benchmarks; each run makes fresh databases
    /// on it. Without it they are skipped.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Position reports per unit and second while alarms are measured with the writer on.
    #[arg(long, default_value_t = 20.0)]
    pub position_hz: f64,
    /// Devices in the load benchmark.
    #[arg(long, default_value_t = 100_000)]
    pub load_devices: usize,
    /// The OpenStreetMap extract for the road benchmark.
    #[arg(long, default_value = "target/osm/Helsinki.osm.pbf")]
    pub extract: std::path::PathBuf,
    /// The face models and ONNX Runtime for the vision benchmark (scripts/models.sh).
    #[arg(long, default_value = "target/models")]
    pub models_dir: std::path::PathBuf,
    /// Other alarms a second while alarms are measured, each accepted and worked to cleared
    /// by a tablet (a reply and three progress reports, acknowledged once recorded).
    #[arg(long, default_value_t = 10.0)]
    pub busy_hz: f64,
    #[command(flatten)]
    pub reconnect: reconnect::ReconnectArgs,
    /// The flood suite: alarms measured in each phase (without, then with the flood).
    #[arg(long, default_value_t = 1_000)]
    pub flood_alarms: usize,
    /// The flood suite: messages a second the flooding button and tablet each try to send;
    /// 0: as fast as their clients go.
    #[arg(long, default_value_t = 0.0)]
    pub flood_hz: f64,
}

pub struct Percentiles {
    pub n: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
}

pub fn percentiles(mut v: Vec<Duration>) -> Percentiles {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    Percentiles { n: v.len(), p50: at(0.50), p99: at(0.99), p999: at(0.999), max: v[v.len() - 1] }
}

fn us(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e6)
}

fn row(name: &str, p: &Percentiles) -> String {
    format!("| {name} | {} | {} | {} | {} | {} |", p.n, us(p.p50), us(p.p99), us(p.p999), us(p.max))
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    println!("## kuzet-bench\n");
    println!(
        "machine: {}, {} cores\n",
        cpu_model(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    let all = args.suite == "all";
    anyhow::ensure!(
        ["all", "index", "mqtt", "flood", "roads", "store", "vision", "reconnect"]
            .contains(&args.suite.as_str()),
        "--suite must be all, index, mqtt, flood, roads, store, vision or reconnect"
    );
    // Not in `all`: its storms take minutes.
    if args.suite == "reconnect" {
        return reconnect::reconnect_bench(&args.reconnect).await;
    }
    if all || args.suite == "vision" {
        vision::vision_bench(&args.models_dir)?;
    }
    if all || args.suite == "index" {
        index_bench(args.index_units);
    }
    if all || args.suite == "roads" {
        roads_bench(&args.extract)?;
    }
    if all || args.suite == "mqtt" {
        mqtt_bench(&args, None, 1.0).await?;
    }
    if all || args.suite == "flood" {
        flood_bench(&args, args.database_url.as_deref()).await?;
    }
    let store = all || args.suite == "store";
    match (&args.database_url, store || args.suite == "mqtt") {
        (Some(base), true) => {
            if store {
                writer_bench(base).await?;
                load_bench(base, args.load_devices).await?;
                if !all {
                    // The foundation's run, for the alarm p99 beside the one below.
                    mqtt_bench(&args, None, 1.0).await?;
                }
            }
            mqtt_bench(&args, Some(fresh_database(base).await?), args.position_hz).await?;
        }
        (None, true) => println!("(store benchmarks skipped: no --database-url / DATABASE_URL)\n"),
        _ => {}
    }
    Ok(())
}

/// A new empty database on the server `base` names; its URL.
async fn fresh_database(base: &str) -> anyhow::Result<String> {
    use sqlx::Connection;
    let name = format!("kuzet_bench_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(base).await.context("cannot reach the database")?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await?;
    let (prefix, _) = base.rsplit_once('/').context("database url has no database name")?;
    Ok(format!("{prefix}/{name}"))
}

/// Position rows per second: one INSERT per row (autocommit), beside the batching writer.
async fn writer_bench(base: &str) -> anyhow::Result<()> {
    const SINGLE: usize = 5_000;
    const BATCHED: usize = 200_000;
    let url = fresh_database(base).await?;
    let pool = kuzet::store::connect(&url).await?;
    let mut rng = StdRng::seed_from_u64(7);
    let centre = GeoPoint::new(43.2389, 76.8897).expect("constant point");
    let t0 = Utc::now();
    let t = Instant::now();
    for i in 0..SINGLE {
        let p = sim::random_point(&mut rng, centre, 8_000.0);
        sqlx::query(
            "INSERT INTO unit_positions (unit_id, at, received_at, position, speed_mps, heading_deg)
             VALUES ($1, $2, $2, ST_SetSRID(ST_MakePoint($3, $4), 4326)::geography, 9.0, 90.0)",
        )
        .bind(format!("unit-{:04}", i % 1000))
        .bind(t0 + chrono::Duration::microseconds(i as i64))
        .bind(p.lon())
        .bind(p.lat())
        .execute(&pool)
        .await?;
    }
    let single = SINGLE as f64 / t.elapsed().as_secs_f64();

    let spool = std::env::temp_dir().join(format!("kuzet-bench-spool-{}", uuid::Uuid::new_v4().simple()));
    let writer = kuzet::store::writer::start(kuzet::store::writer::WriterConfig {
        url: url.clone(),
        spool_dir: spool.clone(),
        batch_max: 4096,
        queue: 65_536,
    })
    .await?;
    let t1 = t0 + chrono::Duration::seconds(3600);
    let t = Instant::now();
    let mut sent = 0usize;
    while sent < BATCHED {
        // Fill the queue, then wait until it is written: never more than the queue holds.
        for _ in 0..50_000.min(BATCHED - sent) {
            let p = kuzet_actors::unit::Position {
                point: sim::random_point(&mut rng, centre, 8_000.0),
                at: t1 + chrono::Duration::microseconds(sent as i64),
                speed_mps: Some(9.0),
                heading_deg: Some(90.0),
                received: kuzet_actors::outbound::Received::now(),
            };
            writer.position(&format!("unit-{:04}", sent % 1000), &p);
            sent += 1;
        }
        writer.flush().await;
    }
    let batched = BATCHED as f64 / t.elapsed().as_secs_f64();
    let shed = writer.stats().positions_shed.load(Ordering::Relaxed);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM unit_positions").fetch_one(&pool).await?;
    anyhow::ensure!(stored as usize == SINGLE + BATCHED - shed as usize, "rows went missing: {stored}");
    let _ = std::fs::remove_dir_all(&spool);
    println!("### Position history into PostGIS\n");
    println!("| path | rows | rows/s |\n|---|---|---|");
    println!("| one INSERT per row, autocommit (baseline) | {SINGLE} | {single:.0} |");
    println!("| batching writer (multi-row UNNEST, one transaction per batch) | {BATCHED} | {batched:.0} |");
    println!(
        "\nratio {:.1}x; {} batches, {shed} shed.\n",
        batched / single,
        writer.stats().batches_written.load(Ordering::Relaxed)
    );
    Ok(())
}

/// 100k devices loaded from PostGIS and their actors spawned: seconds and RSS.
async fn load_bench(base: &str, n: usize) -> anyhow::Result<()> {
    use actix::Actor as _;
    use kuzet_actors::registry::{ListIncidents, Registry, RegistryConfig};
    let url = fresh_database(base).await?;
    let pool = kuzet::store::connect(&url).await?;
    kuzet::store::devices::generate_city(&pool, n, 11).await?;
    let rss0 = rss_kib();
    let t = Instant::now();
    let devices = kuzet::store::devices::load(&pool).await?;
    let loaded = t.elapsed();
    let settings = Settings::defaults();
    let router = kuzet_actors::router::Router::new(settings.dispatch.position_max_age()).start();
    let gateway = kuzet::mqtt::gateway::Gateway::new(
        rumqttc::AsyncClient::new(MqttOptions::new("bench-load", "127.0.0.1", 1), 10).0,
        Arc::new(kuzet::metrics::Metrics::default()),
    )
    .start();
    let outbox = kuzet_actors::outbound::Outbox::default()
        .with_sink("mqtt", kuzet_actors::outbound::ActorSink::all(gateway.recipient()));
    let counts = (
        devices.sites.len(),
        devices.sites.iter().map(|s| s.buttons.len()).sum::<usize>(),
        devices.units.len(),
    );
    let registry = Registry::new(
        devices,
        RegistryConfig { plans: settings.dispatch.plans.clone(), ..Default::default() },
        router,
        outbox,
    );
    let directory = registry.directory();
    let registry = registry.start();
    // Answered once the registry has started, i.e. every device actor is spawned.
    registry.send(ListIncidents).await?;
    let total = t.elapsed();
    let rss = rss_kib().saturating_sub(rss0);
    let (buttons, units) = directory.counts();
    anyhow::ensure!(buttons + units == counts.1 + counts.2, "not every device got its actor");
    println!("### {n} devices loaded from PostGIS, their actors spawned\n");
    println!("| step | seconds |\n|---|---|");
    println!("| load (3 queries) | {:.2} |", loaded.as_secs_f64());
    println!(
        "| load + spawn {buttons} button and {units} unit actors ({} sites) | {:.2} |",
        counts.0,
        total.as_secs_f64()
    );
    println!("\nRSS grew by {:.0} MiB.\n", rss as f64 / 1024.0);

    // The same devices as one GeoJSON file through `kuzet import devices`, into a new database.
    let mut features = Vec::with_capacity(n + n / 20);
    let devices = kuzet::store::devices::load(&pool).await?;
    for s in &devices.sites {
        let kind = serde_json::to_value(s.kind)?;
        features.push(json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [s.location.lon(), s.location.lat()]},
            "properties": {"kind": "site", "id": s.id.as_str(), "name": s.name, "site_kind": kind}}));
        for b in &s.buttons {
            features.push(json!({"type": "Feature", "geometry": null,
                "properties": {"kind": "button", "id": b.id.as_str(), "site": s.id.as_str(), "room": b.room}}));
        }
    }
    for u in &devices.units {
        features.push(json!({"type": "Feature", "geometry": null,
            "properties": {"kind": "unit", "id": u.id.as_str(), "callsign": u.callsign}}));
    }
    let text = json!({"type": "FeatureCollection", "features": features}).to_string();
    let pool2 = kuzet::store::connect(&fresh_database(base).await?).await?;
    let t = Instant::now();
    let report = kuzet::store::devices::import_geojson(&pool2, &text, "import:bench.geojson", false)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "`kuzet import devices` of the same {} features ({:.1} MB of GeoJSON): {:.2} s.\n",
        report.features,
        text.len() as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Drive times for 1 incident x 8 candidates: contraction hierarchies beside plain Dijkstra
/// and straight-line ranking; preparation cost for the extract and a grid 10x its size.
fn roads_bench(extract: &std::path::Path) -> anyhow::Result<()> {
    use kuzet::roads::{self, graph::RoadGraph, RoadNetwork};
    use kuzet_actors::travel::TravelTimes;

    let t = Instant::now();
    let helsinki = RoadGraph::build(&roads::osm::read(extract)?);
    let read_s = t.elapsed().as_secs_f64();
    anyhow::ensure!(helsinki.node_count() > 1, "{} has no drivable roads", extract.display());
    let side = ((helsinki.node_count() * 10) as f64).sqrt().round() as u32;
    let origin = GeoPoint::new(60.10, 24.80).expect("constant point");
    let graphs = [
        (format!("{} (OpenStreetMap)", extract.display()), helsinki),
        (format!("synthetic grid {side} x {side} (10x)"), roads::grid(side, origin)),
    ];
    println!("### Drive times: 1 incident x 8 candidates\n");
    println!("Reading and building the Helsinki graph from the extract: {:.0} ms.\n", read_s * 1e3);
    println!("| graph | nodes | edges | contraction s | prepared size MiB | RSS growth MiB |\n|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for (name, g) in graphs {
        let (nodes, edges) = (g.node_count(), g.edges.len());
        let rev = roads::reverse_adjacency(&g);
        let before = rss_kib();
        let t = Instant::now();
        let net = RoadNetwork::from_graph(g);
        let prep = t.elapsed().as_secs_f64();
        let grown = rss_kib().saturating_sub(before) as f64 / 1024.0;
        let size = bincode::serialized_size(&net.prepared_parts()).unwrap_or(0) as f64 / (1024.0 * 1024.0);
        println!("| {name} | {nodes} | {edges} | {prep:.2} | {size:.1} | {grown:.1} |");
        let mut rng = StdRng::seed_from_u64(11);
        let (mut ch, mut dij, mut straight, mut full) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..2000 {
            let target = rng.random_range(0..nodes as u32);
            let sources: Vec<u32> = (0..8).map(|_| rng.random_range(0..nodes as u32)).collect();
            let t = Instant::now();
            let times: Vec<Option<u64>> =
                sources.iter().map(|s| net.node_time(*s, target).map(|x| x.0)).collect();
            ch.push(t.elapsed());
            let t = Instant::now();
            let want = roads::dijkstra_to(net.graph(), &rev, target, &sources);
            dij.push(t.elapsed());
            anyhow::ensure!(times == want, "contraction hierarchy and Dijkstra disagree");
            let to = net.graph().point(target);
            let points: Vec<GeoPoint> = sources.iter().map(|s| net.graph().point(*s)).collect();
            let t = Instant::now();
            let mut d: Vec<(f64, usize)> =
                points.iter().enumerate().map(|(i, p)| (p.distance_m(&to), i)).collect();
            d.sort_by(|a, b| a.0.total_cmp(&b.0));
            std::hint::black_box(d);
            straight.push(t.elapsed());
            let t = Instant::now();
            std::hint::black_box(net.legs(&points, to).ok());
            full.push(t.elapsed());
        }
        rows.push((name, percentiles(ch), percentiles(dij), percentiles(straight), percentiles(full)));
    }
    println!("\n| graph | method | n | p50 µs | p99 µs | p99.9 µs | max µs |\n|---|---|---|---|---|---|---|");
    for (name, ch, dij, straight, full) in &rows {
        for (method, p) in [
            ("8 CH queries", ch),
            ("plain Dijkstra to all 8 (baseline)", dij),
            ("straight-line ranking (baseline)", straight),
            ("dispatch's full re-rank: snap + 8 CH + lengths + routes", full),
        ] {
            println!(
                "| {name} | {method} | {} | {} | {} | {} | {} |",
                p.n,
                us(p.p50),
                us(p.p99),
                us(p.p999),
                us(p.max)
            );
        }
    }
    println!();
    Ok(())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown cpu".into())
}

/// Nearest available unit among `n`: the R-tree query beside a brute-force scan.
fn index_bench(n: usize) {
    let mut rng = StdRng::seed_from_u64(42);
    let centre = GeoPoint::new(43.2389, 76.8897).expect("constant point");
    let now = Instant::now();
    let mut idx = UnitIndex::new();
    let mut pts = Vec::with_capacity(n);
    let build = Instant::now();
    for i in 0..n {
        let id = UnitId::parse(&format!("u{i}")).expect("generated id");
        let p = sim::random_point(&mut rng, centre, 30_000.0);
        idx.set_eligible(&id, true);
        idx.update_position(&id, p, now);
        pts.push(p);
    }
    let build = build.elapsed();
    let max_age = Duration::from_secs(120);
    let queries: Vec<GeoPoint> =
        (0..100_000).map(|_| sim::random_point(&mut rng, centre, 30_000.0)).collect();
    let mut one = Vec::with_capacity(queries.len());
    let mut eight = Vec::with_capacity(queries.len());
    for q in &queries {
        let t = Instant::now();
        std::hint::black_box(idx.nearest(q, 1, &[], max_age, now));
        one.push(t.elapsed());
        let t = Instant::now();
        std::hint::black_box(idx.nearest(q, 8, &[], max_age, now));
        eight.push(t.elapsed());
    }
    let mut brute = Vec::new();
    for q in queries.iter().take(300) {
        let t = Instant::now();
        let best = pts.iter().map(|p| q.distance_m(p)).fold(f64::INFINITY, f64::min);
        std::hint::black_box(best);
        brute.push(t.elapsed());
    }
    // A position update is a remove and an insert in the tree.
    let mut moves = Vec::with_capacity(10_000);
    for i in 0..10_000 {
        let id = UnitId::parse(&format!("u{}", i % n)).expect("generated id");
        let p = sim::random_point(&mut rng, centre, 30_000.0);
        let t = Instant::now();
        idx.update_position(&id, p, now);
        moves.push(t.elapsed());
    }
    let (one, eight, brute, moves) =
        (percentiles(one), percentiles(eight), percentiles(brute), percentiles(moves));
    println!("### Nearest available unit, {n} units (index built in {:.0} ms)\n", build.as_secs_f64() * 1e3);
    println!("| query | n | p50 µs | p99 µs | p99.9 µs | max µs |\n|---|---|---|---|---|---|");
    println!("{}", row("R-tree, 1 nearest", &one));
    println!("{}", row("R-tree, 8 nearest", &eight));
    println!("{}", row("brute-force scan, 1 nearest (baseline)", &brute));
    println!("{}", row("position update (remove + insert)", &moves));
    println!(
        "\nR-tree 1-NN p99 is {:.0}x faster than the scan's p50.\n",
        brute.p50.as_secs_f64() / one.p99.as_secs_f64().max(1e-9)
    );
}

/// The harness's client ids, each an account on kuzet's broker in the bench.
const BENCH_ACCOUNTS: &[&str] = &[
    "bench-busy-buttons",
    "bench-busy-tablets",
    "bench-raw-pub",
    "bench-raw-sub",
    "bench-positions-0",
    "bench-positions-1",
    "bench-positions-2",
    "bench-positions-3",
    "bench-buttons",
    "bench-console",
    "bench-tablets",
    "bench-flood-positions",
    "bench-flood-buttons",
    "bench-flood-tablets",
    "bench-flooding-button",
    "bench-flooding-tablet",
];
static BENCH_PASSWORD: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// A QoS 1 client whose received publishes come out of a channel with their arrival time.
async fn client(
    host: &str,
    port: u16,
    id: &str,
    creds: Option<(&str, &str)>,
    subs: &[&str],
) -> anyhow::Result<(AsyncClient, mpsc::UnboundedReceiver<(Instant, String, bytes::Bytes)>)> {
    let mut o = MqttOptions::new(id, host, port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(1 << 20, 1 << 20);
    o.set_inflight(1000);
    if let Some((u, p)) = creds {
        o.set_credentials(u, p);
    } else if let Some(p) = BENCH_PASSWORD.get() {
        o.set_credentials(id, p.as_str());
    }
    let (c, mut el) = AsyncClient::new(o, 10_000);
    kuzet::mqtt::gateway::no_delay(&mut el);
    for s in subs {
        c.subscribe(*s, QoS::AtLeastOnce).await?;
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(pump(el, tx, subs.len(), ready_tx));
    tokio::time::timeout(Duration::from_secs(10), ready_rx)
        .await
        .context("bench client did not connect")??;
    Ok((c, rx))
}

async fn pump(
    mut el: EventLoop,
    tx: mpsc::UnboundedSender<(Instant, String, bytes::Bytes)>,
    subs: usize,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut acks = 0;
    loop {
        match el.poll().await {
            Ok(Event::Incoming(Incoming::ConnAck(_))) if subs == 0 => {
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
            }
            Ok(Event::Incoming(Incoming::SubAck(_))) => {
                acks += 1;
                if acks == subs {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                }
            }
            Ok(Event::Incoming(Incoming::Publish(p))) => {
                if tx.send((Instant::now(), p.topic, p.payload)).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(_) => {
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A measured school's raise: the alarm's id, when it was sent, when its offer arrived, and
/// the incident's id.
async fn raise_until_offer(
    button: &AsyncClient,
    offers: &mut mpsc::UnboundedReceiver<(Instant, String, bytes::Bytes)>,
    btn: &str,
    site: &str,
) -> anyhow::Result<(uuid::Uuid, Instant, Instant, String)> {
    let alarm_id = uuid::Uuid::new_v4();
    let body =
        json!({"alarm_id": alarm_id, "action": "raise", "kind": "intruder", "at": Utc::now()}).to_string();
    let t = Instant::now();
    button.publish(format!("kuzet/v1/buttons/{btn}/alarm"), QoS::AtLeastOnce, false, body).await?;
    let (at, offer) =
        next_where(offers, |topic, v| topic.ends_with("/offers") && v["site"]["id"] == site).await?;
    let incident = offer["incident_id"].as_str().unwrap_or_default().to_owned();
    Ok((alarm_id, t, at, incident))
}

/// Cancels the alarm and waits until its unit is released and the school's incident is over.
async fn cancel_until_over(
    button: &AsyncClient,
    offers: &mut mpsc::UnboundedReceiver<(Instant, String, bytes::Bytes)>,
    acks: &mut mpsc::UnboundedReceiver<(Instant, String, bytes::Bytes)>,
    btn: &str,
    alarm_id: uuid::Uuid,
    incident: &str,
) -> anyhow::Result<()> {
    let cancel = json!({"alarm_id": alarm_id, "action": "cancel", "at": Utc::now()}).to_string();
    button.publish(format!("kuzet/v1/buttons/{btn}/alarm"), QoS::AtLeastOnce, false, cancel).await?;
    next_where(offers, |topic, v| topic.contains("/incidents/") && v["incident_id"] == incident).await?;
    next_where(acks, |_, v| v["state"] == "cancelled" && v["incident_id"] == incident).await?;
    Ok(())
}

async fn next_where(
    rx: &mut mpsc::UnboundedReceiver<(Instant, String, bytes::Bytes)>,
    f: impl Fn(&str, &Value) -> bool,
) -> anyhow::Result<(Instant, Value)> {
    let wait = async {
        while let Some((at, topic, payload)) = rx.recv().await {
            let v: Value = serde_json::from_slice(&payload).unwrap_or(Value::Null);
            if f(&topic, &v) {
                return Some((at, v));
            }
        }
        None
    };
    match tokio::time::timeout(Duration::from_secs(10), wait).await {
        Ok(Some(x)) => Ok(x),
        _ => bail!("expected message did not arrive within 10 s"),
    }
}

/// kuzet on a private broker for a simulated city, units wanting one unit per school alarm.
struct BenchCity {
    app: Application,
    devices: kuzet_actors::spec::Devices,
    plan: CityPlan,
    spool: std::path::PathBuf,
    _mosquitto: Option<MosquittoProcess>,
}

async fn bench_city(
    args: &BenchArgs,
    database: Option<&str>,
    tweak: impl FnOnce(&mut Settings),
) -> anyhow::Result<BenchCity> {
    let plan = CityPlan {
        centre: GeoPoint::new(43.2389, 76.8897).expect("constant point"),
        radius_m: 8_000.0,
        schools: 200,
        units: args.units,
        seed: 3,
    };
    let devices = sim::city(&plan);
    let mut settings = Settings::defaults();
    settings.http.listen = String::new();
    let spool = std::env::temp_dir().join(format!("kuzet-bench-spool-{}", uuid::Uuid::new_v4().simple()));
    settings.database.spool_dir = spool.clone();
    if let Some(url) = database {
        settings.database.url = kuzet::settings::Secret::new(url);
    }
    settings.broker.data_dir =
        std::env::temp_dir().join(format!("kuzet-bench-broker-{}", uuid::Uuid::new_v4().simple()));
    // The harness's clients speak for many devices each: on kuzet's broker they sign in as
    // integration accounts allowed under kuzet/v1/, as a load generator would be set up.
    // One password for the whole process: the clients of every run in it sign in with it.
    let bench_password = BENCH_PASSWORD.get_or_init(kuzet::brokerfiles::generate_password).clone();
    settings.broker.integrations = BENCH_ACCOUNTS
        .iter()
        .map(|u| kuzet::settings::Integration {
            username: (*u).to_owned(),
            password: kuzet::settings::Secret::new(bench_password.clone()),
            read: vec!["kuzet/v1/#".into(), "bench/#".into()],
            write: vec!["kuzet/v1/#".into(), "bench/#".into()],
        })
        .collect();
    settings.broker.listen = format!("127.0.0.1:{}", kuzet::mosquitto::free_port()?).parse()?;
    settings.broker.ws_listen = String::new();
    let mosquitto = match args.broker.as_str() {
        "mosquitto" => {
            let m = MosquittoProcess::start(None)?;
            settings.mqtt.url = format!("mqtt://127.0.0.1:{}", m.port);
            Some(m)
        }
        "embedded" => None,
        other => bail!("--broker must be mosquitto or embedded (both: the mqtt suite only), not {other}"),
    };
    if let Some(p) = settings.dispatch.plans.get_mut(&kuzet_actors::model::IncidentKind::SchoolAlarm) {
        p.units_required = 1;
    }
    tweak(&mut settings);
    let app = Application::build(settings, devices.clone()).await?;
    anyhow::ensure!(app.wait_ready(Duration::from_secs(10)).await, "kuzet did not connect");
    Ok(BenchCity { app, devices, plan, spool, _mosquitto: mosquitto })
}

/// The alarm suite; with `--broker both`, once through a plain Mosquitto and once through
/// kuzet's own broker in the same run, and the ratio of their alarm -> offer p99.
async fn mqtt_bench(args: &BenchArgs, database: Option<String>, position_hz: f64) -> anyhow::Result<()> {
    if args.broker != "both" {
        return mqtt_bench_on(args, database, position_hz).await.map(|_| ());
    }
    let on = |broker: &str| BenchArgs { broker: broker.to_owned(), ..args.clone() };
    let plain = mqtt_bench_on(&on("mosquitto"), database.clone(), position_hz).await?;
    let own = mqtt_bench_on(&on("embedded"), database, position_hz).await?;
    println!(
        "kuzet's own broker against a plain Mosquitto, same run: alarm -> offer p99 {:.0} µs against {:.0} µs \
         ({:.2}x), p50 {:.0} µs against {:.0} µs ({:.2}x).\n",
        own.p99.as_secs_f64() * 1e6,
        plain.p99.as_secs_f64() * 1e6,
        own.p99.as_secs_f64() / plain.p99.as_secs_f64(),
        own.p50.as_secs_f64() * 1e6,
        plain.p50.as_secs_f64() * 1e6,
        own.p50.as_secs_f64() / plain.p50.as_secs_f64(),
    );
    Ok(())
}

/// One run of the alarm suite on `args.broker`; the alarm -> offer percentiles.
async fn mqtt_bench_on(
    args: &BenchArgs,
    database: Option<String>,
    position_hz: f64,
) -> anyhow::Result<Percentiles> {
    let BenchCity { app, devices, plan, spool, _mosquitto } = bench_city(args, database.as_deref(), |s| {
        // The load is every unit reporting at position_hz: let each take that, with room.
        s.limits.position.per_s = s.limits.position.per_s.max(2.0 * position_hz);
    })
    .await?;
    let (host, port) = (app.broker().0.to_owned(), app.broker().1);

    // The devices run on a thread and runtime of their own, as they would in other processes:
    // kuzet's actors keep the actix thread to themselves.
    let (movers_tx, movers_rx) = tokio::sync::oneshot::channel();
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
        units: devices.units.iter().map(|u| u.id.to_string()).collect(),
        buttons: measured.to_vec(),
        busy: busy.to_vec(),
        busy_hz: args.busy_hz,
        centre: plan.centre,
        position_hz,
        movers_started: movers_tx,
        go: go_rx,
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
    movers_rx.await.context("device thread ended early")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.available_units().await < args.units {
        if Instant::now() > deadline {
            bail!("only {} of {} units reported within 30 s", app.available_units().await, args.units);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = go_tx.send(());
    let Samples { raw, e2e, inside, console, elapsed, busy } =
        done_rx.await.context("device thread ended early")??;
    let (raw, e2e) = (percentiles(raw), percentiles(e2e));
    anyhow::ensure!(
        console.len() == args.alarms,
        "the console feed saw {} of {} incidents",
        console.len(),
        args.alarms
    );
    let console = percentiles(console);
    anyhow::ensure!(!inside.is_empty(), "no incident timeline was seen");
    let inside = percentiles(inside);
    println!(
        "### Alarm -> offer at the tablet, through {} on loopback, {} units reporting at {position_hz} Hz, {}\n",
        if args.broker == "embedded" {
            "kuzet's own broker (Mosquitto with every account's password and ACL, persistence on)"
        } else {
            "a plain Mosquitto (anonymous, no ACL, no persistence)"
        },
        args.units,
        if database.is_some() { "every alarm, incident and position recorded in PostGIS" } else { "no database" }
    );
    println!("| path | n | p50 µs | p99 µs | p99.9 µs | max µs |\n|---|---|---|---|---|---|");
    println!("{}", row("raw broker publish -> subscriber (baseline)", &raw));
    println!("{}", row("button alarm -> kuzet -> tablet offer", &e2e));
    println!("{}", row("inside kuzet: alarm received -> offer handed to the MQTT client", &inside));
    println!("{}", row("button alarm -> kuzet -> the console's live feed (incident event)", &console));
    let secs = elapsed.as_secs_f64();
    println!(
        "\nMeanwhile (achieved, over the run): {:.1} other alarms a second raised, {:.1} cleared; {:.1} replies and \
         progress reports a second sent by their tablets (acknowledged by kuzet once recorded).",
        busy.raised as f64 / secs,
        busy.cleared as f64 / secs,
        busy.reports as f64 / secs,
    );
    println!(
        "\np99 ratio (kuzet / raw broker): {:.2}x; p50 ratio {:.2}x. Run took {:.1} s; kuzet received {} messages, refused {}, shed {} positions.\n",
        e2e.p99.as_secs_f64() / raw.p99.as_secs_f64(),
        e2e.p50.as_secs_f64() / raw.p50.as_secs_f64(),
        elapsed.as_secs_f64(),
        app.metrics().received.load(Ordering::Relaxed),
        app.metrics().rejects_total(),
        app.metrics().positions_shed.load(Ordering::Relaxed),
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
    Ok(e2e)
}

struct Harness {
    feed: tokio::sync::broadcast::Receiver<Arc<kuzet::feed::LiveEvent>>,
    host: String,
    port: u16,
    alarms: usize,
    units: Vec<String>,
    /// (button, site) of the schools whose alarms are measured.
    buttons: Vec<(String, String)>,
    /// (button, site) of the schools raising the background alarms.
    busy: Vec<(String, String)>,
    busy_hz: f64,
    centre: GeoPoint,
    position_hz: f64,
    movers_started: tokio::sync::oneshot::Sender<()>,
    go: tokio::sync::oneshot::Receiver<()>,
}

/// What the device side measured.
struct Samples {
    /// Raw broker publish -> subscriber.
    raw: Vec<Duration>,
    /// Button alarm -> tablet offer.
    e2e: Vec<Duration>,
    /// kuzet's own alarm -> offer hop, from the incidents' timelines.
    inside: Vec<Duration>,
    /// Button alarm -> the incident's first event on the consoles' feed.
    console: Vec<Duration>,
    elapsed: Duration,
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

    // Raw broker round trip: publish -> subscriber, QoS 1, same library, same payload size.
    let (raw_pub, _) = client(host, port, "bench-raw-pub", None, &[]).await?;
    let (_raw_sub, mut raw_rx) = client(host, port, "bench-raw-sub", None, &["bench/raw"]).await?;

    // Units moving: positions for every unit once a second, spread evenly over the second.
    let stop = Arc::new(AtomicBool::new(false));
    let mut movers = Vec::new();
    let publishers = 4usize.min(h.units.len().max(1));
    for k in 0..publishers {
        let (c, _) = client(host, port, &format!("bench-positions-{k}"), None, &[]).await?;
        let ids: Vec<String> = h.units.iter().skip(k).step_by(publishers).cloned().collect();
        let stop = stop.clone();
        let centre = h.centre;
        let hz = h.position_hz;
        movers.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(k as u64);
            let mut pos: Vec<GeoPoint> =
                ids.iter().map(|_| sim::random_point(&mut rng, centre, 8_000.0)).collect();
            let gap = Duration::from_secs_f64(1.0 / (ids.len().max(1) as f64 * hz));
            let mut tick = tokio::time::interval(gap);
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let p = pos[i].offset(rng.random_range(-10.0..10.0), rng.random_range(-10.0..10.0));
                pos[i] = p;
                let body =
                    json!({"at": Utc::now(), "lat": p.lat(), "lon": p.lon(), "speed_mps": 9.0}).to_string();
                let _ = c
                    .publish(format!("kuzet/v1/units/{}/position", ids[i]), QoS::AtLeastOnce, false, body)
                    .await;
                i = (i + 1) % ids.len();
            }
        }));
    }
    // kuzet's side checks that every unit is in its index before alarms start.
    let _ = h.movers_started.send(());
    h.go.await.context("bench was stopped")?;

    let (button, mut acks) = client(host, port, "bench-buttons", None, &["kuzet/v1/buttons/+/ack"]).await?;
    // A console reading the incidents' final snapshots, for kuzet's own hop times.
    let (_console, mut snapshots) =
        client(host, port, "bench-console", None, &["kuzet/v1/incidents/+"]).await?;
    let (stop_console, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let console_task = tokio::spawn(async move {
        let mut inside = Vec::new();
        loop {
            tokio::select! {
                _ = &mut stopped => return inside,
                m = snapshots.recv() => {
                    let Some((_, _, payload)) = m else { return inside };
                    let Ok(v) = serde_json::from_slice::<Value>(&payload) else { continue };
                    if v["state"] != "cancelled" {
                        continue;
                    }
                    let first = v["timeline"].as_array().and_then(|t| t.iter().find(|e| e["event"] == "offer_published"));
                    if let Some(t_us) = first.and_then(|e| e["t_us"].as_u64()) {
                        inside.push(Duration::from_micros(t_us));
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
    let mut e2e = Vec::with_capacity(h.alarms);
    let started = Instant::now();
    for i in 0..h.alarms {
        // Interleave the baseline with the real thing so both see the same load.
        let payload = sample_alarm.clone().into_bytes();
        let t = Instant::now();
        raw_pub.publish("bench/raw", QoS::AtLeastOnce, false, payload).await?;
        let (at, _) = next_where(&mut raw_rx, |_, _| true).await?;
        raw.push(at - t);

        let (btn, site) = &buttons[i % buttons.len()];
        let (alarm_id, t, at, incident) = raise_until_offer(&button, &mut offers, btn, site).await?;
        e2e.push(at - t);
        // The feed's snapshot is gathered for a few milliseconds: it may follow the offer.
        let wait_until = Instant::now() + Duration::from_secs(2);
        loop {
            let seen = first_seen.lock().unwrap_or_else(|p| p.into_inner()).get(&incident).copied();
            if let Some(seen) = seen {
                console.push(seen - t);
                break;
            }
            if Instant::now() > wait_until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        cancel_until_over(&button, &mut offers, &mut acks, btn, alarm_id, &incident).await?;
    }
    let elapsed = started.elapsed();
    busy_stop.store(true, Ordering::Relaxed);
    let busy = busy.await.context("background load panicked")??;
    stop.store(true, Ordering::Relaxed);
    for m in movers {
        let _ = m.await;
    }
    let _ = stop_console.send(());
    let inside = console_task.await.unwrap_or_default();
    watcher.abort();
    Ok(Samples { raw, e2e, inside, console, elapsed, busy })
}

/// Other schools' alarms -> offer at the tablet, first with nothing else going on, then while
/// one school's button floods alarms and one tablet floods positions as fast as their
/// clients go (or at `--flood-hz`): how much one misbehaving device costs everyone else.
async fn flood_bench(args: &BenchArgs, database: Option<&str>) -> anyhow::Result<()> {
    let database = match database {
        Some(base) => Some(fresh_database(base).await?),
        None => None,
    };
    let BenchCity { app, devices, plan, spool, _mosquitto } =
        bench_city(args, database.as_deref(), |_| {}).await?;
    let (host, port) = (app.broker().0.to_owned(), app.broker().1);
    let schools: Vec<(String, String)> =
        devices.sites.iter().map(|s| (s.buttons[0].id.to_string(), s.id.to_string())).collect();
    let (flooding, measured) = schools.split_first().context("no schools")?;
    let units: Vec<String> = devices.units.iter().map(|u| u.id.to_string()).collect();
    let h = FloodHarness {
        host,
        port,
        alarms: args.flood_alarms,
        hz: args.flood_hz,
        flood_button: flooding.0.clone(),
        flood_unit: units.first().context("no units")?.clone(),
        units,
        measured: measured.to_vec(),
        centre: plan.centre,
    };
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    // The devices on a thread and runtime of their own, as in `mqtt_bench`.
    std::thread::Builder::new().name("bench-flood-devices".into()).spawn(move || {
        let result = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(flood_devices(h, ready_tx, go_rx)));
        let _ = done_tx.send(result);
    })?;
    ready_rx.await.context("device thread ended early")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.available_units().await < args.units {
        if Instant::now() > deadline {
            bail!("only {} of {} units reported within 30 s", app.available_units().await, args.units);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = app.metrics().snapshot();
    let _ = go_tx.send(());
    let r = done_rx.await.context("device thread ended early")??;
    let after = app.metrics().snapshot();
    let delta = |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
    let (quiet, flooded) = (percentiles(r.quiet), percentiles(r.flooded));
    let secs = r.flood_for.as_secs_f64();
    println!(
        "### One flooding button and one flooding tablet: other schools' alarm -> offer at the tablet, through {}, {}\n",
        if args.broker == "embedded" { "kuzet's own broker" } else { "Mosquitto" },
        if database.is_some() { "every alarm and incident recorded in PostGIS" } else { "no database" }
    );
    println!(
        "| other schools' alarms | n | p50 µs | p99 µs | p99.9 µs | max µs |\n|---|---|---|---|---|---|"
    );
    println!("{}", row("no flood", &quiet));
    println!("{}", row("while one button and one tablet flood", &flooded));
    println!(
        "\nThe flood, achieved over {secs:.1} s (asked: {}): {:.0} alarms/s sent by the button ({:.0}/s acknowledged \
         by kuzet, every one joining its school's one incident); {:.0} positions/s sent by the tablet. Over the \
         whole run kuzet flagged {} alarms as over their button's limit (the flood's, and measured schools' \
         raise-and-cancel pairs that came round faster than the limit) and refused {} messages as rate_limited.\n",
        if args.flood_hz > 0.0 { format!("{} a second each", args.flood_hz) } else { "as fast as the clients go".into() },
        r.alarms_sent as f64 / secs,
        r.alarms_acked as f64 / secs,
        r.positions_sent as f64 / secs,
        delta("alarms_over_limit"),
        delta("rejects.rate_limited"),
    );
    println!(
        "p99 with the flood / without: {:.2}x.\n",
        flooded.p99.as_secs_f64() / quiet.p99.as_secs_f64().max(1e-9)
    );
    app.stop().await;
    let _ = std::fs::remove_dir_all(&spool);
    Ok(())
}

struct FloodHarness {
    host: String,
    port: u16,
    alarms: usize,
    hz: f64,
    flood_button: String,
    flood_unit: String,
    units: Vec<String>,
    /// (button, site) of the schools whose alarms are measured.
    measured: Vec<(String, String)>,
    centre: GeoPoint,
}

struct FloodSamples {
    quiet: Vec<Duration>,
    flooded: Vec<Duration>,
    flood_for: Duration,
    alarms_sent: u64,
    alarms_acked: u64,
    positions_sent: u64,
}

async fn flood_devices(
    h: FloodHarness,
    ready: tokio::sync::oneshot::Sender<()>,
    go: tokio::sync::oneshot::Receiver<()>,
) -> anyhow::Result<FloodSamples> {
    let (host, port) = (h.host.as_str(), h.port);
    // Every unit reports where it is, and again well within position_max_age_s.
    let (movers, _) = client(host, port, "bench-flood-positions", None, &[]).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let (units, centre, s) = (h.units.clone(), h.centre, stop.clone());
    let refresh = tokio::spawn(async move {
        let mut rng = StdRng::seed_from_u64(11);
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        while !s.load(Ordering::Relaxed) {
            tick.tick().await;
            for u in &units {
                let p = sim::random_point(&mut rng, centre, 8_000.0);
                let body = json!({"at": Utc::now(), "lat": p.lat(), "lon": p.lon()}).to_string();
                let _ = movers
                    .publish(format!("kuzet/v1/units/{u}/position"), QoS::AtLeastOnce, false, body)
                    .await;
            }
        }
    });
    let _ = ready.send(());
    go.await.context("bench was stopped")?;

    // The measured schools' acks alone: the flooding button's would swamp this client.
    let ack_topics: Vec<String> =
        h.measured.iter().map(|(b, _)| format!("kuzet/v1/buttons/{b}/ack")).collect();
    let ack_topics: Vec<&str> = ack_topics.iter().map(String::as_str).collect();
    let (button, mut acks) = client(host, port, "bench-flood-buttons", None, &ack_topics).await?;
    let (_tablets, mut offers) = client(
        host,
        port,
        "bench-flood-tablets",
        None,
        &["kuzet/v1/units/+/offers", "kuzet/v1/units/+/incidents/+"],
    )
    .await?;
    let mut measure = async |n: usize, offset: usize| -> anyhow::Result<Vec<Duration>> {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let (btn, site) = &h.measured[(offset + i) % h.measured.len()];
            let (alarm_id, t, at, incident) = raise_until_offer(&button, &mut offers, btn, site).await?;
            out.push(at - t);
            cancel_until_over(&button, &mut offers, &mut acks, btn, alarm_id, &incident).await?;
        }
        Ok(out)
    };
    let quiet = measure(h.alarms, 0).await?;

    // The flooding devices, on a thread of their own: they compete with kuzet for the
    // machine, not with the measuring client for its thread.
    let flood_stop = Arc::new(AtomicBool::new(false));
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let flood = {
        let (host, stop) = (h.host.clone(), flood_stop.clone());
        let (btn, unit, hz) = (h.flood_button.clone(), h.flood_unit.clone(), h.hz);
        std::thread::Builder::new().name("bench-flooders".into()).spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(flooders(host, port, btn, unit, hz, stop, started_tx)))
        })?
    };
    started_rx.await.context("the flooders did not start")?;
    let flooded = measure(h.alarms, h.alarms).await?;
    flood_stop.store(true, Ordering::Relaxed);
    let f = flood.join().map_err(|_| anyhow::anyhow!("the flooders panicked"))??;
    stop.store(true, Ordering::Relaxed);
    refresh.abort();
    Ok(FloodSamples {
        quiet,
        flooded,
        flood_for: f.elapsed,
        alarms_sent: f.alarms_sent,
        alarms_acked: f.alarms_acked,
        positions_sent: f.positions_sent,
    })
}

struct FloodCounts {
    elapsed: Duration,
    alarms_sent: u64,
    alarms_acked: u64,
    positions_sent: u64,
}

/// A button raising new alarms and a tablet reporting positions, each as fast as its client
/// goes (or at `hz`), until `stop`. Says when both are under way.
async fn flooders(
    host: String,
    port: u16,
    button: String,
    unit: String,
    hz: f64,
    stop: Arc<AtomicBool>,
    started: tokio::sync::oneshot::Sender<()>,
) -> anyhow::Result<FloodCounts> {
    let ack_topic = format!("kuzet/v1/buttons/{button}/ack");
    let (alarms, mut acks) =
        client(&host, port, "bench-flooding-button", None, &[ack_topic.as_str()]).await?;
    let (positions, _) = client(&host, port, "bench-flooding-tablet", None, &[]).await?;
    let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = acked.clone();
    let reader = tokio::spawn(async move {
        while let Some((_, _, payload)) = acks.recv().await {
            if serde_json::from_slice::<Value>(&payload).is_ok_and(|v| v["state"] == "received") {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let pace = (hz > 0.0).then(|| Duration::from_secs_f64(1.0 / hz));
    let alarm_topic = format!("kuzet/v1/buttons/{button}/alarm");
    let position_topic = format!("kuzet/v1/units/{unit}/position");
    let centre = GeoPoint::new(43.2389, 76.8897).expect("constant point");
    let send_alarms = {
        let stop = stop.clone();
        async move {
            let mut sent = 0u64;
            let mut tick = pace.map(tokio::time::interval);
            while !stop.load(Ordering::Relaxed) {
                if let Some(t) = &mut tick {
                    t.tick().await;
                }
                let body = json!({"alarm_id": uuid::Uuid::new_v4(), "action": "raise", "kind": "intruder", "at": Utc::now()});
                alarms.publish(alarm_topic.as_str(), QoS::AtLeastOnce, false, body.to_string()).await?;
                sent += 1;
                // The client's queue rarely fills: let the reader and the other flooder run.
                tokio::task::yield_now().await;
            }
            anyhow::Ok(sent)
        }
    };
    let send_positions = {
        let stop = stop.clone();
        async move {
            let mut sent = 0u64;
            let mut tick = pace.map(tokio::time::interval);
            while !stop.load(Ordering::Relaxed) {
                if let Some(t) = &mut tick {
                    t.tick().await;
                }
                let body = json!({"at": Utc::now(), "lat": centre.lat(), "lon": centre.lon()});
                positions.publish(position_topic.as_str(), QoS::AtLeastOnce, false, body.to_string()).await?;
                sent += 1;
                tokio::task::yield_now().await;
            }
            anyhow::Ok(sent)
        }
    };
    let t = Instant::now();
    let _ = started.send(());
    let (alarms_sent, positions_sent) = tokio::try_join!(send_alarms, send_positions)?;
    let elapsed = t.elapsed();
    reader.abort();
    Ok(FloodCounts { elapsed, alarms_sent, alarms_acked: acked.load(Ordering::Relaxed), positions_sent })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let v: Vec<Duration> = (1..=1000).map(Duration::from_micros).collect();
        let p = percentiles(v);
        assert_eq!(
            (p.p50, p.p99, p.p999, p.max),
            (
                Duration::from_micros(500),
                Duration::from_micros(990),
                Duration::from_micros(999),
                Duration::from_micros(1000)
            )
        );
    }
}
