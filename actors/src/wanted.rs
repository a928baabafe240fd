//! WantedPerson: one per person on the watchlist. Gathers the person's sightings from every
//! camera into one trajectory and applies the policy: a high-danger person matched above the
//! auto threshold opens an incident at once; any other match waits for a dispatcher, with
//! later sightings gathered into the same review; once an incident is open, later sightings
//! move it. Rejected matches come back to the caller as negative examples.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};

use crate::ids::{CameraId, IncidentId, PersonId, ReviewId};
use crate::model::Danger;
use crate::outbound::{Notify, Outbox, Received, ReviewOut, ReviewState, SightingDecision, SightingRecord};
use crate::snapshot::{SightingRef, WantedRef};

/// A watchlist entry as the actors need it.
#[derive(Debug, Clone)]
pub struct WantedSpec {
    pub person: WantedRef,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct WantedConfig {
    /// At or above: an incident at once, for a high-danger person.
    pub auto_threshold: f32,
    /// Sightings this close together join the same review.
    pub review_window: Duration,
    /// Sightings kept per person.
    pub trajectory_len: usize,
}

impl Default for WantedConfig {
    fn default() -> Self {
        Self { auto_threshold: 0.6, review_window: Duration::from_secs(300), trajectory_len: 100 }
    }
}

/// Finds a person's actor, and a review's person; shared with the adapters.
#[derive(Clone, Default)]
pub struct WatchDirectory {
    inner: Arc<RwLock<WatchInner>>,
}

#[derive(Default)]
struct WatchInner {
    people: HashMap<PersonId, Addr<WantedPerson>>,
    reviews: HashMap<ReviewId, Arc<ReviewOut>>,
}

impl WatchDirectory {
    pub fn person(&self, id: &str) -> Option<Addr<WantedPerson>> {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).people.get(id).cloned()
    }

    pub fn insert(&self, id: PersonId, addr: Addr<WantedPerson>) -> Option<Addr<WantedPerson>> {
        self.inner.write().unwrap_or_else(|p| p.into_inner()).people.insert(id, addr)
    }

    pub fn remove(&self, id: &str) -> Option<Addr<WantedPerson>> {
        self.inner.write().unwrap_or_else(|p| p.into_inner()).people.remove(id)
    }

    pub fn len(&self) -> usize {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).people.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reviews waiting for a decision, oldest first.
    pub fn pending_reviews(&self) -> Vec<Arc<ReviewOut>> {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = inner.reviews.values().cloned().collect();
        v.sort_by_key(|r| r.opened_at);
        v
    }

    pub fn review(&self, id: ReviewId) -> Option<Arc<ReviewOut>> {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).reviews.get(&id).cloned()
    }

    fn set_review(&self, r: Arc<ReviewOut>) {
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if r.state == ReviewState::Pending {
            inner.reviews.insert(r.review_id, r);
        } else {
            inner.reviews.remove(&r.review_id);
        }
    }
}

struct Review {
    out: ReviewOut,
    /// The probe embeddings, by sighting, for negative examples.
    probes: Vec<(CameraId, Arc<[f32]>)>,
}

/// A watchlisted person was seen: move their open incident there, or (when `open`) open one.
/// The person's actor asks; the registry answers.
#[derive(Message, Debug, Clone)]
#[rtype(result = "FaceOutcome")]
pub struct FaceSighting {
    pub wanted: WantedRef,
    pub sighting: SightingRef,
    /// Open an incident if none is open for the person.
    pub open: bool,
    /// A timeline line for the incident (who confirmed the match).
    pub note: Option<String>,
    pub received: Received,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaceOutcome {
    Opened(IncidentId),
    Joined(IncidentId),
    /// No incident was open and none was asked for.
    NotOpen,
}

pub struct WantedPerson {
    spec: WantedSpec,
    cfg: WantedConfig,
    trajectory: VecDeque<SightingRef>,
    reviews: Vec<Review>,
    /// Opens or moves the person's incident (the registry).
    opener: Recipient<FaceSighting>,
    watch: WatchDirectory,
    outbox: Outbox,
}

impl WantedPerson {
    pub fn new(
        spec: WantedSpec,
        cfg: WantedConfig,
        opener: Recipient<FaceSighting>,
        watch: WatchDirectory,
        outbox: Outbox,
    ) -> Self {
        Self { spec, cfg, trajectory: VecDeque::new(), reviews: Vec::new(), opener, watch, outbox }
    }

