//! `NsSet::enter` and `NsGuard` on real namespaces: the calling thread
//! switches and comes back, nothing else moves, and every failure leaves the
//! thread either where it was or poisoned.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;

use nsguard::{Errno, Error, Namespace, NsKind, NsKinds, NsSet};
use nsguard_suite::{
    drop_cap_sys_admin_on_this_thread, fail_setns_on_this_thread, main_thread_ino, on_fresh_thread,
    open, panic_message, task_ino, thread_ino, tid, TempNs,
};

const SWITCHABLE: [NsKind; 5] = [
    NsKind::Net,
    NsKind::Uts,
    NsKind::Ipc,
    NsKind::Cgroup,
    NsKind::Pid,
];

/// A thread that only waits; its namespaces must never change.
struct Bystander {
    tid: i32,
    stop: Option<mpsc::Sender<()>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Bystander {
    fn start() -> Bystander {
        let (tid_tx, tid_rx) = mpsc::channel();
        let (stop, stop_rx) = mpsc::channel::<()>();
        let handle = std::thread::spawn(move || {
            tid_tx.send(tid()).unwrap();
            let _ = stop_rx.recv();
        });
        Bystander {
            tid: tid_rx.recv().unwrap(),
            stop: Some(stop),
            handle: Some(handle),
        }
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[test]
fn each_switchable_kind_moves_only_the_calling_thread_and_back() {
    let bystander = Bystander::start();
    for kind in SWITCHABLE {
        let temp = TempNs::new(kind);
        let set = NsSet::from(open(&temp));
        let (main_before, other_before) = (main_thread_ino(kind), task_ino(bystander.tid, kind));
        on_fresh_thread(|| {
            let before = thread_ino(kind);
            assert_ne!(
                before,
                temp.ino(),
                "{kind}: target differs from where the thread is"
            );
            let guard = set.enter().unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert_eq!(thread_ino(kind), temp.ino(), "{kind}: the thread is inside");
            assert_eq!(guard.switched(), NsKinds::from(kind));
            assert_eq!(Namespace::current(kind).unwrap().id().ino(), temp.ino());
            assert_eq!(
                main_thread_ino(kind),
                main_before,
                "{kind}: main thread unchanged"
            );
            assert_eq!(
                task_ino(bystander.tid, kind),
                other_before,
                "{kind}: other thread unchanged"
            );
            drop(guard);
            assert_eq!(thread_ino(kind), before, "{kind}: the thread is back");
            assert!(!nsguard::is_poisoned());
        });
    }
}

#[test]
fn a_set_of_every_switchable_kind_enters_and_restores_together() {
    let temps: Vec<TempNs> = SWITCHABLE.into_iter().map(TempNs::new).collect();
    let set: NsSet = temps.iter().map(open).collect();
    on_fresh_thread(|| {
        let before: Vec<u64> = SWITCHABLE.iter().map(|k| thread_ino(*k)).collect();
        let guard = set.enter().unwrap();
        assert_eq!(guard.switched(), NsKinds::THREAD_SWITCHABLE);
        for temp in &temps {
            assert_eq!(thread_ino(temp.kind()), temp.ino(), "{}", temp.kind());
        }
        guard.restore().unwrap();
        let after: Vec<u64> = SWITCHABLE.iter().map(|k| thread_ino(*k)).collect();
        assert_eq!(after, before);
    });
}

#[test]
fn every_setns_names_its_kind() {
    // setns(fd, 0) would accept any kind; with this filter it fails with
    // EDOM, so entering and restoring succeed only if every call is typed.
    let temps: Vec<TempNs> = SWITCHABLE.into_iter().map(TempNs::new).collect();
    let set: NsSet = temps.iter().map(open).collect();
    on_fresh_thread(|| {
        fail_setns_on_this_thread(0, libc::EDOM);
        let guard = set.enter().unwrap();
        assert_eq!(thread_ino(NsKind::Net), temps[0].ino());
        guard.restore().unwrap();
        assert_eq!(thread_ino(NsKind::Net), main_thread_ino(NsKind::Net));
    });
}

#[test]
fn kinds_the_thread_is_already_in_are_not_switched() {
    let uts = TempNs::new(NsKind::Uts);
    let set = NsSet::current(NsKind::Net).unwrap().with(open(&uts));
    on_fresh_thread(|| {
        // Any setns(CLONE_NEWNET) now fails: entering works only if it is skipped.
        fail_setns_on_this_thread(libc::CLONE_NEWNET, libc::EDOM);
        let guard = set.enter().unwrap();
        assert_eq!(guard.switched(), NsKinds::from(NsKind::Uts));
        assert_eq!(thread_ino(NsKind::Uts), uts.ino());
        drop(guard);
        assert_eq!(thread_ino(NsKind::Uts), main_thread_ino(NsKind::Uts));
    });
}

#[test]
fn an_empty_set_gives_a_guard_that_changes_nothing() {
    on_fresh_thread(|| {
        let guard = NsSet::new().enter().unwrap();
        assert!(guard.switched().is_empty());
        guard.restore().unwrap();
    });
}

#[test]
fn nested_guards_unwind_in_order() {
    let (a, b, u) = (
        TempNs::new(NsKind::Net),
        TempNs::new(NsKind::Net),
        TempNs::new(NsKind::Uts),
    );
    let outer_set = NsSet::from(open(&a));
    let inner_set = NsSet::from(open(&b)).with(open(&u));
    on_fresh_thread(|| {
        let (net0, uts0) = (thread_ino(NsKind::Net), thread_ino(NsKind::Uts));
        let outer = outer_set.enter().unwrap();
        assert_eq!(thread_ino(NsKind::Net), a.ino());
        {
            let inner = inner_set.enter().unwrap();
            assert_eq!(
                (thread_ino(NsKind::Net), thread_ino(NsKind::Uts)),
                (b.ino(), u.ino())
            );
            drop(inner);
        }
        assert_eq!(
            (thread_ino(NsKind::Net), thread_ino(NsKind::Uts)),
            (a.ino(), uts0)
        );
        // The same set again, nested in itself: nothing to switch.
        let again = outer_set.enter().unwrap();
        assert!(again.switched().is_empty());
        drop(again);
        drop(outer);
        assert_eq!(
            (thread_ino(NsKind::Net), thread_ino(NsKind::Uts)),
            (net0, uts0)
        );
        assert!(!nsguard::is_poisoned());
    });
}

fn assert_every_call_is_poisoned(probe: &TempNs) {
    assert!(nsguard::is_poisoned());
    for result in [
        NsSet::new().enter().map(drop),
        NsSet::current(NsKind::Net).map(drop),
        Namespace::current(NsKind::Uts).map(drop),
        Namespace::open(probe.path(), probe.kind()).map(drop),
        Namespace::of_pid(std::process::id(), NsKind::Net).map(drop),
        // A call on a worker: the caller's own thread is what is poisoned.
        NsSet::new().run(|| ()),
    ] {
        assert!(matches!(result, Err(Error::Poisoned { .. })), "{result:?}");
    }
}

#[test]
fn dropping_an_outer_guard_first_poisons_the_thread() {
    let (a, u) = (TempNs::new(NsKind::Net), TempNs::new(NsKind::Uts));
    let (outer_set, inner_set) = (NsSet::from(open(&a)), NsSet::from(open(&u)));
    on_fresh_thread(|| {
        let outer = outer_set.enter().unwrap();
        let inner = inner_set.enter().unwrap();
        let panic = catch_unwind(AssertUnwindSafe(|| drop(outer))).unwrap_err();
        let msg = panic_message(&*panic);
        assert!(
            msg.contains("out of order") && msg.contains("innermost first"),
            "{msg}"
        );
        assert!(nsguard::poison_reason().unwrap().contains("out of order"));
        assert_every_call_is_poisoned(&a);
        // The inner guard, dropped on a poisoned thread, does nothing.
        drop(inner);
        assert_eq!(thread_ino(NsKind::Uts), u.ino(), "nothing was guessed");
    });
    assert!(!nsguard::is_poisoned(), "poison is per thread");

    on_fresh_thread(|| {
        let outer = outer_set.enter().unwrap();
        let inner = inner_set.enter().unwrap();
        match outer.restore() {
            Err(Error::Poisoned { reason, .. }) => {
                assert!(reason.contains("out of order"), "{reason}")
            }
            other => panic!("expected Poisoned, got {other:?}"),
        }
        // The guard switched back its own kind, as far as it could.
        assert_eq!(thread_ino(NsKind::Net), main_thread_ino(NsKind::Net));
        assert!(matches!(inner.restore(), Err(Error::Poisoned { .. })));
    });
}

#[test]
fn a_failed_restore_poisons_the_thread() {
    let a = TempNs::new(NsKind::Net);
    let set = NsSet::from(open(&a));
    let host = main_thread_ino(NsKind::Net);
    // restore(): the error comes back as a value.
    on_fresh_thread(|| {
        let guard = set.enter().unwrap();
        drop_cap_sys_admin_on_this_thread();
        match guard.restore() {
            Err(Error::Restore { ns, errno, .. }) => {
                assert_eq!(
                    (ns.kind(), ns.ino(), errno),
                    (NsKind::Net, host, Errno::EPERM)
                );
            }
            other => panic!("expected Restore, got {other:?}"),
        }
        assert_eq!(
            thread_ino(NsKind::Net),
            a.ino(),
            "the restore really failed"
        );
        assert!(nsguard::poison_reason().unwrap().contains("EPERM"));
        assert_every_call_is_poisoned(&a);
    });
    // drop: the error is raised as a panic.
    on_fresh_thread(|| {
        let guard = set.enter().unwrap();
        fail_setns_on_this_thread(libc::CLONE_NEWNET, libc::EDOM);
        let panic = catch_unwind(AssertUnwindSafe(|| drop(guard))).unwrap_err();
        let msg = panic_message(&*panic);
        assert!(
            msg.contains("restoring the thread to") && msg.contains("EDOM"),
            "{msg}"
        );
        assert!(msg.contains("poisoned"), "{msg}");
        assert_every_call_is_poisoned(&a);
    });
}

#[test]
fn mnt_time_and_user_are_refused_before_anything_changes() {
    let net = TempNs::new(NsKind::Net);
    for kind in nsguard_suite::kinds_this_kernel_has(
        "mnt_time_and_user_are_refused_before_anything_changes",
        &[NsKind::Mnt, NsKind::Time, NsKind::User],
    ) {
        let other = TempNs::new(kind);
        let set = NsSet::from(open(&net)).with(open(&other));
        on_fresh_thread(|| {
            // Had net been switched first, this filter would surface EDOM.
            fail_setns_on_this_thread(libc::CLONE_NEWNET, libc::EDOM);
            let before = thread_ino(kind);
            match set.enter() {
                Err(err @ Error::UnsupportedOnThread { .. }) => {
                    assert_eq!(err.ns_kind(), Some(kind));
                    let msg = err.to_string();
                    assert!(msg.contains("instead"), "{msg}");
                    assert_eq!(
                        std::io::Error::from(err).kind(),
                        std::io::ErrorKind::Unsupported
                    );
                }
                other => panic!("{kind}: expected UnsupportedOnThread, got {other:?}"),
            }
            assert_eq!(thread_ino(NsKind::Net), main_thread_ino(NsKind::Net));
            assert_eq!(thread_ino(kind), before);
            assert!(!nsguard::is_poisoned());
        });
    }
}

#[test]
fn a_failure_half_way_switches_back_what_was_entered() {
    let temps: Vec<TempNs> = [NsKind::Uts, NsKind::Net, NsKind::Pid]
        .into_iter()
        .map(TempNs::new)
        .collect();
    let set: NsSet = temps.iter().map(open).collect();
    on_fresh_thread(|| {
        let before: Vec<u64> = temps.iter().map(|t| thread_ino(t.kind())).collect();
        // pid is entered after uts and net.
        fail_setns_on_this_thread(libc::CLONE_NEWPID, libc::EDOM);
        match set.enter() {
            Err(err @ Error::Enter { .. }) => {
                assert_eq!(
                    (err.ns_kind(), err.errno()),
                    (Some(NsKind::Pid), Some(Errno::EDOM))
                );
                assert_eq!(err.path(), Some(temps[2].path()));
            }
            other => panic!("expected Enter, got {other:?}"),
        }
        let after: Vec<u64> = temps.iter().map(|t| thread_ino(t.kind())).collect();
        assert_eq!(after, before, "uts and net were switched back");
        assert!(!nsguard::is_poisoned());
    });
}

/// A nested guard goes back to the outer guard's namespace through a
/// handle it opens, and to the process's own through the origin's: a guard
/// holding both kinds of way back takes each, newest first, and lists
/// them, also when a switch half way fails.
#[test]
fn ways_back_of_both_sorts_are_taken_in_order() {
    let outer_net = TempNs::new(NsKind::Net);
    let temps: Vec<TempNs> = [NsKind::Uts, NsKind::Net, NsKind::Pid]
        .into_iter()
        .map(TempNs::new)
        .collect();
    let outer_set = NsSet::from(open(&outer_net));
    let both: NsSet = temps[..2].iter().map(open).collect();
    let all: NsSet = temps.iter().map(open).collect();
    on_fresh_thread(|| {
        let uts0 = thread_ino(NsKind::Uts);
        let here = || (thread_ino(NsKind::Uts), thread_ino(NsKind::Net));
        let outer = outer_set.enter().unwrap();
        // uts goes back home (the origin's handle), net to the outer
        // guard's namespace (a handle opened for it).
        let inner = both.enter().unwrap();
        assert_eq!(here(), (temps[0].ino(), temps[1].ino()));
        let listed = format!("{inner:?}");
        let (uts_at, net_at) = (
            listed.find(&format!("uts:[{uts0}]")),
            listed.find(&format!("net:[{}]", outer_net.ino())),
        );
        assert!(
            matches!((uts_at, net_at), (Some(u), Some(n)) if u < n),
            "ways back in the order of the switches: {listed}"
        );
        drop(inner);
        assert_eq!(here(), (uts0, outer_net.ino()));
        // pid is entered after uts and net, and fails.
        fail_setns_on_this_thread(libc::CLONE_NEWPID, libc::EDOM);
        let err = all.enter().expect_err("the pid switch fails");
        assert_eq!(err.ns_kind(), Some(NsKind::Pid));
        assert_eq!(
            here(),
            (uts0, outer_net.ino()),
            "each kind went its way back"
        );
        drop(outer);
        assert!(!nsguard::is_poisoned());
    });
}

#[test]
fn without_cap_sys_admin_entering_is_permission_denied() {
    let a = TempNs::new(NsKind::Net);
    let set = NsSet::from(open(&a));
    on_fresh_thread(|| {
        drop_cap_sys_admin_on_this_thread();
        match set.enter() {
            Err(err @ Error::PermissionDenied { .. }) => {
                assert_eq!(err.errno(), Some(Errno::EPERM));
                let msg = err.to_string();
                assert!(
                    msg.contains("CAP_SYS_ADMIN") && msg.contains(&a.path().display().to_string()),
                    "{msg}"
                );
            }
            other => panic!("expected PermissionDenied, got {other:?}"),
        }
        assert_eq!(thread_ino(NsKind::Net), main_thread_ino(NsKind::Net));
        assert!(!nsguard::is_poisoned());
    });
}

/// Run by `a_failed_restore_while_panicking_aborts` in a child process.
#[test]
fn abort_scenario() {
    if std::env::var_os("NSGUARD_ABORT_SCENARIO").is_none() {
        return;
    }
    // The process aborts, so nothing here may need cleaning up: the
    // namespace is held by fd only, never mounted.
    let net = on_fresh_thread(|| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        Namespace::current(NsKind::Net).unwrap()
    });
    let _guard = NsSet::from(net).enter().unwrap();
    fail_setns_on_this_thread(libc::CLONE_NEWNET, libc::EDOM);
    panic!("body panics while its guard cannot restore");
}

#[test]
fn a_failed_restore_while_panicking_aborts() {
    use std::os::unix::process::ExitStatusExt;
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "abort_scenario",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("NSGUARD_ABORT_SCENARIO", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "{:?}\n{stderr}",
        out.status
    );
    assert!(
        stderr.contains("aborting") && stderr.contains("EDOM"),
        "{stderr}"
    );
}

/// A guard goes back to where the thread really was, not to where threads
/// usually are: a thread moved by a raw `setns` into A that enters B comes
/// back to A (the way back through the process's own namespace is taken
/// only for a thread found there).
#[test]
fn a_guard_returns_a_thread_moved_by_raw_setns_to_where_it_was() {
    let a = TempNs::new(NsKind::Net);
    let b = TempNs::new(NsKind::Net);
    let set = NsSet::from(open(&b));
    on_fresh_thread(|| {
        let host = thread_ino(NsKind::Net);
        // A guard from the process's own namespace first, so that the
        // thread's way home is the one a later guard could wrongly reuse.
        drop(set.enter().unwrap());
        assert_eq!(thread_ino(NsKind::Net), host);
        let a_ns = open(&a);
        nix::sched::setns(&a_ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let guard = set.enter().unwrap();
        assert_eq!(thread_ino(NsKind::Net), b.ino());
        drop(guard);
        assert_eq!(thread_ino(NsKind::Net), a.ino(), "back in A, not home");
        let home = Namespace::current(NsKind::Net).unwrap();
        nix::sched::setns(&home, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let _ = host;
    });
}

/// A child forked from a thread inside a guard reads its own namespace
/// links, not the parent thread's (whose fds it inherits): moved into A by
/// a raw `setns`, it really enters B, and comes back to A.
#[test]
fn a_forked_child_reads_its_own_namespaces() {
    if !nsguard_suite::in_child_process(
        "a_forked_child_reads_its_own_namespaces",
        std::time::Duration::from_secs(60),
    ) {
        return;
    }
    let a = TempNs::new(NsKind::Net);
    let b = TempNs::new(NsKind::Net);
    let set = NsSet::from(open(&b));
    let a_ns = open(&a);
    // This thread's links are open now, and say B.
    let outer = set.enter().unwrap();
    // SAFETY: the child only uses nsguard and raw setns, which is what is
    // tested, and exits with _exit; the parent only waits for it.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            let moved = nix::sched::setns(&a_ns, nix::sched::CloneFlags::CLONE_NEWNET).is_ok();
            let entered = set.enter().map(|guard| {
                let inside = thread_ino(NsKind::Net);
                drop(guard);
                inside
            });
            let ok = moved
                && entered.as_ref().ok() == Some(&b.ino())
                && thread_ino(NsKind::Net) == a.ino();
            if !ok {
                eprintln!(
                    "child: moved {moved}, inside {entered:?} (B is {}), after {} (A is {})",
                    b.ino(),
                    thread_ino(NsKind::Net),
                    a.ino()
                );
            }
            // SAFETY: ends the child without unwinding into the harness.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        nix::unistd::ForkResult::Parent { child } => {
            let status = nix::sys::wait::waitpid(child, None).unwrap();
            drop(outer);
            assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
        }
    }
}
