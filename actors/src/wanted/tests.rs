use std::sync::Mutex;

use super::*;
use crate::geo::GeoPoint;
use crate::ids::SightingId;
use crate::outbound::{IncidentRecord, Journal, Sink, Waiter};

/// Stands in for the registry: keeps what it is asked, opens when asked to, and moves the
/// person's incident once one is open.
#[derive(Clone, Default)]
struct Opener {
    asked: Arc<Mutex<Vec<FaceSighting>>>,
    open: Arc<Mutex<Option<IncidentId>>>,
}

impl Actor for Opener {
    type Context = Context<Self>;
}

impl Handler<FaceSighting> for Opener {
    type Result = MessageResult<FaceSighting>;

    fn handle(&mut self, msg: FaceSighting, _: &mut Self::Context) -> Self::Result {
        let opens = msg.open;
        self.asked.lock().unwrap().push(msg);
        let mut open = self.open.lock().unwrap();
        MessageResult(match *open {
            Some(id) => FaceOutcome::Joined(id),
            None if opens => FaceOutcome::Opened(*open.insert(IncidentId::new_random())),
            None => FaceOutcome::NotOpen,
        })
    }
}

/// Keeps the sightings recorded and the reviews published.
#[derive(Clone, Default)]
struct Kept {
    records: Arc<Mutex<Vec<SightingRecord>>>,
    reviews: Arc<Mutex<Vec<Arc<ReviewOut>>>>,
}

impl Journal for Kept {
    fn incident(&self, _: IncidentRecord) -> Result<(), Vec<Waiter>> {
        Ok(())
    }

    fn sighting(&self, record: SightingRecord) {
        self.records.lock().unwrap().push(record);
    }
}

impl Sink for Kept {
    fn take(&self, n: Notify) -> bool {
        if let Notify::Review(r) = n {
            self.reviews.lock().unwrap().push(r);
        }
        true
    }
}

impl Kept {
    fn decisions(&self) -> Vec<(SightingDecision, Option<IncidentId>, bool)> {
        let records = self.records.lock().unwrap();
        records.iter().map(|r| (r.decision, r.incident_id, r.embedding.is_some())).collect()
    }
}

struct Person {
    addr: Addr<WantedPerson>,
    opener: Opener,
    kept: Kept,
    watch: WatchDirectory,
}

fn t0() -> DateTime<Utc> {
    "2024-05-01T10:00:00Z".parse().unwrap()
}

fn person_with(danger: Danger, cfg: WantedConfig, opener: Recipient<FaceSighting>) -> Person {
    let spec = WantedSpec {
        person: WantedRef {
            person_id: PersonId::parse("p-1").unwrap(),
            name: "A. Person".into(),
            danger,
            legal_basis: "warrant 1".into(),
        },
        expires_at: t0() + chrono::Duration::hours(1),
    };
    let kept = Kept::default();
    let outbox = Outbox::default().with_sink("test", kept.clone()).with_journal(Arc::new(kept.clone()));
    let watch = WatchDirectory::default();
    let addr = WantedPerson::new(spec, cfg, opener, watch.clone(), outbox).start();
    watch.insert(PersonId::parse("p-1").unwrap(), addr.clone());
    Person { addr, opener: Opener::default(), kept, watch }
}

fn person(danger: Danger) -> Person {
    let opener = Opener::default();
    let p = person_with(danger, WantedConfig::default(), opener.clone().start().recipient());
    Person { opener, ..p }
}

fn seen(camera: &str, secs: i64, score: f32) -> Seen {
    Seen {
        sighting: SightingRef {
            sighting_id: SightingId::new_random(),
            camera: CameraId::parse(camera).unwrap(),
            at: t0() + chrono::Duration::seconds(secs),
            location: GeoPoint::new(43.25, 76.95).unwrap(),
            score,
            evidence: true,
        },
        embedding: Arc::from(vec![secs as f32; 4]),
        received: Received::now(),
    }
}

/// Lets the person's actor hear back from the registry (paused time: no real wait).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(10)).await;
}

fn asked_to_open(o: &Opener) -> Vec<bool> {
    o.asked.lock().unwrap().iter().map(|a| a.open).collect()
}

#[actix_rt::test]
async fn a_high_danger_match_at_the_auto_threshold_asks_for_an_incident_at_once() {
    tokio::time::pause();
    let p = person(Danger::High);
    p.addr.send(seen("cam-1", 0, 0.6)).await.unwrap();
    settle().await;
    assert_eq!(asked_to_open(&p.opener), [true]);
    let opened = *p.opener.open.lock().unwrap();
    assert!(opened.is_some());
    assert_eq!(p.kept.decisions(), [(SightingDecision::Incident, opened, false)]);
    assert!(p.watch.pending_reviews().is_empty());
}

