//! The audit chain's anchor outside the database. The hash chain shows a row edited by someone
//! who left the hashes alone; a database superuser can recompute every later hash (and
//! `audit_head`) so that the chain verifies again. Checkpoints make that visible: kuzet signs
//! the chain's head (seq, hash) with an Ed25519 key the database never sees, appends it to a
//! file and publishes it retained on MQTT. A row rewritten at or before a checkpoint's seq
//! changes the hash stored there, which no longer matches the signed one.
//!
//! A checkpoint is one JSON line, `{"seq":42,"hash":"<hex>","at":"<RFC 3339>","signature":"<hex>"}`;
//! the signature covers the UTF-8 text `kuzet-audit-checkpoint-v1|{seq}|{hash}|{at}`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair as _, UnparsedPublicKey, ED25519};
use rumqttc::{AsyncClient, QoS};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPool;

/// Where kuzet publishes each checkpoint, retained: the service account may read it, devices
/// may not.
pub const TOPIC: &str = "kuzet/v1/audit/checkpoint";
const DOMAIN: &str = "kuzet-audit-checkpoint-v1";
/// An Ed25519 SubjectPublicKeyInfo is this prefix and the 32-byte key.
const SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
/// A publish that finds the client's queue full waits this long; the file has it anyway.
const PUBLISH_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub seq: i64,
    /// The row's hash, lower-case hex.
    pub hash: String,
    /// When kuzet took it, RFC 3339 UTC.
    pub at: String,
    /// Ed25519 over `message()`, lower-case hex.
    pub signature: String,
}

impl Checkpoint {
    pub fn sign(key: &Ed25519KeyPair, seq: i64, hash: &[u8], at: chrono::DateTime<chrono::Utc>) -> Self {
        let mut c = Self {
            seq,
            hash: hex(hash),
            at: at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            signature: String::new(),
        };
        c.signature = hex(key.sign(c.message().as_bytes()).as_ref());
        c
    }

    /// The text signed.
    pub fn message(&self) -> String {
        format!("{DOMAIN}|{}|{}|{}", self.seq, self.hash, self.at)
    }

    /// The signature is `public_key`'s over this checkpoint's fields.
    pub fn signed_by(&self, public_key: &[u8]) -> bool {
        let Some(sig) = unhex(&self.signature) else { return false };
        UnparsedPublicKey::new(&ED25519, public_key).verify(self.message().as_bytes(), &sig).is_ok()
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// The public key's file: the key file's name with the extension `.pub`.
pub fn public_key_path(key_file: &Path) -> PathBuf {
    key_file.with_extension("pub")
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> =
        b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

fn unpem(text: &str) -> anyhow::Result<Vec<u8>> {
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).map(str::trim).collect();
    base64::engine::general_purpose::STANDARD.decode(body).context("not PEM")
}

/// Reads an Ed25519 public key from a PEM `PUBLIC KEY` file (what kuzet writes as `.pub`,
/// and what `openssl pkey -pubout` writes).
pub fn read_public_key(path: &Path) -> anyhow::Result<Vec<u8>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let der = unpem(&text).with_context(|| format!("{}: not a PEM public key", path.display()))?;
    match der.strip_prefix(&SPKI_PREFIX[..]) {
        Some(key) if key.len() == 32 => Ok(key.to_vec()),
        _ => anyhow::bail!("{}: not an Ed25519 public key", path.display()),
    }
}

/// The signing key at `path`; made there (mode 0600) when there is none. The public key is
/// (re)written beside it.
pub fn load_or_create_key(path: &Path) -> anyhow::Result<Ed25519KeyPair> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    if !path.exists() {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let doc = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .map_err(|_| anyhow::anyhow!("cannot generate a key"))?;
        // Written whole under another name, then linked into place: a second kuzet starting at
        // the same moment reads one complete key, never half of one, and never replaces it.
        let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        f.write_all(pem("PRIVATE KEY", doc.as_ref()).as_bytes())?;
        f.sync_all()?;
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => tracing::info!(key = %path.display(), "audit checkpoint key made"),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
        }
    }
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(key = %path.display(), mode = format!("{:o}", mode & 0o777),
            "the audit checkpoint key is readable by others: chmod 600 it");
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let der = unpem(&text).with_context(|| format!("{}: not a PEM private key", path.display()))?;
    let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
        .map_err(|e| anyhow::anyhow!("{}: not an Ed25519 PKCS#8 key: {e}", path.display()))?;
    let public = pem("PUBLIC KEY", &[&SPKI_PREFIX[..], key.public_key().as_ref()].concat());
    let pub_path = public_key_path(path);
    if std::fs::read_to_string(&pub_path).ok().as_deref() != Some(public.as_str()) {
        let tmp = pub_path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        std::fs::write(&tmp, &public).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &pub_path).with_context(|| format!("cannot write {}", pub_path.display()))?;
    }
    Ok(key)
}

