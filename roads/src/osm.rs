//! Reading an OpenStreetMap extract (`.osm.pbf`): which ways a car may drive, in which
//! direction, and how fast.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context as _;
use osmpbf::{Element, ElementReader};

/// Which way traffic may flow along a way's node order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oneway {
    Forward,
    Backward,
    Both,
}

impl Oneway {
    pub fn as_str(&self) -> &'static str {
        match self {
            Oneway::Forward => "forward",
            Oneway::Backward => "backward",
            Oneway::Both => "both",
        }
    }
}

/// A drivable way.
#[derive(Debug, Clone, PartialEq)]
pub struct Way {
    pub id: i64,
    pub highway: String,
    pub oneway: Oneway,
    pub speed_kmh: f64,
    pub nodes: Vec<i64>,
}

/// The drivable ways of an extract and the coordinates of their nodes.
#[derive(Debug, Default)]
pub struct Extract {
    pub ways: Vec<Way>,
    /// (lat, lon) by OSM node id, for the nodes the ways use.
    pub nodes: HashMap<i64, (f64, f64)>,
}

/// Speed in km/h by highway class when a way has no usable `maxspeed`: urban speeds as
/// driven, not limits (Helsinki's defaults: 50 in town, 80 to 100 on arterials and motorways).
pub fn default_speed_kmh(highway: &str) -> Option<f64> {
    Some(match highway {
        "motorway" => 100.0,
        "trunk" => 80.0,
        "primary" => 60.0,
        "secondary" => 50.0,
        "tertiary" => 40.0,
        "unclassified" | "residential" | "road" => 30.0,
        "motorway_link" => 60.0,
        "trunk_link" | "primary_link" => 40.0,
        "secondary_link" | "tertiary_link" => 30.0,
        "living_street" => 10.0,
        "service" => 15.0,
        _ => return None,
    })
}

/// A `maxspeed` value in km/h: "50", "50 km/h", "30 mph"; anything else (zones like
/// "FI:urban", "none", "signals") yields None and the class default applies.
pub fn parse_maxspeed(raw: &str) -> Option<f64> {
    let raw = raw.trim();
    let (number, factor) = match raw.strip_suffix("mph") {
        Some(n) => (n.trim(), 1.609_344),
        None => (raw.strip_suffix("km/h").unwrap_or(raw).trim(), 1.0),
    };
    let v: f64 = number.parse().ok()?;
    (v.is_finite() && v > 0.0 && v <= 200.0).then_some(v * factor)
}

/// Decides whether a way with these tags is drivable by car, and how.
pub fn classify(tags: &HashMap<&str, &str>) -> Option<(String, Oneway, f64)> {
    let highway = *tags.get("highway")?;
    let default = default_speed_kmh(highway)?;
    let denied = |k: &str| tags.get(k).is_some_and(|v| matches!(*v, "no" | "private"));
    if tags.get("area") == Some(&"yes") || denied("access") || denied("motor_vehicle") || denied("motorcar") {
        return None;
    }
    // A car-specific oneway tag wins over the general one.
    let oneway_tag =
        ["oneway:motorcar", "oneway:motor_vehicle", "oneway"].iter().find_map(|k| tags.get(k).copied());
    let oneway = match oneway_tag {
        Some("yes" | "true" | "1") => Oneway::Forward,
        Some("-1" | "reverse") => Oneway::Backward,
        Some("no" | "false" | "0") => Oneway::Both,
        _ if matches!(tags.get("junction").copied(), Some("roundabout" | "circular")) => Oneway::Forward,
        _ if matches!(highway, "motorway" | "motorway_link") => Oneway::Forward,
        _ => Oneway::Both,
    };
    let speed =
        tags.get("maxspeed").and_then(|m| parse_maxspeed(m)).map(|m| m.min(default * 1.5)).unwrap_or(default);
    Some((highway.to_owned(), oneway, speed))
}

