//! What nsguard does on the kernel it runs on: kinds the kernel lacks are
//! refused by name, and the forked helper that creates user namespaces
//! holds none of its parent's fds and dies with it, with or without
//! close_range(2). CI runs this on the host's kernel and under
//! `tools/kernel-emu --kernel 5.4` and `4.18`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nsguard::{CommandExt, Error, Namespace, NsKind, NsKinds, NsSet, Pool, Unshare};

#[test]
fn the_probe_sees_what_proc_shows() {
    assert_eq!(NsKind::Time.is_supported(), nsguard_suite::has_time_ns());
    assert_eq!(
        NsKinds::supported().contains(NsKind::Time),
        nsguard_suite::has_time_ns()
    );
    for kind in [
        NsKind::Mnt,
        NsKind::Net,
        NsKind::Pid,
        NsKind::Ipc,
        NsKind::Uts,
    ] {
        assert!(kind.is_supported(), "{kind}");
    }
    let here = NsSet::current(NsKinds::supported()).unwrap();
    assert_eq!(here.kinds(), NsKinds::supported());
}

#[test]
fn workers_run_without_time_namespaces_too() {
    // Every call used to fail reading time_for_children on such kernels.
    let set = NsSet::unshare(NsKind::Net | NsKind::Uts).unwrap();
    let ino = set
        .run(|| nsguard_suite::thread_ino(NsKind::Net))
        .expect("a worker runs the call");
    assert_eq!(ino, set.get(NsKind::Net).unwrap().id().ino());
}

fn assert_time_refused(what: &str, result: Result<impl std::fmt::Debug, Error>) {
    match result {
        Err(err @ Error::KindUnsupported { .. }) => {
            assert_eq!(err.ns_kind(), Some(NsKind::Time), "{what}");
            let msg = err.to_string();
            assert!(
                msg.contains("no time namespaces")
                    && msg.contains("Linux 5.6")
                    && msg.contains("CONFIG_TIME_NS")
                    && msg.contains("NsKinds::supported()"),
                "{what}: {msg}"
            );
            assert_eq!(
                std::io::Error::from(err).kind(),
                std::io::ErrorKind::Unsupported
            );
        }
        other => panic!("{what}: expected KindUnsupported, got {other:?}"),
    }
}

#[test]
fn time_is_refused_by_name_where_the_kernel_lacks_it() {
    if !nsguard_suite::require_no_time_ns("time_is_refused_by_name_where_the_kernel_lacks_it") {
        return;
    }
    let me = std::process::id();
    assert!(!NsKind::Time.is_supported());
    assert_eq!(NsKinds::supported().len(), 7);
    assert_time_refused("current", Namespace::current(NsKind::Time));
    assert_time_refused("of_pid", Namespace::of_pid(me, NsKind::Time));
    assert_time_refused("open", Namespace::open("/proc/self/ns/time", NsKind::Time));
    assert_time_refused("NsSet::current(ALL)", NsSet::current(NsKinds::ALL));
    assert_time_refused("NsSet::of_pid(ALL)", NsSet::of_pid(me, NsKinds::ALL));
    assert_time_refused(
        "from_dir(ALL)",
        NsSet::from_dir("/proc/self/ns", NsKinds::ALL),
    );
    assert_time_refused("unshare", NsSet::unshare(NsKind::Net | NsKind::Time));
    assert_time_refused(
        "Unshare with user",
        Unshare::new(NsKind::User | NsKind::Time).create(),
    );
    assert_time_refused(
        "spawn_in_new",
        Command::new("true").spawn_in_new(&NsSet::new(), NsKind::Time),
    );
    assert_time_refused("Pool", Pool::builder(NsKind::Time).build());
    // Every kind it has works.
    assert_eq!(
        NsSet::current(NsKinds::supported()).unwrap().len(),
        NsKinds::supported().len()
    );
}

/// The environment variable that makes `helper_parent_role` run.
const ROLE: &str = "NSGUARD_TEST_HELPER_PARENT";

