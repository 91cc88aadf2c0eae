//! [`RunFuture`]: a future whose every poll runs on a worker inside
//! namespaces, what `#[in_namespace] async fn` expands to.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error::{Error, Result, WorkerCause};
use crate::executor::handle::Executor;
use crate::executor::set_ref::SetRef;
use crate::process::user_code::drop_contained;

/// Polls `fut` on workers inside `target`, one poll per handoff: what
/// `#[in_namespace] async fn` expands to. The future is dropped inside too:
/// on the worker that completes it, or, when it is cancelled (dropped
/// before completion, say by a timeout), on a worker the drop hands it to,
/// so that its locals' destructors run in the namespaces, never on the
/// caller's thread.
pub(crate) struct RunFuture<'a, F: Future + Send> {
    target: SetRef<'a>,
    fut: Option<Pin<Box<F>>>,
}

impl<'a, F: Future + Send> RunFuture<'a, F> {
    pub(crate) fn new(target: SetRef<'a>, fut: F) -> RunFuture<'a, F> {
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
