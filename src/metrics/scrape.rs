//! What a scrape reads and how it is written: every counter kuzet keeps, as Prometheus
//! families. Runs on the metrics server's own thread; reads atomics and the broker links'
//! watch channels only, so a scrape never waits for, or holds up, an actor.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use kuzet_actors::outbound::Outbox;
use tokio::sync::watch;

use super::exposition::Text;
use super::fanout::{FanoutStats, Hop};
use super::Metrics;
use crate::mqtt::codec::RejectCode;
use crate::mqtt::gateway::Link;
use crate::store::writer::WriterHandle;

/// Everything a scrape reads, gathered once at start.
pub struct Sources {
    pub started: SystemTime,
    pub metrics: Arc<Metrics>,
    pub fanout: Arc<FanoutStats>,
    /// For the notifications its sinks dropped.
    pub outbox: Outbox,
    pub writer: Option<WriterHandle>,
    /// kuzet's connections that take messages in, by name (main, alarms, units).
    pub links: Vec<(&'static str, watch::Receiver<Link>)>,
    /// kuzet's own broker process, when it runs one.
    pub broker: Option<Arc<crate::mqtt::broker::ManagedBroker>>,
    pub vision: Option<Arc<crate::vision::Matcher>>,
}

const COUNTER: &str = "counter";
const GAUGE: &str = "gauge";
const HISTOGRAM: &str = "histogram";

/// The scrape's body.
pub fn render(s: &Sources) -> String {
    let mut t = Text::default();
    process(&mut t, s);
    dispatch(&mut t, &s.fanout);
    mqtt(&mut t, s);
    cameras(&mut t, s);
    if let Some(w) = &s.writer {
        writer(&mut t, w);
    }
    t.finish()
}

fn process(t: &mut Text, s: &Sources) {
    t.family("kuzet_build_info", GAUGE, "kuzet's version (always 1).");
    t.sample("kuzet_build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1);
    let started = s.started.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    t.single("kuzet_start_time_seconds", GAUGE, "When this kuzet process started, Unix time.", started);
}

fn dispatch(t: &mut Text, f: &FanoutStats) {
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    t.single("kuzet_alarms_total", COUNTER, "Alarms that opened or joined an incident.", get(&f.alarms));
    t.labelled(
        "kuzet_incidents_opened_total",
        COUNTER,
        "Incidents opened, by kind (restored ones are not counted again).",
        "kind",
        f.incidents_opened(),
    );
    t.labelled(
        "kuzet_incidents_ended_total",
        COUNTER,
        "Incidents ended: closed (every unit cleared) or cancelled.",
        "outcome",
        f.incidents_ended(),
    );
    t.single("kuzet_incidents_open", GAUGE, "Incidents open now.", get(&f.incidents_open));
    t.single("kuzet_offers_total", COUNTER, "Offers that reached a unit.", get(&f.offers));
    t.labelled(
        "kuzet_offer_outcomes_total",
        COUNTER,
        "Offers ended, by how: accepted, declined, timed_out, refused (the unit was taken), unit_offline.",
        "outcome",
        f.offer_outcomes(),
    );
    t.single(
        "kuzet_escalations_total",
        COUNTER,
        "Incidents handed to dispatchers because no unit (or not enough) took them.",
        get(&f.escalations),
    );
    let hops = "kuzet_incident_hop_seconds";
    t.family(
        hops,
        HISTOGRAM,
        "Time between two steps of an incident, from its timeline (t_us), each hop counted once per incident (per unit for the unit's hops).",
    );
    for h in Hop::ALL {
        t.histogram(hops, &[("hop", h.as_str())], &f.hop(h).view());
    }
    let lag = "kuzet_record_lag_seconds";
    t.family(
        lag,
        HISTOGRAM,
        "From a change the consoles were shown to the snapshot that says it is recorded (coalescing, the writer's queue, the commit or spool).",
    );
    t.histogram(lag, &[], &f.record_lag.view());
}

fn mqtt(t: &mut Text, s: &Sources) {
    let m = &s.metrics;
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    t.labelled(
        "kuzet_rejects_total",
        COUNTER,
        "Inbound messages refused, by the reject's code.",
        "code",
        RejectCode::ALL.iter().map(|c| (c.as_str(), m.rejects(*c))),
    );
    t.single("kuzet_mqtt_received_total", COUNTER, "Messages received from the broker.", get(&m.received));
    t.single("kuzet_mqtt_published_total", COUNTER, "Messages kuzet published.", get(&m.published));
    t.single(
        "kuzet_mqtt_publish_failed_total",
        COUNTER,
        "Publishes the MQTT client refused.",
        get(&m.publish_failed),
    );
    t.single(
        "kuzet_mqtt_publish_waited_total",
        COUNTER,
        "Publishes that found the client's queue full and waited in order (nothing is dropped).",
        get(&m.publish_waited),
    );
    t.single("kuzet_positions_total", COUNTER, "Position reports taken.", get(&m.positions));
    t.single(
        "kuzet_positions_late_total",
        COUNTER,
        "Position reports older than the unit's newest.",
        get(&m.positions_late),
    );
    t.single(
        "kuzet_alarms_over_limit_total",
        COUNTER,
        "Alarms over their button's rate limit (acted on, flagged on the incident).",
        get(&m.alarms_over_limit),
    );
    t.single(
        "kuzet_detections_shed_total",
        COUNTER,
        "Edge cameras' detections refused because the search queue was full.",
        get(&m.detections_shed),
    );
    t.single(
        "kuzet_notifications_dropped_total",
        COUNTER,
        "Notifications the outbound fan-out dropped because a sink was gone (0 but while stopping).",
        s.outbox.dropped(),
    );
    t.family(
        "kuzet_broker_link_up",
        GAUGE,
        "1 while kuzet's connection to the broker is up (main, alarms and units: connected and subscribed; out: connected).",
    );
    for (name, link) in &s.links {
        t.sample("kuzet_broker_link_up", &[("connection", name)], u8::from(*link.borrow() == Link::Ready));
    }
    let out = m.outbound_up.load(Ordering::Relaxed);
    t.sample("kuzet_broker_link_up", &[("connection", "out")], u8::from(out));
    t.single(
        "kuzet_broker_disconnects_total",
        COUNTER,
        "Times one of kuzet's connections to the broker was lost.",
        get(&m.broker_disconnects),
    );
    t.single(
        "kuzet_broker_dropped_total",
        COUNTER,
        "Messages the broker dropped for a client whose queue was full.",
        get(&m.broker_dropped),
    );
    if let Some(b) = &s.broker {
        t.single(
            "kuzet_broker_process_up",
            GAUGE,
            "1 while kuzet's own broker process runs.",
            u8::from(b.pid() != 0),
        );
        t.single(
            "kuzet_broker_restarts_total",
            COUNTER,
            "Times kuzet's own broker died and was started again.",
            b.restarts(),
        );
    }
}

fn cameras(t: &mut Text, s: &Sources) {
    let f = &s.fanout;
    t.labelled(
        "kuzet_cameras",
        GAUGE,
        "Cameras by the state of their latest report (unknown: none yet).",
        "state",
        f.cameras(),
    );
    t.labelled(
        "kuzet_camera_alerts_total",
        COUNTER,
        "Cameras' integrity alerts, by the state they report.",
        "state",
        f.camera_alerts(),
    );
    let Some(v) = &s.vision else { return };
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let st = &v.stats;
    for (name, help, a) in [
        ("kuzet_vision_frames_total", "Frames handed to face detection.", &st.frames),
        ("kuzet_vision_faces_total", "Faces found in frames.", &st.faces),
        ("kuzet_vision_searches_total", "Watchlist searches.", &st.searches),
        ("kuzet_vision_matches_total", "Faces that matched the watchlist.", &st.matches),
        (
            "kuzet_vision_suppressed_total",
            "Matches closer to a face rejected for that person.",
            &st.suppressed,
        ),
        (
            "kuzet_vision_evidence_failed_total",
            "Evidence pictures that could not be written.",
            &st.evidence_failed,
        ),
        ("kuzet_vision_inference_errors_total", "Frames the face models failed on.", &st.inference_errors),
        ("kuzet_vision_edge_faces_total", "Faces from edge cameras' detections.", &st.edge_faces),
    ] {
        t.single(name, COUNTER, help, get(a));
    }
}

fn writer(t: &mut Text, w: &WriterHandle) {
    let st = w.stats();
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let [(urgent, urgent_cap), (positions, positions_cap)] = w.queued();
    t.labelled(
        "kuzet_writer_queue",
        GAUGE,
        "Records waiting for the writer: urgent (alarms, incidents, statuses, audit) and positions.",
        "queue",
        [("urgent", urgent), ("positions", positions)],
    );
    t.labelled(
        "kuzet_writer_queue_capacity",
        GAUGE,
        "Records each writer queue holds at most.",
        "queue",
        [("urgent", urgent_cap), ("positions", positions_cap)],
    );
    t.single(
        "kuzet_database_up",
        GAUGE,
        "1 while the writer reaches the database (0: it writes to the spool).",
        u8::from(st.database_up.load(Ordering::Relaxed)),
    );
    t.single(
        "kuzet_spool_bytes",
        GAUGE,
        "Bytes in the spool waiting for the database.",
        get(&st.spool_bytes),
    );
    for (name, help, a) in [
        ("kuzet_writer_batches_written_total", "Batches committed to the database.", &st.batches_written),
        ("kuzet_writer_rows_written_total", "Rows committed to the database.", &st.rows_written),
        (
            "kuzet_writer_batches_spooled_total",
            "Batches appended to the spool (database away).",
            &st.batches_spooled,
        ),
        (
            "kuzet_writer_batches_replayed_total",
            "Spooled batches written to the database.",
            &st.batches_replayed,
        ),
        (
            "kuzet_writer_batches_rejected_total",
            "Batches with rows the database refused for their content.",
            &st.batches_rejected,
        ),
        ("kuzet_writer_rows_rejected_total", "Rows set aside as refused.", &st.rows_rejected),
        (
            "kuzet_writer_positions_shed_total",
            "Positions not recorded: the writer was behind.",
            &st.positions_shed,
        ),
        (
            "kuzet_writer_incidents_not_recorded_total",
            "Incident changes, sightings and camera alerts the full writer queue could not take then.",
            &st.incidents_not_recorded,
        ),
        (
            "kuzet_writer_state_saves_total",
            "Times the local copy (state.json) was replaced.",
            &st.state_saves,
        ),
    ] {
        t.single(name, COUNTER, help, get(a));
    }
}
