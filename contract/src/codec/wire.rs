//! What kuzet sends devices, as contract v1 spells it: the offer, the update about an
//! incident a unit holds, the button's acknowledgement. Built from the domain's values at the
//! edge, so a field renamed or added on the wire changes this file, not the actors.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use kuzet_actors::dispatch::RevokeReason;
use kuzet_actors::geo::GeoPoint;
use kuzet_actors::ids::{AlarmId, CameraId, IncidentId, OfferId};
use kuzet_actors::model::{AckState, IncidentKind, Priority};
use kuzet_actors::outbound::{ButtonAck, OfferOut, UnitUpdate};
use kuzet_actors::subject::{SiteRef, WantedRef};
use serde::{Serialize, Serializer};

/// `kuzet/v1/units/{id}/offers`.
#[derive(Serialize)]
pub(crate) struct Offer<'a> {
    offer_id: &'a OfferId,
    incident_id: &'a IncidentId,
    priority: &'a Priority,
    kind: &'a IncidentKind,
    location: &'a GeoPoint,
    /// The school (null for an incident about a person).
    site: Option<&'a SiteRef>,
    summary: &'a str,
    distance_m: f64,
    eta_s: Option<u32>,
    expires_at: &'a DateTime<Utc>,
    /// The road route from the unit to the incident, encoded polyline (precision 5).
    #[serde(rename = "route_polyline", skip_serializing_if = "Option::is_none", serialize_with = "polyline")]
    route: Option<&'a Arc<Vec<GeoPoint>>>,
    /// The watchlisted person of a face incident (the tablet shows their photo).
    #[serde(skip_serializing_if = "Option::is_none")]
    wanted: Option<&'a WantedRef>,
}

impl<'a> From<&'a OfferOut> for Offer<'a> {
    fn from(o: &'a OfferOut) -> Self {
        let OfferOut {
            offer_id,
            incident_id,
            priority,
            kind,
            location,
            subject,
            summary,
            distance_m,
            eta_s,
            expires_at,
            route,
        } = o;
        Self {
            offer_id,
            incident_id,
            priority,
            kind,
            location,
            site: subject.site(),
            summary,
            distance_m: *distance_m,
            eta_s: *eta_s,
            expires_at,
            route: route.as_ref(),
            wanted: subject.person(),
        }
    }
}

fn polyline<S: Serializer>(route: &Option<&Arc<Vec<GeoPoint>>>, s: S) -> Result<S::Ok, S::Error> {
    match route {
        Some(r) => s.serialize_str(&kuzet_actors::geo::encode_polyline(r)),
        None => s.serialize_none(),
    }
}

/// `kuzet/v1/units/{id}/incidents/{incident_id}`.
#[derive(Serialize)]
pub(crate) struct UnitIncident<'a> {
    incident_id: &'a IncidentId,
    #[serde(flatten)]
    update: Update<'a>,
}

#[derive(Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Update<'a> {
    OfferRevoked { offer_id: &'a OfferId, reason: &'static str },
    Cancelled,
    Closed,
    TargetMoved { location: &'a GeoPoint, camera: &'a CameraId, at: &'a DateTime<Utc> },
}

impl<'a> UnitIncident<'a> {
    pub(crate) fn new(incident_id: &'a IncidentId, u: &'a UnitUpdate) -> Self {
        let update = match u {
            UnitUpdate::OfferRevoked { offer_id, reason } => {
                Update::OfferRevoked { offer_id, reason: revoke_reason(*reason) }
            }
            UnitUpdate::Cancelled => Update::Cancelled,
            UnitUpdate::Closed => Update::Closed,
            UnitUpdate::TargetMoved { location, camera, at } => Update::TargetMoved { location, camera, at },
        };
        Self { incident_id, update }
    }
}

fn revoke_reason(r: RevokeReason) -> &'static str {
    match r {
        RevokeReason::Expired => "expired",
        RevokeReason::Cancelled => "cancelled",
        RevokeReason::Closed => "closed",
        RevokeReason::Reassigned => "reassigned",
    }
}

