//! A private Mosquitto process on a free loopback port, for the integration tests and
//! `kuzet-bench`: the real broker, isolated from any system instance. Killed on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// Credentials and ACL for the broker; without them it admits anonymous clients.
pub struct Access {
    /// `user:password` lines (hashed with `mosquitto_passwd -U` before start).
    pub passwords_plain: String,
    pub acl: String,
}

pub struct MosquittoProcess {
    pub port: u16,
    /// MQTT over WebSockets.
    pub ws_port: u16,
    /// MQTT over TLS (`start_tls` only).
    pub tls_port: Option<u16>,
    child: Child,
    dir: PathBuf,
}

impl MosquittoProcess {
    /// The broker's process id (benchmarks read its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A TCP port free on 127.0.0.1 now, for a listener a test or benchmark is about to start.
pub fn free_port() -> anyhow::Result<u16> {
    // Below Linux's ephemeral range (32768-60999): a port from bind(0) could be taken, between
    // this check and the real listener's bind, as the local port of any outgoing connection.
    // A counter per process never hands the same port out twice; the process id spreads
    // processes apart.
    const LOW: u32 = 10_000;
    const SPAN: u32 = 22_000;
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(7919);
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = (LOW + seed.wrapping_add(n) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port between {LOW} and {}", LOW + SPAN)
}

/// Finds a Mosquitto binary; Debian puts the broker in /usr/sbin, often not on PATH.
pub fn find_bin(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let dirs = path
        .split(':')
        .map(PathBuf::from)
        .chain(["/usr/sbin", "/usr/bin", "/usr/local/sbin"].map(PathBuf::from));
    for d in dirs {
        let p = d.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!("{name} not found (run scripts/setup.sh)")
}

impl MosquittoProcess {
    pub fn start(access: Option<Access>) -> anyhow::Result<Self> {
        Self::start_with(access, false)
    }

    /// With `persistent`, the broker keeps sessions and queued messages on disk across a
    /// stop (`stop`) and start, as a production broker does.
    pub fn start_with(access: Option<Access>, persistent: bool) -> anyhow::Result<Self> {
        Self::start_inner(access, persistent, None)
    }

    /// With a third listener, MQTT over TLS with this certificate chain and key (PEM files).
    pub fn start_tls(access: Option<Access>, cert: &Path, key: &Path) -> anyhow::Result<Self> {
        Self::start_inner(access, false, Some((cert, key)))
    }

    fn start_inner(
        access: Option<Access>,
        persistent: bool,
        tls: Option<(&Path, &Path)>,
    ) -> anyhow::Result<Self> {
        // Under /tmp: Mosquitto started as root drops to its own user, which must read the files.
        let dir = std::env::temp_dir().join(format!("kuzet-mosquitto-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        set_mode(&dir, 0o755)?;
        let port = free_port()?;
        let ws_port = free_port()?;
        let persistence = if persistent {
            // Started as root, Mosquitto drops to its own user, which must write its file here.
            set_mode(&dir, 0o777)?;
            format!("persistence true\npersistence_location {}/\nautosave_interval 1\n", dir.display())
        } else {
            "persistence false\n".to_owned()
        };
        // A listener's own option: the client id is the username (with accounts only).
        let per_listener = if access.is_some() { "use_username_as_clientid true\n" } else { "" };
        let mut conf = format!(
            "listener {port} 127.0.0.1\nprotocol mqtt\n{per_listener}listener {ws_port} 127.0.0.1\nprotocol websockets\n{per_listener}\
             set_tcp_nodelay true\n{persistence}max_packet_size 262144\nmax_queued_messages 100000\n\
             max_inflight_messages 100\nlog_dest stderr\nlog_type error\nlog_type warning\n"
        );
        let tls_port = match tls {
            None => None,
            Some((cert, key)) => {
                // Copies the broker's own user can read: it loads them after dropping to it.
                for (from, to) in [(cert, "tls-cert.pem"), (key, "tls-key.pem")] {
                    std::fs::copy(from, dir.join(to))
                        .with_context(|| format!("cannot copy {}", from.display()))?;
                    set_mode(&dir.join(to), 0o644)?;
                }
                let p = free_port()?;
                conf.push_str(&format!(
                    "listener {p} 127.0.0.1\nprotocol mqtt\n{per_listener}certfile {0}/tls-cert.pem\nkeyfile {0}/tls-key.pem\n",
                    dir.display()
                ));
                Some(p)
            }
        };
        match access {
            None => conf.push_str("allow_anonymous true\n"),
            Some(a) => {
                std::fs::write(dir.join("acl"), a.acl)?;
                std::fs::write(dir.join("passwd"), a.passwords_plain)?;
                let st =
                    Command::new(find_bin("mosquitto_passwd")?).arg("-U").arg(dir.join("passwd")).status()?;
                if !st.success() {
                    bail!("mosquitto_passwd -U failed");
                }
                for f in ["acl", "passwd"] {
                    set_mode(&dir.join(f), 0o644)?;
                }
                conf.push_str(&format!(
                    "allow_anonymous false\npassword_file {0}/passwd\nacl_file {0}/acl\n",
                    dir.display()
                ));
            }
        }
        std::fs::write(dir.join("mosquitto.conf"), conf)?;
        set_mode(&dir.join("mosquitto.conf"), 0o644)?;
        // Every port: listeners open one after another, the first may listen before the others.
        let ports: Vec<u16> = [port, ws_port].into_iter().chain(tls_port).collect();
        let child = spawn(&dir, &ports)?;
        Ok(Self { port, ws_port, tls_port, child, dir })
    }

    fn ports(&self) -> Vec<u16> {
        [self.port, self.ws_port].into_iter().chain(self.tls_port).collect()
    }

    /// Kills the broker at once (SIGKILL: no goodbye to its clients).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the broker the way an operator does (SIGTERM): it saves what it keeps.
    pub fn stop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }

    /// Starts the broker again after `stop` or `kill`, with the same configuration and port.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        self.child = spawn(&self.dir, &self.ports())?;
        Ok(())
    }

    /// Starts the broker again with the same configuration and port.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.child = spawn(&self.dir, &self.ports())?;
        Ok(())
    }
}

fn spawn(dir: &Path, ports: &[u16]) -> anyhow::Result<Child> {
    let mut child = Command::new(find_bin("mosquitto")?)
        .arg("-c")
        .arg(dir.join("mosquitto.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start mosquitto")?;
    if let Err(e) = wait_listening(ports) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    Ok(child)
}

fn wait_listening(ports: &[u16]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    for &port in ports {
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("mosquitto did not listen on port {port} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}

impl Drop for MosquittoProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn set_mode(p: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot chmod {}", p.display()))
}
