//! Forked children and pid namespaces: a child never waits for a lock a
//! thread of its parent held, nor reads its parent's per-thread caches,
//! even when it has the same thread id (the first thread of a new pid
//! namespace is 1, as its parent's may be); and a process that is pid 1 of
//! a pid namespace whose `/proc` shows another reads its own namespaces.
//! Every scenario runs in a child process under a watchdog.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nsguard::{CommandExt, Error, Executor, Namespace, NsKind, NsKinds, NsSet, WorkerCause};
use nsguard_suite::{in_child_process, in_child_process_spawned, net_set, thread_ino, TempNs};

const LIMIT: Duration = Duration::from_secs(120);

/// Forks, runs `child` in the child under a 10 s alarm, and returns how it
/// ended: `Ok(code)` for an exit, `Err(signal)` if it was killed.
fn fork_and_wait(child: impl FnOnce() -> i32) -> Result<i32, i32> {
    // SAFETY: the child runs `child` and ends with _exit, never returning
    // into the test harness; the parent only waits for it.
    wait_for_child_of(|| unsafe { libc::fork() }, child)
}

/// As [`fork_and_wait`], through a `clone(2)` system call of the C
/// library's `syscall`, which runs none of its fork handlers (as container
/// runtimes do, with namespace flags).
fn raw_clone_and_wait(child: impl FnOnce() -> i32) -> Result<i32, i32> {
    // SAFETY: as fork(2): no new stack (the child's is a copy), no flags
    // but the signal sent to the parent when the child ends.
    wait_for_child_of(
        || unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0) } as libc::pid_t,
        child,
    )
}

/// Makes a child with `fork` (0 in the child, its pid in the parent), runs
/// `child` in it under a 10 s alarm, and returns how it ended.
fn wait_for_child_of(
    fork: impl FnOnce() -> libc::pid_t,
    child: impl FnOnce() -> i32,
) -> Result<i32, i32> {
    let pid = fork();
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: alarm(2) takes an integer; its SIGALRM kills a hung child.
        unsafe { libc::alarm(10) };
        let code = child();
        // SAFETY: _exit(2) ends the child without running the harness.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waitpid(2) on our own child, into a valid int.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(rc, pid);
    if libc::WIFEXITED(status) {
        Ok(libc::WEXITSTATUS(status))
    } else {
        Err(libc::WTERMSIG(status))
    }
}

/// Two threads open and drop handles, run calls on a warm worker, build
/// and drop executors and enter guards while the main thread forks 300
/// times; each child uses nsguard at once (starting threads of its own).
/// No child ever blocks on a lock held at the fork.
#[test]
fn forked_children_never_wait_for_nsguards_locks() {
    if !in_child_process("forked_children_never_wait_for_nsguards_locks", LIMIT) {
        return;
    }
    let a = TempNs::new(NsKind::Net);
    let set = net_set(&a);
    let stop = AtomicBool::new(false);
    let results: Vec<Result<i32, i32>> = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                drop(Namespace::current(NsKind::Net).unwrap());
                drop(nsguard_suite::open(&a));
                drop(set.enter().unwrap());
                let _ = NsKinds::supported();
            }
        });
        s.spawn(|| {
            // nsguard's locks, but no thread started in this process while
            // it forks: a child could otherwise inherit a lock of the C
            // library's thread creation, which nsguard cannot make safe.
            set.run(|| ()).unwrap();
            while !stop.load(Ordering::Relaxed) {
                set.run(|| ()).unwrap();
                drop(Executor::builder().max_workers(1).build().unwrap());
            }
        });
        let results = (0..300)
            .map(|_| {
                fork_and_wait(|| {
                    let set = net_set(&a);
                    let ok = Namespace::current(NsKind::Net).is_ok()
                        && set.run(|| thread_ino(NsKind::Net)).ok() == Some(a.ino())
                        && Executor::builder().build().is_ok()
                        && set.enter().is_ok();
                    i32::from(!ok)
                })
            })
            .collect();
        stop.store(true, Ordering::Relaxed);
        results
    });
    let failed: Vec<_> = results.iter().filter(|r| **r != Ok(0)).collect();
    assert!(
        failed.is_empty(),
        "{} of 300 children failed or hung (SIGALRM = {}): {failed:?}",
        failed.len(),
        libc::SIGALRM
    );
}

