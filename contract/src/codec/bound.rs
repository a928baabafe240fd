//! Keeps what kuzet publishes under the broker's packet limit however long an incident runs:
//! a snapshot carries its first timeline entry (the alarm) and the latest ones, a review its
//! first sighting and the latest ones, with counts of what was left out. Only the published
//! JSON is cut; the record keeps everything (`GET /api/v1/incidents/{id}/timeline`).

use std::fmt::Display;

use kuzet_actors::incident::IncidentSnapshot;
use kuzet_actors::outbound::ReviewOut;
use serde::{Serialize, Serializer};

/// Timeline entries a published snapshot carries: the first (the alarm) and the latest 99. A
/// school alarm from raise to close, with a few rounds of offers, takes 15 to 60, so an
/// ordinary incident goes out whole; a person seen every minute for days would not.
pub const MAX_TIMELINE: usize = 100;
/// Alarms a published snapshot lists: one per raise, so a button pressed again and again
/// (each press a new alarm) would otherwise grow it without end. A school has a few buttons.
pub const MAX_RAISERS: usize = 50;
/// Sightings a published review carries: the first and the latest 19. Enough to show the
/// best face beside the enrolment picture; a dispatcher decides on a handful.
pub const MAX_REVIEW_SIGHTINGS: usize = 20;
/// No payload kuzet publishes is larger. The broker refuses packets over its limit (256 KiB in
/// the shipped configs: `broker.max_payload_bytes`, `max_packet_size` in mosquitto.conf) and
/// drops the connection that sent one; a quarter of it leaves room for the topic and headers,
/// and for a broker configured tighter. Devices' own payloads are capped far lower
/// (`mqtt.max_payload_bytes`, 16 KiB). A bounded snapshot is some 30 KiB at most in practice.
pub const MAX_PUBLISH_BYTES: usize = 64 * 1024;

/// The first item and the latest `tail`, serialised as one array.
struct Window<'a, T> {
    items: &'a [T],
    tail: usize,
}

impl<T> Window<'_, T> {
    fn omitted(&self) -> usize {
        self.items.len().saturating_sub(1 + self.tail)
    }

    /// `(total, omitted)` when something was left out; absent otherwise, so a small payload
    /// is exactly what it was before these fields existed.
    fn counts(&self) -> (Option<usize>, Option<usize>) {
        match self.omitted() {
            0 => (None, None),
            n => (Some(self.items.len()), Some(n)),
        }
    }
}

impl<T: Serialize> Serialize for Window<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.omitted() == 0 {
            return s.collect_seq(self.items);
        }
        let tail = &self.items[self.items.len() - self.tail..];
        s.collect_seq(self.items[..1].iter().chain(tail))
    }
}

/// How many of the latest items each list keeps beside its first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tails {
    timeline: usize,
    raised_by: usize,
    sightings: usize,
}

impl Tails {
    fn halve(self) -> Self {
        Self { timeline: self.timeline / 2, raised_by: self.raised_by / 2, sightings: self.sightings / 2 }
    }

    fn none_left(&self) -> bool {
        *self == Self { timeline: 0, raised_by: 0, sightings: 0 }
    }
}

/// An incident snapshot as published: every field of `IncidentSnapshot`, in its order, with
/// the long lists cut down to windows.
#[derive(Serialize)]
pub(super) struct SnapshotView<'a> {
    incident_id: &'a kuzet_actors::ids::IncidentId,
    kind: &'a kuzet_actors::model::IncidentKind,
    priority: &'a kuzet_actors::model::Priority,
    state: &'a kuzet_actors::model::IncidentState,
    location: &'a kuzet_actors::geo::GeoPoint,
    site: Option<&'a kuzet_actors::subject::SiteRef>,
    raised_by: Window<'a, kuzet_actors::incident::Raiser>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raised_by_total: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raised_by_omitted: Option<usize>,
    opened_at: &'a chrono::DateTime<chrono::Utc>,
    units: &'a [kuzet_actors::dispatch::Assignment],
    offers: &'a [kuzet_actors::dispatch::PendingOffer],
    #[serde(skip_serializing_if = "none")]
    escalated: &'a Option<kuzet_actors::dispatch::EscalationReason>,
    timeline: Window<'a, kuzet_actors::incident::TimelineEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeline_total: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeline_omitted: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wanted: Option<&'a kuzet_actors::subject::WantedRef>,
    #[serde(skip_serializing_if = "empty")]
    sightings: Window<'a, kuzet_actors::incident::SightingRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sightings_total: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sightings_omitted: Option<usize>,
}

fn empty<T>(w: &Window<'_, T>) -> bool {
    w.items.is_empty()
}

fn none<T>(o: &&Option<T>) -> bool {
    o.is_none()
}

