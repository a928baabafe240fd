//! The simulated city: real MQTT clients standing in for the people and devices of a city.
//! Units drive around and report positions; tablets accept or decline offers after a
//! human-like delay and report progress; schools press their panic buttons now and then.
//! Used by `kuzet-demo`, `kuzet-sim` (against any broker), `kuzet-bench` and the tests.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use kuzet_actors::geo::GeoPoint;
use kuzet_actors::ids::{ButtonId, SiteId, UnitId};
use kuzet_actors::spec::{ButtonSpec, Devices, SiteKind, SiteSpec, UnitSpec};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rumqttc::{AsyncClient, Event, Incoming, LastWill, MqttOptions, QoS};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use kuzet::mqtt::topics::{self, DeviceKind};
use kuzet::roads::RoadNetwork;

/// How to build a city.
#[derive(Debug, Clone)]
pub struct CityPlan {
    pub centre: GeoPoint,
    pub radius_m: f64,
    pub schools: usize,
    pub units: usize,
    pub seed: u64,
}

/// The password every simulated device uses; only for the demo and load tests.
pub fn sim_password(id: &str) -> String {
    format!("sim-{id}")
}

/// Generates a city's devices: schools with two buttons each, and patrol units. With a road
/// network, schools stand by its roads.
pub fn city_on(plan: &CityPlan, roads: Option<&RoadNetwork>) -> Devices {
    let mut d = city(plan);
    if let Some(net) = roads.filter(|n| n.graph().node_count() > 0) {
        let mut rng = StdRng::seed_from_u64(plan.seed ^ 0xC0FFEE);
        for s in &mut d.sites {
            s.location = net.graph().point(rng.random_range(0..net.graph().node_count() as u32));
        }
    }
    d
}

/// Generates a city's devices: schools with two buttons each, and patrol units.
pub fn city(plan: &CityPlan) -> Devices {
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let mut d = Devices::default();
    for i in 1..=plan.schools {
        let loc = random_point(&mut rng, plan.centre, plan.radius_m);
        let buttons = [("a", "101"), ("b", "staff room")]
            .iter()
            .map(|(suffix, room)| {
                let id = format!("btn-{i:03}-{suffix}");
                ButtonSpec {
                    password: Some(sim_password(&id)),
                    id: ButtonId::parse(&id).expect("generated id matches the pattern"),
                    room: Some((*room).to_owned()),
                }
            })
            .collect();
        d.sites.push(SiteSpec {
            id: SiteId::parse(&format!("school-{i:03}")).expect("generated id matches the pattern"),
            name: format!("School No. {i}"),
            kind: SiteKind::School,
            location: loc,
            buttons,
        });
    }
    for i in 1..=plan.units {
        let id = format!("unit-{i:04}");
        d.units.push(UnitSpec {
            password: Some(sim_password(&id)),
            id: UnitId::parse(&id).expect("generated id matches the pattern"),
            callsign: format!("Patrol {i}"),
        });
    }
    d
}

pub fn random_point(rng: &mut impl Rng, centre: GeoPoint, radius_m: f64) -> GeoPoint {
    let r = radius_m * rng.random::<f64>().sqrt();
    let a = rng.random::<f64>() * std::f64::consts::TAU;
    centre.offset(r * a.cos(), r * a.sin())
}

/// A device's MQTT connection: publishes go out through `client`, everything received on
/// its subscriptions comes out of `rx` as (topic, JSON).
pub struct DeviceLink {
    pub client: AsyncClient,
    pub rx: mpsc::Receiver<(String, Value)>,
    task: tokio::task::JoinHandle<()>,
}

impl DeviceLink {
    /// Drops the connection without a DISCONNECT, as a tablet that loses power or signal
    /// does: the broker then publishes the device's last will.
    pub fn kill(&self) {
        self.task.abort();
    }
}

impl Drop for DeviceLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connects as device `id` of `kind`, with its last will on the online topic, and
/// subscribes to `subscriptions`. Returns once the subscriptions are acknowledged.
pub async fn connect_device(
    host: &str,
    port: u16,
    kind: DeviceKind,
    id: &str,
    password: &str,
    subscriptions: &[String],
) -> anyhow::Result<DeviceLink> {
    connect(host, port, id, id, password, Some(kind), subscriptions).await
}

/// Connects a plain client (a console or integration, no presence topic) as `username`.
pub async fn connect_observer(
    host: &str,
    port: u16,
    username: &str,
    password: &str,
    subscriptions: &[String],
) -> anyhow::Result<DeviceLink> {
    let client_id = format!("{username}-observer-{}", uuid::Uuid::new_v4().simple());
    connect(host, port, &client_id, username, password, None, subscriptions).await
}

