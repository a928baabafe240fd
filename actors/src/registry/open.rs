//! Opening incidents: one open incident per subject. A second alarm at a school joins the
//! school's incident; the same person seen again moves theirs.

use actix::prelude::*;

use crate::button::{OpenIncident, Opened};
use crate::ids::{IncidentId, SiteId};
use crate::incident::{Incident, IncidentSpec, Join, Note, Raiser, Sighted};
use crate::model::IncidentKind;
use crate::outbound::{Received, SiteRef};
use super::Registry;
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