/// In a child whose thread is in B (and whose parent's thread is in B):
/// moves the thread to A with a raw `setns`, enters `set` (B) and drops the
/// guard, and says whether it was in B inside and is back in A.
fn guard_comes_back_to_a(set: &NsSet, a_ns: &Namespace, a: &TempNs, b: &TempNs) -> bool {
    let moved = nix::sched::setns(a_ns, nix::sched::CloneFlags::CLONE_NEWNET).is_ok();
    let entered = set.enter().map(|guard| {
        let inside = thread_ino(NsKind::Net);
        drop(guard);
        inside
    });
    let back = thread_ino(NsKind::Net);
    let ok = moved && entered.as_ref().ok() == Some(&b.ino()) && back == a.ino();
    if !ok {
        eprintln!(
            "child: moved {moved}, inside {entered:?}, back in {back} (A is {}, B is {})",
            a.ino(),
            b.ino()
        );
    }
    ok
}

/// A child of a `clone(2)` system call, which runs none of the C
/// library's fork handlers, is told apart from its parent all the same,
/// and so is its own child. Its guard reads where its own thread is, not
/// through the links its parent's thread opened (the parent's thread is in
/// B, the child moved to A, and the guard must come back to A). Its calls
/// run on workers of its own, and its parent's executor refuses it (the
/// parent's workers do not exist in it: a call handed to one would wait
/// forever, and the alarm would kill the child).
#[test]
fn a_child_of_a_raw_clone_is_told_apart_from_its_parent() {
    if !in_child_process(
        "a_child_of_a_raw_clone_is_told_apart_from_its_parent",
        LIMIT,
    ) {
        return;
    }
    let (a, b) = (TempNs::new(NsKind::Net), TempNs::new(NsKind::Net));
    let set = net_set(&b);
    let a_ns = nsguard_suite::open(&a);
    assert_eq!(set.run(|| thread_ino(NsKind::Net)).unwrap(), b.ino());
    let private = Executor::builder().build().unwrap();
    assert_eq!(
        private.run(&set, || thread_ino(NsKind::Net)).unwrap(),
        b.ino()
    );
    // This thread's links are open now, and say B.
    let outer = set.enter().unwrap();
    // The workers' checks are done: no thread holds a lock of the C library
    // at the clone (its handlers, which would take care of that, are not
    // run).
    std::thread::sleep(Duration::from_millis(100));
    let guarded = raw_clone_and_wait(|| i32::from(!guard_comes_back_to_a(&set, &a_ns, &a, &b)));
    drop(outer);
    // A child of a thread inside no guard (nsguard starts no thread from
    // one that is), and its own child in turn, once it has workers of its
    // own.
    let run_in_b = |who: &str| {
        let ran = set.run(|| thread_ino(NsKind::Net));
        let ok = ran.as_ref().ok() == Some(&b.ino());
        if !ok {
            eprintln!("{who}: ran in {ran:?} (B is {})", b.ino());
        }
        ok
    };
    let ran = raw_clone_and_wait(|| {
        // The parent's own executor is refused, not waited on.
        let refused = private.run(&set, || ());
        if !matches!(
            &refused,
            Err(Error::Worker {
                cause: WorkerCause::Forked,
                ..
            })
        ) {
            eprintln!("child: the parent's executor gave {refused:?}");
            return 1;
        }
        let ok = run_in_b("child") && {
            // Its worker's check done, as above.
            std::thread::sleep(Duration::from_millis(100));
            raw_clone_and_wait(|| i32::from(!run_in_b("grandchild"))) == Ok(0)
        };
        i32::from(!ok)
    });
    assert_eq!(
        (guarded, ran),
        (Ok(0), Ok(0)),
        "a child failed, or was killed (SIGALRM = {})",
        libc::SIGALRM
    );
}

