//! Per-thread state a body can change on its worker besides namespaces and
//! credentials: the fd table, the execution domain, the signal mask,
//! scheduling, the timer slack, CPU affinity, and (on a worker with a root
//! of its own) the mount its root is seen through. Whatever a body
//! changes, the next body on the executor sees what it would have seen on
//! a fresh worker: the changed worker is retired.

use std::net::UdpSocket;

use nsguard::{Executor, Namespace, NsKind, NsSet};
use nsguard_suite::{net_set, status_line, tid, TempNs};

/// Runs `observe` on a one-worker executor before and after a body that
/// runs `change`, and checks that the worker was retired and the second
/// observation equals the first.
fn change_retires_the_worker<T: PartialEq + std::fmt::Debug + Send>(
    what: &str,
    set: &NsSet,
    change: impl FnOnce() + Send,
    observe: impl Fn() -> T + Send + Sync,
) {
    let executor = nsguard_suite::capped_executor(1);
    let (first, before) = executor.run(set, || (tid(), observe())).unwrap();
    executor.run(set, change).unwrap();
    let (second, after) = executor.run(set, || (tid(), observe())).unwrap();
    assert_ne!(second, first, "{what}: the changed worker was reused");
    assert_eq!(after, before, "{what}: a later body saw the change");
    assert_eq!(
        executor.stats().retired.thread_state_changed,
        1,
        "{what}: {:?}",
        executor.stats()
    );
}

fn check(rc: libc::c_long, what: &str) {
    assert!(rc >= 0, "{what}: {}", std::io::Error::last_os_error());
}

/// The calling thread's execution domain.
fn persona() -> libc::c_int {
    // SAFETY: personality(2) with 0xffffffff only reads it.
    unsafe { libc::personality(0xffff_ffff) }
}

/// Sets the calling thread's execution domain.
fn set_persona(persona: libc::c_ulong) {
    // SAFETY: personality(2) takes an integer.
    let rc = unsafe { libc::personality(persona) };
    check(rc.into(), "personality");
}

/// The calling thread's timer slack.
fn timer_slack() -> libc::c_int {
    // SAFETY: PR_GET_TIMERSLACK takes no pointer.
    unsafe { libc::prctl(libc::PR_GET_TIMERSLACK, 0, 0, 0, 0) }
}

/// Sets the calling thread's timer slack.
fn set_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes integers only.
    let rc = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 123_456, 0, 0, 0) };
    check(rc.into(), "PR_SET_TIMERSLACK");
}

/// A body's `unshare(CLONE_FILES)` gives its worker an fd table of its
/// own: fds it hands back would name other files in the caller's table.
/// The worker is retired, and a socket the next body makes and returns is
/// the caller's socket.
/// In a child process: with the bug, dropping the socket closes another
/// file of the caller's table, which aborts the process.
#[test]
fn a_private_fd_table_retires_the_worker_and_handed_back_fds_stay_right() {
    if !nsguard_suite::in_child_process(
        "a_private_fd_table_retires_the_worker_and_handed_back_fds_stay_right",
        std::time::Duration::from_secs(60),
    ) {
        return;
    }
    let a = TempNs::new(NsKind::Net);
    let set = net_set(&a);
    let executor = nsguard_suite::capped_executor(1);
    let first = executor.run(&set, tid).unwrap();
    executor
        .run(&set, || {
            // SAFETY: unshare(2) takes flags only; CLONE_FILES affects the
            // calling thread.
            check(
                unsafe { libc::unshare(libc::CLONE_FILES) }.into(),
                "unshare(CLONE_FILES)",
            );
        })
        .unwrap();
    let (second, socket) = executor
        .run(&set, || (tid(), UdpSocket::bind("127.0.0.1:0").unwrap()))
        .unwrap();
    assert_ne!(second, first, "the worker with its own fd table was reused");
    // The fd is this process's socket, made inside.
    let addr = socket.local_addr().expect("a socket of the caller's table");
    assert!(addr.ip().is_loopback());
    assert_eq!(executor.stats().retired.thread_state_changed, 1);
}

