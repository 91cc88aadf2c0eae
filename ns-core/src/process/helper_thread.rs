//! Short-lived helper threads whose failure to start is an [`Error`], not a
//! panic (`std::thread::scope`'s `spawn` panics when `clone(2)` fails).

use std::io;

use crate::errno::Errno;
use crate::error::{Error, Result};

/// Runs `f` on a new thread and waits for it. A panic in `f` is re-raised.
///
/// # Errors
///
/// [`Error::Thread`] if the thread cannot be created: `EAGAIN` under a
/// cgroup's `pids.max` or `RLIMIT_NPROC`, `EINVAL` when the calling thread
/// has entered another pid namespace.
pub(crate) fn on_new_thread<R: Send>(
    purpose: &'static str,
    f: impl FnOnce() -> R + Send,
) -> Result<R> {
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .name("nsguard-helper".into())
            .spawn_scoped(s, f)
            .map_err(|e| thread_error(purpose, &e))?;
        match handle.join() {
            Ok(value) => Ok(value),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// The error for a thread that could not be created.
pub(crate) fn thread_error(purpose: &'static str, err: &io::Error) -> Error {
    Error::Thread {
        purpose,
        errno: Errno::from_raw(err.raw_os_error().unwrap_or(libc::EAGAIN)),
    }
}
