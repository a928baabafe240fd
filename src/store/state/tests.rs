//! The local copy: what a start without the database reads back.

use super::*;
use crate::store::rows::{AlarmRow, IncidentRow, PositionRow};
use kuzet_actors::dispatch::Dispatch;
use kuzet_actors::ids::SiteId;
use kuzet_actors::model::{IncidentKind, Priority, ResponsePlan};
use kuzet_actors::snapshot::TimelineEntry;
use kuzet_actors::spec::{ButtonSpec, SiteKind, SiteSpec, UnitSpec};
use kuzet_actors::subject::{SiteRef, Subject};

fn devices() -> Devices {
    let at = GeoPoint::new(43.238, 76.945).unwrap();
    Devices {
        sites: vec![SiteSpec {
            id: SiteId::parse("school-1").unwrap(),
            name: "School".into(),
            kind: SiteKind::School,
            location: at,
            buttons: vec![ButtonSpec {
                id: ButtonId::parse("btn-1").unwrap(),
                room: Some("12".into()),
                password: Some("button-secret".into()),
            }],
        }],
        units: vec![UnitSpec {
            id: UnitId::parse("u-1").unwrap(),
            callsign: "U1".into(),
            password: Some("unit-secret".into()),
        }],
        cameras: Vec::new(),
    }
}

fn alarm(incident: Uuid) -> AlarmRow {
    AlarmRow {
        alarm_id: Uuid::new_v4(),
        button_id: "btn-1".into(),
        action: "raise".into(),
        kind: Some("intruder".into()),
        device_at: Utc::now(),
        received_at: Utc::now(),
        incident_id: Some(incident),
    }
}

fn incident(id: Uuid, alarm: Uuid, state: IncidentState, entries: usize) -> IncidentRow {
    let snapshot = IncidentSnapshot {
        incident_id: IncidentId(id),
        kind: IncidentKind::SchoolAlarm,
        priority: Priority(1),
        state,
        location: GeoPoint::new(43.238, 76.945).unwrap(),
        subject: Subject::Site(SiteRef {
            id: SiteId::parse("school-1").unwrap(),
            name: "School 1".into(),
            room: None,
        }),
        raised_by: vec![Raiser {
            button: ButtonId::parse("btn-1").unwrap(),
            alarm_id: AlarmId(alarm),
            room: None,
            kind: AlarmKind::default(),
            withdrawn: false,
        }],
        opened_at: Utc::now(),
        units: Vec::new(),
        offers: Vec::new(),
        escalated: None,
        timeline: (0..entries)
            .map(|_| TimelineEntry {
                at: Utc::now(),
                t_us: 0,
                event: "alarm_received".into(),
                unit: None,
                button: None,
                detail: None,
            })
            .collect(),
        sightings: Vec::new(),
    };
    let dispatch = DispatchState {
        dispatch: Dispatch::new(ResponsePlan::school_alarm_default()),
        offer_expiry: Vec::new(),
    };
    IncidentRow {
        id,
        kind: "school_alarm".into(),
        priority: 1,
        state: enum_str(&state),
        site_id: Some("school-1".into()),
        subject_kind: Some("site".into()),
        subject_id: Some("school-1".into()),
        lat: 43.238,
        lon: 76.945,
        opened_at: snapshot.opened_at,
        closed_at: None,
        escalated: None,
        snapshot: serde_json::to_string(&snapshot).unwrap(),
        dispatch: serde_json::to_string(&dispatch).unwrap(),
        updated_at: Utc::now(),
    }
}

fn position(unit: &str, at: DateTime<Utc>) -> PositionRow {
    PositionRow {
        unit_id: unit.into(),
        at,
        received_at: at,
        lat: 43.24,
        lon: 76.95,
        speed_mps: None,
        heading_deg: None,
    }
}

/// Through the file and back, as the next start reads it.
fn reread(m: &mut Mirror, dir: &Path) -> (Restored, Vec<(IncidentId, usize)>) {
    let bytes = serde_json::to_vec(&m.state()).unwrap();
    replace_durably(&dir.join(FILE), &bytes).unwrap();
    LocalState::load(dir).unwrap().expect("a copy").restored(Duration::from_secs(300))
}

