//! Points on the Earth and straight-line distances.

use serde::{Deserialize, Serialize};

/// Mean Earth radius (IUGG), metres.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeoError {
    #[error("latitude must be a finite number in [-90, 90], got {0}")]
    Latitude(f64),
    #[error("longitude must be a finite number in [-180, 180], got {0}")]
    Longitude(f64),
}

/// WGS 84 latitude and longitude in degrees, known to be finite and in range.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GeoPoint {
    lat: f64,
    lon: f64,
}

impl GeoPoint {
    pub fn new(lat: f64, lon: f64) -> Result<Self, GeoError> {
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return Err(GeoError::Latitude(lat));
        }
        if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
            return Err(GeoError::Longitude(lon));
        }
        Ok(Self { lat, lon })
    }

    pub fn lat(&self) -> f64 {
        self.lat
    }

    pub fn lon(&self) -> f64 {
        self.lon
    }

    /// Great-circle distance in metres (haversine).
    pub fn distance_m(&self, other: &GeoPoint) -> f64 {
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dp = p2 - p1;
        let dl = (other.lon - self.lon).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
    }

    /// The point on the unit sphere. Euclidean (chord) distance between these vectors grows
    /// monotonically with great-circle distance, so a 3-d R-tree over them finds the nearest
    /// point on the Earth exactly, without the distortion of indexing raw degrees.
    pub fn unit_vector(&self) -> [f64; 3] {
        let (lat, lon) = (self.lat.to_radians(), self.lon.to_radians());
        [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
    }

    /// The point `north_m` metres north and `east_m` metres east (small offsets).
    pub fn offset(&self, north_m: f64, east_m: f64) -> GeoPoint {
        let lat = self.lat + (north_m / EARTH_RADIUS_M).to_degrees();
        let lon = self.lon + (east_m / (EARTH_RADIUS_M * self.lat.to_radians().cos())).to_degrees();
        GeoPoint { lat: lat.clamp(-90.0, 90.0), lon: ((lon + 540.0) % 360.0) - 180.0 }
    }
}

/// Encodes points in the Google encoded polyline format (precision 1e-5), which map
/// libraries on tablets decode directly.
pub fn encode_polyline(points: &[GeoPoint]) -> String {
    let mut out = String::with_capacity(points.len() * 8);
    let (mut last_lat, mut last_lon) = (0i64, 0i64);
    for p in points {
        let (lat, lon) = ((p.lat * 1e5).round() as i64, (p.lon * 1e5).round() as i64);
        for delta in [lat - last_lat, lon - last_lon] {
            let mut v = if delta < 0 { !(delta << 1) } else { delta << 1 };
            while v >= 0x20 {
                out.push(char::from((((v & 0x1f) | 0x20) + 63) as u8));
                v >>= 5;
            }
            out.push(char::from((v + 63) as u8));
        }
        (last_lat, last_lon) = (lat, lon);
    }
    out
}

/// Converts a chord length on the unit sphere to a great-circle distance in metres.
pub fn chord_to_metres(chord: f64) -> f64 {
    2.0 * EARTH_RADIUS_M * (chord / 2.0).min(1.0).asin()
}

impl<'de> Deserialize<'de> for GeoPoint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            lat: f64,
            lon: f64,
        }
        let raw = Raw::deserialize(d)?;
        GeoPoint::new(raw.lat, raw.lon).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_out_of_range_and_non_finite() {
        assert!(GeoPoint::new(f64::NAN, 0.0).is_err());
        assert!(GeoPoint::new(0.0, f64::INFINITY).is_err());
        assert!(GeoPoint::new(90.1, 0.0).is_err());
        assert!(GeoPoint::new(0.0, -180.5).is_err());
        assert!(GeoPoint::new(-90.0, 180.0).is_ok());
    }

    #[test]
    fn haversine_matches_a_known_distance() {
        // Almaty to Astana, about 970 km.
        let almaty = GeoPoint::new(43.2389, 76.8897).unwrap();
        let astana = GeoPoint::new(51.1694, 71.4491).unwrap();
        let d = almaty.distance_m(&astana);
        assert!((d - 970_000.0).abs() < 10_000.0, "{d}");
    }

    #[test]
    fn encodes_the_reference_polyline() {
        // The example of Google's format documentation.
        let pts =
            [(38.5, -120.2), (40.7, -120.95), (43.252, -126.453)].map(|(a, b)| GeoPoint::new(a, b).unwrap());
        assert_eq!(encode_polyline(&pts), "_p~iF~ps|U_ulLnnqC_mqNvxq`@");
    }

    #[test]
    fn chord_distance_agrees_with_haversine() {
        let a = GeoPoint::new(60.17, 24.94).unwrap();
        let b = a.offset(1200.0, -700.0);
        let (va, vb) = (a.unit_vector(), b.unit_vector());
        let chord = ((va[0] - vb[0]).powi(2) + (va[1] - vb[1]).powi(2) + (va[2] - vb[2]).powi(2)).sqrt();
        assert!((chord_to_metres(chord) - a.distance_m(&b)).abs() < 0.01);
        assert!((a.distance_m(&b) - (1200f64.powi(2) + 700f64.powi(2)).sqrt()).abs() < 5.0);
    }
}
