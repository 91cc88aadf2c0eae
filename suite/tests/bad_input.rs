//! Every bad input gets its own error variant and a message that names the
//! input; nothing panics, nothing is changed.

use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use nsguard::{netns, Error, Namespace, NsKind, NsSet};
use nsguard_suite::{main_thread_ino, thread_ino, ChildGuard, TempNs};

/// The variant's name, to compare without caring about its fields.
fn variant(err: &Error) -> &'static str {
    match err {
        Error::NotFound { .. } => "NotFound",
        Error::NoSuchProcess { .. } => "NoSuchProcess",
        Error::InvalidPid { .. } => "InvalidPid",
        Error::PermissionDenied { .. } => "PermissionDenied",
        Error::NotANamespace { .. } => "NotANamespace",
        Error::WrongKind { .. } => "WrongKind",
        Error::AlreadyExists { .. } => "AlreadyExists",
        Error::InvalidName { .. } => "InvalidName",
        Error::UnknownKind { .. } => "UnknownKind",
        Error::UnsupportedOnThread { .. } => "UnsupportedOnThread",
        Error::CannotCreate { .. } => "CannotCreate",
        Error::NotANamespaceDir { .. } => "NotANamespaceDir",
        _ => "other",
    }
}

#[test]
fn every_bad_input_gets_its_own_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("regular");
    std::fs::write(&file, "x").unwrap();
    let sock = dir.path().join("sock");
    let _listener = UnixListener::bind(&sock).unwrap();
    let uts = TempNs::new(NsKind::Uts);
    let mut dead = ChildGuard::spawn_in_new(nix::sched::CloneFlags::empty());
    let dead_pid = dead.pid();
    dead.kill();
    let long = "n".repeat(300);
    let s = |p: &PathBuf| p.display().to_string();

    type Case<'a> = (
        &'a str,
        Box<dyn Fn() -> Result<(), Error> + 'a>,
        &'a str,
        String,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "missing path",
            Box::new(|| Namespace::open(dir.path().join("nope"), NsKind::Net).map(drop)),
            "NotFound",
            s(&dir.path().join("nope")),
        ),
        (
            "directory",
            Box::new(|| Namespace::open(dir.path(), NsKind::Net).map(drop)),
            "NotANamespace",
            dir.path().display().to_string(),
        ),
        (
            "regular file",
            Box::new(|| Namespace::open(&file, NsKind::Net).map(drop)),
            "NotANamespace",
            s(&file),
        ),
        (
            "/dev/null",
            Box::new(|| Namespace::open("/dev/null", NsKind::Net).map(drop)),
            "NotANamespace",
            "/dev/null".into(),
        ),
        (
            "socket",
            Box::new(|| Namespace::open(&sock, NsKind::Net).map(drop)),
            "NotANamespace",
            s(&sock),
        ),
        (
            "wrong kind",
            Box::new(|| Namespace::open(uts.path(), NsKind::Net).map(drop)),
            "WrongKind",
            uts.path().display().to_string(),
        ),
        (
            "name with /",
            Box::new(|| Namespace::named("a/b").map(drop)),
            "InvalidName",
            "\"a/b\"".into(),
        ),
        (
            "name ..",
            Box::new(|| Namespace::named("..").map(drop)),
            "InvalidName",
            "\"..\"".into(),
        ),
        (
            "empty name",
            Box::new(|| Namespace::named("").map(drop)),
            "InvalidName",
            "\"\"".into(),
        ),
        (
            "over-long name",
            Box::new(|| Namespace::named(&long).map(drop)),
            "InvalidName",
            long.clone(),
        ),
        (
            "netns::add with /",
            Box::new(|| netns::add("x/y").map(drop)),
            "InvalidName",
            "\"x/y\"".into(),
        ),
        (
            "dead pid",
            Box::new(|| Namespace::of_pid(dead_pid, NsKind::Net).map(drop)),
            "NoSuchProcess",
            format!("pid {dead_pid}"),
        ),
        (
            "dead pid, set",
            Box::new(|| NsSet::of_pid(dead_pid, NsKind::Net | NsKind::Uts).map(drop)),
            "NoSuchProcess",
            format!("pid {dead_pid}"),
        ),
        (
            "pid 0",
            Box::new(|| Namespace::of_pid(0, NsKind::Net).map(drop)),
            "InvalidPid",
            "pid 0".into(),
        ),
        (
            "pid over i32::MAX",
            Box::new(|| Namespace::of_pid(1 << 31, NsKind::Net).map(drop)),
            "InvalidPid",
            "pid 2147483648".into(),
        ),
        (
            "unknown kind",
            Box::new(|| Ok("network".parse::<NsKind>().map(drop)?)),
            "UnknownKind",
            "\"network\"".into(),
        ),
        (
            "missing dir",
            Box::new(|| NsSet::from_dir(dir.path().join("none"), NsKind::Net).map(drop)),
            "NotANamespaceDir",
            s(&dir.path().join("none")),
        ),
        (
            "pid namespace to create",
            Box::new(|| NsSet::unshare(NsKind::Pid).map(drop)),
            "CannotCreate",
            "pid namespace".into(),
        ),
    ];
    for (what, call, expected, named) in &cases {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(call));
        let err = match result {
            Ok(Err(err)) => err,
            Ok(Ok(())) => panic!("{what}: accepted"),
            Err(_) => panic!("{what}: panicked"),
        };
        assert_eq!(variant(&err), *expected, "{what}: {err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains(named.as_str()),
            "{what}: the message does not name {named:?}: {msg}"
        );
        let _ = std::io::Error::from(err); // converts too
    }
    assert_eq!(
        thread_ino(NsKind::Net),
        main_thread_ino(NsKind::Net),
        "nothing changed"
    );
}

