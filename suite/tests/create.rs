//! Creating namespaces and spawning processes into sets, on the real
//! kernel, from a process that has several threads running (the test
//! harness always does; `busy_threads` adds more to be sure).

use std::process::{Command, Stdio};
use std::sync::mpsc;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nsguard::{CommandExt, Error, IdMap, Namespace, NsKind, NsKinds, NsSet, Unshare};
use nsguard_suite::{main_thread_ino, path_ino, thread_ino, ChildGuard, TempNs};

/// Keeps a few extra threads alive until dropped: user namespaces must be
/// created without the kernel's single-threaded path.
struct BusyThreads(Vec<(mpsc::Sender<()>, std::thread::JoinHandle<()>)>);

fn busy_threads() -> BusyThreads {
    BusyThreads(
        (0..3)
            .map(|_| {
                let (stop, stopped) = mpsc::channel::<()>();
                // Nothing is ever sent: it returns when the sender is dropped.
                (stop, std::thread::spawn(move || _ = stopped.recv()))
            })
            .collect(),
    )
}

impl Drop for BusyThreads {
    fn drop(&mut self) {
        for (stop, thread) in self.0.drain(..) {
            drop(stop);
            let _ = thread.join();
        }
    }
}

fn output(cmd: &mut Command, set: &NsSet) -> String {
    let out = cmd
        .stdout(Stdio::piped())
        .spawn_in(set)
        .unwrap()
        .wait_with_output()
        .unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", out.status);
    String::from_utf8(out.stdout).unwrap()
}

fn sh(script: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]);
    cmd
}

#[test]
fn new_namespaces_of_each_thread_kind_are_new_and_the_caller_stays() {
    for kind in nsguard_suite::kinds_this_kernel_has(
        "new_namespaces_of_each_thread_kind_are_new_and_the_caller_stays",
        &[
            NsKind::Net,
            NsKind::Uts,
            NsKind::Ipc,
            NsKind::Cgroup,
            NsKind::Mnt,
            NsKind::Time,
        ],
    ) {
        let set = NsSet::unshare(kind).unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(set.kinds(), NsKinds::from(kind));
        let ns = set.get(kind).unwrap();
        assert_ne!(ns.id().ino(), main_thread_ino(kind), "{kind}: new");
        assert_eq!(
            thread_ino(kind),
            main_thread_ino(kind),
            "{kind}: the caller did not move"
        );
    }
}

#[test]
fn a_new_netns_has_only_lo() {
    let set = NsSet::unshare(NsKind::Net).unwrap();
    let names = set
        .run(|| {
            nix::net::if_::if_nameindex()
                .unwrap()
                .iter()
                .map(|i| i.name().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        })
        .unwrap();
    assert_eq!(names, ["lo"]);
}

#[test]
fn a_tmpfs_mounted_in_a_new_mount_namespace_never_reaches_the_host() {
    // A shared mount on the host: without the private remount, a mount made
    // below it in the new namespace would propagate back here.
    let shared = tempfile::tempdir().unwrap();
    mount(
        Some(shared.path()),
        shared.path(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
    struct Unmount<'a>(&'a std::path::Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = umount2(self.0, MntFlags::MNT_DETACH);
        }
    }
    let _cleanup = Unmount(shared.path());
    mount(
        None::<&str>,
        shared.path(),
        None::<&str>,
        MsFlags::MS_SHARED,
        None::<&str>,
    )
    .unwrap();
    let inner = shared.path().join("inner");
    std::fs::create_dir(&inner).unwrap();

    let set = NsSet::unshare(NsKind::Mnt).unwrap();
    let seen = set
        .run(|| {
            mount(
                Some("tmpfs"),
                &inner,
                Some("tmpfs"),
                MsFlags::empty(),
                None::<&str>,
            )
            .unwrap();
            std::fs::write(inner.join("marker"), "inside").unwrap();
            std::fs::read_to_string(inner.join("marker")).unwrap()
        })
        .unwrap();
    assert_eq!(seen, "inside");
    assert!(
        !inner.join("marker").exists(),
        "the host does not see the tmpfs"
    );
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo.contains(&inner.display().to_string()),
        "nothing propagated"
    );
}

