//! GStreamer: one pipeline per camera on its own thread, and still-image decoding for
//! enrolment photos.
//!
//! A camera's pipeline is `uridecodebin` (rtsp://, file://, http(s)://) ! videorate (at most
//! the detection rate, dropping only, before any conversion) ! videoconvert (a no-op for the
//! I420 that H.264 decoders give) ! I420 appsink (one buffer, newest wins). Health and motion
//! gating read the luma plane; only a frame that is to be detected is converted to BGR. When the stream fails or ends, the pipeline is torn down and
//! built again after a backoff that doubles up to a limit.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::VideoFrameExt;

use crate::health::{FrameStats, Health, HealthConfig, HealthState};
use crate::image::{Frame, Matrix, Yuv};
use crate::motion::{Focus, Motion, MotionConfig};

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
    /// A frame to detect faces in where `focus` says, at no more than the configured rate.
    fn frame(&self, camera: usize, frame: Frame, stats: &FrameStats, focus: Focus);
    /// A frame motion gating let go undetected (never converted).
    fn gated(&self, _camera: usize, _stats: &FrameStats) {}
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
    /// Motion gating; `None` or disabled: every frame is detected in full.
    pub motion: Option<MotionConfig>,
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
    // Kept across reconnections: a stream that comes back unchanged stays gated.
    let mut motion = cfg.motion.clone().filter(|m| m.enabled).map(Motion::new);
    let mut backoff = cfg.backoff.0;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let why = match stream(&cfg, &events, &stop, &mut health, motion.as_mut()) {
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
    mut motion: Option<&mut Motion>,
) -> Result<(), VideoError> {
    let epoch = Instant::now();
    let pipeline = gst::Pipeline::new();
    let make = |f: &str| gst::ElementFactory::make(f).build().map_err(gst_err);
    let src = gst::ElementFactory::make("uridecodebin").property("uri", &cfg.uri).build().map_err(gst_err)?;
    let rate = make("videorate")?;
    rate.set_property("drop-only", true);
    rate.set_property("max-rate", cfg.fps.max(1) as i32);
    let convert = make("videoconvert")?;
    let sink = gst_app::AppSink::builder()
        .caps(&gst::Caps::builder("video/x-raw").field("format", "I420").build())
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
        let now = Instant::now();
        let handled = with_yuv(&sample, |yuv| {
            let stats = FrameStats::of_yuv(yuv);
            if let Some(s) = health.frame(&stats, now) {
                events.health(cfg.camera, s, "");
            }
            let focus = match motion.as_deref_mut() {
                Some(m) => gate(m, yuv, now.duration_since(epoch)),
                None => Focus::Full,
            };
            if focus == Focus::Skip {
                events.gated(cfg.camera, &stats);
            } else {
                events.frame(cfg.camera, yuv.to_bgr(), &stats, focus);
            }
        });
        if handled.is_none() {
            tracing::debug!(camera = %cfg.name, "unreadable frame skipped");
        }
    }
    Ok(())
}

/// Where to detect in `yuv` by the camera's motion, at stream time `at`.
pub fn gate(motion: &mut Motion, yuv: &Yuv<'_>, at: Duration) -> Focus {
    let (gw, gh) = motion.config().grid(yuv.width, yuv.height);
    let small = yuv.small_grey(gw, gh);
    motion.update(yuv.width, yuv.height, &small, at)
}

/// Runs `f` on an I420 sample's planes, mapped in place.
fn with_yuv<R>(sample: &gst::Sample, f: impl FnOnce(&Yuv<'_>) -> R) -> Option<R> {
    let info = gst_video::VideoInfo::from_caps(sample.caps()?).ok()?;
    if info.format() != gst_video::VideoFormat::I420 {
        return None;
    }
    let buffer = sample.buffer()?;
    let vf = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).ok()?;
    let strides = vf.plane_stride();
    let matrix = match info.colorimetry().matrix() {
        gst_video::VideoColorMatrix::Bt709 => Matrix::Bt709,
        _ => Matrix::Bt601,
    };
    let yuv = Yuv {
        width: info.width(),
        height: info.height(),
        planes: [vf.plane_data(0).ok()?, vf.plane_data(1).ok()?, vf.plane_data(2).ok()?],
        strides: [strides[0] as usize, strides[1] as usize, strides[2] as usize],
        matrix,
    };
    Some(f(&yuv))
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
        return Frame::new(w as u32, h as u32, Arc::<[u8]>::from(map.as_slice().get(..row * h)?));
    }
    staged.clear();
    for y in 0..h {
        staged.extend_from_slice(map.as_slice().get(y * stride..y * stride + row)?);
    }
    Frame::new(w as u32, h as u32, Arc::<[u8]>::from(staged.as_slice()))
}

/// A pipeline from `desc` and its appsrc, named `src`.
fn launch_with_appsrc(desc: &str) -> Result<(gst::Pipeline, gst_app::AppSrc), VideoError> {
    init()?;
    let pipeline = gst::parse::launch(desc)
        .map_err(gst_err)?
        .downcast::<gst::Pipeline>()
        .map_err(|_| gst_err("not a pipeline"))?;
    let src = pipeline
        .by_name("src")
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .ok_or_else(|| gst_err("no appsrc"))?;
    Ok((pipeline, src))
}