/// Not a test of its own: the parent process of the helper scenario. It
/// holds extra fds a helper must not keep (a file opened without
/// close-on-exec, a listening socket), and creates user namespaces, each
/// through a forked helper, until it is stopped and killed (at most 60 s).
#[test]
fn helper_parent_role() {
    if std::env::var_os(ROLE).is_none() {
        return;
    }
    let file = std::fs::File::open("/dev/null").unwrap();
    nix::fcntl::fcntl(
        &file,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let end = Instant::now() + Duration::from_secs(60);
    while Instant::now() < end {
        let set = Unshare::new(NsKind::User | NsKind::Uts).create().unwrap();
        drop(set);
    }
    drop((file, listener));
}

/// Kills the processes on drop, also when the test fails.
struct KillOnDrop(Vec<i32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for pid in &self.0 {
            // SAFETY: kill(2) takes integers only.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
    }
}

fn state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

fn alive(pid: i32) -> bool {
    state(pid).is_some_and(|s| s != 'Z' && s != 'X')
}

fn link(path: String) -> String {
    std::fs::read_link(path)
        .map(|t| t.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The children of process `pid`, over all its threads.
fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let text = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        out.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok()),
        );
    }
    out
}

/// The fds above stdio that process `pid` holds, with what each refers to.
fn fds_held(pid: i32) -> Vec<(i32, String)> {
    let mut held = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let fd: i32 = entry.file_name().to_string_lossy().parse().unwrap();
        if fd > 2 {
            held.push((fd, link(entry.path().to_string_lossy().into_owned())));
        }
    }
    held
}

/// Starts the parent role, stops it while one of its helpers waits with
/// its plan done, and returns (parent, helper, the helper's fds), both
/// still alive. A helper the parent released just before it was stopped
/// is on its way out, closing its fds: it is passed over.
fn parent_stopped_with_a_waiting_helper(kill: &mut KillOnDrop) -> (i32, i32, Vec<(i32, String)>) {
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_parent_role",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let parent = child.id() as i32;
    kill.0.push(parent);
    // Reaped by a thread of ours, so that its death is seen.
    std::thread::spawn(move || {
        let mut child = child;
        let _ = child.wait();
    });
    let parent_user = link(format!("/proc/{parent}/ns/user"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "never caught a waiting helper");
        // A helper exists only for a moment: look for one, stop the
        // parent, and check the helper is still there, plan done (it is in
        // a new user namespace, so it has closed the fds before that).
        let Some(helper) = children(parent).into_iter().next() else {
            std::thread::yield_now();
            continue;
        };
        // SAFETY: kill(2) takes integers only.
        unsafe { libc::kill(parent, libc::SIGSTOP) };
        kill.0.push(helper);
        let settled = Instant::now() + Duration::from_secs(2);
        while alive(helper) && Instant::now() < settled {
            let user = link(format!("/proc/{helper}/ns/user"));
            if !user.is_empty() && user != parent_user {
                let held = fds_held(helper);
                // Still waiting (asleep in its read), not exiting.
                if state(helper) == Some('S') && alive(helper) {
                    return (parent, helper, held);
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // Too late (or too early): let the parent go on and try again.
        // SAFETY: kill(2) takes integers only.
        unsafe { libc::kill(parent, libc::SIGCONT) };
    }
}

#[test]
fn the_user_namespace_helper_holds_no_fd_of_its_parent_and_dies_with_it() {
    let mut kill = KillOnDrop(Vec::new());
    let (parent, helper, held) = parent_stopped_with_a_waiting_helper(&mut kill);
    // What the helper holds: stdio, and its two pipe ends (report, go).
    assert!(
        held.len() == 2 && held.iter().all(|(_, target)| target.starts_with("pipe:")),
        "the helper holds fds of its parent: {held:?}"
    );
    // The parent dies while the helper waits for its word: the helper
    // must not outlive it.
    // SAFETY: kill(2) takes integers only.
    unsafe { libc::kill(parent, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(helper) {
        assert!(
            Instant::now() < deadline,
            "helper {helper} outlived its parent {parent}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
