//! Camera video and face recognition for kuzet: GStreamer pipelines that turn streams into
//! frames, ONNX Runtime models that turn frames into face embeddings, the watchlist gallery
//! they are searched against, camera health and evidence files. No actors here: the main
//! crate wires these threads to the Camera and WantedPerson actors.

pub mod evidence;
pub mod face;
pub mod gallery;
pub mod health;
pub mod image;
pub mod motion;
pub mod pool;
pub mod video;

pub use face::{cosine, Detection, Embedding, Face, FaceError, FaceModels, ModelPaths, DIM};
pub use gallery::{Gallery, Hit};
pub use health::{FrameStats, Health, HealthConfig, HealthState};
pub use image::{Frame, Yuv};
pub use motion::{Focus, Motion, MotionConfig, Rect};
pub use pool::FramePool;
pub use video::{decode_image, Source, SourceConfig, SourceEvents, VideoError};
