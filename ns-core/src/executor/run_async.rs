//! [`RunAsync`]: the future of [`Executor::run_async`] and
//! [`NsSet::run_async`], an owned call that never blocks its caller.

use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::error::{Error, Result};
use crate::executor::handle::{refuse_code, Executor};
use crate::executor::scheduler::forked_error;
use crate::executor::set_ref::SetRef;
use crate::executor::task::{OwnedTask, Task, Work};
use crate::handle::set::NsSet;
use crate::process::user_code::{contain, drop_contained};
use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::Mutex;
use crate::sys::fork_local;
use crate::thread::marks;

/// What a [`RunAsync`] waits for.
struct Slot<R> {
    outcome: Option<Result<std::thread::Result<R>>>,
    waker: Option<Waker>,
}

/// The future of [`Executor::run_async`] and [`NsSet::run_async`]: resolves
/// when the closure has run on a worker inside the namespaces.
///
/// It needs no particular async runtime, and polling it never blocks: the
/// call waits in the executor's queue, not on the polling thread. Dropping
/// it before completion is safe: a call that has not started is skipped, one
/// that has started finishes on its worker, which is then reused.
///
/// # Panics
///
/// If the closure panicked, polling re-raises its panic, with its payload.
#[must_use = "futures do nothing unless polled; the call is already queued, but its result is lost"]
pub struct RunAsync<R> {
    slot: Arc<Mutex<Slot<R>>>,
    cancelled: Arc<AtomicBool>,
    /// The fork generation it was made in: in a forked child the worker
    /// that would complete it does not exist.
    generation: u64,
}

impl<R> fmt::Debug for RunAsync<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let done = self
            .slot
            .lock()
            .map(|s| s.outcome.is_some())
            .unwrap_or(false);
        f.debug_struct("RunAsync").field("done", &done).finish()
    }
}

impl<R> RunAsync<R> {
    fn ready(outcome: Result<std::thread::Result<R>>) -> RunAsync<R> {
        RunAsync {
            slot: Arc::new(Mutex::new(Slot {
                outcome: Some(outcome),
                waker: None,
            })),
            cancelled: Arc::new(AtomicBool::new(false)),
            generation: fork_local::generation(),
        }
    }
}

impl<R> Future for RunAsync<R> {
    type Output = Result<R>;

    /// # Panics
    ///
    /// If the closure panicked, its panic is re-raised here with its payload.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<R>> {
        if self.generation != fork_local::generation() {
            return Poll::Ready(Err(forked_error()));
        }
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        match slot.outcome.take() {
            Some(Ok(Ok(value))) => Poll::Ready(Ok(value)),
            Some(Ok(Err(panic))) => {
                drop(slot);
                crate::process::user_code::reraise(panic)
            }
            Some(Err(err)) => Poll::Ready(Err(err)),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl<R> Drop for RunAsync<R> {
    fn drop(&mut self) {
        self.cancelled.store(true, Ordering::Release);
    }
}

impl Executor {
    /// Runs `f` on a worker inside the namespaces of `set`, without
    /// blocking: returns a future of its value. See [`RunAsync`].
    ///
    /// Unlike [`run`](Self::run), `f` cannot borrow (`'static`): the caller
    /// does not wait on a thread while it runs. The set's handles are
    /// duplicated for the call.
    ///
    /// # Errors
    ///
    /// The future resolves to the errors of [`run`](Self::run), and to
    /// [`Error::Io`] if the set's fds cannot be duplicated.
    ///
    /// # Panics
    ///
    /// Polling the future re-raises a panic of `f`, with its payload.
    pub fn run_async<R, F>(&self, set: &NsSet, f: F) -> RunAsync<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let scheduler = self.scheduler();
        let prepared = refuse_code::<R>("run_async")
            .and_then(|()| marks::check())
            .and_then(|()| scheduler.check_usable())
            .and_then(|()| scheduler.check_runnable(&SetRef::from_set(set)))
            .and_then(|()| set.try_clone());
        let set = match prepared {
            Ok(set) => set,
            Err(err) => return RunAsync::ready(Err(err)),
        };
        let future = RunAsync {
            slot: Arc::new(Mutex::new(Slot {
                outcome: None,
                waker: None,
            })),
            cancelled: Arc::new(AtomicBool::new(false)),
            generation: scheduler.generation,
        };
        let desired = scheduler
            .home_location
            .overlaid(set.iter().map(|ns| ns.id()));
        // With tokio, the body runs in its place's runtime (set_runtime.rs).
        #[cfg(feature = "tokio")]
        let context = match crate::executor::set_runtime::context_for(
            scheduler,
            &SetRef::from_set(&set),
            &desired,
        ) {
            Ok(context) => context,
            Err(err) => return RunAsync::ready(Err(err)),
        };
        let (slot, cancelled) = (Arc::clone(&future.slot), Arc::clone(&future.cancelled));
        // Runs on a worker (or wherever the task is failed). Everything of
        // the caller's it touches is contained: the closure (run, or dropped
        // unrun), the waker, and the result or panic payload, which is
        // dropped here when nobody waits for it any more.
        let job = move |failure: Option<Error>| {
            let outcome = match failure {
                Some(err) => {
                    drop_contained(f);
                    Err(err)
                }
                // Nobody waits any more: skip the body.
                None if cancelled.load(Ordering::Acquire) => {
                    drop_contained(f);
                    return;
                }
                None => Ok(catch_unwind(AssertUnwindSafe(move || {
                    #[cfg(feature = "tokio")]
                    let _entered = context.as_ref().map(tokio::runtime::Handle::enter);
                    f()
                }))),
            };
            let waker = {
                let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
                slot.outcome = Some(outcome);
                slot.waker.take()
            };
            if let Some(waker) = waker {
                drop_contained(contain(move || waker.wake()));
            }
            drop_contained(slot);
        };
        let work = Work::Owned(Box::new(OwnedTask {
            set,
            job: Some(Box::new(job)),
        }));
        // Its caller does not wait: how the task was handed on is moot.
        let _ = scheduler.dispatch(Task { work, desired });
        future
    }
}

impl NsSet {
    /// [`NsSet::run`] for async code: runs `f` on a worker of the
    /// [global executor](Executor::global) inside the set, and returns a
    /// future of its value that needs no particular runtime and never blocks
    /// the thread that polls it. See [`Executor::run_async`].
    ///
    /// # Errors
    ///
    /// The future resolves to the errors of [`Executor::run_async`]; the
    /// closure's own result is its value.
    ///
    /// # Panics
    ///
    /// Polling the future re-raises a panic of `f`, with its payload.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use nsguard::{NsKind, NsSet};
    ///
    /// let set = NsSet::unshare(NsKind::Net)?;
    /// // A socket made inside, used anywhere: the first `?` is nsguard's
    /// // error, the second the closure's `io::Result`.
    /// let listener: std::net::TcpListener =
    ///     set.run_async(|| std::net::TcpListener::bind("127.0.0.1:0")).await??;
    /// # drop(listener);
    /// # Ok(()) }
    /// ```
    pub fn run_async<R, F>(&self, f: F) -> RunAsync<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        match Executor::global() {
            Ok(executor) => executor.run_async(self, f),
            Err(err) => RunAsync::ready(Err(err)),
        }
    }
}
