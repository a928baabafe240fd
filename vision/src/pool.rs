//! Frames from every camera to the inference threads. Each camera has one slot: a frame not
//! yet taken is replaced by the newer one (and counted as dropped), so a slow pool looks at
//! the present, never at a backlog.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use crate::image::Frame;
use crate::motion::Focus;

#[derive(Default)]
struct State {
    slots: Vec<Option<(Frame, Focus, Instant)>>,
    ready: VecDeque<usize>,
    stopped: bool,
}

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    cv: Condvar,
    submitted: AtomicU64,
    dropped: AtomicU64,
}

/// Cheap to clone; every clone is the same pool.
#[derive(Clone, Default)]
pub struct FramePool {
    inner: Arc<Inner>,
}

impl FramePool {
    pub fn new() -> Self {
        Self::default()
    }

    /// A new camera's slot index.
    pub fn add_camera(&self) -> usize {
        let mut s = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        s.slots.push(None);
        s.slots.len() - 1
    }

    /// Hands over a camera's newest frame, to be detected in full.
    pub fn submit(&self, camera: usize, frame: Frame) {
        self.submit_focus(camera, frame, Focus::Full);
    }

    /// Hands over a camera's newest frame and where in it to detect.
    pub fn submit_focus(&self, camera: usize, frame: Frame, focus: Focus) {
        self.inner.submitted.fetch_add(1, Ordering::Relaxed);
        let mut s = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        let Some(slot) = s.slots.get_mut(camera) else {
            return;
        };
        if slot.replace((frame, focus, Instant::now())).is_some() {
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            s.ready.push_back(camera);
            drop(s);
            self.inner.cv.notify_one();
        }
    }

    /// Waits for a frame: (camera, frame, where to detect, when it was handed over). `None`
    /// once stopped.
    pub fn take(&self) -> Option<(usize, Frame, Focus, Instant)> {
        let mut s = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if s.stopped {
                return None;
            }
            if let Some(cam) = s.ready.pop_front() {
                if let Some((f, focus, at)) = s.slots[cam].take() {
                    return Some((cam, f, focus, at));
                }
                continue;
            }
            s = self.inner.cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Wakes every waiting thread with `None`.
    pub fn stop(&self) {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner()).stopped = true;
        self.inner.cv.notify_all();
    }

    /// (frames handed over, frames replaced before a thread took them).
    pub fn counts(&self) -> (u64, u64) {
        (self.inner.submitted.load(Ordering::Relaxed), self.inner.dropped.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_frame_wins_and_cameras_take_turns() {
        let pool = FramePool::new();
        let (a, b) = (pool.add_camera(), pool.add_camera());
        pool.submit(a, Frame::filled(2, 2, [1, 1, 1]));
        pool.submit(b, Frame::filled(2, 2, [5, 5, 5]));
        pool.submit(a, Frame::filled(2, 2, [2, 2, 2]));
        let (cam, f, _, _) = pool.take().unwrap();
        assert_eq!((cam, f.data[0]), (a, 2));
        let (cam, f, _, _) = pool.take().unwrap();
        assert_eq!((cam, f.data[0]), (b, 5));
        assert_eq!(pool.counts(), (3, 1));
        let p2 = pool.clone();
        let waiter = std::thread::spawn(move || p2.take().is_none());
        std::thread::sleep(std::time::Duration::from_millis(50));
        pool.stop();
        assert!(waiter.join().unwrap());
    }
}
