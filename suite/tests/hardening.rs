//! The executor never hangs, never loses a caller or a worker slot, and
//! never runs code in namespaces or with state nobody asked for, whatever
//! user code does on its threads. Each scenario that could hang runs in a
//! child process under a watchdog.

use std::future::Future;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use nsguard::{Error, Executor, Namespace, NsKind, NsSet, WorkerCause};
use nsguard_suite::{
    block_on, in_child_process, net_set, panic_message, status_line, thread_ino, tid, PanicOnDrop,
    PidsLimit, TempNs,
};

const LIMIT: Duration = Duration::from_secs(60);

/// A worker whose switch fails drops the closure it could not run; a
/// panicking `Drop` there reaches the caller as a panic, and the worker's
/// place is given back: with a cap of 1, later calls still run.
#[test]
fn a_closure_that_panics_when_dropped_unrun_releases_its_caller() {
    if !in_child_process(
        "a_closure_that_panics_when_dropped_unrun_releases_its_caller",
        LIMIT,
    ) {
        return;
    }
    let (a, b) = (TempNs::new(NsKind::Net), TempNs::new(NsKind::Net));
    let (set_a, set_b) = (net_set(&a), net_set(&b));
    let executor = Executor::builder()
        .max_workers(1)
        .overflow_after(std::time::Duration::MAX)
        .check_after_call(false)
        .build()
        .unwrap();
    for round in 0..3 {
        // Break the (only) worker: setns of a netns fails on it from now on.
        executor
            .run(&set_a, || {
                nsguard_suite::fail_setns_on_this_thread(libc::CLONE_NEWNET, libc::EDOM)
            })
            .unwrap();
        let captured = PanicOnDrop("dropped unrun");
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            executor.run(&set_b, move || drop(captured))
        }));
        let payload = outcome.expect_err("the drop's panic reaches the caller");
        assert_eq!(panic_message(&*payload), "dropped unrun", "round {round}");
        // The broken worker was retired and its place given back.
        let ino = executor.run(&set_b, || thread_ino(NsKind::Net)).unwrap();
        assert_eq!(ino, b.ino());
    }
}

/// The origin thread drops a task it cannot start a worker for (thread
/// creation fails under `pids.max`): a panicking `Drop` in the closure is
/// contained, the caller gets it, and the origin survives.
#[test]
fn the_origin_survives_a_closure_that_panics_when_no_thread_can_start() {
    if !in_child_process(
        "the_origin_survives_a_closure_that_panics_when_no_thread_can_start",
        LIMIT,
    ) {
        return;
    }
    let a = TempNs::new(NsKind::Net);
    let set = net_set(&a);
    let executor = Executor::global().unwrap();
    NsSet::new().run(|| ()).unwrap(); // the origin and a worker exist
    let Some(limit) = PidsLimit::new() else {
        return;
    };
    limit.allow_more(0);
    // Every worker is busy: the call needs a new thread, which cannot start.
    let (hold_tx, hold_rx) = mpsc::channel::<()>();
    let (busy_tx, busy_rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let _ = &executor;
        let (set, hold_rx) = (&set, hold_rx);
        // This thread exists before the cap is reached, so the cap allows
        // nothing more once the worker is busy.
        limit.lift();
        let holder = s.spawn(move || {
            NsSet::new()
                .run(move || {
                    busy_tx.send(()).unwrap();
                    hold_rx.recv().unwrap();
                })
                .unwrap();
        });
        busy_rx.recv().unwrap();
        limit.allow_more(0);
        let captured = PanicOnDrop("dropped by the origin");
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            set.run(move || drop(captured))
        }));
        let payload = outcome.expect_err("the drop's panic reaches the caller");
        assert_eq!(panic_message(&*payload), "dropped by the origin");
        // A plain call gets the real reason.
        match set.run(|| ()) {
            Err(Error::Thread { errno, .. }) => assert_eq!(errno, nsguard::Errno::EAGAIN),
            other => panic!("expected Error::Thread, got {other:?}"),
        }
        limit.lift();
        hold_tx.send(()).unwrap();
        holder.join().unwrap();
    });
    // The origin is alive: new workers start again.
    assert_eq!(set.run(|| thread_ino(NsKind::Net)).unwrap(), a.ino());
}

