//! Chaos: kuzet SIGKILLed at chosen moments and at random ones, PostgreSQL stopped under it
//! and the broker killed, while schools raise alarms and tablets work every call to
//! cleared. Then every message is accounted for.
//!
//! The chosen moments are those where a lost message would hang an incident: right after
//! kuzet acknowledged (PUBACK, seen by a proxy between kuzet and the broker) a unit's
//! accept and a unit's cleared, right after a dispatcher's order was answered 200, and in
//! the middle of a spool replay. Right after each kill, before anything could send it
//! again, the record must already hold what was acknowledged.
//!
//! The devices behave as docs/mqtt.md asks: persistent sessions; on a connection whose
//! session the broker lost they subscribe again; they announce themselves online after
//! subscribing; a button presses again (same alarm id) until kuzet says `received`; a tablet
//! sends its latest answer or progress again until the incident's snapshot shows it.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::*;
use common::tap::Tap;
use common::*;
use kuzet::mqtt::topics::{self, DeviceKind};
use kuzet_actors::geo::GeoPoint;
use kuzet_actors::ids::{ButtonId, SiteId, UnitId};
use kuzet_actors::spec::{ButtonSpec, Devices, SiteKind, SiteSpec, UnitSpec};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rumqttc::{AsyncClient, Event, Incoming, LastWill, MqttOptions, QoS, SubscribeFilter};
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

const SCHOOLS: usize = 6;
const UNITS: usize = 8;
/// Random kills of kuzet, and kills of the broker among them; `scripts/chaos.sh` runs more
/// (KUZET_CHAOS_KILLS, KUZET_CHAOS_BROKER_KILLS) on a release build.
const RANDOM_KILLS: usize = 20;
const BROKER_KILLS: usize = 1;
/// The unit a dispatcher sends: far away, so the router never picks it by itself.
const RESERVE: &str = "u-reserve";
/// A unit with no position, never offered anything: it asks kuzet whether it is up.
const PROBE: &str = "u-probe";

fn school(i: usize) -> GeoPoint {
    school_location().offset(0.0, 1500.0 * i as f64)
}

fn devices() -> Devices {
    let sites = (0..SCHOOLS)
        .map(|i| SiteSpec {
            id: SiteId::parse(&format!("school-{i}")).unwrap(),
            name: format!("School No. {i}"),
            kind: SiteKind::School,
            location: school(i),
            buttons: vec![ButtonSpec {
                id: ButtonId::parse(&format!("btn-{i}")).unwrap(),
                room: None,
                password: Some(pw(&format!("btn-{i}"))),
            }],
        })
        .collect();
    let units = (0..UNITS)
        .map(|i| format!("u-{i}"))
        .chain([RESERVE.to_owned(), PROBE.to_owned()])
        .map(|id| UnitSpec {
            id: UnitId::parse(&id).unwrap(),
            callsign: id.to_uppercase(),
            password: Some(pw(&id)),
        })
        .collect();
    Devices { sites, units, cameras: Vec::new() }
}

// ---------------------------------------------------------------------------------------
// Devices

enum In {
    Msg {
        topic: String,
        payload: Value,
    },
    /// Connected again (subscribed again if the broker lost the session, and online).
    Back,
}

struct Device {
    client: AsyncClient,
    rx: mpsc::Receiver<In>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Device {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn device(port: u16, kind: DeviceKind, id: &str, subs: Vec<String>) -> Device {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_credentials(id, pw(id));
    o.set_keep_alive(Duration::from_secs(5));
    o.set_clean_session(false);
    let online = topics::device(kind, id, "online");
    o.set_last_will(LastWill::new(online.clone(), "false", QoS::AtLeastOnce, true));
    let (client, mut eventloop) = AsyncClient::new(o, 256);
    let (tx, rx) = mpsc::channel(1024);
    let c = client.clone();
    let task = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                    if !ack.session_present {
                        let filters = subs.iter().map(|s| SubscribeFilter::new(s.clone(), QoS::AtLeastOnce));
                        c.try_subscribe_many(filters).expect("subscriptions queued");
                    }
                    // After the subscriptions: kuzet answers presence with the device's state.
                    c.try_publish(online.clone(), QoS::AtLeastOnce, true, "true").expect("presence queued");
                    if tx.send(In::Back).await.is_err() {
                        return;
                    }
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    let payload = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                    if tx.send(In::Msg { topic: p.topic.clone(), payload }).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    });
    Device { client, rx, task }
}