impl<'a> SnapshotView<'a> {
    /// The published form's first try: the bounds above; the actor already keeps only the
    /// newest 50 sightings, so those go out whole.
    pub(super) fn tails(s: &IncidentSnapshot) -> Tails {
        Tails { timeline: MAX_TIMELINE - 1, raised_by: MAX_RAISERS - 1, sightings: s.sightings.len() }
    }

    pub(super) fn new(s: &'a IncidentSnapshot, tails: Tails) -> Self {
        // Named one by one, so a field added to the snapshot fails to compile here rather
        // than silently going missing from what devices get.
        let IncidentSnapshot {
            incident_id,
            kind,
            priority,
            state,
            location,
            subject,
            raised_by,
            opened_at,
            units,
            offers,
            escalated,
            timeline,
            sightings,
        } = s;
        // Contract v1 names the subject by its fields: `site` (null when none), `wanted`.
        let (site, wanted) = (subject.site(), subject.person());
        let raised_by = Window { items: raised_by, tail: tails.raised_by };
        let timeline = Window { items: timeline, tail: tails.timeline };
        let sightings = Window { items: sightings, tail: tails.sightings };
        let (raised_by_total, raised_by_omitted) = raised_by.counts();
        let (timeline_total, timeline_omitted) = timeline.counts();
        let (sightings_total, sightings_omitted) = sightings.counts();
        Self {
            incident_id,
            kind,
            priority,
            state,
            location,
            site,
            raised_by,
            raised_by_total,
            raised_by_omitted,
            opened_at,
            units,
            offers,
            escalated,
            timeline,
            timeline_total,
            timeline_omitted,
            wanted,
            sightings,
            sightings_total,
            sightings_omitted,
        }
    }
}

/// A face-match review as published: its first sighting and the latest ones.
#[derive(Serialize)]
struct ReviewView<'a> {
    review_id: &'a kuzet_actors::ids::ReviewId,
    person: &'a kuzet_actors::incident::WantedRef,
    state: &'a kuzet_actors::outbound::ReviewState,
    opened_at: &'a chrono::DateTime<chrono::Utc>,
    sightings: Window<'a, kuzet_actors::incident::SightingRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sightings_total: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sightings_omitted: Option<usize>,
    #[serde(skip_serializing_if = "none")]
    decided_by: &'a Option<String>,
    #[serde(skip_serializing_if = "none")]
    decided_at: &'a Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip_serializing_if = "none")]
    incident_id: &'a Option<kuzet_actors::ids::IncidentId>,
}

impl<'a> ReviewView<'a> {
    fn new(r: &'a ReviewOut, tail: usize) -> Self {
        let ReviewOut { review_id, person, state, opened_at, sightings, decided_by, decided_at, incident_id } =
            r;
        let sightings = Window { items: sightings, tail };
        let (sightings_total, sightings_omitted) = sightings.counts();
        Self {
            review_id,
            person,
            state,
            opened_at,
            sightings,
            sightings_total,
            sightings_omitted,
            decided_by,
            decided_at,
            incident_id,
        }
    }
}

/// Encodes with `tails`, then, only if that is over `MAX_PUBLISH_BYTES`, again with every
/// list halved until it fits; down to each list's first item, and past that it is an error:
/// nothing is published rather than something the broker would refuse.
pub(super) fn fit(
    what: &str,
    id: &dyn Display,
    mut tails: Tails,
    enc: impl Fn(Tails) -> serde_json::Result<Vec<u8>>,
) -> serde_json::Result<Vec<u8>> {
    let mut payload = enc(tails)?;
    while payload.len() > MAX_PUBLISH_BYTES {
        if tails.none_left() {
            tracing::error!(%id, bytes = payload.len(), limit = MAX_PUBLISH_BYTES, "{what} too large to publish even cut to its first entries");
            return Err(serde::ser::Error::custom(format!(
                "{what} {id} is {} bytes with its lists cut to their first entries, over {MAX_PUBLISH_BYTES}",
                payload.len()
            )));
        }
        tails = tails.halve();
        if tails.none_left() {
            tracing::error!(%id, limit = MAX_PUBLISH_BYTES, "{what} cut to the first entry of its lists to stay publishable");
        } else {
            tracing::warn!(%id, bytes = payload.len(), ?tails, "{what} over the publish budget, cut further");
        }
        payload = enc(tails)?;
    }
    Ok(payload)
}

/// A snapshot's published JSON, bounded.
pub(super) fn snapshot(s: &IncidentSnapshot) -> serde_json::Result<Vec<u8>> {
    fit("incident snapshot", &s.incident_id, SnapshotView::tails(s), |t| {
        serde_json::to_vec(&SnapshotView::new(s, t))
    })
}

/// A review's published JSON, bounded.
pub(super) fn review(r: &ReviewOut) -> serde_json::Result<Vec<u8>> {
    let tails = Tails { timeline: 0, raised_by: 0, sightings: MAX_REVIEW_SIGHTINGS - 1 };
    fit("review", &r.review_id, tails, |t| serde_json::to_vec(&ReviewView::new(r, t.sightings)))
}