#[test]
fn the_copy_follows_an_incident_from_its_alarm_to_its_end() {
    let tmp = tempfile::tempdir().unwrap();
    let mut m = Mirror::new(LocalState::empty(&devices()));
    let (id, a) = (Uuid::new_v4(), alarm(Uuid::nil()));
    let a = AlarmRow { incident_id: Some(id), ..a };
    let old = Utc::now() - chrono::TimeDelta::seconds(10);
    let mut b = Batch::new();
    b.alarms.push(a.clone());
    b.positions.extend([position("u-1", Utc::now()), position("u-1", old), position("u-2", old)]);
    m.apply(&b);
    assert!(m.changed);
    let (r, written) = reread(&mut m, tmp.path());
    assert!(!m.changed);
    assert_eq!(r.orphans.len(), 1, "the alarm's incident is not recorded yet");
    assert_eq!(r.orphans[0].raiser.room.as_deref(), Some("12"), "room from the devices");
    assert_eq!(r.orphans[0].incident_id, IncidentId(id));
    assert!(r.incidents.is_empty() && written.is_empty());
    assert_eq!(r.positions.len(), 2);
    assert!(r.positions.iter().any(|(u, _, at)| u.as_str() == "u-1" && *at > old), "the latest position");

    let mut b = Batch::new();
    b.incidents.push(incident(id, a.alarm_id, IncidentState::Dispatching, 3));
    m.apply(&b);
    let (r, written) = reread(&mut m, tmp.path());
    assert!(r.orphans.is_empty(), "the incident is recorded now");
    assert_eq!(r.incidents.len(), 1);
    assert_eq!(written, vec![(IncidentId(id), 3)]);

    // A late copy of the alarm (a redelivery) does not make it an orphan again once ended.
    let mut b = Batch::new();
    b.incidents.push(incident(id, a.alarm_id, IncidentState::Cancelled, 5));
    b.alarms.push(a.clone());
    m.apply(&b);
    let mut late = Batch::new();
    late.alarms.push(a.clone());
    m.apply(&late);
    let (r, _) = reread(&mut m, tmp.path());
    assert!(r.incidents.is_empty() && r.orphans.is_empty());
    assert_eq!(r.recent_alarms.len(), 1);
    assert_eq!(r.recent_alarms[0].1, AlarmId(a.alarm_id));
    assert_eq!(r.recent_alarms[0].3, AckState::Cancelled);
}

#[test]
fn the_copy_holds_no_password_and_the_registry_file_wins() {
    let local = without_passwords(&devices());
    let text = serde_json::to_string(&LocalState::empty(&devices())).unwrap();
    assert!(!text.contains("secret"), "{text}");
    let mut file = devices();
    // The button moved to a new site, and a unit was renamed.
    let mut site = file.sites.remove(0);
    site.id = SiteId::parse("school-2").unwrap();
    file.sites.push(site);
    file.units[0].callsign = "U1-NEW".into();
    let merged = merge_devices(&local, &file);
    merged.validate().expect("no button twice");
    assert_eq!(merged.sites.len(), 2);
    assert!(merged.sites[0].buttons.is_empty());
    assert_eq!(merged.sites[1].buttons[0].password.as_deref(), Some("button-secret"));
    assert_eq!(merged.units.len(), 1);
    assert_eq!(merged.units[0].callsign, "U1-NEW");
}

#[test]
fn a_replaced_copy_is_whole_and_no_temporary_file_stays() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(LocalState::load(tmp.path()).unwrap().is_none(), "no copy yet");
    let path = tmp.path().join(FILE);
    replace_durably(&path, b"a longer first version").unwrap();
    replace_durably(&path, b"short").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"short");
    let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from(FILE)]);
    assert!(LocalState::load(tmp.path()).is_err(), "a file that is not a state is an error");
}