/// Appends one line and makes it durable.
pub fn append(path: &Path, c: &Checkpoint) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut line = serde_json::to_string(c)?;
    line.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    // One write: lines from two kuzets sharing the file do not interleave.
    f.write_all(line.as_bytes())?;
    f.sync_data()?;
    Ok(())
}

/// Takes checkpoints of one database's audit chain.
pub struct Checkpointer {
    pool: PgPool,
    key: Ed25519KeyPair,
    file: PathBuf,
    client: AsyncClient,
    /// The last (seq, hash) checkpointed in this run.
    last: tokio::sync::Mutex<Option<(i64, Vec<u8>)>>,
}

impl Checkpointer {
    pub fn new(key: Ed25519KeyPair, file: PathBuf, pool: PgPool, client: AsyncClient) -> Self {
        Self { pool, key, file, client, last: Default::default() }
    }

    /// Loads (or makes) the key and takes a checkpoint now and every `every`; None with no
    /// period.
    pub fn start(
        settings: &crate::settings::AuditSettings,
        pool: PgPool,
        client: AsyncClient,
    ) -> anyhow::Result<Option<Arc<Self>>> {
        if settings.checkpoint_every_s == 0 {
            tracing::warn!("audit checkpoints are off (audit.checkpoint_every_s = 0)");
            return Ok(None);
        }
        let key = load_or_create_key(&settings.key_file)?;
        let me = Arc::new(Self::new(key, settings.checkpoint_file.clone(), pool, client));
        let every = Duration::from_secs(settings.checkpoint_every_s);
        let task = me.clone();
        actix::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                task.take().await;
            }
        });
        Ok(Some(me))
    }

    /// A checkpoint of the chain's head when it moved since the last one. Before signing, the
    /// rows since then are verified: kuzet never signs a head that does not continue what it
    /// signed before. Failures are logged (the database away: the next period tries again).
    pub async fn take(&self) {
        let mut last = self.last.lock().await;
        match self.next(last.as_ref()).await {
            Ok(Some((c, head))) => {
                let file = self.file.clone();
                let line = c.clone();
                match actix_rt::task::spawn_blocking(move || append(&file, &line)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::error!(error = %format!("{e:#}"), "cannot write the audit checkpoint");
                        return;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot write the audit checkpoint");
                        return;
                    }
                }
                tracing::info!(seq = c.seq, hash = %c.hash, "audit checkpoint");
                *last = Some(head);
                self.publish(&c).await;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "no audit checkpoint this time"),
        }
    }

    async fn next(
        &self,
        last: Option<&(i64, Vec<u8>)>,
    ) -> anyhow::Result<Option<(Checkpoint, (i64, Vec<u8>))>> {
        let (seq, hash) = last.cloned().unwrap_or((0, vec![0u8; 32]));
        if seq > 0 {
            let now: Option<Vec<u8>> = sqlx::query_scalar("SELECT hash FROM audit_log WHERE seq = $1")
                .bind(seq)
                .fetch_optional(&self.pool)
                .await?;
            if now.as_deref() != Some(&hash[..]) {
                tracing::error!(
                    seq,
                    "the audit log no longer holds row {seq} as checkpointed: it was rewritten or \
                    removed; no checkpoint is signed over it (run `kuzet audit verify` with the checkpoints)"
                );
                return Ok(None);
            }
        }
        let (v, head) = super::audit::verify_after(&self.pool, seq, &hash).await?;
        if let Some(b) = v.first_break {
            tracing::error!(seq = b.seq, "the audit chain is broken: {b}; no checkpoint is signed over it");
            return Ok(None);
        }
        if head.0 == seq {
            return Ok(None);
        }
        Ok(Some((Checkpoint::sign(&self.key, head.0, &head.1, chrono::Utc::now()), head)))
    }

    async fn publish(&self, c: &Checkpoint) {
        let payload = match serde_json::to_vec(c) {
            Ok(p) => p,
            Err(e) => return tracing::error!(error = %e, "cannot encode the audit checkpoint"),
        };
        let sent =
            tokio::time::timeout(PUBLISH_WAIT, self.client.publish(TOPIC, QoS::AtLeastOnce, true, payload));
        match sent.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "audit checkpoint not published (it is in the file)"),
            Err(_) => {
                tracing::warn!("audit checkpoint not published: the broker is away (it is in the file)")
            }
        }
    }
}

/// Why a checkpoint does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The line is not a checkpoint.
    Unreadable(String),
    /// The signature is not the public key's over the line's fields: the line was altered, or
    /// signed by another key.
    Signature,
    /// The log has no row at the checkpoint's seq: rows were removed from its end.
    RowMissing,
    /// The row at the checkpoint's seq carries another hash: a row after `after` (the last
    /// checkpoint before that holds; 0: none) up to the checkpoint's seq was rewritten.
    HashDiffers { after: i64 },
}

