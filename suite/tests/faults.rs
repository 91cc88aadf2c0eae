//! Faults, provoked for real: a worker that can no longer switch, a named
//! namespace deleted while a worker sits in it, a path that now names
//! another namespace.

use std::path::Path;
use std::process::Command;

use nsguard::{in_namespace, netns, Error, Executor, Namespace, NsKind, NsSet};
use nsguard_suite::{
    drop_cap_sys_admin_on_this_thread, open, path_ino, thread_ino, tid, unique_name, TempNs,
};

#[test]
fn a_worker_that_can_no_longer_switch_is_retired() {
    let (a, b) = (TempNs::new(NsKind::Net), TempNs::new(NsKind::Net));
    let (set_a, set_b) = (NsSet::from(open(&a)), NsSet::from(open(&b)));
    // Without the check after each call, which would retire the worker at
    // once (tests/thread_state.rs), the broken worker is still used.
    let executor = Executor::builder()
        .max_workers(1)
        .overflow_after(std::time::Duration::MAX)
        .check_after_call(false)
        .build()
        .unwrap();
    // A body breaks its worker: a seccomp filter (per thread) that fails
    // every setns of a netns.
    let first = executor
        .run(&set_a, || {
            nsguard_suite::fail_setns_on_this_thread(libc::CLONE_NEWNET, libc::EDOM);
            tid()
        })
        .unwrap();
    // That worker cannot switch to b: the call fails…
    match executor.run(&set_b, tid) {
        Err(err) => assert_eq!(err.errno(), Some(nsguard::Errno::EDOM), "{err}"),
        other => panic!("expected the switch to fail, got {other:?}"),
    }
    // …and the worker is gone: the next call gets a fresh one.
    let (second, ino) = executor
        .run(&set_b, || (tid(), thread_ino(NsKind::Net)))
        .unwrap();
    assert_ne!(second, first);
    assert_eq!(ino, b.ino());
}

#[test]
fn a_worker_whose_body_changed_its_capabilities_is_not_reused() {
    let a = TempNs::new(NsKind::Net);
    let set = NsSet::from(open(&a));
    let executor = nsguard_suite::capped_executor(1);
    let first = executor
        .run(&set, || {
            drop_cap_sys_admin_on_this_thread();
            tid()
        })
        .unwrap();
    // The same namespaces: no switch would reveal it, the check after the
    // call does.
    let (second, has_admin) = executor
        .run(&set, || {
            (
                tid(),
                caps::has_cap(
                    None,
                    caps::CapSet::Effective,
                    caps::Capability::CAP_SYS_ADMIN,
                )
                .unwrap(),
            )
        })
        .unwrap();
    assert_ne!(second, first, "a new worker");
    assert!(has_admin, "with the capabilities workers start with");
}

#[in_namespace(net = path)]
fn net_at(path: &Path) -> nsguard::Result<u64> {
    Ok(thread_ino(NsKind::Net))
}

#[test]
fn a_named_netns_deleted_under_a_worker_still_works_for_handle_holders() {
    let name = unique_name("nsguard-del");
    netns::add(&name).unwrap();
    let path = format!("/run/netns/{name}");
    let held = NsSet::from(Namespace::named(&name).unwrap());
    let ino = held.get(NsKind::Net).unwrap().id().ino();
    assert_eq!(
        held.run(|| thread_ino(NsKind::Net)).unwrap(),
        ino,
        "a worker sits in it"
    );
    assert_eq!(net_at(Path::new(&path)).unwrap(), ino);

    let status = Command::new("ip")
        .args(["netns", "delete", &name])
        .status()
        .unwrap();
    assert!(status.success());
    // The handle keeps the namespace alive; the worker still serves it.
    assert_eq!(held.run(|| thread_ino(NsKind::Net)).unwrap(), ino);
    // Paths no longer lead there.
    assert!(matches!(
        Namespace::named(&name),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        net_at(Path::new(&path)),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn a_path_that_now_names_another_namespace_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("net");
    let (x, y) = (TempNs::new(NsKind::Net), TempNs::new(NsKind::Net));
    open(&x).persist(&path).unwrap();
    assert_eq!(net_at(&path).unwrap(), x.ino());
    Namespace::unpersist(&path, NsKind::Net).unwrap();
    open(&y).persist(&path).unwrap();
    assert_eq!(path_ino(&path), y.ino());
    assert_eq!(
        net_at(&path).unwrap(),
        y.ino(),
        "identity comes from the open file, never from the path"
    );
    Namespace::unpersist(&path, NsKind::Net).unwrap();
}