/// Where the kernel refuses to wipe a page in children (before Linux 4.14,
/// here a seccomp filter that fails `madvise(MADV_WIPEONFORK)` with
/// `EINVAL`, as such a kernel does), a child of a raw `clone(2)` keeps its
/// parent's fork generation; a guard in it still reads where its own
/// thread is (the link fds are then keyed by thread id as well), not
/// through the links its parent's thread opened.
#[test]
fn without_a_wiped_page_a_raw_clones_guard_still_reads_its_own_thread() {
    if !in_child_process(
        "without_a_wiped_page_a_raw_clones_guard_still_reads_its_own_thread",
        LIMIT,
    ) {
        return;
    }
    // Before anything of nsguard's: the page is armed at its first use.
    nsguard_suite::fail_syscall_on_this_thread(
        libc::SYS_madvise,
        &[(2, libc::MADV_WIPEONFORK as u32)],
        libc::EINVAL,
    );
    let (a, b) = (TempNs::new(NsKind::Net), TempNs::new(NsKind::Net));
    let set = net_set(&b);
    let a_ns = nsguard_suite::open(&a);
    // This thread's links are open now, and say B.
    let outer = set.enter().unwrap();
    let guarded = raw_clone_and_wait(|| i32::from(!guard_comes_back_to_a(&set, &a_ns, &a, &b)));
    drop(outer);
    assert_eq!(guarded, Ok(0), "the child failed, or was killed");
}

/// As pid 1 of a new pid namespace whose `/proc` is its parent's (no
/// `--mount-proc`), `/proc/1` is another process, here the launcher, in
/// another network namespace: nsguard reads its own namespaces through
/// `/proc/self`, and calls run where they ask, home included.
///
/// The launcher is pid 1 of a pid namespace with a `/proc` of its own (so
/// that its `/proc/1` is itself, readable); it starts the scenario as pid 1
/// of a nested pid namespace and a network namespace of its own, without a
/// new `/proc`.
#[test]
fn pid_1_of_a_pid_namespace_without_its_own_proc_runs_where_it_asks() {
    const NAME: &str = "pid_1_of_a_pid_namespace_without_its_own_proc_runs_where_it_asks";
    if !in_child_process_spawned(NAME, LIMIT, |cmd| {
        cmd.spawn_in_new(&NsSet::new(), NsKind::Pid | NsKind::Mnt)
            .unwrap()
    }) {
        return;
    }
    if std::env::var_os("NSGUARD_TEST_ROLE").is_none() {
        // The launcher: a /proc of its own pid namespace, then the scenario.
        nsguard_suite::mount_own_proc();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
            .env("NSGUARD_TEST_ROLE", "scenario")
            .spawn_in_new(&NsSet::new(), NsKind::Pid | NsKind::Net)
            .unwrap()
            .wait_with_output()
            .unwrap();
        assert!(out.status.success(), "the scenario failed: {}", out.status);
        return;
    }
    assert_eq!(std::process::id(), 1, "the scenario runs as pid 1");
    let launcher_net = std::fs::read_link("/proc/1/ns/net").unwrap();
    assert_ne!(
        launcher_net,
        std::fs::read_link("/proc/self/ns/net").unwrap(),
        "/proc/1 is the launcher, in another network namespace"
    );
    let a = TempNs::new(NsKind::Net);
    let set = net_set(&a);
    assert_eq!(set.run(|| thread_ino(NsKind::Net)).unwrap(), a.ino());
    // Home is this process's own namespaces, not /proc/1's.
    let own = thread_ino(NsKind::Net);
    assert_eq!(NsSet::new().run(|| thread_ino(NsKind::Net)).unwrap(), own);
    let pid_here = thread_ino(NsKind::Pid);
    assert_eq!(
        NsSet::new().run(|| thread_ino(NsKind::Pid)).unwrap(),
        pid_here
    );
}

/// `unshare(CLONE_NEWPID)` on a fresh thread, then fork from it: the child
/// is pid 1 (and tid 1) of a new pid namespace. What `child` uses must be
/// moved into it: in the child, the stacks of the parent's other threads
/// are reused for threads the child starts.
fn fork_as_pid_1(child: impl FnOnce() -> i32 + Send) -> Result<i32, i32> {
    nsguard_suite::on_fresh_thread(|| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWPID).unwrap();
        fork_and_wait(child)
    })
}

/// `unshare(CLONE_NEWPID)` on the calling (single) thread, then fork: the
/// child is pid 1 (and tid 1) of a pid namespace nested in the caller's.
fn fork_again_as_pid_1(child: impl FnOnce() -> i32) -> i32 {
    if nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWPID).is_err() {
        return 90;
    }
    match fork_and_wait(child) {
        Ok(code) => code,
        Err(signal) => 100 + signal,
    }
}

