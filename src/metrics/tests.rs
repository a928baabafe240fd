use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use kuzet_actors::geo::GeoPoint;
use kuzet_actors::ids::{CameraId, IncidentId, SiteId, UnitId};
use kuzet_actors::incident::IncidentSnapshot;
use kuzet_actors::model::{IncidentKind, IncidentState, Priority};
use kuzet_actors::outbound::{Audience, IntegrityAlert, Notify};
use kuzet_actors::snapshot::{SiteRef, Subject, TimelineEntry};

use super::fanout::{FanoutStats, Hop, Tracker};
use super::histogram::Histogram;

fn entry(t_us: u64, event: &'static str, unit: Option<&str>) -> TimelineEntry {
    TimelineEntry {
        at: Utc::now(),
        t_us,
        event: event.into(),
        unit: unit.map(|u| UnitId::parse(u).unwrap()),
        button: None,
        detail: None,
    }
}

fn snapshot(id: IncidentId, state: IncidentState, timeline: &[TimelineEntry]) -> Arc<IncidentSnapshot> {
    Arc::new(IncidentSnapshot {
        incident_id: id,
        kind: IncidentKind::SchoolAlarm,
        priority: Priority(1),
        state,
        location: GeoPoint::new(43.2389, 76.8897).unwrap(),
        subject: Subject::Site(SiteRef {
            id: SiteId::parse("school-1").unwrap(),
            name: "School No. 1".into(),
            room: None,
        }),
        raised_by: Vec::new(),
        opened_at: Utc::now(),
        units: Vec::new(),
        offers: Vec::new(),
        escalated: None,
        timeline: timeline.to_vec(),
        sightings: Vec::new(),
    })
}

/// An incident's whole life: two units offered, one declines, one accepts, arrives, clears.
fn life() -> Vec<TimelineEntry> {
    vec![
        entry(0, "alarm_received", None),
        entry(40, "ack_received", None),
        entry(900, "units_chosen", None),
        entry(1_200, "offer_published", Some("u-1")),
        entry(1_300, "offer_published", Some("u-2")),
        entry(2_000_000, "reply_decline", Some("u-2")),
        entry(3_001_200, "reply_accept", Some("u-1")),
        entry(3_001_300, "ack_dispatched", None),
        entry(63_001_200, "on_scene", Some("u-1")),
        entry(663_001_200, "unit_cleared", Some("u-1")),
        entry(663_001_300, "closed", None),
    ]
}

fn counts(stats: &FanoutStats) -> Vec<u64> {
    Hop::ALL.iter().map(|h| stats.hop(*h).view().count).collect()
}

#[test]
fn a_histogram_is_cumulative_and_its_count_is_the_inf_bucket() {
    let h = Histogram::latency();
    for us in [50, 100, 101, 1_000, 9_000_000_000] {
        h.observe_us(us);
    }
    h.observe(Duration::from_millis(2));
    let v = h.view();
    assert_eq!(v.count, 6);
    assert_eq!(v.buckets[0], (0.0001, 2), "at the bound counts in its bucket");
    assert_eq!(v.buckets[1], (0.00025, 3));
    assert!(v.buckets.windows(2).all(|w| w[0].1 <= w[1].1 && w[0].0 < w[1].0));
    assert_eq!(v.buckets.last().unwrap().1, 5, "one above every bound: +Inf only");
    assert!((v.sum_s - (50 + 100 + 101 + 1_000 + 2_000 + 9_000_000_000u64) as f64 / 1e6).abs() < 1e-6);
}

#[test]
fn each_hop_is_counted_once_however_often_the_snapshot_comes() {
    let stats = Arc::new(FanoutStats::default());
    let mut t = Tracker::new(stats.clone());
    let id = IncidentId::new_random();
    let all = life();
    let now = Instant::now();
    // Grows line by line, each state sent live, as a snapshot, and again.
    for n in 1..all.len() {
        let s = snapshot(id, IncidentState::Dispatching, &all[..n]);
        t.take(&Notify::Live(s.clone()), now);
        t.take(&Notify::Snapshot(s.clone()), now);
        t.take(&Notify::Snapshot(s), now);
    }
    t.take(&Notify::Closed(snapshot(id, IncidentState::Closed, &all)), now);
    assert_eq!(counts(&stats), vec![1, 1, 1, 1, 1]);
    let ato = stats.hop(Hop::AlarmToOffer).view();
    assert!((ato.sum_s - 0.0012).abs() < 1e-9, "{ato:?}");
    assert!((stats.hop(Hop::OfferToAccept).view().sum_s - 3.0).abs() < 1e-9, "u-1's own offer");
    assert!((stats.hop(Hop::AcceptToOnScene).view().sum_s - 60.0).abs() < 1e-9);
    assert!((stats.hop(Hop::AlarmToOnScene).view().sum_s - 63.0012).abs() < 1e-9);
    assert!((stats.hop(Hop::OnSceneToCleared).view().sum_s - 600.0).abs() < 1e-9);
    let get = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!((get(&stats.alarms), get(&stats.offers)), (1, 2));
    let outcomes: Vec<_> = stats.offer_outcomes().collect();
    assert!(outcomes.contains(&("accepted", 1)) && outcomes.contains(&("declined", 1)), "{outcomes:?}");
    assert_eq!(stats.incidents_opened().collect::<Vec<_>>(), vec![("school_alarm", 1), ("wanted_person", 0)]);
    assert_eq!(stats.incidents_ended(), [("closed", 1), ("cancelled", 0)]);
    assert_eq!((t.tracked(), get(&stats.incidents_open)), (0, 0), "a closed incident is forgotten");

    // A snapshot overtaken by the close on its way does not open it again.
    t.take(&Notify::Snapshot(snapshot(id, IncidentState::OnScene, &all[..9])), now);
    assert_eq!(t.tracked(), 0);
    assert_eq!(counts(&stats), vec![1, 1, 1, 1, 1]);
}

