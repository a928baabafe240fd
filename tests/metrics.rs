//! The Prometheus endpoint, scraped as Prometheus would: it answers only with the token, its
//! counters and per-hop histograms move when an alarm is dispatched and a bad message is
//! refused, every histogram is well formed, the Grafana dashboard asks only for metrics it
//! exports, and it stops with kuzet.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use kuzet::mqtt::topics::DeviceKind::{Button, Unit};
use kuzet::settings::Secret;
use serde_json::{json, Value};
use uuid::Uuid;

const TOKEN: &str = "scrape-token-for-the-tests";

/// One scrape: every sample by its series (`name{labels}`), and the families' types.
struct Scrape {
    samples: BTreeMap<String, f64>,
    types: BTreeMap<String, String>,
    /// Series in the order they came (a histogram's buckets in increasing `le`).
    order: Vec<String>,
}

impl Scrape {
    fn parse(text: &str) -> Self {
        let (mut samples, mut types, mut order) = (BTreeMap::new(), BTreeMap::new(), Vec::new());
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
                assert!(types.insert(name.to_owned(), kind.to_owned()).is_none(), "{name} typed twice");
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line}"));
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("not a number: {line}"));
            assert!(samples.insert(series.to_owned(), value).is_none(), "{series} twice");
            order.push(series.to_owned());
        }
        Self { samples, types, order }
    }

    fn get(&self, series: &str) -> f64 {
        *self.samples.get(series).unwrap_or_else(|| panic!("no {series} in the scrape"))
    }

    /// The family names a query may use: each family, and a histogram's three series.
    fn names(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for (name, kind) in &self.types {
            out.insert(name.clone());
            if kind == "histogram" {
                for s in ["_bucket", "_sum", "_count"] {
                    out.insert(format!("{name}{s}"));
                }
            }
        }
        out
    }

    /// Every histogram's every label set: buckets in increasing `le`, cumulative, and the
    /// `+Inf` bucket equal to `_count`.
    fn check_histograms(&self) {
        for (name, kind) in self.types.iter().filter(|(_, k)| *k == "histogram") {
            let bucket = format!("{name}_bucket");
            let mut sets: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
            for series in self.order.iter().filter(|s| s.starts_with(&format!("{bucket}{{"))) {
                let labels = &series[bucket.len() + 1..series.len() - 1];
                let (rest, le) = labels.rsplit_once("le=\"").expect("a bucket has le");
                let le = le.trim_end_matches('"');
                let le = if le == "+Inf" { f64::INFINITY } else { le.parse().expect("le is a number") };
                sets.entry(rest.trim_end_matches(',').to_owned()).or_default().push((le, self.get(series)));
            }
            assert!(!sets.is_empty(), "{kind} {name} has buckets");
            for (labels, buckets) in sets {
                assert!(buckets.windows(2).all(|w| w[0].0 < w[1].0), "{name}{{{labels}}}: le increases");
                assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{name}{{{labels}}}: cumulative");
                let (le, inf) = *buckets.last().expect("buckets");
                assert_eq!(le, f64::INFINITY, "{name}{{{labels}}}: ends with +Inf");
                let count = if labels.is_empty() {
                    format!("{name}_count")
                } else {
                    format!("{name}_count{{{labels}}}")
                };
                assert_eq!(inf, self.get(&count), "{name}{{{labels}}}: +Inf == _count");
            }
        }
    }
}

async fn scrape_raw(url: &str, token: Option<&str>) -> (u16, Option<String>, String) {
    let mut req = client().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let mut res = req.send().await.expect("the metrics endpoint answers");
    let kind = res.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = res.body().await.expect("a body");
    (res.status().as_u16(), kind, String::from_utf8(body.to_vec()).expect("UTF-8"))
}