async fn connect(
    host: &str,
    port: u16,
    client_id: &str,
    username: &str,
    password: &str,
    presence: Option<DeviceKind>,
    subscriptions: &[String],
) -> anyhow::Result<DeviceLink> {
    let id = client_id;
    let mut o = MqttOptions::new(client_id, host, port);
    o.set_credentials(username, password);
    o.set_keep_alive(Duration::from_secs(10));
    o.set_max_packet_size(1024 * 1024, 1024 * 1024);
    // Devices keep their session (docs/mqtt.md): an alarm the broker has not acknowledged is
    // sent again after a reconnect instead of being dropped with a new session.
    o.set_clean_session(presence.is_none());
    let online = presence.map(|kind| topics::device(kind, username, "online"));
    if let Some(t) = &online {
        o.set_last_will(LastWill::new(t.clone(), "false", QoS::AtLeastOnce, true));
    }
    let (client, mut eventloop) = AsyncClient::new(o, 64);
    kuzet::mqtt::gateway::no_delay(&mut eventloop);
    for s in subscriptions {
        client.subscribe(s.clone(), QoS::AtLeastOnce).await?;
    }
    if let Some(t) = online {
        client.publish(t, QoS::AtLeastOnce, true, "true").await?;
    }
    let (tx, rx) = mpsc::channel(256);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let mut ready_tx = Some(ready_tx);
    let mut acks = 0;
    let want = subscriptions.len();
    let device = id.to_owned();
    let task = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Incoming::ConnAck(_))) if want == 0 => {
                    if let Some(r) = ready_tx.take() {
                        let _ = r.send(Ok(()));
                    }
                }
                Ok(Event::Incoming(Incoming::SubAck(_))) => {
                    acks += 1;
                    if acks == want {
                        if let Some(r) = ready_tx.take() {
                            let _ = r.send(Ok(()));
                        }
                    }
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    let v = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                    if tx.send((p.topic.clone(), v)).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if let Some(r) = ready_tx.take() {
                        let _ = r.send(Err(anyhow::anyhow!("device {device} cannot connect: {e}")));
                        return;
                    }
                    if tx.is_closed() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    });
    ready_rx.await.map_err(|_| anyhow::anyhow!("device connection task ended"))??;
    Ok(DeviceLink { client, rx, task })
}

/// How the simulated people behave.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// Mean seconds between presses, per school.
    pub press_every_s: f64,
    /// Share of offers accepted.
    pub accept_ratio: f64,
    /// Seconds an officer takes to answer an offer (uniform range).
    pub answer_delay_s: (f64, f64),
    /// Seconds spent on scene before clearing.
    pub on_scene_s: (f64, f64),
    /// Speed while patrolling and while responding, m/s.
    pub patrol_mps: f64,
    pub respond_mps: f64,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            press_every_s: 240.0,
            accept_ratio: 0.8,
            answer_delay_s: (1.5, 6.0),
            on_scene_s: (15.0, 40.0),
            patrol_mps: 8.0,
            respond_mps: 14.0,
        }
    }
}

/// Starts every simulated device of `devices` against the broker and returns their tasks.
pub async fn run_city(
    host: &str,
    port: u16,
    devices: &Devices,
    plan: &CityPlan,
    behaviour: Behaviour,
    roads: Option<Arc<RoadNetwork>>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = Vec::new();
    for (n, u) in devices.units.iter().enumerate() {
        let id = u.id.to_string();
        let pass = u.password.clone().unwrap_or_else(|| sim_password(&id));
        let subs = vec![topics::offers(&id), format!("kuzet/v1/units/{id}/incidents/+")];
        let link = connect_device(host, port, DeviceKind::Unit, &id, &pass, &subs).await?;
        let mut rng = StdRng::seed_from_u64(plan.seed ^ ((n as u64 + 1) * 0x9E37_79B9));
        let area = Area { centre: plan.centre, radius_m: plan.radius_m, roads: roads.clone() };
        let start = area.random_place(&mut rng);
        tasks.push(tokio::spawn(sim_unit(id, link, start, area, behaviour.clone(), rng)));
    }
    for (n, s) in devices.sites.iter().enumerate() {
        let mut links = Vec::new();
        for b in &s.buttons {
            let id = b.id.to_string();
            let pass = b.password.clone().unwrap_or_else(|| sim_password(&id));
            let link = connect_device(host, port, DeviceKind::Button, &id, &pass, &[topics::button_ack(&id)])
                .await?;
            links.push((id, link));
        }
        let rng = StdRng::seed_from_u64(plan.seed ^ ((n as u64 + 7) * 0x85EB_CA6B));
        tasks.push(tokio::spawn(sim_school(s.name.clone(), links, behaviour.clone(), rng)));
    }
    Ok(tasks)
}