/// The first checkpoint that does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// 1-based line in the checkpoint file.
    pub line: usize,
    pub seq: Option<i64>,
    pub at: Option<String>,
    pub failure: Failure,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "checkpoint on line {}", self.line)?;
        if let (Some(seq), Some(at)) = (self.seq, &self.at) {
            write!(f, " (row {seq}, taken {at})")?;
        }
        match &self.failure {
            Failure::Unreadable(e) => write!(f, " is not a checkpoint: {e}"),
            Failure::Signature => {
                write!(f, " has a signature the public key does not verify: the line was altered or signed by another key")
            }
            Failure::RowMissing => {
                write!(
                    f,
                    ": the log has no row {}: rows were removed from its end",
                    self.seq.unwrap_or_default()
                )
            }
            Failure::HashDiffers { after } => {
                let seq = self.seq.unwrap_or_default();
                write!(f, ": row {seq} no longer carries the signed hash: ")?;
                if *after + 1 == seq {
                    write!(f, "row {seq} was rewritten")
                } else {
                    write!(
                        f,
                        "a row from {} to {seq} was rewritten (row {after} still matches its checkpoint)",
                        after + 1
                    )
                }
            }
        }
    }
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Checkpoints that hold, up to the first that does not.
    pub held: usize,
    /// The highest seq among those that hold.
    pub last_seq: i64,
    pub first_failure: Option<Failed>,
}

/// Checks every checkpoint of `text` (the file's content), in order: its signature by
/// `public_key`, and that the log still holds its row with its hash.
pub async fn verify(pool: &PgPool, text: &str, public_key: &[u8]) -> anyhow::Result<Report> {
    let mut report = Report { held: 0, last_seq: 0, first_failure: None };
    // The seqs known to hold, so a failure says where the rewrite can be.
    let mut holds: Vec<i64> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fail = |seq, at, failure| Failed { line: i + 1, seq, at, failure };
        let c: Checkpoint = match serde_json::from_str(line) {
            Ok(c) => c,
            Err(e) => {
                report.first_failure = Some(fail(None, None, Failure::Unreadable(e.to_string())));
                return Ok(report);
            }
        };
        let fail = |failure| fail(Some(c.seq), Some(c.at.clone()), failure);
        if !c.signed_by(public_key) {
            report.first_failure = Some(fail(Failure::Signature));
            return Ok(report);
        }
        let stored: Option<Vec<u8>> = sqlx::query_scalar("SELECT hash FROM audit_log WHERE seq = $1")
            .bind(c.seq)
            .fetch_optional(pool)
            .await?;
        match stored {
            None => {
                report.first_failure = Some(fail(Failure::RowMissing));
                return Ok(report);
            }
            Some(h) if hex(&h) != c.hash => {
                let after = holds.iter().copied().filter(|&s| s < c.seq).max().unwrap_or(0);
                report.first_failure = Some(fail(Failure::HashDiffers { after }));
                return Ok(report);
            }
            Some(_) => {}
        }
        report.held += 1;
        report.last_seq = report.last_seq.max(c.seq);
        holds.push(c.seq);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Ed25519KeyPair {
        let doc = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
        Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap()
    }

    #[test]
    fn a_checkpoint_verifies_with_its_key_only() {
        let (k, other) = (key(), key());
        let c = Checkpoint::sign(&k, 42, &[7u8; 32], chrono::Utc::now());
        assert!(c.signed_by(k.public_key().as_ref()));
        assert!(!c.signed_by(other.public_key().as_ref()), "another key verifies");
        let line = serde_json::to_string(&c).unwrap();
        let back: Checkpoint = serde_json::from_str(&line).unwrap();
        assert_eq!(back, c);
        for altered in [
            Checkpoint { seq: 43, ..c.clone() },
            Checkpoint { hash: hex(&[8u8; 32]), ..c.clone() },
            Checkpoint { at: "2020-01-01T00:00:00.000000Z".into(), ..c.clone() },
            Checkpoint { signature: "zz".into(), ..c.clone() },
        ] {
            assert!(!altered.signed_by(k.public_key().as_ref()), "{altered:?} verifies");
        }
    }

    #[test]
    fn the_key_is_private_and_its_public_half_reads_back() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit/checkpoint.key");
        let k = load_or_create_key(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let again = load_or_create_key(&path).unwrap();
        assert_eq!(k.public_key().as_ref(), again.public_key().as_ref(), "the key was replaced");
        let public = read_public_key(&public_key_path(&path)).unwrap();
        assert_eq!(public, k.public_key().as_ref());
        assert_eq!(unhex(&hex(&[0, 1, 254, 255])), Some(vec![0, 1, 254, 255]));
    }
}
