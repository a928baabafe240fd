//! Dispatch by drive time on the Helsinki road network (the extract scripts/setup.sh fetches).

mod common;

use std::path::Path;
use std::sync::{Arc, OnceLock};

use common::*;
use kuzet::mqtt::topics::DeviceKind::Button;
use kuzet::roads::RoadNetwork;
use kuzet_actors::geo::GeoPoint;
use uuid::Uuid;

const EXTRACT: &str = "target/osm/Helsinki.osm.pbf";

fn helsinki() -> Arc<RoadNetwork> {
    static NET: OnceLock<Arc<RoadNetwork>> = OnceLock::new();
    NET.get_or_init(|| {
        assert!(Path::new(EXTRACT).exists(), "{EXTRACT} is missing: run scripts/setup.sh");
        let cache = tempfile::tempdir().expect("temp dir");
        let (net, report) =
            RoadNetwork::load(Path::new(EXTRACT), cache.path(), false).expect("Helsinki loads");
        assert!(report.nodes > 1000, "{report:?}");
        Arc::new(net)
    })
    .clone()
}

/// Two units and an incident, all on the network, where the unit nearer in a straight line
/// takes clearly longer to drive there (one-way streets, blocks in the way).
fn a_case_where_straight_line_misleads(net: &RoadNetwork) -> (GeoPoint, GeoPoint, GeoPoint) {
    let n = net.graph().node_count() as u64;
    let mut seed = 12345u64;
    let mut next = || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((seed >> 33) % n) as u32
    };
    for _ in 0..20_000 {
        let (i, a, b) = (next(), next(), next());
        let (pi, pa, pb) = (net.graph().point(i), net.graph().point(a), net.graph().point(b));
        let (da, db) = (pa.distance_m(&pi), pb.distance_m(&pi));
        if !(100.0..600.0).contains(&da) || db < da * 1.1 {
            continue;
        }
        let (Some((ta, _)), Some((tb, _))) = (net.node_time(a, i), net.node_time(b, i)) else { continue };
        if ta > tb * 3 / 2 && ta > tb + 30_000 {
            return (pi, pa, pb);
        }
    }
    panic!("no case found where the straight-line nearest unit is slower");
}

#[actix_rt::test]
async fn the_fastest_unit_by_road_gets_the_offer_not_the_nearest() {
    let net = helsinki();
    let (incident, near, fast) = a_case_where_straight_line_misleads(&net);
    assert!(near.distance_m(&incident) < fast.distance_m(&incident));
    let t = spawn_app_with_roads(
        BrokerKind::Embedded,
        city_at(incident, &["u-near", "u-fast"]),
        Some(net.clone()),
        one_unit,
    )
    .await;
    let mut u_near = t.unit_at_point("u-near", near).await;
    let mut u_fast = t.unit_at_point("u-fast", fast).await;
    t.wait_available(2).await;
    let btn = t.button("btn-a").await;
    publish(&btn, Button, "btn-a", "alarm", raise(&Uuid::new_v4())).await;

    let offer = next_on(&mut u_fast, "/offers").await;
    nothing_on(&mut u_near, "/offers", std::time::Duration::from_millis(300)).await;
    // The offer carries the road figures and the route, not the straight line.
    let leg = net.leg(&fast, &incident, &net.snap(&incident).unwrap()).unwrap();
    assert_eq!(offer["eta_s"].as_u64().unwrap(), leg.time_s.round() as u64, "{offer}");
    assert!((offer["distance_m"].as_f64().unwrap() - leg.distance_m.round()).abs() <= 1.0, "{offer}");
    assert!(
        offer["distance_m"].as_f64().unwrap() >= fast.distance_m(&incident) - 1.0,
        "a road is never shorter than the straight line"
    );
    assert!(offer["route_polyline"].as_str().is_some_and(|p| p.len() > 4), "{offer}");
}

#[actix_rt::test]
async fn an_incident_off_the_network_is_ranked_by_straight_line() {
    let net = helsinki();
    // 5 km south of a road node, beyond the small extract's edge: no road within reach.
    let incident = net.graph().point(0).offset(-5_000.0, 0.0);
    assert!(net.snap(&incident).is_none());
    let t = spawn_app_with_roads(
        BrokerKind::Embedded,
        city_at(incident, &["u1", "u2"]),
        Some(net.clone()),
        one_unit,
    )
    .await;
    let mut u1 = t.unit_at_point("u1", incident.offset(300.0, 0.0)).await;
    let _u2 = t.unit_at_point("u2", incident.offset(900.0, 0.0)).await;
    t.wait_available(2).await;
    let btn = t.button("btn-a").await;
    publish(&btn, Button, "btn-a", "alarm", raise(&Uuid::new_v4())).await;
    let offer = next_on(&mut u1, "/offers").await;
    assert!((offer["distance_m"].as_f64().unwrap() - 300.0).abs() < 2.0, "{offer}");
    assert!(offer.get("route_polyline").is_none(), "{offer}");
}
