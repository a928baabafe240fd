//! MQTT contract v1 as code: the topics (`topics`), the payloads each way with their checks
//! (`codec`), and the one rule for free text from outside (`text`). Devices' bytes are parsed
//! here and nowhere else; the MQTT gateway and the consoles' live feed both speak these
//! shapes, and neither imports the other. The HTTP API's query parameters are parsed here
//! too (`params`), so that everything read from outside builds, and is fuzzed, on its own.
//! Area warnings go out as OASIS CAP 1.2 XML (`cap`), on MQTT and over HTTP alike.

pub mod cap;
pub mod codec;
pub mod params;
pub mod text;
pub mod topics;

/// Values in a face embedding (SFace), as edge cameras send them.
pub const EMBEDDING_DIM: usize = 128;

/// A face embedding, unit length.
pub type Embedding = [f32; EMBEDDING_DIM];

/// Checks and normalises an embedding sent from outside: `EMBEDDING_DIM` finite values, not
/// all zero.
pub fn embedding_from(values: &[f64]) -> Result<Embedding, String> {
    if values.len() != EMBEDDING_DIM {
        return Err(format!("embedding has {} values, not {EMBEDDING_DIM}", values.len()));
    }
    if !values.iter().all(|v| v.is_finite()) {
        return Err("embedding holds a value that is not a finite number".into());
    }
    // Scaled by the largest value first, in f64: any finite values, however large or small,
    // normalise without overflowing (or vanishing in) the f32 arithmetic.
    let max = values.iter().fold(0f64, |m, v| m.max(v.abs()));
    if max == 0.0 {
        return Err("embedding is all zeros".into());
    }
    let norm = values.iter().map(|v| (v / max).powi(2)).sum::<f64>().sqrt();
    let mut e = [0f32; EMBEDDING_DIM];
    for (o, v) in e.iter_mut().zip(values) {
        *o = (v / max / norm) as f32;
    }
    Ok(e)
}
