//! `Pool`: distinct, ready sets, refilled in the background.

mod support;

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use nsguard::{Error, NsKind, NsSet, Pool};
use support::main_thread_ino;

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
        pool.ready()
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
        pool.ready()
    );
}

#[test]
fn a_failing_hook_is_reported_to_the_caller() {
    let pool = Pool::builder(NsKind::Uts)
        .size(0)
        .setup(|| Err("no luck".into()))
        .build()
        .unwrap();
    match pool.get() {
        Err(Error::Setup { reason }) => assert_eq!(reason, "no luck"),
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
