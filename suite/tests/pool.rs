//! `Pool`: distinct, ready sets, refilled in the background.

use std::collections::HashSet;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use nsguard::{Error, NsKind, NsSet, Pool};
use nsguard_suite::{main_thread_ino, PATIENCE};

/// The refill's first wait after a failure; each failure in a row doubles it.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);

#[test]
fn the_pool_hands_out_distinct_ready_sets_and_refills() {
    let pool = Pool::builder(NsKind::Net | NsKind::Uts)
        .size(3)
        .setup(|| {
            nix::unistd::sethostname("pooled")?;
            let status = Command::new("ip")
                .args(["link", "set", "lo", "up"])
                .status()?;
            if !status.success() {
                return Err(format!("ip link set lo up: {status}").into());
            }
            Ok(())
        })
        .build()
        .unwrap();
    assert!(
        pool.wait_full(Duration::from_secs(20)),
        "filled: {}",
        pool.ready_count()
    );
    let sets: Vec<NsSet> = (0..5).map(|_| pool.get().unwrap()).collect();
    let ids: HashSet<u64> = sets
        .iter()
        .map(|s| s.get(NsKind::Net).unwrap().id().ino())
        .collect();
    assert_eq!(ids.len(), 5, "every set is new");
    assert!(!ids.contains(&main_thread_ino(NsKind::Net)));
    for set in &sets {
        let (host, lo) = set
            .run(|| {
                let out = Command::new("ip")
                    .args(["-o", "link", "show", "lo"])
                    .output()
                    .unwrap();
                (
                    nix::unistd::gethostname().unwrap(),
                    String::from_utf8(out.stdout).unwrap(),
                )
            })
            .unwrap();
        assert_eq!(host, "pooled", "the hook ran inside");
        assert!(lo.contains("UP"), "{lo}");
    }
    assert!(
        pool.wait_full(Duration::from_secs(20)),
        "refilled: {}",
        pool.ready_count()
    );
}

#[test]
fn a_failing_hook_is_reported_to_the_caller_with_its_error() {
    #[derive(Debug, PartialEq)]
    struct NoLuck(u8);
    impl std::fmt::Display for NoLuck {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "no luck {}", self.0)
        }
    }
    impl std::error::Error for NoLuck {}

    let pool = Pool::builder(NsKind::Uts)
        .size(0)
        .setup(|| Err(Box::new(NoLuck(7))))
        .build()
        .unwrap();
    match pool.get() {
        Err(err @ Error::Setup { .. }) => {
            assert_eq!(err.to_string(), "the pool's setup hook returned an error");
            // The hook's own error, as it was, not its text.
            let source = std::error::Error::source(&err).expect("a source");
            assert_eq!(source.downcast_ref::<NoLuck>(), Some(&NoLuck(7)));
            // Clones share it.
            let copy = err.clone();
            let copied = std::error::Error::source(&copy).expect("a source");
            assert!(std::ptr::addr_eq(source, copied));
        }
        other => panic!("expected Setup, got {other:?}"),
    }
}

#[test]
fn pools_refuse_what_cannot_work() {
    assert!(matches!(
        Pool::builder(NsKind::Pid).build(),
        Err(Error::CannotCreate { .. })
    ));
    let with_hook = Pool::builder(NsKind::User | NsKind::Net)
        .setup(|| Ok(()))
        .build();
    assert!(matches!(
        with_hook,
        Err(Error::UnsupportedOnThread {
            kind: NsKind::User,
            ..
        })
    ));
    // Without a hook, user namespaces pool fine.
    let pool = Pool::builder(NsKind::User | NsKind::Net)
        .size(1)
        .build()
        .unwrap();
    let set = pool.get().unwrap();
    assert_eq!(set.kinds(), NsKind::User | NsKind::Net);
}

/// Threads of this process named `nsguard-pool` that lack CAP_SYS_ADMIN.
fn refill_threads_without_cap_sys_admin() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter(|t| {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            let eff = status
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
                .unwrap_or(u64::MAX);
            comm.trim() == "nsguard-pool" && eff & (1 << 21) == 0 // CAP_SYS_ADMIN
        })
        .count()
}

