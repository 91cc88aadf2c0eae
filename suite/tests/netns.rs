//! Named network namespaces, interoperating with iproute2 both ways.

use std::process::Command;

use nsguard::{netns, Errno, Error, Namespace, NsKind, NsSet};
use nsguard_suite::{ip, path_ino, thread_ino, unique_name};

/// Deletes the name on drop, with nsguard or with `ip`.
struct Named {
    name: String,
    by_ip: bool,
}

impl Drop for Named {
    fn drop(&mut self) {
        if self.by_ip {
            let _ = Command::new("ip")
                .args(["netns", "delete", &self.name])
                .status();
        } else {
            let _ = netns::delete(&self.name);
        }
    }
}

fn mounted(path: &str) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split_whitespace().nth(4) == Some(path))
}

#[test]
fn what_nsguard_adds_ip_netns_lists_and_execs_in() {
    let name = unique_name("nsguard-add");
    let guard = Named {
        name: name.clone(),
        by_ip: false,
    };
    let ns = netns::add(&name).unwrap();
    let path = format!("/run/netns/{name}");
    assert_eq!(ns.id().ino(), path_ino(&path));
    assert!(netns::list().unwrap().contains(&name));
    assert!(ip(&["netns", "list"])
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name.as_str())));
    let links = ip(&["netns", "exec", &name, "ip", "-o", "link"]);
    let names: Vec<&str> = links
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(str::trim)
        .collect();
    assert_eq!(names, ["lo"]);
    // The directory is a shared mount, as iproute2 makes it. (Processes
    // that prepared it at the same moment may each have bound it onto
    // itself, as `ip netns add` can: the topmost mount is the one in use.)
    let line = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        // The last one: mounts may be stacked there, and the top one counts.
        .rfind(|l| l.split_whitespace().nth(4) == Some("/run/netns"))
        .map(str::to_owned)
        .expect("/run/netns is a mount point");
    assert!(line.contains("shared:"), "{line}");

    assert!(mounted(&path));
    netns::delete(&name).unwrap();
    std::mem::forget(guard);
    assert!(!mounted(&path), "nothing left mounted");
    assert!(!std::path::Path::new(&path).exists());
    assert!(!netns::list().unwrap().contains(&name));
    assert!(matches!(netns::delete(&name), Err(Error::NotFound { .. })));
}

#[test]
fn what_ip_netns_adds_nsguard_opens_and_runs_in() {
    let name = unique_name("nsguard-ip");
    ip(&["netns", "add", &name]);
    let _guard = Named {
        name: name.clone(),
        by_ip: true,
    };
    let ns = netns::open(&name).unwrap();
    assert_eq!(ns.id().ino(), path_ino(format!("/run/netns/{name}")));
    let seen = NsSet::from(Namespace::named(&name).unwrap())
        .run(|| thread_ino(NsKind::Net))
        .unwrap();
    assert_eq!(seen, ns.id().ino());
}