/// `kuzet/v1/buttons/{id}/ack`.
#[derive(Serialize)]
pub(crate) struct Ack<'a> {
    alarm_id: &'a AlarmId,
    incident_id: &'a IncidentId,
    state: &'a AckState,
    #[serde(skip_serializing_if = "Option::is_none")]
    eta_s: Option<u32>,
}

impl<'a> From<&'a ButtonAck> for Ack<'a> {
    fn from(a: &'a ButtonAck) -> Self {
        let ButtonAck { alarm_id, incident_id, state, eta_s } = a;
        Self { alarm_id, incident_id, state, eta_s: *eta_s }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kuzet_actors::ids::PersonId;
    use kuzet_actors::model::Danger;
    use kuzet_actors::subject::Subject;
    use serde_json::{json, Value};

    fn offer(subject: Subject, route: Option<Arc<Vec<GeoPoint>>>) -> Value {
        let o = OfferOut {
            offer_id: OfferId(uuid::Uuid::from_u128(1)),
            incident_id: IncidentId(uuid::Uuid::from_u128(2)),
            priority: Priority(1),
            kind: IncidentKind::WantedPerson,
            location: GeoPoint::new(43.25, 76.9).unwrap(),
            subject,
            summary: "s".into(),
            distance_m: 812.0,
            eta_s: Some(96),
            expires_at: "2026-11-25T10:05:32Z".parse().unwrap(),
            route,
        };
        serde_json::to_value(Offer::from(&o)).unwrap()
    }

    #[test]
    fn an_offer_names_its_subject_as_contract_v1_does() {
        let person = WantedRef {
            person_id: PersonId::parse("wp-1").unwrap(),
            name: "W".into(),
            danger: Danger::High,
            legal_basis: "warrant".into(),
        };
        let v = offer(Subject::Person(person), None);
        assert!(v["site"].is_null() && v.as_object().unwrap().contains_key("site"), "{v}");
        assert_eq!(v["wanted"]["person_id"], "wp-1");
        assert!(v.get("route_polyline").is_none(), "{v}");
        let site = SiteRef {
            id: kuzet_actors::ids::SiteId::parse("school-1").unwrap(),
            name: "S".into(),
            room: None,
        };
        let route =
            Arc::new(vec![GeoPoint::new(38.5, -120.2).unwrap(), GeoPoint::new(40.7, -120.95).unwrap()]);
        let v = offer(Subject::Site(site), Some(route));
        assert_eq!(v["site"], json!({"id": "school-1", "name": "S", "room": null}));
        assert!(v.get("wanted").is_none(), "{v}");
        // The polyline algorithm's own example.
        assert_eq!(v["route_polyline"], "_p~iF~ps|U_ulLnnqC");
        assert_eq!((v["distance_m"].as_f64(), v["eta_s"].as_u64()), (Some(812.0), Some(96)));
    }

    #[test]
    fn a_revoked_offer_and_an_ack_read_as_before() {
        let id = IncidentId(uuid::Uuid::from_u128(2));
        let u = UnitUpdate::OfferRevoked {
            offer_id: OfferId(uuid::Uuid::from_u128(1)),
            reason: RevokeReason::Reassigned,
        };
        let v = serde_json::to_value(UnitIncident::new(&id, &u)).unwrap();
        assert_eq!(v["event"], "offer_revoked");
        assert_eq!(v["reason"], "reassigned");
        assert_eq!(v["incident_id"], id.to_string());
        let a = ButtonAck {
            alarm_id: AlarmId(uuid::Uuid::from_u128(3)),
            incident_id: id,
            state: AckState::Dispatched,
            eta_s: None,
        };
        let v = serde_json::to_value(Ack::from(&a)).unwrap();
        assert_eq!(v["state"], "dispatched");
        assert!(v.get("eta_s").is_none(), "{v}");
    }
}
