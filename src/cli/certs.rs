//! `kuzet certs`: a private CA for one deployment, and server certificates it signs for
//! kuzet's broker, its HTTPS and PostgreSQL. The CA is made once and kept; running again for
//! a name that has its certificate keeps it unless `--renew`.

use std::io::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::client::danger::ServerCertVerifier as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

#[derive(clap::Args)]
pub struct CertsArgs {
    /// Folder of the CA (`ca.crt`, `ca.key`) and the certificates; made with mode 0700.
    #[arg(long, default_value = "tls")]
    pub dir: PathBuf,
    /// The certificate's file names, `NAME.crt` and `NAME.key`: e.g. broker, http, db.
    #[arg(long)]
    pub name: String,
    /// A host name or IP address clients reach the server by (repeat the option).
    #[arg(long = "host", required = true)]
    pub hosts: Vec<String>,
    /// Days the certificate is valid.
    #[arg(long, default_value_t = 825)]
    pub days: u32,
    /// Replace an existing `NAME.crt` and `NAME.key` (with a new key).
    #[arg(long)]
    pub renew: bool,
}

/// The CA's name. Fixed: an issuer is rebuilt from its key and this name, so `ca.crt` and the
/// certificates signed later agree without parsing `ca.crt`.
const CA_NAME: &str = "kuzet private CA";
const CA_DAYS: i64 = 3650;

pub fn run(args: CertsArgs) -> anyhow::Result<()> {
    let CertsArgs { dir, name, hosts, days, renew } = args;
    let valid_name = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_name || name == "ca" {
        bail!("--name {name:?}: letters, digits, - and _ only, and not \"ca\"");
    }
    if days == 0 {
        bail!("--days must be at least 1");
    }
    let sans = hosts.iter().map(|h| san(h)).collect::<anyhow::Result<Vec<_>>>()?;
    if !dir.exists() {
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    }
    let (ca_crt, ca_key) = (dir.join("ca.crt"), dir.join("ca.key"));
    let ca = match (ca_crt.exists(), ca_key.exists()) {
        (true, true) => {
            let pem = std::fs::read_to_string(&ca_key)
                .with_context(|| format!("cannot read {}", ca_key.display()))?;
            let key = KeyPair::from_pem(&pem)
                .with_context(|| format!("{}: not a private key", ca_key.display()))?;
            println!("using the CA in {}", ca_crt.display());
            Issuer::new(ca_params(), key)
        }
        (false, false) => {
            let key = KeyPair::generate()?;
            let mut params = ca_params();
            set_validity(&mut params, CA_DAYS);
            params.serial_number = Some(serial());
            let cert = params.self_signed(&key)?;
            // The key first: a CA certificate without its key could sign nothing.
            write_new(&ca_key, &key.serialize_pem(), 0o600)?;
            write_new(&ca_crt, &cert.pem(), 0o644)?;
            println!(
                "made a private CA: {} (give it to clients) and {} (keep it secret)",
                ca_crt.display(),
                ca_key.display()
            );
            Issuer::new(params, key)
        }
        _ => bail!(
            "{} and {} must both exist or neither (a CA needs both)",
            ca_crt.display(),
            ca_key.display()
        ),
    };

    let (crt, key_path) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    if crt.exists() && !renew {
        println!("kept {} (--renew replaces it and its key)", crt.display());
        return Ok(());
    }
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, hosts[0].as_str());
    params.subject_alt_names = sans;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(serial());
    set_validity(&mut params, i64::from(days));
    let cert = params.signed_by(&key, &ca)?;
    // A ca.crt that is not this key's (replaced by hand) would make certificates no client accepts.
    check_chain(&ca_crt, cert.der(), &hosts)?;
    write_replace(&key_path, &key.serialize_pem(), 0o600)?;
    write_replace(&crt, &cert.pem(), 0o644)?;
    println!(
        "wrote {} and {} for {}, valid {days} days",
        crt.display(),
        key_path.display(),
        hosts.join(", ")
    );
    Ok(())
}

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, CA_NAME);
    p.distinguished_name.push(DnType::OrganizationName, "kuzet");
    // Signs server certificates only, no intermediate CAs.
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    p
}

fn san(host: &str) -> anyhow::Result<SanType> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let ok = !host.is_empty()
        && host.split('.').enumerate().all(|(i, label)| {
            (i == 0 && label == "*")
                || (!label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        });
    if !ok {
        bail!("--host {host:?} is neither a host name nor an IP address");
    }
    Ok(SanType::DnsName(host.to_ascii_lowercase().try_into()?))
}

/// From yesterday (clocks disagree) to `days` days from today, at midnight UTC.
fn set_validity(p: &mut CertificateParams, days: i64) {
    use chrono::Datelike as _;
    let today = chrono::Utc::now().date_naive();
    let ymd = |d: chrono::NaiveDate| rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8);
    p.not_before = ymd(today - chrono::Days::new(1));
    p.not_after = ymd(today + chrono::Days::new(days.unsigned_abs()));
}

fn serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes);
    bytes[0] &= 0x7f; // a positive number
    SerialNumber::from_slice(&bytes)
}

/// The certificate chains to `ca.crt` and names every host, as a TLS client would check it.
fn check_chain(ca_crt: &Path, cert: &CertificateDer<'_>, hosts: &[String]) -> anyhow::Result<()> {
    let roots = kuzet::settings::tls::roots(ca_crt)?;
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        kuzet::settings::tls::provider(),
    )
    .build()?;
    for host in hosts {
        // A wildcard covers any one label.
        let name = host.strip_prefix("*.").map_or_else(|| host.clone(), |rest| format!("check.{rest}"));
        let name = ServerName::try_from(name)?;
        verifier.verify_server_cert(cert, &[], &name, &[], UnixTime::now()).with_context(|| {
            format!(
                "the new certificate does not verify against {} for {host}: is ca.crt ca.key's?",
                ca_crt.display()
            )
        })?;
    }
    Ok(())
}

/// Writes a file that must not exist yet.
fn write_new(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// Replaces `path` whole (written beside it, then renamed): a server reading it during a
/// renewal sees the old file or the new one.
fn write_replace(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    let tmp = path.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    write_new(&tmp, text, mode)?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
}
