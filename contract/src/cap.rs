//! Area warnings as OASIS CAP 1.2 (Common Alerting Protocol) messages, and an Atom feed of
//! them, as outside systems read them: the same XML on MQTT (`kuzet/v1/warnings/{warning_id}`)
//! and over HTTP. Written by hand in the order the CAP 1.2 schema requires; every text is
//! escaped. Checked against the official XSD in the tests (tests/cap.rs).

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use kuzet_actors::warning::{Shape, Warning};

/// The CAP 1.2 namespace.
pub const CAP_NS: &str = "urn:oasis:names:tc:emergency:cap:1.2";
/// The media type of one CAP message.
pub const CAP_MEDIA_TYPE: &str = "application/cap+xml";

/// XML text: `&`, `<`, `>` and quotes escaped. Control characters never get here (the API
/// refuses them with the text rule), but are dropped rather than written if they do.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A CAP time: seconds, with the zone as `-00:00` for UTC (CAP forbids `Z`).
pub fn cap_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S-00:00").to_string()
}

/// A CAP `sender` or `identifier` may hold no space, comma, `<` or `&`.
pub fn valid_cap_id(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| !c.is_whitespace() && !c.is_control() && !",<&".contains(c))
}

fn point(p: &kuzet_actors::geo::GeoPoint) -> String {
    format!("{:.6},{:.6}", p.lat(), p.lon())
}

/// One warning message as a CAP 1.2 `<alert>` element (no XML declaration), to embed.
pub fn alert_element(w: &Warning) -> String {
    let mut x = String::with_capacity(2048);
    let _ = write!(x, "<alert xmlns=\"{CAP_NS}\">");
    let _ = write!(x, "<identifier>{}</identifier>", escape(&w.identifier));
    let _ = write!(x, "<sender>{}</sender>", escape(&w.sender));
    let _ = write!(x, "<sent>{}</sent>", cap_time(w.sent));
    x.push_str("<status>Actual</status>");
    let _ = write!(x, "<msgType>{}</msgType>", w.msg_type.as_str());
    x.push_str("<scope>Public</scope>");
    if !w.references.is_empty() {
        let refs: Vec<String> = w
            .references
            .iter()
            .map(|r| format!("{},{},{}", escape(&r.sender), escape(&r.identifier), cap_time(r.sent)))
            .collect();
        let _ = write!(x, "<references>{}</references>", refs.join(" "));
    }
    x.push_str("<info>");
    x.push_str("<language>en</language>");
    let _ = write!(x, "<category>{}</category>", w.category);
    let _ = write!(x, "<event>{}</event>", escape(&w.event));
    // A cancelled warning asks nothing of anyone any more.
    let response = if w.msg_type == kuzet_actors::warning::MsgType::Cancel { "AllClear" } else { "Avoid" };
    let _ = write!(x, "<responseType>{response}</responseType>");
    let _ = write!(x, "<urgency>{}</urgency>", w.urgency.as_str());
    let _ = write!(x, "<severity>{}</severity>", w.severity.as_str());
    x.push_str("<certainty>Observed</certainty>");
    let _ = write!(x, "<expires>{}</expires>", cap_time(w.expires));
    let _ = write!(x, "<senderName>{}</senderName>", escape(&w.sender_name));
    let _ = write!(x, "<headline>{}</headline>", escape(&w.headline));
    let _ = write!(x, "<description>{}</description>", escape(&w.description));
    if let Some(i) = &w.instruction {
        let _ = write!(x, "<instruction>{}</instruction>", escape(i));
    }
    x.push_str("<area>");
    let _ = write!(x, "<areaDesc>{}</areaDesc>", escape(&w.area.description));
    match &w.area.shape {
        Shape::Polygon(points) => {
            let pairs: Vec<String> = points.iter().map(point).collect();
            let _ = write!(x, "<polygon>{}</polygon>", pairs.join(" "));
        }
        Shape::Circle { centre, radius_m } => {
            // CAP circles are in kilometres.
            let _ = write!(x, "<circle>{} {:.3}</circle>", point(centre), radius_m / 1000.0);
        }
    }
    x.push_str("</area></info></alert>");
    x
}

/// One warning message as a CAP 1.2 document.
pub fn alert_document(w: &Warning) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}\n", alert_element(w))
}

/// An Atom feed (RFC 4287) of warning messages, newest first: each entry one message, its CAP
/// alert as the entry's content and as a link to the message alone.
pub struct Feed<'a> {
    /// The feed's own id (stable for a deployment), e.g. `urn:uuid:...` or a tag URI.
    pub id: &'a str,
    pub title: &'a str,
    pub author: &'a str,
    /// The feed's own path, e.g. `/api/v1/warnings/feed.atom`.
    pub self_href: &'a str,
    /// Where one message is, with `{identifier}` in it.
    pub message_href: &'a str,
    pub updated: DateTime<Utc>,
}