#[actix_rt::test]
async fn any_other_match_waits_for_a_dispatcher() {
    tokio::time::pause();
    for (danger, score) in [(Danger::High, 0.59), (Danger::Medium, 0.99), (Danger::Low, 0.99)] {
        let p = person(danger);
        p.addr.send(seen("cam-1", 0, score)).await.unwrap();
        settle().await;
        assert_eq!(asked_to_open(&p.opener), [false], "{danger:?} {score}");
        assert_eq!(p.kept.decisions(), [(SightingDecision::Review, None, true)]);
        let pending = p.watch.pending_reviews();
        assert_eq!(pending.len(), 1);
        assert_eq!(p.kept.reviews.lock().unwrap()[0].review_id, pending[0].review_id);
        assert_eq!(p.kept.records.lock().unwrap()[0].review_id, Some(pending[0].review_id));
    }
}

#[actix_rt::test]
async fn a_sighting_while_the_persons_incident_is_open_moves_it_whatever_the_score() {
    tokio::time::pause();
    let p = person(Danger::Low);
    let id = IncidentId::new_random();
    *p.opener.open.lock().unwrap() = Some(id);
    p.addr.send(seen("cam-2", 0, 0.4)).await.unwrap();
    settle().await;
    assert_eq!(p.kept.decisions(), [(SightingDecision::Update, Some(id), false)]);
    assert!(p.watch.pending_reviews().is_empty());
}

#[actix_rt::test]
async fn a_sighting_at_or_after_the_entry_expires_is_ignored() {
    tokio::time::pause();
    let p = person(Danger::High);
    p.addr.send(seen("cam-1", 3600, 0.9)).await.unwrap();
    settle().await;
    assert!(p.opener.asked.lock().unwrap().is_empty());
    assert!(p.addr.send(GetTrajectory).await.unwrap().is_empty());
    assert!(p.kept.decisions().is_empty());
    p.addr.send(seen("cam-1", 3599, 0.9)).await.unwrap();
    settle().await;
    assert_eq!(asked_to_open(&p.opener), [true], "a second before it expires still counts");
}

#[actix_rt::test]
async fn sightings_within_the_review_window_join_one_review_and_a_later_one_starts_another() {
    tokio::time::pause();
    let p = person(Danger::Medium);
    for secs in [0, 200, 500, 801] {
        p.addr.send(seen("cam-1", secs, 0.7)).await.unwrap();
        settle().await;
    }
    let pending = p.watch.pending_reviews();
    let sizes: Vec<usize> = pending.iter().map(|r| r.sightings.len()).collect();
    assert_eq!(sizes, [3, 1], "0, 200 and 500 s join (each within 300 s of the last); 801 s does not");
    assert_eq!(pending[1].opened_at, t0() + chrono::Duration::seconds(801));
}

#[actix_rt::test]
async fn the_trajectory_keeps_the_latest_sightings_oldest_first() {
    tokio::time::pause();
    let opener = Opener::default();
    let cfg = WantedConfig { trajectory_len: 3, ..Default::default() };
    let p = person_with(Danger::Low, cfg, opener.start().recipient());
    for secs in 0..5 {
        p.addr.send(seen("cam-1", secs, 0.5)).await.unwrap();
    }
    let at: Vec<i64> =
        p.addr.send(GetTrajectory).await.unwrap().iter().map(|s| (s.at - t0()).num_seconds()).collect();
    assert_eq!(at, [2, 3, 4]);
}

#[actix_rt::test]
async fn a_rejected_review_gives_back_its_faces_as_negative_examples() {
    tokio::time::pause();
    let p = person(Danger::Medium);
    p.addr.send(seen("cam-1", 0, 0.7)).await.unwrap();
    p.addr.send(seen("cam-2", 10, 0.7)).await.unwrap();
    settle().await;
    let review_id = p.watch.pending_reviews()[0].review_id;
    let decide = Decide { review_id, confirm: false, by: "op-7".into() };
    let d = p.addr.send(decide.clone()).await.unwrap().unwrap();
    assert_eq!(d.review.state, ReviewState::Rejected);
    assert_eq!(d.review.decided_by.as_deref(), Some("op-7"));
    let cams: Vec<&str> = d.negatives.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(cams, ["cam-1", "cam-2"]);
    assert!(p.watch.pending_reviews().is_empty());
    assert_eq!(p.kept.reviews.lock().unwrap().last().unwrap().state, ReviewState::Rejected);
    let rejected = p.kept.decisions().iter().filter(|d| d.0 == SightingDecision::Rejected).count();
    assert_eq!(rejected, 2);
    assert_eq!(asked_to_open(&p.opener), [false, false], "no incident is asked for");
    // Decided once: a second decision finds no review.
    let again = p.addr.send(decide).await.unwrap();
    assert_eq!(again.unwrap_err(), DecideError::NoSuchReview(review_id));
}

