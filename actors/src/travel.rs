//! The seam for drive times: the router ranks its straight-line shortlist by travel time
//! when the process has a road network. Implemented outside the domain (`kuzet::roads`).

use crate::geo::GeoPoint;

/// A unit's way to an incident.
#[derive(Debug, Clone, PartialEq)]
pub struct Leg {
    pub time_s: f64,
    pub distance_m: f64,
    /// The points of the route, from the unit to the incident.
    pub route: Vec<GeoPoint>,
}

/// Why an incident's location cannot be routed (it is far from any road).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotRoutable(pub String);

pub trait TravelTimes: Send + Sync + 'static {
    /// The way from each of `from` to `to`; None for an origin that cannot be routed.
    fn legs(&self, from: &[GeoPoint], to: GeoPoint) -> Result<Vec<Option<Leg>>, NotRoutable>;
}
