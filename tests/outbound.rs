//! What kuzet publishes is never dropped: with the MQTT client's queue far smaller than a
//! burst of notifications, every one still reaches a subscriber, in order, through a real
//! Mosquitto, and the gateway counts the publishes that had to wait.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use kuzet::metrics::Metrics;
use kuzet::mosquitto::MosquittoProcess;
use kuzet::mqtt::gateway::{self, Gateway};
use kuzet_actors::ids::{AlarmId, ButtonId, IncidentId};
use kuzet_actors::model::AckState;
use kuzet_actors::outbound::{ButtonAck, Notify};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};

#[actix_rt::test]
async fn a_burst_larger_than_the_client_queue_is_published_whole_and_in_order() {
    const BURST: usize = 2_000;
    let broker = MosquittoProcess::start(None).expect("mosquitto starts");

    let mut o = MqttOptions::new("watcher", "127.0.0.1", broker.port);
    o.set_keep_alive(Duration::from_secs(30));
    let (watcher, mut watcher_loop) = AsyncClient::new(o, 16);
    watcher.subscribe("kuzet/v1/buttons/+/ack", QoS::AtLeastOnce).await.unwrap();
    let (tx, mut received) = tokio::sync::mpsc::unbounded_channel();
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut subscribed_tx = Some(subscribed_tx);
        loop {
            match watcher_loop.poll().await {
                Ok(Event::Incoming(Incoming::SubAck(_))) => {
                    if let Some(s) = subscribed_tx.take() {
                        let _ = s.send(());
                    }
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
                    let _ = tx.send(v["alarm_id"].as_str().unwrap().to_owned());
                }
                Ok(_) => {}
                Err(e) => panic!("watcher lost the broker: {e}"),
            }
        }
    });
    subscribed.await.unwrap();

    // kuzet's outbound connection with a queue of 4 requests: a burst must wait for room.
    let metrics = Arc::new(Metrics::default());
    let mut o = MqttOptions::new("kuzet-out", "127.0.0.1", broker.port);
    o.set_keep_alive(Duration::from_secs(30));
    let (client, eventloop) = AsyncClient::new(o, 4);
    actix::spawn(gateway::drive_outbound(eventloop, metrics.clone()));
    let gateway = Gateway::new(client, metrics.clone()).start();

    let button = ButtonId::parse("btn-1").unwrap();
    let incident = IncidentId::new_random();
    let sent: Vec<AlarmId> = (0..BURST).map(|_| AlarmId::new_random()).collect();
    for alarm_id in &sent {
        let ack =
            ButtonAck { alarm_id: *alarm_id, incident_id: incident, state: AckState::Received, eta_s: None };
        gateway.do_send(Notify::Ack { button: button.clone(), ack });
    }

    let mut got = Vec::with_capacity(BURST);
    while got.len() < BURST {
        let next = tokio::time::timeout(Duration::from_secs(30), received.recv()).await;
        let Ok(Some(id)) = next else {
            panic!("{} of {BURST} acks arrived", got.len());
        };
        got.push(id);
    }
    let sent: Vec<String> = sent.iter().map(|a| a.to_string()).collect();
    assert_eq!(got, sent, "every ack, in the order it was handed over");
    assert!(metrics.publish_waited.load(Ordering::Relaxed) > 0, "the burst had to wait for room");
    assert_eq!(metrics.publish_failed.load(Ordering::Relaxed), 0);
    assert_eq!(metrics.published.load(Ordering::Relaxed), BURST as u64);
}
