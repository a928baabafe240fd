//! Records what kuzet publishes during the tests, for the check of docs/asyncapi.yaml
//! (scripts/asyncapi-check.sh): one extra MQTT client per test kuzet, on an integration account
//! of its own that reads `kuzet/v1/#`, writes every message kuzet published to
//! `target/asyncapi-payloads/<test binary>-<uuid>.jsonl`, one JSON line each:
//! `{"topic", "payload" (the bytes as text; "" when empty), "retained", "qos"}`.
//!
//! It only listens: it publishes nothing, holds no device's account, and skips what devices
//! publish (tests fill those topics with bad input on purpose). It speaks MQTT 5 and subscribes
//! with "retain as published", so `retained` is the flag kuzet published with, not only
//! whether the broker replayed the message from its store. It runs on a thread of its own, so
//! the test's runtime never waits for it; when the test app is dropped it takes what the broker
//! still has on the way (until the connection has been quiet for `QUIET`), then writes
//! everything out. `KUZET_ASYNCAPI_PAYLOADS` names another folder; set empty, nothing is
//! recorded.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::v5::{Filter, Packet};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};

/// The recorder's account: reads everything under kuzet/v1/, writes nothing.
pub const USER: &str = "asyncapi-recorder";
pub const PASSWORD: &str = "asyncapi-recorder-password-for-tests";

/// When the app is dropped: the connection quiet this long means the broker has nothing more
/// for the recorder (loopback delivers in well under a millisecond).
const QUIET: Duration = Duration::from_millis(20);
/// And never longer than this, however busy the broker still is.
const DRAIN_AT_MOST: Duration = Duration::from_secs(1);
/// How soon the recorder connects again after losing the broker.
const RETRY: Duration = Duration::from_millis(100);

/// The integration account the recorder connects with (added to every test broker).
pub fn account() -> kuzet::settings::Integration {
    kuzet::settings::Integration {
        username: USER.into(),
        password: kuzet::settings::Secret::new(PASSWORD),
        read: vec!["kuzet/v1/#".into()],
        write: Vec::new(),
    }
}

/// True for a topic kuzet publishes on; false for what devices publish (their own topics
/// under `kuzet/v1/{buttons|units|cameras}/{id}/`, where kuzet has only `ack`, `offers` and
/// `incidents/...`).
pub fn published_by_kuzet(topic: &str) -> bool {
    let Some(rest) = topic.strip_prefix("kuzet/v1/") else { return false };
    let mut parts = rest.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("buttons" | "units" | "cameras"), _, Some(channel)) => {
            channel == "ack" || channel == "offers" || channel.starts_with("incidents/")
        }
        _ => true,
    }
}

/// The folder the payloads go to, unless recording is switched off.
fn folder() -> Option<PathBuf> {
    match std::env::var_os("KUZET_ASYNCAPI_PAYLOADS") {
        Some(dir) if dir.is_empty() => None,
        Some(dir) => Some(PathBuf::from(dir)),
        // target/tmp for integration tests: its parent is the target folder.
        None => Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).parent()?.join("asyncapi-payloads")),
    }
}

/// The test binary's name without cargo's hash (`dispatch-0f3a...` is `dispatch`).
fn binary_name() -> String {
    let exe = std::env::current_exe().ok();
    let stem = exe.as_ref().and_then(|p| p.file_stem()).and_then(|s| s.to_str()).unwrap_or("test");
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            name.to_owned()
        }
        _ => stem.to_owned(),
    }
}

