//! `Application::build`: starts the broker (when embedded), the actors and the MQTT gateway,
//! and reports where it listens. `main` and the tests both start kuzet through it. Must be
//! called inside an actix `System`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use anyhow::Context as _;
use kuzet_actors::directory::Directory;
use kuzet_actors::fleet::Fleet;
use kuzet_actors::incident::IncidentSnapshot;
use kuzet_actors::outbound::{ActorSink, Notify, Outbox};
use kuzet_actors::registry::Restored;
use kuzet_actors::registry::{ListIncidents, Registry, RegistryConfig};
use kuzet_actors::router::{AvailableCount, Router};
use kuzet_actors::spec::Devices;
use rumqttc::AsyncClient;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::mqtt::broker::{BrokerAccess, ManagedBroker};
use crate::mqtt::gateway::{self, Gateway, Link, Listener};
use crate::roads::RoadNetwork;
use crate::settings::{BrokerTarget, Settings};
use crate::store::checkpoint::Checkpointer;
use crate::store::deployment::Kind;
use crate::store::state::{self, LocalState};
use crate::store::writer::{self, WriterConfig, WriterHandle};
use crate::vision::{Vision, VisionParts, Watch};

mod access;
mod record;

use access::{broker_access, check_account_names, device_ids, watch_credentials};
pub use access::{device_credentials, load_roads};
use kuzet_actors::wanted::WatchDirectory;
use record::open_record;

/// How often the searches of the watchlist are summed up in the audit log.
const SEARCH_AUDIT_PERIOD: Duration = Duration::from_secs(60);
/// How long kuzet waits for the database at start before it starts from its local copy.
const FIRST_CONNECT: Duration = Duration::from_secs(3);
/// A connection from the query API's pool waits this long at most; while the database is
/// down its routes answer 503 after it.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
const ACQUIRE_TIMEOUT_OFFLINE: Duration = Duration::from_secs(3);

pub struct Application {
    broker: (String, u16),
    embedded: Option<SocketAddr>,
    /// kuzet's own broker process, when it runs one.
    managed: Option<Arc<ManagedBroker>>,
    registry: Addr<Registry>,
    router: Addr<Router>,
    directory: Directory,
    metrics: Arc<Metrics>,
    /// What the outbound fan-out's metrics sink counts.
    fanout: Arc<crate::metrics::FanoutStats>,
    outbox: Outbox,
    /// The main connection's state, the alarm connection's and the units connection's.
    links: [watch::Receiver<Link>; 3],
    /// Stops the three listeners, and their tasks; taken by `stop`.
    intake: std::sync::Mutex<Option<Intake>>,
    client: AsyncClient,
    alarm_client: AsyncClient,
    units_client: AsyncClient,
    out_client: AsyncClient,
    writer: Option<WriterHandle>,
    pool: Option<sqlx::PgPool>,
    http: Option<(SocketAddr, actix_web::dev::ServerHandle)>,
    /// The Prometheus endpoint (`metrics.listen`).
    metrics_http: Option<(SocketAddr, actix_web::dev::ServerHandle)>,
    /// Camera pipelines and inference threads; taken (and stopped) by `stop`.
    vision: std::sync::Mutex<Option<Vision>>,
    live: crate::feed::LiveHub,
    checkpoints: Option<Arc<Checkpointer>>,
}

/// How kuzet's MQTT connections reach the broker: over TLS to an `mqtts://` broker, whose
/// certificate must chain to `mqtt.ca_file` (or the system's CAs) and name the URL's host;
/// plain TCP otherwise (kuzet's own broker, on loopback).
pub fn mqtt_transport(m: &crate::settings::MqttSettings) -> anyhow::Result<rumqttc::Transport> {
    Ok(match m.target()? {
        BrokerTarget::External { tls: true, .. } => {
            let roots = crate::settings::tls::roots(&m.ca_file).context("mqtt.ca_file")?;
            let config = crate::settings::tls::client_config(roots)?;
            rumqttc::Transport::Tls(rumqttc::TlsConfiguration::Rustls(config))
        }
        _ => rumqttc::Transport::Tcp,
    })
}

