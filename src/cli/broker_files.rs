//! `kuzet broker-files`: the ACL and the hashed passwords for an external Mosquitto.

use std::path::PathBuf;

use anyhow::Context as _;
use kuzet::settings::Settings;
use kuzet::{brokerfiles, registry_file};

#[derive(clap::Args)]
pub struct BrokerFilesArgs {
    #[arg(long, default_value = "config/registry.toml")]
    pub registry: PathBuf,
    /// Directory to write `acl` and `passwd` (hashed) into.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub fn run(args: BrokerFilesArgs) -> anyhow::Result<()> {
    let BrokerFilesArgs { registry, out, config } = args;
    let settings = Settings::load(config.as_deref())?;
    let devices = registry_file::load(&registry)?;
    let user = &settings.mqtt.username;
    kuzet::settings::strong_password(
        "mqtt.password (KUZET_MQTT__PASSWORD)",
        settings.mqtt.password.expose(),
    )?;
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let integrations = &settings.broker.integrations;
    std::fs::write(out.join("acl"), brokerfiles::acl_with(&devices, user, integrations))?;
    let issued = kuzet::credentials::read(&settings.registry.credentials_file)?;
    let mut accounts = brokerfiles::accounts(&devices, user, settings.mqtt.password.expose(), integrations);
    // An issued credential replaces a password the registry file gives the same device.
    accounts.retain(|(u, _)| !issued.contains_key(u));
    // Hashes only, as mosquitto_passwd writes them: no plain text reaches the disk.
    let mut text = brokerfiles::hashed_passwords(&accounts);
    for (id, hash) in &issued {
        text.push_str(&format!("{id}:{hash}\n"));
    }
    let passwd = out.join("passwd");
    std::fs::write(&passwd, text)?;
    std::fs::set_permissions(&passwd, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    eprintln!("wrote {0}/acl and {0}/passwd ({1} accounts)", out.display(), accounts.len() + issued.len());
    Ok(())
}
