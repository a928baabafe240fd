//! GStreamer: one pipeline per camera on its own thread, and still-image decoding for
//! enrolment photos.
//!
//! A camera's pipeline is `uridecodebin` (rtsp://, file://, http(s)://) ! videorate (at most
//! the detection rate, dropping only, before any conversion) ! videoconvert ! BGR appsink
//! (one buffer, newest wins). When the stream fails or ends, the pipeline is torn down and
//! built again after a backoff that doubles up to a limit.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use crate::health::{FrameStats, Health, HealthConfig, HealthState};
use crate::image::Frame;

#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("GStreamer: {0}")]
    Gst(String),
    #[error("cannot decode the image: {0}")]
    Decode(String),
}

fn gst_err(e: impl std::fmt::Display) -> VideoError {
    VideoError::Gst(e.to_string())
}

/// Initialises GStreamer once for the process.
pub fn init() -> Result<(), VideoError> {
    gst::init().map_err(gst_err)
}

/// What a camera's pipeline thread reports.
pub trait SourceEvents: Send + Sync + 'static {
    /// A frame, at no more than the configured rate.
    fn frame(&self, camera: usize, frame: Frame, stats: &FrameStats);
    /// The camera's health changed; `detail` says why (an error from the stream, say).
    fn health(&self, camera: usize, state: HealthState, detail: &str);
}

#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// The camera's index in the pool.
    pub camera: usize,
    /// For logs.
    pub name: String,
    pub uri: String,
    /// Frames per second handed on (the detection rate).
    pub fps: u32,
    pub health: HealthConfig,
    /// First and longest wait before building the pipeline again.
    pub backoff: (Duration, Duration),
}

/// A running camera pipeline thread.
pub struct Source {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Source {
    pub fn spawn(cfg: SourceConfig, events: Arc<dyn SourceEvents>) -> Result<Self, VideoError> {
        init()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("cam-{}", cfg.name))
            .spawn(move || run(cfg, events, flag))
            .map_err(gst_err)?;
        Ok(Self { stop, thread: Some(thread) })
    }

    /// Stops the pipeline and waits for its thread.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.halt();
    }
}

fn run(cfg: SourceConfig, events: Arc<dyn SourceEvents>, stop: Arc<AtomicBool>) {
    let mut health = Health::new(cfg.health.clone(), Instant::now());
    let mut backoff = cfg.backoff.0;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let why = match stream(&cfg, &events, &stop, &mut health) {
            Ok(()) => "end of stream".to_owned(),
            Err(e) => e.to_string(),
        };
        if stop.load(Ordering::Relaxed) {
            break;
        }
        tracing::warn!(camera = %cfg.name, reason = %why, retry_in_ms = backoff.as_millis() as u64, "camera stream stopped");
        // A stream that ran a while before failing starts the backoff over.
        if started.elapsed() > cfg.backoff.1 {
            backoff = cfg.backoff.0;
        }
        let until = Instant::now() + backoff;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            if let Some(s) = health.tick(Instant::now()) {
                events.health(cfg.camera, s, &why);
            }
        }
        backoff = (backoff * 2).min(cfg.backoff.1);
    }
}

/// Builds the pipeline and pulls frames until the stream ends, fails or `stop` is set.
fn stream(
    cfg: &SourceConfig,
    events: &Arc<dyn SourceEvents>,
    stop: &AtomicBool,
    health: &mut Health,
) -> Result<(), VideoError> {
    let pipeline = gst::Pipeline::new();
    let make = |f: &str| gst::ElementFactory::make(f).build().map_err(gst_err);
    let src = gst::ElementFactory::make("uridecodebin").property("uri", &cfg.uri).build().map_err(gst_err)?;
    let rate = make("videorate")?;
    rate.set_property("drop-only", true);
    rate.set_property("max-rate", cfg.fps.max(1) as i32);
    let convert = make("videoconvert")?;
    let sink = gst_app::AppSink::builder()
        .caps(&gst::Caps::builder("video/x-raw").field("format", "BGR").build())
        .max_buffers(1)
        .drop(true)
        .sync(true)
        .build();
    pipeline.add_many([&src, &rate, &convert, sink.upcast_ref()]).map_err(gst_err)?;
    gst::Element::link_many([&rate, &convert, sink.upcast_ref()]).map_err(gst_err)?;
    let rate_sink = rate.static_pad("sink").ok_or_else(|| gst_err("videorate has no sink pad"))?;
    src.connect_pad_added(move |_, pad| {
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let video = caps.structure(0).is_some_and(|s| s.name().starts_with("video/"));
        if video && !rate_sink.is_linked() {
            if let Err(e) = pad.link(&rate_sink) {
                tracing::warn!(error = ?e, "cannot link the decoded video");
            }
        }
    });
    let _guard = StopOnDrop(pipeline.clone());
    pipeline.set_state(gst::State::Playing).map_err(gst_err)?;
    let bus = pipeline.bus().ok_or_else(|| gst_err("pipeline without a bus"))?;
    let mut staged: Vec<u8> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error, gst::MessageType::Eos]) {
            return match msg.view() {
                gst::MessageView::Error(e) => Err(VideoError::Gst(format!(
                    "{} ({})",
                    e.error(),
                    e.debug().map(|d| d.to_string()).unwrap_or_default()
                ))),
                _ => Ok(()),
            };
        }
        let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(200)) else {
            if sink.is_eos() {
                return Ok(());
            }
            if let Some(s) = health.tick(Instant::now()) {
                events.health(cfg.camera, s, "no frames");
            }
            continue;
        };
        let Some(frame) = to_frame(&sample, &mut staged) else {
            continue;
        };
        let stats = FrameStats::of(&frame);
        if let Some(s) = health.frame(&stats, Instant::now()) {
            events.health(cfg.camera, s, "");
        }
        events.frame(cfg.camera, frame, &stats);
    }
    Ok(())
}

