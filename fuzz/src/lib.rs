//! What the fuzz targets check beyond "no panic": the invariants each parser promises, cheap
//! enough to test on every input. A failed check panics, which libFuzzer reports as a crash.

use kuzet_contract::text::check_text;

pub mod codec;
pub mod params;
pub mod topics;

/// Longest refusal text kuzet should send back or log for one input: what it repeats of the
/// input is cut short, so a refusal never costs more than the message that caused it.
pub const MAX_REFUSAL_BYTES: usize = 1024;

/// A refusal kuzet logs and sends back: says something, is bounded, and forges no log line
/// (the text rule: no control characters, whatever the input held).
pub fn check_refusal(what: &str, text: &str) {
    assert!(!text.is_empty(), "{what}: empty refusal");
    assert!(text.len() <= MAX_REFUSAL_BYTES, "{what}: refusal of {} bytes: {text:?}", text.len());
    if let Err(e) = check_text(text) {
        panic!("{what}: refusal {e}: {text:?}");
    }
}

/// Two floats that went through JSON and back: equal, or one rounding step apart (serde_json
/// parses without `float_roundtrip`).
pub fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= a.abs().max(b.abs()) * 4.0 * f64::EPSILON
}
