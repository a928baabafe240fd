use std::sync::Mutex;

use super::*;

/// A sink that keeps what it takes; `gone` stands for a sink that has stopped.
struct Keep {
    got: Arc<Mutex<Vec<&'static str>>>,
    only_offers: bool,
    gone: bool,
}

fn kind(n: &Notify) -> &'static str {
    match n {
        Notify::Offer { .. } => "offer",
        Notify::Integrity(_) => "integrity",
        _ => "other",
    }
}

impl Sink for Keep {
    fn take(&self, n: Notify) -> bool {
        if self.gone {
            return false;
        }
        self.got.lock().unwrap().push(kind(&n));
        true
    }

    fn wants(&self, n: &Notify) -> bool {
        !self.only_offers || matches!(n, Notify::Offer { .. })
    }
}

fn integrity() -> Notify {
    Notify::Integrity(Arc::new(IntegrityAlert {
        camera: CameraId::parse("cam-1").unwrap(),
        state: "offline".into(),
        detail: None,
        at: Utc::now(),
        audience: Audience::Dispatch,
        custodial: false,
        site: None,
        location: GeoPoint::new(43.2, 76.9).unwrap(),
    }))
}

fn sink(only_offers: bool, gone: bool) -> (Keep, Arc<Mutex<Vec<&'static str>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    (Keep { got: got.clone(), only_offers, gone }, got)
}

#[test]
fn every_sink_that_wants_a_notification_gets_it_in_order() {
    let (a, got_a) = sink(false, false);
    let (b, got_b) = sink(false, false);
    let (picky, got_picky) = sink(true, false);
    let out = Outbox::default().with_sink("a", a).with_sink("picky", picky).with_sink("b", b);
    assert_eq!(out.sinks(), ["a", "picky", "b"]);
    out.send(integrity());
    out.send(integrity());
    assert_eq!(*got_a.lock().unwrap(), ["integrity", "integrity"]);
    assert_eq!(*got_b.lock().unwrap(), ["integrity", "integrity"]);
    assert!(got_picky.lock().unwrap().is_empty(), "a sink is handed only what it wants");
    assert_eq!(out.dropped(), 0);
}

#[test]
fn a_sink_that_is_gone_is_counted_and_the_others_still_get_everything() {
    let (gone, _) = sink(false, true);
    let (live, got) = sink(false, false);
    let out = Outbox::default().with_sink("gone", gone).with_sink("live", live);
    for _ in 0..3 {
        out.send(integrity());
    }
    assert_eq!(out.dropped(), 3);
    assert_eq!(got.lock().unwrap().len(), 3);
}

#[test]
fn with_no_sink_nothing_is_sent_and_nothing_counted_lost() {
    let out = Outbox::default();
    out.send(integrity());
    assert_eq!(out.dropped(), 0);
    assert!(!out.journaling());
}