/// A call queued at the cap when the executor's last handle goes fails with
/// a cause a caller can match on, and its closure never runs.
#[test]
fn a_call_queued_at_shutdown_fails_with_shut_down() {
    if !in_child_process("a_call_queued_at_shutdown_fails_with_shut_down", LIMIT) {
        return;
    }
    let a = TempNs::new(NsKind::Net);
    let set = net_set(&a);
    let executor = nsguard_suite::capped_executor(1);
    let (hold_tx, hold_rx) = mpsc::channel::<()>();
    let (busy_tx, busy_rx) = mpsc::channel::<()>();
    let busy = executor.run_async(&set, move || {
        busy_tx.send(()).unwrap();
        hold_rx.recv().unwrap();
    });
    busy_rx.recv().unwrap();
    let queued = executor.run_async(&set, || panic!("ran after the shutdown"));
    drop(executor);
    match block_on(queued) {
        Err(Error::Worker {
            cause: WorkerCause::ShutDown,
            ..
        }) => {}
        other => panic!("expected Worker(ShutDown), got {other:?}"),
    }
    hold_tx.send(()).unwrap();
    block_on(busy).unwrap();
}

/// `run_async`: a closure dropped on cancellation, a result nobody waits
/// for, and a waker that panics are all dropped or called on the worker;
/// none of them kills it.
#[test]
fn run_async_contains_drops_results_and_wakers() {
    if !in_child_process("run_async_contains_drops_results_and_wakers", LIMIT) {
        return;
    }
    let a = TempNs::new(NsKind::Net);
    let set = net_set(&a);
    let executor = nsguard_suite::capped_executor(1);
    let first = executor.run(&set, tid).unwrap();

    // 1. Cancelled before it started: its closure is dropped on the worker.
    let (hold_tx, hold_rx) = mpsc::channel::<()>();
    let (busy_tx, busy_rx) = mpsc::channel::<()>();
    let busy = executor.run_async(&set, move || {
        busy_tx.send(()).unwrap();
        hold_rx.recv().unwrap();
    });
    busy_rx.recv().unwrap();
    let captured = PanicOnDrop("closure dropped on cancellation");
    let cancelled = executor.run_async(&set, move || drop(captured));
    drop(cancelled);
    hold_tx.send(()).unwrap();
    block_on(busy).unwrap();
    assert_eq!(executor.run(&set, tid).unwrap(), first, "same worker");

    // 2. A result nobody waits for is dropped on the worker.
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let orphan = executor.run_async(&set, move || {
        started_tx.send(()).unwrap();
        go_rx.recv().unwrap();
        PanicOnDrop("result nobody waits for")
    });
    started_rx.recv().unwrap();
    drop(orphan);
    go_tx.send(()).unwrap();
    // With a cap of 1, this call runs once the orphan's job is over.
    assert_eq!(executor.run(&set, tid).unwrap(), first, "same worker");

    // 3. A waker that panics when woken.
    struct Bomb;
    impl Wake for Bomb {
        fn wake(self: Arc<Self>) {
            panic!("waker");
        }
    }
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let mut fut = Box::pin(executor.run_async(&set, move || {
        go_rx.recv().unwrap();
        7
    }));
    let bomb = Waker::from(Arc::new(Bomb));
    assert!(fut
        .as_mut()
        .poll(&mut Context::from_waker(&bomb))
        .is_pending());
    go_tx.send(()).unwrap();
    assert_eq!(block_on(fut).unwrap(), 7);
    assert_eq!(executor.run(&set, tid).unwrap(), first, "same worker");
}

#[test]
fn builder_values_are_validated_or_saturated() {
    assert!(matches!(
        Executor::builder().max_workers(0).build(),
        Err(Error::InvalidConfig {
            setting: "max_workers",
            ..
        })
    ));
    assert!(matches!(
        Executor::builder().spin(Duration::from_secs(5)).build(),
        Err(Error::InvalidConfig {
            setting: "spin",
            ..
        })
    ));
}

/// An idle timeout too large to add to the current time means "never":
/// workers stay usable.
#[test]
fn an_endless_idle_timeout_keeps_workers_usable() {
    if !in_child_process("an_endless_idle_timeout_keeps_workers_usable", LIMIT) {
        return;
    }
    let a = TempNs::new(NsKind::Net);
    let set = net_set(&a);
    let executor = Executor::builder()
        .max_workers(2)
        .overflow_after(std::time::Duration::MAX)
        .idle_timeout(Duration::MAX)
        .build()
        .unwrap();
    for _ in 0..8 {
        assert_eq!(
            executor.run(&set, || thread_ino(NsKind::Net)).unwrap(),
            a.ino()
        );
        assert_eq!(executor.run(&NsSet::new(), || 1).unwrap(), 1);
    }
    assert!(executor.workers() <= 2);
}

