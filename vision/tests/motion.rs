//! Motion gating on real H.264 video: a still scene encoded and decoded as a camera sends it
//! (with the encoder's noise) triggers no detection after the first frame; a moving object in
//! it yields a region that covers it, in every frame it moves.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kuzet_vision::video::{decode_file_yuv, encode_clip, gate};
use kuzet_vision::{Focus, Frame, Motion, MotionConfig, Rect};

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A street-like still: sky, buildings of differing grey with windows, a road; BGR 1280x720.
fn street() -> Vec<u8> {
    let (w, h) = (1280usize, 720usize);
    let mut d = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let b = x / 160;
            let top = 120 + (b * 37 % 5) * 30;
            let v: [u8; 3] = if y < top {
                [200, 170, 140]
            } else if y < 520 {
                let window = (x % 40) > 12 && (x % 40) < 30 && (y % 50) > 15 && (y % 50) < 38;
                let g = (60 + (b * 53 % 7) * 18) as u8;
                if window {
                    [g / 3, g / 2, g]
                } else {
                    [g, g, g.saturating_add(10)]
                }
            } else {
                let stripe = (y - 520) % 40 < 4 && x % 120 < 60;
                if stripe {
                    [230, 230, 230]
                } else {
                    [70, 72, 75]
                }
            };
            d[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&v);
        }
    }
    d
}

/// The street with a 90x200 figure (a face-like block) at `x`.
fn with_figure(base: &[u8], x: usize) -> Vec<u8> {
    let mut d = base.to_vec();
    for y in 380..580 {
        for xx in x..(x + 90).min(1280) {
            let head = y < 440;
            let v = if head { [120, 160, 210] } else { [40, 30, 150] };
            d[(y * 1280 + xx) * 3..(y * 1280 + xx) * 3 + 3].copy_from_slice(&v);
        }
    }
    d
}

fn decisions(clip: &Path, cfg: &MotionConfig) -> Vec<(Duration, Focus)> {
    let mut m = Motion::new(cfg.clone());
    let mut out = Vec::new();
    let uri = format!("file://{}", clip.display());
    decode_file_yuv(&uri, |yuv, at| out.push((at, gate(&mut m, yuv, at)))).unwrap();
    out
}

#[test]
fn a_still_scene_is_not_detected_after_warm_up() {
    let dir = scratch("motion_still");
    let clip = dir.join("still.mp4");
    let base = street();
    let frames = (0..50).map(|_| Frame::new(1280, 720, base.clone()).unwrap());
    assert_eq!(encode_clip(&clip, 1280, 720, 5, frames).unwrap(), 50);
    let cfg = MotionConfig { full_every_s: 4.0, ..MotionConfig::default() };
    let d = decisions(&clip, &cfg);
    assert_eq!(d.len(), 50);
    assert_eq!(d[0].1, Focus::Full);
    // 10 s at 5 fps: the first frame, then only the periodic full-frame look every 4 s.
    let t0 = d[0].0;
    let detected: Vec<_> = d.iter().filter(|x| x.1 != Focus::Skip).map(|x| (x.0 - t0).as_millis()).collect();
    assert_eq!(detected, vec![0, 4000, 8000], "{d:?}");
    assert!(d.iter().all(|x| matches!(x.1, Focus::Skip | Focus::Full)));
}

#[test]
fn a_figure_walking_through_gives_regions_that_cover_it() {
    let dir = scratch("motion_walk");
    let clip = dir.join("walk.mp4");
    let base = street();
    // 2 s still, then 24 px a frame from x=100 for 30 frames.
    let pos = |i: usize| (i >= 10).then(|| 100 + (i - 10) * 24);
    let frames = (0..40).map(|i| {
        let d = match pos(i) {
            Some(x) => with_figure(&base, x),
            None => base.clone(),
        };
        Frame::new(1280, 720, d).unwrap()
    });
    encode_clip(&clip, 1280, 720, 5, frames).unwrap();
    let cfg = MotionConfig { full_every_s: 60.0, ..MotionConfig::default() };
    let d = decisions(&clip, &cfg);
    assert_eq!(d.len(), 40);
    assert!(d[1..10].iter().all(|x| x.1 == Focus::Skip), "{:?}", &d[..10]);
    for (i, (_, focus)) in d.iter().enumerate().skip(10) {
        let x = pos(i).unwrap() as u32;
        let figure = Rect { x, y: 380, w: 90.min(1280 - x), h: 200 };
        match focus {
            Focus::Region(r) => {
                assert!(r.contains(&figure), "frame {i}: {r:?} does not hold {figure:?}");
                assert!(r.area() * 3 < 1280 * 720, "frame {i}: {r:?}");
            }
            other => panic!("frame {i}: {other:?}"),
        }
    }
}