/// The listeners' stop signal and their tasks.
type Intake = (watch::Sender<bool>, Vec<tokio::task::JoinHandle<()>>);

impl Application {
    pub async fn build(settings: Settings, devices: Devices) -> anyhow::Result<Self> {
        let roads = load_roads(&settings).await?;
        Self::build_with_roads(settings, devices, roads).await
    }

    /// Like `build`, with a road network already loaded (or none: straight-line ranking).
    pub async fn build_with_roads(
        settings: Settings,
        devices: Devices,
        roads: Option<Arc<RoadNetwork>>,
    ) -> anyhow::Result<Self> {
        devices.validate().context("invalid device registry")?;
        settings.metrics.check()?;
        // Broker credentials: issued ones (hashes, `kuzet credentials issue`) and, for trying
        // kuzet out, passwords the registry file carries. The database holds none.
        let issued = crate::credentials::read(&settings.registry.credentials_file)?;
        let mut credentials = device_credentials(&devices);
        credentials.retain(|id, _| !issued.contains_key(id));
        if !settings.demo {
            // A password in the registry file is for trying kuzet out: a published one never
            // works outside the demo, and a short one is named at every start.
            if let Some(id) =
                credentials.iter().find(|(_, p)| crate::settings::is_published(p)).map(|(id, _)| id)
            {
                anyhow::bail!("device {id} has a published password in the registry file; issue it one (kuzet credentials issue)");
            }
            let short = credentials.values().filter(|p| p.chars().count() < 22).count();
            if short > 0 {
                tracing::warn!(
                    devices = short,
                    "registry-file passwords shorter than 128 random bits (22 characters): for trying kuzet out only; \
                     issue real ones with kuzet credentials issue --missing"
                );
            }
        }
        let (devices, record) = match settings.database.url() {
            Some(url) => {
                let r = open_record(&settings, url, &devices).await?;
                (r.devices.clone(), Some(r))
            }
            None => {
                tracing::warn!("no database configured (database.url): nothing is persisted");
                (devices, None)
            }
        };
        if let Some(net) = &roads {
            // A site off the network is ranked by straight line at every alarm: say so now.
            for site in devices.sites.iter().filter(|s| net.snap(&s.location).is_none()) {
                tracing::warn!(site_id = %site.id, lat = site.location.lat(), lon = site.location.lon(),
                    "site is more than {} m from any road in the extract: its alarms are ranked by straight line",
                    crate::roads::MAX_SNAP_M);
            }
        }
        let mut settings = settings;
        let target = settings.mqtt.target()?;
        if target == BrokerTarget::Embedded && settings.mqtt.password.expose().is_empty() {
            // kuzet's own broker: the service password lives in memory for one run only.
            settings.mqtt.password = crate::settings::Secret::new(crate::brokerfiles::generate_password());
        }
        check_account_names(&settings, &devices)?;
        let no_password: Vec<&str> = device_ids(&devices)
            .filter(|id| !credentials.contains_key(*id) && !issued.contains_key(*id))
            .collect();
        if !no_password.is_empty() {
            tracing::warn!(count = no_password.len(), first = ?&no_password[..no_password.len().min(5)],
                "devices without a broker password cannot connect: `kuzet credentials issue --missing`");
        }
        let transport = mqtt_transport(&settings.mqtt)?;
        let (host, port, embedded, managed) = match target {
            BrokerTarget::Embedded => {
                let access = broker_access(&settings, &devices, &credentials, &issued);
                let m = Arc::new(ManagedBroker::start(&settings.broker, &access)?);
                actix::spawn(watch_credentials(
                    m.clone(),
                    settings.clone(),
                    devices.clone(),
                    credentials.clone(),
                ));
                let listen = m.listen();
                (listen.ip().to_string(), listen.port(), Some(listen), Some(m))
            }
            BrokerTarget::External { host, port, .. } => (host, port, None, None),
        };

        let metrics = Arc::new(Metrics::default());
        let opts = |client_id: &str, manual_acks: bool| {
            let mut o = gateway::options(&settings.mqtt, client_id, (&host, port), manual_acks);
            o.set_transport(transport.clone());
            o
        };
        let [main_id, alarm_id, units_id, out_id] =
            crate::brokerfiles::SERVICE_SUFFIXES.map(|s| format!("{}{s}", settings.mqtt.username));
        let (client, mut eventloop) = AsyncClient::new(opts(&main_id, false), settings.mqtt.request_capacity);
        gateway::no_delay(&mut eventloop);
        let (alarm_client, mut alarm_eventloop) = AsyncClient::new(opts(&alarm_id, true), 1024);
        gateway::no_delay(&mut alarm_eventloop);
        let (units_client, mut units_eventloop) = AsyncClient::new(opts(&units_id, true), 1024);
        gateway::no_delay(&mut units_eventloop);
        let (out_client, mut out_eventloop) =
            AsyncClient::new(opts(&out_id, false), settings.mqtt.request_capacity);
        gateway::no_delay(&mut out_eventloop);
        actix::spawn(gateway::drive_outbound(out_eventloop, metrics.clone()));
        let live = crate::feed::LiveHub::default();
        for a in record.iter().flat_map(|r| &r.alerts) {
            live.offer(&Notify::Integrity(Arc::new(a.clone())));
        }
        // What happened goes to every sink: devices over MQTT, the consoles' live feed, the
        // counters and latency histograms Prometheus reads.
        let gateway = Gateway::new(out_client.clone(), metrics.clone()).start();
        let live_sink = crate::feed::LiveSink::new(live.clone()).start();
        let fanout = Arc::new(crate::metrics::FanoutStats::default());
        let recorded_cameras =
            record.iter().flat_map(|r| &r.alerts).map(|a| (a.camera.clone(), a.state.clone())).collect();
        let metrics_sink =
            crate::metrics::MetricsSink::start(fanout.clone(), devices.cameras.len(), recorded_cameras);
        let mut outbox = Outbox::default()
            .with_sink("mqtt", ActorSink::only(gateway.recipient(), Notify::for_devices))
            .with_sink("live", ActorSink::only(live_sink.recipient(), crate::feed::for_consoles))
            .with_sink("metrics", metrics_sink)
            .with_board(Arc::new(live.clone()));
        if let Some(r) = &record {
            outbox = outbox.with_journal(Arc::new(r.writer.clone()));
        }

        // Where units are: the bulk lane reports, the router reads, the consoles' map shows.
        let fleet = Fleet::default().with_board(Arc::new(live.clone()));
        let mut router = Router::new(settings.dispatch.position_max_age(), fleet.clone());
        if let Some(net) = roads.clone() {
            router = router.with_travel(net, settings.roads.shortlist.max(1));
        }
        let router = router.start();
        let people = WatchDirectory::default();
        let registry = Registry::new(
            devices.clone(),
            RegistryConfig {
                plans: settings.dispatch.plans.clone(),
                watch: people.clone(),
                fleet: fleet.clone(),
            },
            router.clone(),
            outbox.clone(),
        );
        // Started without the database, the watchlist cannot be read: faces match nobody.
        let mut watch_pool = None;
        let camera_states: Vec<_> =
            record.iter().flat_map(|r| &r.alerts).map(|a| (a.camera.clone(), a.state.clone())).collect();
        let (writer, pool, mut restored) = match record {
            Some(r) => {
                if r.database_up {
                    watch_pool = Some(r.pool.clone());
                } else if settings.vision.enabled {
                    tracing::warn!(
                        "the watchlist is in the database: no face is matched until kuzet restarts with it"
                    );
                }
                (Some(r.writer), Some(r.pool), r.restored)
            }
            None => (None, None, Restored::default()),
        };
        // The audit chain's head, signed and kept outside the database.
        let checkpoints = match &pool {
            Some(p) => Checkpointer::start(&settings.audit, p.clone(), out_client.clone())?,
            None => None,
        };
        restored.cameras = camera_states;
        let registry = registry.with_restored(restored);
        let directory = registry.directory();
        let registry = registry.start();
        let vision = Vision::start(VisionParts {
            settings: &settings.vision,
            devices: &devices,
            directory: directory.clone(),
            people,
            registry: registry.clone(),
            outbox: outbox.clone(),
            pool: watch_pool,
            auto_threshold: settings.vision.auto_threshold,
        })
        .await?;
        if let Some(w) = writer.clone() {
            let matcher = vision.watch.matcher.clone();
            actix::spawn(async move {
                let mut tick = tokio::time::interval(SEARCH_AUDIT_PERIOD);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    crate::vision::audit_searches(&matcher, &w, SEARCH_AUDIT_PERIOD.as_secs()).await;
                }
            });
        }

