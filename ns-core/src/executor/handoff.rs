//! Handing a borrowing closure to another thread and waiting for it.
//!
//! [`call`] runs a closure `f: FnOnce() -> R + Send + 'a` on a worker even
//! though `f` may borrow from the caller's stack (`'a` is not `'static`).
//! That is sound for the same reason `std::thread::scope` is: the caller
//! does not return, and cannot unwind, until the worker has finished with
//! everything it was lent. This module is where that argument lives, and
//! the only module of the executor that the compiler allows `unsafe` code
//! in.

use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use crate::error::{Error, WorkerCause};
use crate::executor::set_ref::SetRef;
use crate::process::user_code::contain;
use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::hint::spin_loop;
use crate::sync::thread::{self, Thread};
use crate::sync::time::Instant;
use crate::sync::SPINS_PER_LOOK;

/// What a worker does with a [`Task`](crate::executor::task::Task): run the closure, or refuse it.
type Job<'a> = dyn FnMut(Option<Error>) + Send + 'a;

/// A call lent to a worker by a blocked caller: the caller's closure and the namespaces to run
/// it in, both borrowed from the caller's stack frame, which [`call`] keeps
/// alive until [`Task::finish`](crate::executor::task::Task::finish) (or the task's drop) has signalled `done`.
pub(crate) struct ScopedTask {
    job: *mut Job<'static>,
    target: *const SetRef<'static>,
    done: *const AtomicBool,
    caller: Option<Thread>,
}

// SAFETY: the pointers refer to the caller's `job` (which is `Send`: the
// closure, its result and the error are all `Send`), its `SetRef` (shared
// references to `Namespace`s, which are `Sync`) and an `AtomicBool`. The
// caller does not touch them while the task is out, so using them from the
// worker's thread is like using a `&mut Job` and `&SetRef` sent there.
unsafe impl Send for ScopedTask {}

impl ScopedTask {
    /// The namespaces to run in.
    pub(crate) fn target(&self) -> &SetRef<'_> {
        // SAFETY: `target` points into the frame of `call`, which waits for
        // `done` before it returns, and `done` is set only when the task is
        // consumed: the borrow cannot outlive the referent.
        unsafe { &*self.target }
    }

    /// Runs the caller's closure on this thread (`failure` = `None`), or
    /// hands it `failure` instead, then calls `ran`, then releases the
    /// caller.
    #[inline(always)]
    pub(crate) fn finish(self, failure: Option<Error>, ran: impl FnOnce()) {
        // `complete` takes `caller` first, and the rest is raw pointers:
        // once it has run there is nothing to drop, and the drop glue, a
        // function of its own on a page of its own, is left out.
        let mut task = ManuallyDrop::new(self);
        task.complete(failure, ran);
    }

    #[inline(always)]
    fn complete(&mut self, failure: Option<Error>, ran: impl FnOnce()) {
        let Some(caller) = self.caller.take() else {
            return;
        };
        let job = self.job;
        // The job contains the user code it runs or drops; should anything
        // still unwind, the caller is released all the same (without a
        // result, which `call` reports as an error).
        let _ = contain(|| {
            // SAFETY: as in `target`: the job is alive until `done` is set,
            // and nothing else uses it meanwhile (the caller is blocked in
            // `call`). `caller` was taken above, so this runs at most once.
            unsafe { (*job)(failure) }
        });
        ran();
        // SAFETY: `done` is alive until it reads `true`. After this store
        // the caller may return and free `job`, `target` and `done`: none
        // of them is used again. `caller` is our own clone of its `Thread`.
        unsafe { (*self.done).store(true, Ordering::Release) };
        caller.unpark();
    }
}

impl Drop for ScopedTask {
    /// A task dropped without being run (no worker could be started, or a
    /// worker is going away) still releases its caller, with an error.
    fn drop(&mut self) {
        // A finished task has no caller left, and builds no error.
        if self.caller.is_some() {
            self.release_unrun();
        }
    }
}

impl ScopedTask {
    /// Releases the caller of a task dropped unrun, with an error.
    #[cold]
    #[inline(never)]
    fn release_unrun(&mut self) {
        let dropped = Error::Worker {
            cause: WorkerCause::Dropped,
            reason: "the task was dropped before a worker could run it".into(),
        };
        self.complete(Some(dropped), || ());
    }
}

/// How `submit` handed a task on, as far as the caller's waiting goes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Handover {
    /// To a worker that was parked, and has just been woken.
    Woken,
    /// To a worker that was spinning for it on the caller's CPU: it runs
    /// only once the caller lets it.
    Beside,
    /// Any other way: to a worker that was spinning, a new one, a queue; or
    /// refused.
    Other,
}

