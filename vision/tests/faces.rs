//! The face pipeline on real photos with the real models (scripts/models.sh prepares both):
//! every fixture photo has its face found, same-person pairs score above the review
//! threshold and different people below it; the aligned crops and their embeddings are
//! written for tests/vision/reference.py to check against Python's onnxruntime.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kuzet_vision::{cosine, decode_image, FaceModels, ModelPaths};
use serde::Deserialize;

/// The default review threshold (config/default.toml, vision.review_threshold).
const REVIEW: f32 = 0.40;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn models() -> FaceModels {
    let dir = root().join("target/models");
    FaceModels::load(&ModelPaths::in_dir(&dir), 1)
        .unwrap_or_else(|e| panic!("{e} (scripts/setup.sh prepares the models in {})", dir.display()))
}

#[derive(Deserialize)]
struct Fixtures {
    photos: Vec<Photo>,
}

#[derive(Deserialize)]
struct Photo {
    path: String,
    person: String,
}

#[test]
fn same_and_different_people_at_the_threshold() {
    let fixtures: Fixtures =
        serde_json::from_str(&std::fs::read_to_string(root().join("tests/vision/faces.json")).unwrap())
            .unwrap();
    let faces_dir = root().join("target/faces");
    let parity = root().join("target/vision-parity");
    let _ = std::fs::remove_dir_all(&parity);
    std::fs::create_dir_all(&parity).unwrap();

    let mut m = models();
    let mut embedded = Vec::new();
    let mut rust_json = BTreeMap::new();
    for (i, p) in fixtures.photos.iter().enumerate() {
        let bytes = std::fs::read(faces_dir.join(&p.path))
            .unwrap_or_else(|e| panic!("{}: {e} (scripts/setup.sh fetches the photos)", p.path));
        let frame = decode_image(&bytes).unwrap();
        let faces = m.faces(&frame).unwrap();
        let face = faces
            .iter()
            .max_by(|a, b| a.detection.area().total_cmp(&b.detection.area()))
            .unwrap_or_else(|| panic!("no face found in {}", p.path));
        assert!(face.detection.score >= 0.6, "{}: detector score {}", p.path, face.detection.score);
        // Landmarks inside the box: the decoding put them where the face is.
        let d = &face.detection;
        for l in d.landmarks {
            assert!(
                l[0] >= d.x && l[0] <= d.x + d.w && l[1] >= d.y && l[1] <= d.y + d.h,
                "{}: {d:?}",
                p.path
            );
        }
        let norm: f32 = face.embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
        let stem = format!("{i:02}-{}", p.person);
        std::fs::write(parity.join(format!("{stem}.rgb")), &face.crop).unwrap();
        rust_json.insert(stem, face.embedding.to_vec());
        embedded.push((p, face.embedding));
    }
    std::fs::write(parity.join("rust.json"), serde_json::to_vec(&rust_json).unwrap()).unwrap();

    let (mut ta, mut fr, mut tr, mut fa) = (0, 0, 0, 0);
    let (mut same_min, mut diff_max) = (f32::MAX, f32::MIN);
    for i in 0..embedded.len() {
        for j in i + 1..embedded.len() {
            let (a, b) = (&embedded[i], &embedded[j]);
            let s = cosine(&a.1, &b.1);
            let same = a.0.person == b.0.person;
            println!("{:<8} {:.3} {} / {}", if same { "same" } else { "diff" }, s, a.0.path, b.0.path);
            match (same, s >= REVIEW) {
                (true, true) => ta += 1,
                (true, false) => fr += 1,
                (false, false) => tr += 1,
                (false, true) => fa += 1,
            }
            if same {
                same_min = same_min.min(s);
            } else {
                diff_max = diff_max.max(s);
            }
        }
    }
    println!(
        "vision confusion at {REVIEW}: {ta} true accepts, {fr} false rejects, {tr} true rejects, {fa} false accepts; \
         same-person min {same_min:.3}, different-people max {diff_max:.3}"
    );
    assert_eq!(ta + fr + tr + fa, embedded.len() * (embedded.len() - 1) / 2);
    assert!(ta > 0 && tr > 0, "both kinds of pair are in the fixtures");
    assert_eq!(fa, 0, "a different person reached the review threshold");
    assert_eq!(fr, 0, "the same person fell below the review threshold");
}
