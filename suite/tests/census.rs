//! Threads born inside: a thread a body starts inherits its worker's
//! namespaces and stays there. nsguard does not move it (it may be a
//! server meant to live inside), but never lets it go unseen: the executor
//! reports it, `stray_threads` lists it, and `netns::delete` names it.
//! Each scenario runs in a child process, so that the census sees only the
//! scenario's threads.

use std::sync::mpsc;
use std::time::Duration;

use nsguard::{netns, CommandExt, Error, NsKind, NsSet, ThreadOwner};
use nsguard_suite::{
    held_at_exit, in_child_process, in_child_process_spawned, net_set, thread_ino, tid,
    wait_until_gone, TempNs,
};

const LIMIT: Duration = Duration::from_secs(60);

/// A thread that waits until the returned sender is dropped or sends, then
/// exits; started by the calling thread (so inside its namespaces).
fn parked_thread(name: &str) -> (mpsc::Sender<()>, std::thread::JoinHandle<()>, i32) {
    let (release, wait) = mpsc::channel::<()>();
    let (tid_tx, tid_rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            tid_tx.send(tid()).unwrap();
            let _ = wait.recv();
        })
        .unwrap();
    (release, handle, tid_rx.recv().unwrap())
}

/// [`parked_thread`], given id `id` (`ns_last_pid`; as pid 1 of a pid
/// namespace of its own). A thread just gone may still hold its id for a
/// moment after its `/proc` entry is gone (since Linux 6.15 the kernel
/// frees the id after it unhashes the thread): a thread given another id
/// is let go, and the next one asked for `id` again.
fn parked_thread_given_id(
    id: i32,
    name: &str,
) -> (mpsc::Sender<()>, std::thread::JoinHandle<()>, i32) {
    // Well inside the watchdog's limit, so that this failure is the one
    // reported.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (id - 1).to_string()).unwrap();
        let thread = parked_thread(name);
        if thread.2 == id {
            return thread;
        }
        let (release, handle, other) = thread;
        drop(release);
        handle.join().unwrap();
        wait_until_gone(other);
        assert!(
            std::time::Instant::now() < deadline,
            "no thread was given id {id}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs test `name` again in a child process under a watchdog, as pid 1 of
/// a pid namespace of its own with its own `/proc`, where the scenario
/// chooses the next thread's id (`ns_last_pid`); true there.
fn as_pid_1_with_its_own_proc(name: &str) -> bool {
    if !in_child_process_spawned(name, LIMIT, |cmd| {
        cmd.spawn_in_new(&NsSet::new(), NsKind::Pid | NsKind::Mnt)
            .unwrap()
    }) {
        return false;
    }
    nsguard_suite::mount_own_proc();
    true
}

/// A body that starts a thread and returns: the executor counts it, and
/// `stray_threads` lists it with the kinds that differ, not as nsguard's.
/// Once it exits, it is gone from the list.
#[test]
fn a_thread_a_body_leaves_inside_is_reported_and_listed() {
    if !in_child_process(
        "a_thread_a_body_leaves_inside_is_reported_and_listed",
        LIMIT,
    ) {
        return;
    }
    let a = TempNs::new(NsKind::Net);
    let set = net_set(&a);
    let executor = nsguard_suite::capped_executor(1);
    executor.run(&set, || ()).unwrap();
    assert!(nsguard::stray_threads()
        .unwrap()
        .iter()
        .all(|t| t.owner == ThreadOwner::Worker));
    let (release, handle, leaked) = executor.run(&set, || parked_thread("left-inside")).unwrap();
    assert_eq!(nsguard_suite::task_ino(leaked, NsKind::Net), a.ino());
    // Another call: the worker's check after the first one already counted it.
    executor.run(&set, || ()).unwrap();
    assert_eq!(
        executor.stats().threads_left_inside,
        1,
        "{:?}",
        executor.stats()
    );
    let strays = nsguard::stray_threads().unwrap();
    let found = strays
        .iter()
        .find(|t| t.tid == leaked)
        .unwrap_or_else(|| panic!("not listed: {strays:?}"));
    assert_eq!(found.name, "left-inside");
    assert_eq!(found.kinds, NsKind::Net.into());
    assert_eq!(found.owner, ThreadOwner::None);
    // The worker kept warm inside is listed as nsguard's.
    assert!(
        strays.iter().any(|t| t.owner == ThreadOwner::Worker),
        "{strays:?}"
    );
    drop(release);
    handle.join().unwrap();
    assert!(nsguard::stray_threads()
        .unwrap()
        .iter()
        .all(|t| t.tid != leaked));
}

/// A thread inside a guard is listed as the guard's while the guard lives;
/// a thread started while it lived stays inside and is listed as nobody's.
#[test]
fn guards_and_threads_started_under_them_are_listed() {
    if !in_child_process("guards_and_threads_started_under_them_are_listed", LIMIT) {
        return;
    }
    let a = TempNs::new(NsKind::Net);
    let set = net_set(&a);
    let me = tid();
    let guard = set.enter().unwrap();
    let (release, handle, born) = parked_thread("born-under-guard");
    let strays = nsguard::stray_threads().unwrap();
    let owner = |tid| strays.iter().find(|t| t.tid == tid).map(|t| t.owner);
    assert_eq!(owner(me), Some(ThreadOwner::Guard), "{strays:?}");
    assert_eq!(owner(born), Some(ThreadOwner::None), "{strays:?}");
    drop(guard);
    let strays = nsguard::stray_threads().unwrap();
    assert!(strays.iter().all(|t| t.tid != me), "{strays:?}");
    assert!(strays.iter().any(|t| t.tid == born), "{strays:?}");
    assert_eq!(
        thread_ino(NsKind::Net),
        nsguard_suite::main_thread_ino(NsKind::Net)
    );
    drop(release);
    handle.join().unwrap();
}

/// `netns::delete` of a namespace that a thread a body started still keeps
/// alive says so, naming the thread; once the thread is gone, deleting
/// works as before.
#[test]
fn netns_delete_names_a_thread_that_keeps_the_namespace_alive() {
    if !in_child_process(
        "netns_delete_names_a_thread_that_keeps_the_namespace_alive",
        LIMIT,
    ) {
        return;
    }
    let name = nsguard_suite::unique_name("nsguard-test");
    let named = netns::Scoped::add(&name).unwrap();
    let (release, handle, leaked) = named
        .set()
        .unwrap()
        .run(|| parked_thread("keeps-it-alive"))
        .unwrap();
    match named.delete() {
        Err(err @ Error::ThreadsInside { .. }) => {
            let msg = err.to_string();
            assert!(msg.contains(&format!("{leaked} (keeps-it-alive)")), "{msg}");
        }
        other => panic!("expected ThreadsInside, got {other:?}"),
    }
    // The name is gone all the same.
    assert!(!std::path::Path::new(netns::RUN_DIR).join(&name).exists());
    drop(release);
    handle.join().unwrap();

    // Without a thread left inside: Ok.
    let named = netns::Scoped::add(&nsguard_suite::unique_name("nsguard-test")).unwrap();
    named.set().unwrap().run(|| ()).unwrap();
    named.delete().unwrap();
}

/// A worker retired inside its namespace is nsguard's until its thread is
/// gone: on its way out it is still inside, and still runs user code (the
/// destructors of its thread locals). Neither `stray_threads`, nor the
/// executor's count of threads left inside, nor `netns::delete` takes it
/// for a thread a body left there.
#[test]
fn a_worker_retired_inside_is_nsguards_until_its_thread_is_gone() {
    if !in_child_process(
        "a_worker_retired_inside_is_nsguards_until_its_thread_is_gone",
        LIMIT,
    ) {
        return;
    }
    let named = netns::Scoped::add(&nsguard_suite::unique_name("nsguard-test")).unwrap();
    let set = named.set().unwrap();
    let executor = nsguard_suite::capped_executor(1);
    let (worker, held) = a_worker_retired_and_held(&executor, &set);
    assert_eq!(executor.stats().retired.thread_state_changed, 1);
    let home = nsguard_suite::main_thread_ino(NsKind::Net);
    assert_ne!(nsguard_suite::task_ino(worker, NsKind::Net), home);

    assert_eq!(listed(worker).owner, ThreadOwner::Worker);

    // A thread a body leaves inside: counted, and the exiting worker not.
    let (release, handle, leaked) = executor.run(&set, || parked_thread("left-inside")).unwrap();
    executor.run(&set, || ()).unwrap();
    assert_eq!(
        executor.stats().threads_left_inside,
        1,
        "{:?}",
        executor.stats()
    );
    match named.delete() {
        Err(err @ Error::ThreadsInside { .. }) => {
            let msg = err.to_string();
            assert!(msg.contains(&format!("{leaked} (left-inside)")), "{msg}");
            assert!(!msg.contains(&format!("{worker} (")), "{msg}");
        }
        other => panic!("expected ThreadsInside, got {other:?}"),
    }

    drop(held);
    wait_until_gone(worker);
    drop(release);
    handle.join().unwrap();
}

/// A thread that is given the id of a retired worker gone meanwhile is
/// not taken for it: nsguard tells threads apart by id and start time. The
/// scenario runs as pid 1 of a pid namespace of its own, with its own
/// `/proc`, where it chooses the next thread's id (`ns_last_pid`).
#[test]
fn a_later_thread_with_a_gone_workers_id_is_not_taken_for_it() {
    if !as_pid_1_with_its_own_proc("a_later_thread_with_a_gone_workers_id_is_not_taken_for_it") {
        return;
    }
    let a = TempNs::new(NsKind::Net);
    let set = net_set(&a);
    let executor = nsguard_suite::capped_executor(1);
    let (worker, held) = a_worker_retired_and_held(&executor, &set);
    drop(held);
    wait_until_gone(worker);
    // Start times count in clock ticks (10 ms): the next thread starts in
    // a later one.
    std::thread::sleep(Duration::from_millis(30));
    let guard = set.enter().unwrap();
    let (release, handle, later) = parked_thread_given_id(worker, "same-id");
    drop(guard);
    assert_eq!(listed(later).owner, ThreadOwner::None);
    drop(release);
    handle.join().unwrap();
}

/// A thread a body leaves inside is reported even when it was given the
/// id of a thread that the worker's census saw before, at home, and that
/// is gone: the census knows a thread by its `/proc` entry, not by its id
/// alone. The scenario runs as pid 1 of a pid namespace of its own, with
/// its own `/proc`, where it chooses the next thread's id (`ns_last_pid`).
#[test]
fn a_thread_left_inside_with_the_id_of_one_seen_before_is_reported() {
    if !as_pid_1_with_its_own_proc(
        "a_thread_left_inside_with_the_id_of_one_seen_before_is_reported",
    ) {
        return;
    }
    let a = TempNs::new(NsKind::Net);
    let set = net_set(&a);
    let executor = nsguard_suite::capped_executor(1);
    executor.run(&set, || ()).unwrap();
    // A thread at home: the thread count grew, so the worker's check after
    // the next call reads it. Then it is gone.
    let (release, handle, seen) = parked_thread("at-home");
    executor.run(&set, || ()).unwrap();
    executor.run(&set, || ()).unwrap(); // waits for that check
    drop(release);
    handle.join().unwrap();
    wait_until_gone(seen);
    // A body leaves two threads inside, the first with that id: the count
    // grew by one since the worker last looked. A thread the body lets go
    // because it was given another id is gone before the body returns.
    let left = executor
        .run(&set, || {
            [
                parked_thread_given_id(seen, "inside-1"),
                parked_thread("inside-2"),
            ]
        })
        .unwrap();
    executor.run(&set, || ()).unwrap(); // waits for the check
    assert_eq!(
        executor.stats().threads_left_inside,
        2,
        "{:?}",
        executor.stats()
    );
    for (release, handle, _) in left {
        drop(release);
        handle.join().unwrap();
    }
}

/// A thread that exits inside a guard it leaked is the guard's until it is
/// gone (the destructors of its thread locals run inside).
#[test]
fn a_thread_that_exits_inside_a_leaked_guard_is_the_guards_until_it_is_gone() {
    if !in_child_process(
        "a_thread_that_exits_inside_a_leaked_guard_is_the_guards_until_it_is_gone",
        LIMIT,
    ) {
        return;
    }
    let a = TempNs::new(NsKind::Net);
    let set = net_set(&a);
    let (hold, held) = held_at_exit();
    let leaker = std::thread::spawn(move || {
        // Installed first, so dropped last: after the thread's guard entry.
        hold.install();
        std::mem::forget(set.enter().unwrap());
        tid()
    });
    let exiting = held.wait();
    assert_eq!(nsguard_suite::task_ino(exiting, NsKind::Net), a.ino());
    assert_eq!(listed(exiting).owner, ThreadOwner::Guard);
    drop(held);
    assert_eq!(leaker.join().unwrap(), exiting);
}

/// A thread that `join` has returned for is not listed, even while the
/// kernel is still taking it down: `join` returns once the kernel has
/// cleared the thread's id, and a thread with an fd table of its own then
/// still closes its fds, its entry and namespace links readable all along.
#[test]
fn a_joined_thread_is_not_listed_while_the_kernel_takes_it_down() {
    if !in_child_process(
        "a_joined_thread_is_not_listed_while_the_kernel_takes_it_down",
        LIMIT,
    ) {
        return;
    }
    // As many fds as the limit allows, up to 50 000: closing them takes
    // the kernel a while.
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    // Root raises the hard limit, unless it lacks `CAP_SYS_RESOURCE`.
    let wanted = 50_200;
    let hard = match setrlimit(Resource::RLIMIT_NOFILE, wanted, wanted) {
        Ok(()) => wanted,
        Err(_) => getrlimit(Resource::RLIMIT_NOFILE).unwrap().1,
    };
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    let fds = hard.saturating_sub(200).min(50_000);
    assert!(fds >= 10_000, "RLIMIT_NOFILE's hard limit is {hard}");
    let a = TempNs::new(NsKind::Net);
    let ns = nsguard_suite::open(&a);
    for _ in 0..20 {
        let exited = std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_FILES).unwrap();
                let fd = std::os::fd::AsRawFd::as_raw_fd(&ns);
                for _ in 0..fds {
                    // SAFETY: dup(2) takes an fd; the copies die with the thread's table.
                    assert!(unsafe { libc::dup(fd) } >= 0);
                }
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                tid()
            })
            .join()
            .unwrap()
        });
        let strays = nsguard::stray_threads().unwrap();
        assert!(
            strays.iter().all(|t| t.tid != exited),
            "joined, and listed: {strays:?}"
        );
    }
}

