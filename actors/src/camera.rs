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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::model::Danger;
    use crate::outbound::{IncidentRecord, Journal, Sink, Waiter};
    use crate::snapshot::WantedRef;
    use crate::wanted::{FaceOutcome, FaceSighting, WantedConfig, WantedPerson, WantedSpec};

    /// Keeps every integrity alert published (the sink) and recorded (the journal).
    #[derive(Clone, Default)]
    struct Alerts {
        published: Arc<Mutex<Vec<Arc<IntegrityAlert>>>>,
        recorded: Arc<Mutex<Vec<Arc<IntegrityAlert>>>>,
    }

    impl Sink for Alerts {
        fn take(&self, n: Notify) -> bool {
            if let Notify::Integrity(a) = n {
                self.published.lock().unwrap().push(a);
            }
            true
        }
    }

    impl Journal for Alerts {
        fn incident(&self, _: IncidentRecord) -> Result<(), Vec<Waiter>> {
            Ok(())
        }

        fn integrity(&self, alert: Arc<IntegrityAlert>) {
            self.recorded.lock().unwrap().push(alert);
        }
    }

    impl Alerts {
        /// (published, recorded) states since the last call.
        fn take(&self) -> (Vec<String>, Vec<String>) {
            let states = |v: &Mutex<Vec<Arc<IntegrityAlert>>>| {
                v.lock().unwrap().drain(..).map(|a| a.state.clone()).collect::<Vec<_>>()
            };
            (states(&self.published), states(&self.recorded))
        }
    }

    fn spec(custodial: bool) -> CameraSpec {
        CameraSpec {
            id: CameraId::parse("cam-1").unwrap(),
            location: GeoPoint::new(43.25, 76.95).unwrap(),
            site: Some(SiteId::parse("station-1").unwrap()),
            custodial,
            stream_uri: None,
            password: None,
        }
    }

    fn camera(custodial: bool, watch: WatchDirectory) -> (Addr<Camera>, Alerts) {
        let seen = Alerts::default();
        let outbox = Outbox::default().with_sink("test", seen.clone()).with_journal(Arc::new(seen.clone()));
        (Camera::new(spec(custodial), watch, outbox).start(), seen)
    }

    fn report(state: &'static str, detail: &str) -> HealthReport {
        HealthReport { state, detail: detail.into(), at: Utc::now() }
    }

    #[actix_rt::test]
    async fn the_first_frames_are_published_but_not_recorded_as_news() {
        let (cam, seen) = camera(false, WatchDirectory::default());
        cam.send(report("ok", "")).await.unwrap();
        assert_eq!(seen.take(), (vec!["ok".to_owned()], vec![]));
        assert_eq!(cam.send(GetHealth).await.unwrap(), "ok");
    }

    #[actix_rt::test]
    async fn every_change_is_published_and_recorded_and_the_same_state_again_is_neither() {
        let (cam, seen) = camera(false, WatchDirectory::default());
        cam.send(report("ok", "")).await.unwrap();
        seen.take();
        for (state, expect) in
            [("frozen", true), ("frozen", false), ("covered", true), ("ok", true), ("ok", false)]
        {
            cam.send(report(state, "")).await.unwrap();
            let want = if expect { vec![state.to_owned()] } else { vec![] };
            assert_eq!(seen.take(), (want.clone(), want), "{state}");
        }
        // Straight from starting to a fault is news too.
        let (cam, seen) = camera(false, WatchDirectory::default());
        cam.send(report("offline", "no frames for 10 s")).await.unwrap();
        assert_eq!(seen.take(), (vec!["offline".to_owned()], vec!["offline".to_owned()]));
    }

    #[actix_rt::test]
    async fn a_custodial_camera_alerts_oversight_and_any_other_alerts_dispatch() {
        for (custodial, audience) in [(true, Audience::Oversight), (false, Audience::Dispatch)] {
            let (cam, seen) = camera(custodial, WatchDirectory::default());
            cam.send(report("covered", "lens covered")).await.unwrap();
            let alert = seen.recorded.lock().unwrap()[0].clone();
            assert_eq!((alert.audience, alert.custodial), (audience, custodial));
            assert_eq!(alert.detail.as_deref(), Some("lens covered"));
            assert_eq!(alert.site.as_ref().map(|s| s.as_str()), Some("station-1"));
            assert_eq!(alert.location, spec(custodial).location);
        }
    }

    #[actix_rt::test]
    async fn an_empty_detail_is_no_detail() {
        let (cam, seen) = camera(false, WatchDirectory::default());
        cam.send(report("offline", "")).await.unwrap();
        assert_eq!(seen.published.lock().unwrap()[0].detail, None);
    }

    #[actix_rt::test]
    async fn after_a_restart_a_recorded_fault_makes_the_first_ok_news() {
        let (cam, seen) = camera(false, WatchDirectory::default());
        cam.send(RestoreHealth { state: "offline".into() }).await.unwrap();
        assert_eq!(cam.send(GetHealth).await.unwrap(), "offline");
        cam.send(report("ok", "")).await.unwrap();
        assert_eq!(seen.take(), (vec!["ok".to_owned()], vec!["ok".to_owned()]), "the alert is closed");
    }

    #[actix_rt::test]
    async fn a_restored_health_is_taken_only_before_the_first_report_and_only_if_it_is_a_fault() {
        let (cam, _) = camera(false, WatchDirectory::default());
        cam.send(RestoreHealth { state: "ok".into() }).await.unwrap();
        cam.send(RestoreHealth { state: "melted".into() }).await.unwrap();
        assert_eq!(cam.send(GetHealth).await.unwrap(), "starting");
        cam.send(report("ok", "")).await.unwrap();
        cam.send(RestoreHealth { state: "frozen".into() }).await.unwrap();
        assert_eq!(cam.send(GetHealth).await.unwrap(), "ok", "a live report wins over the record");
    }

    /// Stands in for the registry: keeps what a person's actor asks it.
    struct Opener(Arc<Mutex<Vec<FaceSighting>>>);

    impl Actor for Opener {
        type Context = Context<Self>;
    }

    impl Handler<FaceSighting> for Opener {
        type Result = MessageResult<FaceSighting>;

        fn handle(&mut self, msg: FaceSighting, _: &mut Self::Context) -> Self::Result {
            self.0.lock().unwrap().push(msg);
            MessageResult(FaceOutcome::NotOpen)
        }
    }

    #[actix_rt::test]
    async fn a_match_goes_to_the_persons_actor_as_a_sighting_at_this_camera() {
        tokio::time::pause();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let watch = WatchDirectory::default();
        let person = WantedRef {
            person_id: PersonId::parse("p-1").unwrap(),
            name: "A".into(),
            danger: Danger::Low,
            legal_basis: "warrant 1".into(),
        };
        let wanted = WantedSpec { person, expires_at: Utc::now() + chrono::Duration::days(1) };
        let opener = Opener(asked.clone()).start().recipient();
        let addr =
            WantedPerson::new(wanted, WantedConfig::default(), opener, watch.clone(), Outbox::default());
        watch.insert(PersonId::parse("p-1").unwrap(), addr.start());
        let (cam, _) = camera(false, watch);
        let matched = |person: &str| Matched {
            sighting_id: SightingId::new_random(),
            person: PersonId::parse(person).unwrap(),
            score: 0.7,
            at: Utc::now(),
            embedding: Arc::from(vec![0.0f32; 4]),
            evidence: true,
            received: Received::now(),
        };
        cam.send(matched("p-2")).await.unwrap();
        let m = matched("p-1");
        cam.send(m.clone()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        let asked = asked.lock().unwrap();
        assert_eq!(asked.len(), 1, "only the listed person is asked about");
        let s = &asked[0].sighting;
        assert_eq!(
            (s.sighting_id, s.camera.as_str(), s.location),
            (m.sighting_id, "cam-1", spec(false).location)
        );
        assert_eq!((s.score, s.evidence), (0.7, true));
    }
}
