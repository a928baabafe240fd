//! kuzet-camsim: stands in for IP cameras in tests, benchmarks and the demo.
//!
//!   kuzet-camsim clip OUT.mp4 [--size 1280x720] [--fps 10] SEGMENT...
//!       encodes an H.264 MP4 from photos; SEGMENT is PHOTO:SECONDS or black:SECONDS
//!   kuzet-camsim serve [--port 0] /MOUNT=CLIP.mp4...
//!       serves each clip over RTSP at rtsp://127.0.0.1:PORT/MOUNT (each client gets the clip
//!       from its start; the stream ends with the clip), prints `ready PORT`, runs until killed

use std::process::ExitCode;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("clip") => clip(&args[1..]),
        Some("serve") => serve(&args[1..]),
        _ => Err("usage: kuzet-camsim clip OUT.mp4 [--size WxH] [--fps N] PHOTO:SECONDS...\n       \
                  kuzet-camsim serve [--port N] /MOUNT=CLIP.mp4..."
            .into()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kuzet-camsim: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--name value` pairs, then the positional arguments.
type Parsed<'a> = (Vec<(&'a str, &'a str)>, Vec<&'a str>);

/// Splits `--name value` options off the positional arguments.
fn options<'a>(args: &'a [String], names: &[&str]) -> Result<Parsed<'a>, String> {
    let (mut opts, mut rest) = (Vec::new(), Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(n) = a.strip_prefix("--") {
            if !names.contains(&n) {
                return Err(format!("unknown option --{n}"));
            }
            opts.push((n, it.next().ok_or(format!("--{n} needs a value"))?.as_str()));
        } else {
            rest.push(a.as_str());
        }
    }
    Ok((opts, rest))
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn clip(args: &[String]) -> Result<(), String> {
    let (opts, rest) = options(args, &["size", "fps"])?;
    let (mut w, mut h, mut fps) = (1280u32, 720u32, 10u32);
    for (n, v) in opts {
        match n {
            "size" => {
                let (a, b) = v.split_once('x').ok_or("--size is WxH")?;
                w = a.parse().map_err(|_| "bad width")?;
                h = b.parse().map_err(|_| "bad height")?;
            }
            _ => fps = v.parse().map_err(|_| "bad --fps")?,
        }
    }
    let (out, segments) = rest.split_first().ok_or("clip needs OUT.mp4 and segments")?;
    if segments.is_empty() {
        return Err("clip needs at least one PHOTO:SECONDS segment".into());
    }
    let caps =
        format!("video/x-raw,format=I420,width={w},height={h},framerate={fps}/1,pixel-aspect-ratio=1/1");
    let mut desc = format!(
        "concat name=c ! x264enc speed-preset=veryfast key-int-max={fps} ! h264parse ! mp4mux ! filesink location={}",
        quote(out)
    );
    for seg in segments {
        let (src, secs) = seg.rsplit_once(':').ok_or(format!("segment {seg:?} is not PHOTO:SECONDS"))?;
        let secs: f64 = secs.parse().map_err(|_| format!("bad seconds in {seg:?}"))?;
        let n = ((secs * fps as f64).round() as u64).max(1);
        let branch = if src == "black" {
            format!(" videotestsrc pattern=black num-buffers={n} ! videoconvert ! {caps} ! c.")
        } else {
            // add-borders keeps the photo's shape (black bars), as a camera would not stretch.
            format!(
                " filesrc location={} ! decodebin ! videoconvert ! videoscale add-borders=true ! \
                 video/x-raw,width={w},height={h},pixel-aspect-ratio=1/1 ! imagefreeze num-buffers={n} ! \
                 videorate ! videoconvert ! {caps} ! c.",
                quote(src)
            )
        };
        desc.push_str(&branch);
    }
    gst::init().map_err(|e| e.to_string())?;
    let pipeline = gst::parse::launch(&desc).map_err(|e| format!("{e}: {desc}"))?;
    pipeline.set_state(gst::State::Playing).map_err(|e| e.to_string())?;
    let bus = pipeline.bus().ok_or("no bus")?;
    let result = match bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(600),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .as_ref()
        .map(|m| m.view())
    {
        Some(gst::MessageView::Eos(_)) => Ok(()),
        Some(gst::MessageView::Error(e)) => Err(format!("{} ({:?})", e.error(), e.debug())),
        _ => Err("timed out".into()),
    };
    let _ = pipeline.set_state(gst::State::Null);
    result
}

fn serve(args: &[String]) -> Result<(), String> {
    let (opts, mounts) = options(args, &["port"])?;
    let port = opts.iter().find(|(n, _)| *n == "port").map_or("0", |(_, v)| v);
    if mounts.is_empty() {
        return Err("serve needs at least one /MOUNT=CLIP.mp4".into());
    }
    gst::init().map_err(|e| e.to_string())?;
    let main_loop = gst::glib::MainLoop::new(None, false);
    let server = rtsp::RTSPServer::new();
    server.set_address("127.0.0.1");
    server.set_service(port);
    let points = server.mount_points().ok_or("no mount points")?;
    for m in mounts {
        let (path, file) = m.split_once('=').ok_or(format!("{m:?} is not /MOUNT=CLIP.mp4"))?;
        if !std::path::Path::new(file).is_file() {
            return Err(format!("{file}: no such file"));
        }
        let factory = rtsp::RTSPMediaFactory::new();
        factory.set_launch(&format!(
            "( filesrc location={} ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )",
            quote(file)
        ));
        factory.set_shared(false);
        points.add_factory(path, factory);
    }
    let _id = server.attach(None).map_err(|e| format!("cannot listen on port {port}: {e}"))?;
    println!("ready {}", server.bound_port());
    use std::io::Write;
    let _ = std::io::stdout().flush();
    main_loop.run();
    Ok(())
}
