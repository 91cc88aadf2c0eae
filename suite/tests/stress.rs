//! Stress, alone in its test binary (it inspects the whole process): the
//! Weave scenario as a test. 8 threads make thousands of calls over 100
//! namespaces, mixing `NsSet::run`, `#[in_namespace]` and guards, with ~10%
//! of bodies panicking and ~10% returning errors; every body checks that its
//! thread is in exactly the requested namespaces. Afterwards no thread but
//! nsguard's is outside the host namespaces, the workers are within the
//! cap, and no namespace fd, mount or `/run/netns` entry is left.
//!
//! `NSGUARD_STRESS=heavy` multiplies the calls by ~13.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

use nsguard::{in_namespace, Executor, Namespace, NsKind, NsSet};
use nsguard_suite::{main_thread_ino, namespace_fds, strays, thread_ino, threads_named, TempNs};

const THREADS: usize = 8;
const NAMESPACES: usize = 100;

#[derive(Clone, Copy, PartialEq)]
enum Outcome {
    Fine,
    Panic,
    Fail,
}

/// A body: checks where it runs, then does what it was told.
fn body(net: u64, uts: u64, outcome: Outcome) -> std::io::Result<u64> {
    assert_eq!(
        thread_ino(NsKind::Net),
        net,
        "the body is in the requested net namespace"
    );
    assert_eq!(
        thread_ino(NsKind::Uts),
        uts,
        "and in the requested (or home) uts namespace"
    );
    match outcome {
        Outcome::Fine => Ok(net),
        Outcome::Panic => std::panic::panic_any(Planned),
        Outcome::Fail => Err(std::io::Error::other("planned failure")),
    }
}

/// The payload of planned panics, so the hook can keep them quiet.
struct Planned;

#[in_namespace(set = set)]
fn by_macro(set: &NsSet, net: u64, uts: u64, outcome: Outcome) -> std::io::Result<u64> {
    body(net, uts, outcome)
}

#[test]
fn thousands_of_mixed_calls_never_leave_a_thread_in_the_wrong_namespace() {
    let calls = if std::env::var("NSGUARD_STRESS").as_deref() == Ok("heavy") {
        20_000
    } else {
        1_500
    };
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<Planned>().is_none() {
            default_hook(info);
        }
    }));
    let host: Vec<(NsKind, u64)> = [
        NsKind::Net,
        NsKind::Uts,
        NsKind::Ipc,
        NsKind::Cgroup,
        NsKind::Pid,
        NsKind::Mnt,
    ]
    .iter()
    .map(|k| (*k, main_thread_ino(*k)))
    .collect();
    let host_uts = main_thread_ino(NsKind::Uts);
    let cap = Executor::global().unwrap();
    cap.run(&NsSet::current(NsKind::Net).unwrap(), || ())
        .unwrap(); // warm: its home fds exist now
    let fds_before = namespace_fds();
    let mounts_before = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count();
    let netns_before = nsguard::netns::list().unwrap();

    {
        // 100 namespaces: net, and every other one with its own uts too.
        let temps: Vec<(TempNs, Option<TempNs>)> = (0..NAMESPACES)
            .map(|i| {
                (
                    TempNs::new(NsKind::Net),
                    (i % 2 == 0).then(|| TempNs::new(NsKind::Uts)),
                )
            })
            .collect();
        let sets: Vec<(NsSet, u64, u64)> = temps
            .iter()
            .map(|(net, uts)| {
                let mut set = NsSet::from(Namespace::open(net.path(), NsKind::Net).unwrap());
                if let Some(uts) = uts {
                    set.insert(Namespace::open(uts.path(), NsKind::Uts).unwrap());
                }
                (set, net.ino(), uts.as_ref().map_or(host_uts, TempNs::ino))
            })
            .collect();
        let (fine, panics, failures) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let (sets, fine, panics, failures, host) =
                    (&sets, &fine, &panics, &failures, &host);
                s.spawn(move || {
                    let mut seed =
                        0x243f_6a88_85a3_08d3_u64 ^ (t as u64 + 1).wrapping_mul(0x9e37_79b9);
                    let mut rand = move |n: u64| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        seed % n
                    };
                    for _ in 0..calls {
                        let (set, net, uts) = &sets[rand(NAMESPACES as u64) as usize];
                        let outcome = match rand(10) {
                            0 => Outcome::Panic,
                            1 => Outcome::Fail,
                            _ => Outcome::Fine,
                        };
                        let (net, uts) = (*net, *uts);
                        let result = catch_unwind(AssertUnwindSafe(|| match rand(3) {
                            0 => set.run(|| body(net, uts, outcome)).unwrap(),
                            1 => by_macro(set, net, uts, outcome),
                            _ => {
                                let _guard = set.enter().unwrap();
                                body(net, uts, outcome)
                            }
                        }));
                        match result {
                            Ok(Ok(seen)) => {
                                assert_eq!(seen, net);
                                fine.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(Err(e)) => {
                                assert_eq!(e.to_string(), "planned failure");
                                failures.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(payload) => {
                                assert!(
                                    payload.downcast_ref::<Planned>().is_some(),
                                    "an unplanned panic"
                                );
                                panics.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        // The caller's own thread is home again, guard or not.
                        assert_eq!(thread_ino(NsKind::Net), host[0].1);
                        assert_eq!(thread_ino(NsKind::Uts), host_uts);
                        assert!(!nsguard::is_poisoned());
                    }
                });
            }
        });
        let total = (THREADS * calls) as u64;
        let (fine, panics, failures) = (
            fine.into_inner(),
            panics.into_inner(),
            failures.into_inner(),
        );
        assert_eq!(fine + panics + failures, total);
        assert!(
            panics > total / 20 && failures > total / 20,
            "{panics} panics, {failures} failures of {total}"
        );
        assert!(
            strays(&host).is_empty(),
            "threads left outside the host namespaces: {:?}",
            strays(&host)
        );
        let workers = threads_named("nsguard-worker");
        assert!(
            workers <= 8,
            "{workers} worker threads, the default cap here is 8"
        );
        assert_eq!(cap.workers(), workers);
    }
    // Everything the test made is dropped: namespaces die with their fds.
    assert_eq!(
        namespace_fds(),
        fds_before,
        "namespace fds back to the baseline"
    );
    let mounts_after = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count();
    assert_eq!(mounts_after, mounts_before, "nothing left mounted");
    assert_eq!(
        nsguard::netns::list().unwrap(),
        netns_before,
        "nothing left in /run/netns"
    );
}
