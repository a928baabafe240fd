//! kuzet rides out a broker that dies: it reconnects with backoff, subscribes again, and
//! dispatches the next alarm as if nothing happened.

mod common;

use std::time::Duration;

use common::*;
use kuzet::mqtt::topics::DeviceKind::Button;
use uuid::Uuid;

#[actix_rt::test]
async fn after_the_broker_is_killed_and_restarted_alarms_are_dispatched_again() {
    let mut t = spawn_app(BrokerKind::Mosquitto, city(&["u1"]), one_unit).await;
    let mut u1 = t.unit_at("u1", 300.0).await;
    t.wait_available(1).await;

    let broker = t.mosquitto.as_mut().expect("a private mosquitto");
    broker.kill();
    // Every link of kuzet notices the broken link (the first to notice is not enough: another
    // still Ready would let the alarm go out before its link subscribed again); the broker
    // comes back on the same port, empty (this test broker keeps no sessions on disk), so
    // kuzet must subscribe anew.
    assert!(t.app.wait_down(Duration::from_secs(10)).await, "kuzet did not notice the broker dying");
    assert!(t.app.metrics().broker_disconnects.load(std::sync::atomic::Ordering::Relaxed) >= 3);
    broker.restart().expect("mosquitto restarts");
    assert!(t.app.wait_ready(Duration::from_secs(15)).await, "kuzet reconnected and subscribed");

    // The devices reconnect too (their own clients retry); the tablet reports again.
    drop(u1);
    u1 = t.unit_at("u1", 300.0).await;
    let mut btn = t.button("btn-a").await;
    publish(&btn, Button, "btn-a", "alarm", raise(&Uuid::new_v4())).await;
    assert_eq!(next_ack(&mut btn).await["state"], "received");
    let offer = next_on(&mut u1, "/offers").await;
    assert!((offer["distance_m"].as_f64().unwrap() - 300.0).abs() < 2.0, "{offer}");
}
