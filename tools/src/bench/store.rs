//! The store suite: the writer's throughput beside single-row inserts, and 100k devices loaded
//! from PostGIS with their actors spawned.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use chrono::Utc;
use kuzet::settings::Settings;
use kuzet_actors::geo::GeoPoint;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rumqttc::MqttOptions;
use serde_json::json;

use super::rss_kib;
use crate::sim;

/// A new empty database on the server `base` names; its URL.
pub(super) async fn fresh_database(base: &str) -> anyhow::Result<String> {
    use sqlx::Connection;
    let name = format!("kuzet_bench_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(base).await.context("cannot reach the database")?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await?;
    let (prefix, _) = base.rsplit_once('/').context("database url has no database name")?;
    Ok(format!("{prefix}/{name}"))
}

/// Lowers the CPU priority of the PostgreSQL server at `base` (see `load::renice_database`).
pub(super) async fn renice(base: &str, nice: i32) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(base).await.context("cannot reach the database")?;
    let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut c).await?;
    // A server on another host cannot be reniced from here: say so and go on.
    match super::load::renice_database(backend as u32, nice) {
        Ok(n) => println!("PostgreSQL ({n} processes) runs at nice {nice} in this run.\n"),
        Err(e) => println!("PostgreSQL's priority left as it is ({e:#}).\n"),
    }
    Ok(())
}

/// Position rows per second: one INSERT per row (autocommit), beside the batching writer.
pub(super) async fn writer_bench(base: &str) -> anyhow::Result<()> {
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
            let p = kuzet_actors::fleet::Position {
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

/// Devices loaded from PostGIS and registered (their actors start when first needed): seconds
/// and RSS; then the actors of 10,000 units woken, as a shift's tablets would.
pub(super) async fn load_bench(base: &str, n: usize) -> anyhow::Result<()> {
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
    let router =
        kuzet_actors::router::Router::new(settings.dispatch.position_max_age(), Default::default()).start();
    let gateway = kuzet::mqtt::gateway::Gateway::new(
        rumqttc::AsyncClient::new(MqttOptions::new("bench-load", "127.0.0.1", 1), 10).0,
        Arc::new(kuzet::metrics::Metrics::default()),
    )
    .start();
    let outbox = kuzet_actors::outbound::Outbox::default().with_sink(
        "mqtt",
        kuzet_actors::outbound::ActorSink::only(
            gateway.recipient(),
            kuzet_actors::outbound::Notify::for_devices,
        ),
    );
    let counts = (
        devices.sites.len(),
        devices.sites.iter().map(|s| s.buttons.len()).sum::<usize>(),
        devices.units.len(),
    );
    // A shift's worth of tablets and some buttons, woken after the load.
    let on_shift: Vec<String> = devices.units.iter().take(10_000).map(|u| u.id.to_string()).collect();
    let pressed: Vec<String> =
        devices.sites.iter().flat_map(|s| &s.buttons).take(1_000).map(|b| b.id.to_string()).collect();
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
    let (awake, awake_units) = (directory.awake_buttons(), directory.awake_units());
    println!("### {n} devices loaded from PostGIS and registered\n");
    println!("| step | seconds |\n|---|---|");
    println!("| load (3 queries) | {:.2} |", loaded.as_secs_f64());
    println!(
        "| load + register {buttons} buttons and {units} units at {} sites ({awake} button and {awake_units} unit actors: each starts when first needed) | {:.2} |",
        counts.0,
        total.as_secs_f64()
    );
    println!(
        "\nRSS grew by {:.0} MiB ({:.0} bytes a device); the process's RSS is {:.0} MiB.\n",
        rss as f64 / 1024.0,
        rss as f64 * 1024.0 / n as f64,
        rss_kib() as f64 / 1024.0
    );

    let (rss1, t) = (rss_kib(), Instant::now());
    let mut last = None;
    for id in &on_shift {
        last = directory.unit(id);
    }
    for id in &pressed {
        anyhow::ensure!(directory.button(id).is_some(), "button {id} did not wake");
    }
    if let Some(u) = last {
        // Answered once the last unit's actor has started (the others started before it).
        u.send(kuzet_actors::unit::GetUnit).await?;
    }
    let woke = t.elapsed();
    println!(
        "Waking {} unit and {} button actors (a shift's tablets speaking, buttons pressed): {:.0} ms; the process's \
         RSS went from {:.0} to {:.0} MiB (the actors reuse memory the load freed).\n",
        on_shift.len(),
        pressed.len(),
        woke.as_secs_f64() * 1e3,
        rss1 as f64 / 1024.0,
        rss_kib() as f64 / 1024.0
    );

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
