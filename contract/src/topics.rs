//! Topic names of the MQTT contract v1 (docs/mqtt.md). Inbound topics are parsed into a
//! device kind, an id and a channel; outbound topics are built here and nowhere else.

use kuzet_actors::ids::{check_device_id, IdError, IncidentId};

pub const PREFIX: &str = "kuzet/v1/";

/// What kuzet's alarm connection subscribes to: alarms, acknowledged once durable, never
/// queued behind positions; and buttons' presence, so that a button's own messages keep
/// their order (a button that connects and presses at once is not told twice).
pub const ALARM_SUBSCRIPTIONS: &[&str] = &["kuzet/v1/buttons/+/alarm", "kuzet/v1/buttons/+/online"];

/// What kuzet's units connection subscribes to: what a tablet says that changes dispatch,
/// each acknowledged only once recorded; and its presence (a tablet gone offline must not be
/// offered the next incident), in order with its replies.
pub const UNIT_SUBSCRIPTIONS: &[&str] = &[
    "kuzet/v1/units/+/reply",
    "kuzet/v1/units/+/progress",
    "kuzet/v1/units/+/status",
    "kuzet/v1/units/+/online",
];

/// What kuzet's main connection subscribes to: the bulk lane (positions, heartbeats, cameras'
/// presence, detections).
pub const SUBSCRIPTIONS: &[&str] = &[
    "kuzet/v1/buttons/+/heartbeat",
    "kuzet/v1/units/+/position",
    "kuzet/v1/cameras/+/detections",
    "kuzet/v1/cameras/+/online",
    BROKER_DROPPED,
];

/// Mosquitto's count of messages it dropped for clients whose queue was full (since the
/// broker started), published every `sys_interval`.
pub const BROKER_DROPPED: &str = "$SYS/broker/publish/messages/dropped";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Button,
    Unit,
    Camera,
}

impl DeviceKind {
    pub fn segment(&self) -> &'static str {
        match self {
            DeviceKind::Button => "buttons",
            DeviceKind::Unit => "units",
            DeviceKind::Camera => "cameras",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Alarm,
    Heartbeat,
    Online,
    Position,
    Status,
    Reply,
    Progress,
    Detections,
}

/// A parsed inbound topic; `id` borrows from the topic string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboundTopic<'a> {
    pub kind: DeviceKind,
    pub id: &'a str,
    pub channel: Channel,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic is not kuzet/v1/{{buttons|units}}/{{id}}/{{channel}}")]
    Shape,
    /// The id is usable enough to name in a reject only if it passed the pattern.
    #[error("device id in topic is invalid: {0}")]
    Id(IdError),
    /// `channel` as a refusal shows it (`text::echo`: quoted, escaped, short).
    #[error("channel {channel} does not exist for {kind}")]
    Channel { kind: &'static str, channel: String, id: String },
}

impl TopicError {
    /// The device id to send the reject to, when the topic carries a valid one.
    pub fn device_id(&self) -> Option<&str> {
        match self {
            TopicError::Channel { id, .. } => Some(id),
            _ => None,
        }
    }
}

pub fn parse(topic: &str) -> Result<InboundTopic<'_>, TopicError> {
    let rest = topic.strip_prefix(PREFIX).ok_or(TopicError::Shape)?;
    let mut parts = rest.split('/');
    let (Some(kind), Some(id), Some(channel), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TopicError::Shape);
    };
    let kind = match kind {
        "buttons" => DeviceKind::Button,
        "units" => DeviceKind::Unit,
        "cameras" => DeviceKind::Camera,
        _ => return Err(TopicError::Shape),
    };
    check_device_id(id).map_err(TopicError::Id)?;
    let channel = match (kind, channel) {
        (DeviceKind::Button, "alarm") => Channel::Alarm,
        (DeviceKind::Button, "heartbeat") => Channel::Heartbeat,
        (_, "online") => Channel::Online,
        (DeviceKind::Unit, "position") => Channel::Position,
        (DeviceKind::Unit, "status") => Channel::Status,
        (DeviceKind::Unit, "reply") => Channel::Reply,
        (DeviceKind::Unit, "progress") => Channel::Progress,
        (DeviceKind::Camera, "detections") => Channel::Detections,
        (k, c) => {
            return Err(TopicError::Channel {
                kind: k.segment(),
                channel: crate::text::echo(c),
                id: id.to_owned(),
            })
        }
    };
    Ok(InboundTopic { kind, id, channel })
}