async fn scrape(url: &str) -> Scrape {
    let (status, _, body) = scrape_raw(url, Some(TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    Scrape::parse(&body)
}

/// Scrapes until `ready` holds (the sink reads on the actors' thread, after the turn that
/// sent what it reads); gives up after 10 s.
async fn scrape_until(url: &str, ready: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = scrape(url).await;
        if ready(&s) {
            return s;
        }
        assert!(tokio::time::Instant::now() < deadline, "the scrape did not move within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const ALARM_TO_OFFER: &str = "kuzet_incident_hop_seconds_count{hop=\"alarm_to_offer\"}";
const OFFER_TO_ACCEPT: &str = "kuzet_incident_hop_seconds_count{hop=\"offer_to_accept\"}";
const MALFORMED: &str = "kuzet_rejects_total{code=\"malformed_json\"}";

#[actix_rt::test]
async fn the_histograms_move_when_an_alarm_is_dispatched() {
    let t = spawn_app(BrokerKind::Embedded, city(&["u-near"]), |s| {
        one_unit(s);
        s.metrics.listen = "127.0.0.1:0".into();
        s.metrics.token = Secret::new(TOKEN);
    })
    .await;
    let addr = t.app.metrics_addr().expect("the metrics endpoint listens");
    assert!(addr.ip().is_loopback());
    let url = format!("http://{addr}/metrics");

    // Only with the token.
    let (status, _, _) = scrape_raw(&url, None).await;
    assert_eq!(status, 401, "no token");
    let (status, _, _) = scrape_raw(&url, Some("scrape-token-for-the-other")).await;
    assert_eq!(status, 401, "another token");
    let (status, kind, _) = scrape_raw(&url, Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(kind.as_deref(), Some("text/plain; version=0.0.4; charset=utf-8"));
    let (status, _, _) = scrape_raw(&format!("http://{addr}/api/v1/incidents"), Some(TOKEN)).await;
    assert_eq!(status, 404, "the endpoint serves metrics alone");

    let mut unit = t.unit_at("u-near", 300.0).await;
    t.wait_available(1).await;
    let mut btn = t.button("btn-a").await;
    let before = scrape(&url).await;
    before.check_histograms();

    publish(&btn, Button, "btn-a", "alarm", raise(&Uuid::new_v4())).await;
    assert_eq!(next_ack(&mut btn).await["state"], "received");
    let offer = next_on(&mut unit, "/offers").await;
    publish(&unit, Unit, "u-near", "reply", json!({"offer_id": offer["offer_id"], "decision": "accept"}))
        .await;
    assert_eq!(next_ack(&mut btn).await["state"], "dispatched");

    let after = scrape_until(&url, |s| s.get(OFFER_TO_ACCEPT) > before.get(OFFER_TO_ACCEPT)).await;
    after.check_histograms();
    let rose = |series: &str| after.get(series) - before.get(series);
    assert_eq!(rose("kuzet_alarms_total"), 1.0);
    assert_eq!(rose("kuzet_offers_total"), 1.0);
    assert_eq!(rose("kuzet_offer_outcomes_total{outcome=\"accepted\"}"), 1.0);
    assert_eq!(rose("kuzet_incidents_opened_total{kind=\"school_alarm\"}"), 1.0);
    assert_eq!(rose(ALARM_TO_OFFER), 1.0, "alarm -> offer counted once");
    assert_eq!(rose(OFFER_TO_ACCEPT), 1.0);
    assert!(rose("kuzet_incident_hop_seconds_sum{hop=\"alarm_to_offer\"}") > 0.0);
    // The alarm's way to its offer, in-process, is under 10 s on any machine: its bucket moved.
    assert_eq!(rose("kuzet_incident_hop_seconds_bucket{hop=\"alarm_to_offer\",le=\"10\"}"), 1.0);
    assert_eq!(after.get("kuzet_incidents_open"), 1.0);
    assert!(after.get("kuzet_record_lag_seconds_count") > before.get("kuzet_record_lag_seconds_count"));
    for c in ["main", "alarms", "units", "out"] {
        assert_eq!(after.get(&format!("kuzet_broker_link_up{{connection=\"{c}\"}}")), 1.0, "{c}");
    }
    assert_eq!(after.get("kuzet_broker_process_up"), 1.0);
    assert_eq!(after.get("kuzet_database_up"), 1.0);
    assert!(after.get("kuzet_writer_rows_written_total") > 0.0);
    assert!(after.get("kuzet_writer_queue_capacity{queue=\"urgent\"}") > 0.0);
    assert_eq!(after.get("kuzet_cameras{state=\"unknown\"}"), 0.0, "the city has no cameras");
    assert_eq!(rose(MALFORMED), 0.0);

    // A bad message: refused, and counted by its code.
    publish_raw(&btn, "kuzet/v1/buttons/btn-a/heartbeat", b"{\"at\": \"2026".to_vec()).await;
    assert_eq!(next_on(&mut btn, "/rejects/btn-a").await["code"], "malformed_json");
    let refused = scrape(&url).await;
    assert_eq!(refused.get(MALFORMED) - before.get(MALFORMED), 1.0);
    assert_eq!(
        refused.get("kuzet_rejects_total{code=\"oversize\"}"),
        before.get("kuzet_rejects_total{code=\"oversize\"}")
    );

    dashboard_asks_for_exported_metrics(&refused.names());

    t.app.stop().await;
    let gone = client().get(&url).bearer_auth(TOKEN).send().await;
    assert!(gone.is_err(), "the endpoint stops with kuzet");
}

/// grafana/kuzet.json: valid JSON, a Prometheus datasource variable that every panel uses,
/// and no query for a metric the endpoint does not export.
fn dashboard_asks_for_exported_metrics(exported: &BTreeSet<String>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/grafana/kuzet.json");
    let d: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the dashboard")).expect("JSON");
    let vars = d["templating"]["list"].as_array().expect("templating.list");
    let ds = vars
        .iter()
        .find(|v| v["type"] == "datasource" && v["query"] == "prometheus")
        .expect("a datasource variable");
    let ds_ref = format!("${{{}}}", ds["name"].as_str().expect("its name"));
    let panels = d["panels"].as_array().expect("panels");
    assert!(panels.len() >= 8, "the panels the issue names");
    let mut exprs = Vec::new();
    for p in panels.iter().filter(|p| p["type"] != "row") {
        assert_eq!(p["datasource"]["uid"], ds_ref.as_str(), "panel {} uses the variable", p["title"]);
        for target in p["targets"].as_array().expect("targets") {
            exprs.push(target["expr"].as_str().expect("expr").to_owned());
        }
    }
    let mut used = BTreeSet::new();
    for e in &exprs {
        let mut rest = e.as_str();
        while let Some(i) = rest.find("kuzet_") {
            let tail = &rest[i..];
            let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
            used.insert(tail[..end].to_owned());
            rest = &tail[end..];
        }
    }
    assert!(used.len() >= 10, "{used:?}");
    let missing: Vec<_> = used.difference(exported).collect();
    assert!(missing.is_empty(), "the dashboard asks for metrics kuzet does not export: {missing:?}");
}

#[actix_rt::test]
async fn a_listener_other_hosts_reach_needs_a_token() {
    let mut s = test_settings();
    s.metrics.listen = "0.0.0.0:0".into();
    let err = kuzet::startup::Application::build(s, city(&[])).await.err().expect("refused");
    assert!(format!("{err:#}").contains("metrics.token"), "{err:#}");
}
