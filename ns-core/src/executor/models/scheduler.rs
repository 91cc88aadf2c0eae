//! Dispatch at and beyond the cap, with the real `Scheduler`, `Mailbox`
//! and worker loop on model threads.
//!
//! Invariants, in every interleaving (besides those of the handoff):
//! - every submitted task finishes or is refused: each blocking call
//!   returns, each `run_async` future resolves (loom reports a deadlock
//!   when a thread waits for good);
//! - once every live worker is idle, `total` equals the live workers and
//!   `located` names exactly them ([`settle`]);
//! - after shutdown, once every worker thread has ended, `total` is zero and
//!   `located`, the idle list and the queue are empty
//!   ([`shut_down_and_check`]);
//! - no more threads than the cap plus what the rules allow beyond it: one
//!   per nesting level of blocking calls, `max_overflow` for `run_async`
//!   from workers and for the overflow rule ([`peak`]);
//! - a worker is given only a task it can serve ([`ModelThread::serve`]).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use super::{
    at, block_on, check, config, home, is_shut_down, peak, run, scheduler, settle,
    shut_down_and_check,
};
use crate::executor::handle::Executor;
use crate::handle::registry::Registration;
use crate::handle::set::NsSet;
use crate::id::NsId;
use crate::kind::NsKind;
use crate::sync::thread;
use crate::sync::time::Instant;

/// Made-up inode numbers of the namespaces the models' calls ask for.
const NET_A: u64 = 0x7e57_0001;
const NET_B: u64 = 0x7e57_0002;
const MNT_X: u64 = 0x7e57_0003;
const MNT_Y: u64 = 0x7e57_0004;

/// Cap 1, no overflow: a body's blocking call starts a worker beyond the
/// cap (its own worker waits for it) while another caller waits at the
/// cap for a worker to free up.
#[test]
fn loom_nested_call_beyond_cap() {
    check("nested_call_beyond_cap", 2, || {
        let s = scheduler(config(1, 0));
        let other = {
            let s = Arc::clone(&s);
            thread::spawn(move || run(&s, home(), || 2))
        };
        let inner = Arc::clone(&s);
        let nested = run(&s, at(NsKind::Net, NET_A), move || {
            run(&inner, at(NsKind::Net, NET_B), || 1)
        });
        assert_eq!(nested.ok().and_then(Result::ok), Some(1));
        assert_eq!(other.join().ok().and_then(Result::ok), Some(2));
        assert!(
            peak() <= 2,
            "{} workers for cap 1 and one nested call",
            peak()
        );
        settle(&s);
        shut_down_and_check(&s);
    });
}

/// Cap 2: a body's blocking call made while the other worker finishes a
/// call (its caller has the result; it checks itself) waits for that worker
/// rather than start one beyond the cap. Its outer call went to a second
/// worker only because the first was still finishing the call before it;
/// and a worker beyond the cap for every nested call made while another
/// finishes has no bound where checks are slow.
#[test]
fn loom_nested_call_waits_for_a_finishing_worker() {
    check("nested_call_waits_for_a_finishing_worker", 2, || {
        let s = scheduler(config(2, 0));
        assert_eq!(run(&s, at(NsKind::Net, NET_A), || 0).ok(), Some(0));
        let inner = Arc::clone(&s);
        let nested = run(&s, at(NsKind::Net, NET_A), move || {
            run(&inner, at(NsKind::Net, NET_B), || 1)
        });
        assert_eq!(nested.ok().and_then(Result::ok), Some(1));
        let beyond = s.counters.nested_beyond_cap.load(Relaxed);
        assert_eq!(beyond, 0, "a nested call started a worker beyond the cap");
        assert!(peak() <= 2, "{} workers for cap 2", peak());
        settle(&s);
        shut_down_and_check(&s);
    });
}

