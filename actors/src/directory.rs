//! Finds the live device actors by id, for the adapters (a message on a device's topic
//! goes to that device's actor) and for the registry.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use actix::prelude::*;

use crate::button::PanicButton;
use crate::camera::Camera;
use crate::ids::{ButtonId, CameraId, UnitId};
use crate::unit::Unit;

/// Finds device actors by id; shared with the adapters. Reads are uncontended: devices
/// change only when the registry spawns them.
#[derive(Clone, Default)]
pub struct Directory {
    inner: Arc<RwLock<DirectoryInner>>,
}

#[derive(Default)]
struct DirectoryInner {
    buttons: HashMap<ButtonId, Addr<PanicButton>>,
    units: HashMap<UnitId, Addr<Unit>>,
    cameras: HashMap<CameraId, Addr<Camera>>,
}

impl Directory {
    pub(crate) fn add_button(&self, id: ButtonId, addr: Addr<PanicButton>) {
        self.inner.write().unwrap_or_else(|p| p.into_inner()).buttons.insert(id, addr);
    }

    pub(crate) fn add_unit(&self, id: UnitId, addr: Addr<Unit>) {
        self.inner.write().unwrap_or_else(|p| p.into_inner()).units.insert(id, addr);
    }

    pub(crate) fn add_camera(&self, id: CameraId, addr: Addr<Camera>) {
        self.inner.write().unwrap_or_else(|p| p.into_inner()).cameras.insert(id, addr);
    }

    pub fn camera(&self, id: &str) -> Option<Addr<Camera>> {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        inner.cameras.get(id).cloned()
    }

    pub fn cameras(&self) -> usize {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).cameras.len()
    }

    pub fn button(&self, id: &str) -> Option<Addr<PanicButton>> {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        inner.buttons.get(id).cloned()
    }

    pub fn unit(&self, id: &str) -> Option<Addr<Unit>> {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        inner.units.get(id).cloned()
    }

    pub fn counts(&self) -> (usize, usize) {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        (inner.buttons.len(), inner.units.len())
    }
}
