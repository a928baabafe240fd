//! The devices kuzet knows, as the registry file (or the database) describes them: sites
//! with their buttons, units, cameras. Plain data, checked once when loaded.

use serde::{Deserialize, Serialize};

use crate::camera::CameraSpec;
use crate::geo::GeoPoint;
use crate::ids::{ButtonId, SiteId, UnitId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SiteKind {
    School,
    PoliceStation,
    Prison,
}

/// The devices kuzet knows, as loaded from the registry file.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Devices {
    #[serde(default)]
    pub sites: Vec<SiteSpec>,
    #[serde(default)]
    pub units: Vec<UnitSpec>,
    #[serde(default)]
    pub cameras: Vec<CameraSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSpec {
    pub id: SiteId,
    pub name: String,
    pub kind: SiteKind,
    pub location: GeoPoint,
    #[serde(default)]
    pub buttons: Vec<ButtonSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ButtonSpec {
    pub id: ButtonId,
    pub room: Option<String>,
    /// The device's broker password (demo and test registries only; production keeps
    /// credentials in the broker's password file).
    pub password: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitSpec {
    pub id: UnitId,
    pub callsign: String,
    pub password: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DevicesError {
    #[error("device id {0} is used twice")]
    Duplicate(String),
}

impl Devices {
    /// Checks what serde cannot: ids are unique across all devices and sites, because the
    /// broker's identity rule (username = device id) must name exactly one device.
    pub fn validate(&self) -> Result<(), DevicesError> {
        let mut seen = std::collections::HashSet::new();
        let ids = self
            .sites
            .iter()
            .flat_map(|s| s.buttons.iter().map(|b| b.id.as_str()))
            .chain(self.units.iter().map(|u| u.id.as_str()))
            .chain(self.cameras.iter().map(|c| c.id.as_str()));
        for id in ids {
            if !seen.insert(id) {
                return Err(DevicesError::Duplicate(id.to_owned()));
            }
        }
        let mut sites = std::collections::HashSet::new();
        for s in &self.sites {
            if !sites.insert(s.id.as_str()) {
                return Err(DevicesError::Duplicate(s.id.to_string()));
            }
        }
        Ok(())
    }
}
