//! The MQTT gateway. Inbound: one task per connection polls the client's event loop, parses
//! and validates each publish and delivers it to the device's actor, awaiting delivery so that
//! a slow actor slows the reading instead of growing a queue. Positions go to the fleet, not to
//! an actor (`kuzet_actors::fleet`), and their listener runs on the bulk lane's thread
//! (`crate::lanes`). Inbound refusals become rejects.
//! Outbound: the `Gateway` actor, the outbox's `mqtt` sink, turns `Notify` into QoS 1
//! publishes without ever blocking.
//!
//! Alarms come on a connection of their own (`topics::ALARM_SUBSCRIPTIONS`) with manual
//! acknowledgements: an alarm is acknowledged (PUBACK) only once the writer has made it
//! durable; until then the broker keeps it and delivers it again if kuzet stops. Tablets'
//! replies, progress and status come the same way on a second one
//! (`topics::UNIT_SUBSCRIPTIONS`), acknowledged once the change they made is recorded, so
//! an alarm never waits behind them. Everything else (positions, heartbeats, presence,
//! detections) comes on the main connection, acknowledged by the client on receipt:
//! thousands of positions a second would starve manual acks in the client's request queue.
//! What kuzet publishes goes out on a connection of its own (`drive_outbound`), for the same
//! reason, and is never dropped: while the client's queue is full it waits in the gateway's
//! backlog, in order.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use kuzet_actors::button::AlarmOutcome;
use kuzet_actors::camera::HealthReport;
use kuzet_actors::directory::Directory;
use kuzet_actors::fleet::{Fleet, Reported};
use kuzet_actors::outbound::{Notify, Received, Recorded};
use kuzet_actors::unit::Online;
use rumqttc::{AsyncClient, Event, EventLoop, Incoming, MqttOptions, QoS, SubscribeFilter};
use tokio::sync::watch;

use super::codec::{self, About, Message, Reject, RejectCode, RejectOut};
use super::limit::{Limits, Verdict};
use super::topics::{self, DeviceKind};
use crate::metrics::Metrics;
use crate::store::writer::WriterHandle;

/// Publishes what the actors say.
pub struct Gateway {
    client: AsyncClient,
    metrics: Arc<Metrics>,
    /// Publishes waiting, in order, for room in the client's queue (the broker slow or away);
    /// new ones queue behind them. The handler itself never waits, so the consoles' live
    /// feed goes on while the broker is away.
    backlog: std::collections::VecDeque<rumqttc::Publish>,
    /// One publish of the backlog is being handed to the client.
    draining: bool,
}

impl Gateway {
    pub fn new(client: AsyncClient, metrics: Arc<Metrics>) -> Self {
        Self { client, metrics, backlog: Default::default(), draining: false }
    }
}

impl Actor for Gateway {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // The outbox sends past this capacity (nothing it hands over is dropped); handling a
        // Notify never waits (a full client queue puts publishes in the backlog).
        ctx.set_mailbox_capacity(8192);
    }
}

impl Handler<Notify> for Gateway {
    type Result = ();

    fn handle(&mut self, msg: Notify, ctx: &mut Self::Context) {
        let out = match codec::encode(&msg) {
            Ok(o) => o,
            Err(e) => {
                self.metrics.publish_failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "cannot encode notification");
                return;
            }
        };
        let clear = out.then_clear_retained.then(|| out.topic.clone());
        self.publish(out.topic, out.retain, out.payload, ctx);
        if let Some(topic) = clear {
            self.publish(topic, true, Vec::new(), ctx);
        }
    }
}