    fn record(
        &self,
        sighting: &SightingRef,
        decision: SightingDecision,
        incident: Option<IncidentId>,
        review: Option<ReviewId>,
    ) {
        self.outbox.record_sighting(SightingRecord {
            person_id: self.spec.person.person_id.clone(),
            sighting: sighting.clone(),
            decision,
            incident_id: incident,
            review_id: review,
            embedding: None,
        });
    }

    fn publish_review(&self, r: &ReviewOut) {
        let r = Arc::new(r.clone());
        self.watch.set_review(r.clone());
        self.outbox.send(Notify::Review(r));
    }

    /// Gathers a sighting that waits for a dispatcher into a review.
    fn hold_for_review(&mut self, sighting: SightingRef, probe: Arc<[f32]>) {
        let window = chrono::Duration::from_std(self.cfg.review_window).unwrap_or(chrono::Duration::MAX);
        let open = self
            .reviews
            .iter()
            .position(|r| r.out.sightings.last().is_some_and(|last| sighting.at - last.at <= window));
        let idx = match open {
            Some(i) => i,
            None => {
                self.reviews.push(Review {
                    out: ReviewOut {
                        review_id: ReviewId::new_random(),
                        person: self.spec.person.clone(),
                        state: ReviewState::Pending,
                        opened_at: sighting.at,
                        sightings: Vec::new(),
                        decided_by: None,
                        decided_at: None,
                        incident_id: None,
                    },
                    probes: Vec::new(),
                });
                self.reviews.len() - 1
            }
        };
        let review_id = self.reviews[idx].out.review_id;
        self.outbox.record_sighting(SightingRecord {
            person_id: self.spec.person.person_id.clone(),
            sighting: sighting.clone(),
            decision: SightingDecision::Review,
            incident_id: None,
            review_id: Some(review_id),
            embedding: Some(probe.clone()),
        });
        let r = &mut self.reviews[idx];
        r.probes.push((sighting.camera.clone(), probe));
        r.out.sightings.push(sighting);
        let out = r.out.clone();
        tracing::info!(person = %self.spec.person.person_id, review_id = %review_id,
            sightings = out.sightings.len(), "face match waits for a dispatcher");
        self.publish_review(&out);
    }
}

impl Actor for WantedPerson {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(256);
    }
}

/// A camera saw this person (above the review threshold, not like a rejected face).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Seen {
    pub sighting: SightingRef,
    pub embedding: Arc<[f32]>,
    pub received: Received,
}

impl Handler<Seen> for WantedPerson {
    type Result = ();

    fn handle(&mut self, msg: Seen, ctx: &mut Self::Context) {
        if msg.sighting.at >= self.spec.expires_at {
            tracing::warn!(person = %self.spec.person.person_id, "sighting of an expired entry ignored");
            return;
        }
        self.trajectory.push_back(msg.sighting.clone());
        while self.trajectory.len() > self.cfg.trajectory_len {
            self.trajectory.pop_front();
        }
        let open = self.spec.person.danger == Danger::High && msg.sighting.score >= self.cfg.auto_threshold;
        let ask = self.opener.send(FaceSighting {
            wanted: self.spec.person.clone(),
            sighting: msg.sighting.clone(),
            open,
            note: None,
            received: msg.received,
        });
        ctx.spawn(ask.into_actor(self).map(move |res, act, _| match res {
            Ok(FaceOutcome::Opened(id)) => {
                act.record(&msg.sighting, SightingDecision::Incident, Some(id), None)
            }
            Ok(FaceOutcome::Joined(id)) => {
                act.record(&msg.sighting, SightingDecision::Update, Some(id), None)
            }
            Ok(FaceOutcome::NotOpen) => act.hold_for_review(msg.sighting, msg.embedding),
            Err(e) => {
                // The registry is gone (shutting down): a dispatcher still gets to see it.
                tracing::error!(error = %e, "registry unreachable; sighting goes to review");
                act.hold_for_review(msg.sighting, msg.embedding);
            }
        }));
    }
}

/// A dispatcher's decision on a review.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Decided, DecideError>")]
pub struct Decide {
    pub review_id: ReviewId,
    pub confirm: bool,
    /// The dispatcher, for the record.
    pub by: String,
}

#[derive(Debug, Clone)]
pub struct Decided {
    pub review: Arc<ReviewOut>,
    /// For a rejection: the faces to keep as negative examples for this person, by camera.
    pub negatives: Vec<(CameraId, Arc<[f32]>)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    #[error("no pending review {0}")]
    NoSuchReview(ReviewId),
    #[error("the incident could not be opened: {0}")]
    Registry(String),
}

impl Handler<Decide> for WantedPerson {
    type Result = ResponseActFuture<Self, Result<Decided, DecideError>>;

