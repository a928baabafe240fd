//! The bench city on a broker, and the MQTT clients the suites measure through.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use chrono::Utc;
use kuzet::mosquitto::MosquittoProcess;
use kuzet::settings::Settings;
use kuzet::startup::Application;
use kuzet_actors::geo::GeoPoint;
use rumqttc::{AsyncClient, Event, EventLoop, Incoming, MqttOptions, QoS};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::BenchArgs;
use crate::sim::{self, CityPlan};

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
    "bench-relay",
];
/// Where the load generator (a child process) finds the harness's password.
pub(super) const BENCH_PASSWORD_ENV: &str = "KUZET_BENCH_PASSWORD";
static BENCH_PASSWORD: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The harness's password on kuzet's broker, once a bench city has made it.
pub(super) fn bench_password() -> Option<&'static str> {
    BENCH_PASSWORD.get().map(String::as_str)
}

/// A QoS 1 client whose received publishes come out of a channel with their arrival time.
pub(super) async fn client(
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
    } else if let Ok(p) = std::env::var(BENCH_PASSWORD_ENV) {
        o.set_credentials(id, p);
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
pub(super) async fn raise_until_offer(
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
pub(super) async fn cancel_until_over(
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

pub(super) async fn next_where(
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

/// The bench city: 200 schools and `units` units around Almaty's centre. The load generator
/// (another process) makes the same one.
pub(super) fn bench_plan(units: usize) -> CityPlan {
    CityPlan {
        centre: GeoPoint::new(43.2389, 76.8897).expect("constant point"),
        radius_m: 8_000.0,
        schools: 200,
        units,
        seed: 3,
    }
}

/// kuzet on a private broker for a simulated city, units wanting one unit per school alarm.
pub(super) struct BenchCity {
    pub(super) app: Application,
    pub(super) devices: kuzet_actors::spec::Devices,
    pub(super) plan: CityPlan,
    pub(super) spool: std::path::PathBuf,
    pub(super) _mosquitto: Option<MosquittoProcess>,
}

pub(super) async fn bench_city(
    args: &BenchArgs,
    database: Option<&str>,
    tweak: impl FnOnce(&mut Settings),
) -> anyhow::Result<BenchCity> {
    bench_city_with(args, database, tweak, Vec::new()).await
}

/// The bench city with `cameras` besides.
pub(super) async fn bench_city_with(
    args: &BenchArgs,
    database: Option<&str>,
    tweak: impl FnOnce(&mut Settings),
    cameras: Vec<kuzet_actors::camera::CameraSpec>,
) -> anyhow::Result<BenchCity> {
    let plan = bench_plan(args.units);
    let mut devices = sim::city(&plan);
    devices.cameras.extend(cameras);
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