/// Runs `f` through `submit`, which must hand the [`ScopedTask`] to a
/// thread that finishes it (or drop it), and blocks until then.
///
/// Returns `f`'s value, or its panic payload, or the error the task was
/// finished with. Spins for `spin` before parking.
#[inline(always)]
pub(crate) fn call<'a, R, F>(
    target: &SetRef<'a>,
    f: F,
    spin: Duration,
    submit: impl FnOnce(ScopedTask) -> Handover,
) -> Result<std::thread::Result<R>, Error>
where
    F: FnOnce() -> R + Send + 'a,
    R: Send + 'a,
{
    let mut f = Some(f);
    let mut out: Option<Result<std::thread::Result<R>, Error>> = None;
    // Runs on the worker (or wherever the task is failed): the closure, and
    // its drop when it is not run, are user code and must not unwind there.
    // A panic while dropping an unrun closure reaches the caller as the
    // closure's panic, as it would have had the caller dropped it itself.
    let mut job = |failure: Option<Error>| {
        out = Some(match (failure, f.take()) {
            (None, Some(f)) => Ok(catch_unwind(AssertUnwindSafe(f))),
            (Some(err), f) => match catch_unwind(AssertUnwindSafe(move || drop(f))) {
                Ok(()) => Err(err),
                Err(panic) => Ok(Err(panic)),
            },
            (None, None) => Err(Error::Worker {
                cause: WorkerCause::Dropped,
                reason: "a task ran twice".into(),
            }),
        });
    };
    let done = AtomicBool::new(false);
    let job_ref: &mut Job<'_> = &mut job;
    // SAFETY: only the lifetime changes ('a to 'static); the pointers are
    // otherwise identical. The 'static is a lie that `wait` below makes
    // harmless: this frame outlives every use of the pointer.
    let job_ptr = unsafe { std::mem::transmute::<*mut Job<'_>, *mut Job<'static>>(job_ref) };
    // SAFETY: as above, for the borrowed namespaces of the call.
    let target_ptr =
        unsafe { std::mem::transmute::<*const SetRef<'_>, *const SetRef<'static>>(target) };
    let task = ScopedTask {
        job: job_ptr,
        target: target_ptr,
        done: &done,
        caller: Some(thread::current()),
    };
    // `submit` only moves the task along; if it unwinds, the task is
    // dropped on the way, which sets `done` first.
    let submitted = catch_unwind(AssertUnwindSafe(|| submit(task)));
    let beside = matches!(submitted, Ok(Handover::Woken | Handover::Beside));
    if beside && !done.load(Ordering::Acquire) {
        // The worker was parked, or spins on this thread's CPU. A woken
        // thread most often runs on the CPU of the thread that woke it,
        // this one: let it run now rather than after a first round of
        // spinning. (A woken worker yields back once it has handed over
        // the result: see `worker::serve`; one that was spinning yields
        // once it waits for the next call: see `Scheduler::next_msg`.) A
        // worker with a short time slice has most often run already,
        // preempting this thread as it woke it (`thread/slice.rs`): then
        // there is nothing to yield for, and a yield would hand the CPU to
        // its check.
        thread::yield_now();
    }
    // Nothing between handing out the task and this wait can unwind, so the
    // frame cannot be left while a worker still uses it.
    wait(&done, spin);
    if let Err(panic) = submitted {
        std::panic::resume_unwind(panic);
    }
    out.unwrap_or_else(|| {
        Err(Error::Worker {
            cause: WorkerCause::Dropped,
            reason: "the task finished without a result".into(),
        })
    })
}

/// Waits until `flag` is set: spins for `spin`, then parks.
///
/// Its first look is inlined into [`call`]: a worker woken for a call
/// after an idle gap has most often handed the result over by the time
/// its caller looks, and the spinning and parking are then on pages the
/// call never runs on.
#[inline(always)]
pub(crate) fn wait(flag: &AtomicBool, spin: Duration) {
    if !flag.load(Ordering::Acquire) {
        wait_further(flag, spin);
    }
}

/// [`wait`] once the flag was not set at first look.
#[inline(never)]
fn wait_further(flag: &AtomicBool, spin: Duration) {
    if !spin_until(|| flag.load(Ordering::Acquire), spin) {
        while !flag.load(Ordering::Acquire) {
            thread::park();
        }
        // The calling thread has one park token, and other code may unpark
        // it meanwhile: a waker the call's own future woke (`block_on` and
        // its kind unpark the polling thread). A park above may have taken
        // that token, and the caller would then park for good: give one
        // back. A spare token only makes a later park return at once, which
        // every caller of park must allow for.
        thread::current().unpark();
    }
}

/// Spins until `cond` holds or `budget` has passed; returns whether it held.
pub(crate) fn spin_until(mut cond: impl FnMut() -> bool, budget: Duration) -> bool {
    if cond() {
        return true;
    }
    if budget.is_zero() {
        return false;
    }
    let start = Instant::now();
    loop {
        for _ in 0..SPINS_PER_LOOK {
            spin_loop();
            if cond() {
                return true;
            }
        }
        if start.elapsed() >= budget {
            return cond();
        }
        // Let another runnable thread (a worker checking itself, the body
        // being waited for) have the core: with more spinners than cores,
        // pure spinning starves the very thread being waited for.
        thread::yield_now();
    }
}