impl Gateway {
    /// Hands a publish to the client. When its queue is full (the broker slow or away), the
    /// publish waits in the backlog, and every later one behind it: what must reach a device
    /// is kept, in order, until the client has it.
    fn publish(&mut self, topic: String, retain: bool, payload: Vec<u8>, ctx: &mut Context<Self>) {
        if self.backlog.is_empty() && !self.draining {
            match self.client.try_publish(topic, QoS::AtLeastOnce, retain, payload) {
                Ok(()) => {
                    self.metrics.published.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(rumqttc::ClientError::TryRequest(rumqttc::Request::Publish(p)))
                    if !p.topic.is_empty() =>
                {
                    self.backlog.push_back(p);
                }
                Err(e) => {
                    self.metrics.publish_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "publish not queued");
                    return;
                }
            }
        } else {
            let mut p = rumqttc::Publish::new(topic, QoS::AtLeastOnce, payload);
            p.retain = retain;
            self.backlog.push_back(p);
        }
        self.metrics.publish_waited.fetch_add(1, Ordering::Relaxed);
        self.drain(ctx);
    }

    /// Hands the backlog to the client one publish at a time, each as soon as there is room.
    fn drain(&mut self, ctx: &mut Context<Self>) {
        if self.draining {
            return;
        }
        let Some(p) = self.backlog.pop_front() else { return };
        self.draining = true;
        let client = self.client.clone();
        let sent = async move { client.publish_bytes(p.topic, p.qos, p.retain, p.payload).await };
        ctx.spawn(sent.into_actor(self).map(|res, act, ctx| {
            act.draining = false;
            match res {
                Ok(()) => act.metrics.published.fetch_add(1, Ordering::Relaxed),
                // The event loop is gone: the process is stopping.
                Err(_) => act.metrics.publish_failed.fetch_add(1, Ordering::Relaxed),
            };
            act.drain(ctx);
        }));
    }
}

/// Connection state reported by the inbound task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Connecting,
    /// Connected and subscribed.
    Ready,
}

pub struct Listener {
    pub eventloop: EventLoop,
    pub client: AsyncClient,
    pub directory: Directory,
    pub metrics: Arc<Metrics>,
    pub max_payload_bytes: usize,
    pub link: watch::Sender<Link>,
    /// The record; None: nothing is persisted and every message is acknowledged at once.
    pub writer: Option<WriterHandle>,
    pub subscriptions: &'static [&'static str],
    /// The client was built with manual acks (`options(.., true)`): acknowledge each message.
    pub manual_acks: bool,
    /// Matches edge cameras' faces against the watchlist, on a bounded pool.
    pub edge: Option<crate::vision::EdgeSearches>,
    /// Per device and topic; what this listener subscribes to is checked here.
    pub limits: Limits,
    /// Becomes true when kuzet stops: nothing more is taken in, and no reconnect.
    pub stop: watch::Receiver<bool>,
    /// Where positions go (never to the units' actors).
    pub fleet: Fleet,
}

/// Builds the client's options: persistent session, QoS 1 everywhere, room for oversize
/// payloads to arrive (so they can be refused with a reason rather than break the link).
pub fn options(
    s: &crate::settings::MqttSettings,
    client_id: &str,
    (host, port): (&str, u16),
    manual_acks: bool,
) -> MqttOptions {
    // The client id is the username: brokers tie the two (use_username_as_clientid).
    let mut o = MqttOptions::new(client_id, host, port);
    o.set_clean_session(false);
    o.set_keep_alive(Duration::from_secs(s.keep_alive_s));
    o.set_credentials(client_id, s.password.expose());
    o.set_max_packet_size(4 * 1024 * 1024, 4 * 1024 * 1024);
    o.set_inflight(s.inflight);
    o.set_manual_acks(manual_acks);
    o
}