/// A running recorder; dropping it drains the connection and writes the file.
pub struct Recorder {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Recorder {
    /// Connects to the broker at `host:port` and returns once subscribed, so nothing kuzet
    /// publishes after this is missed; None (with a note on stderr) when it cannot.
    pub async fn start(host: &str, port: u16) -> Option<Recorder> {
        let file = folder()?.join(format!("{}-{}.jsonl", binary_name(), uuid::Uuid::new_v4().simple()));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        let host = host.to_owned();
        let thread = std::thread::Builder::new()
            .name("asyncapi-recorder".into())
            .spawn(move || run(&host, port, file, stopped, ready_tx))
            .ok()?;
        let recorder = Recorder { stop: Some(stop), thread: Some(thread) };
        match tokio::time::timeout(Duration::from_secs(10), ready).await {
            Ok(Ok(())) => Some(recorder),
            _ => {
                eprintln!(
                    "asyncapi recorder: not subscribed to {port}; this test's payloads are not recorded"
                );
                None
            }
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The recorder's thread, on a runtime of its own: reads until told to stop, then until the
/// connection is quiet.
fn run(
    host: &str,
    port: u16,
    file: PathBuf,
    stopped: tokio::sync::oneshot::Receiver<()>,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return eprintln!("asyncapi recorder: no runtime: {e}"),
    };
    let mut out = Output { file, writer: None };
    rt.block_on(read(host, port, &mut out, stopped, ready));
    out.finish();
}

async fn read(
    host: &str,
    port: u16,
    out: &mut Output,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut o = MqttOptions::new(format!("{USER}-{}", uuid::Uuid::new_v4().simple()), host, port);
    o.set_credentials(USER, PASSWORD);
    o.set_keep_alive(Duration::from_secs(30));
    // Snapshots go up to 64 KiB, and devices' (skipped) messages up to the broker's limit.
    o.set_max_packet_size(Some(1024 * 1024));
    let (client, mut events) = AsyncClient::new(o, 16);
    let mut ready = Some(ready);
    let mut drain_until: Option<Instant> = None;
    loop {
        let event = match drain_until {
            None => tokio::select! {
                e = events.poll() => e,
                _ = &mut stopped => {
                    drain_until = Some(Instant::now() + DRAIN_AT_MOST);
                    continue;
                }
            },
            Some(until) if Instant::now() > until => break,
            Some(_) => match tokio::time::timeout(QUIET, events.poll()).await {
                Ok(e) => e,
                Err(_) => break,
            },
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                // A clean session each time: subscribe again after the broker came back.
                let mut filter = Filter::new("kuzet/v1/#", QoS::AtLeastOnce);
                filter.preserve_retain = true;
                if client.try_subscribe_many([filter]).is_err() {
                    break;
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => out.write(&p),
            Ok(_) => {}
            // Refused before subscribing (a broker without the recorder's account): give up at
            // once. The broker away later: gone with the app when draining, else (a test
            // restarts it) connect again shortly.
            Err(_) if ready.is_some() || drain_until.is_some() => break,
            Err(_) => {
                tokio::select! {
                    _ = tokio::time::sleep(RETRY) => {}
                    _ = &mut stopped => break,
                }
            }
        }
    }
    let _ = client.try_disconnect();
}

/// The JSON lines file, made at the first message.
struct Output {
    file: PathBuf,
    writer: Option<std::io::BufWriter<std::fs::File>>,
}

impl Output {
    fn write(&mut self, p: &rumqttc::v5::mqttbytes::v5::Publish) {
        let topic = String::from_utf8_lossy(&p.topic);
        if !published_by_kuzet(&topic) {
            return;
        }
        let line = serde_json::json!({
            "topic": topic,
            "payload": String::from_utf8_lossy(&p.payload),
            "retained": p.retain,
            "qos": p.qos as u8,
        });
        if self.writer.is_none() {
            let opened = self
                .file
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::OpenOptions::new().create(true).append(true).open(&self.file));
            match opened {
                Ok(f) => self.writer = Some(std::io::BufWriter::new(f)),
                Err(e) => {
                    eprintln!("asyncapi recorder: cannot open {}: {e}", self.file.display());
                    return;
                }
            }
        }
        if let Some(w) = &mut self.writer {
            if let Err(e) = writeln!(w, "{line}") {
                eprintln!("asyncapi recorder: cannot write {}: {e}", self.file.display());
            }
        }
    }

    fn finish(&mut self) {
        if let Some(mut w) = self.writer.take() {
            if let Err(e) = w.flush() {
                eprintln!("asyncapi recorder: cannot write {}: {e}", self.file.display());
            }
        }
    }
}