const NO_ADMIN: &str = "NSGUARD_TEST_WITHOUT_CAP_SYS_ADMIN";

/// Runs this very test again without CAP_SYS_ADMIN (root otherwise), with
/// a namespace to use prepared here.
#[test]
fn without_cap_sys_admin_every_call_says_which_capability_is_missing() {
    if let Some(path) = std::env::var_os(NO_ADMIN) {
        return without_cap_sys_admin(PathBuf::from(path));
    }
    let net = TempNs::new(NsKind::Net);
    let out = std::process::Command::new("setpriv")
        .args(["--bounding-set=-sys_admin", "--inh-caps=-sys_admin"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "without_cap_sys_admin_every_call_says_which_capability_is_missing",
            "--nocapture",
        ])
        .env(NO_ADMIN, net.path())
        .output()
        .expect("setpriv (util-linux)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains("1 passed"), "{text}");
}

fn without_cap_sys_admin(path: PathBuf) {
    use nsguard::CommandExt;
    use std::process::Command;
    let caps = caps::read(None, caps::CapSet::Effective).unwrap();
    assert!(
        !caps.contains(&caps::Capability::CAP_SYS_ADMIN),
        "the child really lacks it"
    );
    // Opening needs no capability.
    let set = NsSet::from(Namespace::open(&path, NsKind::Net).unwrap());
    let name = nsguard_suite::unique_name("nsguard-noadmin");
    type Call<'a> = (&'a str, Box<dyn Fn() -> Result<(), Error> + 'a>);
    let calls: Vec<Call<'_>> = vec![
        ("enter", Box::new(|| set.enter().map(drop))),
        ("run", Box::new(|| set.run(|| ()))),
        (
            "unshare net",
            Box::new(|| NsSet::unshare(NsKind::Net).map(drop)),
        ),
        (
            "unshare user+net",
            Box::new(|| NsSet::unshare(NsKind::User | NsKind::Net).map(drop)),
        ),
        (
            "spawn_in",
            Box::new(|| Command::new("true").spawn_in(&set).map(drop)),
        ),
        ("netns::add", Box::new(|| netns::add(&name).map(drop))),
    ];
    for (what, call) in calls {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(call));
        match result {
            Ok(Err(err @ Error::PermissionDenied { .. })) => {
                assert!(err.to_string().contains("CAP_SYS_ADMIN"), "{what}: {err}");
            }
            // Making a user namespace needs no capability: the net one with
            // it is owned by it, so this may succeed.
            Ok(Ok(())) if what == "unshare user+net" => {}
            other => panic!("{what}: expected PermissionDenied, got {other:?}"),
        }
    }
    assert!(!nsguard::is_poisoned());
    let _ = netns::delete(&name);
}

/// A spawned process whose working directory is missing inside its mount
/// namespace, or whose ids the kernel refuses, gets an error that names
/// that step, not a failed creation of namespaces it never asked for.
#[test]
fn a_spawned_process_that_fails_after_entering_says_where() {
    use nsguard::{CommandExt, Credentials, Errno};
    let m = TempNs::new(NsKind::Mnt);
    let mnt = NsSet::from(nsguard_suite::open(&m));
    let err = std::process::Command::new("true")
        .current_dir("/no/such/dir/nsguard")
        .spawn_in(&mnt)
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            Error::Io {
                errno: Errno::ENOENT,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.path(),
        Some(std::path::Path::new("/no/such/dir/nsguard"))
    );
    assert!(msg.contains("working directory"), "{msg}");
    assert!(!msg.contains("creating new"), "{msg}");

    // Ids not mapped in the set's user namespace (it maps root only).
    let user = NsSet::unshare(NsKind::User | NsKind::Net).unwrap();
    let err = std::process::Command::new("true")
        .spawn_in_as(&user, &Credentials::new(1000, 1000))
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(msg.contains("setresuid") && msg.contains("mapped"), "{msg}");
    assert!(!msg.contains("creating new"), "{msg}");
}

/// unpersist on a namespace that is not a bind mount (the kernel's own
/// link) says so, instead of a permission error; nothing is touched.
#[test]
fn unpersist_of_a_namespace_that_is_no_bind_mount_says_so() {
    let err = Namespace::unpersist("/proc/self/ns/net", NsKind::Net).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            Error::NotPersisted {
                kind: NsKind::Net,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(msg.contains("not a bind mount"), "{msg}");
    assert!(
        !msg.contains("permission") && !msg.contains("root"),
        "{msg}"
    );
    assert!(std::path::Path::new("/proc/self/ns/net").exists());
}

/// Inside a user namespace that does not own the mount namespace (as under
/// `unshare -Ur`), `netns::add` says that a mount namespace of its own is
/// what is missing, and does not call /run/netns a namespace. In a child
/// process in a new user namespace.
#[test]
fn netns_add_inside_a_user_namespace_names_the_missing_mount_namespace() {
    use nsguard::CommandExt;
    let name = "netns_add_inside_a_user_namespace_names_the_missing_mount_namespace";
    if !nsguard_suite::in_child_process_spawned(name, std::time::Duration::from_secs(60), |cmd| {
        cmd.spawn_in(&NsSet::unshare(NsKind::User).unwrap())
            .unwrap()
    }) {
        return;
    }
    let netns_name = nsguard_suite::unique_name("nsguard-test");
    match netns::add(&netns_name) {
        Err(err @ Error::PermissionDenied { .. }) => {
            let msg = err.to_string();
            assert!(msg.contains("unshare -Urm"), "{msg}");
            assert!(!msg.contains("a net namespace)"), "{msg}");
            assert!(!msg.contains("inside a user namespace that owns"), "{msg}");
        }
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
    assert!(!std::path::Path::new("/run/netns")
        .join(&netns_name)
        .exists());
}