/// Where simulated cars go: anywhere in a circle, or the road network's nodes when there is one.
#[derive(Clone)]
struct Area {
    centre: GeoPoint,
    radius_m: f64,
    roads: Option<Arc<RoadNetwork>>,
}

impl Area {
    fn random_place(&self, rng: &mut StdRng) -> GeoPoint {
        match &self.roads {
            Some(net) if net.graph().node_count() > 0 => {
                net.graph().point(rng.random_range(0..net.graph().node_count() as u32))
            }
            _ => random_point(rng, self.centre, self.radius_m),
        }
    }
}

/// A simulated car: drives along the roads at their speeds (times `urgency`) when the city
/// has a network, in straight lines at `straight_mps` otherwise.
struct Driver {
    pos: GeoPoint,
    /// Points still to reach, each with the speed to drive there.
    legs: std::collections::VecDeque<(GeoPoint, f64)>,
    speed_mps: f64,
}

impl Driver {
    fn head_to(&mut self, target: GeoPoint, roads: Option<&RoadNetwork>, straight_mps: f64, urgency: f64) {
        self.legs.clear();
        let routed = roads.and_then(|net| {
            let (from, to) = (net.snap(&self.pos)?, net.snap(&target)?);
            let (_, nodes) = net.node_time(from.node(), to.node())?;
            Some(net.drive(&nodes))
        });
        match routed {
            Some(legs) => {
                self.legs.extend(legs.into_iter().map(|(p, mps)| (p, mps * urgency)));
                self.legs.push_back((target, straight_mps.min(8.0)));
            }
            None => self.legs.push_back((target, straight_mps)),
        }
    }

    /// Drives for `secs`; true when the last point is reached.
    fn step(&mut self, mut secs: f64) -> bool {
        self.speed_mps = 0.0;
        while let Some(&(next, mps)) = self.legs.front() {
            let d = self.pos.distance_m(&next);
            if d <= mps * secs || mps <= 0.0 {
                self.pos = next;
                secs -= if mps > 0.0 { d / mps } else { 0.0 };
                self.legs.pop_front();
                continue;
            }
            let f = mps * secs / d;
            let north = (next.lat() - self.pos.lat()).to_radians() * kuzet_actors::geo::EARTH_RADIUS_M * f;
            let east = (next.lon() - self.pos.lon()).to_radians()
                * kuzet_actors::geo::EARTH_RADIUS_M
                * self.pos.lat().to_radians().cos()
                * f;
            self.pos = self.pos.offset(north, east);
            self.speed_mps = mps;
            return false;
        }
        true
    }
}

enum Task {
    Patrol,
    Responding { incident: String },
    OnScene { incident: String, until: tokio::time::Instant },
}