async fn send(client: &AsyncClient, topic: String, v: Value) {
    client.publish(topic, QoS::AtLeastOnce, false, v.to_string()).await.expect("publish queued");
}

/// What the buttons saw of each alarm.
#[derive(Default)]
struct Ledger {
    alarms: BTreeMap<Uuid, (String, Vec<String>)>,
}

type Shared<T> = Arc<Mutex<T>>;

/// A button: raises an alarm, presses again until `received`, waits for `cleared`, then
/// raises the next one a little later; stops raising once `stop` is set.
async fn run_button(
    mut d: Device,
    id: String,
    ledger: Shared<Ledger>,
    stop: watch::Receiver<bool>,
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let topic = format!("kuzet/v1/buttons/{id}/alarm");
    while !*stop.borrow() {
        let alarm = Uuid::new_v4();
        ledger.lock().unwrap().alarms.insert(alarm, (id.clone(), Vec::new()));
        send(&d.client, topic.clone(), raise(&alarm)).await;
        let (mut heard, mut pressed) = (false, Instant::now());
        loop {
            match tokio::time::timeout(Duration::from_millis(250), d.rx.recv()).await {
                Ok(None) => return,
                Ok(Some(In::Msg { topic: t, payload })) if t.ends_with("/ack") => {
                    if payload["alarm_id"] != json!(alarm) {
                        continue;
                    }
                    let state = payload["state"].as_str().unwrap_or_default().to_owned();
                    heard = true;
                    let done = state == "cleared" || state == "cancelled";
                    ledger.lock().unwrap().alarms.get_mut(&alarm).unwrap().1.push(state);
                    if done {
                        break;
                    }
                }
                Ok(Some(_)) | Err(_) => {}
            }
            if !heard && pressed.elapsed() > Duration::from_secs(3) {
                send(&d.client, topic.clone(), raise(&alarm)).await;
                pressed = Instant::now();
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..600))).await;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Accept,
    EnRoute,
    OnScene,
    Cleared,
}

impl Step {
    fn progress(self) -> &'static str {
        match self {
            Step::Accept => "accepted",
            Step::EnRoute => "en_route",
            Step::OnScene => "on_scene",
            Step::Cleared => "cleared",
        }
    }

    fn from_progress(p: &str) -> Option<Step> {
        [Step::Accept, Step::EnRoute, Step::OnScene, Step::Cleared].into_iter().find(|s| s.progress() == p)
    }

    fn next(self) -> Option<Step> {
        match self {
            Step::Accept => Some(Step::EnRoute),
            Step::EnRoute => Some(Step::OnScene),
            Step::OnScene => Some(Step::Cleared),
            Step::Cleared => None,
        }
    }
}

struct Job {
    incident: String,
    offer_id: String,
    step: Step,
    sent: Instant,
}

