//! `NsSet::run` and `Executor`: bodies run on workers inside the requested
//! namespaces, borrow from the caller, propagate panics, nest, and never
//! switch the caller's thread.

use std::sync::mpsc;
use std::time::Duration;

use nsguard::{Error, Executor, NsKind, NsSet};
use nsguard_suite::{
    await_exits, main_thread_ino, notify_on_exit, open, thread_ino, tid, ChildGuard, Latch, TempNs,
    PATIENCE,
};

/// Runs `f` on a thread and fails (instead of hanging) if it takes longer
/// than `limit`: for tests whose failure mode is a deadlock.
fn within<R: Send + 'static>(limit: Duration, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(r)) => r,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("did not finish within {limit:?}: deadlock?"),
    }
}

const KINDS: [NsKind; 6] = [
    NsKind::Net,
    NsKind::Uts,
    NsKind::Ipc,
    NsKind::Cgroup,
    NsKind::Pid,
    NsKind::Mnt,
];

#[test]
fn a_body_runs_inside_every_kind_it_asked_for_and_home_for_the_rest() {
    for kind in KINDS {
        let temp = TempNs::new(kind);
        let set = NsSet::from(open(&temp));
        let caller = tid();
        let (seen, others, worker) = set
            .run(|| {
                let others: Vec<(NsKind, u64)> = KINDS
                    .iter()
                    .filter(|k| **k != kind)
                    .map(|k| (*k, thread_ino(*k)))
                    .collect();
                (thread_ino(kind), others, tid())
            })
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(seen, temp.ino(), "{kind}: the body is inside");
        assert_ne!(worker, caller, "{kind}: the body ran on a worker");
        for (other, ino) in others {
            assert_eq!(
                ino,
                main_thread_ino(other),
                "{kind}: {other} is the home one"
            );
        }
        assert_eq!(
            thread_ino(kind),
            main_thread_ino(kind),
            "{kind}: the caller never moved"
        );
    }
}

#[test]
fn a_set_of_several_kinds_is_entered_together() {
    let temps: Vec<TempNs> = KINDS.into_iter().map(TempNs::new).collect();
    let set: NsSet = temps.iter().map(open).collect();
    for _ in 0..3 {
        let seen = set.run(|| KINDS.map(thread_ino)).unwrap();
        assert_eq!(
            seen.to_vec(),
            temps.iter().map(TempNs::ino).collect::<Vec<_>>()
        );
    }
}

#[test]
fn bodies_borrow_from_the_caller() {
    let temp = TempNs::new(NsKind::Uts);
    let set = NsSet::from(open(&temp));
    let mut log: Vec<String> = Vec::new();
    let name = String::from("borrowed");
    let len = set
        .run(|| {
            log.push(format!("{name} in uts:[{}]", thread_ino(NsKind::Uts)));
            name.len()
        })
        .unwrap();
    assert_eq!(len, 8);
    assert_eq!(log, [format!("borrowed in uts:[{}]", temp.ino())]);
}

#[test]
fn a_panic_is_re_raised_in_the_caller_and_the_worker_survives() {
    let temp = TempNs::new(NsKind::Net);
    let set = NsSet::from(open(&temp));
    let executor = nsguard_suite::capped_executor(1);
    let first = executor.run(&set, tid).unwrap();
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        executor.run(&set, || -> () { std::panic::panic_any(42_u32) })
    }))
    .unwrap_err();
    assert_eq!(
        panic.downcast_ref::<u32>(),
        Some(&42),
        "the original payload"
    );
    let (again, ino) = executor
        .run(&set, || (tid(), thread_ino(NsKind::Net)))
        .unwrap();
    assert_eq!(
        (again, ino),
        (first, temp.ino()),
        "same worker, still inside"
    );
}

