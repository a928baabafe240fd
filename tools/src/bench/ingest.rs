//! The ingest suite: position reports through kuzet's bulk lane without a broker (the MQTT
//! listener's own `deliver`: topic, rate limit, decoding, the fleet, the consoles' map, the
//! writer), every row recorded in PostGIS, per core of CPU kuzet spent.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Actor as _;
use anyhow::Context as _;
use chrono::Utc;
use kuzet::mqtt::gateway::{Link, Listener};
use kuzet::settings::Settings;
use kuzet_actors::fleet::Fleet;
use kuzet_actors::registry::{Registry, RegistryConfig};
use kuzet_actors::router::{AvailableCount, Router};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rumqttc::{AsyncClient, MqttOptions};
use tokio::sync::watch;

use super::city::bench_plan;
use super::load::{thread_cpu, Cpu};
use super::store::fresh_database;
use crate::sim;

/// Units reporting.
const UNITS: usize = 10_000;
/// Positions handed over before waiting for the writer: what its queue holds, with room.
const ROUND: usize = 50_000;
/// The thread the reports are taken on (counted as kuzet's).
const THREAD: &str = "kuzet-ingest";

pub(super) async fn ingest_bench(base: &str, n: usize) -> anyhow::Result<()> {
    let url = fresh_database(base).await?;
    let pool = kuzet::store::connect(&url).await?;
    let mut settings = Settings::defaults();
    // Each unit reports n / UNITS times within a second or so: no rate limit here.
    settings.limits.position = kuzet::settings::Limit { per_s: 1e9, burst: u32::MAX };
    let spool = std::env::temp_dir().join(format!("kuzet-bench-spool-{}", uuid::Uuid::new_v4().simple()));
    let writer = kuzet::store::writer::start(kuzet::store::writer::WriterConfig {
        url: url.clone(),
        spool_dir: spool.clone(),
        batch_max: settings.database.batch_max,
        queue: settings.database.queue,
    })
    .await?;
    let devices = sim::city(&bench_plan(UNITS));
    let fleet = Fleet::default().with_board(Arc::new(kuzet::feed::LiveHub::default()));
    let router = Router::new(settings.dispatch.position_max_age(), fleet.clone()).start();
    let registry = Registry::new(
        devices.clone(),
        RegistryConfig { plans: settings.dispatch.plans.clone(), fleet: fleet.clone(), ..Default::default() },
        router.clone(),
        kuzet_actors::outbound::Outbox::default(),
    );
    let directory = registry.directory();
    registry.start();
    while directory.counts().1 < UNITS {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The reports as tablets send them, made before the clock starts.
    let mut rng = StdRng::seed_from_u64(5);
    let centre = bench_plan(UNITS).centre;
    let start_at = Utc::now() - chrono::Duration::seconds(30);
    let messages: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| {
            let unit = &devices.units[i % UNITS].id;
            let p = sim::random_point(&mut rng, centre, 8_000.0);
            let at = start_at + chrono::Duration::microseconds(i as i64);
            let body = serde_json::json!({"at": at, "lat": p.lat(), "lon": p.lon(), "speed_mps": 9.0, "heading_deg": 90.0});
            (format!("kuzet/v1/units/{unit}/position"), body.to_string().into_bytes())
        })
        .collect();

    let metrics = Arc::new(kuzet::metrics::Metrics::default());
    let (client, eventloop) = AsyncClient::new(MqttOptions::new("bench-ingest", "127.0.0.1", 1), 10);
    let listener = Listener {
        eventloop,
        client,
        directory,
        metrics: metrics.clone(),
        max_payload_bytes: settings.mqtt.max_payload_bytes,
        link: watch::channel(Link::Connecting).0,
        writer: Some(writer.clone()),
        subscriptions: kuzet::mqtt::topics::SUBSCRIPTIONS,
        manual_acks: false,
        edge: None,
        limits: kuzet::mqtt::limit::Limits::new(&settings.limits),
        stop: watch::channel(false).1,
        fleet,
    };
    let flusher = writer.clone();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let before = Cpu::now(&[]);
    std::thread::Builder::new().name(THREAD.into()).spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let took = rt.block_on(async move {
            let mut listener = listener;
            let (t, cpu) = (Instant::now(), thread_cpu());
            for round in messages.chunks(ROUND) {
                for (topic, payload) in round {
                    let _ = listener.deliver(topic, payload, false).await;
                }
                // Never more than the writer's queue holds: every row is to be recorded.
                flusher.flush().await;
            }
            (t.elapsed(), thread_cpu() - cpu)
        });
        let _ = done_tx.send(took);
    })?;
    let (took, lane) = done_rx.await.context("ingest thread died")?;
    let after = Cpu::now(&[]);
    let writer_cpu = before.threads_since(&after, |t| t == "kuzet-writer");
    // The actors' thread: the router taking the fixes into its index, every 5 ms.
    let actors_cpu = before.threads_since(&after, |t| t == "kuzet-bench");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM unit_positions").fetch_one(&pool).await?;
    let shed = writer.stats().positions_shed.load(Ordering::Relaxed);
    let refused = metrics.rejects_total();
    let taken = metrics.positions.load(Ordering::Relaxed);
    let in_index = router.send(AvailableCount).await?;
    let _ = std::fs::remove_dir_all(&spool);
    anyhow::ensure!(refused == 0 && taken as usize == n, "{refused} refused, {taken} of {n} taken");
    anyhow::ensure!(stored as usize == n && shed == 0, "{stored} of {n} rows recorded, {shed} shed");
    anyhow::ensure!(in_index == UNITS, "{in_index} of {UNITS} units located");

    let cpu = lane + writer_cpu + actors_cpu;
    println!("### Position ingest inside kuzet, no broker\n");
    println!(
        "{n} reports from {UNITS} units through the MQTT listener's `deliver` (topic, rate limit, JSON, \
         the fleet, the consoles' map, the writer's queue) on one thread, in rounds of {ROUND} each \
         waited for until recorded; all {stored} rows in PostGIS, all {UNITS} units located by the router.\n"
    );
    println!("| measure | value |\n|---|---:|");
    println!("| wall time, including waits for PostgreSQL | {:.2} s |", took.as_secs_f64());
    println!("| reports a second, wall | {:.0} |", n as f64 / took.as_secs_f64());
    println!("| CPU of the ingest thread | {lane:.2} s ({:.2} µs a report) |", lane * 1e6 / n as f64);
    println!(
        "| CPU of the writer thread | {writer_cpu:.2} s ({:.2} µs a report) |",
        writer_cpu * 1e6 / n as f64
    );
    println!(
        "| CPU of the actors' thread (the router indexing the fixes) | {actors_cpu:.2} s ({:.2} µs a report) |",
        actors_cpu * 1e6 / n as f64
    );
    println!("| **reports a second per core of kuzet's CPU** | **{:.0}** |\n", n as f64 / cpu.max(1e-9));
    Ok(())
}
