//! What tests run bodies and futures with: an nsguard executor whose worker
//! count a test can rely on ([`capped_executor`]), and the smallest future
//! executor there is ([`block_on`]), for tests that must not need a runtime.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

/// A private executor of at most `max_workers` workers that never starts
/// one beyond the cap (`overflow_after(MAX)`): for tests whose assertions
/// depend on the cap, or on a worker being reused.
///
/// # Panics
///
/// If the executor cannot be built.
pub fn capped_executor(max_workers: usize) -> nsguard::Executor {
    nsguard::Executor::builder()
        .max_workers(max_workers)
        .overflow_after(std::time::Duration::MAX)
        .build()
        .expect("build the executor")
}

/// Polls `f` to completion on the calling thread: poll, park, repeat. No
/// runtime; a wake unparks the thread.
pub fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(value) = f.as_mut().poll(&mut cx) {
            return value;
        }
        std::thread::park();
    }
}