/// Every worker busy at the cap with a body that waits for a thread of its
/// own that calls into the same executor: the waiting calls get workers
/// beyond the cap instead of deadlocking.
#[test]
fn bodies_waiting_for_their_own_threads_at_the_cap_do_not_deadlock() {
    if !in_child_process(
        "bodies_waiting_for_their_own_threads_at_the_cap_do_not_deadlock",
        LIMIT,
    ) {
        return;
    }
    let a = TempNs::new(NsKind::Net);
    let set = net_set(&a);
    let executor = Executor::builder()
        .max_workers(2)
        .overflow_after(Duration::from_millis(50))
        .build()
        .unwrap();
    let all_busy = Barrier::new(2);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                executor
                    .run(&set, || {
                        all_busy.wait(); // both workers are taken now
                        std::thread::scope(|inner| {
                            inner
                                .spawn(|| executor.run(&set, || thread_ino(NsKind::Net)).unwrap())
                                .join()
                                .unwrap()
                        })
                    })
                    .unwrap()
            });
        }
    });
    assert!(executor.overflowed_workers() >= 1);
}

/// `run_async` from a worker goes beyond the cap only within
/// `max_overflow`, however many a body submits, and executor B's cap holds
/// for calls made on executor A's workers.
#[test]
fn run_async_from_a_body_respects_the_cap() {
    if !in_child_process("run_async_from_a_body_respects_the_cap", LIMIT) {
        return;
    }
    let a = TempNs::new(NsKind::Net);
    let set = net_set(&a);
    let executor = Executor::builder()
        .max_workers(2)
        .max_overflow(1)
        .build()
        .unwrap();
    let futures = executor
        .run(&set, || {
            let futures: Vec<_> = (0..500)
                .map(|_| executor.run_async(&NsSet::new(), || thread_ino(NsKind::Net)))
                .collect();
            // Counted as soon as they are dispatched.
            assert!(executor.workers() <= 3, "{} workers", executor.workers());
            futures
        })
        .unwrap();
    for fut in futures {
        block_on(fut).unwrap();
    }
    assert!(executor.workers() <= 3);

    // Executor B, cap 1, its worker busy: a call from A's worker waits for
    // it instead of starting a second B worker.
    let b = Executor::builder()
        .max_workers(1)
        .overflow_after(Duration::MAX)
        .build()
        .unwrap();
    let (hold_tx, hold_rx) = mpsc::channel::<()>();
    let (busy_tx, busy_rx) = mpsc::channel::<i32>();
    std::thread::scope(|s| {
        let holder = s.spawn(|| {
            b.run(&NsSet::new(), move || {
                busy_tx.send(tid()).unwrap();
                // Released by a second B worker (the bug), or after a while.
                let _ = hold_rx.recv_timeout(Duration::from_secs(2));
                tid()
            })
            .unwrap()
        });
        let b_worker = busy_rx.recv().unwrap();
        let seen = executor
            .run(&set, || {
                b.run(&NsSet::new(), || {
                    let _ = hold_tx.send(());
                    tid()
                })
                .unwrap()
            })
            .unwrap();
        assert_eq!(seen, b_worker, "B's cap of 1 was exceeded");
        holder.join().unwrap();
    });
}

/// In a forked child, the global executor starts afresh; an executor or a
/// future of the parent gives an error instead of hanging.
#[test]
fn after_fork_calls_work_or_fail_but_never_hang() {
    if !in_child_process("after_fork_calls_work_or_fail_but_never_hang", LIMIT) {
        return;
    }
    let a = TempNs::new(NsKind::Net);
    let set = net_set(&a);
    assert_eq!(set.run(|| thread_ino(NsKind::Net)).unwrap(), a.ino());
    let private = Executor::builder().build().unwrap();
    private.run(&set, || ()).unwrap();
    let (hold_tx, hold_rx) = mpsc::channel::<()>();
    let pending = private.run_async(&set, move || {
        let _ = hold_rx.recv();
    });
    // SAFETY: the child only uses nsguard, which is what is tested, and
    // exits with _exit; the parent only waits for it.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            let ok = set.run(|| thread_ino(NsKind::Net)).ok() == Some(a.ino())
                && matches!(
                    private.run(&set, || ()),
                    Err(Error::Worker {
                        cause: WorkerCause::Forked,
                        ..
                    })
                )
                && matches!(
                    block_on(pending),
                    Err(Error::Worker {
                        cause: WorkerCause::Forked,
                        ..
                    })
                );
            // SAFETY: ends the child without unwinding into the harness.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        nix::unistd::ForkResult::Parent { child } => {
            let status = nix::sys::wait::waitpid(child, None).unwrap();
            assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
            hold_tx.send(()).unwrap();
        }
    }
}