        let (stop_intake, stop) = watch::channel(false);
        let (link_tx, link) = watch::channel(Link::Connecting);
        let (alarm_link_tx, alarm_link) = watch::channel(Link::Connecting);
        let (units_link_tx, units_link) = watch::channel(Link::Connecting);
        let inbound = Listener {
            eventloop,
            client: client.clone(),
            directory: directory.clone(),
            metrics: metrics.clone(),
            max_payload_bytes: settings.mqtt.max_payload_bytes,
            link: link_tx,
            writer: writer.clone(),
            subscriptions: crate::mqtt::topics::SUBSCRIPTIONS,
            manual_acks: false,
            edge: Some(crate::vision::EdgeSearches::start(
                vision.watch.matcher.clone(),
                settings.limits.detection_workers,
                settings.limits.detection_queue,
            )?),
            limits: crate::mqtt::limit::Limits::new(&settings.limits),
            stop: stop.clone(),
            fleet: fleet.clone(),
        };
        let inbound = bulk_lane(inbound, live.clone())?;
        let alarms = Listener {
            eventloop: alarm_eventloop,
            client: alarm_client.clone(),
            directory: directory.clone(),
            metrics: metrics.clone(),
            max_payload_bytes: settings.mqtt.max_payload_bytes,
            link: alarm_link_tx,
            writer: writer.clone(),
            subscriptions: crate::mqtt::topics::ALARM_SUBSCRIPTIONS,
            manual_acks: true,
            edge: None,
            limits: crate::mqtt::limit::Limits::new(&settings.limits),
            stop: stop.clone(),
            fleet: fleet.clone(),
        };
        let alarms = actix::spawn(alarms.run());
        let units = Listener {
            eventloop: units_eventloop,
            client: units_client.clone(),
            directory: directory.clone(),
            metrics: metrics.clone(),
            max_payload_bytes: settings.mqtt.max_payload_bytes,
            link: units_link_tx,
            writer: writer.clone(),
            subscriptions: crate::mqtt::topics::UNIT_SUBSCRIPTIONS,
            manual_acks: true,
            edge: None,
            limits: crate::mqtt::limit::Limits::new(&settings.limits),
            stop: stop.clone(),
            fleet: fleet.clone(),
        };
        let units = actix::spawn(units.run());
        let http = match (settings.http.listen()?, &pool) {
            (Some(listen), Some(pool)) => {
                let h = &settings.http;
                if managed.is_some()
                    && settings.broker.wss_listen()?.is_some()
                    && h.tls.get().is_none()
                    && h.tablet_mqtt_url.is_empty()
                {
                    tracing::warn!("tablet pages reach the broker's TLS WebSocket (broker.wss_listen) only when \
                        served over HTTPS: set http.tls, or put a TLS proxy in front, or set http.tablet_mqtt_url");
                }
                let map = crate::http::console::MapInfo::new(
                    &devices,
                    roads.as_deref(),
                    &h.tile_url,
                    &h.tile_attribution,
                );
                tracing::info!(bytes = map.len(), "console map ready");
                let tablets = crate::http::console::TabletAccess {
                    url: (!h.tablet_mqtt_url.is_empty()).then(|| h.tablet_mqtt_url.clone()),
                    // The TLS WebSocket when there is one: the page asks for wss:// over HTTPS.
                    ws_port: embedded
                        .and(settings.broker.wss_listen()?.or(settings.broker.ws_listen()?))
                        .map(|a| a.port()),
                    // A password handed over HTTP is safe only with a broker that holds the
                    // unit to its own topics: kuzet's own, or one the operator vouches for.
                    credentials: if managed.is_some() || h.tablet_broker_enforces_acl {
                        credentials.clone()
                    } else {
                        HashMap::new()
                    },
                    callsigns: devices.units.iter().map(|u| (u.id.to_string(), u.callsign.clone())).collect(),
                };
                let feed = crate::http::live::LiveState {
                    hub: live.clone(),
                    registry: registry.clone(),
                    watch: Some(vision.watch.clone()),
                    map: Arc::new(map),
                    tablets: Arc::new(tablets),
                    warnings: Some(crate::http::warnings::WarningDesk {
                        outbox: outbox.clone(),
                        sender: settings.warnings.sender.clone(),
                        sender_name: settings.warnings.sender_name.clone(),
                    }),
                };
                Some(
                    crate::http::start(listen, pool.clone(), Some(vision.watch.clone()), h, Some(feed))
                        .await?,
                )
            }
            (Some(_), None) => {
                tracing::info!("no query API without a database");
                None
            }
            _ => None,
        };
        let metrics_http = match settings.metrics.listen()? {
            Some(listen) => {
                let sources = crate::metrics::Sources {
                    started: std::time::SystemTime::now(),
                    metrics: metrics.clone(),
                    fanout: fanout.clone(),
                    outbox: outbox.clone(),
                    writer: writer.clone(),
                    links: vec![
                        ("main", link.clone()),
                        ("alarms", alarm_link.clone()),
                        ("units", units_link.clone()),
                    ],
                    broker: managed.clone(),
                    vision: Some(vision.watch.matcher.clone()),
                };
                crate::metrics::server::start(listen, &settings.metrics, Arc::new(sources)).await?
            }
            None => None,
        };
        tracing::info!(broker = %format!("{host}:{port}"), embedded = embedded.is_some(), "kuzet started");
        Ok(Self {
            broker: (host, port),
            embedded,
            managed,
            registry,
            router,
            directory,
            metrics,
            fanout,
            outbox,
            links: [link, alarm_link, units_link],
            intake: std::sync::Mutex::new(Some((stop_intake, vec![inbound, alarms, units]))),
            client,
            alarm_client,
            units_client,
            out_client,
            writer,
            pool,
            http,
            metrics_http,
            vision: std::sync::Mutex::new(Some(vision)),
            live,
            checkpoints,
        })
    }

    /// What the consoles' WebSockets are fed from.
    pub fn live(&self) -> &crate::feed::LiveHub {
        &self.live
    }

    /// The watchlist, its matcher and the people's actors.
    pub fn watch(&self) -> Option<Arc<Watch>> {
        self.vision.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|v| v.watch.clone())
    }

    /// (frames handed to inference, frames replaced before it took them).
    pub fn frame_counts(&self) -> (u64, u64) {
        self.vision.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map_or((0, 0), |v| v.frame_counts())
    }

    /// The writer, when kuzet records to a database.
    pub fn writer(&self) -> Option<&WriterHandle> {
        self.writer.as_ref()
    }

    pub fn pool(&self) -> Option<&sqlx::PgPool> {
        self.pool.as_ref()
    }

    /// Where the query API listens.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(|(a, _)| *a)
    }

    /// Where the Prometheus endpoint listens (`GET /metrics`).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_http.as_ref().map(|(a, _)| *a)
    }

    /// Waits until kuzet is connected and subscribed; false after `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let [main, alarms, units] = self.links.clone();
        let (a, b, c) = tokio::join!(
            gateway::wait_ready(main, timeout),
            gateway::wait_ready(alarms, timeout),
            gateway::wait_ready(units, timeout)
        );
        a && b && c
    }

    /// Waits until every listening link has noticed the broker is gone (after which
    /// `wait_ready` means each has connected and subscribed again).
    pub async fn wait_down(&self, timeout: Duration) -> bool {
        let [main, alarms, units] = self.links.clone();
        let (a, b, c) = tokio::join!(
            gateway::wait_down(main, timeout),
            gateway::wait_down(alarms, timeout),
            gateway::wait_down(units, timeout)
        );
        a && b && c
    }

    /// The broker kuzet talks to, as (host, port).
    pub fn broker(&self) -> (&str, u16) {
        (&self.broker.0, self.broker.1)
    }

    /// kuzet's own broker's address, when kuzet runs one.
    pub fn embedded_broker(&self) -> Option<SocketAddr> {
        self.embedded
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// What the metrics sink counted from the outbound fan-out (incidents, offers, hops).
    pub fn fanout(&self) -> &Arc<crate::metrics::FanoutStats> {
        &self.fanout
    }

    /// Notifications dropped on the way to the gateway (should stay 0).
    pub fn notifications_dropped(&self) -> u64 {
        self.outbox.dropped()
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    pub async fn incidents(&self) -> Vec<IncidentSnapshot> {
        self.registry.send(ListIncidents).await.unwrap_or_default()
    }

    pub async fn available_units(&self) -> usize {
        self.router.send(AvailableCount).await.unwrap_or(0)
    }

    /// Stops taking messages in, makes what was recorded durable, stops the query API and
    /// disconnects from the broker; the actors stop with the System.
    pub async fn stop(&self) {
        // First: nothing taken in after this is recorded. A listener left running would
        // reconnect and record what the broker says as it goes down (the wills of devices
        // it drops), which is not what the devices did.
        let intake = self.intake.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((stop, listeners)) = intake {
            let _ = stop.send(true);
            for l in listeners {
                let _ = l.await;
            }
        }
        let vision = self.vision.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut v) = vision {
            let matcher = v.watch.matcher.clone();
            // Joining the pipeline threads blocks: not on the actors' thread.
            let _ = actix_rt::task::spawn_blocking(move || v.stop()).await;
            if let Some(w) = &self.writer {
                crate::vision::audit_searches(&matcher, w, SEARCH_AUDIT_PERIOD.as_secs()).await;
            }
        }
        if let Some(w) = &self.writer {
            w.flush().await;
        }
        if let Some((_, h)) = &self.http {
            h.stop(true).await;
        }
        if let Some((_, h)) = &self.metrics_http {
            h.stop(true).await;
        }
        // Before the broker connection goes: the last checkpoint is published too.
        if let Some(c) = &self.checkpoints {
            c.take().await;
        }
        let _ = self.client.disconnect().await;
        let _ = self.alarm_client.disconnect().await;
        let _ = self.units_client.disconnect().await;
        let _ = self.out_client.disconnect().await;
        if let Some(m) = self.managed.clone() {
            // Waits for the broker to save its state: not on the actors' thread.
            let _ = actix_rt::task::spawn_blocking(move || m.stop()).await;
        }
    }

    /// kuzet's own broker process, when it runs one.
    pub fn managed_broker(&self) -> Option<&ManagedBroker> {
        self.managed.as_deref()
    }
}

/// Ctrl-C or SIGTERM (what `docker stop` and systemd send).
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// Runs the main listener (positions, heartbeats, cameras' presence and detections: what a
/// city sends most of) on a thread of its own, the bulk lane: parsing and recording thousands of positions a
/// second never takes a turn from the actors' thread, where alarms, replies and orders are
/// worked. The consoles' map of units (a frame of every unit that moved, each second) is made
/// there too. The handle completes once the listener has stopped.
fn bulk_lane(listener: Listener, live: crate::feed::LiveHub) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot build the bulk lane's runtime")?;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("kuzet-bulk".into())
        .spawn(move || {
            crate::lanes::lower_priority("kuzet-bulk");
            rt.block_on(async move {
                let units = tokio::spawn(live.run_units());
                listener.run().await;
                units.abort();
            });
            let _ = done_tx.send(());
        })
        .context("cannot start the bulk lane's thread")?;
    Ok(actix::spawn(async move {
        let _ = done_rx.await;
    }))
}