/// Reads the drivable ways and their nodes' coordinates.
pub fn read(path: &Path) -> anyhow::Result<Extract> {
    let reader = ElementReader::from_path(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut all_nodes: HashMap<i64, (f64, f64)> = HashMap::new();
    let mut ways = Vec::new();
    reader
        .for_each(|element| match element {
            Element::DenseNode(n) => {
                all_nodes.insert(n.id(), (n.lat(), n.lon()));
            }
            Element::Node(n) => {
                all_nodes.insert(n.id(), (n.lat(), n.lon()));
            }
            Element::Way(w) => {
                let tags: HashMap<&str, &str> = w.tags().collect();
                if let Some((highway, oneway, speed_kmh)) = classify(&tags) {
                    let nodes: Vec<i64> = w.refs().collect();
                    if nodes.len() >= 2 {
                        ways.push(Way { id: w.id(), highway, oneway, speed_kmh, nodes });
                    }
                }
            }
            Element::Relation(_) => {}
        })
        .with_context(|| format!("cannot read {}", path.display()))?;
    // Keep only the nodes roads use; an extract may cut a way, leaving nodes without coordinates.
    let mut nodes = HashMap::new();
    for w in &ways {
        for n in &w.nodes {
            if let Some(c) = all_nodes.get(n) {
                nodes.insert(*n, *c);
            }
        }
    }
    Ok(Extract { ways, nodes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn drivable_classes_and_exclusions() {
        assert!(classify(&tags(&[("highway", "residential")])).is_some());
        assert!(classify(&tags(&[("highway", "footway")])).is_none());
        assert!(classify(&tags(&[("highway", "cycleway")])).is_none());
        assert!(classify(&tags(&[("highway", "service"), ("access", "private")])).is_none());
        assert!(classify(&tags(&[("highway", "primary"), ("motor_vehicle", "no")])).is_none());
        assert!(classify(&tags(&[("highway", "pedestrian"), ("area", "yes")])).is_none());
        assert!(classify(&tags(&[("building", "yes")])).is_none());
    }

    #[test]
    fn one_way_rules() {
        let ow = |t: &[(&'static str, &'static str)]| classify(&tags(t)).unwrap().1;
        assert_eq!(ow(&[("highway", "residential")]), Oneway::Both);
        assert_eq!(ow(&[("highway", "residential"), ("oneway", "yes")]), Oneway::Forward);
        assert_eq!(ow(&[("highway", "residential"), ("oneway", "-1")]), Oneway::Backward);
        assert_eq!(ow(&[("highway", "primary"), ("junction", "roundabout")]), Oneway::Forward);
        assert_eq!(ow(&[("highway", "motorway")]), Oneway::Forward);
        assert_eq!(ow(&[("highway", "motorway"), ("oneway", "no")]), Oneway::Both);
        assert_eq!(ow(&[("highway", "primary"), ("oneway:motor_vehicle", "yes")]), Oneway::Forward);
        assert_eq!(ow(&[("highway", "primary"), ("oneway", "yes"), ("oneway:motorcar", "no")]), Oneway::Both);
    }

    #[test]
    fn speeds_from_maxspeed_or_class() {
        assert_eq!(parse_maxspeed("50"), Some(50.0));
        assert_eq!(parse_maxspeed("40 km/h"), Some(40.0));
        assert!((parse_maxspeed("30 mph").unwrap() - 48.28).abs() < 0.01);
        assert_eq!(parse_maxspeed("FI:urban"), None);
        assert_eq!(parse_maxspeed("none"), None);
        assert_eq!(parse_maxspeed("-5"), None);
        let speed = |t: &[(&'static str, &'static str)]| classify(&tags(t)).unwrap().2;
        assert_eq!(speed(&[("highway", "residential"), ("maxspeed", "40")]), 40.0);
        assert_eq!(speed(&[("highway", "residential"), ("maxspeed", "FI:urban")]), 30.0);
        assert_eq!(speed(&[("highway", "primary")]), 60.0);
    }
}
