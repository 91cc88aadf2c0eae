//! Inside a user namespace of its own (`unshare -Urn`), the process cannot
//! return to namespaces owned by the parent user namespace. Each test runs
//! itself again in such a child process and checks what happens there.

use nsguard::{Error, NsKind, NsSet};
use nsguard_suite::{main_thread_ino, on_fresh_thread, thread_ino};

const INSIDE: &str = "NSGUARD_TEST_IN_USERNS";

/// In the parent: runs `test` again under `unshare -Urn`, and fails if it
/// fails there. In the child: returns true, and the caller runs the test.
fn in_child_userns(test: &str) -> bool {
    if std::env::var_os(INSIDE).is_some() {
        return true;
    }
    let out = std::process::Command::new("unshare")
        .arg("-Urn")
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .output()
        .expect("unshare (util-linux)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{test} under unshare -Urn: {}\n{text}",
        out.status
    );
    assert!(text.contains("1 passed"), "{text}");
    false
}

#[test]
fn a_guard_that_could_not_come_back_is_refused_before_switching() {
    if !in_child_userns("a_guard_that_could_not_come_back_is_refused_before_switching") {
        return;
    }
    // Our own new uts namespace; the one we are in belongs to the parent
    // user namespace, where we have no capabilities.
    let uts = NsSet::unshare(NsKind::Uts).unwrap();
    let net = NsSet::unshare(NsKind::Net).unwrap();
    on_fresh_thread(|| {
        let before = thread_ino(NsKind::Uts);
        match uts.enter() {
            Err(err @ Error::NoWayBack { .. }) => {
                let Error::NoWayBack { here, target, .. } = err else {
                    unreachable!()
                };
                assert_eq!(
                    (here.ino(), target),
                    (before, uts.get(NsKind::Uts).unwrap().id())
                );
            }
            other => panic!("expected NoWayBack, got {other:?}"),
        }
        assert_eq!(thread_ino(NsKind::Uts), before, "nothing changed");
        assert!(!nsguard::is_poisoned());
        // The net namespace we are in is our own: that guard works.
        let guard = net.enter().unwrap();
        assert_eq!(
            thread_ino(NsKind::Net),
            net.get(NsKind::Net).unwrap().id().ino()
        );
        guard.restore().unwrap();
    });
}

#[test]
fn a_worker_that_left_an_unreachable_home_namespace_serves_only_that_one() {
    if !in_child_userns("a_worker_that_left_an_unreachable_home_namespace_serves_only_that_one") {
        return;
    }
    let executor = nsguard_suite::capped_executor(1);
    let uts = NsSet::unshare(NsKind::Uts).unwrap();
    let uts_ino = uts.get(NsKind::Uts).unwrap().id().ino();
    let seen = executor
        .run(&uts, || {
            nix::unistd::sethostname("inside").unwrap();
            thread_ino(NsKind::Uts)
        })
        .unwrap();
    assert_eq!(seen, uts_ino);
    // A call that needs the home uts namespace: the only worker cannot go
    // back there, so another one serves it.
    let net = NsSet::unshare(NsKind::Net).unwrap();
    let (home_uts, name) = executor
        .run(&net, || {
            (thread_ino(NsKind::Uts), nix::unistd::gethostname().unwrap())
        })
        .unwrap();
    assert_eq!(home_uts, main_thread_ino(NsKind::Uts));
    assert_ne!(name, "inside");
    assert_eq!(
        executor.run(&uts, || thread_ino(NsKind::Uts)).unwrap(),
        uts_ino
    );
}