/// A worker of `executor` retired inside `set` and held on its way out: a
/// body holds its thread as it exits (see `held_at_exit`) and changes its
/// timer slack, for which the check after the call retires it. Its id, once
/// it is held, and what lets it go.
fn a_worker_retired_and_held(
    executor: &nsguard::Executor,
    set: &NsSet,
) -> (i32, nsguard_suite::ExitHeld) {
    let (hold, held) = held_at_exit();
    let worker = executor
        .run(set, move || {
            hold.install();
            set_timer_slack();
            tid()
        })
        .unwrap();
    assert_eq!(held.wait(), worker);
    (worker, held)
}

/// How `stray_threads` lists thread `tid`.
fn listed(tid: i32) -> nsguard::StrayThread {
    let strays = nsguard::stray_threads().unwrap();
    strays
        .iter()
        .find(|t| t.tid == tid)
        .cloned()
        .unwrap_or_else(|| panic!("thread {tid} is not listed: {strays:?}"))
}

/// Sets the calling thread's timer slack: per-thread state the check after
/// a call reads.
fn set_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes integers only.
    let rc = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 123_456, 0, 0, 0) };
    assert_eq!(
        rc,
        0,
        "PR_SET_TIMERSLACK: {}",
        std::io::Error::last_os_error()
    );
}