#[actix_rt::test]
async fn a_confirmed_review_opens_the_incident_where_the_person_was_seen_last() {
    tokio::time::pause();
    let p = person(Danger::Low);
    let first = seen("cam-1", 0, 0.7);
    let last = seen("cam-2", 30, 0.8);
    p.addr.send(first).await.unwrap();
    p.addr.send(last.clone()).await.unwrap();
    settle().await;
    let review_id = p.watch.pending_reviews()[0].review_id;
    let d = p.addr.send(Decide { review_id, confirm: true, by: "op-7".into() }).await.unwrap().unwrap();
    let opened = *p.opener.open.lock().unwrap();
    assert!(opened.is_some());
    assert_eq!((d.review.state, d.review.incident_id), (ReviewState::Confirmed, opened));
    assert!(d.negatives.is_empty());
    let asked = p.opener.asked.lock().unwrap();
    let ask = asked.last().unwrap();
    assert!(ask.open);
    assert_eq!(ask.sighting, last.sighting);
    assert_eq!(ask.note.as_deref(), Some("match confirmed by op-7"));
    let confirmed: Vec<_> =
        p.kept.decisions().into_iter().filter(|d| d.0 == SightingDecision::Confirmed).collect();
    assert_eq!(confirmed, [(SightingDecision::Confirmed, opened, false); 2]);
    assert!(p.watch.pending_reviews().is_empty());
}

/// A registry that has stopped (kuzet shutting down).
struct Gone;

impl Actor for Gone {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<FaceSighting> for Gone {
    type Result = MessageResult<FaceSighting>;

    fn handle(&mut self, _: FaceSighting, _: &mut Self::Context) -> Self::Result {
        unreachable!("a stopped actor hears nothing")
    }
}

#[actix_rt::test]
async fn with_the_registry_gone_even_an_auto_match_goes_to_a_dispatcher() {
    tokio::time::pause();
    let gone = Gone.start();
    settle().await;
    assert!(!gone.connected());
    let p = person_with(Danger::High, WantedConfig::default(), gone.recipient());
    p.addr.send(seen("cam-1", 0, 0.95)).await.unwrap();
    settle().await;
    assert_eq!(p.watch.pending_reviews().len(), 1);
    assert_eq!(p.kept.decisions(), [(SightingDecision::Review, None, true)]);
    // And a dispatcher who confirms hears that the incident could not be opened.
    let review_id = p.watch.pending_reviews()[0].review_id;
    let d = p.addr.send(Decide { review_id, confirm: true, by: "op-7".into() }).await.unwrap();
    assert!(matches!(d, Err(DecideError::Registry(_))), "{d:?}");
    assert_eq!(p.watch.pending_reviews().len(), 1, "the review still waits");
}

#[actix_rt::test]
async fn a_restored_review_waits_again_and_keeps_the_faces_it_had() {
    tokio::time::pause();
    let p = person(Danger::Low);
    let (a, b) = (seen("cam-1", 0, 0.7), seen("cam-2", 20, 0.7));
    let review_id = ReviewId::new_random();
    let sightings = vec![(a.sighting, Some(a.embedding)), (b.sighting, None)];
    p.addr.send(RestoreReview { review_id, sightings }).await.unwrap();
    let pending = p.watch.pending_reviews();
    assert_eq!((pending.len(), pending[0].review_id, pending[0].opened_at), (1, review_id, t0()));
    let d = p.addr.send(Decide { review_id, confirm: false, by: "op".into() }).await.unwrap().unwrap();
    let cams: Vec<&str> = d.negatives.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(cams, ["cam-1"], "only the face recorded with its embedding");
}

#[actix_rt::test]
async fn an_entry_that_leaves_the_list_leaves_the_directory_and_stops() {
    tokio::time::pause();
    let p = person(Danger::Low);
    p.addr.send(Update(None)).await.unwrap();
    assert!(p.watch.person("p-1").is_none());
    settle().await;
    assert!(!p.addr.connected());
}
