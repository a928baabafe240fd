//! Typed settings: `config/default.toml` (compiled in), then an optional file, then
//! `KUZET_SECTION__KEY` environment variables. Unknown keys are refused so a typo fails loudly.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kuzet_actors::model::{IncidentKind, ResponsePlan};
use kuzet_vision::MotionConfig;
use serde::Deserialize;

mod load;
pub mod tls;
use load::{env_settings, env_value, get_path, merge, parse_toml, set_path};

const DEFAULTS: &str = include_str!("../config/default.toml");

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read settings file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("settings file {path} is not valid TOML: {source}")]
    Parse { path: String, source: Box<toml::de::Error> },
    #[error("invalid settings: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub mqtt: MqttSettings,
    pub broker: BrokerSettings,
    pub dispatch: DispatchSettings,
    pub roads: RoadsSettings,
    pub registry: RegistrySettings,
    pub database: DatabaseSettings,
    pub http: HttpSettings,
    pub vision: VisionSettings,
    pub limits: LimitsSettings,
    pub log: LogSettings,
    pub metrics: MetricsSettings,
    /// Set by `kuzet-demo` only: it may claim an empty database for the demo, and nothing else.
    #[serde(skip)]
    pub demo: bool,
    pub audit: AuditSettings,
    pub warnings: WarningsSettings,
}

/// Area warnings (CAP 1.2) dispatchers issue: who they say they come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarningsSettings {
    /// CAP `sender`: the operations centre's id, unique among senders the receivers hear
    /// (e.g. `dispatch@police.example.org`); no spaces, commas, `<` or `&`.
    pub sender: String,
    /// CAP `senderName`, shown to people.
    pub sender_name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSettings {
    pub url: String,
    /// kuzet's service account; its connections use this name and `-alarms`, `-units` and
    /// `-out` after it, each as username and client id.
    pub username: String,
    pub password: Secret,
    pub keep_alive_s: u64,
    pub max_payload_bytes: usize,
    pub inflight: u16,
    pub request_capacity: usize,
    /// CA certificates (PEM) kuzet trusts for an `mqtts://` broker; empty: the system's.
    pub ca_file: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerSettings {
    pub listen: SocketAddr,
    /// MQTT over WebSockets (browser tablets), host:port; empty: none.
    pub ws_listen: String,
    /// MQTT over TLS for devices, host:port; empty: none. Needs `tls`.
    pub tls_listen: String,
    /// MQTT over WebSockets with TLS (tablet pages served over HTTPS), host:port; empty: none.
    pub wss_listen: String,
    /// The broker's certificate and key for `tls_listen` and `wss_listen`. Set, the plaintext
    /// listeners must be on loopback: devices reach the broker over TLS only.
    pub tls: TlsFiles,
    pub max_payload_bytes: usize,
    pub max_connections: usize,
    /// The broker's configuration, password file, ACL and persistence.
    pub data_dir: PathBuf,
    /// QoS 1 messages queued for one client at most (a slow or absent one); beyond it the
    /// broker drops, and kuzet counts and reports what it dropped.
    pub max_queued_messages: u64,
    /// Accounts for other systems (a recorder, a bridge, a monitoring client), each held to
    /// the topics it lists.
    #[serde(default)]
    pub integrations: Vec<Integration>,
}

/// A server's certificate chain and private key, PEM files; both empty: no TLS.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The server's certificate first, then any intermediate CA certificates.
    pub cert: PathBuf,
    /// Its private key (PKCS#8, SEC1 or PKCS#1), readable by kuzet alone.
    pub key: PathBuf,
}

impl TlsFiles {
    /// The files, when TLS is configured.
    pub fn get(&self) -> Option<&Self> {
        (!self.cert.as_os_str().is_empty()).then_some(self)
    }

    fn check(&self, what: &str) -> Result<(), SettingsError> {
        if self.cert.as_os_str().is_empty() != self.key.as_os_str().is_empty() {
            return Err(SettingsError::Invalid(format!("{what}: set both cert and key, or neither")));
        }
        Ok(())
    }
}