/// Cap 1, `max_overflow` 1: a body awaits a `run_async` it submitted from
/// its busy worker (it goes beyond the cap), while a `run_async` from
/// outside queues at the cap.
#[test]
fn loom_run_async_from_busy_worker_at_cap() {
    check("run_async_from_busy_worker_at_cap", 3, || {
        let mut config = config(1, 1);
        config.spin = Duration::from_micros(2);
        let s = scheduler(config);
        let executor = Executor::from_scheduler(Arc::clone(&s));
        let outside = executor.run_async(&NsSet::new(), || 3);
        let inner = executor.clone();
        let awaited = run(&s, home(), move || {
            block_on(inner.run_async(&NsSet::new(), || 4))
        });
        assert_eq!(awaited.ok().and_then(Result::ok), Some(4));
        assert_eq!(block_on(outside).ok(), Some(3));
        assert!(peak() <= 2, "{} workers for cap 1, max_overflow 1", peak());
        drop(executor);
        shut_down_and_check(&s);
    });
}

/// Cap 1, `max_overflow` 1, `overflow_after` zero: a body waits for two
/// threads of its own that call into the executor. One gets a worker
/// beyond the cap (no call finished while it waited); the other waits for
/// a worker to free up, within the bound.
#[test]
fn loom_overflow_rule() {
    check("overflow_rule", 2, || {
        let mut config = config(1, 1);
        config.overflow_after = Duration::ZERO;
        let s = scheduler(config);
        let inner = Arc::clone(&s);
        let sum = run(&s, home(), move || {
            let callers: Vec<_> = [5, 6]
                .into_iter()
                .map(|n| {
                    let s = Arc::clone(&inner);
                    thread::spawn(move || run(&s, home(), move || n))
                })
                .collect();
            callers
                .into_iter()
                .map(|t| t.join().ok().and_then(Result::ok).unwrap_or(0))
                .sum::<i32>()
        });
        assert_eq!(sum.ok(), Some(11));
        assert!(peak() <= 2, "{} workers for cap 1, max_overflow 1", peak());
        settle(&s);
        shut_down_and_check(&s);
    });
}

/// Cap 1: a worker that entered mount namespace X (one-way: it serves X
/// only) is idle when a call for home comes: it is replaced. Another call
/// for X races it.
#[test]
fn loom_replace_idle_one_way_worker() {
    check("replace_idle_one_way_worker", 3, || {
        let s = scheduler(config(1, 0));
        let x = at(NsKind::Mnt, MNT_X);
        // The program holds X: its workers stay there, idle.
        let held = Registration::new(MNT_X);
        assert!(run(&s, x, || ()).is_ok());
        let other = {
            let s = Arc::clone(&s);
            thread::spawn(move || run(&s, home(), || 1))
        };
        assert!(run(&s, x, || ()).is_ok());
        assert_eq!(other.join().ok().and_then(Result::ok), Some(1));
        settle(&s);
        shut_down_and_check(&s);
        drop(held);
    });
}

/// One worker in mount namespace X, one in mount namespace Y (each serves
/// its own only: one-way). Calls for X, then for Y and network namespace
/// B, come while each worker parks at once, or spins for its next call
/// (two looks at the logical clock) and then parks. An awake worker comes
/// before a parked one only where it needs no one-way switch: the worker
/// in Y, awake after its call, is never given X (`ModelThread::serve`
/// checks), and it may switch network namespace. Every call is served.
/// Cap 2: a call that comes while the workers it could use still finish
/// their last calls may replace an idle one dedicated elsewhere (as
/// `replace_idle_one_way_worker` models), so no bound on the threads alive
/// at once is asserted here.
#[test]
fn loom_calls_prefer_an_awake_worker() {
    for spin in [Duration::ZERO, Duration::from_micros(2)] {
        check(
            &format!("calls_prefer_an_awake_worker spin={spin:?}"),
            3,
            move || {
                let mut config = config(2, 0);
                config.spin = spin;
                let s = scheduler(config);
                let (x, y) = (at(NsKind::Mnt, MNT_X), at(NsKind::Mnt, MNT_Y));
                let y_and_b = y.overlaid([NsId::new(NsKind::Net, 0, NET_B)]);
                // The program holds X and Y: their workers stay there, idle.
                let held = (Registration::new(MNT_X), Registration::new(MNT_Y));
                for (desired, value) in [(x, 1), (y, 2), (x, 3), (y_and_b, 4)] {
                    assert_eq!(run(&s, desired, move || value).ok(), Some(value));
                }
                settle(&s);
                shut_down_and_check(&s);
                drop(held);
            },
        );
    }
}

