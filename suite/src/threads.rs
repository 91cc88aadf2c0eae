//! The calling thread: its id and its status, and running code on a thread
//! of its own.

/// The calling thread's id (`gettid(2)`).
pub fn tid() -> i32 {
    nix::unistd::gettid().as_raw()
}

/// The calling thread's line `key` of `/proc/thread-self/status` (like
/// `CapEff`), its value trimmed; empty if there is no such line.
pub fn status_line(key: &str) -> String {
    std::fs::read_to_string("/proc/thread-self/status")
        .unwrap()
        .lines()
        .find(|l| l.split(':').next() == Some(key))
        .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        .unwrap_or_default()
}

/// Runs `f` on a new thread and returns its result, re-raising its panic.
/// Tests that switch or poison a thread do it on a thread of their own.
pub fn on_fresh_thread<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(r) => r,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}