/// A tablet: accepts every offer and works it to cleared, one step after the incident's
/// snapshot shows the last; sends its latest step again until the snapshot shows it.
/// Records which incident each offer was for.
async fn run_tablet(mut d: Device, id: String, at: GeoPoint, offers: Shared<HashMap<String, String>>) {
    let mut job: Option<Job> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut last_fix = Instant::now() - Duration::from_secs(60);
    let me = |rest: &str| format!("kuzet/v1/units/{id}/{rest}");
    let incident_topic = |i: &str| format!("kuzet/v1/incidents/{i}");
    loop {
        let msg = tokio::select! {
            m = d.rx.recv() => match m {
                None => return,
                Some(m) => Some(m),
            },
            _ = tick.tick() => None,
        };
        match msg {
            Some(In::Back) => {
                send(&d.client, me("status"), json!({"at": chrono::Utc::now(), "status": "available"})).await;
                last_fix = Instant::now() - Duration::from_secs(60);
                if let Some(j) = &mut job {
                    d.client.subscribe(incident_topic(&j.incident), QoS::AtLeastOnce).await.unwrap();
                    j.sent = Instant::now() - Duration::from_secs(60);
                }
            }
            Some(In::Msg { topic, payload }) => {
                if topic == me("offers") {
                    let offer_id = payload["offer_id"].as_str().unwrap_or_default().to_owned();
                    let incident = payload["incident_id"].as_str().unwrap_or_default().to_owned();
                    offers.lock().unwrap().insert(offer_id.clone(), incident.clone());
                    match &job {
                        None => {
                            d.client.subscribe(incident_topic(&incident), QoS::AtLeastOnce).await.unwrap();
                            job = Some(Job {
                                incident,
                                offer_id,
                                step: Step::Accept,
                                sent: Instant::now() - Duration::from_secs(60),
                            });
                        }
                        Some(j) if j.offer_id == offer_id => {}
                        Some(_) => {
                            let reply = json!({"offer_id": offer_id, "decision": "decline", "reason": "on another call"});
                            send(&d.client, me("reply"), reply).await;
                        }
                    }
                } else if let Some(j) = &mut job {
                    let ours = j.incident.clone();
                    let over = if topic == incident_topic(&ours) {
                        snapshot_says(j, &payload, &id)
                    } else if topic == me(&format!("incidents/{ours}")) {
                        let ev = payload["event"].as_str().unwrap_or_default();
                        ev == "cancelled"
                            || ev == "closed"
                            || (ev == "offer_revoked"
                                && payload["offer_id"] == json!(j.offer_id)
                                && j.step == Step::Accept)
                    } else if topic == format!("kuzet/v1/rejects/{id}") {
                        // kuzet does not know this offer, or our place on this incident (a
                        // refusal of an older message, redelivered, names another one).
                        payload["code"] == json!("refused")
                            && (payload["offer_id"] == json!(j.offer_id) && j.step == Step::Accept
                                || payload["incident_id"] == json!(ours) && j.step > Step::Accept)
                    } else {
                        false
                    };
                    if over {
                        let _ = d.client.unsubscribe(incident_topic(&ours)).await;
                        job = None;
                    }
                }
            }
            None => {}
        }
        if last_fix.elapsed() > Duration::from_secs(2) {
            send(&d.client, me("position"), position(at)).await;
            last_fix = Instant::now();
        }
        if let Some(j) = &mut job {
            if j.sent.elapsed() > Duration::from_secs(3) {
                let body = match j.step {
                    Step::Accept => (me("reply"), json!({"offer_id": j.offer_id, "decision": "accept"})),
                    s => (
                        me("progress"),
                        json!({"incident_id": j.incident, "state": s.progress(), "at": chrono::Utc::now()}),
                    ),
                };
                send(&d.client, body.0, body.1).await;
                j.sent = Instant::now();
            }
        }
    }
}

/// Moves the job on by the incident's snapshot; true when the job is over.
fn snapshot_says(j: &mut Job, s: &Value, me: &str) -> bool {
    let state = s["state"].as_str().unwrap_or_default();
    if s.is_null() || state == "closed" || state == "cancelled" {
        return true;
    }
    let Some(mine) = s["units"].as_array().and_then(|u| u.iter().find(|a| a["unit"] == json!(me))) else {
        // Not on it yet: the answer is on its way, or kuzet restarted from a record older
        // than a snapshot it had published, and the unacknowledged answer comes to it again.
        // The job ends only when kuzet says so (closed, cancelled, revoked, refused).
        return false;
    };
    let shown = mine["progress"].as_str().and_then(Step::from_progress).unwrap_or(Step::Accept);
    if shown >= j.step {
        match shown.next() {
            Some(next) => {
                j.step = next;
                j.sent = Instant::now() - Duration::from_secs(60);
            }
            None => return true,
        }
    }
    false
}

// ---------------------------------------------------------------------------------------
// kuzet, killed and started again

