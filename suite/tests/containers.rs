//! What container runtimes and CNI plugins meet every day: sets read from
//! running containers (which share some namespaces with the host), Command
//! settings applied inside, and namespaces freed as soon as the program
//! lets go of them.

use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sched::CloneFlags;
use nsguard::{
    in_namespace, netns, CommandExt, Credentials, Error, Namespace, NsKind, NsKinds, NsSet, Unshare,
};
use nsguard_suite::{
    ip, kinds_this_kernel_has, thread_ino, threads_in, tid, unique_name, ChildGuard, TempNs,
};

/// Every kind this kernel has: all but time where it lacks time
/// namespaces (saying so for `what`).
fn all_kinds_here(what: &str) -> NsKinds {
    kinds_this_kernel_has(what, &NsKind::ALL)
        .into_iter()
        .collect()
}

/// A container: a process in new net, uts, ipc, mnt and pid namespaces that
/// shares the host's user, time and cgroup namespaces, as Docker's default.
fn container() -> ChildGuard {
    ChildGuard::spawn_in_new(
        CloneFlags::CLONE_NEWNET
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWPID,
    )
}

#[test]
fn kinds_the_worker_is_already_in_are_not_refused() {
    let kinds = all_kinds_here("kinds_the_worker_is_already_in_are_not_refused");
    let here = NsSet::current(kinds).unwrap();
    // Every kind, user and time included: all are the worker's already,
    // but for the calling thread's net etc., which workers switch to.
    let net = here.run(|| thread_ino(NsKind::Net)).unwrap();
    assert_eq!(net, thread_ino(NsKind::Net));
    let me = NsSet::of_pid(std::process::id(), kinds.difference(NsKind::User.into())).unwrap();
    me.run(|| ()).unwrap();
    // Only a real switch is refused.
    let u = TempNs::new(NsKind::User);
    let other_user = NsSet::from(Namespace::open(u.path(), NsKind::User).unwrap());
    assert!(matches!(
        other_user.run(|| ()),
        Err(Error::UnsupportedOnThread {
            kind: NsKind::User,
            ..
        })
    ));
}

#[test]
fn a_guard_accepts_kinds_the_thread_is_already_in() {
    let here = NsSet::current(all_kinds_here(
        "a_guard_accepts_kinds_the_thread_is_already_in",
    ))
    .unwrap();
    nsguard_suite::on_fresh_thread(|| {
        let guard = here.enter().unwrap();
        assert!(guard.switched().is_empty());
        guard.restore().unwrap();
    });
    let m = TempNs::new(NsKind::Mnt);
    let other_mnt = NsSet::from(Namespace::open(m.path(), NsKind::Mnt).unwrap());
    assert!(matches!(
        other_mnt.enter(),
        Err(Error::UnsupportedOnThread {
            kind: NsKind::Mnt,
            ..
        })
    ));
}

/// Every namespace of a running container, whatever it shares with the
/// host: run in it, spawn into it, create from it.
#[test]
fn sets_read_from_a_running_container_work() {
    let kinds = all_kinds_here("sets_read_from_a_running_container_work");
    let c = container();
    let set = NsSet::of_pid(c.pid(), kinds).unwrap();
    let container_net = nsguard_suite::link_ino(format!("/proc/{}/ns/net", c.pid()));
    assert_ne!(container_net, thread_ino(NsKind::Net));
    // run: user and time (and cgroup) are the host's: no switch needed.
    let seen = set.run(|| thread_ino(NsKind::Net)).unwrap();
    assert_eq!(seen, container_net);
    // spawn_in: the child does not try to re-enter its own user namespace.
    let out = Command::new("readlink")
        .arg("/proc/self/ns/net")
        .stdout(Stdio::piped())
        .spawn_in(&set)
        .unwrap()
        .wait_with_output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("net:[{container_net}]")
    );
    // The calling thread's own set, every kind: nothing to switch at all.
    let status = Command::new("true")
        .spawn_in(&NsSet::current(kinds).unwrap())
        .unwrap()
        .wait()
        .unwrap();
    assert!(status.success());
    // Creating from inside the container's set.
    let made = Unshare::new(NsKind::Uts).create_in(&set).unwrap();
    assert_eq!(made.get(NsKind::Net).unwrap().id().ino(), container_net);
}

/// A working directory that exists only in the target mount namespace.
#[test]
fn spawn_in_resolves_the_commands_directory_inside() {
    let m = TempNs::new(NsKind::Mnt);
    let set = NsSet::from(Namespace::open(m.path(), NsKind::Mnt).unwrap());
    let dir = format!("/mnt/{}", unique_name("only-inside"));
    let made = dir.clone();
    set.run(move || {
        nix::mount::mount(
            Some("tmpfs"),
            "/mnt",
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        std::fs::create_dir(&made).unwrap();
    })
    .unwrap();
    assert!(!std::path::Path::new(&dir).exists());
    let mut cmd = Command::new("pwd");
    cmd.current_dir(&dir).stdout(Stdio::piped());
    let out = cmd.spawn_in(&set).unwrap().wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), dir);
    // The Command keeps its directory.
    assert_eq!(cmd.get_current_dir(), Some(std::path::Path::new(&dir)));
}

