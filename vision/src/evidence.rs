//! Evidence of a sighting: the frame and the face, as JPEG files made durable before the
//! alert that points at them is published.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use jpeg_encoder::{ColorType, Encoder};

use crate::face::CROP_SIZE;
use crate::image::Frame;

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("cannot encode {0}: {1}")]
    Encode(&'static str, String),
    #[error("cannot write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// JPEG of a BGR frame.
pub fn jpeg_bgr(frame: &Frame, quality: u8) -> Result<Vec<u8>, EvidenceError> {
    encode(&frame.data, frame.width, frame.height, ColorType::Bgr, quality, "frame")
}

/// JPEG of an aligned 112x112 RGB face crop.
pub fn jpeg_crop(crop: &[u8], quality: u8) -> Result<Vec<u8>, EvidenceError> {
    encode(crop, CROP_SIZE, CROP_SIZE, ColorType::Rgb, quality, "face")
}

fn encode(
    data: &[u8],
    w: u32,
    h: u32,
    color: ColorType,
    q: u8,
    what: &'static str,
) -> Result<Vec<u8>, EvidenceError> {
    let (w16, h16) = (
        u16::try_from(w).map_err(|_| EvidenceError::Encode(what, "too wide".into()))?,
        u16::try_from(h).map_err(|_| EvidenceError::Encode(what, "too tall".into()))?,
    );
    let mut out = Vec::with_capacity(data.len() / 8);
    Encoder::new(&mut out, q)
        .encode(data, w16, h16, color)
        .map_err(|e| EvidenceError::Encode(what, e.to_string()))?;
    Ok(out)
}

/// Writes `bytes` to `path` durably: a temporary file, fsync, rename, fsync of the folder.
pub fn write_durable(path: &Path, bytes: &[u8]) -> Result<(), EvidenceError> {
    let io = |source| EvidenceError::Io { path: path.to_owned(), source };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = path.with_extension("part");
    let mut f = File::create(&tmp).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_readable_jpeg() {
        let dir = tempfile_dir();
        let frame = Frame::filled(64, 48, [10, 200, 30]);
        let bytes = jpeg_bgr(&frame, 85).unwrap();
        assert_eq!(&bytes[..2], &[0xFF, 0xD8], "JPEG SOI marker");
        let path = dir.join("a/frame.jpg");
        write_durable(&path, &bytes).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        assert!(!path.with_extension("part").exists());
        let _ = std::fs::remove_dir_all(dir);
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("kuzet-evidence-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
