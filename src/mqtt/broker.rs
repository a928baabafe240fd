//! kuzet's own broker: a Mosquitto child process, configured from the device registry,
//! watched and restarted if it dies, its state under `broker.data_dir`.
//!
//! Mosquitto rather than a broker inside the process: it enforces the identity rule (a
//! password per account, an ACL per account, the client id tied to the username), queues
//! QoS 1 messages for a slow subscriber instead of skipping them, keeps sessions and retained
//! messages on disk, and is the fastest broker measured here (BENCHMARKS.md).
//!
//! The child dies with kuzet (PR_SET_PDEATHSIG), so a killed kuzet leaves no broker holding
//! its ports.

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::settings::BrokerSettings;

/// Who may connect and what each may use, as Mosquitto files.
pub struct BrokerAccess {
    /// (username, password) of every account; hashed before it is written.
    pub accounts: Vec<(String, String)>,
    /// (username, Mosquitto hash) of accounts whose password kuzet never sees.
    pub hashed: Vec<(String, String)>,
    pub acl: String,
}

pub struct ManagedBroker {
    listen: SocketAddr,
    ws_listen: Option<SocketAddr>,
    tls_listen: Option<SocketAddr>,
    wss_listen: Option<SocketAddr>,
    dir: PathBuf,
    shared: Arc<Shared>,
    supervisor: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

#[derive(Default)]
struct Shared {
    pid: AtomicU32,
    stopping: AtomicBool,
    restarts: AtomicU64,
}

/// The longest wait before starting a broker that keeps dying.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A broker that ran this long was healthy: the next restart is immediate again.
const HEALTHY_RUN: Duration = Duration::from_secs(30);

impl ManagedBroker {
    /// Writes the configuration, starts Mosquitto and returns once it accepts connections.
    pub fn start(settings: &BrokerSettings, access: &BrokerAccess) -> anyhow::Result<Self> {
        let mosquitto = crate::mosquitto::find_bin("mosquitto")?;
        let listen = settings.listen;
        let ws_listen = settings.ws_listen()?;
        let tls = Listeners { tls: settings.tls_listen()?, wss: settings.wss_listen()? };
        let all = || std::iter::once(listen).chain(ws_listen).chain(tls.tls).chain(tls.wss);
        if let Some(files) = settings.tls.get() {
            // A bad file would only show in the broker's log, as a broker that keeps dying.
            crate::settings::tls::server_config(files).context("broker.tls")?;
        }
        for addr in all() {
            // Mosquitto would only log a failed bind; say which port is taken here.
            drop(std::net::TcpListener::bind(addr).with_context(|| {
                format!("cannot listen on {addr} for kuzet's broker (is the port taken?)")
            })?);
        }
        let dir = absolute(&settings.data_dir)?;
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let owner = broker_user();
        set_mode(&dir, 0o700)?;
        chown(&dir, owner)?;
        if let Some(files) = settings.tls.get() {
            // Copies the broker's user may read: Mosquitto loads them after dropping to it.
            for (from, to) in [(&files.cert, TLS_CERT), (&files.key, TLS_KEY)] {
                let text = std::fs::read_to_string(from)
                    .with_context(|| format!("cannot read {}", from.display()))?;
                write_private(&dir.join(to), &text, owner)?;
            }
        }
        let conf = config(settings, &dir, listen, ws_listen, tls, owner.is_some());
        write_private(&dir.join("mosquitto.conf"), &conf, owner)?;
        write_files(&dir, access, owner)?;

        let shared = Arc::new(Shared::default());
        let (first_tx, first_rx) = std::sync::mpsc::channel();
        let thread = {
            let shared = shared.clone();
            let dir = dir.clone();
            std::thread::Builder::new()
                .name("mqtt-broker".into())
                .spawn(move || supervise(&mosquitto, &dir, &shared, first_tx))
                .context("cannot start the broker's supervisor thread")?
        };
        first_rx.recv().context("the broker's supervisor stopped")?.context("cannot start mosquitto")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        for addr in all() {
            while std::net::TcpStream::connect(addr).is_err() {
                if Instant::now() > deadline || shared.pid.load(Ordering::Relaxed) == 0 {
                    bail!("kuzet's broker did not listen on {addr} within 10 s (see its log lines above)");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        tracing::info!(%listen, ws = ?ws_listen, tls = ?tls.tls, wss = ?tls.wss, dir = %dir.display(),
            accounts = access.accounts.len() + access.hashed.len(), "broker listening (Mosquitto, supervised)");
        Ok(Self {
            listen,
            ws_listen,
            tls_listen: tls.tls,
            wss_listen: tls.wss,
            dir,
            shared,
            supervisor: std::sync::Mutex::new(Some(thread)),
        })
    }

    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    pub fn ws_listen(&self) -> Option<SocketAddr> {
        self.ws_listen
    }

    /// MQTT over TLS, when `broker.tls` is set.
    pub fn tls_listen(&self) -> Option<SocketAddr> {
        self.tls_listen
    }

    /// MQTT over WebSockets with TLS, when `broker.tls` is set.
    pub fn wss_listen(&self) -> Option<SocketAddr> {
        self.wss_listen
    }

    /// The broker process now (0 between a death and its restart).
    pub fn pid(&self) -> u32 {
        self.shared.pid.load(Ordering::Relaxed)
    }

    /// Times the broker died and was started again.
    pub fn restarts(&self) -> u64 {
        self.shared.restarts.load(Ordering::Relaxed)
    }

    /// New accounts and ACL, read by the running broker at once (SIGHUP): no one is
    /// disconnected, and a removed account cannot connect again.
    pub fn reload(&self, access: &BrokerAccess) -> anyhow::Result<()> {
        write_files(&self.dir, access, broker_user())?;
        let pid = self.pid();
        if pid != 0 {
            signal(pid, libc::SIGHUP);
        }
        Ok(())
    }

    /// Stops the broker as an operator would (SIGTERM: it saves what it keeps), waiting up
    /// to 10 s before it is killed.
    pub fn stop(&self) {
        self.shared.stopping.store(true, Ordering::Relaxed);
        let Some(thread) = self.supervisor.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        let pid = self.pid();
        if pid != 0 {
            signal(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !thread.is_finished() {
            let pid = self.pid();
            if pid != 0 {
                signal(pid, libc::SIGKILL);
            }
        }
        let _ = thread.join();
    }
}

impl Drop for ManagedBroker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts Mosquitto and starts it again whenever it dies, until kuzet stops it.
fn supervise(bin: &Path, dir: &Path, shared: &Shared, first: std::sync::mpsc::Sender<std::io::Result<()>>) {
    let mut first = Some(first);
    let mut backoff = Duration::from_millis(100);
    loop {
        let started = Instant::now();
        let child = spawn(bin, dir);
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                if let Some(tx) = first.take() {
                    let _ = tx.send(Err(e));
                    return;
                }
                tracing::error!(error = %e, "cannot start the broker again");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        shared.pid.store(child.id(), Ordering::Relaxed);
        if let Some(stderr) = child.stderr.take() {
            let _ = std::thread::Builder::new().name("mqtt-broker-log".into()).spawn(move || {
                for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                    tracing::warn!(target: "mosquitto", "{line}");
                }
            });
        }
        if let Some(tx) = first.take() {
            let _ = tx.send(Ok(()));
        }
        let status = child.wait();
        shared.pid.store(0, Ordering::Relaxed);
        if shared.stopping.load(Ordering::Relaxed) {
            return;
        }
        shared.restarts.fetch_add(1, Ordering::Relaxed);
        if started.elapsed() > HEALTHY_RUN {
            backoff = Duration::from_millis(100);
        }
        tracing::error!(status = ?status, restart_in_ms = backoff.as_millis() as u64,
            "kuzet's broker stopped; starting it again (devices and kuzet reconnect by themselves)");
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn spawn(bin: &Path, dir: &Path) -> std::io::Result<std::process::Child> {
    let mut cmd = Command::new(bin);
    cmd.arg("-c").arg(dir.join("mosquitto.conf")).stdout(Stdio::null()).stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            // Die with the thread that started it: a killed kuzet leaves no broker behind.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            // One descriptor per client: take the hard limit (a city's devices exceed 1024).
            let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
                lim.rlim_cur = lim.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// The broker's copies of `broker.tls`, in its data folder.
const TLS_CERT: &str = "tls-cert.pem";
const TLS_KEY: &str = "tls-key.pem";

/// The TLS listeners (`broker.tls_listen`, `broker.wss_listen`).
#[derive(Clone, Copy)]
struct Listeners {
    tls: Option<SocketAddr>,
    wss: Option<SocketAddr>,
}

fn config(
    s: &BrokerSettings,
    dir: &Path,
    listen: SocketAddr,
    ws: Option<SocketAddr>,
    tls: Listeners,
    drops_to_broker_user: bool,
) -> String {
    let d = dir.display();
    let mut c =
        String::from("# Generated by kuzet at every start. Do not edit: see [broker] in kuzet's settings.\n");
    c.push_str("per_listener_settings false\n");
    // use_username_as_clientid and max_connections belong to a listener: Mosquitto applies
    // them to the listener above them only, so each listener repeats them. The client id is
    // the username: no one takes over another account's session by naming its client id.
    let listener = |c: &mut String, addr: SocketAddr, protocol: &str| {
        c.push_str(&format!(
            "listener {} {}\nprotocol {protocol}\nuse_username_as_clientid true\nmax_connections {}\n",
            addr.port(),
            addr.ip(),
            s.max_connections
        ));
    };
    listener(&mut c, listen, "mqtt");
    if let Some(ws) = ws {
        listener(&mut c, ws, "websockets");
    }
    for (addr, protocol) in [(tls.tls, "mqtt"), (tls.wss, "websockets")] {
        if let Some(addr) = addr {
            listener(&mut c, addr, protocol);
            c.push_str(&format!("certfile {d}/{TLS_CERT}\nkeyfile {d}/{TLS_KEY}\ntls_version tlsv1.2\n"));
        }
    }
    if !drops_to_broker_user {
        // Not started as root (a container's user, say): the broker stays this user.
        c.push_str(&format!("user {}\n", current_user()));
    }
    c.push_str(&format!(
        "allow_anonymous false\npassword_file {d}/passwd\nacl_file {d}/acl\n\
         persistence true\npersistence_location {d}/\nautosave_interval 1\n\
         set_tcp_nodelay true\nmax_packet_size {}\n\
         max_queued_messages {}\nmax_inflight_messages 100\n\
         # $SYS counters every 2 s: kuzet reads how many messages the broker had to drop.\n\
         sys_interval 2\n\
         log_dest stderr\nlog_type error\nlog_type warning\nconnection_messages false\n",
        s.max_payload_bytes, s.max_queued_messages
    ));
    c
}

/// The password file (hashes only) and the ACL, replaced whole (rename) so the broker never
/// reads half a file.
fn write_files(dir: &Path, access: &BrokerAccess, owner: Option<(u32, u32)>) -> anyhow::Result<()> {
    let mut passwd = crate::brokerfiles::hashed_passwords(&access.accounts);
    for (user, hash) in &access.hashed {
        passwd.push_str(&format!("{user}:{hash}\n"));
    }
    write_private(&dir.join("passwd"), &passwd, owner)?;
    write_private(&dir.join("acl"), &access.acl, owner)
}

fn write_private(path: &Path, text: &str, owner: Option<(u32, u32)>) -> anyhow::Result<()> {
    crate::credentials::write_private(path, text)?;
    chown(path, owner)
}

/// Started as root, Mosquitto drops to the `mosquitto` user, which must own its files.
fn broker_user() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[0] == "mosquitto").then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

fn current_user() -> String {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_owned())
            })
        })
        .unwrap_or_else(|| "root".into())
}

fn chown(path: &Path, owner: Option<(u32, u32)>) -> anyhow::Result<()> {
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .with_context(|| format!("cannot hand {} to the broker's user", path.display()))?;
    }
    Ok(())
}

fn set_mode(p: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot chmod {}", p.display()))
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    if p.is_absolute() {
        return Ok(p.to_owned());
    }
    Ok(std::env::current_dir()?.join(p))
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill has no memory preconditions; a stale pid at worst gets a signal it ignores
    // (the supervisor clears the pid as soon as the child is reaped).
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}