async fn sim_unit(
    id: String,
    mut link: DeviceLink,
    start: GeoPoint,
    area: Area,
    b: Behaviour,
    mut rng: StdRng,
) {
    let roads = area.roads.clone();
    let mut car = Driver { pos: start, legs: Default::default(), speed_mps: 0.0 };
    car.head_to(area.random_place(&mut rng), roads.as_deref(), b.patrol_mps, 0.8);
    let mut task = Task::Patrol;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let (answer_tx, mut answer_rx) = mpsc::channel::<(String, String, GeoPoint, bool)>(8);
    let pub_json = |ch: &str, v: Value| {
        let c = link.client.clone();
        let t = topics::device(DeviceKind::Unit, &id, ch);
        async move {
            let _ = c.publish(t, QoS::AtLeastOnce, false, v.to_string()).await;
        }
    };
    pub_json("status", json!({"at": Utc::now(), "status": "available"})).await;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let arrived = matches!(task, Task::OnScene { .. }) || car.step(1.0);
                if arrived {
                    match &task {
                        Task::Patrol => car.head_to(area.random_place(&mut rng), roads.as_deref(), b.patrol_mps, 0.8),
                        Task::Responding { incident, .. } => {
                            let incident = incident.clone();
                            pub_json("progress", json!({"incident_id": incident, "state": "on_scene", "at": Utc::now()})).await;
                            let stay = rng.random_range(b.on_scene_s.0..=b.on_scene_s.1);
                            task = Task::OnScene { incident, until: tokio::time::Instant::now() + Duration::from_secs_f64(stay) };
                        }
                        Task::OnScene { incident, until } if tokio::time::Instant::now() >= *until => {
                            pub_json("progress", json!({"incident_id": incident, "state": "cleared", "at": Utc::now()})).await;
                            task = Task::Patrol;
                            car.head_to(area.random_place(&mut rng), roads.as_deref(), b.patrol_mps, 0.8);
                        }
                        Task::OnScene { .. } => {}
                    }
                }
                let pos = car.pos;
                pub_json("position", json!({"at": Utc::now(), "lat": pos.lat(), "lon": pos.lon(), "speed_mps": car.speed_mps})).await;
            }
            Some((offer_id, incident, to, accept)) = answer_rx.recv() => {
                if accept && matches!(task, Task::Patrol) {
                    pub_json("reply", json!({"offer_id": offer_id, "decision": "accept"})).await;
                    pub_json("progress", json!({"incident_id": incident, "state": "en_route", "at": Utc::now()})).await;
                    car.head_to(to, roads.as_deref(), b.respond_mps, 1.3);
                    task = Task::Responding { incident };
                } else {
                    pub_json("reply", json!({"offer_id": offer_id, "decision": "decline", "reason": "finishing a traffic stop"})).await;
                }
            }
            msg = link.rx.recv() => {
                let Some((topic, v)) = msg else { return };
                if topic.ends_with("/offers") {
                    let (Some(offer_id), Some(incident), Some(lat), Some(lon)) = (
                        v["offer_id"].as_str(), v["incident_id"].as_str(), v["location"]["lat"].as_f64(), v["location"]["lon"].as_f64(),
                    ) else { continue };
                    let Ok(to) = GeoPoint::new(lat, lon) else { continue };
                    let delay = rng.random_range(b.answer_delay_s.0..=b.answer_delay_s.1);
                    let accept = rng.random_bool(b.accept_ratio.clamp(0.0, 1.0));
                    let tx = answer_tx.clone();
                    let (offer_id, incident) = (offer_id.to_owned(), incident.to_owned());
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs_f64(delay)).await;
                        let _ = tx.send((offer_id, incident, to, accept)).await;
                    });
                } else if (v["event"] == "cancelled" || v["event"] == "closed")
                    && matches!(&task, Task::Responding { incident, .. } | Task::OnScene { incident, .. } if v["incident_id"].as_str() == Some(incident.as_str()))
                {
                    task = Task::Patrol;
                    car.head_to(area.random_place(&mut rng), roads.as_deref(), b.patrol_mps, 0.8);
                }
            }
        }
    }
}

async fn sim_school(name: String, links: Vec<(String, DeviceLink)>, b: Behaviour, mut rng: StdRng) {
    let mut clients = Vec::with_capacity(links.len());
    for (id, mut link) in links {
        clients.push((id.clone(), link.client.clone()));
        // What the staff would read on the button's display.
        tokio::spawn(async move {
            while let Some((_, ack)) = link.rx.recv().await {
                tracing::info!(button_id = %id, state = %ack["state"], eta_s = %ack["eta_s"], "button shows");
            }
        });
    }
    loop {
        // Exponential gaps: presses are independent events.
        let gap = -b.press_every_s * (1.0 - rng.random::<f64>()).ln();
        tokio::time::sleep(Duration::from_secs_f64(gap.clamp(1.0, 86_400.0))).await;
        let which = rng.random_range(0..clients.len());
        let (id, client) = &clients[which];
        let alarm_id = uuid::Uuid::new_v4();
        let kind = ["intruder", "medical", "fire", "other"][rng.random_range(0..4)];
        let raise = json!({"alarm_id": alarm_id, "action": "raise", "kind": kind, "at": Utc::now()});
        tracing::info!(school = %name, button_id = %id, kind, "simulated panic button pressed");
        let topic = topics::device(DeviceKind::Button, id, "alarm");
        if client.publish(topic.clone(), QoS::AtLeastOnce, false, raise.to_string()).await.is_err() {
            continue;
        }
        // One press in ten is a mistake, cancelled a few seconds later.
        if rng.random_bool(0.1) {
            tokio::time::sleep(Duration::from_secs(4)).await;
            let cancel = json!({"alarm_id": alarm_id, "action": "cancel", "at": Utc::now()});
            let _ = client.publish(topic, QoS::AtLeastOnce, false, cancel.to_string()).await;
        }
    }
}
