//! `kuzet-bench --suite soak`: a city's load for an hour: units reporting once a second, a
//! school alarm every few seconds worked to cleared by a tablet, cameras streaming 720p
//! H.264 through the face pipeline, a console watching. Samples kuzet's RSS, the broker's,
//! the writer's queues and the alarm -> offer latency every few seconds; prints a table per
//! interval, the drift from the first to the last part of the run, and writes the samples
//! (CSV) and a plot (SVG).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use kuzet_actors::camera::CameraSpec;
use kuzet_actors::ids::CameraId;
use rumqttc::QoS;
use serde_json::{json, Value};

use super::city::{bench_city_with, client, next_where, BenchCity};
use super::load::{LoadSpec, PositionLoad};
use super::{percentiles, BenchArgs};

#[derive(clap::Args, Clone, Debug)]
pub struct SoakArgs {
    /// The soak suite: minutes it runs (after the units have reported).
    #[arg(long, default_value_t = 60)]
    pub soak_minutes: u64,
    /// The soak suite: seconds between school alarms.
    #[arg(long, default_value_t = 3.0)]
    pub soak_alarm_every_s: f64,
    /// The soak suite: cameras streaming 720p H.264 at 5 fps through kuzet's face pipeline
    /// (0: none).
    #[arg(long, default_value_t = 32)]
    pub soak_cameras: usize,
    /// The soak suite: the cameras' proportions of still scenes, people walking (vtest.avi) and
    /// scenes with faces (the vision suite's clips, each looping as a file camera).
    #[arg(long, default_value = "28,2,2")]
    pub soak_mix: String,
    /// The soak suite: seconds between samples.
    #[arg(long, default_value_t = 10)]
    pub soak_sample_s: u64,
    /// The soak suite: where the samples (soak.csv) and the plot (soak.svg) are written.
    #[arg(long, default_value = "target/soak")]
    pub soak_out: PathBuf,
}

/// One sample: the state at `t_s` and what happened since the one before.
#[derive(Clone, Debug, Default)]
struct Sample {
    t_s: f64,
    rss_mib: f64,
    broker_rss_mib: f64,
    /// Alarm -> offer at the tablet, over the alarms since the last sample (µs).
    p50_us: u64,
    p99_us: u64,
    alarms: usize,
    positions_per_s: f64,
    writer_urgent: usize,
    writer_positions: usize,
    frames_per_s: f64,
    /// Frames replaced by a newer one before detection took them, a second.
    replaced_per_s: f64,
    console_events: u64,
}

/// What the alarm side counts over the run.
#[derive(Default)]
struct Counts {
    raised: AtomicU64,
    offered: AtomicU64,
    cleared: AtomicU64,
    /// Alarms whose offer or cleared ack did not come within 10 s.
    missing: AtomicU64,
}

