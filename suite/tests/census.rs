//! Threads born inside: a thread a body starts inherits its worker's
//! namespaces and stays there. nsguard does not move it (it may be a
//! server meant to live inside), but never lets it go unseen: the executor
//! reports it, `stray_threads` lists it, and `netns::delete` names it.
//! Each scenario runs in a child process, so that the census sees only the
//! scenario's threads.

use std::sync::mpsc;
use std::time::Duration;

use nsguard::{netns, Error, NsKind, ThreadOwner};
use nsguard_suite::{in_child_process, net_set, thread_ino, tid, TempNs};

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
