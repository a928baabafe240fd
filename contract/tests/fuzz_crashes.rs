//! Every input the fuzz targets (fuzz/, scripts/fuzz.sh) found a fault with, replayed as the
//! target fed it: `fuzz_crashes/<target>/<name>` holds the reproducer as libFuzzer wrote it.
//! Each must now go through without a panic, and what kuzet says back about it must follow
//! the rule for refusals: short, and free of the control characters the text rule refuses.

use std::path::Path;

use kuzet_actors::outbound::Received;
use kuzet_contract::codec::{self, Message};
use kuzet_contract::params::{self, Params};
use kuzet_contract::text::check_text;
use kuzet_contract::topics;

/// What the fuzz targets allow a refusal (fuzz/src/lib.rs, `MAX_REFUSAL_BYTES`).
const MAX_REFUSAL_BYTES: usize = 1024;

fn crashes(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_crashes").join(target);
    let mut found: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|f| f.expect("a directory entry").path())
        .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    found.sort();
    found
}

fn refusal_is_clean(name: &str, text: &str) {
    assert!(!text.is_empty() && text.len() <= MAX_REFUSAL_BYTES, "{name}: {} bytes: {text:?}", text.len());
    assert_eq!(check_text(text), Ok(()), "{name}: {text:?}");
}

#[test]
fn codec_crashes_are_decoded_or_refused_cleanly() {
    for (name, data) in crashes("codec") {
        let nl = data.iter().position(|b| *b == b'\n').expect("topic, newline, payload");
        let topic = std::str::from_utf8(&data[..nl]).expect("a UTF-8 topic");
        let parsed = topics::parse(topic).expect("a valid topic");
        match codec::decode(&parsed, &data[nl + 1..], 16 * 1024, Received::now()) {
            Ok(Message::Detections { faces, .. }) => {
                for f in faces {
                    let norm = f.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
                    assert!((norm - 1.0).abs() < 1e-3, "{name}: embedding of norm {norm}");
                }
            }
            Ok(_) => {}
            Err(r) => {
                refusal_is_clean(&name, &r.error);
                // None of these is all zeros: the one that was is now normalised.
                assert!(!r.error.ends_with("embedding is all zeros"), "{name}: {}", r.error);
            }
        }
    }
}

#[test]
fn topic_crashes_are_refused_cleanly() {
    for (name, data) in crashes("topics") {
        let topic = String::from_utf8(data).expect("a UTF-8 topic");
        if let Err(e) = topics::parse(&topic) {
            refusal_is_clean(&name, &e.to_string());
        }
    }
}

#[test]
fn params_crashes_are_refused_cleanly() {
    for (name, data) in crashes("params") {
        let input = String::from_utf8(data).expect("UTF-8");
        let query = input.split_once('\n').map_or(input.as_str(), |(q, _)| q);
        match Params::parse(query, &["from", "to", "state", "bbox", "near", "radius_m", "limit", "format"]) {
            Ok(p) => {
                let results = [
                    p.time("from").map(drop),
                    params::states(p.all("state")).map(drop),
                    p.one("bbox").and_then(|b| b.map(params::bbox).transpose()).map(drop),
                    p.one("near").and_then(|n| n.map(params::near).transpose()).map(drop),
                    p.one("limit").and_then(params::limit).map(drop),
                    p.format().map(drop),
                ];
                for e in results.into_iter().filter_map(Result::err) {
                    refusal_is_clean(&name, &e.message);
                }
            }
            Err(e) => refusal_is_clean(&name, &e.message),
        }
    }
}
