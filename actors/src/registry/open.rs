//! Opening incidents: one open incident per subject. A second alarm at a school joins the
//! school's incident; the same person seen again moves theirs.

use actix::prelude::*;

use super::Registry;
use crate::button::{OpenIncident, Opened};
use crate::ids::{IncidentId, SiteId};
use crate::incident::{Incident, IncidentSpec, Join, Note, Raiser, Sighted};
use crate::model::IncidentKind;
use crate::outbound::{Received, SiteRef};
use crate::subject::{Subject, SubjectKey};
use crate::wanted::{FaceOutcome, FaceSighting};

impl Registry {
    /// Opens an incident at `site`, or joins the open one there.
    pub(crate) fn open_at(
        &mut self,
        site_id: SiteId,
        raiser: Raiser,
        received: Received,
        id: Option<IncidentId>,
        over_limit: bool,
        ctx: &mut Context<Self>,
    ) -> Opened {
        if let Some((incident_id, addr)) = self.open_about(&SubjectKey::Site(site_id.clone())) {
            addr.do_send(Join { raiser, received, over_limit });
            return Opened { incident_id, addr, joined: true };
        }
        let (location, site) = match self.sites.get(&site_id) {
            Some(s) => {
                (s.location, SiteRef { id: site_id.clone(), name: s.name.clone(), room: raiser.room.clone() })
            }
            None => unreachable!("buttons are only spawned for known sites"),
        };
        let kind = IncidentKind::SchoolAlarm;
        let spec = IncidentSpec {
            id: id.unwrap_or_else(IncidentId::new_random),
            kind,
            plan: self.plan(kind),
            location,
            subject: Subject::Site(site),
            raiser: Some(raiser),
            sighting: None,
            received,
        };
        let incident_id = spec.id;
        let addr =
            Incident::new(spec, self.router.clone(), self.outbox.clone(), ctx.address().recipient()).start();
        self.keep(SubjectKey::Site(site_id), incident_id, addr.clone());
        Opened { incident_id, addr, joined: false }
    }
}

impl Handler<OpenIncident> for Registry {
    type Result = MessageResult<OpenIncident>;

    fn handle(&mut self, msg: OpenIncident, ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.open_at(msg.site, msg.raiser, msg.received, None, msg.over_limit, ctx))
    }
}

impl Handler<FaceSighting> for Registry {
    type Result = MessageResult<FaceSighting>;

    fn handle(&mut self, msg: FaceSighting, ctx: &mut Self::Context) -> Self::Result {
        let note = |addr: &Addr<Incident>| {
            if let Some(n) = &msg.note {
                addr.do_send(Note { event: "match_confirmed", detail: n.clone() });
            }
        };
        let person = msg.wanted.person_id.clone();
        if let Some((id, addr)) = self.open_about(&SubjectKey::Person(person.clone())) {
            addr.do_send(Sighted { sighting: msg.sighting, received: msg.received });
            note(&addr);
            return MessageResult(FaceOutcome::Joined(id));
        }
        if !msg.open {
            return MessageResult(FaceOutcome::NotOpen);
        }
        let kind = IncidentKind::WantedPerson;
        let spec = IncidentSpec {
            id: IncidentId::new_random(),
            kind,
            plan: self.plan(kind),
            location: msg.sighting.location,
            subject: Subject::Person(msg.wanted),
            raiser: None,
            sighting: Some(msg.sighting),
            received: msg.received,
        };
        let id = spec.id;
        let addr =
            Incident::new(spec, self.router.clone(), self.outbox.clone(), ctx.address().recipient()).start();
        note(&addr);
        tracing::info!(incident_id = %id, person = %person, "face incident opened");
        self.keep(SubjectKey::Person(person), id, addr);
        MessageResult(FaceOutcome::Opened(id))
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};

    use crate::geo::GeoPoint;
    use crate::ids::{CameraId, PersonId, SightingId};
    use crate::incident::{Cancel, GetSnapshot};
    use crate::model::{Danger, IncidentKind};
    use crate::outbound::Received;
    use crate::registry::tests::{open_at, school, settle, start};
    use crate::registry::{IncidentAddr, ListIncidents};
    use crate::snapshot::{SightingRef, WantedRef};
    use crate::subject::Subject;
    use crate::wanted::{FaceOutcome, FaceSighting};

    #[actix_rt::test]
    async fn a_second_alarm_at_a_site_joins_its_open_incident() {
        tokio::time::pause();
        let (registry, _, _) = start();
        let first = registry.send(open_at("school-1", "btn-1")).await.unwrap();
        let second = registry.send(open_at("school-1", "btn-2")).await.unwrap();
        assert_eq!((first.joined, second.joined), (false, true));
        assert_eq!(second.incident_id, first.incident_id);
        let snap = first.addr.send(GetSnapshot).await.unwrap();
        let raisers: Vec<&str> = snap.raised_by.iter().map(|r| r.button.as_str()).collect();
        assert_eq!(raisers, ["btn-1", "btn-2"]);
        let Subject::Site(site) = &snap.subject else { panic!("a site incident") };
        assert_eq!((site.id.as_str(), site.room.as_deref()), ("school-1", Some("room of btn-1")));
        assert_eq!((snap.kind, snap.location), (IncidentKind::SchoolAlarm, school(1)));
    }