/// Sets the pipeline to Null however the stream ends.
struct StopOnDrop(gst::Pipeline);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
    }
}

/// Packed BGR from a sample whose rows may be padded to 4 bytes.
fn to_frame(sample: &gst::Sample, staged: &mut Vec<u8>) -> Option<Frame> {
    let info = gst_video::VideoInfo::from_caps(sample.caps()?).ok()?;
    let buffer = sample.buffer()?;
    let map = buffer.map_readable().ok()?;
    let (w, h) = (info.width() as usize, info.height() as usize);
    let stride = info.stride()[0] as usize;
    let row = w * 3;
    if stride == row {
        return Frame::new(w as u32, h as u32, map.as_slice().get(..row * h)?.to_vec());
    }
    staged.clear();
    for y in 0..h {
        staged.extend_from_slice(map.as_slice().get(y * stride..y * stride + row)?);
    }
    Frame::new(w as u32, h as u32, staged.clone())
}

/// Decodes a photo (JPEG, PNG, whatever GStreamer's decoders take) to BGR.
pub fn decode_image(bytes: &[u8]) -> Result<Frame, VideoError> {
    init()?;
    let pipeline = gst::parse::launch(
        "appsrc name=src ! decodebin ! videoconvert ! video/x-raw,format=BGR ! appsink name=sink sync=false",
    )
    .map_err(gst_err)?
    .downcast::<gst::Pipeline>()
    .map_err(|_| gst_err("not a pipeline"))?;
    let src = pipeline
        .by_name("src")
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .ok_or_else(|| gst_err("no appsrc"))?;
    let sink = pipeline
        .by_name("sink")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| gst_err("no appsink"))?;
    let _guard = StopOnDrop(pipeline.clone());
    pipeline.set_state(gst::State::Playing).map_err(gst_err)?;
    src.push_buffer(gst::Buffer::from_slice(bytes.to_vec())).map_err(gst_err)?;
    src.end_of_stream().map_err(gst_err)?;
    let bus = pipeline.bus().ok_or_else(|| gst_err("pipeline without a bus"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let sample = loop {
        if let Some(s) = sink.try_pull_sample(gst::ClockTime::from_mseconds(50)) {
            break s;
        }
        // A file that is not a picture fails fast; do not wait out the deadline for it.
        if let Some(m) = bus.pop_filtered(&[gst::MessageType::Error]) {
            let why = match m.view() {
                gst::MessageView::Error(e) => e.error().to_string(),
                _ => String::new(),
            };
            return Err(VideoError::Decode(why));
        }
        if sink.is_eos() || Instant::now() > deadline {
            return Err(VideoError::Decode("no picture in it".into()));
        }
    };
    to_frame(&sample, &mut Vec::new()).ok_or_else(|| VideoError::Decode("unreadable frame".into()))
}

/// Decodes every frame of a video file as fast as it goes, for benchmarks: `f` gets each.
pub fn decode_file(uri: &str, mut f: impl FnMut(Frame)) -> Result<usize, VideoError> {
    init()?;
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("uridecodebin").property("uri", uri).build().map_err(gst_err)?;
    let convert = gst::ElementFactory::make("videoconvert").build().map_err(gst_err)?;
    let sink = gst_app::AppSink::builder()
        .caps(&gst::Caps::builder("video/x-raw").field("format", "BGR").build())
        .max_buffers(4)
        .sync(false)
        .build();
    pipeline.add_many([&src, &convert, sink.upcast_ref()]).map_err(gst_err)?;
    convert.link(&sink).map_err(gst_err)?;
    let conv_sink = convert.static_pad("sink").ok_or_else(|| gst_err("no sink pad"))?;
    src.connect_pad_added(move |_, pad| {
        if !conv_sink.is_linked() {
            let _ = pad.link(&conv_sink);
        }
    });
    let _guard = StopOnDrop(pipeline.clone());
    pipeline.set_state(gst::State::Playing).map_err(gst_err)?;
    let mut n = 0;
    let mut staged = Vec::new();
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(10)) {
        if let Some(frame) = to_frame(&sample, &mut staged) {
            f(frame);
            n += 1;
        }
    }
    if let Some(msg) = pipeline.bus().and_then(|b| b.pop_filtered(&[gst::MessageType::Error])) {
        if let gst::MessageView::Error(e) = msg.view() {
            return Err(VideoError::Gst(e.error().to_string()));
        }
    }
    Ok(n)
}
