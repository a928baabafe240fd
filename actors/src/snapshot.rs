//! What an incident looks like from outside: the snapshot published for consoles and
//! integrations, with the buttons that raised it and its timeline of timed hops.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::dispatch::{Assignment, EscalationReason, PendingOffer};
use crate::geo::GeoPoint;
use crate::ids::{AlarmId, ButtonId, CameraId, IncidentId, SightingId, UnitId};
use crate::model::{AlarmKind, IncidentKind, IncidentState, Priority};
pub use crate::subject::{SiteRef, Subject, WantedRef};

/// One line of an incident's timeline. `t_us` counts from the first alarm's arrival, so the
/// latency of every hop of this alert can be read off directly.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    pub t_us: u64,
    pub event: Cow<'static, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<UnitId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub button: Option<ButtonId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A button whose alarm is part of this incident.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Raiser {
    pub button: ButtonId,
    pub alarm_id: AlarmId,
    pub room: Option<String>,
    pub kind: AlarmKind,
    /// The button cancelled this alarm; the incident goes on while others stand.
    #[serde(default)]
    pub withdrawn: bool,
}

/// One sighting on an incident's trajectory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SightingRef {
    pub sighting_id: SightingId,
    pub camera: CameraId,
    pub at: DateTime<Utc>,
    pub location: GeoPoint,
    pub score: f32,
    /// Whether the face crop and frame were saved (an edge camera sends no pictures).
    #[serde(default)]
    pub evidence: bool,
}