/// The feed document.
pub fn atom_feed(f: &Feed<'_>, messages: &[Warning]) -> String {
    let rfc3339 = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut x = String::with_capacity(1024 + messages.len() * 2048);
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">");
    let _ = write!(x, "<id>{}</id>", escape(f.id));
    let _ = write!(x, "<title>{}</title>", escape(f.title));
    let _ = write!(x, "<updated>{}</updated>", rfc3339(f.updated));
    let _ = write!(x, "<author><name>{}</name></author>", escape(f.author));
    let _ = write!(x, "<link rel=\"self\" type=\"application/atom+xml\" href=\"{}\"/>", escape(f.self_href));
    for w in messages {
        x.push_str("<entry>");
        let _ = write!(x, "<id>{}</id>", escape(&w.identifier));
        let _ = write!(x, "<title>{}: {}</title>", w.msg_type.as_str(), escape(&w.headline));
        let _ = write!(x, "<updated>{}</updated>", rfc3339(w.sent));
        let href = f.message_href.replace("{identifier}", &w.identifier);
        let _ = write!(x, "<link rel=\"alternate\" type=\"{CAP_MEDIA_TYPE}\" href=\"{}\"/>", escape(&href));
        let _ = write!(x, "<summary>{}</summary>", escape(&w.area.description));
        let _ = write!(x, "<content type=\"{CAP_MEDIA_TYPE}\">{}</content>", alert_element(w));
        x.push_str("</entry>");
    }
    x.push_str("</feed>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use kuzet_actors::geo::GeoPoint;
    use kuzet_actors::warning::{Area, MsgType, Reference, Severity, Urgency};

    fn warning(msg_type: MsgType) -> Warning {
        let sent = DateTime::parse_from_rfc3339("2026-12-06T19:00:00Z").unwrap().with_timezone(&Utc);
        Warning {
            identifier: "urn:uuid:6f1c0c53-6d8e-4a3b-9f43-1d2a3b4c5d6e".into(),
            warning_id: uuid::Uuid::nil(),
            sender: "kuzet@police.example".into(),
            sent,
            msg_type,
            references: match msg_type {
                MsgType::Alert => vec![],
                _ => vec![Reference {
                    sender: "kuzet@police.example".into(),
                    identifier: "urn:uuid:a".into(),
                    sent,
                }],
            },
            category: "Security",
            event: "Police operation".into(),
            urgency: Urgency::Immediate,
            severity: Severity::Severe,
            headline: "Armed person <near> the market & station".into(),
            description: "Stay indoors.".into(),
            instruction: None,
            expires: sent + chrono::Duration::hours(2),
            area: Area {
                description: "Green Market".into(),
                shape: Shape::Circle { centre: GeoPoint::new(43.2389, 76.8897).unwrap(), radius_m: 500.0 },
            },
            sender_name: "City Police Operations Centre".into(),
            issued_by: "dispatcher-7".into(),
        }
    }

    #[test]
    fn a_message_follows_the_schemas_order_with_cap_times_and_escaped_text() {
        let x = alert_document(&warning(MsgType::Alert));
        let order = [
            "<identifier>",
            "<sender>",
            "<sent>",
            "<status>",
            "<msgType>",
            "<scope>",
            "<info>",
            "<language>",
            "<category>",
            "<event>",
            "<responseType>",
            "<urgency>",
            "<severity>",
            "<certainty>",
            "<expires>",
            "<senderName>",
            "<headline>",
            "<description>",
            "<area>",
            "<areaDesc>",
            "<circle>",
        ];
        let at: Vec<usize> =
            order.iter().map(|t| x.find(t).unwrap_or_else(|| panic!("{t} in {x}"))).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{x}");
        assert!(x.contains("<sent>2026-12-06T19:00:00-00:00</sent>"), "{x}");
        assert!(x.contains("Armed person &lt;near&gt; the market &amp; station"), "{x}");
        assert!(x.contains("<circle>43.238900,76.889700 0.500</circle>"), "{x}");
        assert!(!x.contains("<references>"), "an Alert references nothing");
    }

    #[test]
    fn updates_and_cancels_name_what_they_change() {
        let u = alert_element(&warning(MsgType::Update));
        assert!(
            u.contains("<references>kuzet@police.example,urn:uuid:a,2026-12-06T19:00:00-00:00</references>"),
            "{u}"
        );
        let c = alert_element(&warning(MsgType::Cancel));
        assert!(
            c.contains("<msgType>Cancel</msgType>") && c.contains("<responseType>AllClear</responseType>"),
            "{c}"
        );
        // references come after scope and before info.
        assert!(c.find("<scope>").unwrap() < c.find("<references>").unwrap());
        assert!(c.find("<references>").unwrap() < c.find("<info>").unwrap());
    }

    #[test]
    fn ids_with_spaces_commas_or_markup_are_not_cap_ids() {
        assert!(valid_cap_id("kuzet@police.example"));
        for bad in ["", "a b", "a,b", "a<b", "a&b"] {
            assert!(!valid_cap_id(bad), "{bad:?}");
        }
    }
}