/// The handoff on real threads, without a system call of nsguard's: what
/// Miri checks (`cargo +nightly miri test -p nsguard-core --lib handoff`):
/// the erased lifetimes, the result and panic slots in the caller's
/// frame, and the release of the caller.
#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use super::*;
    use crate::handle::set::NsSet;

    /// Hands the task to a new thread, which finishes it with `failure`.
    fn to_worker(failure: Option<Error>) -> impl FnOnce(ScopedTask) -> Handover {
        to_worker_as(failure, Handover::Other)
    }

    /// Hands `task` to a new thread, which finishes it with `failure`;
    /// reported to the caller as `handover`.
    fn to_worker_as(
        failure: Option<Error>,
        handover: Handover,
    ) -> impl FnOnce(ScopedTask) -> Handover {
        move |task| {
            drop(std::thread::spawn(move || task.finish(failure, || ())));
            handover
        }
    }

    #[test]
    fn a_borrowing_call_returns_its_result_and_leaves_its_writes() {
        let empty = NsSet::new();
        let ways = [Handover::Other, Handover::Woken];
        for (spin, handover) in [Duration::ZERO, Duration::from_micros(50)]
            .into_iter()
            .flat_map(|spin| ways.map(|way| (spin, way)))
        {
            let mut lent = vec![1, 2];
            let out = call(
                &SetRef::from_set(&empty),
                || {
                    lent.push(3);
                    lent.len()
                },
                spin,
                to_worker_as(None, handover),
            );
            assert_eq!(out.ok().and_then(|r| r.ok()), Some(3));
            assert_eq!(lent, [1, 2, 3]);
        }
    }

    #[test]
    fn a_panic_reaches_the_caller_with_its_payload() {
        let empty = NsSet::new();
        let lent = String::from("borrowed");
        let out = call(
            &SetRef::from_set(&empty),
            || -> usize { std::panic::resume_unwind(Box::new(lent.len())) },
            Duration::ZERO,
            to_worker(None),
        );
        match out {
            Ok(Err(payload)) => assert_eq!(payload.downcast_ref::<usize>(), Some(&8)),
            _ => panic!("the panic did not reach the caller"),
        }
    }

    #[test]
    fn a_refused_call_drops_its_closure_on_the_worker_and_reports() {
        let empty = NsSet::new();
        let mut dropped = false;
        struct Flag<'a>(&'a mut bool);
        impl Drop for Flag<'_> {
            fn drop(&mut self) {
                *self.0 = true;
            }
        }
        let flag = Flag(&mut dropped);
        let refusal = Error::Worker {
            cause: WorkerCause::ShutDown,
            reason: "refused by the test".into(),
        };
        let out = call(
            &SetRef::from_set(&empty),
            move || drop(flag),
            Duration::ZERO,
            to_worker(Some(refusal)),
        );
        assert!(matches!(
            out,
            Err(Error::Worker {
                cause: WorkerCause::ShutDown,
                ..
            })
        ));
        assert!(dropped);
    }

    #[test]
    fn a_task_dropped_unrun_releases_its_caller() {
        let empty = NsSet::new();
        let out = call(
            &SetRef::from_set(&empty),
            || 1,
            Duration::ZERO,
            |task| {
                drop(std::thread::spawn(move || drop(task)));
                Handover::Other
            },
        );
        assert!(matches!(
            out,
            Err(Error::Worker {
                cause: WorkerCause::Dropped,
                ..
            })
        ));
    }

    #[test]
    fn a_panicking_submit_drops_the_task_before_the_frame_goes() {
        let empty = NsSet::new();
        let unwound = catch_unwind(AssertUnwindSafe(|| {
            call(
                &SetRef::from_set(&empty),
                || 1,
                Duration::ZERO,
                |task| {
                    let _task = task;
                    std::panic::resume_unwind(Box::new("submit failed"))
                },
            )
        }));
        let payload = unwound.expect_err("the submit's panic goes on");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"submit failed"));
    }

    #[test]
    fn the_callers_park_token_survives_a_call_that_parked() {
        let empty = NsSet::new();
        let caller = std::thread::current();
        let out = call(
            &SetRef::from_set(&empty),
            || {
                // A waker of the caller's own future, woken by the body.
                caller.unpark();
                std::thread::sleep(Duration::from_millis(1));
            },
            Duration::ZERO,
            to_worker(None),
        );
        assert!(out.is_ok_and(|r| r.is_ok()));
        std::thread::park(); // returns: the body's wake-up is still there
    }
}
