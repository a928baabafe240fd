//! Rate limits per device and inbound topic (token buckets), checked where inbound messages
//! are decoded. The broker does not limit a client's rate, so one faulty or hostile device
//! could otherwise take the time every other device's messages need.
//!
//! A device gets its buckets on its first message (the only allocation: its id, once); a
//! message after that costs a map lookup and a little arithmetic. Only registered devices
//! get buckets: an id the directory does not know is refused anyway, and must not grow the
//! map.

use std::collections::HashMap;
use std::time::Instant;

use kuzet_actors::directory::Directory;

use super::topics::{Channel, DeviceKind};
use crate::settings::{Limit, LimitsSettings};

/// A device that goes on sending over its limit hears about it at most this often.
const TELL_EVERY_MS: u64 = 1_000;

/// What the limit says about one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Within,
    /// Over the limit. `tell`: the device should be told now, with how many messages on this
    /// topic were over the limit since it was last told (this one included); None: it was
    /// told less than a second ago.
    Over {
        tell: Option<u32>,
    },
}

/// One device's buckets on one listener.
#[derive(Clone, Copy)]
struct Bucket {
    tokens: f32,
    /// Milliseconds since `Limits::epoch` of the last refill.
    at_ms: u64,
    /// When the device was last told it is over the limit (`u64::MAX`: never).
    told_ms: u64,
    /// Messages over the limit since it was last told.
    over: u32,
}

impl Bucket {
    fn fresh(now_ms: u64) -> Self {
        Self { tokens: f32::INFINITY, at_ms: now_ms, told_ms: u64::MAX, over: 0 }
    }
}

/// A device's topics each map to one slot (`slot`): five at most (a unit's).
type Buckets = [Bucket; 5];

pub struct Limits {
    /// By `Channel as usize`: (tokens per millisecond, burst).
    rates: [(f32, f32); 8],
    config: LimitsSettings,
    /// By `DeviceKind`: buttons, units, cameras (an id may name one of each).
    devices: [HashMap<Box<str>, Buckets>; 3],
    epoch: Instant,
}

impl Limits {
    pub fn new(s: &LimitsSettings) -> Self {
        let mut rates = [(0.0, 0.0); 8];
        for c in CHANNELS {
            let l = limit_of(s, c);
            rates[c as usize] = ((l.per_s / 1000.0) as f32, l.burst as f32);
        }
        Self { rates, config: s.clone(), devices: Default::default(), epoch: Instant::now() }
    }

    /// The limit configured for `channel`.
    pub fn limit(&self, channel: Channel) -> Limit {
        limit_of(&self.config, channel)
    }

    /// Takes a token for one message from `id` on `channel`.
    pub fn check(&mut self, kind: DeviceKind, id: &str, channel: Channel, directory: &Directory) -> Verdict {
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        let devices = &mut self.devices[kind as usize];
        let buckets = match devices.get_mut(id) {
            Some(b) => b,
            None => {
                let known = match kind {
                    DeviceKind::Button => directory.has_button(id),
                    DeviceKind::Unit => directory.has_unit(id),
                    DeviceKind::Camera => directory.camera(id).is_some(),
                };
                if !known {
                    return Verdict::Within;
                }
                devices.entry(Box::from(id)).or_insert([Bucket::fresh(now_ms); 5])
            }
        };
        let (per_ms, burst) = self.rates[channel as usize];
        take(&mut buckets[slot(channel)], now_ms, per_ms, burst)
    }

    /// Devices that have buckets, for tests and the status line.
    pub fn devices(&self) -> usize {
        self.devices.iter().map(HashMap::len).sum()
    }
}

fn take(b: &mut Bucket, now_ms: u64, per_ms: f32, burst: f32) -> Verdict {
    // A fresh bucket is full: INFINITY is clamped to the burst here.
    b.tokens = (b.tokens + now_ms.saturating_sub(b.at_ms) as f32 * per_ms).min(burst);
    b.at_ms = now_ms;
    if b.tokens >= 1.0 {
        b.tokens -= 1.0;
        return Verdict::Within;
    }
    b.over = b.over.saturating_add(1);
    if b.told_ms != u64::MAX && now_ms.saturating_sub(b.told_ms) < TELL_EVERY_MS {
        return Verdict::Over { tell: None };
    }
    b.told_ms = now_ms;
    Verdict::Over { tell: Some(std::mem::take(&mut b.over)) }
}

const CHANNELS: [Channel; 8] = [
    Channel::Alarm,
    Channel::Heartbeat,
    Channel::Online,
    Channel::Position,
    Channel::Status,
    Channel::Reply,
    Channel::Progress,
    Channel::Detections,
];

fn limit_of(s: &LimitsSettings, c: Channel) -> Limit {
    match c {
        Channel::Alarm => s.alarm,
        Channel::Heartbeat => s.heartbeat,
        Channel::Online => s.online,
        Channel::Position => s.position,
        Channel::Status => s.status,
        Channel::Reply => s.reply,
        Channel::Progress => s.progress,
        Channel::Detections => s.detections,
    }
}

/// Distinct for the channels of any one device kind.
fn slot(c: Channel) -> usize {
    match c {
        Channel::Alarm | Channel::Position | Channel::Detections => 0,
        Channel::Heartbeat | Channel::Status => 1,
        Channel::Online => 2,
        Channel::Reply => 3,
        Channel::Progress => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_and_the_device_is_told_once_a_second() {
        // 1/512 a millisecond (about 2 a second; exact in binary), burst 3.
        let (per_ms, burst) = (1.0 / 512.0, 3.0);
        let mut b = Bucket::fresh(0);
        let at = |b: &mut Bucket, ms| take(b, ms, per_ms, burst);
        for _ in 0..3 {
            assert_eq!(at(&mut b, 0), Verdict::Within);
        }
        assert_eq!(at(&mut b, 0), Verdict::Over { tell: Some(1) });
        assert_eq!(at(&mut b, 128), Verdict::Over { tell: None });
        assert_eq!(at(&mut b, 256), Verdict::Over { tell: None });
        // 512 ms after the burst one token is back.
        assert_eq!(at(&mut b, 512), Verdict::Within);
        assert_eq!(at(&mut b, 640), Verdict::Over { tell: None });
        assert_eq!(at(&mut b, 768), Verdict::Over { tell: None });
        assert_eq!(at(&mut b, 1024), Verdict::Within);
        // A second after the last notice: told, with every message over the limit since.
        assert_eq!(at(&mut b, 1025), Verdict::Over { tell: Some(5) });
        // A long quiet spell refills to the burst, never beyond.
        for _ in 0..3 {
            assert_eq!(at(&mut b, 60_000), Verdict::Within);
        }
        assert_eq!(at(&mut b, 60_000), Verdict::Over { tell: Some(1) });
        assert_eq!(at(&mut b, 60_001), Verdict::Over { tell: None });
    }

    #[test]
    fn every_channel_of_a_kind_has_a_slot_of_its_own() {
        let kinds: [&[Channel]; 3] = [
            &[Channel::Alarm, Channel::Heartbeat, Channel::Online],
            &[Channel::Position, Channel::Status, Channel::Reply, Channel::Progress, Channel::Online],
            &[Channel::Detections, Channel::Online],
        ];
        for channels in kinds {
            let mut slots: Vec<usize> = channels.iter().map(|c| slot(*c)).collect();
            slots.sort_unstable();
            slots.dedup();
            assert_eq!(slots.len(), channels.len(), "{channels:?}");
        }
    }
}
