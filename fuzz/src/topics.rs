//! Topic parser invariants.

use kuzet_actors::ids::check_device_id;
use kuzet_contract::topics::{self, Channel, DeviceKind, TopicError};

/// The channel's segment in a topic.
pub fn channel_name(c: Channel) -> &'static str {
    match c {
        Channel::Alarm => "alarm",
        Channel::Heartbeat => "heartbeat",
        Channel::Online => "online",
        Channel::Position => "position",
        Channel::Status => "status",
        Channel::Reply => "reply",
        Channel::Progress => "progress",
        Channel::Detections => "detections",
    }
}

/// Whether a device of `kind` publishes on `channel` (docs/mqtt.md).
pub fn belongs(kind: DeviceKind, channel: Channel) -> bool {
    use Channel::*;
    match kind {
        DeviceKind::Button => matches!(channel, Alarm | Heartbeat | Online),
        DeviceKind::Unit => matches!(channel, Online | Position | Status | Reply | Progress),
        DeviceKind::Camera => matches!(channel, Online | Detections),
    }
}

/// Parses `topic` and checks what came out: a parsed topic is rebuilt exactly from its parts
/// with a valid id and a channel of its kind; a refusal names only a valid device.
pub fn check(topic: &str) {
    match topics::parse(topic) {
        Ok(t) => {
            assert!(check_device_id(t.id).is_ok(), "id {:?} accepted", t.id);
            assert!(belongs(t.kind, t.channel), "{:?} on {:?}", t.kind, t.channel);
            assert_eq!(topics::device(t.kind, t.id, channel_name(t.channel)), topic);
        }
        Err(e) => {
            if let Some(id) = e.device_id() {
                assert!(check_device_id(id).is_ok(), "reject sent to {id:?}");
                assert!(topic.contains(&format!("/{id}/")), "reject sent to {id:?}, not in {topic:?}");
            }
            if !matches!(e, TopicError::Channel { .. }) {
                assert_eq!(e.device_id(), None);
            }
            crate::check_refusal("topic", &e.to_string());
        }
    }
}