#[test]
fn user_and_net_from_a_multithreaded_process_and_a_process_inside_is_root_with_only_lo() {
    let _busy = busy_threads();
    let set = NsSet::unshare(NsKind::User | NsKind::Net).unwrap();
    let (user, net) = (
        set.get(NsKind::User).unwrap(),
        set.get(NsKind::Net).unwrap(),
    );
    assert_ne!(user.id().ino(), main_thread_ino(NsKind::User));
    assert_eq!(
        net.owner().unwrap(),
        *user,
        "the net namespace is owned by the new user namespace"
    );
    let out = output(
        &mut sh("id -u; id -g; cat /proc/self/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '"),
        &set,
    );
    assert_eq!(out, "0\n0\nlo\n");
    assert_eq!(thread_ino(NsKind::User), main_thread_ino(NsKind::User));
}

#[test]
fn id_maps_are_written_as_given() {
    let set = Unshare::new(NsKind::User)
        .add_uid_map(IdMap {
            inside: 0,
            outside: 100_000,
            count: 1000,
        })
        .add_gid_map(IdMap {
            inside: 0,
            outside: 200_000,
            count: 10,
        })
        .create()
        .unwrap();
    let out = output(&mut sh("cat /proc/self/uid_map /proc/self/gid_map"), &set);
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines, [["0", "100000", "1000"], ["0", "200000", "10"]]);
}

#[test]
fn with_new_creates_inside_the_base_set() {
    let base = NsSet::unshare(NsKind::User).unwrap();
    let user = base.get(NsKind::User).unwrap();
    let set = base.with_new(NsKind::Net | NsKind::Uts).unwrap();
    assert_eq!(set.kinds(), NsKind::User | NsKind::Net | NsKind::Uts);
    assert_eq!(set.get(NsKind::User), Some(user));
    for kind in [NsKind::Net, NsKind::Uts] {
        assert_eq!(
            set.get(kind).unwrap().owner().unwrap(),
            *user,
            "{kind} owned by the base user ns"
        );
    }
    // Without a user namespace, on a thread: a new uts copies the base's.
    let uts = NsSet::unshare(NsKind::Uts).unwrap();
    uts.run(|| nix::unistd::sethostname("nsguard-base").unwrap())
        .unwrap();
    let more = uts.with_new(NsKind::Uts).unwrap();
    let name = more.run(|| nix::unistd::gethostname().unwrap()).unwrap();
    assert_eq!(name, "nsguard-base");
    assert_ne!(more.get(NsKind::Uts), uts.get(NsKind::Uts));
}

#[test]
fn with_new_from_a_base_that_mixes_owners() {
    // A new user namespace, and the host's net namespace, which it does not
    // own: the helper must enter the host net before the user namespace
    // (inside it, it has no capability over the host's).
    let user = NsSet::unshare(NsKind::User).unwrap();
    let base = user
        .try_clone()
        .unwrap()
        .with(Namespace::current(NsKind::Net).unwrap());
    let set = base.with_new(NsKind::Uts).unwrap();
    let (u, uts) = (
        set.get(NsKind::User).unwrap(),
        set.get(NsKind::Uts).unwrap(),
    );
    assert_eq!(
        uts.owner().unwrap(),
        *u,
        "owned by the base's user namespace"
    );
    assert_eq!(
        set.get(NsKind::Net).unwrap().id().ino(),
        main_thread_ino(NsKind::Net)
    );
    // A process spawned into it: in the host net, the new uts, root inside.
    let out = output(
        &mut sh("id -u; readlink /proc/self/ns/uts /proc/self/ns/net"),
        &set,
    );
    assert_eq!(
        out,
        format!(
            "0\nuts:[{}]\nnet:[{}]\n",
            uts.id().ino(),
            main_thread_ino(NsKind::Net)
        )
    );
}

#[test]
fn pid_cannot_be_created_without_a_process() {
    match NsSet::unshare(NsKind::Pid | NsKind::Net) {
        Err(
            err @ Error::CannotCreate {
                kind: NsKind::Pid, ..
            },
        ) => {
            assert!(err.to_string().contains("spawn a process"), "{err}");
        }
        other => panic!("expected CannotCreate, got {other:?}"),
    }
}

#[test]
fn a_process_in_a_new_pid_namespace_is_pid_1() {
    let out = sh("echo $$; readlink /proc/self/ns/pid")
        .stdout(Stdio::piped())
        .spawn_in_new(&NsSet::new(), NsKind::Pid)
        .unwrap()
        .wait_with_output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("1"));
    assert_ne!(
        lines.next().unwrap(),
        format!("pid:[{}]", main_thread_ino(NsKind::Pid))
    );
    assert_eq!(
        thread_ino(NsKind::Pid),
        main_thread_ino(NsKind::Pid),
        "the caller's pid_for_children"
    );
}