pub(super) async fn soak_bench(args: &BenchArgs, database: Option<String>) -> anyhow::Result<()> {
    let o = &args.soak;
    let run = Duration::from_secs(o.soak_minutes * 60);
    std::fs::create_dir_all(&o.soak_out)?;
    let cameras = if o.soak_cameras > 0 { cameras(o.soak_cameras, &o.soak_mix)? } else { Vec::new() };
    let n_cameras = cameras.len();
    let BenchCity { app, devices, spool, _mosquitto, .. } = bench_city_with(
        args,
        database.as_deref(),
        |s| {
            s.limits.position.per_s = s.limits.position.per_s.max(2.0);
            s.vision.enabled = n_cameras > 0;
            s.vision.models_dir = args.models_dir.clone();
            s.vision.evidence_dir = std::env::temp_dir().join("kuzet-soak-evidence");
            s.vision.fps = 5;
        },
        cameras,
    )
    .await?;
    let (host, port) = (app.broker().0.to_owned(), app.broker().1);
    let load = PositionLoad::start(
        &LoadSpec { host: host.clone(), port, units: args.units, hz: 1.0 },
        args.load_nice,
        super::city::bench_password(),
    )?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while app.available_units().await < args.units {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {} units reported within 120 s",
            app.available_units().await,
            args.units
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A console watching: it reads every event the consoles' WebSockets are sent.
    let console_events = Arc::new(AtomicU64::new(0));
    let mut feed = app.live().subscribe();
    let seen = console_events.clone();
    let console = tokio::spawn(async move {
        loop {
            match feed.recv().await {
                Ok(_) => {
                    seen.fetch_add(1, Ordering::Relaxed);
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::error!(missed = n, "the console fell behind");
                }
                Err(_) => break,
            }
        }
    });

    // The schools raise and their tablets work the alarms on a thread of their own.
    let schools: Vec<(String, String)> =
        devices.sites.iter().map(|s| (s.buttons[0].id.to_string(), s.id.to_string())).collect();
    let latencies = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let alarms = {
        let (latencies, counts, stop) = (latencies.clone(), counts.clone(), stop.clone());
        let (host, every) = (host.clone(), Duration::from_secs_f64(o.soak_alarm_every_s));
        std::thread::Builder::new().name("bench-schools".into()).spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(schools_side(host, port, schools, every, latencies, counts, stop))
        })?
    };

    let me = std::process::id();
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut all = Vec::new();
    let (mut positions_before, mut frames_before, mut t_before) =
        (app.metrics().positions.load(Ordering::Relaxed), app.frame_counts(), Instant::now());
    let mut tick = tokio::time::interval(Duration::from_secs(o.soak_sample_s));
    tick.tick().await;
    while started.elapsed() < run {
        tick.tick().await;
        let now = Instant::now();
        let dt = now.duration_since(t_before).as_secs_f64();
        let lat: Vec<Duration> = std::mem::take(&mut *latencies.lock().unwrap_or_else(|p| p.into_inner()));
        all.extend(lat.iter().copied());
        let (p50_us, p99_us) = if lat.is_empty() {
            (0, 0)
        } else {
            let p = percentiles(lat.clone());
            (p.p50.as_micros() as u64, p.p99.as_micros() as u64)
        };
        let positions = app.metrics().positions.load(Ordering::Relaxed);
        let frames = app.frame_counts();
        let [(urgent, _), (queued_positions, _)] = app.writer().map_or([(0, 0), (0, 0)], |w| w.queued());
        samples.push(Sample {
            t_s: started.elapsed().as_secs_f64(),
            rss_mib: rss_mib(me),
            broker_rss_mib: broker_pid(me).map_or(0.0, rss_mib),
            p50_us,
            p99_us,
            alarms: lat.len(),
            positions_per_s: (positions - positions_before) as f64 / dt,
            writer_urgent: urgent,
            writer_positions: queued_positions,
            frames_per_s: (frames.0 - frames_before.0) as f64 / dt,
            replaced_per_s: (frames.1 - frames_before.1) as f64 / dt,
            console_events: console_events.load(Ordering::Relaxed),
        });
        (positions_before, frames_before, t_before) = (positions, frames, now);
    }
    stop.store(true, Ordering::Relaxed);
    // Not joined on this thread: kuzet's actors run on it, and the schools' last alarm
    // waits for them.
    let side = tokio::task::spawn_blocking(move || alarms.join()).await?;
    side.map_err(|_| anyhow::anyhow!("the schools' thread panicked"))??;
    all.extend(std::mem::take(&mut *latencies.lock().unwrap_or_else(|p| p.into_inner())));
    let offered_load = load.sent();
    load.stop();
    console.abort();

    report(args, &samples, &all, &counts, &offered_load, n_cameras, &app, database.is_some())?;
    write_csv(&o.soak_out.join("soak.csv"), &samples)?;
    std::fs::write(o.soak_out.join("soak.svg"), plot(&samples))?;
    println!(
        "Samples: {}; plot: {}.\n",
        o.soak_out.join("soak.csv").display(),
        o.soak_out.join("soak.svg").display()
    );
    app.stop().await;
    let _ = std::fs::remove_dir_all(&spool);
    Ok(())
}

