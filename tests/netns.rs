//! Named network namespaces, interoperating with iproute2 both ways.

mod support;

use std::process::Command;

use nsguard::{netns, Error, Namespace, NsKind, NsSet};
use support::{path_ino, thread_ino, unique_name};

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

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
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
        .filter(|l| l.split_whitespace().nth(4) == Some("/run/netns"))
        .last()
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
