//! The two lanes kuzet's work runs in. The dispatch lane (the actors' thread) works what
//! changes dispatch: alarms, replies, progress, statuses, buttons' and tablets' presence,
//! dispatchers' orders. The bulk lane (its own thread, and the writer's) takes what a city
//! sends most of: positions, heartbeats, cameras' presence and detections, and the writing of
//! history. Bulk threads run at a lower CPU priority, so that
//! when the cores are busy the scheduler gives a waking alarm a core first; they still get
//! every cycle the dispatch lane leaves, which is nearly all of them.

/// How much lower the bulk lane's threads run than the dispatch lane (nice; per thread on
/// Linux). Lowering one's own priority needs no privilege.
pub const BULK_NICE: i32 = 5;

/// Lowers the calling thread's CPU priority by `BULK_NICE`.
pub fn lower_priority(thread: &str) {
    // SAFETY: nice(3) changes the calling thread's nice value (glibc: setpriority on the
    // calling thread); it reads and writes no memory of ours. -1 can be a valid result, so
    // errno is cleared first and read after.
    let failed = unsafe {
        *libc::__errno_location() = 0;
        libc::nice(BULK_NICE) == -1 && *libc::__errno_location() != 0
    };
    if failed {
        tracing::warn!(thread, error = %std::io::Error::last_os_error(), "cannot lower this thread's priority");
    }
}