#[test]
fn adding_refuses_bad_and_taken_names() {
    let name = unique_name("nsguard-dup");
    let _guard = Named {
        name: name.clone(),
        by_ip: false,
    };
    netns::add(&name).unwrap();
    match netns::add(&name) {
        Err(err @ Error::AlreadyExists { .. }) => assert!(err.to_string().contains(&name), "{err}"),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    for bad in ["", "..", "a/b"] {
        assert!(
            matches!(netns::add(bad), Err(Error::InvalidName { .. })),
            "{bad:?}"
        );
        assert!(
            matches!(netns::delete(bad), Err(Error::InvalidName { .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn persist_keeps_a_namespace_alive_after_every_handle_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("uts");
    let ino = {
        let set = NsSet::unshare(NsKind::Uts).unwrap();
        let ns = set.get(NsKind::Uts).unwrap();
        ns.persist(&path).unwrap();
        set.run(|| nix::unistd::sethostname("kept").unwrap())
            .unwrap();
        ns.id().ino()
    };
    let again = Namespace::open(&path, NsKind::Uts).unwrap();
    assert_eq!(again.id().ino(), ino);
    let name = NsSet::from(again)
        .run(|| nix::unistd::gethostname().unwrap())
        .unwrap();
    assert_eq!(name, "kept");
    Namespace::unpersist(&path, NsKind::Uts).unwrap();
    assert!(!path.exists());
    assert!(!mounted(&path.display().to_string()));
    assert!(matches!(
        Namespace::unpersist(&path, NsKind::Uts),
        Err(Error::NotFound {
            kind: NsKind::Uts,
            ..
        })
    ));
}

#[test]
fn persist_and_unpersist_errors_name_the_namespace_kind() {
    let dir = tempfile::tempdir().unwrap();
    let set = NsSet::unshare(NsKind::Uts | NsKind::Ipc).unwrap();
    let uts = set.get(NsKind::Uts).unwrap();
    // A directory that does not exist: creating the file fails.
    let missing = dir.path().join("no/such/dir/uts");
    match uts.persist(&missing) {
        Err(err @ Error::Io { .. }) => {
            assert_eq!(err.ns_kind(), Some(NsKind::Uts), "{err}");
            assert_eq!(err.errno(), Some(Errno::ENOENT), "{err}");
            assert_eq!(err.path(), Some(missing.as_path()));
            assert!(err.to_string().contains("a uts namespace"), "{err}");
        }
        other => panic!("expected Io, got {other:?}"),
    }
    match Namespace::unpersist(&missing, NsKind::Ipc) {
        Err(Error::NotFound { kind, errno, .. }) => {
            assert_eq!((kind, errno), (NsKind::Ipc, Errno::ENOENT));
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[test]
fn unpersist_never_unmounts_what_is_not_a_namespace_of_the_kind() {
    let dir = tempfile::tempdir().unwrap();
    let set = NsSet::unshare(NsKind::Uts).unwrap();
    let uts = set.get(NsKind::Uts).unwrap();
    let kept = dir.path().join("uts");
    uts.persist(&kept).unwrap();
    // Also when this test fails: nothing stays mounted.
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    let _unmount = Unmount(kept.clone());
    // A uts namespace is not unpersisted as a net namespace: refused, and
    // still kept (the file is still the namespace, by its inode).
    match Namespace::unpersist(&kept, NsKind::Net) {
        Err(Error::WrongKind {
            expected, found, ..
        }) => {
            assert_eq!((expected, found), (NsKind::Net, NsKind::Uts));
        }
        other => panic!("expected WrongKind, got {other:?}"),
    }
    assert_eq!(path_ino(&kept), uts.id().ino());
    assert!(mounted(&kept.display().to_string()));
    // A file with content is not a namespace, nor a leftover of one.
    let file = dir.path().join("data");
    std::fs::write(&file, "keep me").unwrap();
    assert!(matches!(
        Namespace::unpersist(&file, NsKind::Uts),
        Err(Error::NotANamespace {
            kind: NsKind::Uts,
            ..
        })
    ));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    // An empty file whose bind mount is gone (as persist leaves it when
    // the mount was undone by hand) is only removed.
    let stale = dir.path().join("stale");
    std::fs::write(&stale, "").unwrap();
    Namespace::unpersist(&stale, NsKind::Uts).unwrap();
    assert!(!stale.exists());
    // The right kind: unmounted and removed.
    Namespace::unpersist(&kept, NsKind::Uts).unwrap();
    assert!(!mounted(&kept.display().to_string()));
    assert!(!kept.exists());
}

#[test]
fn a_name_that_cannot_be_opened_once_made_is_removed_again() {
    let name = unique_name("nsguard-add-fails");
    let path = format!("{}/{name}", netns::RUN_DIR);
    // Also when this test fails: no mount, no file left behind.
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(self.0.as_str(), nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _cleanup = Cleanup(path.clone());
    let result = nsguard_suite::on_fresh_thread(|| {
        // The final open of the new name, and only it, fails with EMFILE,
        // a real error from the kernel: openat(AT_FDCWD, path, the flags
        // every namespace fd is opened with). The namespace itself is
        // opened relative to /proc/thread-self/ns, not AT_FDCWD.
        let flags = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK;
        nsguard_suite::fail_syscall_on_this_thread(
            libc::SYS_openat,
            &[(0, libc::AT_FDCWD as u32), (2, flags as u32)],
            libc::EMFILE,
        );
        netns::add(&name)
    });
    match result {
        Err(Error::Io {
            errno,
            path: Some(p),
            ..
        }) => {
            assert_eq!(errno, nsguard::Errno::EMFILE);
            assert_eq!(p, std::path::Path::new(&path));
        }
        other => panic!("expected Io(EMFILE), got {other:?}"),
    }
    assert!(!mounted(&path), "{path} is still mounted");
    assert!(
        !std::path::Path::new(&path).exists(),
        "{path} is still there"
    );
}