/// Decodes a photo (JPEG, PNG, whatever GStreamer's decoders take) to BGR.
pub fn decode_image(bytes: &[u8]) -> Result<Frame, VideoError> {
    let (pipeline, src) = launch_with_appsrc(
        "appsrc name=src ! decodebin ! videoconvert ! video/x-raw,format=BGR ! appsink name=sink sync=false",
    )?;
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
    let (pipeline, sink, _guard) = decode_as_fast_as_it_goes(uri, "BGR")?;
    let (mut n, mut staged) = (0, Vec::new());
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(10)) {
        if let Some(frame) = to_frame(&sample, &mut staged) {
            f(frame);
            n += 1;
        }
    }
    bus_error(&pipeline)?;
    Ok(n)
}

/// Decodes every frame of a video file as fast as it goes, as I420 (what camera pipelines
/// gate on), for benchmarks: `f` gets each with its presentation time.
pub fn decode_file_yuv(uri: &str, mut f: impl FnMut(&Yuv<'_>, Duration)) -> Result<usize, VideoError> {
    let (pipeline, sink, _guard) = decode_as_fast_as_it_goes(uri, "I420")?;
    let mut n = 0;
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(10)) {
        let pts = sample.buffer().and_then(|b| b.pts()).map(|t| Duration::from_nanos(t.nseconds()));
        if with_yuv(&sample, |y| f(y, pts.unwrap_or_default())).is_some() {
            n += 1;
        }
    }
    bus_error(&pipeline)?;
    Ok(n)
}

/// A playing `uri ! videoconvert ! appsink` giving `format`, not synced to the clock.
fn decode_as_fast_as_it_goes(
    uri: &str,
    format: &str,
) -> Result<(gst::Pipeline, gst_app::AppSink, StopOnDrop), VideoError> {
    init()?;
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("uridecodebin").property("uri", uri).build().map_err(gst_err)?;
    let convert = gst::ElementFactory::make("videoconvert").build().map_err(gst_err)?;
    let sink = gst_app::AppSink::builder()
        .caps(&gst::Caps::builder("video/x-raw").field("format", format).build())
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
    let guard = StopOnDrop(pipeline.clone());
    pipeline.set_state(gst::State::Playing).map_err(gst_err)?;
    Ok((pipeline, sink, guard))
}

/// The error the pipeline stopped with, if it did.
fn bus_error(pipeline: &gst::Pipeline) -> Result<(), VideoError> {
    if let Some(msg) = pipeline.bus().and_then(|b| b.pop_filtered(&[gst::MessageType::Error])) {
        if let gst::MessageView::Error(e) = msg.view() {
            return Err(VideoError::Gst(e.error().to_string()));
        }
    }
    Ok(())
}

/// Encodes BGR frames (all `width` x `height`) as an H.264 MP4 at `fps`, for test and
/// benchmark clips. A keyframe every second, as cameras send.
pub fn encode_clip(
    out: &std::path::Path,
    width: u32,
    height: u32,
    fps: u32,
    frames: impl IntoIterator<Item = Frame>,
) -> Result<usize, VideoError> {
    let desc = format!(
        "appsrc name=src format=time ! videoconvert ! video/x-raw,format=I420 ! \
         x264enc speed-preset=veryfast key-int-max={fps} ! h264parse ! mp4mux ! filesink name=sink"
    );
    let (pipeline, src) = launch_with_appsrc(&desc)?;
    pipeline.by_name("sink").ok_or_else(|| gst_err("no sink"))?.set_property("location", out.to_str());
    src.set_caps(Some(
        &gst::Caps::builder("video/x-raw")
            .field("format", "BGR")
            .field("width", width as i32)
            .field("height", height as i32)
            .field("framerate", gst::Fraction::new(fps as i32, 1))
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build(),
    ));
    src.set_property("block", true);
    let _guard = StopOnDrop(pipeline.clone());
    pipeline.set_state(gst::State::Playing).map_err(gst_err)?;
    let mut n = 0u64;
    for f in frames {
        if f.width != width || f.height != height {
            return Err(gst_err(format!("frame {n} is {}x{}, not {width}x{height}", f.width, f.height)));
        }
        let mut b = gst::Buffer::from_slice(f.data.to_vec());
        {
            let b = b.get_mut().ok_or_else(|| gst_err("buffer not writable"))?;
            b.set_pts(gst::ClockTime::from_nseconds(n * 1_000_000_000 / fps as u64));
            b.set_duration(gst::ClockTime::from_nseconds(1_000_000_000 / fps as u64));
        }
        src.push_buffer(b).map_err(gst_err)?;
        n += 1;
    }
    src.end_of_stream().map_err(gst_err)?;
    let bus = pipeline.bus().ok_or_else(|| gst_err("pipeline without a bus"))?;
    match bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(300),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .as_ref()
        .map(|m| m.view())
    {
        Some(gst::MessageView::Eos(_)) => Ok(n as usize),
        Some(gst::MessageView::Error(e)) => Err(VideoError::Gst(e.error().to_string())),
        _ => Err(gst_err("encoding timed out")),
    }
}
