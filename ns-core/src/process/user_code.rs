//! Containment of user code that runs on nsguard's threads.
//!
//! Closures, what they capture, their results, panic payloads and wakers are
//! user code: their `Drop` (or `wake`) may panic. On a worker, the origin
//! thread or a helper, such a panic must never unwind through nsguard's own
//! bookkeeping, or a caller would wait forever and a worker slot would leak.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`, catching a panic: its payload is returned as the error.
pub(crate) fn contain<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    catch_unwind(AssertUnwindSafe(f))
}

/// Drops `value`, whose `Drop` is user code. A panic there is caught and
/// its payload forgotten rather than dropped (dropping it could panic too).
pub(crate) fn drop_contained<T>(value: T) {
    if let Err(payload) = contain(move || drop(value)) {
        std::mem::forget(payload);
    }
}
