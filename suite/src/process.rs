//! Child processes: one that runs until the test is over ([`ChildGuard`]),
//! and a test of this binary run again in a child under a watchdog
//! ([`in_child_process`]).

use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

use nix::sched::{unshare, CloneFlags};

/// A child process that runs until it is killed: killed and reaped on drop,
/// also when a test fails.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
}

impl ChildGuard {
    /// Guards `child`, which should not exit by itself (like `sleep infinity`).
    pub fn new(child: Child) -> ChildGuard {
        ChildGuard { child: Some(child) }
    }

    /// Spawns `sleep infinity` after `unshare(flags)` in the child.
    ///
    /// # Panics
    ///
    /// If the child cannot be spawned or its `unshare` fails.
    pub fn spawn_in_new(flags: CloneFlags) -> ChildGuard {
        let mut cmd = Command::new("sleep");
        cmd.arg("infinity");
        // SAFETY: the closure runs in the forked child before exec and only
        // makes the unshare(2) system call, which is async-signal-safe; the
        // error path builds an io::Error from an errno, without allocating.
        unsafe {
            cmd.pre_exec(move || unshare(flags).map_err(std::io::Error::from));
        }
        ChildGuard {
            child: Some(cmd.spawn().expect("spawn sleep")),
        }
    }

    /// The child's pid; 0 once it has been killed.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// Kills and reaps the child now; its pid is then dead.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The variable that tells a test binary it runs as a scenario child.
const SCENARIO: &str = "NSGUARD_TEST_SCENARIO";

/// Runs test `name` of this binary again in a child process, under a
/// watchdog that kills it after `limit`, and fails if it fails, hangs or
/// ran no test. In the child, returns true: the caller runs the scenario.
/// A path that could hang is tested this way, so that a regression fails
/// instead of hanging the suite.
///
/// # Panics
///
/// In the parent, if the child failed, was killed or ran no test.
pub fn in_child_process(name: &str, limit: std::time::Duration) -> bool {
    in_child_process_spawned(name, limit, |cmd| cmd.spawn().expect("run the scenario"))
}

/// [`in_child_process`], the child spawned by `spawn` (say, into
/// namespaces of its own with nsguard's `CommandExt`) from the command that
/// runs the scenario.
///
/// # Panics
///
/// As [`in_child_process`].
pub fn in_child_process_spawned(
    name: &str,
    limit: std::time::Duration,
    spawn: impl FnOnce(&mut Command) -> Child,
) -> bool {
    if std::env::var_os(SCENARIO).is_some() {
        return true;
    }
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(SCENARIO, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = spawn(&mut cmd);
    let pid = child.id();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(limit).is_err() {
            // SAFETY: kill(2) takes integers only.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            true
        } else {
            false
        }
    });
    let out = child.wait_with_output().expect("wait for the scenario");
    let _ = done_tx.send(());
    let killed = watchdog.join().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!killed, "{name} hung: killed after {limit:?}\n{text}");
    assert!(out.status.success(), "{name}: {}\n{text}", out.status);
    assert!(text.contains("1 passed"), "{name} ran no test:\n{text}");
    false
}

/// Mounts, over `/proc`, a `/proc` of the calling process's pid namespace,
/// whose pid 1 it must be, in a mount namespace of its own (a scenario
/// spawned into new pid and mount namespaces): `/proc/1` is then the
/// calling process, and `/proc/self/task` numbers threads as `gettid` does.
/// The mount goes with the mount namespace.
///
/// # Panics
///
/// If the calling process is not pid 1, or the mount fails.
pub fn mount_own_proc() {
    assert_eq!(std::process::id(), 1, "pid 1 of a pid namespace of its own");
    nix::mount::mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .expect("mount a /proc of the pid namespace");
}
