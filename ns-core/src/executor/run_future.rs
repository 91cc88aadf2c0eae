//! [`RunFuture`]: a future whose every poll runs on a worker inside
//! namespaces: [`NsSet::run_future`], [`Executor::run_future`], and what
//! `#[in_namespace] async fn` expands to.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error::{Error, Result, WorkerCause};
use crate::executor::handle::Executor;
use crate::executor::set_ref::SetRef;
use crate::handle::set::NsSet;
use crate::process::user_code::drop_contained;

/// Polls `fut` on workers inside `target`, one poll per handoff: what
/// `#[in_namespace] async fn` expands to. The future is dropped inside too:
/// on the worker that completes it, or, when it is cancelled (dropped
/// before completion, say by a timeout), on a worker the drop hands it to,
/// so that its locals' destructors run in the namespaces, never on the
/// caller's thread.
pub(crate) struct RunFuture<'a, F: Future + Send> {
    /// The executor whose workers poll it; `None`: the global one.
    executor: Option<&'a Executor>,
    target: SetRef<'a>,
    fut: Option<Pin<Box<F>>>,
}

impl<'a, F: Future + Send> RunFuture<'a, F> {
    /// `fut`, polled on `executor`'s workers (`None`: the global
    /// executor's) inside `target`.
    pub(crate) fn new(executor: Option<&'a Executor>, target: SetRef<'a>, fut: F) -> Self {
        RunFuture {
            executor,
            target,
            fut: Some(Box::pin(fut)),
        }
    }

    fn executor(&self) -> Result<&'a Executor> {
        match self.executor {
            Some(executor) => Ok(executor),
            None => Executor::global(),
        }
    }
}

impl NsSet {
    /// Runs the future `fut` with every poll on a worker of the
    /// [global executor](Executor::global) inside the set: what an
    /// `#[in_namespace] async fn` does, for any future (an `async` block, a
    /// client's request). Sockets and timers it makes belong to the
    /// namespaces, and with the `tokio` feature to the runtime that polls
    /// the returned future. Each poll hands the future to a worker and
    /// waits for that one poll, so polls must be short, as async code's
    /// are. The future is dropped inside too, also when the returned
    /// future is cancelled.
    ///
    /// Use this, not [`run`](Self::run), for async code: `set.run(|| async
    /// { .. })` only makes the future inside, and it is then polled
    /// outside, on the caller's thread.
    ///
    /// # Errors
    ///
    /// The errors of [`NsSet::run`]; `fut`'s own output is the value.
    ///
    /// # Panics
    ///
    /// A panic of `fut` is re-raised where the returned future is polled.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use nsguard::{NsKind, NsSet};
    ///
    /// let set = NsSet::unshare(NsKind::Net)?;
    /// let names = set
    ///     .run_future(async {
    ///         // polled inside: netlink and sockets see the set's namespace
    ///         nix::net::if_::if_nameindex().map(|l| l.iter().count())
    ///     })
    ///     .await??;
    /// assert_eq!(names, 1); // lo
    /// # Ok(()) }
    /// ```
    pub fn run_future<'a, F>(&'a self, fut: F) -> impl Future<Output = Result<F::Output>> + 'a
    where
        F: Future + Send + 'a,
        F::Output: Send + 'a,
    {
        RunFuture::new(None, SetRef::from_set(self), fut)
    }
}

impl Executor {
    /// [`NsSet::run_future`] on this executor's workers.
    ///
    /// # Errors
    ///
    /// See [`NsSet::run_future`].
    ///
    /// # Panics
    ///
    /// A panic of `fut` is re-raised where the returned future is polled.
    pub fn run_future<'a, F>(
        &'a self,
        set: &'a NsSet,
        fut: F,
    ) -> impl Future<Output = Result<F::Output>> + 'a
    where
        F: Future + Send + 'a,
        F::Output: Send + 'a,
    {
        RunFuture::new(Some(self), SetRef::from_set(set), fut)
    }
}

impl<F> Future for RunFuture<'_, F>
where
    F: Future + Send,
    F::Output: Send,
{
    type Output = Result<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<F::Output>> {
        let executor = match self.executor() {
            Ok(executor) => executor,
            Err(err) => return Poll::Ready(Err(err)),
        };
        let waker = cx.waker().clone();
        let this = &mut *self;
        let (target, slot) = (this.target, &mut this.fut);
        // Each poll runs on a worker inside the namespaces; the polling
        // thread waits for that one poll (polls are short by contract).
        let polled = executor.run_target(&target, move || {
            // With tokio, `run_target` polls it in its place's runtime
            // (set_runtime.rs).
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
                cause: WorkerCause::PolledAfterCompletion,
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
        if let Ok(executor) = self.executor() {
            let slot = &mut fut;
            let target = self.target;
            let _ = executor.run_target(&target, move || drop_contained(slot.take()));
        }
        if let Some(fut) = fut {
            std::mem::forget(fut);
        }
    }
}
