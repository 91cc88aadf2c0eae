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

/// Re-raises a body's panic on the caller's thread, with its payload. A
/// panic of tokio's for want of a runtime gets a line saying why a body
/// has none and what to do; other payloads are left as they are.
pub(crate) fn reraise(payload: Box<dyn std::any::Any + Send>) -> ! {
    let message = payload
        .downcast_ref::<&'static str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
    if let Some(message) = message.filter(|m| wants_tokio_context(m)) {
        let hinted = format!("{message}\n{TOKIO_HINT}");
        std::panic::resume_unwind(Box::new(hinted));
    }
    std::panic::resume_unwind(payload)
}

/// Whether `message` is tokio's panic for code that needs a runtime
/// context and has none.
fn wants_tokio_context(message: &str) -> bool {
    message.contains("there is no reactor running")
        || message.contains("must be called from the context of a Tokio 1.x runtime")
}

#[cfg(feature = "tokio")]
const TOKIO_HINT: &str = "nsguard: this body ran on an nsguard worker, which has a tokio \
    context only when the call is made from within a tokio runtime; make the call from \
    async code, or from a thread that entered a runtime (Handle::enter)";

#[cfg(not(feature = "tokio"))]
const TOKIO_HINT: &str = "nsguard: this body ran on an nsguard worker, which has no tokio \
    runtime; enable nsguard's `tokio` feature so that a body called from within a tokio \
    runtime can use tokio";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tokio_panic_for_want_of_a_runtime_gets_the_hint() {
        let caught = contain(|| reraise(Box::new("there is no reactor running, must be ..")));
        let payload = caught.expect_err("it re-raises");
        let message = payload.downcast_ref::<String>().expect("a String now");
        assert!(
            message.starts_with("there is no reactor running"),
            "{message}"
        );
        assert!(message.contains("nsguard: this body ran on an nsguard worker"));
        assert!(message.contains("`tokio` feature") || message.contains("within a tokio runtime"));
    }

    #[test]
    fn other_payloads_are_left_as_they_are() {
        let caught = contain(|| reraise(Box::new(7_u32)));
        assert_eq!(
            caught.expect_err("it re-raises").downcast_ref::<u32>(),
            Some(&7)
        );
        let caught = contain(|| reraise(Box::new("boom")));
        assert_eq!(
            caught.expect_err("it re-raises").downcast_ref::<&str>(),
            Some(&"boom")
        );
    }
}