/// uid and gid set on the Command: for a set a thread can enter, std
/// applies them inside (the process is forked from a thread in the
/// namespaces); where a user or time namespace must be entered, refused
/// with the way that works. Arguments and environment values that look
/// like the ids are not taken for them. spawn_in_as sets ids inside too.
#[test]
fn spawn_in_applies_uid_and_gid_inside() {
    let n = TempNs::new(NsKind::Net);
    let set = NsSet::from(Namespace::open(n.path(), NsKind::Net).unwrap());
    let out = Command::new("sh")
        .args(["-c", "id -u; id -g; readlink /proc/self/ns/net"])
        .uid(65534)
        .gid(65534)
        .stdout(Stdio::piped())
        .spawn_in(&set)
        .unwrap()
        .wait_with_output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[..2], ["65534", "65534"], "{text}");
    assert_eq!(lines[2], format!("net:[{}]", n.ino()), "{text}");

    // Only a look-alike: no ids are set, and nothing is refused.
    let out = Command::new("sh")
        .args(["-c", "echo \"$0\"; id -u", "pid: 1, uid: Some(0)"])
        .env("LOOKALIKE", "gid: Some(7)")
        .stdout(Stdio::piped())
        .spawn_in(&set)
        .unwrap()
        .wait_with_output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "pid: 1, uid: Some(0)\n0\n"
    );

    // A user namespace can only be entered by a hook, after std applied
    // the ids: refused, naming the way that works.
    let user = NsSet::unshare(NsKind::User | NsKind::Net).unwrap();
    let mut cmd = Command::new("id");
    cmd.uid(0).gid(0);
    match cmd.spawn_in(&user) {
        Err(Error::InvalidConfig {
            setting, reason, ..
        }) => {
            assert_eq!(setting, "Command::uid");
            assert!(
                reason.contains("spawn_in_as") && reason.contains("user"),
                "{reason}"
            );
        }
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
    let out = Command::new("sh")
        .args(["-c", "id -u; id -g; id -G; readlink /proc/self/ns/net"])
        .stdout(Stdio::piped())
        .spawn_in_as(&set, &Credentials::new(65534, 65534).groups([65533]))
        .unwrap()
        .wait_with_output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[..3], ["65534", "65534", "65534 65533"], "{text}");
    assert_eq!(lines[3], format!("net:[{}]", n.ino()));
}

/// Polls (as any CNI plugin must: the kernel tears a network namespace
/// down asynchronously) until `cond` holds, for at most `limit`.
fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    cond().then(|| start.elapsed())
}

/// Whether the calling thread's network namespace has link `name`
/// (`/sys/class/net` follows the mount, not the thread: ask netlink's
/// view through `/proc/thread-self/net/dev`).
fn link_exists_here(name: &str) -> bool {
    std::fs::read_to_string("/proc/thread-self/net/dev")
        .unwrap_or_default()
        .lines()
        .any(|l| l.trim_start().starts_with(&format!("{name}:")))
}

fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

/// CNI's DEL then ADD with the same names: each ADD succeeds as soon as it
/// would without nsguard, because no worker keeps the old namespace (and
/// the veth peer in it) alive; no thread is inside once delete returns.
#[test]
fn delete_then_add_with_the_same_names_twenty_times() {
    let name = unique_name("cni");
    let host_end = format!("h{}", std::process::id() % 100_000);
    let mut worst = Duration::ZERO;
    for round in 0..20 {
        let ns = netns::add(&name).unwrap();
        let ino = ns.id().ino();
        ip(&[
            "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", &name,
        ]);
        let set = NsSet::from(ns);
        let seen = set
            .run(|| (thread_ino(NsKind::Net), link_exists_here("eth0")))
            .unwrap();
        assert_eq!(seen, (ino, true));
        drop(set);
        netns::delete(&name).unwrap();
        let inside = threads_in(NsKind::Net, ino);
        assert!(
            inside.is_empty(),
            "round {round}: threads inside after delete: {inside:?}"
        );
        let gone = eventually(Duration::from_secs(5), || !link_exists(&host_end))
            .unwrap_or_else(|| panic!("round {round}: the host end of the veth stayed"));
        worst = worst.max(gone);
    }
    println!("the host end disappeared within {worst:?} of delete in the worst round");
}

#[in_namespace(net = path)]
fn ino_in(path: &str) -> Result<u64, Error> {
    Ok(thread_ino(NsKind::Net))
}

/// Path-based `#[in_namespace]` calls open and drop a handle per call: the
/// namespace is freed when the path is deleted.
#[test]
fn path_based_calls_free_the_namespace_when_the_path_is_deleted() {
    let name = unique_name("path");
    let host_end = format!("p{}", std::process::id() % 100_000);
    let ns = netns::add(&name).unwrap();
    let ino = ns.id().ino();
    drop(ns);
    ip(&[
        "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", &name,
    ]);
    let path = format!("/run/netns/{name}");
    for _ in 0..3 {
        assert_eq!(ino_in(&path).unwrap(), ino);
    }
    netns::delete(&name).unwrap();
    assert!(threads_in(NsKind::Net, ino).is_empty());
    eventually(Duration::from_secs(5), || !link_exists(&host_end))
        .expect("the namespace was freed");
}

/// Dropping the last handle sends idle workers home; while a handle lives,
/// a worker stays warm inside (no switch: same thread, no setns).
#[test]
fn workers_stay_warm_while_a_handle_lives_and_leave_when_the_last_goes() {
    let n = TempNs::new(NsKind::Net);
    let executor = nsguard_suite::capped_executor(1);
    let set = NsSet::from(Namespace::open(n.path(), NsKind::Net).unwrap());
    let first = executor.run(&set, tid).unwrap();
    assert_eq!(executor.run(&set, tid).unwrap(), first);
    assert_eq!(threads_in(NsKind::Net, n.ino()).len(), 1, "warm inside");
    drop(set);
    // The bind mount of the test keeps the namespace itself alive here;
    // what matters is that no worker stays inside for it.
    let left = eventually(Duration::from_secs(5), || {
        threads_in(NsKind::Net, n.ino()).is_empty()
    });
    assert!(
        left.is_some(),
        "a worker stayed inside after the last handle went"
    );
    drop(executor);
}
