//! Named network namespaces, interoperating with iproute2 both ways.

mod support;

use std::process::Command;

use nsguard::{netns, Error, Namespace, NsKind, NsSet};
use support::{ip, path_ino, thread_ino, unique_name};

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
    let again = Namespace::open(NsKind::Uts, &path).unwrap();
    assert_eq!(again.id().ino(), ino);
    let name = NsSet::from(again)
        .run(|| nix::unistd::gethostname().unwrap())
        .unwrap();
    assert_eq!(name, "kept");
    Namespace::unpersist(&path).unwrap();
    assert!(!path.exists());
    assert!(!mounted(&path.display().to_string()));
    assert!(matches!(
        Namespace::unpersist(&path),
        Err(Error::NotFound { .. })
    ));
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
    let result = support::on_fresh_thread(|| {
        // The final open of the new name, and only it, fails with EMFILE,
        // a real error from the kernel: openat(AT_FDCWD, path, the flags
        // every namespace fd is opened with). The namespace itself is
        // opened relative to /proc/thread-self/ns, not AT_FDCWD.
        let flags = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK;
        support::fail_syscall_on_this_thread(
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
            assert_eq!(errno, nix::errno::Errno::EMFILE);
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
