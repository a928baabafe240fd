//! The live feed for the console and the oversight view: what the actors publish
//! (incidents, escalations, face-match reviews, camera integrity), fanned out to every
//! connected WebSocket as JSON `{"type": ..., "data": ...}`. Each notification is turned into
//! text once, and only while somebody is listening.

use std::sync::Arc;

use kuzet_actors::outbound::{Audience, Notify};
use tokio::sync::broadcast;

/// Who a live event is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    /// Dispatchers and supervisors.
    Console,
    /// Oversight: custodial cameras' integrity alerts only.
    Oversight,
}

#[derive(Debug)]
pub struct LiveEvent {
    pub viewer: Viewer,
    pub text: Arc<str>,
}

/// Events a slow WebSocket may fall behind by before it is told to reload.
const BACKLOG: usize = 4096;

#[derive(Clone)]
pub struct LiveHub {
    tx: broadcast::Sender<Arc<LiveEvent>>,
}

impl Default for LiveHub {
    fn default() -> Self {
        Self { tx: broadcast::channel(BACKLOG).0 }
    }
}

/// `{"type": kind, "data": json}` without parsing `json` again.
pub fn frame(kind: &str, json: &[u8]) -> Arc<str> {
    let data = String::from_utf8_lossy(json);
    format!(r#"{{"type":"{kind}","data":{data}}}"#).into()
}

impl LiveHub {
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.tx.subscribe()
    }

    /// Passes a notification on (as `payload`, its JSON already made for MQTT) to whoever
    /// watches; those that are not for the console are left out.
    pub fn offer(&self, n: &Notify, payload: &[u8]) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let (viewer, kind) = match n {
            Notify::Snapshot(_) => (Viewer::Console, "incident"),
            Notify::Closed(_) => (Viewer::Console, "incident_closed"),
            Notify::Escalation { .. } => (Viewer::Console, "escalation"),
            Notify::Review(_) => (Viewer::Console, "review"),
            Notify::Integrity(a) => match a.audience {
                Audience::Dispatch => (Viewer::Console, "integrity"),
                Audience::Oversight => (Viewer::Oversight, "integrity"),
            },
            Notify::Offer { .. } | Notify::Unit { .. } | Notify::Ack { .. } => return,
        };
        let _ = self.tx.send(Arc::new(LiveEvent { viewer, text: frame(kind, payload) }));
    }
}
