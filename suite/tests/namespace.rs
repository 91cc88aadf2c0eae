//! Opening and validating namespace handles and sets, on real namespaces.

use std::os::unix::net::UnixListener;

use nix::sched::{unshare, CloneFlags};
use nsguard::{Errno, Error, Namespace, NsKind, NsKinds, NsSet};
use nsguard_suite::{
    main_thread_ino, on_fresh_thread, path_ino, thread_ino, ChildGuard, NamedNetns, TempNs,
};

#[test]
fn every_kind_opens_and_has_the_namespace_identity() {
    for kind in nsguard_suite::kinds_this_kernel_has(
        "every_kind_opens_and_has_the_namespace_identity",
        &NsKind::ALL,
    ) {
        let temp = TempNs::new(kind);
        assert_ne!(
            temp.ino(),
            main_thread_ino(kind),
            "{kind}: test namespace is new"
        );
        let ns = Namespace::open(temp.path(), kind).unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(ns.kind(), kind);
        assert_eq!(ns.id().kind(), kind);
        assert_eq!(ns.id().ino(), temp.ino(), "{kind}");
        assert_eq!(ns.id().ino(), path_ino(temp.path()), "{kind}");
        assert_eq!(ns.id().to_string(), format!("{kind}:[{}]", temp.ino()));
        assert_eq!(ns.path(), Some(temp.path()));
        // Another path to the same namespace gives an equal handle.
        let again = Namespace::open(temp.fd_path(), kind).unwrap();
        assert_eq!(again, ns);
        let clone = ns.try_clone().unwrap();
        assert_eq!(clone, ns);
        assert_eq!(clone.path(), ns.path());
    }
}

#[test]
fn a_namespace_of_another_kind_is_refused() {
    let net = TempNs::new(NsKind::Net);
    let kinds = nsguard_suite::kinds_this_kernel_has(
        "a_namespace_of_another_kind_is_refused",
        &NsKind::ALL,
    );
    for kind in kinds.into_iter().filter(|k| *k != NsKind::Net) {
        match Namespace::open(net.path(), kind) {
            Err(Error::WrongKind {
                path,
                expected,
                found,
                ..
            }) => {
                assert_eq!((expected, found), (kind, NsKind::Net));
                assert_eq!(path, net.path());
            }
            other => panic!("{kind}: expected WrongKind, got {other:?}"),
        }
    }
    let err = Namespace::open(net.path(), NsKind::Uts).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("is a net namespace, not a uts namespace"),
        "{msg}"
    );
    assert!(msg.contains(&net.path().display().to_string()), "{msg}");
}

fn assert_not_a_namespace(path: &std::path::Path, found: &str) {
    match Namespace::open(path, NsKind::Net) {
        Err(err @ Error::NotANamespace { .. }) => {
            let Error::NotANamespace {
                kind,
                path: p,
                found: f,
                ..
            } = &err
            else {
                unreachable!()
            };
            assert_eq!((*kind, p.as_path(), *f), (NsKind::Net, path, found));
            let msg = err.to_string();
            assert!(
                msg.contains(&path.display().to_string()) && msg.contains(found),
                "{msg}"
            );
            assert_eq!(
                std::io::Error::from(err).kind(),
                std::io::ErrorKind::InvalidInput
            );
        }
        other => panic!("{path:?}: expected NotANamespace, got {other:?}"),
    }
}

#[test]
fn files_that_are_not_namespaces_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("regular");
    std::fs::write(&file, "not a namespace").unwrap();
    assert_not_a_namespace(&file, "a regular file");
    assert_not_a_namespace(dir.path(), "a directory");
    assert_not_a_namespace("/dev/null".as_ref(), "a character device");
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    assert_not_a_namespace(&fifo, "a FIFO"); // and did not block waiting for a writer
    let sock = dir.path().join("sock");
    let _listener = UnixListener::bind(&sock).unwrap();
    assert_not_a_namespace(&sock, "a socket");
    // A /proc file that is not a namespace.
    assert_not_a_namespace("/proc/self/status".as_ref(), "a regular file");
}