/// The incident as published (retained) for consoles and integrations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IncidentSnapshot {
    pub incident_id: IncidentId,
    pub kind: IncidentKind,
    pub priority: Priority,
    pub state: IncidentState,
    pub location: GeoPoint,
    /// Published as `site` and `wanted` (contract v1).
    #[serde(flatten, with = "crate::subject::fields")]
    pub subject: Subject,
    pub raised_by: Vec<Raiser>,
    pub opened_at: DateTime<Utc>,
    pub units: Vec<Assignment>,
    pub offers: Vec<PendingOffer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalated: Option<EscalationReason>,
    pub timeline: Vec<TimelineEntry>,
    /// The wanted person's sightings, oldest first (the incident's location is the latest).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sightings: Vec<SightingRef>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::PersonId;
    use crate::model::{Danger, Progress};

    fn site() -> Subject {
        Subject::Site(SiteRef {
            id: crate::ids::SiteId::parse("school-1").unwrap(),
            name: "School No. 1".into(),
            room: Some("12".into()),
        })
    }

    fn person() -> Subject {
        Subject::Person(WantedRef {
            person_id: PersonId::parse("p-1").unwrap(),
            name: "A. Person".into(),
            danger: Danger::High,
            legal_basis: "warrant 1".into(),
        })
    }

    fn full(subject: Subject) -> IncidentSnapshot {
        let at = "2024-05-01T10:00:00Z".parse().unwrap();
        let location = GeoPoint::new(43.2389, 76.8897).unwrap();
        IncidentSnapshot {
            incident_id: IncidentId::new_random(),
            kind: IncidentKind::SchoolAlarm,
            priority: Priority(1),
            state: IncidentState::Dispatched,
            location,
            subject,
            raised_by: vec![Raiser {
                button: ButtonId::parse("btn-1").unwrap(),
                alarm_id: AlarmId::new_random(),
                room: Some("12".into()),
                kind: AlarmKind::Intruder,
                withdrawn: true,
            }],
            opened_at: at,
            units: vec![Assignment {
                unit: UnitId::parse("u-1").unwrap(),
                progress: Progress::EnRoute,
                distance_m: 200.0,
                eta_s: 23,
                offer_id: Some(crate::ids::OfferId::new_random()),
            }],
            offers: vec![PendingOffer {
                offer_id: crate::ids::OfferId::new_random(),
                unit: UnitId::parse("u-2").unwrap(),
                distance_m: 900.0,
                eta_s: 105,
            }],
            escalated: Some(EscalationReason::NoUnitsLeft),
            timeline: vec![TimelineEntry {
                at,
                t_us: 1_500,
                event: "alarm_received".into(),
                unit: None,
                button: Some(ButtonId::parse("btn-1").unwrap()),
                detail: Some("room 12".into()),
            }],
            sightings: vec![SightingRef {
                sighting_id: SightingId::new_random(),
                camera: CameraId::parse("cam-1").unwrap(),
                at,
                location,
                score: 0.75,
                evidence: true,
            }],
        }
    }

    #[test]
    fn a_snapshot_reads_back_as_it_was_written() {
        for subject in [site(), person()] {
            let snap = full(subject.clone());
            let text = serde_json::to_string(&snap).unwrap();
            let back: IncidentSnapshot = serde_json::from_str(&text).unwrap();
            assert_eq!(back.subject, subject);
            assert_eq!(back.incident_id, snap.incident_id);
            assert_eq!(back.raised_by[0].alarm_id, snap.raised_by[0].alarm_id);
            assert!(back.raised_by[0].withdrawn);
            assert_eq!(back.units, snap.units);
            assert_eq!(back.offers, snap.offers);
            assert_eq!(back.escalated, Some(EscalationReason::NoUnitsLeft));
            assert_eq!(back.timeline[0].t_us, 1_500);
            assert_eq!(back.sightings, snap.sightings);
            // Nothing is lost or renamed on the way: written again, it is the same JSON.
            assert_eq!(serde_json::to_value(&back).unwrap(), serde_json::to_value(&snap).unwrap());
        }
    }

    #[test]
    fn empty_sightings_and_no_escalation_are_left_out_and_read_back_as_empty() {
        let snap = IncidentSnapshot { escalated: None, sightings: Vec::new(), ..full(site()) };
        let v = serde_json::to_value(&snap).unwrap();
        assert!(v.get("escalated").is_none() && v.get("sightings").is_none(), "{v}");
        assert!(v.get("subject").is_none(), "the subject is written as site and wanted: {v}");
        let back: IncidentSnapshot = serde_json::from_value(v).unwrap();
        assert!(back.escalated.is_none() && back.sightings.is_empty());
    }

    /// A record as written before incidents had a subject (and before `withdrawn`,
    /// `evidence` and `offer_id` existed).
    fn old_record(site: &str, wanted: Option<&str>) -> String {
        let wanted = wanted.map(|w| format!(r#","wanted":{w}"#)).unwrap_or_default();
        format!(
            r#"{{"incident_id":"67e55044-10b1-426f-9247-bb680e5fe0c8","kind":"school_alarm",
            "priority":1,"state":"dispatching","location":{{"lat":43.2389,"lon":76.8897}},
            "site":{site}{wanted},
            "raised_by":[{{"button":"btn-1","alarm_id":"9c5b94b1-35ad-49bb-b118-8e8fc24abf80",
                "room":null,"kind":"other"}}],
            "opened_at":"2024-05-01T10:00:00Z",
            "units":[{{"unit":"u-1","progress":"accepted","distance_m":200.0,"eta_s":23}}],
            "offers":[],"timeline":[]}}"#
        )
    }

    #[test]
    fn an_older_record_with_a_site_and_no_wanted_reads_as_a_site() {
        let text = old_record(r#"{"id":"school-1","name":"School No. 1","room":"12"}"#, None);
        let back: IncidentSnapshot = serde_json::from_str(&text).unwrap();
        assert_eq!(back.subject, site());
        assert!(!back.raised_by[0].withdrawn);
        assert_eq!(back.units[0].offer_id, None);
        assert!(back.escalated.is_none() && back.sightings.is_empty());
    }

    #[test]
    fn an_older_record_with_a_null_site_and_a_wanted_person_reads_as_the_person() {
        let wanted = r#"{"person_id":"p-1","name":"A. Person","danger":"high","legal_basis":"warrant 1"}"#;
        let back: IncidentSnapshot = serde_json::from_str(&old_record("null", Some(wanted))).unwrap();
        assert_eq!(back.subject, person());
        assert_eq!(back.subject.key(), person().key());
    }

    #[test]
    fn a_record_with_neither_site_nor_wanted_is_refused() {
        let err = serde_json::from_str::<IncidentSnapshot>(&old_record("null", None)).unwrap_err();
        assert!(err.to_string().contains("site or a wanted person"), "{err}");
    }
}
