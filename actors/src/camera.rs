//! Camera: one per camera. Knows where the camera is and whom it reports to, turns health
//! changes of its stream into integrity alerts, and hands face matches (from kuzet's own
//! pipeline or from the camera's edge analytics) to the matched person's actor.

use std::sync::Arc;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::geo::GeoPoint;
use crate::ids::{CameraId, PersonId, SightingId, SiteId};
use crate::outbound::{Audience, IntegrityAlert, Notify, Outbox, Received};
use crate::snapshot::SightingRef;
use crate::wanted::{Seen, WatchDirectory};

/// A camera as the registry file or the database describes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraSpec {
    pub id: CameraId,
    pub location: GeoPoint,
    #[serde(default)]
    pub site: Option<SiteId>,
    /// Watches a police station or prison: its integrity alerts go to oversight.
    #[serde(default)]
    pub custodial: bool,
    /// rtsp://, file:// or http(s):// for kuzet's own pipeline; none for a camera that
    /// detects on its own and publishes its detections over MQTT.
    #[serde(default)]
    pub stream_uri: Option<String>,
    /// The device's broker password (demo and test registries only).
    #[serde(default)]
    pub password: Option<String>,
}

pub struct Camera {
    spec: CameraSpec,
    health: &'static str,
    watch: WatchDirectory,
    outbox: Outbox,
}

impl Camera {
    pub fn new(spec: CameraSpec, watch: WatchDirectory, outbox: Outbox) -> Self {
        Self { spec, health: "starting", watch, outbox }
    }
}

impl Actor for Camera {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(256);
    }
}

/// The stream's health changed (ok, offline, frozen, covered).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct HealthReport {
    pub state: &'static str,
    pub detail: String,
    pub at: DateTime<Utc>,
}

impl Handler<HealthReport> for Camera {
    type Result = ();

    fn handle(&mut self, msg: HealthReport, _: &mut Self::Context) {
        let before = std::mem::replace(&mut self.health, msg.state);
        if before == msg.state {
            return;
        }
        // The first frames are not news, but they replace whatever state a console was left
        // with (retained) before a restart: published, not recorded.
        let news = !(before == "starting" && msg.state == "ok");
        let audience = if self.spec.custodial { Audience::Oversight } else { Audience::Dispatch };
        if news {
            tracing::warn!(camera = %self.spec.id, state = msg.state, was = before, audience = ?audience,
                detail = %msg.detail, "camera integrity");
        }
        let alert = Arc::new(IntegrityAlert {
            camera: self.spec.id.clone(),
            state: msg.state.to_owned(),
            detail: (!msg.detail.is_empty()).then_some(msg.detail),
            at: msg.at,
            audience,
            custodial: self.spec.custodial,
            site: self.spec.site.clone(),
            location: self.spec.location,
        });
        if news {
            self.outbox.record_integrity(alert.clone());
        }
        self.outbox.send(Notify::Integrity(alert));
    }
}

/// After a restart: the camera's health as last recorded, when it was not ok. Its first
/// report is then news either way: `ok` closes the alert on the record and the pages.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct RestoreHealth {
    pub state: String,
}

impl Handler<RestoreHealth> for Camera {
    type Result = ();

    fn handle(&mut self, msg: RestoreHealth, _: &mut Self::Context) {
        let known = ["offline", "frozen", "covered"].into_iter().find(|s| *s == msg.state);
        if let (Some(state), "starting") = (known, self.health) {
            self.health = state;
        }
    }
}

/// A face on this camera matched a watchlisted person above the review threshold.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Matched {
    pub sighting_id: SightingId,
    pub person: PersonId,
    pub score: f32,
    pub at: DateTime<Utc>,
    /// The probe embedding: kept only if a dispatcher rejects the match (a negative example).
    pub embedding: Arc<[f32]>,
    /// Whether the face crop and frame were saved before this was sent.
    pub evidence: bool,
    pub received: Received,
}

impl Handler<Matched> for Camera {
    type Result = ();

    fn handle(&mut self, msg: Matched, _: &mut Self::Context) {
        let Some(person) = self.watch.person(msg.person.as_str()) else {
            tracing::warn!(camera = %self.spec.id, person = %msg.person, "match for a person no longer on the list");
            return;
        };
        let sighting = SightingRef {
            sighting_id: msg.sighting_id,
            camera: self.spec.id.clone(),
            at: msg.at,
            location: self.spec.location,
            score: msg.score,
            evidence: msg.evidence,
        };
        if let Err(e) = person.try_send(Seen { sighting, embedding: msg.embedding, received: msg.received }) {
            tracing::error!(camera = %self.spec.id, person = %msg.person, error = %e, "sighting dropped");
        }
    }
}

/// The camera's current health, for status pages.
#[derive(Message)]
#[rtype(result = "&'static str")]
pub struct GetHealth;

impl Handler<GetHealth> for Camera {
    type Result = MessageResult<GetHealth>;

    fn handle(&mut self, _: GetHealth, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.health)
    }
}