/// An account on kuzet's broker for a system that is not a device.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Integration {
    pub username: String,
    pub password: Secret,
    /// Topic filters it may subscribe to.
    #[serde(default)]
    pub read: Vec<String>,
    /// Topics (filters) it may publish on.
    #[serde(default)]
    pub write: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchSettings {
    pub position_max_age_s: u64,
    pub plans: HashMap<IncidentKind, ResponsePlan>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoadsSettings {
    pub extract: PathBuf,
    pub cache_dir: PathBuf,
    pub shortlist: usize,
}

impl RoadsSettings {
    /// The extract to load, if one is configured.
    pub fn extract(&self) -> Option<&Path> {
        (!self.extract.as_os_str().is_empty()).then_some(self.extract.as_path())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySettings {
    pub file: PathBuf,
    /// Device broker credentials issued by `kuzet credentials issue` (hashes only).
    pub credentials_file: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// postgres://user[:password]@host:port/database; empty: nothing is persisted.
    pub url: Secret,
    pub pool_size: u32,
    /// Where records wait, fsynced, while the database cannot be reached.
    pub spool_dir: PathBuf,
    /// Records written in one transaction at most.
    pub batch_max: usize,
    /// Records queued for the writer; positions beyond it are shed (and counted).
    pub queue: usize,
    /// The schema owner's URL; set: `serve` applies the migrations and grants with it at
    /// start, then works as `url`'s role. Empty: migrations run as `url`'s role.
    pub owner_url: Secret,
}

/// The audit chain's anchor outside the database: signed checkpoints of its head.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// Ed25519 private key (PKCS#8, PEM), made at first start with mode 0600; the public key
    /// goes beside it with the extension `.pub`.
    pub key_file: PathBuf,
    /// Checkpoints, one JSON line each, appended and fsynced.
    pub checkpoint_file: PathBuf,
    /// Seconds between checkpoints (one is taken only when the chain grew); 0: none.
    pub checkpoint_every_s: u64,
}

impl BrokerSettings {
    pub fn ws_listen(&self) -> Result<Option<SocketAddr>, SettingsError> {
        optional_addr("broker.ws_listen", &self.ws_listen)
    }

    pub fn tls_listen(&self) -> Result<Option<SocketAddr>, SettingsError> {
        optional_addr("broker.tls_listen", &self.tls_listen)
    }

    pub fn wss_listen(&self) -> Result<Option<SocketAddr>, SettingsError> {
        optional_addr("broker.wss_listen", &self.wss_listen)
    }

    /// With TLS, devices get TLS listeners only; the plaintext ones stay on loopback, for
    /// kuzet's own connections (and a local TLS proxy): traffic there never leaves the host.
    fn check_tls(&self) -> Result<(), SettingsError> {
        self.tls.check("broker.tls")?;
        let (tls, wss) = (self.tls_listen()?, self.wss_listen()?);
        match self.tls.get() {
            None if tls.is_some() || wss.is_some() => Err(SettingsError::Invalid(
                "broker.tls_listen and broker.wss_listen need broker.tls (cert and key)".into(),
            )),
            None => Ok(()),
            Some(_) if tls.is_none() && wss.is_none() => Err(SettingsError::Invalid(
                "broker.tls is set but neither broker.tls_listen nor broker.wss_listen is".into(),
            )),
            Some(_) => {
                for (name, addr) in
                    [("broker.listen", Some(self.listen)), ("broker.ws_listen", self.ws_listen()?)]
                {
                    if addr.is_some_and(|a| !a.ip().is_loopback()) {
                        return Err(SettingsError::Invalid(format!(
                            "{name} must be a loopback address when broker.tls is set: devices connect \
                             over TLS (broker.tls_listen, broker.wss_listen) only"
                        )));
                    }
                }
                Ok(())
            }
        }
    }
}

fn optional_addr(name: &str, value: &str) -> Result<Option<SocketAddr>, SettingsError> {
    if value.is_empty() {
        return Ok(None);
    }
    value.parse().map(Some).map_err(|_| SettingsError::Invalid(format!("{name} {value:?} is not host:port")))
}

impl DatabaseSettings {
    pub fn url(&self) -> Option<&str> {
        (!self.url.expose().is_empty()).then_some(self.url.expose())
    }

    pub fn owner_url(&self) -> Option<&str> {
        (!self.owner_url.expose().is_empty()).then_some(self.owner_url.expose())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// host:port of the query API; empty: no HTTP server. Port 0 picks a free one.
    pub listen: String,
    /// Mark the session cookie Secure (browsers send it over HTTPS only, and to localhost).
    /// Always with `tls`.
    pub secure_cookies: bool,
    /// Serve HTTPS with this certificate and key; empty: plain HTTP.
    pub tls: TlsFiles,
    /// The console, oversight and tablet pages (and their npm libraries in node_modules).
    pub web_dir: PathBuf,
    /// A map tile server for the console and tablets ({z}/{x}/{y}); empty: the roads of the
    /// loaded network are the only base layer.
    pub tile_url: String,
    pub tile_attribution: String,
    /// Where tablets reach the broker over WebSockets (ws[s]://host:port/path); empty: the
    /// own broker's ws_listen port on the host the page came from.
    pub tablet_mqtt_url: String,
    /// With an external broker: the operator vouches that it runs the ACL `kuzet broker-files`
    /// wrote, so a signed-in officer may be handed their unit's broker password. kuzet's own
    /// broker always holds each unit to its own topics.
    pub tablet_broker_enforces_acl: bool,
    /// Origins (scheme://host[:port]) besides the page's own host that may change state or
    /// open the live feed with a browser session: the address a reverse proxy serves kuzet at
    /// when it rewrites the Host header.
    pub origins: Vec<String>,
}

impl HttpSettings {
    pub fn listen(&self) -> Result<Option<SocketAddr>, SettingsError> {
        if self.listen.is_empty() {
            return Ok(None);
        }
        self.listen
            .parse()
            .map(Some)
            .map_err(|_| SettingsError::Invalid(format!("http.listen {:?} is not host:port", self.listen)))
    }
}

/// The Prometheus endpoint (`GET /metrics`), on a listener of its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// host:port; empty: no endpoint. Port 0 picks a free one.
    pub listen: String,
    /// A bearer token every scrape must bring; empty: none. Required when `listen` is not a
    /// loopback address.
    pub token: Secret,
    /// Serve HTTPS with this certificate and key; empty: plain HTTP.
    pub tls: TlsFiles,
}

impl MetricsSettings {
    pub fn listen(&self) -> Result<Option<SocketAddr>, SettingsError> {
        if self.listen.is_empty() {
            return Ok(None);
        }
        self.listen
            .parse()
            .map(Some)
            .map_err(|_| SettingsError::Invalid(format!("metrics.listen {:?} is not host:port", self.listen)))
    }

    pub fn token(&self) -> Option<&str> {
        (!self.token.expose().is_empty()).then_some(self.token.expose())
    }

    /// A listener other hosts can reach needs a token; a token that is set must be strong.
    pub fn check(&self) -> Result<(), SettingsError> {
        self.tls.check("metrics.tls")?;
        if let Some(t) = self.token() {
            strong_password("metrics.token", t)?;
        }
        match self.listen()? {
            Some(a) if !a.ip().is_loopback() && self.token().is_none() => Err(SettingsError::Invalid(format!(
                "metrics.listen {a} is not a loopback address: set metrics.token (a bearer token for Prometheus), \
                 or listen on 127.0.0.1"
            ))),
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisionSettings {
    /// Run the face pipeline for cameras with a stream, and match edge detections.
    pub enabled: bool,
    /// Where scripts/models.sh put libonnxruntime.so and the two face models.
    pub models_dir: PathBuf,
    /// Inference threads (each with its own sessions), and ONNX Runtime threads per session.
    pub threads: usize,
    pub intra_threads: usize,
    /// Frames per second taken from each camera for detection.
    pub fps: u32,
    /// Cosine similarity at or above which a face is a match to review.
    pub review_threshold: f32,
    /// At or above which a high-danger person's match opens an incident without review.
    pub auto_threshold: f32,
    /// Detections below this detector score are not faces.
    pub min_face_score: f32,
    /// Sightings this close in time join one review.
    pub review_window_s: u64,
    /// One camera reports a person at most this often (faces in between are not reported).
    pub rematch_s: f64,
    /// Where the face and frame of every sighting are saved (JPEG).
    pub evidence_dir: PathBuf,
    pub offline_after_s: f64,
    pub frozen_after_s: f64,
    pub covered_after_s: f64,
    /// Motion gating: detect only where and when something moves.
    #[serde(default)]
    pub motion: MotionConfig,
    /// Per camera id, settings that differ from `motion`.
    #[serde(default)]
    pub motion_cameras: HashMap<String, MotionOverride>,
}

/// A camera's own motion gating settings; what is not given is taken from `vision.motion`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MotionOverride {
    pub enabled: Option<bool>,
    pub threshold: Option<u8>,
    pub min_area: Option<u32>,
    pub full_every_s: Option<f64>,
}

impl VisionSettings {
    /// The motion gating of one camera.
    pub fn motion_for(&self, camera: &str) -> MotionConfig {
        let mut m = self.motion.clone();
        if let Some(o) = self.motion_cameras.get(camera) {
            m.enabled = o.enabled.unwrap_or(m.enabled);
            m.threshold = o.threshold.unwrap_or(m.threshold);
            m.min_area = o.min_area.unwrap_or(m.min_area);
            m.full_every_s = o.full_every_s.unwrap_or(m.full_every_s);
        }
        m
    }

    pub fn secs(v: f64) -> Duration {
        Duration::try_from_secs_f64(v.max(0.0)).unwrap_or(Duration::MAX)
    }
}

/// What one device may send on one inbound topic: `per_s` messages a second on average,
/// `burst` at once after a quiet spell (a token bucket).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    pub per_s: f64,
    pub burst: u32,
}

/// Per device and inbound topic. The broker has no per-client rate limit; kuzet enforces it
/// where messages are decoded. An alarm over its limit is still acted on (and flagged on its
/// incident); anything else is refused with a `rate_limited` reject.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSettings {
    pub alarm: Limit,
    pub heartbeat: Limit,
    pub online: Limit,
    pub position: Limit,
    pub status: Limit,
    pub reply: Limit,
    pub progress: Limit,
    pub detections: Limit,
    /// Threads searching edge cameras' faces against the watchlist, and detections messages
    /// that may wait for them; beyond that a camera's detections are refused (`overloaded`).
    pub detection_workers: usize,
    pub detection_queue: usize,
}

impl LimitsSettings {
    fn all(&self) -> [(&'static str, Limit); 8] {
        [
            ("alarm", self.alarm),
            ("heartbeat", self.heartbeat),
            ("online", self.online),
            ("position", self.position),
            ("status", self.status),
            ("reply", self.reply),
            ("progress", self.progress),
            ("detections", self.detections),
        ]
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub filter: String,
}

/// A value that must never reach a log. Accepts any scalar, so a numeric password given
/// through the environment is not mistaken for a number.
#[derive(Clone)]
pub struct Secret(String);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Scalar {
            S(String),
            I(i64),
            F(f64),
            B(bool),
        }
        Ok(Secret(match Scalar::deserialize(d)? {
            Scalar::S(s) => s,
            Scalar::I(i) => i.to_string(),
            Scalar::F(f) => f.to_string(),
            Scalar::B(b) => b.to_string(),
        }))
    }
}

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// Where kuzet's MQTT client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerTarget {
    Embedded,
    /// `tls`: over TLS (`mqtts://`), the server's certificate checked against `mqtt.ca_file`
    /// (or the system's CAs) and the host name.
    External {
        host: String,
        port: u16,
        tls: bool,
    },
}

impl MqttSettings {
    pub fn target(&self) -> Result<BrokerTarget, SettingsError> {
        if self.url == "embedded" {
            return Ok(BrokerTarget::Embedded);
        }
        if let Some(rest) = self.url.strip_prefix("mqtts://") {
            let (host, port) = parse_mqtt_url(&format!("mqtt://{rest}")).map_err(|_| {
                SettingsError::Invalid(format!("mqtt url {:?} is not mqtts://host:port", self.url))
            })?;
            // Without an explicit port: MQTT over TLS's own, not plain MQTT's.
            let port = if rest.trim_end_matches('/').contains(':') { port } else { 8883 };
            return Ok(BrokerTarget::External { host, port, tls: true });
        }
        parse_mqtt_url(&self.url).map(|(host, port)| BrokerTarget::External { host, port, tls: false })
    }
}

/// Parses `mqtt://host:port` (or `tcp://`); the port defaults to 1883.
pub fn parse_mqtt_url(url: &str) -> Result<(String, u16), SettingsError> {
    let bad = || SettingsError::Invalid(format!("mqtt url {url:?} is not mqtt://host:port"));
    let rest = url.strip_prefix("mqtt://").or_else(|| url.strip_prefix("tcp://")).ok_or_else(bad)?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
        None => (rest, 1883),
    };
    if host.is_empty() || host.contains('/') || host.contains('@') {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

impl DispatchSettings {
    pub fn position_max_age(&self) -> Duration {
        Duration::from_secs(self.position_max_age_s)
    }
}

impl Settings {
    /// Defaults, then `file`, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, &env)
    }

    /// Only the compiled-in defaults (tests start from these and adjust fields).
    pub fn defaults() -> Self {
        Self::load_from(None, &[]).unwrap_or_else(|e| panic!("compiled-in defaults are invalid: {e}"))
    }

    pub fn load_from(file: Option<&Path>, env: &[(String, String)]) -> Result<Self, SettingsError> {
        let mut merged = parse_toml("config/default.toml", DEFAULTS)?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|source| SettingsError::Read { path: path.to_owned(), source })?;
            merge(&mut merged, parse_toml(&path.display().to_string(), &text)?);
        }
        for (path, raw) in env_settings(&merged, env)? {
            // A key whose value is text stays text: a password such as `1e5` is not a number.
            let value = match get_path(&merged, &path) {
                Some(toml::Value::String(_)) => toml::Value::String(raw),
                _ => env_value(&raw),
            };
            set_path(&mut merged, &path, value);
        }
        let settings: Settings =
            merged.try_into().map_err(|e: toml::de::Error| SettingsError::Invalid(e.message().to_owned()))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        self.mqtt.target()?;
        self.broker.ws_listen()?;
        self.broker.check_tls()?;
        self.http.listen()?;
        self.http.tls.check("http.tls")?;
        self.metrics.check()?;
        if !kuzet_contract::cap::valid_cap_id(&self.warnings.sender) {
            return Err(SettingsError::Invalid(format!(
                "warnings.sender {:?} is not a CAP sender: no spaces, commas, < or &",
                self.warnings.sender
            )));
        }
        let mqtts = matches!(self.mqtt.target()?, BrokerTarget::External { tls: true, .. });
        if !self.mqtt.ca_file.as_os_str().is_empty() && !mqtts {
            return Err(SettingsError::Invalid(
                "mqtt.ca_file is set but mqtt.url is not mqtts://host:port (kuzet's own broker is reached on loopback)".into(),
            ));
        }
        if self.database.batch_max == 0 || self.database.queue == 0 || self.database.pool_size == 0 {
            return Err(SettingsError::Invalid(
                "database.batch_max, database.queue and database.pool_size must be above 0".into(),
            ));
        }
        if self.mqtt.max_payload_bytes >= self.broker.max_payload_bytes {
            return Err(SettingsError::Invalid(
                "broker.max_payload_bytes must exceed mqtt.max_payload_bytes, so oversize payloads reach kuzet and are refused with a reason".into(),
            ));
        }
        let v = &self.vision;
        let unit = |x: f32| (0.0..=1.0).contains(&x);
        if !unit(v.review_threshold) || !unit(v.auto_threshold) || v.review_threshold > v.auto_threshold {
            return Err(SettingsError::Invalid(
                "vision.review_threshold and vision.auto_threshold must be within 0..1, review at most auto"
                    .into(),
            ));
        }
        if v.fps == 0 || v.threads == 0 || v.intra_threads == 0 {
            return Err(SettingsError::Invalid(
                "vision.fps, vision.threads and vision.intra_threads must be above 0".into(),
            ));
        }
        for (name, x) in [
            ("offline_after_s", v.offline_after_s),
            ("frozen_after_s", v.frozen_after_s),
            ("covered_after_s", v.covered_after_s),
            ("rematch_s", v.rematch_s),
        ] {
            if !x.is_finite() || x < 0.0 {
                return Err(SettingsError::Invalid(format!(
                    "vision.{name} must be a number of seconds, 0 or more"
                )));
            }
        }
        if let Err(e) = v.motion.check() {
            return Err(SettingsError::Invalid(format!("vision.motion: {e}")));
        }
        for camera in v.motion_cameras.keys() {
            if let Err(e) = v.motion_for(camera).check() {
                return Err(SettingsError::Invalid(format!("vision.motion_cameras.{camera}: {e}")));
            }
        }
        for (name, l) in self.limits.all() {
            if !l.per_s.is_finite() || l.per_s <= 0.0 || l.burst == 0 {
                return Err(SettingsError::Invalid(format!(
                    "limits.{name}: per_s must be a number above 0 and burst at least 1"
                )));
            }
        }
        if self.limits.detection_workers == 0 || self.limits.detection_queue == 0 {
            return Err(SettingsError::Invalid(
                "limits.detection_workers and limits.detection_queue must be above 0".into(),
            ));
        }
        for (kind, plan) in &self.dispatch.plans {
            if plan.units_required == 0
                || plan.max_offers < u16::from(plan.units_required)
                || plan.offer_timeout.is_zero()
            {
                return Err(SettingsError::Invalid(format!(
                    "plan {}: units_required must be at least 1, max_offers at least units_required, offer_timeout above 0",
                    kind.as_str()
                )));
            }
        }
        if kuzet_actors::ids::check_device_id(&self.mqtt.username).is_err() {
            return Err(SettingsError::Invalid("mqtt.username is not [a-z0-9][a-z0-9-]{0,63}".into()));
        }
        // kuzet's own broker makes one up when none is set; one that is set must be strong.
        let own_broker = matches!(self.mqtt.target()?, BrokerTarget::Embedded);
        if !(own_broker && self.mqtt.password.expose().is_empty()) {
            strong_password("mqtt.password", self.mqtt.password.expose())?;
        }
        for g in &self.broker.integrations {
            if kuzet_actors::ids::check_device_id(&g.username).is_err() {
                return Err(SettingsError::Invalid(format!(
                    "broker.integrations: username {:?} is not [a-z0-9][a-z0-9-]{{0,63}}",
                    g.username
                )));
            }
            if crate::brokerfiles::is_service_name(&self.mqtt.username, &g.username) {
                return Err(SettingsError::Invalid(format!(
                    "broker.integrations: {:?} is one of kuzet's own accounts",
                    g.username
                )));
            }
            strong_password(&format!("broker.integrations {:?} password", g.username), g.password.expose())?;
            // One topic per ACL line: anything that could start another line or rule is refused.
            let bad = |t: &String| t.is_empty() || t.chars().any(|c| c.is_whitespace() || c.is_control());
            if g.read.iter().chain(&g.write).any(bad) {
                return Err(SettingsError::Invalid(format!(
                    "broker.integrations {:?}: topics must be non-empty, without spaces or control characters",
                    g.username
                )));
            }
        }
        if self.broker.max_queued_messages == 0 {
            return Err(SettingsError::Invalid("broker.max_queued_messages must be above 0".into()));
        }
        Ok(())
    }
}

/// Passwords once shipped in kuzet's files: refused wherever a password is set.
const KNOWN_PASSWORDS: &[&str] = &[
    "kuzet-dev-password",
    "kuzet-demo-password",
    "kuzet-demo-tablet",
    "kuzet-demo-watcher",
    "kuzet-demo-button",
];

/// True for a password kuzet has published (its demo's, its former defaults).
pub fn is_published(p: &str) -> bool {
    KNOWN_PASSWORDS.contains(&p) || p.starts_with("sample-")
}

/// A password an operator sets: long enough to be generated, never one kuzet ever shipped.
/// (kuzet's own broker makes up its service password when none is set.)
pub fn strong_password(what: &str, p: &str) -> Result<(), SettingsError> {
    if p.is_empty() {
        return Err(SettingsError::Invalid(format!(
            "{what} is not set (an external broker needs the service account's password; e.g. openssl rand -base64 24)"
        )));
    }
    if is_published(p) {
        return Err(SettingsError::Invalid(format!("{what} is a published password; generate one")));
    }
    if p.chars().count() < 16 {
        return Err(SettingsError::Invalid(format!(
            "{what} is shorter than 16 characters; generate one (e.g. openssl rand -base64 24)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
