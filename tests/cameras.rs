//! Cameras end to end: real photos encoded into H.264 clips by GStreamer, served over RTSP by
//! kuzet-camsim (a separate process), read by kuzet's pipelines, faces found and embedded by
//! the real models, matched against a watchlist enrolled from other photos of the person.

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use common::cameras::*;
use common::*;
use kuzet::settings::Settings;
use kuzet::store::watchlist::Entry;
use kuzet_actors::ids::PersonId;
use kuzet_actors::model::{Danger, IncidentKind};
use serde_json::{json, Value};

/// Polls `f` every 100 ms until it gives Some, for up to `limit`.
async fn until<T, F: std::future::Future<Output = Option<T>>>(
    limit: Duration,
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what} did not happen within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn scalar(t: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(t.app.pool().unwrap())
        .await
        .unwrap()
}

fn is_jpeg(p: &Path) -> bool {
    std::fs::read(p).is_ok_and(|b| b.len() > 500 && b[..3] == [0xFF, 0xD8, 0xFF])
}

#[actix_rt::test]
async fn an_enrolled_person_becomes_an_incident_offered_to_the_nearest_unit_with_evidence() {
    let cams = Camsim::start(0);
    let mut devices = city(&["near", "far"]);
    devices.cameras.push(camera("cam-1", school_location(), Some(cams.uri("wanted")), false));
    let evidence = evidence_dir();
    let t = spawn_app(BrokerKind::Embedded, devices, |s| vision(s, &evidence)).await;
    let mut near = t.unit_at("near", 300.0).await;
    let _far = t.unit_at("far", 4000.0).await;
    t.wait_available(2).await;
    enrol(&t, Danger::High).await;

    let started = std::time::Instant::now();
    let offer = tokio::time::timeout(Duration::from_secs(60), next_on_patient(&mut near, "/offers"))
        .await
        .expect("an offer");
    println!("first offer {:.1} s after enrolment", started.elapsed().as_secs_f64());
    assert_eq!(offer["kind"], "wanted_person");
    assert!(offer["summary"].as_str().unwrap().contains("Wanted Person One"), "{offer}");

    let incidents = t.app.incidents().await;
    let inc: Vec<_> = incidents.iter().filter(|i| i.kind == IncidentKind::WantedPerson).collect();
    assert_eq!(inc.len(), 1);
    let s = &inc[0].sightings[0];
    assert_eq!(s.camera.as_str(), "cam-1");
    assert!(s.score >= 0.6, "auto threshold: {}", s.score);
    assert!(s.evidence);
    // The evidence was on disk before the match reached the actors.
    for which in ["face.jpg", "frame.jpg"] {
        let p = evidence.join(s.sighting_id.to_string()).join(which);
        assert!(is_jpeg(&p), "{} is a JPEG", p.display());
    }
    assert_eq!(inc[0].subject.person().unwrap().person_id.as_str(), "wp-1");

    // And over HTTP, for the console and the tablet.
    let http = t.app.http_addr().unwrap();
    let mut res = api(&t)
        .await
        .get(format!("http://{http}/api/v1/sightings/{}/face.jpg", s.sighting_id))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(&res.body().await.unwrap()[..2], &[0xFF, 0xD8]);
    let seen = format!(
        "SELECT count(*) FROM audit_log WHERE action = 'picture.read' AND subject = '{}' \
         AND details->>'picture' = 'sighting.face' AND actor LIKE 'user:%'",
        s.sighting_id
    );
    assert_eq!(scalar(&t, &seen).await, 1, "who looked at the picture is in the audit log");

    // The record: the sighting, the incident, and the audited match and enrolment. Each is
    // handed to the writer as its actor moves on (the offer may beat them by milliseconds).
    let sid = s.sighting_id;
    until(Duration::from_secs(10), "the sighting and the incident recorded", || async {
        t.app.writer().unwrap().flush().await;
        let sighting = scalar(
            &t,
            &format!("SELECT count(*) FROM sightings WHERE id = '{sid}' AND decision = 'incident'"),
        )
        .await;
        let incident = scalar(
            &t,
            "SELECT count(*) FROM incidents WHERE kind = 'wanted_person' \
             AND subject_kind = 'person' AND subject_id = 'wp-1' AND site_id IS NULL",
        )
        .await;
        let matched =
            scalar(&t, "SELECT count(*) FROM audit_log WHERE action = 'watchlist.match.incident'").await;
        (sighting == 1 && incident == 1 && matched >= 1).then_some(())
    })
    .await;
    assert_eq!(scalar(&t, "SELECT count(*) FROM audit_log WHERE action = 'watchlist.enroll'").await, 1);
    t.app.stop().await;
}