impl Listener {
    /// Polls until `stop`. Never returns an error: a broken link is logged, counted and
    /// retried with backoff (100 ms doubling to 10 s).
    pub async fn run(mut self) {
        let mut backoff = Duration::from_millis(100);
        let mut stop = self.stop.clone();
        loop {
            let polled = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return,
                p = self.eventloop.poll() => p,
            };
            match polled {
                Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                    backoff = Duration::from_millis(100);
                    tracing::info!(session_present = ack.session_present, "connected to broker");
                    // Subscribe on every connect, even when the broker kept the session: a
                    // SUBSCRIBE makes the broker send the retained presence of every device
                    // again, which a restarted kuzet needs to know who is offline.
                    let filters = self
                        .subscriptions
                        .iter()
                        .map(|t| SubscribeFilter::new((*t).to_owned(), QoS::AtLeastOnce));
                    if let Err(e) = self.client.try_subscribe_many(filters) {
                        tracing::error!(error = %e, "cannot queue subscriptions");
                    }
                }
                Ok(Event::Incoming(Incoming::SubAck(_))) => {
                    let _ = self.link.send(Link::Ready);
                }
                Ok(Event::Incoming(Incoming::Publish(p))) if p.topic == topics::BROKER_DROPPED => {
                    let reported = std::str::from_utf8(&p.payload).ok().and_then(|s| s.trim().parse().ok());
                    let new = reported.map_or(0, |n| self.metrics.broker_dropped_now(n));
                    if new > 0 {
                        tracing::warn!(dropped = new, total = self.metrics.broker_dropped.load(Ordering::Relaxed),
                            "the broker dropped messages for a client whose queue was full (broker.max_queued_messages)");
                    }
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    self.metrics.received.fetch_add(1, Ordering::Relaxed);
                    let recorded = self.deliver(&p.topic, &p.payload, p.retain).await;
                    if self.manual_acks {
                        // Off this task: it is the one that polls the client, which must run
                        // for the acknowledgement to be sent.
                        let client = self.client.clone();
                        tokio::spawn(async move {
                            // Never recorded: no ack, so the broker delivers it again.
                            if !recorded.wait().await {
                                return;
                            }
                            if let Err(e) = client.ack(&p).await {
                                tracing::error!(error = %e, "cannot queue an acknowledgement");
                            }
                        });
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    self.metrics.broker_disconnects.fetch_add(1, Ordering::Relaxed);
                    let _ = self.link.send(Link::Connecting);
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "broker connection lost");
                    tokio::select! {
                        _ = stop.wait_for(|s| *s) => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// Hands a message to its device's actor (a position to the fleet); answers when what it
    /// changed is recorded. Public for the ingest benchmark, which drives it without a broker.
    pub async fn deliver(&mut self, topic: &str, payload: &[u8], retained: bool) -> Recorded {
        let received = Received::now();
        let parsed = match topics::parse(topic) {
            Ok(t) => t,
            Err(e) => {
                let code = if matches!(e, topics::TopicError::Id(_)) {
                    RejectCode::BadId
                } else {
                    RejectCode::BadTopic
                };
                self.refuse(
                    e.device_id(),
                    "unknown",
                    topic,
                    Reject::new(code, e.to_string()),
                    About::default(),
                );
                return Recorded::now();
            }
        };
        let kind = codec::kind_name(parsed.kind);
        // Before decoding: a flood costs a lookup per message, not a parse.
        let over_limit = match self.limits.check(parsed.kind, parsed.id, parsed.channel, &self.directory) {
            Verdict::Within => false,
            // Never refused: acted on as any alarm, and flagged on its incident.
            Verdict::Over { .. } if parsed.channel == topics::Channel::Alarm => {
                self.metrics.alarms_over_limit.fetch_add(1, Ordering::Relaxed);
                true
            }
            Verdict::Over { tell: None } => {
                self.metrics.reject(RejectCode::RateLimited);
                return Recorded::now();
            }
            Verdict::Over { tell: Some(over) } => {
                let l = self.limits.limit(parsed.channel);
                let error = format!(
                    "over the rate limit for this topic ({} a second, {} at once): {over} message(s) \
                     refused since the last notice; the next notice comes no sooner than in a second",
                    l.per_s, l.burst
                );
                let r = Reject::new(RejectCode::RateLimited, error);
                self.refuse(Some(parsed.id), kind, topic, r, About::default());
                return Recorded::now();
            }
        };
        // A retained message comes from the broker's store, not from the device now: a
        // stored alarm or reply must not replay after a restart. Presence alone is retained.
        if retained && parsed.channel != topics::Channel::Online {
            let r = Reject::new(
                RejectCode::Retained,
                "only online may be retained; this stored message is not acted on",
            );
            self.refuse(Some(parsed.id), kind, topic, r, About::default());
            return Recorded::now();
        }
        let msg = match codec::decode(&parsed, payload, self.max_payload_bytes, received) {
            Ok(Message::Alarm(mut a)) => {
                a.over_limit = over_limit;
                Message::Alarm(a)
            }
            Ok(m) => m,
            Err(r) => {
                self.refuse(Some(parsed.id), kind, topic, r, About::default());
                return Recorded::now();
            }
        };
        let about = msg.about();
        let result = match parsed.kind {
            DeviceKind::Button => self.to_button(parsed.id, msg).await,
            DeviceKind::Unit => self.to_unit(parsed.id, msg).await,
            DeviceKind::Camera => self.to_camera(parsed.id, msg).map(|()| Recorded::now()),
        };
        result.unwrap_or_else(|r| {
            self.refuse(Some(parsed.id), kind, topic, r, about);
            Recorded::now()
        })
    }

    async fn to_button(&self, id: &str, msg: Message) -> Result<Recorded, Reject> {
        let unknown = || Reject::new(RejectCode::UnknownDevice, format!("no button {id} is registered"));
        match msg {
            Message::Alarm(a) => {
                let addr = self.directory.button(id).ok_or_else(unknown)?;
                let alarm_id = a.alarm_id;
                let record = self.writer.as_ref().map(|w| (w, a.clone()));
                let outcome = addr.send(a).await.map_err(overloaded)?.map_err(refused)?;
                tracing::info!(button_id = id, %alarm_id, ?outcome, "alarm handled");
                if let Some((w, a)) = record {
                    let (AlarmOutcome::Opened(incident)
                    | AlarmOutcome::Joined(incident)
                    | AlarmOutcome::Duplicate(incident)
                    | AlarmOutcome::Cancelled(incident)) = outcome;
                    return Ok(w.alarm(id, &a, Some(incident)).await.into());
                }
            }
            // Health is kept in the directory: an idle button stays idle.
            Message::Heartbeat { at, battery_pct } => {
                if !self.directory.button_heartbeat(id, at, battery_pct) {
                    return Err(unknown());
                }
            }
            Message::Online(on) => {
                if !self.directory.button_online(id, on) {
                    return Err(unknown());
                }
            }
            _ => unreachable!("topics::parse only yields button channels for buttons"),
        }
        Ok(Recorded::now())
    }

    fn to_camera(&self, id: &str, msg: Message) -> Result<(), Reject> {
        let addr = self
            .directory
            .camera(id)
            .ok_or_else(|| Reject::new(RejectCode::UnknownDevice, format!("no camera {id} is registered")))?;
        match msg {
            Message::Online(on) => {
                let (state, detail) =
                    if on { ("ok", "online") } else { ("offline", "went offline (last will)") };
                addr.try_send(HealthReport { state, detail: detail.into(), at: chrono::Utc::now() })
                    .map_err(|_| Reject::new(RejectCode::Overloaded, "camera busy"))?;
            }
            Message::Detections { at, faces, plates } => {
                if plates > 0 {
                    tracing::debug!(camera_id = id, plates, "plate reads are not matched yet (no hotlist)");
                }
                let Some(edge) = &self.edge else {
                    return Ok(());
                };
                if faces.is_empty() {
                    return Ok(());
                }
                // A search over a large list takes milliseconds: not on this event loop, and
                // never more of them at once than the pool holds.
                if let Err(waiting) = edge.try_search(id, at, faces) {
                    self.metrics.detections_shed.fetch_add(1, Ordering::Relaxed);
                    return Err(Reject::new(
                        RejectCode::Overloaded,
                        format!("the watchlist search is full ({waiting} detections waiting): these faces are not matched"),
                    ));
                }
            }
            _ => unreachable!("topics::parse only yields camera channels for cameras"),
        }
        Ok(())
    }

    async fn to_unit(&self, id: &str, msg: Message) -> Result<Recorded, Reject> {
        let unknown = || Reject::new(RejectCode::UnknownDevice, format!("no unit {id} is registered"));
        // An idle unit's offline presence does not wake it.
        if let Message::Online(false) = msg {
            let Some(addr) = self.directory.unit_offline(id).ok_or_else(unknown)? else {
                return Ok(Recorded::now());
            };
            addr.send(Online(false)).await.map_err(overloaded)?;
            return Ok(Recorded::now());
        }
        let addr = self.directory.unit(id).ok_or_else(unknown)?;
        match msg {
            Message::Position(p) => {
                self.metrics.positions.fetch_add(1, Ordering::Relaxed);
                // Recorded even when late: it is still where the unit was then.
                if let Some(w) = &self.writer {
                    w.position(id, &p);
                }
                if self.fleet.report(id, p) != Reported::Moved {
                    self.metrics.positions_late.fetch_add(1, Ordering::Relaxed);
                }
            }
            Message::Status(s) => return addr.send(s).await.map_err(overloaded),
            Message::Online(on) => addr.send(Online(on)).await.map_err(overloaded)?,
            Message::Reply(r) => return addr.send(r).await.map_err(overloaded)?.map_err(refused),
            Message::Progress(p) => return addr.send(p).await.map_err(overloaded)?.map_err(refused),
            _ => unreachable!("topics::parse only yields unit channels for units"),
        }
        Ok(Recorded::now())
    }

    /// Logs, counts and (when the topic names a valid id) tells the device.
    fn refuse(&self, device: Option<&str>, kind: &str, topic: &str, reject: Reject, about: About) {
        self.metrics.reject(reject.code);
        tracing::warn!(device_kind = kind, device_id = device.unwrap_or("-"), topic, code = reject.code.as_str(),
            error = %reject.error, "message refused");
        let Some(device) = device else { return };
        let body = RejectOut { topic, code: reject.code, error: &reject.error, about };
        match serde_json::to_vec(&body) {
            Ok(payload) => {
                if self.client.try_publish(topics::rejects(device), QoS::AtLeastOnce, false, payload).is_err()
                {
                    self.metrics.publish_failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot encode reject"),
        }
    }
}

fn overloaded(e: MailboxError) -> Reject {
    Reject::new(RejectCode::Overloaded, format!("actor did not take the message: {e}"))
}

fn refused(e: kuzet_actors::refusal::Refusal) -> Reject {
    let code = match e {
        kuzet_actors::refusal::Refusal::Unavailable => RejectCode::Overloaded,
        _ => RejectCode::Refused,
    };
    Reject::new(code, e.to_string())
}

/// Turns Nagle's algorithm off: MQTT messages here are small and latency-bound, and with
/// Nagle on, a publish can wait for the previous one's TCP ACK (tens of milliseconds).
pub fn no_delay(eventloop: &mut EventLoop) {
    let mut n = rumqttc::NetworkOptions::new();
    n.set_tcp_nodelay(true);
    eventloop.set_network_options(n);
}

/// Polls the outbound connection's event loop until the process stops: it only publishes
/// (offers, acks, snapshots), on a connection of its own so that a flood of incoming
/// positions never delays them (rumqttc sends one queued request per poll).
pub async fn drive_outbound(mut eventloop: EventLoop, metrics: Arc<Metrics>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                backoff = Duration::from_millis(100);
                metrics.outbound_up.store(true, Ordering::Relaxed);
                tracing::info!("outbound connection to broker up");
            }
            Ok(_) => {}
            Err(e) => {
                metrics.outbound_up.store(false, Ordering::Relaxed);
                metrics.broker_disconnects.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "outbound broker connection lost");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Waits until the link is ready, for at most `timeout`.
pub async fn wait_ready(mut rx: watch::Receiver<Link>, timeout: Duration) -> bool {
    tokio::time::timeout(timeout, rx.wait_for(|l| *l == Link::Ready)).await.is_ok_and(|r| r.is_ok())
}

/// Waits until the link has noticed it is down (it will subscribe again when it is back).
pub async fn wait_down(mut rx: watch::Receiver<Link>, timeout: Duration) -> bool {
    tokio::time::timeout(timeout, rx.wait_for(|l| *l == Link::Connecting)).await.is_ok_and(|r| r.is_ok())
}
