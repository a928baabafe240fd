//! Finds the device actors by id, for the adapters (a message on a device's topic goes to
//! that device's actor) and for the registry.
//!
//! Most of a city's registered devices sit idle: panic buttons pressed once in years, tablets
//! of units not on shift. An idle device is a row here, and its actor is started the first
//! time it is needed: a button's on its first alarm (its heartbeats and online reports are
//! kept here and never wake it), a unit's when its tablet first speaks (or the record says
//! where it was). Cameras and incidents have an actor from the start.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use actix::prelude::*;
use chrono::{DateTime, Utc};

use crate::button::{ButtonOnline, PanicButton};
use crate::camera::Camera;
use crate::ids::{ButtonId, CameraId, SiteId, UnitId};
use crate::unit::Unit;

/// Starts a button's actor when it is first needed (set by the registry).
pub(crate) type ButtonFactory =
    Arc<dyn Fn(ButtonId, SiteId, Option<String>) -> Addr<PanicButton> + Send + Sync>;
/// Starts a unit's actor when it is first needed (set by the registry).
/// (id, callsign, whether its tablet's presence says offline)
pub(crate) type UnitFactory = Arc<dyn Fn(UnitId, String, bool) -> Addr<Unit> + Send + Sync>;

/// Finds device actors by id; shared with the adapters. Reads are uncontended: devices
/// change only when the registry spawns them or a button wakes.
#[derive(Clone, Default)]
pub struct Directory {
    inner: Arc<RwLock<DirectoryInner>>,
}

#[derive(Default)]
struct DirectoryInner {
    buttons: HashMap<ButtonId, ButtonEntry>,
    units: HashMap<UnitId, UnitEntry>,
    cameras: HashMap<CameraId, Addr<Camera>>,
    factory: Option<ButtonFactory>,
    unit_factory: Option<UnitFactory>,
    /// Button actors started so far.
    awake: usize,
    awake_units: usize,
}

/// One registered unit, and its actor once its tablet has spoken.
struct UnitEntry {
    callsign: Box<str>,
    /// Its tablet's presence said offline while the unit was idle.
    offline: bool,
    actor: Option<Addr<Unit>>,
}

/// One registered button: what its actor needs to start, its health, and its actor once
/// awake.
struct ButtonEntry {
    site: SiteId,
    room: Option<Box<str>>,
    online: Option<bool>,
    battery_pct: Option<f32>,
    last_heartbeat: Option<DateTime<Utc>>,
    actor: Option<Addr<PanicButton>>,
}

/// A button's health as last reported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ButtonHealth {
    pub online: Option<bool>,
    pub battery_pct: Option<f32>,
    pub last_heartbeat: Option<DateTime<Utc>>,
}

/// Battery level under which a button is reported.
const LOW_BATTERY_PCT: f32 = 20.0;

impl Directory {
    pub(crate) fn set_button_factory(&self, factory: ButtonFactory) {
        self.write().factory = Some(factory);
    }

    /// Registers a button, idle until it has an alarm.
    pub(crate) fn add_button(&self, id: ButtonId, site: SiteId, room: Option<String>) {
        let entry = ButtonEntry {
            site,
            room: room.map(String::into_boxed_str),
            online: None,
            battery_pct: None,
            last_heartbeat: None,
            actor: None,
        };
        self.write().buttons.insert(id, entry);
    }

    pub(crate) fn set_unit_factory(&self, factory: UnitFactory) {
        self.write().unit_factory = Some(factory);
    }

    /// Registers a unit, idle until it is needed.
    pub(crate) fn add_unit(&self, id: UnitId, callsign: String) {
        self.write()
            .units
            .insert(id, UnitEntry { callsign: callsign.into_boxed_str(), offline: false, actor: None });
    }

    pub(crate) fn add_camera(&self, id: CameraId, addr: Addr<Camera>) {
        self.write().cameras.insert(id, addr);
    }

    pub fn camera(&self, id: &str) -> Option<Addr<Camera>> {
        self.read().cameras.get(id).cloned()
    }

    pub fn cameras(&self) -> usize {
        self.read().cameras.len()
    }

    /// Whether a button `id` is registered (does not wake it).
    pub fn has_button(&self, id: &str) -> bool {
        self.read().buttons.contains_key(id)
    }