/// Like `next_on`, without its 10 s limit (the caller bounds the wait).
async fn next_on_patient(link: &mut kuzet_tools::sim::DeviceLink, suffix: &str) -> Value {
    loop {
        match link.rx.recv().await {
            Some((topic, v)) if topic.ends_with(suffix) => return v,
            Some(_) => continue,
            None => panic!("device link closed"),
        }
    }
}

#[actix_rt::test]
async fn a_stranger_leaves_nothing_behind() {
    let cams = Camsim::start(0);
    let mut devices = city(&["near"]);
    devices.cameras.push(camera("cam-1", school_location(), Some(cams.uri("stranger")), false));
    let evidence = evidence_dir();
    let t = spawn_app(BrokerKind::Embedded, devices, |s| vision(s, &evidence)).await;
    enrol(&t, Danger::High).await;
    let watch = t.app.watch().unwrap();
    let stats = &watch.matcher.stats;
    // Searched face after face, against a list that holds the wanted person.
    let baseline = stats.searches.load(Ordering::Relaxed);
    until(Duration::from_secs(60), "ten searches of the stranger's face", || async {
        (stats.searches.load(Ordering::Relaxed) >= baseline + 10).then_some(())
    })
    .await;
    assert_eq!(stats.matches.load(Ordering::Relaxed), 0);
    assert!(t.app.incidents().await.is_empty());
    assert!(watch.people.pending_reviews().is_empty());
    t.app.writer().unwrap().flush().await;
    assert_eq!(scalar(&t, "SELECT count(*) FROM sightings").await, 0);
    assert_eq!(std::fs::read_dir(&evidence).unwrap().count(), 0, "no picture of the stranger kept");
    t.app.stop().await;
    // Every search of the list is on the audit chain, summed per camera.
    let (searches, matches): (i64, i64) = sqlx::query_as(
        "SELECT coalesce(sum((details->>'searches')::int8), 0)::int8, coalesce(sum((details->>'matches')::int8), 0)::int8
         FROM audit_log WHERE action = 'watchlist.search' AND actor = 'camera:cam-1'",
    )
    .fetch_one(t.app.pool().unwrap())
    .await
    .unwrap();
    assert!(searches >= 10, "{searches} searches audited");
    assert_eq!(matches, 0);
}

#[actix_rt::test]
async fn two_cameras_one_incident_that_moves_with_the_person() {
    let cams = Camsim::start(0);
    let mut devices = city(&["near"]);
    let elsewhere = school_location().offset(1500.0, 0.0);
    devices.cameras.push(camera("cam-1", school_location(), Some(cams.uri("wanted")), false));
    devices.cameras.push(camera("cam-2", elsewhere, Some(cams.uri("wanted-elsewhere")), false));
    let evidence = evidence_dir();
    let t = spawn_app(BrokerKind::Embedded, devices, |s| vision(s, &evidence)).await;
    let mut near = t.unit_at("near", 300.0).await;
    t.wait_available(1).await;
    enrol(&t, Danger::High).await;

    let offer = tokio::time::timeout(Duration::from_secs(60), next_on_patient(&mut near, "/offers"))
        .await
        .expect("an offer");
    let incident_id = offer["incident_id"].as_str().unwrap().to_owned();
    publish(
        &near,
        kuzet::mqtt::topics::DeviceKind::Unit,
        "near",
        "reply",
        json!({"offer_id": offer["offer_id"], "decision": "accept"}),
    )
    .await;
    // The unit on it hears where the person was seen next.
    let moved = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let v = next_on_patient(&mut near, &incident_id).await;
            if v["event"] == "target_moved" {
                return v;
            }
        }
    })
    .await
    .expect("a target_moved update");
    assert!(moved["camera"] == "cam-1" || moved["camera"] == "cam-2", "{moved}");

    // Both cameras' sightings end up on the one incident.
    let snapshot = until(Duration::from_secs(60), "sightings from both cameras", || async {
        let all = t.app.incidents().await;
        let faces: Vec<_> = all.into_iter().filter(|i| i.kind == IncidentKind::WantedPerson).collect();
        assert_eq!(faces.len(), 1, "one incident for one person");
        let cams: std::collections::HashSet<_> =
            faces[0].sightings.iter().map(|s| s.camera.to_string()).collect();
        (cams.len() == 2).then(|| faces[0].clone())
    })
    .await;
    assert!(snapshot.timeline.iter().any(|e| e.event == "sighting_update"));
    let last = snapshot.sightings.last().unwrap();
    assert_eq!(snapshot.location, last.location, "the incident is where the person was seen last");
    t.app.stop().await;
}

