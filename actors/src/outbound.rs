//! What the actors tell the outside world. An adapter (the MQTT gateway; later the console)
//! receives these as `Notify` through a `Recipient`, so the domain never names a topic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::dispatch::{Dispatch, EscalationReason, RevokeReason};
use crate::geo::GeoPoint;
use crate::ids::{AlarmId, ButtonId, IncidentId, OfferId, SiteId, UnitId};
use crate::incident::IncidentSnapshot;
use crate::model::{AckState, IncidentKind, Priority};

/// The site an incident is at, as units and consoles see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteRef {
    pub id: SiteId,
    pub name: String,
    pub room: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OfferOut {
    pub offer_id: OfferId,
    pub incident_id: IncidentId,
    pub priority: Priority,
    pub kind: IncidentKind,
    pub location: GeoPoint,
    pub site: Option<SiteRef>,
    pub summary: String,
    pub distance_m: f64,
    pub eta_s: Option<u32>,
    pub expires_at: DateTime<Utc>,
    /// The road route from the unit to the incident as an encoded polyline (precision 5),
    /// when ranked by drive time.
    #[serde(rename = "route_polyline", skip_serializing_if = "Option::is_none", serialize_with = "polyline")]
    pub route: Option<Arc<Vec<GeoPoint>>>,
}

fn polyline<S: serde::Serializer>(route: &Option<Arc<Vec<GeoPoint>>>, s: S) -> Result<S::Ok, S::Error> {
    match route {
        Some(r) => s.serialize_str(&crate::geo::encode_polyline(r)),
        None => s.serialize_none(),
    }
}

/// An update about an incident a unit holds or was offered.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum UnitUpdate {
    /// The offer is no longer valid (it expired, or the incident ended).
    OfferRevoked { offer_id: OfferId, reason: RevokeReason },
    /// The incident the unit accepted was cancelled; stand down.
    Cancelled,
    /// Every unit cleared; the incident is closed.
    Closed,
}

#[derive(Debug, Clone, Serialize)]
pub struct ButtonAck {
    pub alarm_id: AlarmId,
    pub incident_id: IncidentId,
    pub state: AckState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta_s: Option<u32>,
}

#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub enum Notify {
    Offer {
        unit: UnitId,
        offer: OfferOut,
    },
    Unit {
        unit: UnitId,
        incident_id: IncidentId,
        update: UnitUpdate,
    },
    Ack {
        button: ButtonId,
        ack: ButtonAck,
    },
    /// The incident's current state, kept (retained) for late subscribers.
    Snapshot(Arc<IncidentSnapshot>),
    /// The incident's final state; after it, nothing is kept for the incident.
    Closed(Arc<IncidentSnapshot>),
    Escalation {
        incident_id: IncidentId,
        reason: EscalationReason,
        snapshot: Arc<IncidentSnapshot>,
    },
}

/// An incident's state as it is recorded, so that it can be picked up after a restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DispatchState {
    pub dispatch: Dispatch,
    /// When each pending offer expires.
    pub offer_expiry: Vec<(OfferId, DateTime<Utc>)>,
}

/// One change of an incident, for the record.
#[derive(Debug, Clone)]
pub struct IncidentRecord {
    pub snapshot: Arc<IncidentSnapshot>,
    pub state: DispatchState,
}

/// Where the actors' record goes (the database writer). Must not block: it is called on
/// the actors' thread.
pub trait Journal: Send + Sync + 'static {
    fn incident(&self, record: IncidentRecord);
}

/// A handle the actors publish through. The adapter behind it never blocks, so a full
/// mailbox means the process is overloaded: the notification is dropped, logged and counted,
/// and the incident's own timers (offer expiry, escalation) still move it on.
#[derive(Clone)]
pub struct Outbox {
    to: Recipient<Notify>,
    dropped: Arc<AtomicU64>,
    journal: Option<Arc<dyn Journal>>,
}

impl Outbox {
    pub fn new(to: Recipient<Notify>) -> Self {
        Self { to, dropped: Arc::new(AtomicU64::new(0)), journal: None }
    }

    /// Also records incident changes in `journal`.
    pub fn with_journal(mut self, journal: Arc<dyn Journal>) -> Self {
        self.journal = Some(journal);
        self
    }

    pub fn journaling(&self) -> bool {
        self.journal.is_some()
    }

    pub fn record(&self, record: IncidentRecord) {
        if let Some(j) = &self.journal {
            j.incident(record);
        }
    }

    pub fn send(&self, n: Notify) {
        if let Err(e) = self.to.try_send(n) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "outbound notification dropped");
        }
    }

    /// Notifications dropped because the adapter's mailbox was full or gone.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// When kuzet received something, in wall time (for people) and monotonic time (for hops).
#[derive(Debug, Clone, Copy)]
pub struct Received {
    pub at: DateTime<Utc>,
    pub instant: tokio::time::Instant,
}

impl Received {
    pub fn now() -> Self {
        Self { at: Utc::now(), instant: tokio::time::Instant::now() }
    }
}
