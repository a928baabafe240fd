//! The mqtt suite: alarm -> offer latency end to end while units report positions and other
//! alarms are worked, beside the raw broker round trip.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use chrono::Utc;
use kuzet_actors::geo::GeoPoint;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rumqttc::QoS;
use serde_json::{json, Value};

use super::city::{bench_city, cancel_until_over, client, next_where, raise_until_offer, BenchCity};
use super::{percentiles, row, BenchArgs, Percentiles};
use crate::sim;

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