#[test]
fn a_refill_that_cannot_work_stops_and_says_why() {
    nsguard_suite::on_fresh_thread(|| {
        // The refill thread inherits this thread's capabilities: without
        // CAP_SYS_ADMIN, unshare(CLONE_NEWNET) fails with EPERM every time.
        nsguard_suite::drop_cap_sys_admin_on_this_thread();
        let pool = Pool::builder(NsKind::Net).size(2).build().unwrap();
        let started = Instant::now();
        match pool.try_wait_full(Duration::from_secs(20)) {
            Err(Error::PermissionDenied { .. }) => {}
            other => panic!("expected PermissionDenied, got {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "surfaced at once"
        );
        assert!(!pool.wait_full(Duration::from_secs(20)));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no waiting in vain"
        );
        assert!(matches!(
            pool.last_error(),
            Some(Error::PermissionDenied { .. })
        ));
        // get hands out the error that stopped the refill.
        assert!(matches!(pool.get(), Err(Error::PermissionDenied { .. })));
        // And the refill thread has stopped: no more namespaces made and
        // dropped every 100 ms.
        let deadline = Instant::now() + Duration::from_secs(5);
        while refill_threads_without_cap_sys_admin() > 0 {
            assert!(Instant::now() < deadline, "the refill thread still runs");
            std::thread::sleep(Duration::from_millis(20));
        }
    });
}

#[test]
fn a_failing_refill_backs_off_and_keeps_its_error() {
    // The hook reports when each attempt starts. The test waits for the
    // attempts rather than sleeping, and checks the gaps between them: a
    // back-off makes each at least 100, 200, 400 ms; a slow machine only
    // makes them longer; without a back-off they would be next to nothing.
    let (attempt, attempts) = mpsc::channel();
    let pool = Pool::builder(NsKind::Uts)
        .size(1)
        .setup(move || {
            let _ = attempt.send(Instant::now());
            Err("not today".into())
        })
        .build()
        .unwrap();
    let started: Vec<Instant> = (0..4)
        .map(|_| {
            attempts
                .recv_timeout(PATIENCE)
                .expect("the refill tries again")
        })
        .collect();
    for (i, pair) in started.windows(2).enumerate() {
        let (gap, backoff) = (pair[1] - pair[0], BACKOFF_FIRST * (1 << i));
        assert!(
            gap >= backoff,
            "attempt {} came {gap:?} after the one before; the back-off is {backoff:?}",
            i + 2
        );
    }
    assert!(
        matches!(
            pool.last_error(),
            Some(Error::Setup { source: Some(e), .. }) if e.to_string() == "not today"
        ),
        "{:?}",
        pool.last_error()
    );
    // A hook may work again later: the refill goes on.
    assert!(matches!(
        pool.try_wait_full(Duration::from_millis(50)),
        Ok(false)
    ));
    // Dropping the pool does not wait out the back-off: it returns before
    // the next attempt would have come (800 ms after the fourth).
    drop(pool);
    let next = started[3] + BACKOFF_FIRST * 8;
    assert!(
        Instant::now() < next,
        "drop returned {:?} after the back-off ended",
        Instant::now() - next
    );
    assert!(attempts.try_recv().is_err(), "no attempt after the fourth");
}

#[test]
fn a_panicking_hook_does_not_end_the_refill() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let pool = Pool::builder(NsKind::Uts)
        .size(1)
        .setup(move || {
            if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("the first hook call panics");
            }
            Ok(())
        })
        .build()
        .unwrap();
    assert!(
        pool.try_wait_full(Duration::from_secs(20)).unwrap(),
        "filled after the panic; last error: {:?}",
        pool.last_error()
    );
    assert!(calls.load(Ordering::SeqCst) >= 2);
}

/// A pool whose background thread cannot start says so with the errno
/// (it was an Error::Worker with the text of the io::Error).
#[test]
fn a_pool_whose_thread_cannot_start_says_why() {
    let result = nsguard_suite::on_fresh_thread(|| {
        // Thread creation fails on this thread only, as it would at a
        // cgroup's pids.max: glibc uses clone3, and clone where it lacks it.
        nsguard_suite::fail_syscall_on_this_thread(libc::SYS_clone3, &[], libc::EAGAIN);
        nsguard_suite::fail_syscall_on_this_thread(libc::SYS_clone, &[], libc::EAGAIN);
        Pool::builder(NsKind::Uts).size(1).build()
    });
    match result {
        Err(err @ Error::Thread { .. }) => {
            assert_eq!(err.errno(), Some(nsguard::Errno::EAGAIN), "{err}");
            assert!(err.to_string().contains("refill the pool"), "{err}");
            assert!(err.to_string().contains("pids.max"), "{err}");
        }
        other => panic!("expected Thread, got {other:?}"),
    }
}
