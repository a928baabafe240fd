//! The TLS files the settings name, read into rustls configurations. rustls with the ring
//! provider everywhere (the MQTT client, HTTPS, PostgreSQL through sqlx): no OpenSSL in kuzet.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use super::TlsFiles;

/// ring, named rather than left to the process default, so no second provider in the tree
/// can make the choice ambiguous.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of a PEM file, at least one.
pub fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("cannot read certificates from {}: {e}", path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no certificate (PEM, -----BEGIN CERTIFICATE-----)", path.display());
    }
    Ok(certs)
}

fn read_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| anyhow::anyhow!("cannot read a private key from {}: {e}", path.display()))
}

/// A server's configuration from its chain and key: TLS 1.2 and 1.3, no client certificates.
/// Fails when the key does not belong to the certificate.
pub fn server_config(files: &TlsFiles) -> anyhow::Result<ServerConfig> {
    let chain = read_certs(&files.cert)?;
    let key = read_key(&files.key)?;
    ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .with_context(|| {
            format!("{} and {} are not a certificate and its key", files.cert.display(), files.key.display())
        })
}

/// The CAs a client trusts: those in `ca_file`, or the system's when it is empty.
pub fn roots(ca_file: &Path) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    if ca_file.as_os_str().is_empty() {
        let found = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            bail!("no trusted CA certificate found on this system (set the CA file explicitly)");
        }
        return Ok(roots);
    }
    for cert in read_certs(ca_file)? {
        roots.add(cert).with_context(|| format!("{}: not a usable CA certificate", ca_file.display()))?;
    }
    Ok(roots)
}

/// A client's configuration: the server's certificate must chain to `roots` and name the host
/// connected to (checked by the TLS library on every connection).
pub fn client_config(roots: RootCertStore) -> anyhow::Result<Arc<ClientConfig>> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
