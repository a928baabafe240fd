//! A TCP proxy between kuzet and its broker that reads the MQTT packets passing through and
//! reports every PUBACK kuzet sends, with the topic and payload of the message it
//! acknowledges: the moment kuzet told the broker "I have it", after which the broker never
//! delivers that message again. A test kills kuzet right then to prove that what was
//! acknowledged is in the record.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// A message kuzet acknowledged to the broker.
#[derive(Debug, Clone)]
pub struct Acked {
    pub topic: String,
    pub payload: serde_json::Value,
}

pub struct Tap {
    pub port: u16,
    pub acks: mpsc::UnboundedReceiver<Acked>,
}

impl Tap {
    /// Listens on a free port and forwards every connection to the broker on `broker_port`.
    pub async fn start(broker_port: u16) -> Tap {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("tap listens");
        let port = listener.local_addr().expect("tap address").port();
        let (tx, acks) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((kuzet, _)) = listener.accept().await {
                tokio::spawn(relay(kuzet, broker_port, tx.clone()));
            }
        });
        Tap { port, acks }
    }

    /// Forgets the acknowledgements reported so far.
    pub fn drain(&mut self) {
        while self.acks.try_recv().is_ok() {}
    }

    /// The next acknowledgement `pred` accepts.
    pub async fn next(&mut self, pred: impl Fn(&Acked) -> bool) -> Acked {
        loop {
            let a = self.acks.recv().await.expect("the tap runs");
            if pred(&a) {
                return a;
            }
        }
    }
}

/// Messages the broker sent on one connection, by packet id, until kuzet acknowledges them.
type InFlight = Arc<Mutex<HashMap<u16, (String, Vec<u8>)>>>;

async fn relay(kuzet: TcpStream, broker_port: u16, acks: mpsc::UnboundedSender<Acked>) {
    // The broker away: dropping kuzet's side makes kuzet reconnect later, as it would.
    let Ok(broker) = TcpStream::connect(("127.0.0.1", broker_port)).await else { return };
    let _ = kuzet.set_nodelay(true);
    let _ = broker.set_nodelay(true);
    let (kr, kw) = kuzet.into_split();
    let (br, bw) = broker.into_split();
    let in_flight = InFlight::default();
    let up = pump(kr, bw, Direction::Up, in_flight.clone(), acks.clone());
    let down = pump(br, kw, Direction::Down, in_flight, acks);
    // Either side closing closes both.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Direction {
    /// kuzet -> broker
    Up,
    /// broker -> kuzet
    Down,
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    dir: Direction,
    in_flight: InFlight,
    acks: mpsc::UnboundedSender<Acked>,
) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Forwarded first: an acknowledgement is reported once it is on its way.
        if to.write_all(&chunk[..n]).await.is_err() {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Some((header, body, total)) = packet(&buf) {
            let kind = buf[0] >> 4;
            let flags = buf[0] & 0x0f;
            let body = &buf[header..header + body];
            match (dir, kind) {
                (Direction::Down, 3) => {
                    if let Some((id, topic, payload)) = publish(flags, body) {
                        in_flight.lock().unwrap().insert(id, (topic, payload.to_vec()));
                    }
                }
                (Direction::Up, 4) if body.len() >= 2 => {
                    let id = u16::from_be_bytes([body[0], body[1]]);
                    if let Some((topic, payload)) = in_flight.lock().unwrap().remove(&id) {
                        let payload = serde_json::from_slice(&payload).unwrap_or(serde_json::Value::Null);
                        let _ = acks.send(Acked { topic, payload });
                    }
                }
                _ => {}
            }
            buf.drain(..total);
        }
    }
}

/// The fixed header's length, the body's length and the whole packet's, once `buf` holds a
/// whole packet.
fn packet(buf: &[u8]) -> Option<(usize, usize, usize)> {
    let mut len = 0usize;
    let mut shift = 0;
    for (i, b) in buf.iter().enumerate().skip(1).take(4) {
        len |= usize::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            let header = i + 1;
            return (buf.len() >= header + len).then_some((header, len, header + len));
        }
    }
    None
}

/// A QoS 1 or 2 PUBLISH's packet id, topic and payload.
fn publish(flags: u8, body: &[u8]) -> Option<(u16, String, &[u8])> {
    let qos = (flags >> 1) & 3;
    if qos == 0 || body.len() < 2 {
        return None;
    }
    let topic_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let rest = body.get(2..)?;
    let topic = std::str::from_utf8(rest.get(..topic_len)?).ok()?.to_owned();
    let id = rest.get(topic_len..topic_len + 2)?;
    Some((u16::from_be_bytes([id[0], id[1]]), topic, rest.get(topic_len + 2..)?))
}
