use super::*;

fn parameter(e: ParamError) -> String {
    e.parameter
}

#[test]
fn times_with_a_decoded_plus_are_read_back() {
    let t = parse_time("from", "2026-11-25T21:40:00 05:00").unwrap();
    assert_eq!(t, parse_time("from", "2026-11-25T16:40:00Z").unwrap());
    assert_eq!(parameter(parse_time("from", "yesterday").unwrap_err()), "from");
    assert_eq!(parameter(parse_time("to", "2026-11-25 21:40").unwrap_err()), "to");
    // No panic on a multi-byte character where the offset would be.
    assert!(parse_time("from", "2026-11-25T21:40:0\u{e9} 05:00").is_err());
    assert!(parse_time("from", "2026-11-25T21:40:00\u{e9}05:00").is_err());
}

#[test]
fn coordinates_must_be_finite_and_in_range() {
    for bad in ["NaN", "inf", "-infinity", "91", "", "1e400"] {
        assert!(latitude("lat", bad).is_err(), "{bad}");
    }
    assert!(longitude("lon", "180.0001").is_err());
    assert_eq!(longitude("lon", " -180 ").unwrap(), -180.0);
}

#[test]
fn bbox_order_and_count() {
    assert!(bbox("1,2,3,4").is_ok());
    assert!(bbox("3,2,1,4").is_err());
    assert!(bbox("1,4,3,2").is_err());
    assert!(bbox("1,2,3").is_err());
    assert!(bbox("1,2,3,4,5").is_err());
}

#[test]
fn states_expand_open_and_closed() {
    let s = states(["open", "closed"].into_iter()).unwrap().unwrap();
    assert_eq!(s.len(), STATES.len());
    let s = states(["closed,en_route"].into_iter()).unwrap().unwrap();
    assert_eq!(s, vec!["cancelled", "closed", "en_route"]);
    assert!(states(std::iter::empty()).unwrap().is_none());
    assert!(states(["closing"].into_iter()).is_err());
    assert!(states(["open,"].into_iter()).is_err());
}

#[test]
fn text_with_control_characters_is_refused_by_name() {
    assert!(text("reason", "caller confirmed a drill").is_ok());
    let e = text("reason", "drill\0").unwrap_err();
    assert_eq!(e.to_string(), "reason: holds a control character (U+0000 at character 5)");
    assert_eq!(parameter(text("name", "a\u{2028}b").unwrap_err()), "name");
}

#[test]
fn limits() {
    assert_eq!(limit(None).unwrap(), DEFAULT_LIMIT);
    assert_eq!(limit(Some("1000")).unwrap(), 1000);
    for bad in ["0", "-1", "1001", "ten", "1.5"] {
        assert!(limit(Some(bad)).is_err(), "{bad}");
    }
}

#[test]
fn query_strings_are_decoded_and_unknown_parameters_named() {
    let p =
        Params::parse("from=2026-11-25T21%3A40%3A00%2B05%3A00&state=open&state=closed", &["from", "state"])
            .unwrap();
    assert_eq!(p.all("state").collect::<Vec<_>>(), ["open", "closed"]);
    assert_eq!(p.time("from").unwrap(), Some(parse_time("from", "2026-11-25T16:40:00Z").unwrap()));
    assert_eq!(p.one("state").unwrap_err().message, "given more than once");
    let e = Params::parse("limit=1&lmit=2", &["limit"]).unwrap_err();
    assert_eq!(e.to_string(), "lmit: unknown query parameter \"lmit\" (this endpoint takes: limit)");
    let e = Params::parse("x=1", &[]).unwrap_err();
    assert!(e.message.ends_with("(this endpoint takes: no parameters)"), "{e}");
    assert_eq!(Params::parse("", &[]).unwrap().one("format").unwrap(), None);
}

#[test]
fn format_and_accept_choose_geojson() {
    let format = |q: &str| Params::parse(q, &["format"]).unwrap().format();
    assert_eq!(format("format=geojson").unwrap(), Some(true));
    assert_eq!(format("format=json").unwrap(), Some(false));
    assert_eq!(format("").unwrap(), None);
    assert_eq!(format("format=xml").unwrap_err().message, "must be json or geojson, not \"xml\"");
    assert!(accepts_geojson(["text/html, Application/Geo+JSON;q=0.5"]));
    assert!(!accepts_geojson(["application/geo+json; q=0"]));
    assert!(!accepts_geojson(["application/json"]));
    assert!(!accepts_geojson([]));
}

#[test]
fn refused_values_are_echoed_short() {
    assert_eq!(echo("abc"), "\"abc\"");
    let long = "x".repeat(100);
    assert_eq!(echo(&long), format!("{:?}...", "x".repeat(ECHO_CHARS)));
}