/// Raises an alarm every `every` at the next school, and works it as its tablet would:
/// accept, en route, on scene, cleared; waits for the button to hear `cleared`.
async fn schools_side(
    host: String,
    port: u16,
    schools: Vec<(String, String)>,
    every: Duration,
    latencies: Arc<Mutex<Vec<Duration>>>,
    counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let (buttons, mut acks) = client(&host, port, "bench-buttons", None, &["kuzet/v1/buttons/+/ack"]).await?;
    let (tablets, mut offers) =
        client(&host, port, "bench-tablets", None, &["kuzet/v1/units/+/offers"]).await?;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next = 0usize;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let (btn, site) = &schools[next % schools.len()];
        next += 1;
        let alarm_id = uuid::Uuid::new_v4();
        let body = json!({"alarm_id": alarm_id, "action": "raise", "kind": "intruder", "at": Utc::now()});
        let t = Instant::now();
        buttons
            .publish(format!("kuzet/v1/buttons/{btn}/alarm"), QoS::AtLeastOnce, false, body.to_string())
            .await?;
        counts.raised.fetch_add(1, Ordering::Relaxed);
        let unit = std::cell::RefCell::new(String::new());
        let Ok((at, offer)) = next_where(&mut offers, |topic, v: &Value| {
            let ours = topic.ends_with("/offers") && v["site"]["id"] == site.as_str();
            if ours {
                *unit.borrow_mut() = topic.split('/').nth(3).unwrap_or_default().to_owned();
            }
            ours
        })
        .await
        else {
            counts.missing.fetch_add(1, Ordering::Relaxed);
            tracing::error!(button = %btn, %alarm_id, "no offer within 10 s");
            continue;
        };
        latencies.lock().unwrap_or_else(|p| p.into_inner()).push(at.duration_since(t));
        counts.offered.fetch_add(1, Ordering::Relaxed);
        let incident = offer["incident_id"].clone();
        let unit = unit.into_inner();
        let reply = json!({"offer_id": offer["offer_id"], "decision": "accept"});
        tablets
            .publish(format!("kuzet/v1/units/{unit}/reply"), QoS::AtLeastOnce, false, reply.to_string())
            .await?;
        for state in ["en_route", "on_scene", "cleared"] {
            let p = json!({"incident_id": incident, "state": state, "at": Utc::now()});
            tablets
                .publish(format!("kuzet/v1/units/{unit}/progress"), QoS::AtLeastOnce, false, p.to_string())
                .await?;
        }
        match next_where(&mut acks, |_, v| v["state"] == "cleared" && v["incident_id"] == incident).await {
            Ok(_) => counts.cleared.fetch_add(1, Ordering::Relaxed),
            Err(_) => {
                tracing::error!(button = %btn, %alarm_id, "no cleared ack within 10 s");
                counts.missing.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
    Ok(())
}

/// `n` cameras looping the gating clips (720p H.264, 5 fps) in the proportions `mix`.
fn cameras(n: usize, mix: &str) -> anyhow::Result<Vec<CameraSpec>> {
    let centre = super::city::bench_plan(0).centre;
    super::vision::mixed_streams(n, mix)?
        .into_iter()
        .enumerate()
        .map(|(i, (kind, uri))| {
            Ok(CameraSpec {
                id: CameraId::parse(&format!("cam-soak-{kind}-{i:02}"))?,
                location: centre.offset(i as f64 * 150.0, 0.0),
                site: None,
                custodial: false,
                stream_uri: Some(uri),
                password: None,
            })
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn report(
    args: &BenchArgs,
    samples: &[Sample],
    all: &[Duration],
    counts: &Counts,
    offered: &[u64],
    cameras: usize,
    app: &kuzet::startup::Application,
    recorded: bool,
) -> anyhow::Result<()> {
    anyhow::ensure!(!samples.is_empty() && !all.is_empty(), "the soak ran too short to sample");
    let o = &args.soak;
    let secs = samples.last().map_or(0.0, |s| s.t_s);
    println!(
        "### Soak: {:.0} minutes at city load\n\n{} units reporting once a second (load generator at nice {}), a school \
         alarm every {} s worked to cleared by its tablet, {cameras} cameras (720p H.264, 5 fps, still / people / \
         faces {}) through the motion-gated face pipeline, a console watching; {}, kuzet's own broker.\n",
        secs / 60.0,
        args.units,
        args.load_nice,
        o.soak_alarm_every_s,
        o.soak_mix,
        if recorded { "everything recorded in PostGIS" } else { "no database" },
    );
    let mean = |f: &dyn Fn(&Sample) -> f64| samples.iter().map(f).sum::<f64>() / samples.len() as f64;
    let offered_mean = offered.iter().sum::<u64>() as f64 / offered.len().max(1) as f64;
    println!(
        "Achieved: positions offered {:.0}/s, taken by kuzet {:.0}/s; alarms raised {}, offered {}, cleared {}, \
         missing {} (no offer or no cleared ack within 10 s); frames handed to detection {:.1}/s, replaced by a newer \
         one before detection {:.1}/s; console events {}.\n",
        offered_mean,
        mean(&|s| s.positions_per_s),
        counts.raised.load(Ordering::Relaxed),
        counts.offered.load(Ordering::Relaxed),
        counts.cleared.load(Ordering::Relaxed),
        counts.missing.load(Ordering::Relaxed),
        mean(&|s| s.frames_per_s),
        mean(&|s| s.replaced_per_s),
        samples.last().map_or(0, |s| s.console_events),
    );
    let shed = app.writer().map_or(0, |w| w.stats().positions_shed.load(Ordering::Relaxed));
    println!(
        "Shed or dropped: positions shed by the writer {shed}, detections shed {}, notifications dropped {}, \
         broker dropped {}, messages refused {}.\n",
        app.metrics().detections_shed.load(Ordering::Relaxed),
        app.notifications_dropped(),
        app.metrics().broker_dropped.load(Ordering::Relaxed),
        app.metrics().rejects_total(),
    );
    // One row per tenth of the run.
    let per = samples.len().div_ceil(10).max(1);
    println!(
        "| minutes | kuzet RSS MiB | broker RSS MiB | alarms | alarm -> offer p50 µs | p99 µs | positions/s | \
         writer queue (urgent / positions, max) | frames/s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for chunk in samples.chunks(per) {
        let (a, b) = (chunk[0].t_s - o.soak_sample_s as f64, chunk[chunk.len() - 1].t_s);
        let n: usize = chunk.iter().map(|s| s.alarms).sum();
        let max_p99 = chunk.iter().map(|s| s.p99_us).max().unwrap_or(0);
        let mut p50s: Vec<u64> = chunk.iter().filter(|s| s.alarms > 0).map(|s| s.p50_us).collect();
        p50s.sort_unstable();
        println!(
            "| {:.0}-{:.0} | {:.0} | {:.1} | {n} | {} | {max_p99} (worst window) | {:.0} | {} / {} | {:.1} |",
            a.max(0.0) / 60.0,
            b / 60.0,
            chunk.iter().map(|s| s.rss_mib).fold(0.0, f64::max),
            chunk.iter().map(|s| s.broker_rss_mib).fold(0.0, f64::max),
            p50s.get(p50s.len() / 2).copied().unwrap_or(0),
            chunk.iter().map(|s| s.positions_per_s).sum::<f64>() / chunk.len() as f64,
            chunk.iter().map(|s| s.writer_urgent).max().unwrap_or(0),
            chunk.iter().map(|s| s.writer_positions).max().unwrap_or(0),
            chunk.iter().map(|s| s.frames_per_s).sum::<f64>() / chunk.len() as f64,
        );
    }
    let p = percentiles(all.to_vec());
    // Drift: the first tenth of the run (after warm-up) against the last.
    let tenth = (samples.len() / 10).max(1);
    let (first, last) = (&samples[..tenth], &samples[samples.len() - tenth..]);
    let avg = |s: &[Sample], f: &dyn Fn(&Sample) -> f64| s.iter().map(f).sum::<f64>() / s.len() as f64;
    println!(
        "\nWhole run: alarm -> offer p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs over {} alarms. First tenth against \
         last tenth: RSS {:.0} -> {:.0} MiB, broker RSS {:.1} -> {:.1} MiB, window p99 (mean) {:.0} -> {:.0} µs.\n",
        p.p50.as_micros(),
        p.p99.as_micros(),
        p.p999.as_micros(),
        p.max.as_micros(),
        p.n,
        avg(first, &|s| s.rss_mib),
        avg(last, &|s| s.rss_mib),
        avg(first, &|s| s.broker_rss_mib),
        avg(last, &|s| s.broker_rss_mib),
        avg(first, &|s| s.p99_us as f64),
        avg(last, &|s| s.p99_us as f64),
    );
    Ok(())
}

fn write_csv(path: &Path, samples: &[Sample]) -> anyhow::Result<()> {
    let mut t = String::from(
        "t_s,rss_mib,broker_rss_mib,alarms,p50_us,p99_us,positions_per_s,writer_urgent,writer_positions,frames_per_s,replaced_per_s,console_events\n",
    );
    for s in samples {
        let _ = writeln!(
            t,
            "{:.1},{:.1},{:.1},{},{},{},{:.0},{},{},{:.1},{:.1},{}",
            s.t_s,
            s.rss_mib,
            s.broker_rss_mib,
            s.alarms,
            s.p50_us,
            s.p99_us,
            s.positions_per_s,
            s.writer_urgent,
            s.writer_positions,
            s.frames_per_s,
            s.replaced_per_s,
            s.console_events
        );
    }
    std::fs::write(path, t)?;
    Ok(())
}

/// A plotted line: its name, colour and (seconds, value) points.
type Series<'a> = (&'a str, &'a str, Vec<(f64, f64)>);

/// Two panels over time: kuzet's RSS, and each window's alarm -> offer p99 and p50.
fn plot(samples: &[Sample]) -> String {
    const W: f64 = 900.0;
    const PH: f64 = 220.0;
    const L: f64 = 70.0;
    const TOP: f64 = 30.0;
    let t_max = samples.last().map_or(1.0, |s| s.t_s).max(1.0);
    let x = |t: f64| L + (W - L - 20.0) * t / t_max;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
        2.0 * PH + 3.0 * TOP + 20.0
    );
    let mut panel = |top: f64, title: &str, unit: &str, series: &[Series]| {
        let y_max =
            series.iter().flat_map(|s| s.2.iter().map(|p| p.1)).fold(0.0_f64, f64::max).max(1.0) * 1.1;
        let y = |v: f64| top + PH - PH * v / y_max;
        let _ = writeln!(svg, "<text x=\"{L}\" y=\"{}\" font-weight=\"bold\">{title}</text>", top - 8.0);
        let _ = writeln!(
            svg,
            "<rect x=\"{L}\" y=\"{top}\" width=\"{}\" height=\"{PH}\" fill=\"none\" stroke=\"#999\"/>",
            W - L - 20.0
        );
        for i in 0..=4 {
            let v = y_max * i as f64 / 4.0;
            let _ = writeln!(
                svg,
                "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v:.0} {unit}</text>\
                 <line x1=\"{L}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/>",
                L - 4.0,
                y(v) + 4.0,
                W - 20.0,
                y(v),
                y(v)
            );
        }
        for i in 0..=6 {
            let t = t_max * i as f64 / 6.0;
            let _ = writeln!(
                svg,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{:.0} min</text>",
                x(t),
                top + PH + 14.0,
                t / 60.0
            );
        }
        for (k, (name, colour, pts)) in series.iter().enumerate() {
            let path: Vec<String> = pts.iter().map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v))).collect();
            let _ = writeln!(
                svg,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/>\
                 <text x=\"{}\" y=\"{}\" fill=\"{colour}\">{name}</text>",
                path.join(" "),
                W - 220.0,
                top + 16.0 + 14.0 * k as f64
            );
        }
    };
    let rss: Vec<(f64, f64)> = samples.iter().map(|s| (s.t_s, s.rss_mib)).collect();
    let broker: Vec<(f64, f64)> = samples.iter().map(|s| (s.t_s, s.broker_rss_mib)).collect();
    let with = |f: fn(&Sample) -> u64| -> Vec<(f64, f64)> {
        samples.iter().filter(|s| s.alarms > 0).map(|s| (s.t_s, f(s) as f64 / 1000.0)).collect()
    };
    panel(TOP, "Resident memory", "MiB", &[("kuzet", "#1f77b4", rss), ("broker", "#2ca02c", broker)]);
    panel(
        2.0 * TOP + PH + 10.0,
        "Alarm -> offer at the tablet, per sample window",
        "ms",
        &[("p99", "#d62728", with(|s| s.p99_us)), ("p50", "#ff7f0e", with(|s| s.p50_us))],
    );
    svg.push_str("</svg>\n");
    svg
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// kuzet's broker: a mosquitto child of this process.
fn broker_pid(parent: u32) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.filter_map(Result::ok).find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (name, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
        let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
        (name == "mosquitto" && ppid == parent).then_some(pid)
    })
}
