//! HTTP parameter parser invariants, over query strings as the handlers read them.

use kuzet_contract::params::{self as p, ParamError, Params};

/// What GET /api/v1/incidents takes, the endpoint with the most parameters.
const INCIDENTS: &[&str] = &["from", "to", "state", "bbox", "near", "radius_m", "limit", "format"];

/// Input: a query string, then optionally a newline and an Accept header.
pub fn check(data: &[u8]) {
    let Ok(input) = std::str::from_utf8(data) else { return };
    let (query, accept) = input.split_once('\n').unwrap_or((input, ""));
    let _ = p::accepts_geojson(accept.split('\n'));
    incidents(query);
    // A path segment and each parser on its own, with any value at all.
    for r in [
        p::incident_id(query).map(drop),
        p::unit_id(query).map(|id| assert_eq!(id, query)),
        p::latitude("lat", query).map(|v| assert!((-90.0..=90.0).contains(&v))),
        p::longitude("lon", query).map(|v| assert!((-180.0..=180.0).contains(&v))),
        p::text("reason", query).map(|()| assert!(kuzet_contract::text::check_text(query).is_ok())),
        p::parse_time("from", query).map(|t| time_reads_back(&t)),
    ] {
        if let Err(e) = r {
            check_error(query, &e);
        }
    }
    let echoed = p::echo(query);
    assert!(echoed.chars().count() <= p::ECHO_CHARS * 10 + 5, "echo {echoed:?}");
}

/// The incidents handler's reading of its query string (src/http/handlers.rs).
fn incidents(query: &str) {
    let params = match Params::parse(query, INCIDENTS) {
        Ok(params) => params,
        Err(e) => return check_error(query, &e),
    };
    let results = [
        params.time("from").map(|t| t.iter().for_each(time_reads_back)),
        params.required_time("to").map(|t| time_reads_back(&t)),
        p::states(params.all("state")).map(|s| {
            if let Some(s) = s {
                assert!(!s.is_empty() && s.windows(2).all(|w| w[0] < w[1]), "{s:?}");
                assert!(s.iter().all(|x| p::STATES.contains(&x.as_str())), "{s:?}");
            }
        }),
        params.one("bbox").and_then(|b| b.map(p::bbox).transpose()).map(|b| {
            if let Some(b) = b {
                assert!(b.min_lon <= b.max_lon && b.min_lat <= b.max_lat, "{b:?}");
                assert!((-180.0..=180.0).contains(&b.min_lon) && (-180.0..=180.0).contains(&b.max_lon));
                assert!((-90.0..=90.0).contains(&b.min_lat) && (-90.0..=90.0).contains(&b.max_lat));
            }
        }),
        params.one("near").and_then(|n| n.map(p::near).transpose()).map(|n| {
            if let Some((lat, lon)) = n {
                assert!((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon));
            }
        }),
        params.one("radius_m").and_then(|r| r.map(p::radius).transpose()).map(|r| {
            assert!(r.is_none_or(|r| (0.0..=p::MAX_RADIUS_M).contains(&r)));
        }),
        params.one("limit").and_then(p::limit).map(|n| assert!((1..=p::MAX_LIMIT).contains(&n))),
        params.format().map(drop),
    ];
    for r in results {
        if let Err(e) = r {
            check_error(query, &e);
        }
    }
}

/// A refused parameter is one the endpoint knows or one the query string named, and the
/// message is a refusal like any other.
fn check_error(query: &str, e: &ParamError) {
    let known = ["query string", "id", "lat", "lon", "reason", "from", "to"];
    assert!(
        known.contains(&e.parameter.as_str())
            || INCIDENTS.contains(&e.parameter.as_str())
            || e.message.starts_with("unknown query parameter"),
        "parameter {:?} for {query:?}",
        e.parameter
    );
    crate::check_refusal(&e.parameter, &e.message);
}

/// A parsed time written as RFC 3339 parses back to the same instant.
fn time_reads_back(t: &chrono::DateTime<chrono::Utc>) {
    let again = p::parse_time("from", &t.to_rfc3339()).expect("a written time parses");
    assert_eq!(&again, t);
}