pub fn offers(unit: &str) -> String {
    format!("kuzet/v1/units/{unit}/offers")
}

pub fn unit_incident(unit: &str, incident: &IncidentId) -> String {
    format!("kuzet/v1/units/{unit}/incidents/{incident}")
}

pub fn button_ack(button: &str) -> String {
    format!("kuzet/v1/buttons/{button}/ack")
}

pub fn incident(incident: &IncidentId) -> String {
    format!("kuzet/v1/incidents/{incident}")
}

pub const ESCALATIONS: &str = "kuzet/v1/dispatch/escalations";

/// A camera's health, retained, for dispatchers (patrol-chain cameras).
pub fn integrity(camera: &str) -> String {
    format!("kuzet/v1/dispatch/integrity/{camera}")
}

/// A custodial camera's health, retained, for oversight only.
pub fn oversight_integrity(camera: &str) -> String {
    format!("kuzet/v1/oversight/integrity/{camera}")
}

/// A face match waiting for a dispatcher, retained while it waits.
pub fn review(review: &kuzet_actors::ids::ReviewId) -> String {
    format!("kuzet/v1/dispatch/reviews/{review}")
}

/// An area warning's newest CAP message, retained (`kuzet/v1/warnings/{warning_id}`).
pub fn warning(warning_id: &uuid::Uuid) -> String {
    format!("{PREFIX}warnings/{warning_id}")
}

pub fn rejects(device: &str) -> String {
    format!("kuzet/v1/rejects/{device}")
}

/// Topic a device of `kind` publishes on `channel`.
pub fn device(kind: DeviceKind, id: &str, channel: &str) -> String {
    format!("kuzet/v1/{}/{id}/{channel}", kind.segment())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_subscription_shape() {
        let t = parse("kuzet/v1/units/u-1/position").unwrap();
        assert_eq!((t.kind, t.id, t.channel), (DeviceKind::Unit, "u-1", Channel::Position));
        assert_eq!(parse("kuzet/v1/buttons/b1/alarm").unwrap().channel, Channel::Alarm);
        assert_eq!(parse("kuzet/v1/cameras/c1/online").unwrap().kind, DeviceKind::Camera);
        let device_filters = SUBSCRIPTIONS.iter().filter(|s| **s != BROKER_DROPPED);
        for s in device_filters.chain(ALARM_SUBSCRIPTIONS).chain(UNIT_SUBSCRIPTIONS) {
            assert!(parse(&s.replace('+', "x")).is_ok(), "{s}");
        }
    }

    #[test]
    fn refuses_bad_topics_and_names_the_device_when_it_can() {
        assert_eq!(parse("kuzet/v2/units/u/position"), Err(TopicError::Shape));
        assert_eq!(parse("kuzet/v1/units/u/position/x"), Err(TopicError::Shape));
        assert_eq!(parse("kuzet/v1/units/U1/position"), Err(TopicError::Id(IdError::BadCharacter)));
        let e = parse("kuzet/v1/buttons/b1/position").unwrap_err();
        assert_eq!(e.device_id(), Some("b1"));
    }

    #[test]
    fn a_refused_channel_is_repeated_escaped_and_short() {
        let e = parse("kuzet/v1/buttons/b1/position").unwrap_err();
        assert_eq!(e.to_string(), "channel \"position\" does not exist for buttons");
        // Found by fuzz/ (target topics): a 190-character channel of control characters.
        let topic = format!("kuzet/v1/buttons/b1/hearvbea{}A{}t", "\u{16}".repeat(65), "\u{12}".repeat(120));
        let e = parse(&topic).unwrap_err();
        assert_eq!(e.device_id(), Some("b1"));
        let message = e.to_string();
        assert!(message.len() < 500 && crate::text::check_text(&message).is_ok(), "{message}");
    }
}