/// Cap 1, idle timeout zero: a third thread ends idle workers (as the
/// origin thread does between requests) while two calls race for the one
/// worker, which may be ended while idle, claimed by a call, or busy;
/// callers and workers park at once, or spin (two looks at the logical
/// clock) and then park. Every call is served, and no ended worker stays
/// on the books.
#[test]
fn loom_ending_idle_workers_races_call() {
    for spin in [Duration::ZERO, Duration::from_micros(2)] {
        check(
            &format!("ending_idle_workers_races_call spin={spin:?}"),
            2,
            move || {
                let mut config = config(1, 0);
                config.idle_timeout = Duration::ZERO;
                config.spin = spin;
                let s = scheduler(config);
                let other = {
                    let s = Arc::clone(&s);
                    thread::spawn(move || run(&s, home(), || 1))
                };
                let ender = {
                    let s = Arc::clone(&s);
                    thread::spawn(move || s.end_idle(Instant::now()).is_some())
                };
                assert!(run(&s, home(), || ()).is_ok());
                assert_eq!(other.join().ok().and_then(Result::ok), Some(1));
                assert!(ender.join().is_ok());
                settle(&s);
                shut_down_and_check(&s);
            },
        );
    }
}

/// Cap 1: the last handle to the executor goes (shutdown) while a
/// blocking call and a `run_async` are dispatched: each finishes or is
/// refused with `ShutDown`, and every worker leaves the books.
#[test]
fn loom_shutdown_races_call() {
    check("shutdown_races_call", 3, || {
        let s = scheduler(config(1, 0));
        let executor = Executor::from_scheduler(Arc::clone(&s));
        let blocking = {
            let s = Arc::clone(&s);
            thread::spawn(move || run(&s, home(), || 1))
        };
        let owned = executor.run_async(&NsSet::new(), || 2);
        drop(executor);
        match blocking.join().ok() {
            Some(Ok(1)) => {}
            Some(Err(err)) if is_shut_down(&err) => {}
            _ => panic!("a blocking call neither finished nor was refused"),
        }
        match block_on(owned) {
            Ok(2) => {}
            Err(err) if is_shut_down(&err) => {}
            _ => panic!("a run_async neither finished nor was refused"),
        }
        shut_down_and_check(&s);
    });
}

/// Cap 1: a worker that entered mount namespace Y, which the program does
/// not hold, cannot go home after its call and retires (`WorkerSlot` gives
/// its place back through `forget_worker`) while a blocking call waits at
/// the cap for it.
#[test]
fn loom_retired_worker_gives_its_place_back() {
    check("retired_worker_gives_its_place_back", 3, || {
        let s = scheduler(config(1, 0));
        let waiting = {
            let s = Arc::clone(&s);
            thread::spawn(move || run(&s, home(), || 1))
        };
        assert!(run(&s, at(NsKind::Mnt, MNT_Y), || ()).is_ok());
        assert_eq!(waiting.join().ok().and_then(Result::ok), Some(1));
        assert!(peak() <= 1, "{} workers for cap 1", peak());
        settle(&s);
        shut_down_and_check(&s);
    });
}

/// Cap 1: the same, with a `run_async` submitted meanwhile from another
/// thread: queued at the cap, it gets the place of the worker that cannot
/// serve it (`make_idle`) or that retires (`forget_worker`), or a new one.
#[test]
fn loom_retired_worker_place_goes_to_a_queued_task() {
    check("retired_worker_place_goes_to_a_queued_task", 3, || {
        let s = scheduler(config(1, 0));
        let executor = Executor::from_scheduler(Arc::clone(&s));
        let submitter = {
            let executor = executor.clone();
            thread::spawn(move || block_on(executor.run_async(&NsSet::new(), || 2)))
        };
        assert!(run(&s, at(NsKind::Mnt, MNT_Y), || ()).is_ok());
        assert_eq!(submitter.join().ok().and_then(Result::ok), Some(2));
        assert!(peak() <= 1, "{} workers for cap 1", peak());
        settle(&s);
        drop(executor);
        shut_down_and_check(&s);
    });
}