#[test]
fn lines_from_before_a_restart_count_nothing_and_later_hops_still_pair() {
    let stats = Arc::new(FanoutStats::default());
    let mut t = Tracker::new(stats.clone());
    let id = IncidentId::new_random();
    let all = life();
    let mut restored = all[..7].to_vec(); // up to u-1's accept
    restored.push(entry(5_000_000, "restored", None));
    t.take(&Notify::Live(snapshot(id, IncidentState::Dispatched, &restored)), Instant::now());
    assert_eq!(counts(&stats), vec![0, 0, 0, 0, 0]);
    assert_eq!(stats.incidents_opened().map(|(_, n)| n).sum::<u64>(), 0, "not a new incident");
    restored.extend_from_slice(&all[8..]);
    t.take(&Notify::Closed(snapshot(id, IncidentState::Closed, &restored)), Instant::now());
    // Accepted before the restart, on scene after: the hop spans it (t_us goes on counting).
    assert_eq!(counts(&stats), vec![0, 0, 1, 1, 1]);
}

#[test]
fn the_record_lag_runs_from_what_the_consoles_saw_to_the_recorded_snapshot() {
    let stats = Arc::new(FanoutStats::default());
    let mut t = Tracker::new(stats.clone());
    let id = IncidentId::new_random();
    let all = life();
    let t0 = Instant::now();
    t.take(&Notify::Live(snapshot(id, IncidentState::Dispatching, &all[..2])), t0);
    t.take(&Notify::Live(snapshot(id, IncidentState::Dispatching, &all[..4])), t0 + Duration::from_millis(1));
    // Recorded up to the first change only, then the second.
    t.take(
        &Notify::Snapshot(snapshot(id, IncidentState::Dispatching, &all[..3])),
        t0 + Duration::from_millis(7),
    );
    t.take(
        &Notify::Snapshot(snapshot(id, IncidentState::Dispatching, &all[..5])),
        t0 + Duration::from_millis(9),
    );
    let lag = stats.record_lag.view();
    assert_eq!(lag.count, 2);
    assert!((lag.sum_s - 0.015).abs() < 1e-9, "7 ms and 8 ms: {lag:?}");
    // A change already recorded when it is shown waits for nothing.
    t.take(
        &Notify::Live(snapshot(id, IncidentState::Dispatching, &all[..5])),
        t0 + Duration::from_millis(10),
    );
    t.take(
        &Notify::Snapshot(snapshot(id, IncidentState::Dispatching, &all[..5])),
        t0 + Duration::from_secs(1),
    );
    assert_eq!(stats.record_lag.view().count, 2);
}

#[test]
fn cameras_are_counted_by_their_latest_state() {
    let stats = Arc::new(FanoutStats::default());
    stats.cameras_registered.store(3, std::sync::atomic::Ordering::Relaxed);
    let mut t = Tracker::new(stats.clone());
    let cam = |id: &str| CameraId::parse(id).unwrap();
    t.camera_known(cam("cam-1"), "covered");
    let alert = |id: &str, state: &str| {
        Notify::Integrity(Arc::new(IntegrityAlert {
            camera: cam(id),
            state: state.into(),
            detail: None,
            at: Utc::now(),
            audience: Audience::Dispatch,
            custodial: false,
            site: None,
            location: GeoPoint::new(43.0, 76.0).unwrap(),
        }))
    };
    t.take(&alert("cam-1", "ok"), Instant::now());
    t.take(&alert("cam-2", "frozen"), Instant::now());
    let cameras = stats.cameras();
    for (state, n) in [("ok", 1), ("frozen", 1), ("covered", 0), ("unknown", 1)] {
        assert!(cameras.contains(&(state, n)), "{state}: {cameras:?}");
    }
    let alerts: Vec<_> = stats.camera_alerts().collect();
    assert!(
        alerts.contains(&("ok", 1)) && alerts.contains(&("covered", 0)),
        "the restored state is no new alert"
    );
}

#[test]
fn the_text_names_each_family_once_and_every_sample_parses() {
    let sources = super::Sources {
        started: std::time::SystemTime::now(),
        metrics: Arc::new(super::Metrics::default()),
        fanout: Arc::new(FanoutStats::default()),
        outbox: Default::default(),
        writer: None,
        links: vec![("main", tokio::sync::watch::channel(crate::mqtt::gateway::Link::Ready).1)],
        broker: None,
        vision: None,
    };
    sources.fanout.hop(Hop::AlarmToOffer).observe_us(1_500);
    let text = super::render(&sources);
    let mut types = std::collections::HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(types.insert(name.to_owned(), kind.to_owned()).is_none(), "{name} twice");
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
        let name = series.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| types.get(*f).is_some_and(|k| k == "histogram")))
            .unwrap_or(name);
        assert!(types.contains_key(family), "{name} before its TYPE");
    }
    assert!(text.contains("kuzet_broker_link_up{connection=\"main\"} 1\n"), "{text}");
    assert!(text.contains("kuzet_incident_hop_seconds_bucket{hop=\"alarm_to_offer\",le=\"0.0025\"} 1\n"));
    assert!(text.contains("kuzet_incident_hop_seconds_bucket{hop=\"alarm_to_offer\",le=\"+Inf\"} 1\n"));
    assert!(text.contains("kuzet_rejects_total{code=\"malformed_json\"} 0\n"));
}
