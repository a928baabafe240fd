//! Fuzz target: see `kuzet_fuzz::topics` for what is checked. Input: a topic (MQTT topics are
//! UTF-8; the broker refuses others).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(topic) = std::str::from_utf8(data) {
        kuzet_fuzz::topics::check(topic);
    }
});