#[test]
fn a_process_spawned_into_an_existing_pid_namespace_is_inside() {
    let pid = TempNs::new(NsKind::Pid);
    let set = NsSet::from(Namespace::open(pid.path(), NsKind::Pid).unwrap());
    let out = output(Command::new("readlink").arg("/proc/self/ns/pid"), &set);
    assert_eq!(out.trim(), format!("pid:[{}]", pid.ino()));
}

#[test]
fn a_time_namespace_through_a_process() {
    if !nsguard_suite::require_time_ns("a_time_namespace_through_a_process") {
        return;
    }
    let set = NsSet::unshare(NsKind::Time).unwrap();
    let ino = set.get(NsKind::Time).unwrap().id().ino();
    let out = output(Command::new("readlink").arg("/proc/self/ns/time"), &set);
    assert_eq!(out.trim(), format!("time:[{ino}]"));
    assert_eq!(thread_ino(NsKind::Time), main_thread_ino(NsKind::Time));
}

#[test]
fn every_kind_at_once_and_no_namespace_fd_leaks_into_the_child() {
    let kinds: NsKinds = nsguard_suite::kinds_this_kernel_has(
        "every_kind_at_once_and_no_namespace_fd_leaks_into_the_child",
        &[
            NsKind::User,
            NsKind::Net,
            NsKind::Uts,
            NsKind::Ipc,
            NsKind::Mnt,
            NsKind::Time,
            NsKind::Cgroup,
        ],
    )
    .into_iter()
    .collect();
    let set = NsSet::unshare(kinds).unwrap();
    let mut child = ChildGuard::new(
        Command::new("sleep")
            .arg("infinity")
            .spawn_in(&set)
            .unwrap(),
    );
    let pid = child.pid();
    for ns in &set {
        let seen = path_ino(format!("/proc/{pid}/ns/{}", ns.kind().proc_name()));
        assert_eq!(seen, ns.id().ino(), "{}", ns.kind());
    }
    let leaked: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|t| t.display().to_string())
        .filter(|t| t.contains(":["))
        .filter(|t| {
            !t.starts_with("pipe:") && !t.starts_with("socket:") && !t.starts_with("anon_inode:")
        })
        .collect();
    child.kill();
    assert!(
        leaked.is_empty(),
        "namespace fds open in the child: {leaked:?}"
    );
}

#[test]
fn the_working_directory_is_resolved_inside_the_mount_namespace() {
    let set = NsSet::unshare(NsKind::Mnt).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = output(Command::new("pwd").current_dir(dir.path()), &set);
    assert_eq!(out.trim(), dir.path().display().to_string());
    let out = output(&mut Command::new("pwd"), &set);
    assert_eq!(
        out.trim(),
        "/",
        "no current_dir: the root of the mount namespace"
    );
}

#[test]
fn failures_in_the_child_name_the_namespace() {
    let net = TempNs::new(NsKind::Net);
    let set = NsSet::from(Namespace::open(net.path(), NsKind::Net).unwrap());
    nsguard_suite::on_fresh_thread(|| {
        nsguard_suite::drop_cap_sys_admin_on_this_thread();
        match Command::new("true").spawn_in(&set) {
            Err(err @ Error::PermissionDenied { .. }) => {
                assert_eq!(err.path(), Some(net.path()));
                assert!(err.to_string().contains("CAP_SYS_ADMIN"), "{err}");
            }
            other => panic!("expected PermissionDenied, got {other:?}"),
        }
    });
    match Command::new("/nonexistent/program").spawn_in(&set) {
        Err(err @ Error::Spawn { .. }) => {
            assert_eq!(err.errno(), Some(nsguard::Errno::ENOENT));
            // The error spawn returned, as it was.
            let source = std::error::Error::source(&err)
                .and_then(|e| e.downcast_ref::<std::io::Error>())
                .expect("the io::Error as the source");
            assert_eq!(source.raw_os_error(), Some(libc::ENOENT));
            let Error::Spawn { program, .. } = err else {
                unreachable!()
            };
            assert_eq!(program, "/nonexistent/program");
        }
        other => panic!("expected Spawn, got {other:?}"),
    }
    // The Command is reusable, and its hook is inert afterwards.
    let mut cmd = Command::new("readlink");
    cmd.arg("/proc/self/ns/net").stdout(Stdio::piped());
    let inside = output(&mut cmd, &set);
    assert_eq!(inside.trim(), format!("net:[{}]", net.ino()));
    let outside = String::from_utf8(cmd.output().unwrap().stdout).unwrap();
    assert_eq!(
        outside.trim(),
        format!("net:[{}]", main_thread_ino(NsKind::Net))
    );
}
