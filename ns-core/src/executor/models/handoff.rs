//! The handoff (`handoff::call`, `ScopedTask`, `wait`), with a model
//! thread as the worker.
//!
//! Invariants, in every interleaving:
//! - the caller returns only after the worker is done with what it lent:
//!   the body's writes to the caller's borrowed state happen before the
//!   caller reads it again (the state is a relaxed atomic: loom lets a load
//!   not ordered after the store see the old value), and the body's result,
//!   its panic, or the worker's refusal reaches the caller;
//! - no lost wakeup: a caller that spins, then parks, is always woken
//!   (loom reports a deadlock otherwise);
//! - the caller's park token survives the call: a wake-up given to the
//!   calling thread during the call (a waker its own future woke) is still
//!   there when the call returns.

use std::time::Duration;

use super::check;
use crate::error::{Error, WorkerCause};
use crate::executor::handoff::{call, Handover, ScopedTask};
use crate::executor::set_ref::SetRef;
use crate::handle::set::NsSet;
use crate::sync::atomic::{AtomicU32, Ordering::Relaxed};
use crate::sync::thread;

/// Spin budgets of the caller: none (parks at once), and two looks at the
/// logical clock (spins, then parks).
const SPINS: [Duration; 2] = [Duration::ZERO, Duration::from_micros(2)];

/// Hands `task` to a new model thread, which finishes it with `failure`;
/// reported as a woken worker, so that the caller yields first.
fn to_worker(failure: Option<Error>) -> impl FnOnce(ScopedTask) -> Handover {
    move |task| {
        drop(thread::spawn(move || task.finish(failure, || ())));
        Handover::Woken
    }
}

#[test]
fn loom_handoff_borrowed_result() {
    for spin in SPINS {
        check(
            &format!("handoff_borrowed_result spin={spin:?}"),
            3,
            move || {
                let empty = NsSet::new();
                // The caller's frame: borrowed mutably by the body on the worker.
                let lent = AtomicU32::new(1);
                let caller = thread::current();
                let result = call(
                    &SetRef::from_set(&empty),
                    || {
                        lent.store(lent.load(Relaxed) + 1, Relaxed);
                        // Wake the caller, as a waker of its own future would.
                        caller.unpark();
                        7_u32
                    },
                    spin,
                    to_worker(None),
                );
                assert_eq!(result.ok().and_then(|r| r.ok()), Some(7));
                assert_eq!(lent.load(Relaxed), 2);
                // The body's wake-up is still this thread's token.
                thread::park();
            },
        );
    }
}

#[test]
fn loom_handoff_panic() {
    for spin in SPINS {
        check(&format!("handoff_panic spin={spin:?}"), 3, move || {
            let empty = NsSet::new();
            let lent = AtomicU32::new(0);
            let result = call(
                &SetRef::from_set(&empty),
                || {
                    lent.store(5, Relaxed);
                    // A panic without the hook's message, once per run.
                    std::panic::resume_unwind(Box::new("body panicked"))
                },
                spin,
                to_worker(None),
            );
            let payload = match result {
                Ok(Err(payload)) => payload,
                _ => panic!("the body's panic did not reach the caller"),
            };
            assert_eq!(payload.downcast_ref::<&str>(), Some(&"body panicked"));
            assert_eq!(lent.load(Relaxed), 5);
        });
    }
}

#[test]
fn loom_handoff_refused() {
    for spin in SPINS {
        check(&format!("handoff_refused spin={spin:?}"), 3, move || {
            let empty = NsSet::new();
            // Dropped unrun on the worker: its drop must be done when the
            // caller returns.
            let lent = AtomicU32::new(0);
            struct Guard<'a>(&'a AtomicU32);
            impl Drop for Guard<'_> {
                fn drop(&mut self) {
                    self.0.store(9, Relaxed);
                }
            }
            let guard = Guard(&lent);
            let refusal = Error::Worker {
                cause: WorkerCause::ShutDown,
                reason: "refused by the model".into(),
            };
            let result = call(
                &SetRef::from_set(&empty),
                move || drop(guard),
                spin,
                to_worker(Some(refusal)),
            );
            assert!(matches!(
                result,
                Err(Error::Worker {
                    cause: WorkerCause::ShutDown,
                    ..
                })
            ));
            assert_eq!(lent.load(Relaxed), 9);
        });
    }
}