#[test]
fn a_missing_path_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    for path in [
        missing.clone(),
        missing.join("deeper"),
        dir.path().join("f/x"),
    ] {
        match Namespace::open(&path, NsKind::Ipc) {
            Err(Error::NotFound {
                kind: NsKind::Ipc,
                path: p,
                errno: Errno::ENOENT,
                ..
            }) => assert_eq!(p, path),
            other => panic!("{path:?}: expected NotFound (ENOENT), got {other:?}"),
        }
    }
    // A path through a regular file is not found either, and says why:
    // ENOTDIR, the errno the kernel returned, not ENOENT.
    std::fs::write(dir.path().join("f"), "").unwrap();
    let err = Namespace::open(dir.path().join("f/x"), NsKind::Ipc).unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotFound {
                errno: Errno::ENOTDIR,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.errno(), Some(Errno::ENOTDIR));
    assert_eq!(
        std::io::Error::from(err).kind(),
        std::io::ErrorKind::NotFound
    );
    // A set read from a "directory" that is a file says so, and names the
    // file, not a kind.
    match NsSet::from_dir(dir.path().join("f"), NsKind::Uts) {
        Err(
            err @ Error::NotANamespaceDir {
                found: "a regular file",
                errno: Errno::ENOTDIR,
                ..
            },
        ) => {
            let msg = err.to_string();
            assert!(
                msg.contains(&*dir.path().join("f").to_string_lossy()),
                "{msg}"
            );
            assert!(msg.contains("(a regular file)"), "{msg}");
            assert!(
                !msg.contains("does not exist") && !msg.contains("uts namespace"),
                "{msg}"
            );
        }
        other => panic!("expected NotANamespaceDir, got {other:?}"),
    }
}

#[test]
fn bad_names_are_refused_before_any_lookup() {
    let long = "n".repeat(256);
    for name in ["", ".", "..", "a/b", "/etc/passwd", "x\0y", long.as_str()] {
        match Namespace::named(name) {
            Err(err @ Error::InvalidName { .. }) => {
                let msg = err.to_string();
                assert!(msg.contains(&format!("{name:?}")), "{msg}");
            }
            other => panic!("{name:?}: expected InvalidName, got {other:?}"),
        }
    }
}

