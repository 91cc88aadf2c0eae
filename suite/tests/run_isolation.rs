//! Process-wide check, alone in its test binary so that no other test's
//! threads are around: while 8 threads make many calls over 24 namespaces,
//! no thread but the executor's own ever leaves the host namespaces.

use std::sync::atomic::{AtomicBool, Ordering};

use nsguard::{Namespace, NsKind, NsSet};
use nsguard_suite::{main_thread_ino, strays, thread_ino, TempNs};

const WATCHED: [NsKind; 7] = [
    NsKind::Net,
    NsKind::Uts,
    NsKind::Ipc,
    NsKind::Cgroup,
    NsKind::Pid,
    NsKind::Mnt,
    NsKind::Time,
];

#[test]
fn callers_never_leave_the_host_namespaces() {
    let watched =
        nsguard_suite::kinds_this_kernel_has("callers_never_leave_the_host_namespaces", &WATCHED);
    let host: Vec<(NsKind, u64)> = watched.iter().map(|k| (*k, main_thread_ino(*k))).collect();
    assert!(strays(&host).is_empty());
    let temps: Vec<(TempNs, TempNs)> = (0..24)
        .map(|_| (TempNs::new(NsKind::Net), TempNs::new(NsKind::Uts)))
        .collect();
    let sets: Vec<NsSet> = temps
        .iter()
        .map(|(n, u)| {
            NsSet::new()
                .with(Namespace::open(n.path(), NsKind::Net).unwrap())
                .with(Namespace::open(u.path(), NsKind::Uts).unwrap())
        })
        .collect();
    let stop = AtomicBool::new(false);
    let found = std::thread::scope(|s| {
        let monitor = s.spawn(|| {
            let mut found = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                found.extend(strays(&host));
            }
            found
        });
        let callers: Vec<_> = (0..8)
            .map(|t| {
                let (sets, temps) = (&sets, &temps);
                s.spawn(move || {
                    for i in 0..400 {
                        let k = (t * 7 + i * 5) % sets.len();
                        let (net, uts) = sets[k]
                            .run(|| (thread_ino(NsKind::Net), thread_ino(NsKind::Uts)))
                            .unwrap();
                        assert_eq!(
                            (net, uts),
                            (temps[k].0.ino(), temps[k].1.ino()),
                            "call {i} of thread {t}"
                        );
                    }
                })
            })
            .collect();
        for c in callers {
            c.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        monitor.join().unwrap()
    });
    assert!(
        found.is_empty(),
        "threads outside the host namespaces: {found:?}"
    );
    assert!(strays(&host).is_empty());
}