    /// The actor of button `id`, started now if it was idle.
    pub fn button(&self, id: &str) -> Option<Addr<PanicButton>> {
        if let Some(e) = self.read().buttons.get(id) {
            if let Some(a) = e.actor.as_ref().filter(|a| a.connected()) {
                return Some(a.clone());
            }
        }
        let mut inner = self.write();
        let inner = &mut *inner;
        let (key, e) = inner.buttons.get_key_value(id)?;
        if let Some(a) = e.actor.as_ref().filter(|a| a.connected()) {
            return Some(a.clone());
        }
        let Some(factory) = &inner.factory else {
            tracing::error!(button_id = id, "button actors cannot be started before the registry");
            return None;
        };
        let addr = factory(key.clone(), e.site.clone(), e.room.as_deref().map(str::to_owned));
        inner.awake += 1;
        inner.buttons.get_mut(id)?.actor = Some(addr.clone());
        Some(addr)
    }

    /// Records a button's heartbeat; false if no such button is registered.
    pub fn button_heartbeat(&self, id: &str, at: DateTime<Utc>, battery_pct: Option<f64>) -> bool {
        let mut inner = self.write();
        let Some(e) = inner.buttons.get_mut(id) else {
            return false;
        };
        if let Some(b) = battery_pct.map(|b| b as f32) {
            if b < LOW_BATTERY_PCT && e.battery_pct.is_none_or(|old| old >= LOW_BATTERY_PCT) {
                tracing::warn!(button_id = id, battery_pct = b, "panic button battery low");
            }
            e.battery_pct = Some(b);
        }
        // A late heartbeat does not move the last one back.
        if e.last_heartbeat.is_none_or(|t| t < at) {
            e.last_heartbeat = Some(at);
        }
        true
    }

    /// Records a button going on- or offline; false if no such button is registered. A
    /// button back online hears again where its latest alarm stands (from its actor, if it
    /// ever had one: an idle button has no alarm to tell of).
    pub fn button_online(&self, id: &str, online: bool) -> bool {
        let mut inner = self.write();
        let Some(e) = inner.buttons.get_mut(id) else {
            return false;
        };
        if !online && e.online != Some(false) {
            tracing::warn!(button_id = id, site_id = %e.site, "panic button offline");
        }
        e.online = Some(online);
        if online {
            if let Some(a) = e.actor.as_ref().filter(|a| a.connected()) {
                a.do_send(ButtonOnline(true));
            }
        }
        true
    }

    /// A button's health as last reported.
    pub fn button_health(&self, id: &str) -> Option<ButtonHealth> {
        self.read().buttons.get(id).map(|e| ButtonHealth {
            online: e.online,
            battery_pct: e.battery_pct,
            last_heartbeat: e.last_heartbeat,
        })
    }

    /// Whether a unit `id` is registered (does not wake it).
    pub fn has_unit(&self, id: &str) -> bool {
        self.read().units.contains_key(id)
    }

    /// The actor of unit `id`, started now if it was idle (it then tells the router it may
    /// be offered work, where the fleet says it is).
    pub fn unit(&self, id: &str) -> Option<Addr<Unit>> {
        if let Some(a) = self.read().units.get(id).and_then(|e| e.actor.as_ref()).filter(|a| a.connected()) {
            return Some(a.clone());
        }
        let mut inner = self.write();
        let inner = &mut *inner;
        let (key, e) = inner.units.get_key_value(id)?;
        if let Some(a) = e.actor.as_ref().filter(|a| a.connected()) {
            return Some(a.clone());
        }
        let Some(factory) = &inner.unit_factory else {
            tracing::error!(unit_id = id, "unit actors cannot be started before the registry");
            return None;
        };
        let addr = factory(key.clone(), e.callsign.to_string(), e.offline);
        inner.awake_units += 1;
        inner.units.get_mut(id)?.actor = Some(addr.clone());
        Some(addr)
    }

    /// Unit `id`'s tablet is offline: its actor, to be told, if it has one; if it is idle,
    /// the row keeps it (a retained presence, heard at every start for every tablet of the
    /// city, does not wake the unit) and the actor will start knowing it. None: no such unit.
    pub fn unit_offline(&self, id: &str) -> Option<Option<Addr<Unit>>> {
        let mut inner = self.write();
        let e = inner.units.get_mut(id)?;
        match e.actor.as_ref().filter(|a| a.connected()) {
            Some(a) => Some(Some(a.clone())),
            None => {
                e.offline = true;
                Some(None)
            }
        }
    }

    /// Unit actors started so far (the rest are idle rows).
    pub fn awake_units(&self) -> usize {
        self.read().awake_units
    }

    /// Registered buttons and units.
    pub fn counts(&self) -> (usize, usize) {
        let inner = self.read();
        (inner.buttons.len(), inner.units.len())
    }

    /// Button actors started so far (the rest are idle rows).
    pub fn awake_buttons(&self) -> usize {
        self.read().awake
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, DirectoryInner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, DirectoryInner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }
}
