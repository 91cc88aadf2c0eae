//! Async: [`RunAsync`], the future of [`Executor::run_async`], and the
//! per-poll runner behind `#[in_namespace] async fn`.

use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::error::{Error, Result};
use crate::executor::contain::{contain, drop_contained};
use crate::executor::origin;
use crate::executor::target::Target;
use crate::executor::task::{OwnedTask, Task, Work};
use crate::executor::Executor;
use crate::set::NsSet;
use crate::thread_state;

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
            generation: origin::generation(),
        }
    }
}

/// The error for a call made in a forked child on an executor (or a
/// future) of the parent process.
pub(crate) fn forked_error() -> Error {
    Error::Worker {
        reason: "this executor (or call) was made before fork(2), in the parent process, whose \
                 worker threads the child does not have; build a new Executor in the child (the \
                 global executor, used by NsSet::run and #[in_namespace], starts afresh by \
                 itself)"
            .into(),
    }
}

impl<R> Future for RunAsync<R> {
    type Output = Result<R>;

    /// # Panics
    ///
    /// If the closure panicked, its panic is re-raised here with its payload.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<R>> {
        if self.generation != origin::generation() {
            return Poll::Ready(Err(forked_error()));
        }
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        match slot.outcome.take() {
            Some(Ok(Ok(value))) => Poll::Ready(Ok(value)),
            Some(Ok(Err(panic))) => {
                drop(slot);
                std::panic::resume_unwind(panic)
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
        let shared = &self.handle.shared;
        let prepared = thread_state::check()
            .and_then(|()| shared.check_usable())
            .and_then(|()| shared.check_runnable(&set.target()))
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
            generation: shared.generation,
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
                None => Ok(catch_unwind(AssertUnwindSafe(f))),
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
        let desired = shared.home_profile.overlaid(&set.target());
        let work = Work::Owned(Box::new(OwnedTask {
            set,
            job: Some(Box::new(job)),
        }));
        shared.dispatch(Task { work, desired });
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

/// Polls `fut` on workers inside `target`, one poll per handoff: what
/// `#[in_namespace] async fn` expands to. The future is dropped inside too:
/// on the worker that completes it, or, when it is cancelled (dropped
/// before completion, say by a timeout), on a worker the drop hands it to,
/// so that its locals' destructors run in the namespaces, never on the
/// caller's thread.
pub(crate) struct RunFuture<'a, F: Future + Send> {
    target: Target<'a>,
    fut: Option<Pin<Box<F>>>,
}

impl<'a, F: Future + Send> RunFuture<'a, F> {
    pub(crate) fn new(target: Target<'a>, fut: F) -> RunFuture<'a, F> {
        RunFuture {
            target,
            fut: Some(Box::pin(fut)),
        }
    }
}

impl<F> Future for RunFuture<'_, F>
where
    F: Future + Send,
    F::Output: Send,
{
    type Output = Result<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<F::Output>> {
        let executor = match Executor::global() {
            Ok(executor) => executor,
            Err(err) => return Poll::Ready(Err(err)),
        };
        let waker = cx.waker().clone();
        #[cfg(feature = "tokio")]
        let runtime = tokio::runtime::Handle::try_current().ok();
        let this = &mut *self;
        let (target, slot) = (this.target, &mut this.fut);
        // Each poll runs on a worker inside the namespaces; the polling
        // thread waits for that one poll (polls are short by contract).
        let polled = executor.run_target(&target, move || {
            // With tokio, sockets created in the body register with the
            // caller's reactor.
            #[cfg(feature = "tokio")]
            let _runtime = runtime.as_ref().map(tokio::runtime::Handle::enter);
            let Some(fut) = slot.as_mut() else {
                return Poll::Ready(None);
            };
            let mut cx = Context::from_waker(&waker);
            match fut.as_mut().poll(&mut cx) {
                Poll::Ready(value) => {
                    // Done: its remains are dropped here, inside.
                    *slot = None;
                    Poll::Ready(Some(value))
                }
                Poll::Pending => Poll::Pending,
            }
        });
        match polled {
            Ok(Poll::Ready(Some(value))) => Poll::Ready(Ok(value)),
            Ok(Poll::Ready(None)) => Poll::Ready(Err(Error::Worker {
                reason: "an #[in_namespace] async fn was polled after it completed".into(),
            })),
            Ok(Poll::Pending) => Poll::Pending,
            Err(err) => Poll::Ready(Err(err)),
        }
    }
}

impl<F: Future + Send> Drop for RunFuture<'_, F> {
    /// A future cancelled before completion is dropped on a worker inside
    /// its namespaces. If no worker can enter them any more (say the
    /// namespace's last handle is gone and its path deleted), the future is
    /// leaked rather than dropped outside: a destructor that deletes an
    /// interface by name must never meet the host's.
    fn drop(&mut self) {
        let Some(fut) = self.fut.take() else {
            return;
        };
        let mut fut = Some(fut);
        if let Ok(executor) = Executor::global() {
            let slot = &mut fut;
            let target = self.target;
            let _ = executor.run_target(&target, move || drop_contained(slot.take()));
        }
        if let Some(fut) = fut {
            std::mem::forget(fut);
        }
    }
}