/// A process that is tid 1 forks a child that is tid 1 too (of a nested
/// pid namespace). The child's per-thread caches (its namespace links) and
/// the process-wide cache of its user namespace are its own: it sees a
/// network namespace it made, a guard really switches it, and after it
/// entered a user namespace of its own, its parent's is one it would have
/// to switch to.
#[test]
fn a_child_with_its_parents_thread_id_reads_its_own_namespaces() {
    if !in_child_process(
        "a_child_with_its_parents_thread_id_reads_its_own_namespaces",
        LIMIT,
    ) {
        return;
    }
    let host_net = Namespace::current(NsKind::Net).unwrap();
    let ino = |kind: &str| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/proc/thread-self/ns/{kind}"))
            .unwrap()
            .ino()
    };
    // Moved into the child: the stacks of threads other than the forking
    // one are reused for the child's own new threads.
    let outcome = fork_as_pid_1(move || {
        // tid 1: fill the caches (the links, the user namespace).
        if nix::unistd::gettid().as_raw() != 1 {
            return 2;
        }
        let here = Namespace::current(NsKind::Net).unwrap();
        drop(NsSet::from(here).enter().unwrap());
        let user = Namespace::current(NsKind::User).unwrap();
        if NsSet::from(user.try_clone().unwrap()).run(|| ()).is_err() {
            return 3;
        }
        // A grandchild (forked from a fresh thread, before this one leaves
        // its pid namespace for children), in a user namespace of its own:
        // its parent's user namespace is not its own any more.
        let code = match fork_as_pid_1(move || {
            if nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER).is_err() {
                return 10;
            }
            match NsSet::from(user).run(|| ()) {
                Err(Error::UnsupportedOnThread {
                    kind: NsKind::User, ..
                }) => 0,
                Ok(()) => 11, // took its parent's user namespace for its own
                Err(_) => 12,
            }
        }) {
            Ok(code) => code,
            Err(signal) => 100 + signal,
        };
        if code != 0 {
            return code;
        }
        // A grandchild, tid 1 as well, in a network namespace of its own.
        fork_again_as_pid_1(|| {
            if nix::unistd::gettid().as_raw() != 1 {
                return 4;
            }
            if nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
                return 5;
            }
            let made = ino("net");
            if Namespace::current(NsKind::Net).unwrap().id().ino() != made {
                return 6; // read its parent's link
            }
            let guard = NsSet::from(host_net.try_clone().unwrap()).enter().unwrap();
            if ino("net") != host_net.id().ino() {
                return 7; // the guard believed it was there already
            }
            drop(guard);
            i32::from(ino("net") != made) * 8
        })
    });
    assert_eq!(outcome, Ok(0), "see the codes in the test");
}

/// A `/proc` that does not show this process (mounted by a process of a
/// pid namespace below this one, as after entering only the mount
/// namespace of a container): nsguard says so with `Error::ForeignProc`
/// instead of reading other processes. In a child process with a mount
/// namespace of its own, where a process of a new pid namespace mounts a
/// `/proc` and stays, so that `/proc/1` exists but is not this process.
#[test]
fn a_proc_that_does_not_show_this_process_is_named() {
    const NAME: &str = "a_proc_that_does_not_show_this_process_is_named";
    if !in_child_process_spawned(NAME, LIMIT, |cmd| {
        cmd.spawn_in_new(&NsSet::new(), NsKind::Mnt).unwrap()
    }) {
        return;
    }
    let _mounter = nsguard_suite::ChildGuard::new(
        std::process::Command::new("sh")
            .args(["-c", "mount -t proc proc /proc && exec sleep 1000"])
            .spawn_in_new(&NsSet::new(), NsKind::Pid)
            .unwrap(),
    );
    // The new /proc shows the mounter's pid namespace: its pid 1 is the
    // mounter, and this process is not there.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string("/proc/1/comm").ok().as_deref() != Some("sleep\n") {
        assert!(
            std::time::Instant::now() < deadline,
            "the /proc was never mounted"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(std::fs::read_link("/proc/self").is_err());
    match Namespace::current(NsKind::Net) {
        Err(err @ Error::ForeignProc { .. }) => {
            assert!(err.to_string().contains("another pid namespace"), "{err}");
        }
        other => panic!("expected ForeignProc, got {other:?}"),
    }
    match NsSet::new().run(|| ()) {
        Err(Error::ForeignProc { .. }) => {}
        other => panic!("expected ForeignProc, got {other:?}"),
    }
}