#[test]
fn a_call_for_the_workers_own_namespaces_runs_inline_and_others_nest() {
    let (a, b) = (TempNs::new(NsKind::Net), TempNs::new(NsKind::Net));
    let (set_a, set_b) = (NsSet::from(open(&a)), NsSet::from(open(&b)));
    let (outer, inner_same, inner_other, back) = set_a
        .run(|| {
            let outer = tid();
            let same = set_a.run(|| (tid(), thread_ino(NsKind::Net))).unwrap();
            let other = set_b.run(|| (tid(), thread_ino(NsKind::Net))).unwrap();
            (outer, same, other, thread_ino(NsKind::Net))
        })
        .unwrap();
    assert_eq!(inner_same, (outer, a.ino()), "inline on the same worker");
    assert_ne!(inner_other.0, outer, "another worker");
    assert_eq!(inner_other.1, b.ino());
    assert_eq!(back, a.ino(), "the outer worker never moved");
}

#[test]
fn nested_calls_at_the_cap_do_not_deadlock() {
    let temps: Vec<TempNs> = (0..4).map(|_| TempNs::new(NsKind::Net)).collect();
    let sets: Vec<NsSet> = temps.iter().map(open).map(NsSet::from).collect();
    let expected: Vec<u64> = temps.iter().map(TempNs::ino).collect();
    let executor = nsguard_suite::capped_executor(2);
    let seen = within(Duration::from_secs(20), move || {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|i| {
                    let (sets, executor) = (&sets, &executor);
                    s.spawn(move || {
                        // Each level asks for another namespace: every level
                        // needs a worker while the level above holds one.
                        executor
                            .run(&sets[i], || {
                                executor
                                    .run(&sets[(i + 1) % 4], || {
                                        executor
                                            .run(&sets[(i + 2) % 4], || thread_ino(NsKind::Net))
                                            .unwrap()
                                    })
                                    .unwrap()
                            })
                            .unwrap()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<u64>>()
        })
    });
    for (i, ino) in seen.into_iter().enumerate() {
        assert_eq!(ino, expected[(i + 2) % 4]);
    }
}

#[test]
fn at_the_cap_top_level_calls_wait_for_a_worker() {
    let temps: Vec<TempNs> = (0..6).map(|_| TempNs::new(NsKind::Uts)).collect();
    let sets: Vec<NsSet> = temps.iter().map(open).map(NsSet::from).collect();
    let executor = nsguard_suite::capped_executor(2);
    std::thread::scope(|s| {
        for (set, temp) in sets.iter().zip(&temps) {
            let executor = &executor;
            s.spawn(move || {
                for _ in 0..20 {
                    let ino = executor.run(set, || thread_ino(NsKind::Uts)).unwrap();
                    assert_eq!(ino, temp.ino());
                    assert!(executor.workers() <= 2, "{} workers", executor.workers());
                }
            });
        }
    });
    assert!(executor.workers() <= 2);
}

#[test]
fn a_tmpfs_mounted_in_a_body_stays_in_that_mount_namespace() {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    let mnt = TempNs::new(NsKind::Mnt);
    let set = NsSet::from(open(&mnt));
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("inside");
    // The bodies return their failures, so that a failure is reported with
    // its cause by this thread (a panic on a worker prints elsewhere).
    let where_ = || {
        format!(
            "worker in mnt:[{}] (the set's is {}), tid {}",
            thread_ino(NsKind::Mnt),
            mnt.ino(),
            tid()
        )
    };
    set.run(|| {
        mount(
            Some("tmpfs"),
            dir.path(),
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .map_err(|e| format!("mount tmpfs on {}: {e}; {}", dir.path().display(), where_()))?;
        std::fs::write(&marker, "hello")
            .map_err(|e| format!("write {}: {e}; {}", marker.display(), where_()))
    })
    .unwrap()
    .unwrap();
    assert!(!marker.exists(), "the host does not see the tmpfs");
    let host_mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!host_mounts.contains(&dir.path().display().to_string()));
    let (seen, ino) = set
        .run(|| {
            (
                std::fs::read_to_string(&marker).ok(),
                thread_ino(NsKind::Mnt),
            )
        })
        .unwrap();
    assert_eq!(seen.as_deref(), Some("hello"), "a later body sees it");
    assert_eq!(ino, mnt.ino());
    // Detached: a process forked meanwhile by another test may hold a copy
    // of the marker's fd until it execs, which makes a plain umount EBUSY.
    set.run(|| {
        umount2(dir.path(), MntFlags::MNT_DETACH)
            .map_err(|e| format!("umount {}: {e}; {}", dir.path().display(), where_()))
    })
    .unwrap()
    .unwrap();
    // Other sets still run in the host's mount namespace.
    let net = TempNs::new(NsKind::Net);
    let ino = NsSet::from(open(&net))
        .run(|| thread_ino(NsKind::Mnt))
        .unwrap();
    assert_eq!(ino, main_thread_ino(NsKind::Mnt));
}

#[test]
fn processes_spawned_in_a_pid_body_land_in_the_pid_namespace() {
    let pid = TempNs::new(NsKind::Pid);
    let set = NsSet::from(open(&pid));
    let (child_pidns, thread_err) = set
        .run(|| {
            let out = std::process::Command::new("readlink")
                .arg("/proc/self/ns/pid")
                .output()
                .unwrap();
            let thread = std::thread::Builder::new().spawn(|| ());
            (
                String::from_utf8(out.stdout).unwrap(),
                thread.err().map(|e| e.to_string()),
            )
        })
        .unwrap();
    assert_eq!(child_pidns.trim(), format!("pid:[{}]", pid.ino()));
    assert!(
        thread_err.is_some(),
        "a thread cannot be created there: an error, not a crash"
    );
}

#[test]
fn user_and_time_are_refused_without_running_the_body() {
    for kind in nsguard_suite::kinds_this_kernel_has(
        "user_and_time_are_refused_without_running_the_body",
        &[NsKind::User, NsKind::Time],
    ) {
        let temp = TempNs::new(kind);
        let set = NsSet::from(open(&temp));
        let mut ran = false;
        match set.run(|| ran = true) {
            Err(err @ Error::UnsupportedOnThread { .. }) => {
                assert_eq!(err.ns_kind(), Some(kind));
                assert!(err.to_string().contains("spawn a process"), "{err}");
            }
            other => panic!("{kind}: expected UnsupportedOnThread, got {other:?}"),
        }
        assert!(!ran);
    }
}

#[test]
fn a_worker_that_a_body_moved_is_retired() {
    let temp = TempNs::new(NsKind::Net);
    let set = NsSet::from(open(&temp));
    let executor = nsguard_suite::capped_executor(1);
    let (exits_tx, exits) = mpsc::channel();
    let first = executor
        .run(&set, move || {
            notify_on_exit(exits_tx);
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            tid()
        })
        .unwrap();
    await_exits(&exits, &[first], "the moved worker was not retired");
    assert_eq!(executor.workers(), 0);
    let (second, ino) = executor
        .run(&set, || (tid(), thread_ino(NsKind::Net)))
        .unwrap();
    assert_ne!(second, first, "never reused");
    assert_eq!(ino, temp.ino());
}

/// Runs one call per set at once, each waiting for all the others to have
/// started, so that that many workers are busy together; returns the
/// workers' thread ids. Each worker reports its exit on `exits`.
fn on_busy_workers(executor: &Executor, sets: &[NsSet], exits: &mpsc::Sender<i32>) -> Vec<i32> {
    let all_busy = Latch::new(sets.len(), "every call running on a worker of its own");
    let tids: Vec<i32> = std::thread::scope(|s| {
        let calls: Vec<_> = sets
            .iter()
            .map(|set| {
                let (all_busy, exits) = (&all_busy, exits.clone());
                s.spawn(move || {
                    executor
                        .run(set, move || {
                            notify_on_exit(exits);
                            all_busy.arrive_and_wait();
                            tid()
                        })
                        .unwrap()
                })
            })
            .collect();
        calls.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let distinct: std::collections::HashSet<_> = tids.iter().collect();
    assert_eq!(distinct.len(), sets.len(), "one worker per call: {tids:?}");
    tids
}

#[test]
fn idle_workers_exit() {
    let temps: Vec<TempNs> = (0..3).map(|_| TempNs::new(NsKind::Net)).collect();
    let sets: Vec<NsSet> = temps.iter().map(open).map(NsSet::from).collect();
    let executor = Executor::builder()
        .idle_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let (exits_tx, exits) = mpsc::channel();
    let tids = on_busy_workers(&executor, &sets, &exits_tx);
    await_exits(&exits, &tids, "idle workers did not exit");
    assert_eq!(executor.workers(), 0);
}

/// The CPU time thread `tid` of this process has used, in clock ticks.
fn cpu_ticks(tid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
    let (_, after_name) = stat.rsplit_once(')').unwrap();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime, the 14th and 15th fields (11th and 12th after the name).
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// An idle timeout of zero ends a worker as soon as it is idle, and the
/// origin thread, which ends idle workers, does not spin while a worker is
/// busy: over a body of 300 ms it uses a small part of that in CPU (a spin
/// would use all of it).
#[test]
fn a_zero_idle_timeout_ends_idle_workers_and_nothing_spins() {
    if !nsguard_suite::in_child_process(
        "a_zero_idle_timeout_ends_idle_workers_and_nothing_spins",
        PATIENCE,
    ) {
        return;
    }
    let a = TempNs::new(NsKind::Net);
    let set = nsguard_suite::net_set(&a);
    let executor = Executor::builder()
        .idle_timeout(Duration::ZERO)
        .build()
        .unwrap();
    assert_eq!(
        executor.run(&set, || thread_ino(NsKind::Net)).unwrap(),
        a.ino()
    );
    let origin: Vec<i32> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim() == "nsguard-origin")
        })
        .map(|t| t.file_name().to_string_lossy().parse().unwrap())
        .collect();
    assert_eq!(origin.len(), 1, "one origin thread: {origin:?}");
    let before = cpu_ticks(origin[0]);
    executor
        .run(&set, || std::thread::sleep(Duration::from_millis(300)))
        .unwrap();
    let used = cpu_ticks(origin[0]) - before;
    assert!(
        used < 10,
        "the origin thread used {used} ticks of CPU in 300 ms"
    );
    eventually("the idle worker ends", || executor.workers() == 0);
}

#[test]
fn a_process_owned_namespace_keeps_working_after_the_process_exits() {
    let mut child = ChildGuard::spawn_in_new(nix::sched::CloneFlags::CLONE_NEWNET);
    let set = NsSet::of_pid(child.pid(), NsKind::Net).unwrap();
    let ino = set.get(NsKind::Net).unwrap().id().ino();
    child.kill();
    assert_eq!(set.run(|| thread_ino(NsKind::Net)).unwrap(), ino);
}

#[test]
fn dropping_an_executor_ends_its_threads() {
    let temps: Vec<TempNs> = (0..3).map(|_| TempNs::new(NsKind::Net)).collect();
    let sets: Vec<NsSet> = temps.iter().map(open).map(NsSet::from).collect();
    // Idle workers would never time out while the test waits: only the drop
    // can end them.
    let executor = Executor::builder()
        .idle_timeout(PATIENCE * 10)
        .build()
        .unwrap();
    let (exits_tx, exits) = mpsc::channel();
    let tids = on_busy_workers(&executor, &sets, &exits_tx);
    let clone = executor.clone();
    drop(executor);
    assert_eq!(
        clone.run(&sets[0], || thread_ino(NsKind::Net)).unwrap(),
        temps[0].ino(),
        "a clone keeps it alive"
    );
    drop(clone);
    await_exits(
        &exits,
        &tids,
        "workers still alive after the executor was dropped",
    );
}

/// A steady caller (a call every 5 ms) is served by the one worker it
/// wakes, again and again: once that worker is idle (its check done), a
/// call must go to it, never to a new one. Each call waits until the
/// worker is idle, so that the count does not depend on how long the
/// check takes on a loaded or emulated machine (a call that finds the
/// worker still checking starts another, by design). A worker that never
/// went back to idle, or a dispatch that passed idle workers over, would
/// make calls start workers up to the cap of 8.
#[test]
fn a_steady_caller_keeps_to_one_worker() {
    if !nsguard_suite::in_child_process(
        "a_steady_caller_keeps_to_one_worker",
        Duration::from_secs(120),
    ) {
        return;
    }
    let a = TempNs::new(NsKind::Net);
    let set = NsSet::from(open(&a));
    let executor = Executor::builder().max_workers(8).build().unwrap();
    for _ in 0..60 {
        std::thread::sleep(Duration::from_millis(5));
        let since = std::time::Instant::now();
        while executor.idle_workers() < executor.workers() {
            assert!(since.elapsed() < PATIENCE, "{:?}", executor.stats());
            std::thread::sleep(Duration::from_micros(100));
        }
        assert_eq!(
            executor.run(&set, || thread_ino(NsKind::Net)).unwrap(),
            a.ino()
        );
    }
    let stats = executor.stats();
    assert_eq!(stats.calls, 60);
    assert_eq!(stats.workers, 1, "{stats:?}");
    assert!(stats.woken > 0, "{stats:?}");
}

/// A caller that calls now and then (its worker parks between calls, and
/// yields to the woken caller after each) is served inside every time and
/// never waits for a lost wake-up (the watchdog would kill it): with spin
/// budgets of zero (the worker and the caller always park) and the
/// default. How many workers serve it is not asserted here: a worker still
/// busy with its check when the next call comes (under the load of the
/// tests beside it, even after 2 ms) makes the executor start another, by
/// design; `a_steady_caller_keeps_to_one_worker` bounds them.
#[test]
fn a_sporadic_caller_is_served_inside_every_time() {
    if !nsguard_suite::in_child_process(
        "a_sporadic_caller_is_served_inside_every_time",
        Duration::from_secs(120),
    ) {
        return;
    }
    let a = TempNs::new(NsKind::Net);
    let set = NsSet::from(open(&a));
    for spin in [Duration::ZERO, Duration::from_micros(50)] {
        let executor = Executor::builder().spin(spin).build().unwrap();
        for gap in [2_000, 300, 50, 0] {
            for _ in 0..40 {
                std::thread::sleep(Duration::from_micros(gap));
                assert_eq!(
                    executor.run(&set, || thread_ino(NsKind::Net)).unwrap(),
                    a.ino()
                );
                assert_eq!(thread_ino(NsKind::Net), main_thread_ino(NsKind::Net));
            }
        }
        let stats = executor.stats();
        assert_eq!(stats.calls, 160);
        // Calls after 2 ms idle find their worker parked, and wake it: the
        // caller yields to it at once (counted, as `woken`). Not all: under
        // load a worker may still be checking after 2 ms.
        assert!(stats.woken > 0 && stats.woken <= stats.calls, "{stats:?}");
    }
}

/// Callers and workers that share one CPU (the scenario's process may run
/// on one only, and every thread it starts inherits that) hand every call
/// over beside each other: a caller yields to a worker spinning on its
/// CPU, and a worker whose caller is there yields before it spins. Every
/// call is served inside, every caller stays home, and nobody waits for a
/// lost wake-up (the watchdog would kill the scenario): back to back and
/// with gaps, from one caller and from four at once, with the check and
/// without, and with nested calls from a body; and the nested calls do not
/// pile up workers beyond the cap.
#[test]
fn callers_and_workers_on_one_cpu_are_served_inside_every_time() {
    use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
    use nix::unistd::Pid;

    if !nsguard_suite::in_child_process(
        "callers_and_workers_on_one_cpu_are_served_inside_every_time",
        Duration::from_secs(180),
    ) {
        return;
    }
    // Before the first nsguard thread starts: the origin and every worker
    // inherit the main thread's CPUs.
    let allowed = sched_getaffinity(Pid::from_raw(0)).unwrap();
    let cpu = (0..CpuSet::count())
        .find(|&c| allowed.is_set(c).unwrap_or(false))
        .unwrap();
    let mut one = CpuSet::new();
    one.set(cpu).unwrap();
    sched_setaffinity(Pid::from_raw(0), &one).unwrap();
    let (a, b) = (TempNs::new(NsKind::Net), TempNs::new(NsKind::Uts));
    let (set_a, set_b) = (NsSet::from(open(&a)), NsSet::from(open(&b)));
    for check in [true, false] {
        let executor = Executor::builder().check_after_call(check).build().unwrap();
        for gap in [0, 50, 300] {
            for _ in 0..50 {
                std::thread::sleep(Duration::from_micros(gap));
                assert_eq!(
                    executor.run(&set_a, || thread_ino(NsKind::Net)).unwrap(),
                    a.ino()
                );
                assert_eq!(thread_ino(NsKind::Net), main_thread_ino(NsKind::Net));
            }
        }
        std::thread::scope(|s| {
            for t in 0..4 {
                let (executor, set_a, set_b, a, b) = (&executor, &set_a, &set_b, &a, &b);
                s.spawn(move || {
                    for i in 0..200 {
                        if (i + t) % 2 == 0 {
                            let ino = executor.run(set_a, || thread_ino(NsKind::Net)).unwrap();
                            assert_eq!(ino, a.ino());
                        } else {
                            // A body that calls into the executor again.
                            let inos = executor
                                .run(set_b, || {
                                    let net =
                                        executor.run(set_a, || thread_ino(NsKind::Net)).unwrap();
                                    (thread_ino(NsKind::Uts), net)
                                })
                                .unwrap();
                            assert_eq!(inos, (b.ino(), a.ino()));
                        }
                        assert_eq!(thread_ino(NsKind::Net), main_thread_ino(NsKind::Net));
                        assert_eq!(thread_ino(NsKind::Uts), main_thread_ino(NsKind::Uts));
                    }
                });
            }
        });
        let stats = executor.stats();
        assert_eq!(stats.calls, 150 + 4 * 200 + 4 * 100, "{stats:?}");
        assert_eq!(stats.retired, nsguard::Retired::default(), "{stats:?}");
        // The cap (8 here: one CPU) and a worker beyond it for each of the
        // four bodies waiting for a nested call at most. A nested call that
        // started a worker beyond the cap while others were finishing their
        // calls (checking themselves) started one per call where checks are
        // slow: 89 under emulation, and the fds ran out.
        assert!(stats.workers <= 8 + 4, "{stats:?}");
    }
    // Nothing moved the threads off the one CPU meanwhile.
    assert_eq!(sched_getaffinity(Pid::from_raw(0)).unwrap(), one);
}

/// The time slice of thread (or process) `tid`, in nanoseconds, as
/// `sched_getattr(2)` reports it: the slice on Linux 6.12 and later, 0
/// before.
fn slice_of(tid: i32) -> u64 {
    sched_attr_of(tid)[3]
}

/// Waits until `done` holds, and fails after [`PATIENCE`].
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(
            start.elapsed() < PATIENCE,
            "waited {PATIENCE:?} in vain for: {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The slice a worker asks for while it waits for a sporadic caller.
const SHORT: u64 = 300_000;

/// Whether the kernel keeps a thread's own time slice (Linux 6.12): a
/// scratch thread asks for one and reads it back.
fn kernel_has_slices() -> bool {
    std::thread::spawn(|| {
        let mut attr = sched_attr_of(0);
        attr[1] = 0; // no flags
        attr[3] = SHORT;
        set_sched_attr(&attr);
        slice_of(0) == SHORT
    })
    .join()
    .unwrap()
}

/// `sched_getattr(2)` of thread (or process) `tid`, as the words of its
/// `struct sched_attr`.
fn sched_attr_of(tid: i32) -> [u64; 7] {
    let mut attr = [0u64; 7];
    // SAFETY: sched_getattr(2) writes at most 56 bytes, the size of `attr`.
    let rc = unsafe { libc::syscall(libc::SYS_sched_getattr, tid, attr.as_mut_ptr(), 56, 0) };
    assert_eq!(
        rc,
        0,
        "sched_getattr({tid}): {}",
        std::io::Error::last_os_error()
    );
    attr
}

/// `sched_setattr(2)` of the calling thread.
fn set_sched_attr(attr: &[u64; 7]) {
    // SAFETY: sched_setattr(2) reads the 56 bytes of `attr`, whose first
    // word gives that size.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, attr.as_ptr(), 0) };
    assert_eq!(rc, 0, "sched_setattr: {}", std::io::Error::last_os_error());
}

/// A fair-class `struct sched_attr` with `policy` and `nice`.
fn fair_attr(policy: u32, nice: i32) -> [u64; 7] {
    let mut attr = [0u64; 7];
    attr[0] = u64::from_ne_bytes(join(56, policy));
    attr[2] = u64::from_ne_bytes(join(nice as u32, 0));
    attr
}

/// Two u32 fields in a struct's order, as the bytes of one word.
fn join(first: u32, second: u32) -> [u8; 8] {
    let (a, b) = (first.to_ne_bytes(), second.to_ne_bytes());
    [a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]]
}

/// The policy and nice value in a `struct sched_attr`'s words.
fn policy_and_nice(attr: &[u64; 7]) -> (u32, i32) {
    let (w0, w2) = (attr[0].to_ne_bytes(), attr[2].to_ne_bytes());
    (
        u32::from_ne_bytes([w0[4], w0[5], w0[6], w0[7]]),
        i32::from_ne_bytes([w2[0], w2[1], w2[2], w2[3]]),
    )
}

/// A worker's short slice keeps its policy (`SCHED_BATCH`) and nice value,
/// and taking its own slice back restores all of it, a fixed slice of its
/// own included. A worker with a
/// negative nice value keeps its own slice: reset-on-fork would not pass
/// that nice value on to the processes its bodies start. Each in a
/// process of its own, whose first thread sets its scheduling before
/// nsguard starts any thread (they inherit it).
#[test]
fn a_short_slice_keeps_the_workers_policy_and_nice_and_skips_a_negative_nice() {
    const NAME: &str = "a_short_slice_keeps_the_workers_policy_and_nice_and_skips_a_negative_nice";
    const SCHED_BATCH: u32 = 3;
    if std::env::var_os("NSGUARD_TEST_NICE").is_none() {
        for nice in ["3", "-5"] {
            assert!(!nsguard_suite::in_child_process_spawned(
                NAME,
                Duration::from_secs(120),
                |cmd| cmd.env("NSGUARD_TEST_NICE", nice).spawn().unwrap()
            ));
        }
        return;
    }
    let nice: i32 = std::env::var("NSGUARD_TEST_NICE").unwrap().parse().unwrap();
    let mut attr = fair_attr(SCHED_BATCH, nice);
    // A fixed slice of its own too (ignored before Linux 6.12), which the
    // worker must set again, not the kernel's default, when it takes its
    // own back.
    attr[3] = 1_000_000;
    set_sched_attr(&attr);
    if !kernel_has_slices() {
        eprintln!("this kernel keeps no slice of a thread's own: not tested");
        return;
    }
    let a = TempNs::new(NsKind::Net);
    let set = NsSet::from(open(&a));
    let executor = Executor::builder()
        .max_workers(1)
        .idle_timeout(Duration::from_secs(600))
        .build()
        .unwrap();
    let worker = executor.run(&set, tid).unwrap();
    let own = sched_attr_of(worker);
    assert_eq!(policy_and_nice(&own), (SCHED_BATCH, nice), "inherited");
    assert_eq!(own[3], 1_000_000, "inherited");
    // Calls 2 ms apart. On a loaded machine a worker may still be checking
    // itself after 2 ms, and then a call is not sporadic: call until one
    // is, as the worker sees it.
    let mut during = own;
    let mut sporadic_call = || {
        std::thread::sleep(Duration::from_millis(2));
        during = executor.run(&set, || sched_attr_of(0)).unwrap();
        assert_eq!(policy_and_nice(&during), (SCHED_BATCH, nice));
        during[3] == SHORT
    };
    if nice < 0 {
        for _ in 0..5 {
            sporadic_call();
        }
        assert_eq!(during, own, "a worker with a negative nice keeps its slice");
        return;
    }
    eventually("a body that runs with the short slice", sporadic_call);
    eventually("the worker's own scheduling again", || {
        for _ in 0..20 {
            executor.run(&set, || ()).unwrap();
        }
        sched_attr_of(worker) == own
    });
    assert_eq!(executor.stats().retired, nsguard::Retired::default());
}

/// Where `sched_setattr` is refused (a seccomp filter, as some container
/// runtimes install), a worker waiting for a sporadic caller keeps its
/// own slice, and serves every call inside, without being retired. The
/// scenario process is started with the filter.
#[test]
fn a_refused_short_slice_leaves_the_worker_as_it_was() {
    use std::os::unix::process::CommandExt;
    const NAME: &str = "a_refused_short_slice_leaves_the_worker_as_it_was";
    let refusal = nsguard_suite::Refusal::new(libc::SYS_sched_setattr, &[], libc::EPERM);
    if !nsguard_suite::in_child_process_spawned(NAME, Duration::from_secs(120), |cmd| {
        // SAFETY: `install` makes two prctl(2) calls on a filter built
        // before the fork, and nothing else: async-signal-safe.
        unsafe { cmd.pre_exec(move || refusal.install()) };
        cmd.spawn().unwrap()
    }) {
        return;
    }
    let a = TempNs::new(NsKind::Net);
    let set = NsSet::from(open(&a));
    let executor = Executor::builder().max_workers(1).build().unwrap();
    let worker = executor.run(&set, tid).unwrap();
    let own = sched_attr_of(worker);
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(
            executor.run(&set, || thread_ino(NsKind::Net)).unwrap(),
            a.ino()
        );
    }
    assert_eq!(executor.run(&set, || sched_attr_of(0)).unwrap(), own);
    assert_eq!(executor.run(&set, tid).unwrap(), worker);
    let stats = executor.stats();
    assert_eq!(stats.retired, nsguard::Retired::default());
    assert!(stats.woken > 0, "{stats:?}");
}

