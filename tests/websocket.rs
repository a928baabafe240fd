//! Tablets in a browser speak MQTT over WebSockets: both brokers listen for it, with the same
//! credentials (and, on Mosquitto, the same ACL) as any device.

mod common;

use std::time::Duration;

use common::*;
use kuzet::mqtt::topics::{self, DeviceKind};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS, Transport};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// A tablet connected over WebSockets as unit `id`; (client, messages).
async fn ws_tablet(
    port: u16,
    id: &str,
    password: &str,
) -> (AsyncClient, mpsc::UnboundedReceiver<(String, Value)>) {
    let mut o = MqttOptions::new(format!("{id}-browser"), format!("ws://127.0.0.1:{port}/mqtt"), port);
    o.set_transport(Transport::Ws);
    o.set_credentials(id, password);
    o.set_keep_alive(Duration::from_secs(10));
    let (client, mut eventloop) = AsyncClient::new(o, 64);
    let (tx, rx) = mpsc::unbounded_channel();
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    actix_rt::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Incoming::SubAck(_))) => {
                    let _ = ready_tx.send(());
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    let v = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                    let _ = tx.send((p.topic.clone(), v));
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.send(("error".into(), json!(e.to_string())));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    client.subscribe(topics::offers(id), QoS::AtLeastOnce).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), ready_rx.recv()).await.expect("subscribed over WebSockets");
    (client, rx)
}

async fn next_offer(rx: &mut mpsc::UnboundedReceiver<(String, Value)>) -> Value {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match rx.recv().await {
                Some((t, v)) if t.ends_with("/offers") => return v,
                Some((t, v)) if t == "error" => panic!("tablet connection: {v}"),
                Some(_) => continue,
                None => panic!("tablet gone"),
            }
        }
    })
    .await
    .expect("an offer over WebSockets")
}

async fn offer_and_accept_over_websockets(kind: BrokerKind) {
    let ws_port = free_port();
    let t = spawn_app(kind, city(&["u1"]), |s| {
        one_unit(s);
        s.broker.ws_listen = format!("127.0.0.1:{ws_port}");
    })
    .await;
    let port = match &t.mosquitto {
        Some(m) => m.ws_port,
        None => ws_port,
    };
    let (tablet, mut rx) = ws_tablet(port, "u1", &pw("u1")).await;
    let position = position(school_location().offset(300.0, 0.0)).to_string();
    tablet
        .publish(topics::device(DeviceKind::Unit, "u1", "position"), QoS::AtLeastOnce, false, position)
        .await
        .unwrap();
    t.wait_available(1).await;

    let mut button = t.button("btn-a").await;
    publish(&button, DeviceKind::Button, "btn-a", "alarm", raise(&uuid::Uuid::new_v4())).await;
    let offer = next_offer(&mut rx).await;
    let reply = json!({"offer_id": offer["offer_id"], "decision": "accept"}).to_string();
    tablet
        .publish(topics::device(DeviceKind::Unit, "u1", "reply"), QoS::AtLeastOnce, false, reply)
        .await
        .unwrap();
    loop {
        let ack = next_ack(&mut button).await;
        if ack["state"] == "dispatched" {
            break;
        }
    }
    t.app.stop().await;
}

#[actix_rt::test]
async fn a_browser_tablet_on_the_embedded_broker() {
    offer_and_accept_over_websockets(BrokerKind::Embedded).await;
}

#[actix_rt::test]
async fn a_browser_tablet_on_mosquitto() {
    offer_and_accept_over_websockets(BrokerKind::Mosquitto).await;
}

#[actix_rt::test]
async fn a_wrong_password_over_websockets_is_refused() {
    let ws_port = free_port();
    let t = spawn_app(BrokerKind::Embedded, city(&["u1"]), |s| {
        s.broker.ws_listen = format!("127.0.0.1:{ws_port}")
    })
    .await;
    let mut o = MqttOptions::new("u1-browser", format!("ws://127.0.0.1:{ws_port}/mqtt"), ws_port);
    o.set_transport(Transport::Ws);
    o.set_credentials("u1", "not the password");
    let (_client, mut eventloop) = AsyncClient::new(o, 8);
    let refused = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Incoming::ConnAck(a)))
                    if a.code == rumqttc::ConnectReturnCode::Success =>
                {
                    return false
                }
                Ok(_) => continue,
                Err(_) => return true,
            }
        }
    })
    .await
    .expect("an answer");
    assert!(refused, "a wrong password was accepted over WebSockets");
    t.app.stop().await;
}
