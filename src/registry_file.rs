//! The device registry file (TOML): sites with their panic buttons, and patrol units.
//! See config/registry.toml for the format.

use std::path::Path;

use anyhow::Context as _;
use kuzet_actors::spec::Devices;

pub fn load(path: &Path) -> anyhow::Result<Devices> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read device registry {}", path.display()))?;
    parse(&text).with_context(|| format!("invalid device registry {}", path.display()))
}

/// The registry as TOML, in the format `load` reads.
pub fn to_toml(devices: &Devices) -> anyhow::Result<String> {
    Ok(toml::to_string(devices)?)
}

pub fn parse(text: &str) -> anyhow::Result<Devices> {
    let devices: Devices = toml::from_str(text)?;
    devices.validate()?;
    Ok(devices)
}