/// What `personality(2)`, the signal mask, scheduling, the timer slack and
/// CPU affinity a body changes are never inherited by the next body.
#[test]
fn per_thread_execution_state_retires_the_worker() {
    let a = TempNs::new(NsKind::Net);
    let set = net_set(&a);

    change_retires_the_worker(
        "personality(PER_LINUX32)",
        &set,
        || set_persona(0x0008),
        persona,
    );
    change_retires_the_worker(
        "personality(READ_IMPLIES_EXEC)",
        &set,
        || set_persona(0x040_0000),
        persona,
    );

    change_retires_the_worker(
        "the signal mask",
        &set,
        || {
            use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};
            let mut block = SigSet::empty();
            block.add(Signal::SIGTERM);
            block.add(Signal::SIGCHLD);
            pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&block), None).unwrap();
        },
        || status_line("SigBlk"),
    );

    change_retires_the_worker(
        "nice 19",
        &set,
        || {
            // SAFETY: setpriority(2) takes integers; PRIO_PROCESS with 0
            // names the calling thread on Linux.
            check(
                unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) }.into(),
                "setpriority",
            );
        },
        // SAFETY: getpriority(2) takes integers.
        || unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) },
    );
    change_retires_the_worker(
        "SCHED_BATCH",
        &set,
        || {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: sched_setscheduler(2) reads a valid sched_param; pid 0
            // is the calling thread.
            check(
                unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) }.into(),
                "sched_setscheduler",
            );
        },
        // SAFETY: sched_getscheduler(2) takes an integer.
        || unsafe { libc::sched_getscheduler(0) },
    );
    change_retires_the_worker("the timer slack", &set, set_timer_slack, timer_slack);
    change_retires_the_worker(
        "the I/O priority",
        &set,
        || {
            // IOPRIO_CLASS_IDLE << 13, for IOPRIO_WHO_PROCESS 0: this thread.
            // SAFETY: ioprio_set(2) takes integers only.
            let rc = unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, 3 << 13) };
            check(rc, "ioprio_set");
        },
        // SAFETY: ioprio_get(2) takes integers only.
        || unsafe { libc::syscall(libc::SYS_ioprio_get, 1, 0) },
    );

    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    if cpus > 1 {
        change_retires_the_worker(
            "CPU affinity",
            &set,
            || {
                let mut only = nix::sched::CpuSet::new();
                only.set(0).unwrap();
                nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &only).unwrap();
            },
            || status_line("Cpus_allowed_list"),
        );
    } else {
        nsguard_suite::skipped("CPU affinity", "one CPU only");
    }
}

/// On a worker with a root of its own (it entered a mount namespace), a
/// body that chroots into a non-recursive bind mount of `/` (same device
/// and inode, but none of the mounts under it) retires its worker: the next
/// body sees the namespace's real root, with its mounts.
#[test]
fn a_chroot_into_a_bind_mount_of_the_root_retires_the_worker() {
    let m = TempNs::new(NsKind::Mnt);
    let set = NsSet::from(Namespace::open(m.path(), NsKind::Mnt).unwrap());
    let executor: Executor = nsguard_suite::capped_executor(1);
    // Made here, in this process's mount namespace (and removed with it);
    // mounted on only inside the test's mount namespace.
    let marked = tempfile::tempdir().unwrap();
    let chroot_dir = tempfile::tempdir().unwrap();
    let marker = marked.path().join("marker");
    let marker_seen = || marker.exists();
    let (first, before) = executor
        .run(&set, || {
            nix::mount::mount(
                Some("tmpfs"),
                marked.path(),
                Some("tmpfs"),
                nix::mount::MsFlags::empty(),
                None::<&str>,
            )
            .unwrap();
            std::fs::write(&marker, b"").unwrap();
            (tid(), marker_seen())
        })
        .unwrap();
    assert!(before);
    executor
        .run(&set, || {
            nix::mount::mount(
                Some("/"),
                chroot_dir.path(),
                None::<&str>,
                nix::mount::MsFlags::MS_BIND,
                None::<&str>,
            )
            .unwrap();
            nix::unistd::chroot(chroot_dir.path()).unwrap();
            std::env::set_current_dir("/").unwrap();
            assert!(!marker_seen(), "the bind mount is not recursive");
        })
        .unwrap();
    let (second, after) = executor.run(&set, || (tid(), marker_seen())).unwrap();
    assert_ne!(second, first, "the chrooted worker was reused");
    assert!(after, "a later body saw the chroot");
}

/// nsguard's threads are never started from a thread with an fd table of
/// its own: every worker would have it. The first call from such a thread
/// is refused (in a child process: the origin is started once per process).
#[test]
fn the_origin_refuses_a_thread_with_a_private_fd_table() {
    if !nsguard_suite::in_child_process(
        "the_origin_refuses_a_thread_with_a_private_fd_table",
        std::time::Duration::from_secs(60),
    ) {
        return;
    }
    let refused = nsguard_suite::on_fresh_thread(|| {
        // SAFETY: unshare(2) takes flags only.
        check(
            unsafe { libc::unshare(libc::CLONE_FILES) }.into(),
            "unshare(CLONE_FILES)",
        );
        NsSet::new().run(|| ())
    });
    match refused {
        Err(nsguard::Error::Worker {
            cause: nsguard::WorkerCause::OriginRefused,
            reason,
            ..
        }) => assert!(reason.contains("fd table"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // From a thread that shares the process's table, it starts.
    NsSet::new().run(|| ()).unwrap();
}