    fn handle(&mut self, msg: Decide, _: &mut Self::Context) -> Self::Result {
        let Some(i) = self.reviews.iter().position(|r| r.out.review_id == msg.review_id) else {
            return Box::pin(fut::ready(Err(DecideError::NoSuchReview(msg.review_id))));
        };
        let now = Utc::now();
        if !msg.confirm {
            let mut r = self.reviews.remove(i);
            r.out.state = ReviewState::Rejected;
            r.out.decided_by = Some(msg.by.clone());
            r.out.decided_at = Some(now);
            for s in &r.out.sightings {
                self.record(s, SightingDecision::Rejected, None, Some(r.out.review_id));
            }
            tracing::info!(person = %self.spec.person.person_id, review_id = %msg.review_id, by = %msg.by,
                negatives = r.probes.len(), "face match rejected");
            self.publish_review(&r.out);
            let review = Arc::new(r.out);
            return Box::pin(fut::ready(Ok(Decided { review, negatives: r.probes })));
        }
        // Confirmed: the incident opens where the person was seen last.
        let last = self.reviews[i].out.sightings.last().cloned().expect("a review holds a sighting");
        let ask = self.opener.send(FaceSighting {
            wanted: self.spec.person.clone(),
            sighting: last,
            open: true,
            note: Some(format!("match confirmed by {}", msg.by)),
            received: Received::now(),
        });
        Box::pin(ask.into_actor(self).map(move |res, act, _| {
            let id = match res {
                Ok(FaceOutcome::Opened(id) | FaceOutcome::Joined(id)) => id,
                Ok(FaceOutcome::NotOpen) => return Err(DecideError::Registry("not opened".into())),
                Err(e) => return Err(DecideError::Registry(e.to_string())),
            };
            let Some(i) = act.reviews.iter().position(|r| r.out.review_id == msg.review_id) else {
                return Err(DecideError::NoSuchReview(msg.review_id));
            };
            let mut r = act.reviews.remove(i);
            r.out.state = ReviewState::Confirmed;
            r.out.decided_by = Some(msg.by.clone());
            r.out.decided_at = Some(now);
            r.out.incident_id = Some(id);
            for s in &r.out.sightings {
                act.record(s, SightingDecision::Confirmed, Some(id), Some(r.out.review_id));
            }
            tracing::info!(person = %act.spec.person.person_id, review_id = %msg.review_id, by = %msg.by,
                incident_id = %id, "face match confirmed");
            act.publish_review(&r.out);
            Ok(Decided { review: Arc::new(r.out), negatives: Vec::new() })
        }))
    }
}

/// The person's recent sightings, oldest first.
#[derive(Message)]
#[rtype(result = "Vec<SightingRef>")]
pub struct GetTrajectory;

impl Handler<GetTrajectory> for WantedPerson {
    type Result = MessageResult<GetTrajectory>;

    fn handle(&mut self, _: GetTrajectory, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.trajectory.iter().cloned().collect())
    }
}

/// The entry changed (re-enrolled, new expiry) or left the list.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Update(pub Option<WantedSpec>);

impl Handler<Update> for WantedPerson {
    type Result = ();

    fn handle(&mut self, msg: Update, ctx: &mut Self::Context) {
        match msg.0 {
            Some(spec) => self.spec = spec,
            None => {
                self.watch.remove(self.spec.person.person_id.as_str());
                ctx.stop();
            }
        }
    }
}

/// A review that was waiting when kuzet stopped, as the record holds it.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct RestoreReview {
    pub review_id: ReviewId,
    /// Oldest first, with the face's embedding where it was recorded.
    pub sightings: Vec<(SightingRef, Option<Arc<[f32]>>)>,
}

impl Handler<RestoreReview> for WantedPerson {
    type Result = ();

    fn handle(&mut self, msg: RestoreReview, _: &mut Self::Context) {
        let Some(first) = msg.sightings.first() else {
            return;
        };
        let mut r = Review {
            out: ReviewOut {
                review_id: msg.review_id,
                person: self.spec.person.clone(),
                state: ReviewState::Pending,
                opened_at: first.0.at,
                sightings: Vec::new(),
                decided_by: None,
                decided_at: None,
                incident_id: None,
            },
            probes: Vec::new(),
        };
        for (s, e) in msg.sightings {
            if let Some(e) = e {
                r.probes.push((s.camera.clone(), e));
            }
            r.out.sightings.push(s);
        }
        let out = r.out.clone();
        self.reviews.push(r);
        self.publish_review(&out);
    }
}

#[cfg(test)]
mod tests;
