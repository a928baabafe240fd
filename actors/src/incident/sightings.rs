//! The wanted person of a face incident seen again.

use super::*;

/// The incident's wanted person seen again: the incident moves to the camera, and the units
/// on it hear where the target is now.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Sighted {
    pub sighting: SightingRef,
    pub received: Received,
}

impl Handler<Sighted> for Incident {
    type Result = ();

    fn handle(&mut self, msg: Sighted, ctx: &mut Self::Context) {
        let s = msg.sighting;
        let last = self.sightings.last();
        // An older sighting (a review confirmed late) does not move the incident back.
        if last.is_some_and(|l| s.at <= l.at) {
            return;
        }
        // The same camera again: the record has every sighting; the incident (and its
        // published snapshot) takes one a minute, so a person standing still does not grow it.
        let moved = last.is_none_or(|l| l.camera != s.camera);
        if !moved && last.is_some_and(|l| s.at - l.at < chrono::Duration::seconds(SAME_CAMERA_EVERY_S)) {
            return;
        }
        let detail = format!("camera {} (score {:.2})", s.camera, s.score);
        self.record_at(msg.received, "sighting_update", None, None, Some(detail));
        if moved {
            self.location = s.location;
            for a in self.dispatch.assigned().iter().filter(|a| a.progress != Progress::Cleared) {
                self.outbox.send(Notify::Unit {
                    unit: a.unit.clone(),
                    incident_id: self.id,
                    update: UnitUpdate::TargetMoved {
                        location: s.location,
                        camera: s.camera.clone(),
                        at: s.at,
                    },
                });
            }
        }
        self.sightings.push(s);
        if self.sightings.len() > MAX_SIGHTINGS {
            self.sightings.remove(0);
        }
        self.publish(ctx);
    }
}