struct Kuzet {
    env: Vec<(String, String)>,
    log: std::path::PathBuf,
    process: Option<KuzetProcess>,
    kills: usize,
    /// From each start to kuzet answering its probe.
    recoveries: Vec<Duration>,
}

impl Kuzet {
    fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill_9();
            self.kills += 1;
        }
    }

    async fn start(&mut self, probe: &mut Device) {
        let t = Instant::now();
        self.process = Some(KuzetProcess::start(&self.env, &self.log));
        up(probe).await;
        self.recoveries.push(t.elapsed());
    }
}

/// Waits until kuzet answers: a malformed position from the probe comes back as a reject.
async fn up(probe: &mut Device) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while probe.rx.try_recv().is_ok() {}
    loop {
        let topic = format!("kuzet/v1/units/{PROBE}/position");
        probe.client.publish(topic, QoS::AtLeastOnce, false, "{not json").await.unwrap();
        let answered = tokio::time::timeout(Duration::from_millis(500), async {
            loop {
                match probe.rx.recv().await {
                    Some(In::Msg { topic, .. }) if topic.starts_with("kuzet/v1/rejects/") => return,
                    Some(_) => {}
                    None => std::future::pending::<()>().await,
                }
            }
        })
        .await;
        if answered.is_ok() {
            return;
        }
        assert!(Instant::now() < deadline, "kuzet did not come up");
    }
}

async fn events(pool: &PgPool, incident: &str, event: &str, unit: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM incident_events WHERE incident_id = $1::uuid AND event = $2 AND unit_id = $3",
    )
    .bind(incident)
    .bind(event)
    .bind(unit)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Waits until the kuzet log has a line containing `needle` after `from` bytes.
