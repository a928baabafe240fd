//! The flood suite: a measured alarm while one button floods alarms and a tablet floods
//! positions.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use chrono::Utc;
use kuzet_actors::geo::GeoPoint;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rumqttc::QoS;
use serde_json::{json, Value};

use super::city::{bench_city, cancel_until_over, client, raise_until_offer, BenchCity};
use super::store::fresh_database;
use super::{percentiles, row, BenchArgs};
use crate::sim;

/// Other schools' alarms -> offer at the tablet, first with nothing else going on, then while
/// one school's button floods alarms and one tablet floods positions as fast as their
/// clients go (or at `--flood-hz`): how much one misbehaving device costs everyone else.
pub(super) async fn flood_bench(args: &BenchArgs, database: Option<&str>) -> anyhow::Result<()> {
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