#[test]
fn named_opens_what_ip_netns_made_and_reports_a_missing_name() {
    let named = NamedNetns::new();
    let ns = Namespace::named(&named.name).unwrap();
    assert_eq!(ns.kind(), NsKind::Net);
    assert_eq!(ns.id().ino(), named.ns.ino());
    assert_eq!(ns.path(), Some(named.path.as_path()));

    let missing = nsguard_suite::unique_name("nsguard-missing");
    match Namespace::named(&missing) {
        Err(err @ Error::NotFound { .. }) => {
            assert_eq!(
                err.path(),
                Some(std::path::Path::new("/run/netns").join(&missing).as_path())
            );
            assert!(err.to_string().contains("ip netns list"), "{err}");
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    // A name whose entry is not a namespace.
    let bogus =
        std::path::Path::new("/run/netns").join(nsguard_suite::unique_name("nsguard-bogus"));
    std::fs::write(&bogus, "").unwrap();
    let result = Namespace::named(bogus.file_name().unwrap().to_str().unwrap());
    std::fs::remove_file(&bogus).unwrap();
    assert!(
        matches!(result, Err(Error::NotANamespace { .. })),
        "{result:?}"
    );
}

#[test]
fn of_pid_reads_a_live_process_and_names_a_dead_one() {
    let mut child = ChildGuard::spawn_in_new(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWUTS);
    let pid = child.pid();
    let net = Namespace::of_pid(pid, NsKind::Net).unwrap();
    assert_eq!(net.id().ino(), path_ino(format!("/proc/{pid}/ns/net")));
    assert_ne!(net.id().ino(), main_thread_ino(NsKind::Net));
    let set = NsSet::of_pid(pid, NsKind::Net | NsKind::Uts | NsKind::Ipc).unwrap();
    assert_eq!(set.kinds(), NsKind::Net | NsKind::Uts | NsKind::Ipc);
    assert_eq!(set.get(NsKind::Net), Some(&net));
    assert_eq!(
        set.get(NsKind::Uts).unwrap().id().ino(),
        path_ino(format!("/proc/{pid}/ns/uts"))
    );
    assert_eq!(
        set.get(NsKind::Ipc).unwrap().id().ino(),
        main_thread_ino(NsKind::Ipc)
    );

    child.kill();
    for result in [
        Namespace::of_pid(pid, NsKind::Net).map(|_| ()),
        NsSet::of_pid(pid, NsKind::Net).map(|_| ()),
    ] {
        match result {
            Err(err @ Error::NoSuchProcess { .. }) => {
                let Error::NoSuchProcess { pid: p, kind, .. } = err else {
                    unreachable!()
                };
                assert_eq!((p, kind), (pid, NsKind::Net));
            }
            other => panic!("dead pid {pid}: expected NoSuchProcess, got {other:?}"),
        }
    }
    for bad in [0, 1 << 31, u32::MAX] {
        assert!(
            matches!(Namespace::of_pid(bad, NsKind::Net), Err(Error::InvalidPid { pid, .. }) if pid == bad)
        );
        assert!(matches!(
            NsSet::of_pid(bad, NsKind::Uts),
            Err(Error::InvalidPid { .. })
        ));
    }
}

#[test]
fn current_is_the_calling_threads_namespace_not_the_processes() {
    let host = Namespace::current(NsKind::Net).unwrap();
    assert_eq!(host.id().ino(), thread_ino(NsKind::Net));
    let (inside, seen) = on_fresh_thread(|| {
        unshare(CloneFlags::CLONE_NEWNET).unwrap();
        (
            thread_ino(NsKind::Net),
            Namespace::current(NsKind::Net).unwrap(),
        )
    });
    assert_ne!(inside, host.id().ino(), "the thread moved");
    assert_eq!(
        seen.id().ino(),
        inside,
        "current() saw the thread's own netns"
    );
    assert_eq!(
        main_thread_ino(NsKind::Net),
        host.id().ino(),
        "the main thread did not move"
    );
    assert_eq!(Namespace::current(NsKind::Net).unwrap(), host);

    // pid and time: the namespaces a thread's children go to.
    let (for_children, seen) = on_fresh_thread(|| {
        unshare(CloneFlags::CLONE_NEWPID).unwrap();
        // The link dangles until the namespace has its first process.
        let _init = ChildGuard::spawn_in_new(CloneFlags::empty());
        (
            thread_ino(NsKind::Pid),
            Namespace::current(NsKind::Pid).unwrap(),
        )
    });
    assert_ne!(for_children, main_thread_ino(NsKind::Pid));
    assert_eq!(seen.id().ino(), for_children);
}

#[test]
fn current_sets_of_every_kind() {
    let kinds = nsguard_suite::kinds_this_kernel_has("current_sets_of_every_kind", &NsKind::ALL);
    assert_eq!(NsKinds::supported(), kinds.iter().copied().collect());
    let set = NsSet::current(NsKinds::supported()).unwrap();
    assert_eq!(set.len(), kinds.len());
    for ns in &set {
        assert_eq!(ns.id().ino(), thread_ino(ns.kind()), "{}", ns.kind());
    }
    assert!(NsSet::current(NsKinds::EMPTY).unwrap().is_empty());
}

#[test]
fn from_dir_reads_proc_and_bind_mount_directories() {
    let mut child = ChildGuard::spawn_in_new(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWIPC);
    let dir = format!("/proc/{}/ns", child.pid());
    let set = NsSet::from_dir(&dir, NsKind::Net | NsKind::Ipc | NsKind::Uts).unwrap();
    for kind in [NsKind::Net, NsKind::Ipc, NsKind::Uts] {
        assert_eq!(
            set.get(kind).unwrap().id().ino(),
            path_ino(format!("{dir}/{}", kind.proc_name()))
        );
    }
    assert_ne!(
        set.get(NsKind::Net).unwrap().id().ino(),
        main_thread_ino(NsKind::Net)
    );
    child.kill();

    // A runtime-style directory of bind mounts named by kind.
    let net = TempNs::new(NsKind::Net);
    let uts = TempNs::new(NsKind::Uts);
    let parent = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(net.path(), parent.path().join("net")).unwrap();
    std::os::unix::fs::symlink(uts.path(), parent.path().join("uts")).unwrap();
    let set = NsSet::from_dir(parent.path(), NsKind::Net | NsKind::Uts).unwrap();
    assert_eq!(set.get(NsKind::Net).unwrap().id().ino(), net.ino());
    assert_eq!(set.get(NsKind::Uts).unwrap().id().ino(), uts.ino());

    match NsSet::from_dir(parent.path(), NsKind::Net | NsKind::Ipc) {
        Err(Error::NotFound {
            kind: NsKind::Ipc,
            path,
            ..
        }) => assert_eq!(path, parent.path().join("ipc")),
        other => panic!("expected NotFound for ipc, got {other:?}"),
    }
    // A missing directory is named, not the first kind looked for.
    match NsSet::from_dir(parent.path().join("missing"), NsKind::Cgroup | NsKind::Net) {
        Err(
            err @ Error::NotANamespaceDir {
                errno: Errno::ENOENT,
                ..
            },
        ) => {
            let msg = err.to_string();
            let missing = parent.path().join("missing");
            assert!(msg.starts_with(&*missing.to_string_lossy()), "{msg}");
            assert!(msg.contains("(it does not exist)"), "{msg}");
            assert!(!msg.contains("cgroup namespace"), "{msg}");
            assert_eq!(err.path(), Some(parent.path().join("missing").as_path()));
            assert_eq!(
                std::io::Error::from(err).kind(),
                std::io::ErrorKind::NotFound
            );
        }
        other => panic!("expected NotANamespaceDir, got {other:?}"),
    }
}

#[test]
fn sets_hold_one_namespace_per_kind() {
    let a = TempNs::new(NsKind::Net);
    let b = TempNs::new(NsKind::Net);
    let u = TempNs::new(NsKind::Uts);
    let open = |t: &TempNs| Namespace::open(t.path(), t.kind()).unwrap();

    let mut set = NsSet::from(open(&a)).with(open(&u));
    assert_eq!((set.len(), set.kinds()), (2, NsKind::Net | NsKind::Uts));
    let replaced = set.insert(open(&b)).expect("replaces the net namespace");
    assert_eq!(replaced.id().ino(), a.ino());
    assert_eq!(set.get(NsKind::Net).unwrap().id().ino(), b.ino());
    assert_eq!(set.len(), 2);
    let kinds: Vec<_> = set.iter().map(Namespace::kind).collect();
    assert_eq!(kinds, [NsKind::Net, NsKind::Uts], "iteration in kind order");

    let collected: NsSet = [open(&u), open(&a), open(&b)].into_iter().collect();
    assert_eq!(
        collected.get(NsKind::Net).unwrap().id().ino(),
        b.ino(),
        "later wins"
    );
    let cloned = collected.try_clone().unwrap();
    assert_eq!(
        cloned.iter().map(Namespace::id).collect::<Vec<_>>(),
        collected.iter().map(Namespace::id).collect::<Vec<_>>()
    );
    let owned: Vec<Namespace> = cloned.into_iter().collect();
    assert_eq!(owned.len(), 2);

    assert!(set.remove(NsKind::Uts).is_some());
    assert!(!set.contains(NsKind::Uts));
    assert!(set.remove(NsKind::Uts).is_none());
    assert!(format!("{set:?}").contains(&format!("net:[{}]", b.ino())));
}

#[test]
fn namespace_fds_are_close_on_exec() {
    let temp = TempNs::new(NsKind::Uts);
    let ns = Namespace::open(temp.path(), NsKind::Uts).unwrap();
    let flags =
        nix::fcntl::fcntl(std::os::fd::AsFd::as_fd(&ns), nix::fcntl::FcntlArg::F_GETFD).unwrap();
    assert_ne!(flags & libc::FD_CLOEXEC, 0);
    let fd: std::os::fd::OwnedFd = ns.into();
    let from_fd = Namespace::from_fd(fd, NsKind::Uts).unwrap();
    assert_eq!(from_fd.id().ino(), temp.ino());
    let file: std::os::fd::OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
    assert!(matches!(
        Namespace::from_fd(file, NsKind::Uts),
        Err(Error::NotANamespace { .. })
    ));
}

#[test]
fn sets_are_equal_when_they_hold_the_same_namespaces() {
    let a = NsSet::current(NsKind::Net | NsKind::Uts).unwrap();
    let b = NsSet::of_pid(std::process::id(), NsKind::Uts | NsKind::Net).unwrap();
    assert_eq!(a, b);
    let temp = nsguard_suite::TempNs::new(NsKind::Net);
    let c = NsSet::current(NsKind::Uts)
        .unwrap()
        .with(nsguard::Namespace::open(temp.path(), NsKind::Net).unwrap());
    assert_ne!(a, c);
    assert_ne!(a, NsSet::current(NsKind::Net).unwrap());
}