async fn log_says(log: &std::path::Path, from: u64, needle: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read(log).unwrap_or_default();
        if String::from_utf8_lossy(&text[(from as usize).min(text.len())..]).contains(needle) {
            return;
        }
        assert!(Instant::now() < deadline, "no {needle:?} in kuzet's log");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[actix_rt::test]
async fn kills_of_kuzet_the_database_and_the_broker_lose_nothing() {
    let setting =
        |name: &str, default: u64| std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    let seed = setting("KUZET_CHAOS_SEED", 20261206);
    let random_kills = setting("KUZET_CHAOS_KILLS", RANDOM_KILLS as u64) as usize;
    let broker_kills = setting("KUZET_CHAOS_BROKER_KILLS", BROKER_KILLS as u64) as usize;
    eprintln!(
        "chaos seed {seed} (KUZET_CHAOS_SEED), {random_kills} random kills, {broker_kills} of the broker"
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let devices = devices();
    let (cluster, url) = tokio::task::spawn_blocking(OwnCluster::start).await.unwrap();
    let db = {
        let base = url.clone();
        let name = format!("kuzet_chaos_{}", Uuid::new_v4().simple());
        let admin = kuzet::store::connect(&base).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
        format!("{}/{name}", base.rsplit_once('/').unwrap().0)
    };
    let access = kuzet::mosquitto::Access {
        passwords_plain: kuzet::brokerfiles::plaintext_passwords(&devices, "kuzet", SERVICE_PASSWORD),
        acl: kuzet::brokerfiles::acl(&devices, "kuzet"),
    };
    let mut broker = kuzet::mosquitto::MosquittoProcess::start_with(Some(access), true).unwrap();
    let mut tap = Tap::start(broker.port).await;
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry.toml");
    std::fs::write(&registry, kuzet::registry_file::to_toml(&devices).unwrap()).unwrap();
    let http = free_port();
    let (env, log) = ProcessEnv {
        name: "chaos",
        mqtt_port: tap.port,
        database_url: &db,
        spool_dir: &dir.path().join("spool"),
        registry: &registry,
        http_listen: format!("127.0.0.1:{http}"),
        offer_timeout_s: 4,
    }
    .build();
    let mut kuzet = Kuzet { env, log: log.clone(), process: None, kills: 0, recoveries: Vec::new() };

    let mut probe = device(broker.port, DeviceKind::Unit, PROBE, vec![topics::rejects(PROBE)]).await;
    kuzet.start(&mut probe).await;
    let pool = kuzet::store::connect(&db).await.unwrap();

    let ledger: Shared<Ledger> = Arc::default();
    let offers: Shared<HashMap<String, String>> = Arc::default();
    let (stop_tx, stop) = watch::channel(false);
    let mut tasks = Vec::new();
    let far = school_location().offset(50_000.0, 0.0);
    for (i, id) in (0..UNITS).map(|i| format!("u-{i}")).chain([RESERVE.to_owned()]).enumerate() {
        let subs =
            vec![topics::offers(&id), format!("kuzet/v1/units/{id}/incidents/+"), topics::rejects(&id)];
        let d = device(broker.port, DeviceKind::Unit, &id, subs).await;
        let at = if id == RESERVE { far } else { school(i % SCHOOLS).offset(400.0, 300.0 * i as f64) };
        tasks.push(tokio::spawn(run_tablet(d, id, at, offers.clone())));
    }
    // Positions in before the first alarm.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..SCHOOLS {
        let id = format!("btn-{i}");
        let d =
            device(broker.port, DeviceKind::Button, &id, vec![topics::button_ack(&id), topics::rejects(&id)])
                .await;
        tasks.push(tokio::spawn(run_button(d, id, ledger.clone(), stop.clone(), rng.random())));
    }

    // 1. Right after kuzet acknowledged a unit's accept.
    tap.drain();
    let acked = tap.next(|a| a.topic.ends_with("/reply") && a.payload["decision"] == json!("accept")).await;
    kuzet.kill();
    let unit = acked.topic.split('/').nth(3).unwrap().to_owned();
    let offer = acked.payload["offer_id"].as_str().unwrap().to_owned();
    let incident = offers.lock().unwrap().get(&offer).cloned().expect("the tablet saw the offer");
    let on_it: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM incidents WHERE id = $1::uuid AND dispatch->'dispatch'->'assigned' @> $2::jsonb",
    )
    .bind(&incident)
    .bind(json!([{ "unit": unit }]))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(on_it, 1, "{unit}'s accept of {offer} was acknowledged, so the record has it on {incident}");
    assert_eq!(events(&pool, &incident, "reply_accept", &unit).await, 1, "its timeline has the accept");
    kuzet.start(&mut probe).await;

    // 2. Right after kuzet acknowledged a unit's cleared.
    tap.drain();
    let acked = tap.next(|a| a.topic.ends_with("/progress") && a.payload["state"] == json!("cleared")).await;
    kuzet.kill();
    let unit = acked.topic.split('/').nth(3).unwrap().to_owned();
    let incident = acked.payload["incident_id"].as_str().unwrap().to_owned();
    assert_eq!(
        events(&pool, &incident, "unit_cleared", &unit).await,
        1,
        "{unit}'s cleared on {incident} was acknowledged, so the record has it"
    );
    kuzet.start(&mut probe).await;

    // 3. Right after a dispatcher's order was answered 200.
    let base = format!("http://127.0.0.1:{http}");
    let token = sign_in_as(&pool, &base, kuzet::auth::Role::Dispatcher).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let incident = loop {
        assert!(Instant::now() < deadline, "no incident took the dispatcher's order");
        let open: Vec<String> = sqlx::query_scalar(
            "SELECT id::text FROM incidents WHERE state IN ('dispatched', 'en_route', 'on_scene')",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let mut answered = None;
        for i in open {
            let res = client()
                .post(format!("{base}/api/v1/incidents/{i}/assign"))
                .bearer_auth(&token)
                .send_json(&json!({"unit_id": RESERVE}))
                .await
                .expect("the order is answered");
            if res.status() == 200 {
                answered = Some(i);
                break;
            }
        }
        if let Some(i) = answered {
            break i;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    kuzet.kill();
    assert_eq!(
        events(&pool, &incident, "assigned_by_dispatcher", RESERVE).await,
        1,
        "the order on {incident} was answered 200, so the record has it"
    );
    kuzet.start(&mut probe).await;

    // 4. In the middle of a spool replay: the database away for 3 s under the load.
    let pg_dir = cluster.dir.clone();
    tokio::task::spawn_blocking(move || pg_sh("stop", &pg_dir)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let from = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let pg_dir = cluster.dir.clone();
    let again = tokio::task::spawn_blocking(move || pg_sh("start", &pg_dir)).await.unwrap();
    assert_eq!(again, format!("DATABASE_URL={url}"), "the database is back on its port");
    log_says(&log, from, "database reachable again: writing the spool", Duration::from_secs(30)).await;
    kuzet.kill();
    kuzet.start(&mut probe).await;

    // 5. Killed at random moments, and the broker killed once among them.
    let broker_at: Vec<usize> = (1..=broker_kills).map(|b| b * random_kills / (broker_kills + 1)).collect();
    for k in 0..random_kills {
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..2500))).await;
        kuzet.kill();
        if broker_at.contains(&k) {
            broker.kill();
            tokio::time::sleep(Duration::from_millis(rng.random_range(100..1000))).await;
            broker.start_again().unwrap();
        }
        kuzet.start(&mut probe).await;
    }

    // The schools stop raising; every alarm raised must end cleared.
    stop_tx.send(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let open: Vec<(Uuid, String, Vec<String>)> = ledger
            .lock()
            .unwrap()
            .alarms
            .iter()
            .filter(|(_, (_, seen))| !seen.iter().any(|s| s == "cleared"))
            .map(|(a, (b, seen))| (*a, b.clone(), seen.clone()))
            .collect();
        if open.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alarms never cleared at their button: {open:?} (log {})",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let raised: Vec<Uuid> = ledger.lock().unwrap().alarms.keys().copied().collect();
    // What the buttons heard is in the record too (written behind the acks).
    wait_until("no open incident in the record", Duration::from_secs(20), || {
        let pool = pool.clone();
        async move {
            count(&pool, "SELECT count(*) FROM incidents WHERE state NOT IN ('closed', 'cancelled')").await
                == 0
        }
    })
    .await;
    kuzet.kill();
    let recorded: Vec<Uuid> =
        sqlx::query_scalar("SELECT alarm_id FROM alarms WHERE action = 'raise' ORDER BY alarm_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(recorded, raised, "every alarm raised is recorded once");
    let cancelled = count(&pool, "SELECT count(*) FROM incidents WHERE state = 'cancelled'").await;
    assert_eq!(cancelled, 0, "nothing was cancelled");
    let unworked = count(
        &pool,
        "SELECT count(*) FROM incidents i WHERE NOT EXISTS (SELECT 1 FROM incident_events e
           WHERE e.incident_id = i.id AND e.event = 'ack_dispatched')
           OR NOT EXISTS (SELECT 1 FROM incident_events e WHERE e.incident_id = i.id AND e.event = 'closed')",
    )
    .await;
    assert_eq!(unworked, 0, "every incident was dispatched and closed");
    assert_timelines_whole(&pool).await;
    let v = kuzet::store::audit::verify(&pool).await.unwrap();
    assert!(v.first_break.is_none(), "{v:?}");

    let mut rec = kuzet.recoveries.clone();
    rec.sort();
    let pct = |p: f64| rec[((rec.len() - 1) as f64 * p).round() as usize];
    eprintln!(
        "chaos: {} kills of kuzet, {broker_kills} of the broker, {} alarms raised and cleared, {} incidents, \
         {} replies and {} progress reports recorded, 0 lost; restart to answering p50 {:?} p99 {:?} max {:?}",
        kuzet.kills,
        raised.len(),
        count(&pool, "SELECT count(*) FROM incidents").await,
        count(&pool, "SELECT count(*) FROM incident_events WHERE event IN ('reply_accept', 'reply_decline')").await,
        count(&pool, "SELECT count(*) FROM incident_events WHERE event IN ('en_route', 'on_scene', 'unit_cleared')").await,
        pct(0.5),
        pct(0.99),
        rec.last().unwrap()
    );
    assert!(kuzet.kills >= random_kills + 5, "{} kills", kuzet.kills);
    for t in tasks {
        t.abort();
    }
}