/// A worker waiting for a caller that calls now and then asks for a short
/// time slice, so that the caller's wake-up hands it the CPU at once; the
/// threads and processes its bodies start get the kernel's default slice,
/// not the worker's; and once calls come close together the worker has its
/// own slice again, and is not retired for the change. On a kernel without
/// slices of a thread's own (before 6.12) the worker's stays as it was.
#[test]
fn a_worker_waits_for_a_sporadic_caller_with_a_short_slice_its_children_do_not_get() {
    if !nsguard_suite::in_child_process(
        "a_worker_waits_for_a_sporadic_caller_with_a_short_slice_its_children_do_not_get",
        Duration::from_secs(120),
    ) {
        return;
    }
    let kernel_has_slices = kernel_has_slices();
    let a = TempNs::new(NsKind::Net);
    let set = NsSet::from(open(&a));
    // One worker, which does not exit while the test waits for it.
    let executor = Executor::builder()
        .max_workers(1)
        .idle_timeout(Duration::from_secs(600))
        .build()
        .unwrap();
    let worker = executor.run(&set, tid).unwrap();
    let own = slice_of(worker);
    assert_ne!(own, SHORT, "the worker starts with its own slice");
    let sporadic_calls = || {
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(2));
            assert_eq!(executor.run(&set, tid).unwrap(), worker);
        }
    };
    sporadic_calls();
    if !kernel_has_slices {
        assert_eq!(slice_of(worker), own);
        eprintln!("this kernel keeps no slice of a thread's own: the rest is not tested");
        return;
    }
    eventually("the worker's short slice", || slice_of(worker) == SHORT);
    // A body started while the worker has it.
    std::thread::sleep(Duration::from_millis(2));
    let (body_slice, thread_slice, mut process) = executor
        .run(&set, || {
            let thread_slice = std::thread::spawn(|| slice_of(0)).join().unwrap();
            let process = std::process::Command::new("sleep")
                .arg("infinity")
                .spawn()
                .expect("spawn sleep");
            (slice_of(0), thread_slice, ChildGuard::new(process))
        })
        .unwrap();
    assert_eq!(body_slice, SHORT, "the body ran with the short slice");
    assert_eq!(thread_slice, own, "a thread started in the body");
    assert_eq!(
        slice_of(process.pid() as i32),
        own,
        "a process started in the body"
    );
    process.kill();
    // Calls close together: the worker must see 8 in a row come within
    // 100 µs of its going idle, which a loaded machine can delay; so in
    // bursts until it has.
    eventually("the worker's own slice again", || {
        for _ in 0..20 {
            executor.run(&set, || ()).unwrap();
        }
        slice_of(worker) == own
    });
    sporadic_calls();
    assert_eq!(executor.stats().retired, nsguard::Retired::default());
}
