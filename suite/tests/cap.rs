//! The cap on an executor's workers: nested calls of every form go beyond
//! it without deadlocking, the overflow rule is bounded, and a worker
//! replaced at the cap leaves the books at once. Each scenario that could
//! hang runs in a child process under a watchdog.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use nsguard::{netns, Executor, NsKind, NsSet};
use nsguard_suite::{block_on, in_child_process, net_set, thread_ino, TempNs};

const LIMIT: Duration = Duration::from_secs(60);

/// Cap 2, two bodies that each wait for a `run_async` of the same
/// executor, submitted once both are running: both return (the owned calls
/// get workers beyond the cap).
#[test]
fn bodies_awaiting_run_async_at_the_cap_return() {
    if !in_child_process("bodies_awaiting_run_async_at_the_cap_return", LIMIT) {
        return;
    }
    let a = TempNs::new(NsKind::Net);
    let set = net_set(&a);
    let executor = nsguard_suite::capped_executor(2);
    // Both bodies are running (both workers busy) before either submits.
    let both_in = std::sync::Barrier::new(2);
    let seen: Vec<u64> = std::thread::scope(|s| {
        let calls: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    executor
                        .run(&set, || {
                            both_in.wait();
                            let inner = set.try_clone().unwrap();
                            block_on(executor.run_async(&inner, || thread_ino(NsKind::Net)))
                                .unwrap()
                        })
                        .unwrap()
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    assert_eq!(seen, [a.ino(), a.ino()]);
    assert!(
        executor.stats().nested_beyond_cap >= 1,
        "{:?}",
        executor.stats()
    );
}

/// The global executor at its cap: as many sync bodies as it has workers,
/// each waiting for `NsSet::run_async` (what the `*_async` socket helpers
/// use), all return.
#[test]
fn global_bodies_awaiting_run_async_at_the_cap_return() {
    if !in_child_process("global_bodies_awaiting_run_async_at_the_cap_return", LIMIT) {
        return;
    }
    let a = TempNs::new(NsKind::Net);
    let set = net_set(&a);
    // The global executor's default cap.
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let cap = (4 * cores).max(8);
    let inside = AtomicUsize::new(0);
    let all_in = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..cap {
            s.spawn(|| {
                set.run(|| {
                    // Every worker busy before any of them submits.
                    if inside.fetch_add(1, Ordering::SeqCst) + 1 == cap {
                        all_in.store(true, Ordering::SeqCst);
                    }
                    while !all_in.load(Ordering::SeqCst) {
                        std::thread::yield_now();
                    }
                    let ino = block_on(set.run_async(|| thread_ino(NsKind::Net))).unwrap();
                    assert_eq!(ino, a.ino());
                })
                .unwrap();
            });
        }
    });
}

/// With `max_workers(2)` and `max_overflow(1)`, twelve callers of a slow
/// body never make more than three workers, though the overflow rule fires
/// (no call finishes for a while), and every call completes.
#[test]
fn the_overflow_rule_is_bounded() {
    if !in_child_process("the_overflow_rule_is_bounded", LIMIT) {
        return;
    }
    let a = TempNs::new(NsKind::Net);
    let set = net_set(&a);
    let executor = Executor::builder()
        .max_workers(2)
        .max_overflow(1)
        .overflow_after(Duration::from_millis(20))
        .build()
        .unwrap();
    let done = AtomicBool::new(false);
    let most = std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            let mut most = 0;
            while !done.load(Ordering::SeqCst) {
                most = most.max(executor.workers());
                std::thread::sleep(Duration::from_millis(2));
            }
            most
        });
        let callers: Vec<_> = (0..12)
            .map(|_| {
                s.spawn(|| {
                    executor
                        .run(&set, || std::thread::sleep(Duration::from_millis(150)))
                        .unwrap();
                })
            })
            .collect();
        for caller in callers {
            caller.join().unwrap();
        }
        done.store(true, Ordering::SeqCst);
        watcher.join().unwrap()
    });
    let stats = executor.stats();
    assert!(most <= 3, "{most} workers at once: {stats:?}");
    assert!(stats.overflowed >= 1, "the rule never fired: {stats:?}");
    assert_eq!(stats.calls, 12);
}

/// At the cap, a worker dedicated to a mount namespace is replaced for a
/// call it cannot serve; it leaves the books at once, so `netns::delete` of
/// a network namespace it had been in returns (it waited 10 s for a thread
/// that no longer existed, then failed).
#[test]
fn a_replaced_worker_does_not_hold_up_netns_delete() {
    if !in_child_process("a_replaced_worker_does_not_hold_up_netns_delete", LIMIT) {
        return;
    }
    let named = netns::Scoped::add(&nsguard_suite::unique_name("nsguard-test")).unwrap();
    let m = TempNs::new(NsKind::Mnt);
    let executor = nsguard_suite::capped_executor(1);
    {
        let set = named.set().unwrap().with(nsguard_suite::open(&m));
        executor.run(&set, || ()).unwrap();
        // Home, while the set is held (so the idle worker is not sent home
        // first): it cannot leave the mount namespace, so it is replaced.
        executor.run(&NsSet::new(), || ()).unwrap();
    }
    named.delete().unwrap();
}