    #[actix_rt::test]
    async fn an_alarm_at_another_site_opens_an_incident_of_its_own() {
        tokio::time::pause();
        let (registry, _, _) = start();
        let one = registry.send(open_at("school-1", "btn-1")).await.unwrap();
        let two = registry.send(open_at("school-2", "btn-3")).await.unwrap();
        assert!(!two.joined && two.incident_id != one.incident_id);
        assert_eq!(registry.send(ListIncidents).await.unwrap().len(), 2);
    }

    #[actix_rt::test]
    async fn after_the_sites_incident_is_cancelled_a_new_alarm_opens_a_new_one() {
        tokio::time::pause();
        let (registry, _, _) = start();
        let msg = open_at("school-1", "btn-1");
        let (by, alarm_id) = (msg.raiser.button.clone(), msg.raiser.alarm_id);
        let first = registry.send(msg).await.unwrap();
        first.addr.send(Cancel { by, alarm_id, received: Received::now() }).await.unwrap();
        settle().await;
        let next = registry.send(open_at("school-1", "btn-2")).await.unwrap();
        assert!(!next.joined && next.incident_id != first.incident_id);
    }

    fn wanted(id: &str) -> WantedRef {
        WantedRef {
            person_id: PersonId::parse(id).unwrap(),
            name: "A. Person".into(),
            danger: Danger::High,
            legal_basis: "warrant 1".into(),
        }
    }

    fn sighted(person: &str, camera: &str, secs: i64, north_m: f64, open: bool) -> FaceSighting {
        FaceSighting {
            wanted: wanted(person),
            sighting: SightingRef {
                sighting_id: SightingId::new_random(),
                camera: CameraId::parse(camera).unwrap(),
                at: Utc::now() + Duration::seconds(secs),
                location: GeoPoint::new(43.25, 76.95).unwrap().offset(north_m, 0.0),
                score: 0.8,
                evidence: true,
            },
            open,
            note: None,
            received: Received::now(),
        }
    }

    #[actix_rt::test]
    async fn a_sighting_with_nothing_open_opens_an_incident_only_when_asked() {
        tokio::time::pause();
        let (registry, _, _) = start();
        let outcome = registry.send(sighted("p-1", "cam-1", 0, 0.0, false)).await.unwrap();
        assert_eq!(outcome, FaceOutcome::NotOpen);
        assert!(registry.send(ListIncidents).await.unwrap().is_empty());
        let FaceOutcome::Opened(_) = registry.send(sighted("p-1", "cam-1", 1, 0.0, true)).await.unwrap()
        else {
            panic!("opened")
        };
        let open = registry.send(ListIncidents).await.unwrap();
        assert_eq!((open.len(), open[0].kind), (1, IncidentKind::WantedPerson));
        assert_eq!(open[0].subject, Subject::Person(wanted("p-1")));
    }

    #[actix_rt::test]
    async fn a_person_seen_again_moves_their_open_incident_and_another_person_gets_their_own() {
        tokio::time::pause();
        let (registry, _, _) = start();
        let FaceOutcome::Opened(id) = registry.send(sighted("p-1", "cam-1", 0, 0.0, true)).await.unwrap()
        else {
            panic!("opened")
        };
        let later = sighted("p-1", "cam-2", 30, 800.0, true);
        let moved_to = later.sighting.location;
        assert_eq!(registry.send(later).await.unwrap(), FaceOutcome::Joined(id));
        settle().await;
        let addr = registry.send(IncidentAddr(id)).await.unwrap().expect("still open");
        let snap = addr.send(GetSnapshot).await.unwrap();
        assert_eq!(snap.location, moved_to);
        assert_eq!(snap.sightings.len(), 2);
        let other = registry.send(sighted("p-2", "cam-1", 0, 0.0, true)).await.unwrap();
        assert!(matches!(other, FaceOutcome::Opened(o) if o != id), "{other:?}");
    }

    #[actix_rt::test]
    async fn a_confirmed_match_is_noted_on_the_incident_it_opens_or_moves() {
        tokio::time::pause();
        let (registry, _, _) = start();
        let confirm = |secs, camera| FaceSighting {
            note: Some("match confirmed by op-7".into()),
            ..sighted("p-1", camera, secs, 0.0, true)
        };
        let FaceOutcome::Opened(id) = registry.send(confirm(0, "cam-1")).await.unwrap() else {
            panic!("opened")
        };
        assert_eq!(registry.send(confirm(30, "cam-2")).await.unwrap(), FaceOutcome::Joined(id));
        settle().await;
        let open = registry.send(ListIncidents).await.unwrap();
        let notes = open[0].timeline.iter().filter(|e| e.event == "match_confirmed").count();
        assert_eq!(notes, 2);
    }
}