/// The next integrity alert of `camera` in `state` (earlier states are skipped), within 60 s.
async fn alert(link: &mut kuzet_tools::sim::DeviceLink, camera: &str, state: &str) -> Value {
    let suffix = format!("/{camera}");
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let v = next_on_patient(link, &suffix).await;
            if v["state"] == state {
                return v;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {state} alert for {camera} within 60 s"))
}

#[actix_rt::test]
async fn integrity_alerts_covered_offline_and_back_custodial_to_oversight() {
    let port = free_port();
    let mut cams = Camsim::start(port);
    let mut devices = city(&[]);
    devices.cameras.push(camera("cam-street", school_location(), Some(cams.uri("covered")), false));
    devices.cameras.push(camera(
        "cam-cell",
        school_location().offset(0.0, 500.0),
        Some(cams.uri("stranger")),
        true,
    ));
    let evidence = evidence_dir();
    let t = spawn_app(BrokerKind::Embedded, devices, |s| vision(s, &evidence)).await;
    let mut console = t.observer(&["kuzet/v1/dispatch/integrity/+"]).await;
    let mut oversight = t.observer(&["kuzet/v1/oversight/integrity/+"]).await;
    // The street camera's lens is covered after 3 s of picture.
    let covered = alert(&mut console, "cam-street", "covered").await;
    assert_eq!(covered["audience"], "dispatch");

    // The camera server dies: both go offline; the custodial one's alert reaches oversight only.
    cams.kill();
    let off = alert(&mut oversight, "cam-cell", "offline").await;
    assert_eq!(off["custodial"], true);
    assert_eq!(off["audience"], "oversight");
    alert(&mut console, "cam-street", "offline").await;

    // It comes back on the same address: ok again.
    let _cams = Camsim::start(port);
    alert(&mut oversight, "cam-cell", "ok").await;
    nothing_on(&mut console, "/cam-cell", Duration::from_millis(500)).await;

    t.app.writer().unwrap().flush().await;
    assert!(
        scalar(
            &t,
            "SELECT count(*) FROM camera_alerts WHERE camera_id = 'cam-cell' AND audience = 'oversight'"
        )
        .await
            >= 2
    );
    assert!(
        scalar(&t, "SELECT count(*) FROM camera_alerts WHERE camera_id = 'cam-street' AND state = 'covered'")
            .await
            >= 1
    );
    // Custodial tampering is on the audit chain; the street camera's is not.
    assert!(
        scalar(
            &t,
            "SELECT count(*) FROM audit_log WHERE action = 'camera.integrity' AND subject = 'cam-cell'"
        )
        .await
            >= 2
    );
    assert_eq!(
        scalar(
            &t,
            "SELECT count(*) FROM audit_log WHERE action = 'camera.integrity' AND subject = 'cam-street'"
        )
        .await,
        0
    );
    t.app.stop().await;
}

#[actix_rt::test]
async fn a_match_between_the_thresholds_waits_for_review_and_a_rejection_is_remembered() {
    let cams = Camsim::start(0);
    let mut devices = city(&["near"]);
    devices.cameras.push(camera("cam-1", school_location(), Some(cams.uri("wanted")), false));
    let evidence = evidence_dir();
    // Auto threshold out of reach: every match is between review and auto.
    let t = spawn_app(BrokerKind::Embedded, devices, |s| {
        vision(s, &evidence);
        s.vision.auto_threshold = 0.99;
    })
    .await;
    let mut console = t.observer(&["kuzet/v1/dispatch/reviews/+"]).await;
    enrol(&t, Danger::High).await;

    let review =
        tokio::time::timeout(Duration::from_secs(60), next_on_patient(&mut console, "")).await.unwrap();
    assert_eq!(review["state"], "pending");
    assert_eq!(review["person"]["person_id"], "wp-1");
    let score = review["sightings"][0]["score"].as_f64().unwrap();
    assert!((0.40..0.99).contains(&score), "{score}");
    assert!(t.app.incidents().await.is_empty(), "no incident before a dispatcher decides");

    let http = t.app.http_addr().unwrap();
    let client = api(&t).await;
    let mut listed = client.get(format!("http://{http}/api/v1/reviews")).send().await.unwrap();
    let listed: Value = listed.json().await.unwrap();
    assert_eq!(listed[0]["review_id"], review["review_id"]);
    let id = review["review_id"].as_str().unwrap();
    let res =
        client.post(format!("http://{http}/api/v1/reviews/{id}/reject")).send_json(&json!({})).await.unwrap();
    assert_eq!(res.status(), 200);
    // The rejected face was someone else's: its pictures are gone.
    for s in review["sightings"].as_array().unwrap() {
        let dir = evidence.join(s["sighting_id"].as_str().unwrap());
        assert!(!dir.exists(), "{} deleted", dir.display());
    }

    // Kept as a negative example; the same face on the same camera is no longer a match.
    let watch = t.app.watch().unwrap();
    assert!(watch.matcher.gallery().negatives() >= 1);
    let pool = t.app.pool().unwrap();
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM watchlist_negatives WHERE person_id = 'wp-1' AND camera_id = 'cam-1'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(n >= 1);
    let suppressed = watch.matcher.stats.suppressed.load(Ordering::Relaxed);
    until(Duration::from_secs(30), "the rejected face suppressed", || async {
        (watch.matcher.stats.suppressed.load(Ordering::Relaxed) > suppressed + 2).then_some(())
    })
    .await;
    assert!(watch.people.pending_reviews().is_empty());
    assert!(t.app.incidents().await.is_empty());
    t.app.writer().unwrap().flush().await;
    assert!(scalar(&t, "SELECT count(*) FROM sightings WHERE decision = 'rejected'").await >= 1);
    assert_eq!(scalar(&t, "SELECT count(*) FROM audit_log WHERE action = 'review.reject'").await, 1);
    t.app.stop().await;
}

#[actix_rt::test]
async fn a_confirmed_review_opens_an_incident() {
    let cams = Camsim::start(0);
    let mut devices = city(&["near"]);
    devices.cameras.push(camera("cam-1", school_location(), Some(cams.uri("wanted")), false));
    let evidence = evidence_dir();
    let t = spawn_app(BrokerKind::Embedded, devices, |s| vision(s, &evidence)).await;
    let mut near = t.unit_at("near", 300.0).await;
    t.wait_available(1).await;
    let mut console = t.observer(&["kuzet/v1/dispatch/reviews/+"]).await;
    // Medium danger: never opens an incident on its own, whatever the score.
    enrol(&t, Danger::Medium).await;
    let review =
        tokio::time::timeout(Duration::from_secs(60), next_on_patient(&mut console, "")).await.unwrap();
    assert!(review["sightings"][0]["score"].as_f64().unwrap() >= 0.6, "a strong match, still reviewed");
    let id = review["review_id"].as_str().unwrap();
    let http = t.app.http_addr().unwrap();
    let mut res = api(&t)
        .await
        .post(format!("http://{http}/api/v1/reviews/{id}/confirm"))
        .send_json(&json!({}))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let decided: Value = res.json().await.unwrap();
    assert_eq!(decided["state"], "confirmed");
    let offer = next_on(&mut near, "/offers").await;
    assert_eq!(offer["incident_id"], decided["incident_id"]);
    let inc = t.app.incidents().await;
    assert!(inc[0]
        .timeline
        .iter()
        .any(|e| e.event == "match_confirmed"
            && e.detail.as_deref().is_some_and(|d| d.contains("supervisor-"))));
    t.app.stop().await;
}

#[actix_rt::test]
async fn edge_camera_detections_join_the_same_path_and_bad_ones_are_refused() {
    let t = edge_app(|_| {}).await;
    let mut near = t.unit_at("near", 300.0).await;
    t.wait_available(1).await;
    let (mut models, emb) = edge_probe();
    enrol_expiring(&t, &mut models, Utc::now() + chrono::Duration::days(30)).await;
    let mut cam = edge_camera(&t, &[kuzet::mqtt::topics::rejects("edge-1")]).await;
    let bad = [
        json!({"at": Utc::now(), "faces": [{"embedding": [0.1, 0.2], "score": 0.9}]}),
        json!({"at": Utc::now(), "faces": [{"embedding": vec![0.0; 128], "score": 0.9}]}),
        json!({"at": "yesterday", "faces": []}),
    ];
    for b in &bad {
        publish(&cam, kuzet::mqtt::topics::DeviceKind::Camera, "edge-1", "detections", b.clone()).await;
        let r = next_on(&mut cam, "rejects/edge-1").await;
        assert!(r["code"] == "invalid_payload" || r["code"] == "malformed_json", "{r}");
    }
    publish(
        &cam,
        kuzet::mqtt::topics::DeviceKind::Camera,
        "edge-1",
        "detections",
        json!({"at": Utc::now(), "faces": [{"embedding": emb, "score": 0.95}]}),
    )
    .await;
    let offer = next_on(&mut near, "/offers").await;
    assert_eq!(offer["kind"], "wanted_person");
    let inc = t.app.incidents().await;
    assert!(!inc[0].sightings[0].evidence, "an edge camera sends no pictures");
    t.app.stop().await;
}

#[actix_rt::test]
async fn a_pending_review_and_a_face_incident_survive_a_restart() {
    let cams = Camsim::start(0);
    let url = fresh_database().await;
    let evidence = evidence_dir();
    let devices = || {
        let mut d = city(&["near"]);
        d.cameras.push(camera("cam-1", school_location(), Some(cams.uri("wanted")), false));
        d
    };
    let settings = |s: &mut Settings, auto: f32| {
        vision(s, &evidence);
        s.database.url = kuzet::settings::Secret::new(url.clone());
        s.vision.auto_threshold = auto;
    };

    // A match waits for review when kuzet stops.
    let t = spawn_app(BrokerKind::Embedded, devices(), |s| settings(s, 0.99)).await;
    let mut console = t.observer(&["kuzet/v1/dispatch/reviews/+"]).await;
    enrol(&t, Danger::High).await;
    let review =
        tokio::time::timeout(Duration::from_secs(60), next_on_patient(&mut console, "")).await.unwrap();
    let review_id = review["review_id"].as_str().unwrap().to_owned();
    t.app.stop().await;
    drop(t);

    // After the restart the dispatcher still sees it, and can reject it: the rejected face
    // is still there to keep as a negative example.
    let t = spawn_app(BrokerKind::Embedded, devices(), |s| settings(s, 0.99)).await;
    let watch = t.app.watch().unwrap();
    until(Duration::from_secs(10), "the review restored", || async {
        watch.people.review(kuzet_actors::ids::ReviewId(review_id.parse().unwrap())).map(|_| ())
    })
    .await;
    let http = t.app.http_addr().unwrap();
    let res = api(&t)
        .await
        .post(format!("http://{http}/api/v1/reviews/{review_id}/reject"))
        .send_json(&json!({}))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let negatives: i64 =
        sqlx::query_scalar("SELECT count(*) FROM watchlist_negatives WHERE review_id = $1::uuid")
            .bind(&review_id)
            .fetch_one(t.app.pool().unwrap())
            .await
            .unwrap();
    assert!(negatives >= 1, "the rejected face kept after a restart");
    t.app.stop().await;
    drop(t);

    // A face incident open when kuzet stops is picked up again, and later sightings move it
    // rather than opening a second one. (A second camera: the first now has a negative.)
    let elsewhere = || {
        let mut d = devices();
        d.cameras.push(camera(
            "cam-2",
            school_location().offset(800.0, 0.0),
            Some(cams.uri("wanted-elsewhere")),
            false,
        ));
        d
    };
    let t = spawn_app(BrokerKind::Embedded, elsewhere(), |s| settings(s, 0.6)).await;
    let incident = until(Duration::from_secs(60), "a face incident", || async {
        t.app.incidents().await.into_iter().find(|i| i.kind == IncidentKind::WantedPerson)
    })
    .await;
    t.app.stop().await;
    drop(t);
    // A third camera comes with the restart: the person seen somewhere new.
    let more = || {
        let mut d = elsewhere();
        d.cameras.push(camera(
            "cam-3",
            school_location().offset(-700.0, 0.0),
            Some(cams.uri("wanted")),
            false,
        ));
        d
    };
    let t = spawn_app(BrokerKind::Embedded, more(), |s| settings(s, 0.6)).await;
    let moved = until(Duration::from_secs(60), "a sighting on the restored incident", || async {
        let all = t.app.incidents().await;
        let faces: Vec<_> = all.into_iter().filter(|i| i.kind == IncidentKind::WantedPerson).collect();
        assert!(faces.len() <= 1, "one incident for one person, across a restart");
        faces
            .into_iter()
            .find(|i| {
                i.incident_id == incident.incident_id && i.timeline.iter().any(|e| e.event == "restored")
            })
            .filter(|i| i.sightings.len() > incident.sightings.len())
    })
    .await;
    assert!(moved.timeline.iter().any(|e| e.event == "sighting_update"));
    t.app.stop().await;
}

#[actix_rt::test]
async fn expired_and_removed_entries_stop_matching() {
    let t = edge_app(|s| s.vision.rematch_s = 0.0).await;
    let (mut models, emb) = edge_probe();
    let cam = edge_camera(&t, &[]).await;
    let watch = t.app.watch().unwrap();
    let stats = &watch.matcher.stats;
    let detect = || json!({"at": Utc::now(), "faces": [{"embedding": emb.clone()}]});
    // Searched `n` faces so far: wait until the gateway's search ran.
    let searched = |n: u64| async move {
        until(Duration::from_secs(10), "the search", || async {
            (stats.searches.load(Ordering::Relaxed) >= n).then_some(())
        })
        .await
    };

    // On the list until a second from now; a match now...
    enrol_expiring(&t, &mut models, Utc::now() + chrono::Duration::seconds(2)).await;
    publish(&cam, kuzet::mqtt::topics::DeviceKind::Camera, "edge-1", "detections", detect()).await;
    searched(1).await;
    assert_eq!(stats.matches.load(Ordering::Relaxed), 1);
    // ... none once it has expired.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    publish(&cam, kuzet::mqtt::topics::DeviceKind::Camera, "edge-1", "detections", detect()).await;
    searched(2).await;
    assert_eq!(stats.matches.load(Ordering::Relaxed), 1, "an expired entry matched");

    // Enrolled again for a month, then removed over the API: no match, and audited.
    enrol_expiring(&t, &mut models, Utc::now() + chrono::Duration::days(30)).await;
    publish(&cam, kuzet::mqtt::topics::DeviceKind::Camera, "edge-1", "detections", detect()).await;
    searched(3).await;
    assert_eq!(stats.matches.load(Ordering::Relaxed), 2);
    let http = t.app.http_addr().unwrap();
    let res = api(&t)
        .await
        .delete(format!("http://{http}/api/v1/watchlist/wp-1"))
        .send_json(&json!({"reason": "warrant served"}))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    publish(&cam, kuzet::mqtt::topics::DeviceKind::Camera, "edge-1", "detections", detect()).await;
    searched(4).await;
    assert_eq!(stats.matches.load(Ordering::Relaxed), 2, "a removed entry matched");
    assert!(watch.people.person("wp-1").is_none());
    assert_eq!(scalar(&t, "SELECT count(*) FROM watchlist").await, 0);
    assert_eq!(scalar(&t, "SELECT count(*) FROM audit_log WHERE action = 'watchlist.remove'").await, 1);
    let again = api(&t)
        .await
        .delete(format!("http://{http}/api/v1/watchlist/wp-1"))
        .send_json(&json!({"reason": "twice"}))
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
    t.app.stop().await;
}

/// Enrols the wanted person (high danger) until `expires_at`.
async fn enrol_expiring(
    t: &TestApp,
    models: &mut kuzet_vision::FaceModels,
    expires_at: chrono::DateTime<Utc>,
) {
    let photos = ["face_recognition/obama2.jpg", "face_recognition/obama3.jpg"]
        .map(|p| kuzet::vision::read_photo(&face(p)).unwrap())
        .to_vec();
    let e = kuzet::vision::enrolment(models, &photos).unwrap();
    let entry = Entry {
        id: PersonId::parse("wp-1").unwrap(),
        name: "Wanted Person One".into(),
        legal_basis: "arrest warrant".into(),
        case_ref: None,
        danger: Danger::High,
        expires_at,
        embedding: e.embedding.to_vec(),
        photos: 2,
        enrolled_by: "user:test".into(),
        approved_by: None,
    };
    kuzet::store::watchlist::enroll(
        t.app.pool().unwrap(),
        &entry,
        Some(&e.face_jpeg),
        &e.photo_sha256,
        "user:test",
    )
    .await
    .unwrap();
    // High danger: a second person approves before it dispatches without review.
    t.app.watch().unwrap().approve("wp-1", "user:second").await.unwrap();
}

/// The face models, and the embedding an edge camera would send for the wanted person (a photo
/// other than those enrolled), computed with the same models.
fn edge_probe() -> (kuzet_vision::FaceModels, Vec<f64>) {
    let dir = root().join("target/models");
    let mut models = kuzet_vision::FaceModels::load(&kuzet_vision::ModelPaths::in_dir(&dir), 1).unwrap();
    let photo = kuzet::vision::read_photo(&face("face_recognition/obama.jpg")).unwrap();
    let probe = kuzet::vision::enrolment(&mut models, &[photo]).unwrap();
    let emb = probe.embedding.iter().map(|v| *v as f64).collect();
    (models, emb)
}

/// Camera `edge-1` connected as a device, subscribed to `subscriptions`.
async fn edge_camera(t: &TestApp, subscriptions: &[String]) -> kuzet_tools::sim::DeviceLink {
    let kind = kuzet::mqtt::topics::DeviceKind::Camera;
    kuzet_tools::sim::connect_device(&t.host, t.port, kind, "edge-1", &pw("edge-1"), subscriptions)
        .await
        .unwrap()
}

/// An HTTP client signed in as a supervisor (who may use every console route).
async fn api(t: &TestApp) -> awc::Client {
    let base = format!("http://{}", t.app.http_addr().unwrap());
    let token = sign_in_as(t.app.pool().unwrap(), &base, kuzet::auth::Role::Supervisor).await;
    awc::Client::builder().add_default_header(("Authorization", format!("Bearer {token}"))).finish()
}

/// kuzet with unit `near` and camera `edge-1`, which does its own detection (no pipelines).
async fn edge_app(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let mut devices = city(&["near"]);
    devices.cameras.push(camera("edge-1", school_location(), None, false));
    let evidence = evidence_dir();
    spawn_app(BrokerKind::Embedded, devices, |s| {
        vision(s, &evidence);
        s.vision.enabled = false;
        tweak(s);
    })
    .await
}

/// Signs in an officer of `unit` at `base`; the token.
async fn officer_of(t: &TestApp, base: &str, unit: &str) -> String {
    let name = format!("officer-{unit}");
    kuzet::auth::add_user(
        t.app.pool().unwrap(),
        &name,
        kuzet::auth::Role::Officer,
        Some(unit),
        "correct horse battery",
        "user:test",
    )
    .await
    .unwrap();
    let mut res = client()
        .post(format!("{base}/api/v1/session"))
        .send_json(&json!({"username": name, "password": "correct horse battery"}))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
}

/// GET `path` with `token`: the status.
async fn get_as(base: &str, path: &str, token: &str) -> u16 {
    client()
        .get(format!("{base}{path}"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[actix_rt::test]
async fn a_high_danger_entry_dispatches_unreviewed_only_once_a_second_person_approves_it() {
    use base64::Engine as _;
    // The same face twice from one camera is matched twice (once before approval, once after).
    let t = edge_app(|s| s.vision.rematch_s = 0.0).await;
    let mut near = t.unit_at("near", 300.0).await;
    t.wait_available(1).await;
    let (_models, emb) = edge_probe();
    let base = format!("http://{}", t.app.http_addr().unwrap());
    let pool = t.app.pool().unwrap();
    let enroller = sign_in_as(pool, &base, kuzet::auth::Role::Supervisor).await;
    let second = sign_in_as(pool, &base, kuzet::auth::Role::Supervisor).await;
    let as_user = |token: &str| {
        awc::Client::builder().add_default_header(("Authorization", format!("Bearer {token}"))).finish()
    };
    let photos: Vec<String> = ["face_recognition/obama2.jpg", "face_recognition/obama3.jpg"]
        .iter()
        .map(|p| base64::engine::general_purpose::STANDARD.encode(std::fs::read(face(p)).unwrap()))
        .collect();
    let mut res = as_user(&enroller)
        .post(format!("{base}/api/v1/watchlist"))
        .send_json(&json!({"id": "wp-1", "name": "Wanted Person One", "legal_basis": "arrest warrant",
                           "danger": "high", "expires_at": Utc::now() + chrono::Duration::days(30),
                           "photos": photos}))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["approval"], "pending");

    // Unapproved, a match waits for a dispatcher's review: nobody is sent.
    let mut console = t.observer(&["kuzet/v1/dispatch/reviews/+"]).await;
    let cam = edge_camera(&t, &[]).await;
    let detect = || json!({"at": Utc::now(), "faces": [{"embedding": emb.clone(), "score": 0.95}]});
    publish(&cam, kuzet::mqtt::topics::DeviceKind::Camera, "edge-1", "detections", detect()).await;
    let review = next_on(&mut console, "").await;
    assert_eq!(review["person"]["person_id"], "wp-1", "{review}");
    nothing_on(&mut near, "/offers", Duration::from_millis(500)).await;
    // An officer reads no picture of someone their unit was not sent to.
    let officer = officer_of(&t, &base, "near").await;
    assert_eq!(get_as(&base, "/api/v1/watchlist/wp-1/face.jpg", &officer).await, 403);

    // The one who enrolled it cannot approve it; a second supervisor can, once.
    let approve = |token: &str| {
        as_user(token).post(format!("{base}/api/v1/watchlist/wp-1/approve")).send_json(&json!({}))
    };
    assert_eq!(approve(&enroller).await.unwrap().status(), 403);
    let mut res = approve(&second).await.unwrap();
    assert_eq!(res.status(), 200);
    let approved: Value = res.json().await.unwrap();
    assert_eq!(approved["approval"], "approved");
    assert_ne!(approved["approved_by"], approved["enrolled_by"]);
    assert_eq!(approve(&second).await.unwrap().status(), 409);
    assert_eq!(
        scalar(&t, "SELECT count(*) FROM audit_log WHERE action = 'watchlist.approve' AND subject = 'wp-1'")
            .await,
        1
    );
    let list: Value =
        as_user(&second).get(format!("{base}/api/v1/watchlist")).send().await.unwrap().json().await.unwrap();
    assert_eq!(list[0]["approval"], "approved", "{list}");

    // Approved: the next match dispatches at once.
    publish(&cam, kuzet::mqtt::topics::DeviceKind::Camera, "edge-1", "detections", detect()).await;
    let offer = next_on(&mut near, "/offers").await;
    assert_eq!(offer["kind"], "wanted_person");
    // The officer sent reads the person's picture and the incident's sightings; another not.
    let other = officer_of(&t, &base, "unit-9").await;
    assert_eq!(get_as(&base, "/api/v1/watchlist/wp-1/face.jpg", &officer).await, 200);
    assert_eq!(get_as(&base, "/api/v1/watchlist/wp-1/face.jpg", &other).await, 403);
    let inc = t.app.incidents().await;
    let sighting = inc[0].sightings[0].sighting_id;
    let path = format!("/api/v1/sightings/{sighting}/face.jpg");
    assert_eq!(get_as(&base, &path, &other).await, 403);
    // Past the check: an edge camera sends no pictures, so there is none to give.
    assert_eq!(get_as(&base, &path, &officer).await, 404);
    t.app.stop().await;
}