/// A body on a worker that entered a mount namespace makes the process's
/// first call to the global executor: its workers are in the host's
/// mount namespace all the same.
#[test]
fn global_workers_never_inherit_a_callers_mount_namespace() {
    if !in_child_process(
        "global_workers_never_inherit_a_callers_mount_namespace",
        LIMIT,
    ) {
        return;
    }
    let host_mnt = thread_ino(NsKind::Mnt);
    let m = TempNs::new(NsKind::Mnt);
    let container = NsSet::from(Namespace::open(m.path(), NsKind::Mnt).unwrap());
    let private = Executor::builder().build().unwrap();
    let seen = private
        .run(&container, || {
            assert_eq!(thread_ino(NsKind::Mnt), m.ino());
            NsSet::new().run(|| thread_ino(NsKind::Mnt)).unwrap()
        })
        .unwrap();
    assert_eq!(seen, host_mnt);
}

/// A thread that dropped a capability cannot be where nsguard's threads
/// start from: the first call from it is refused, and a later call from a
/// clean thread gets workers with every capability of the process.
#[test]
fn global_workers_never_inherit_a_callers_dropped_capabilities() {
    if !in_child_process(
        "global_workers_never_inherit_a_callers_dropped_capabilities",
        LIMIT,
    ) {
        return;
    }
    let full = status_line("CapEff");
    let refused = nsguard_suite::on_fresh_thread(|| {
        caps::drop(
            None,
            caps::CapSet::Effective,
            caps::Capability::CAP_NET_ADMIN,
        )
        .unwrap();
        NsSet::new().run(|| status_line("CapEff"))
    });
    match refused {
        Err(Error::Worker {
            cause: WorkerCause::OriginRefused,
            reason,
            ..
        }) => assert!(reason.contains("CapEff"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let seen =
        nsguard_suite::on_fresh_thread(|| NsSet::new().run(|| status_line("CapEff")).unwrap());
    assert_eq!(seen, full);
}

/// A body that changes per-thread state other than namespaces retires its
/// worker: the next call runs on a fresh, clean one.
#[test]
fn a_body_that_changes_its_threads_state_retires_its_worker() {
    type Change = fn();
    fn setresuid() {
        // SAFETY: setresuid(2) takes integers; a raw system call changes
        // the calling thread only.
        let rc = unsafe { libc::syscall(libc::SYS_setresuid, -1i64, 1000i64, -1i64) };
        assert_eq!(rc, 0);
    }
    fn setgroups() {
        let groups: [libc::gid_t; 1] = [4242];
        // SAFETY: setgroups(2) reads one gid from a live array.
        let rc = unsafe { libc::syscall(libc::SYS_setgroups, 1usize, groups.as_ptr()) };
        assert_eq!(rc, 0);
    }
    fn drop_bounding() {
        // SAFETY: PR_CAPBSET_DROP takes integers only (13: CAP_NET_RAW).
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, 13, 0, 0, 0) };
        assert_eq!(rc, 0);
    }
    fn no_new_privs() {
        // SAFETY: PR_SET_NO_NEW_PRIVS takes integers only.
        let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        assert_eq!(rc, 0);
    }
    fn seccomp() {
        nsguard_suite::fail_setns_on_this_thread(libc::CLONE_NEWUTS, libc::EDOM);
    }
    fn securebits() {
        // SAFETY: PR_SET_SECUREBITS takes integers only (SECBIT_KEEP_CAPS).
        let rc = unsafe { libc::prctl(libc::PR_SET_SECUREBITS, 1 << 4, 0, 0, 0) };
        assert_eq!(rc, 0);
    }
    let cases: [(&str, Change, &str); 6] = [
        ("setresuid", setresuid, "Uid"),
        ("setgroups", setgroups, "Groups"),
        ("PR_CAPBSET_DROP", drop_bounding, "CapBnd"),
        ("no_new_privs", no_new_privs, "NoNewPrivs"),
        ("seccomp", seccomp, "Seccomp_filters"),
        ("securebits", securebits, ""),
    ];
    let a = TempNs::new(NsKind::Net);
    let set = net_set(&a);
    for (name, change, line) in cases {
        let executor = nsguard_suite::capped_executor(1);
        let (first, before) = executor.run(&set, || (tid(), status_line(line))).unwrap();
        executor.run(&set, change).unwrap();
        let (second, after) = executor.run(&set, || (tid(), status_line(line))).unwrap();
        assert_ne!(second, first, "{name}: the worker was reused");
        assert_eq!(after, before, "{name}: a later body saw the change");
    }
}

/// On a worker with a root and cwd of its own (it entered a mount
/// namespace), a body that changes directory retires it.
#[test]
fn a_body_that_changes_a_private_cwd_retires_its_worker() {
    let m = TempNs::new(NsKind::Mnt);
    let set = NsSet::from(Namespace::open(m.path(), NsKind::Mnt).unwrap());
    let executor = nsguard_suite::capped_executor(1);
    let (first, cwd) = executor
        .run(&set, || (tid(), std::env::current_dir().unwrap()))
        .unwrap();
    executor
        .run(&set, || std::env::set_current_dir("/proc").unwrap())
        .unwrap();
    let (second, now) = executor
        .run(&set, || (tid(), std::env::current_dir().unwrap()))
        .unwrap();
    assert_ne!(second, first);
    assert_eq!(now, cwd);
}

/// Threads cannot be created by a thread that entered another pid
/// namespace: every nsguard call that needs one says so with an error.
#[test]
fn thread_creation_failures_are_errors_not_panics() {
    use nsguard::CommandExt;
    let (p, q) = (TempNs::new(NsKind::Pid), TempNs::new(NsKind::Pid));
    let pid_set = NsSet::from(Namespace::open(p.path(), NsKind::Pid).unwrap());
    let other_pid = NsSet::from(Namespace::open(q.path(), NsKind::Pid).unwrap());
    nsguard_suite::on_fresh_thread(|| {
        let _guard = pid_set.enter().unwrap();
        let thread_error = |what: &str, r: nsguard::Result<()>| match r {
            Err(Error::Thread { errno, .. }) => assert_eq!(errno, nsguard::Errno::EINVAL, "{what}"),
            other => panic!("{what}: expected Error::Thread, got {other:?}"),
        };
        thread_error("unshare", NsSet::unshare(NsKind::Uts).map(drop));
        thread_error(
            "netns::add",
            nsguard::netns::add(&nsguard_suite::unique_name("nt")).map(drop),
        );
        thread_error(
            "spawn_in",
            std::process::Command::new("true")
                .spawn_in(&other_pid)
                .map(drop),
        );
        thread_error(
            "spawn_in_new",
            std::process::Command::new("true")
                .spawn_in_new(&NsSet::new(), NsKind::Pid)
                .map(drop),
        );
    });
}

/// A home in another pid namespace could never start a worker: refused
/// when the executor is built, naming the rule.
#[test]
fn a_home_in_another_pid_namespace_is_refused_at_build() {
    let p = TempNs::new(NsKind::Pid);
    let home = NsSet::from(Namespace::open(p.path(), NsKind::Pid).unwrap());
    match Executor::builder().home(home).build() {
        Err(Error::InvalidConfig {
            setting, reason, ..
        }) => {
            assert_eq!(setting, "home");
            assert!(reason.contains("cannot create threads"), "{reason}");
        }
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
    // The process's own pid namespace needs no switch and is accepted.
    Executor::builder()
        .home(NsSet::current(NsKind::Pid | NsKind::Net).unwrap())
        .build()
        .unwrap();
}

/// Records the netns its `Drop` runs in.
struct Cleanup(Arc<std::sync::atomic::AtomicU64>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.0
            .store(thread_ino(NsKind::Net), std::sync::atomic::Ordering::SeqCst);
    }
}

#[nsguard::in_namespace(net = path)]
async fn holds_a_cleanup_guard(
    path: &std::path::Path,
    seen: Arc<std::sync::atomic::AtomicU64>,
) -> Result<(), Error> {
    let _cleanup = Cleanup(seen);
    std::future::pending::<()>().await;
    Ok(())
}

/// A cancelled `#[in_namespace] async fn` (here by a timeout) drops its
/// locals inside the namespace, on a worker, like each poll.
#[test]
fn a_cancelled_async_fn_drops_its_locals_inside() {
    let a = TempNs::new(NsKind::Net);
    let seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let outcome = rt.block_on(async {
        tokio::time::timeout(
            Duration::from_millis(10),
            holds_a_cleanup_guard(a.path(), Arc::clone(&seen)),
        )
        .await
    });
    assert!(outcome.is_err(), "the body never completes");
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), a.ino());
    assert_ne!(a.ino(), thread_ino(NsKind::Net));
}
