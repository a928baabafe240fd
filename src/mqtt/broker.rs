//! The embedded broker (rumqttd), for single-process set-ups and the demo.
//!
//! It authenticates every client against the registry's device credentials and kuzet's own
//! service account. It cannot restrict which topics a client uses (rumqttd has no per-topic
//! ACL), so it does not enforce the identity rule "a device publishes only under its own
//! id": deployments that need it run Mosquitto or EMQX with the ACL from `kuzet broker-files`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

use crate::settings::BrokerSettings;

/// Starts the broker on its own threads and returns once it accepts connections.
/// `credentials` maps usernames to passwords; `None` lets anyone in.
pub fn start(
    settings: &BrokerSettings,
    credentials: Option<HashMap<String, String>>,
) -> anyhow::Result<SocketAddr> {
    let listen = settings.listen;
    // rumqttd only logs a failed bind from its own thread; find out here instead.
    drop(
        std::net::TcpListener::bind(listen)
            .with_context(|| format!("cannot listen on {listen} for the embedded broker"))?,
    );
    let ws_listen = settings.ws_listen()?;
    if let Some(ws) = ws_listen {
        drop(
            std::net::TcpListener::bind(ws)
                .with_context(|| format!("cannot listen on {ws} for MQTT over WebSockets"))?,
        );
    }
    let server = |name: &str, listen: SocketAddr| ServerSettings {
        name: name.to_owned(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: settings.max_payload_bytes,
            max_inflight_count: 500,
            auth: credentials.clone(),
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let v4 = HashMap::from([("v4-1".to_owned(), server("v4-1", listen))]);
    let ws = ws_listen.map(|a| HashMap::from([("ws-1".to_owned(), server("ws-1", a))]));
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: settings.max_connections,
            max_outgoing_packet_count: 500,
            // Small segments: the default of 100 MB x 10 per filter grows RSS without need.
            max_segment_size: 4 * 1024 * 1024,
            max_segment_count: 4,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(v4),
        ws,
        ..Default::default()
    };
    let mut broker = Broker::new(config);
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded broker stopped");
            }
        })
        .context("cannot start the embedded broker thread")?;
    // Ready once the port is taken: probing with a connection instead would make the broker
    // log an aborted handshake.
    let deadline = Instant::now() + Duration::from_secs(10);
    for addr in std::iter::once(listen).chain(ws_listen) {
        while std::net::TcpListener::bind(addr).is_ok() {
            if Instant::now() > deadline {
                bail!("embedded broker did not listen on {addr} within 10 s (is the port taken?)");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    tracing::info!(%listen, ws = ?ws_listen, auth = settings.require_auth, "embedded broker listening");
    Ok(listen)
}
