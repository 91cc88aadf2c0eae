//! Test support: throw-away namespaces of every kind, an independent view of
//! what namespaces a thread is in, ways to make real `setns` calls fail, and
//! ([`signals`]) explicit signals to wait on where a test would otherwise sleep.
//!
//! Everything made here is removed on drop, also when a test fails. Nothing
//! here uses nsguard to check nsguard: ids are read from `/proc` links.
#![allow(dead_code)] // each test binary uses part of it

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nsguard::NsKind;

pub mod signals;

/// A name unique to this process and call, for things tests create.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether this kernel has time namespaces (Linux 5.6 with
/// `CONFIG_TIME_NS`), read from `/proc`, not from nsguard.
pub fn has_time_ns() -> bool {
    Path::new("/proc/self/ns/time_for_children").exists()
}

/// Prints that `what` was skipped and why, where the test harness does not
/// capture it (straight to the process's stderr), so that CI logs show it.
pub fn skipped(what: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped: {what}: {why}");
}

/// For a test that needs time namespaces: true if the kernel has them,
/// else prints why `what` is skipped and returns false.
pub fn require_time_ns(what: &str) -> bool {
    if has_time_ns() {
        return true;
    }
    skipped(
        what,
        "needs time namespaces (Linux 5.6 with CONFIG_TIME_NS); \
         /proc/self/ns/time_for_children does not exist",
    );
    false
}

/// For a test that needs a kernel *without* time namespaces (as under
/// `tools/kernel-emu --kernel 5.4`): true if time namespaces are absent,
/// else prints why `what` is skipped and returns false.
pub fn require_no_time_ns(what: &str) -> bool {
    if !has_time_ns() {
        return true;
    }
    skipped(
        what,
        "needs a kernel without time namespaces (CI runs it under tools/kernel-emu --kernel 5.4)",
    );
    false
}

/// `kinds` without time, when the kernel lacks it (saying so for `what`).
pub fn kinds_this_kernel_has(what: &str, kinds: &[NsKind]) -> Vec<NsKind> {
    if kinds.contains(&NsKind::Time) && !require_time_ns(&format!("{what} (its time part)")) {
        return kinds
            .iter()
            .copied()
            .filter(|k| *k != NsKind::Time)
            .collect();
    }
    kinds.to_vec()
}

/// The inode number in a `/proc/.../ns/*` link target like `net:[4026531833]`.
pub fn link_ino(link: impl AsRef<Path>) -> u64 {
    let link = link.as_ref();
    try_link_ino(link).unwrap_or_else(|| panic!("no namespace link at {link:?}"))
}

/// [`link_ino`], or `None` if the link is gone (its thread exited).
pub fn try_link_ino(link: impl AsRef<Path>) -> Option<u64> {
    let target = std::fs::read_link(link).ok()?;
    let target = target.to_string_lossy();
    let start = target.find('[')? + 1;
    target.get(start..target.len() - 1)?.parse().ok()
}

/// The `/proc` file that shows what `setns` of `kind` changes on a thread.
fn thread_file(kind: NsKind) -> &'static str {
    match kind {
        NsKind::Pid => "pid_for_children",
        NsKind::Time => "time_for_children",
        other => other.proc_name(),
    }
}

/// The namespace of `kind` the calling thread is in, read from its link.
pub fn thread_ino(kind: NsKind) -> u64 {
    link_ino(format!("/proc/thread-self/ns/{}", thread_file(kind)))
}

/// The namespace of `kind` thread `tid` of this process is in.
pub fn task_ino(tid: i32, kind: NsKind) -> u64 {
    link_ino(format!("/proc/self/task/{tid}/ns/{}", thread_file(kind)))
}

/// The namespace of `kind` the main thread of this process is in.
pub fn main_thread_ino(kind: NsKind) -> u64 {
    task_ino(std::process::id() as i32, kind)
}

/// The inode of the namespace file at `path` (following links).
pub fn path_ino(path: impl AsRef<Path>) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path.as_ref())
        .expect("stat namespace file")
        .ino()
}

/// Runs `f` on a new thread and returns its result, re-raising its panic.
/// Tests that switch or poison a thread do it on a thread of their own.
pub fn on_fresh_thread<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(r) => r,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// A new namespace of one kind, alive while this value is, reachable by
/// [`path`](Self::path): a bind mount under a temporary directory, or for
/// mnt (which cannot be bind-mounted into an older mount namespace) the
/// `/proc/<pid>/fd/<n>` link of the fd that keeps it.
pub struct TempNs {
    kind: NsKind,
    file: File,
    /// For pid and time: the first process of the namespace (its init),
    /// without which `pid_for_children` is a dangling link.
    _init: Option<ChildGuard>,
    ino: u64,
    path: PathBuf,
    mounted: bool,
    _dir: Option<tempfile::TempDir>,
}

impl TempNs {
    /// Creates a namespace of `kind`: with `unshare` on a short-lived
    /// thread, or for user namespaces in a short-lived child process.
    pub fn new(kind: NsKind) -> TempNs {
        let (file, init) = match kind {
            NsKind::User => (new_user_ns(), None),
            _ => on_fresh_thread(move || {
                let flags = match kind {
                    // A thread shares its fs context; a new mount namespace
                    // needs a private one.
                    NsKind::Mnt => CloneFlags::CLONE_FS | CloneFlags::CLONE_NEWNS,
                    k => CloneFlags::from_bits_retain(k.clone_flag()),
                };
                unshare(flags).unwrap_or_else(|e| panic!("unshare({kind}): {e}"));
                if kind == NsKind::Mnt {
                    // Nothing mounted inside reaches the host, and the
                    // host's later mounts do not pile up inside.
                    mount(
                        None::<&str>,
                        "/",
                        None::<&str>,
                        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                        None::<&str>,
                    )
                    .expect("make / private in the new mount namespace");
                }
                let init = matches!(kind, NsKind::Pid | NsKind::Time)
                    .then(|| ChildGuard::spawn_in_new(CloneFlags::empty()));
                let file = File::open(format!("/proc/thread-self/ns/{}", thread_file(kind)))
                    .expect("open the new namespace");
                (file, init)
            }),
        };
        let fd_path = PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            file.as_raw_fd()
        ));
        let ino = path_ino(&fd_path);
        if kind == NsKind::Mnt {
            return TempNs {
                kind,
                file,
                _init: init,
                ino,
                path: fd_path,
                mounted: false,
                _dir: None,
            };
        }
        let dir = tempfile::Builder::new()
            .prefix("nsguard-test-")
            .tempdir()
            .expect("temp dir");
        let path = dir.path().join(kind.proc_name());
        File::create(&path).expect("bind mount target");
        mount(
            Some(&fd_path),
            &path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap_or_else(|e| panic!("bind mount {fd_path:?} on {path:?}: {e}"));
        TempNs {
            kind,
            file,
            _init: init,
            ino,
            path,
            mounted: true,
            _dir: Some(dir),
        }
    }

    pub fn kind(&self) -> NsKind {
        self.kind
    }

    /// The inode number of the namespace.
    pub fn ino(&self) -> u64 {
        self.ino
    }

    /// A path that opens the namespace.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `/proc/<pid>/fd/<n>`: a path that opens the namespace without a mount.
    pub fn fd_path(&self) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            self.file.as_raw_fd()
        ))
    }
}

impl Drop for TempNs {
    fn drop(&mut self) {
        if self.mounted {
            if let Err(e) = umount2(&self.path, MntFlags::MNT_DETACH) {
                eprintln!("warning: umount {:?}: {e}", self.path);
            }
        }
    }
}

/// A new user namespace, from a child that `unshare`s one and is then
/// killed: a process with threads cannot make one for itself.
fn new_user_ns() -> File {
    let mut child = ChildGuard::spawn_in_new(CloneFlags::CLONE_NEWUSER);
    let file = File::open(format!("/proc/{}/ns/user", child.pid())).expect("open child's user ns");
    child.kill();
    file
}

/// A child process that runs until it is killed: killed and reaped on drop,
/// also when a test fails.
pub struct ChildGuard {
    child: Option<Child>,
}

impl ChildGuard {
    /// Guards `child`, which should not exit by itself (like `sleep infinity`).
    pub fn new(child: Child) -> ChildGuard {
        ChildGuard { child: Some(child) }
    }

    /// Spawns `sleep infinity` after `unshare(flags)` in the child.
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

/// A bind mount of a namespace at a name in `/run/netns`, as `ip netns add`
/// makes, removed on drop.
pub struct NamedNetns {
    pub name: String,
    pub path: PathBuf,
    pub ns: TempNs,
}

impl NamedNetns {
    pub fn new() -> NamedNetns {
        let ns = TempNs::new(NsKind::Net);
        let name = unique_name("nsguard-test");
        std::fs::create_dir_all("/run/netns").expect("mkdir /run/netns");
        let path = Path::new("/run/netns").join(&name);
        File::create(&path).expect("create /run/netns entry");
        mount(
            Some(ns.path()),
            &path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .expect("bind mount into /run/netns");
        NamedNetns { name, path, ns }
    }
}

impl Drop for NamedNetns {
    fn drop(&mut self) {
        let _ = umount2(&self.path, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&self.path);
    }
}

const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const RET_K: u16 = 0x06;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ERRNO: u32 = 0x0005_0000;
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jeq(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: JEQ_K,
        jt,
        jf,
        k,
    }
}

/// Makes system call `nr` on the **calling thread** fail with `errno`
/// whenever the low halves of its arguments are as given (`(index,
/// value)`), with a seccomp filter. The filter lasts as long as the thread
/// and is inherited by the threads it starts: use it on a thread of the
/// test's own.
pub fn fail_syscall_on_this_thread(nr: i64, args: &[(u32, u32)], errno: i32) {
    // Jump offsets count from the next instruction; the last one allows.
    let n = args.len() as u8;
    let mut program = vec![
        stmt(LD_W_ABS, 4),             // seccomp_data.arch
        jeq(AUDIT_ARCH, 0, 2 * n + 3), // other ABI: allow
        stmt(LD_W_ABS, 0),             // seccomp_data.nr
        jeq(nr as u32, 0, 2 * n + 1),  // another call: allow
    ];
    for (i, &(index, value)) in args.iter().enumerate() {
        program.push(stmt(LD_W_ABS, 16 + 8 * index)); // low half of args[index]
        program.push(jeq(value, 0, 2 * (n - i as u8) - 1));
    }
    program.push(stmt(RET_K, RET_ERRNO | (errno as u32 & 0xffff)));
    program.push(stmt(RET_K, RET_ALLOW));
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr() as *mut _,
    };
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    assert_eq!(rc, 0, "no_new_privs: {}", std::io::Error::last_os_error());
    // SAFETY: PR_SET_SECCOMP reads `prog` and the filter it points to, both
    // alive until it returns; the filter applies to this thread only.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const libc::sock_fprog,
        )
    };
    assert_eq!(
        rc,
        0,
        "install seccomp filter: {}",
        std::io::Error::last_os_error()
    );
}

/// Makes `setns(2)` on the **calling thread** fail with `errno` whenever its
/// `nstype` argument is `nstype`. See [`fail_syscall_on_this_thread`].
pub fn fail_setns_on_this_thread(nstype: i32, errno: i32) {
    fail_syscall_on_this_thread(libc::SYS_setns, &[(1, nstype as u32)], errno);
}

/// Drops `CAP_SYS_ADMIN` from the effective set of the **calling thread**
/// only (capabilities are per thread), so that `setns` fails with EPERM.
pub fn drop_cap_sys_admin_on_this_thread() {
    caps::drop(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_SYS_ADMIN,
    )
    .expect("drop CAP_SYS_ADMIN");
}

/// (tid, kind, ino) for every thread of this process not owned by nsguard
/// that is not in the host namespace of a watched kind.
pub fn strays(host: &[(NsKind, u64)]) -> Vec<(String, NsKind, u64)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let dir = task.path();
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue;
        }; // exited
        if comm.starts_with("nsguard-") {
            continue;
        }
        for (kind, ino) in host {
            let file = match kind {
                NsKind::Pid => "pid_for_children",
                NsKind::Time => "time_for_children",
                k => k.proc_name(),
            };
            // None: the thread exited meanwhile.
            if let Some(seen) = try_link_ino(dir.join("ns").join(file)) {
                if seen != *ino {
                    out.push((comm.trim().to_string(), *kind, seen));
                }
            }
        }
    }
    out
}

/// The namespace fds this process holds (targets like `net:[4026531833]`).
pub fn namespace_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter(|t| {
                    let t = t.to_string_lossy();
                    [
                        "cgroup:", "ipc:", "mnt:", "net:", "pid:", "time:", "user:", "uts:",
                    ]
                    .iter()
                    .any(|k| t.starts_with(k))
                })
                .count()
        })
        .unwrap_or(0)
}

/// Threads of this process whose name starts with `prefix`.
pub fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|dir| {
            dir.flatten()
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|c| c.starts_with(prefix))
                })
                .count()
        })
        .unwrap_or(0)
}

/// The variable that tells a test binary it runs as a scenario child.
const SCENARIO: &str = "NSGUARD_TEST_SCENARIO";

/// Runs test `name` of this binary again in a child process, under a
/// watchdog that kills it after `limit`, and fails if it fails, hangs or
/// ran no test. In the child, returns true: the caller runs the scenario.
/// A path that could hang is tested this way, so that a regression fails
/// instead of hanging the suite.
pub fn in_child_process(name: &str, limit: std::time::Duration) -> bool {
    if std::env::var_os(SCENARIO).is_some() {
        return true;
    }
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(SCENARIO, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the scenario");
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

/// A value whose `Drop` panics: user code that must be contained.
pub struct PanicOnDrop(pub &'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("{}", self.0);
        }
    }
}

/// The pids controller (cgroup v1 or v2) of this machine, if any: under
/// v2, only where the root passes it on to child cgroups
/// (`cgroup.subtree_control`), or theirs have no `pids.max`.
fn pids_root() -> Option<PathBuf> {
    ["/sys/fs/cgroup/pids", "/sys/fs/cgroup"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| {
            p.join("cgroup.procs").exists()
                && (p.ends_with("pids")
                    || std::fs::read_to_string(p.join("cgroup.subtree_control"))
                        .is_ok_and(|on| on.split_whitespace().any(|c| c == "pids")))
        })
}

/// This process in a cgroup of its own whose `pids.max` caps its threads:
/// a real `EAGAIN` from `clone(2)`. Moved back and removed on drop.
pub struct PidsLimit {
    dir: PathBuf,
    root: PathBuf,
}

impl PidsLimit {
    /// `None` (with a printed reason) where no pids controller can be used.
    pub fn new() -> Option<PidsLimit> {
        let Some(root) = pids_root() else {
            println!("skipped: no cgroup pids controller on this machine");
            return None;
        };
        let dir = root.join(unique_name("nsguard-test"));
        if let Err(e) = std::fs::create_dir(&dir) {
            println!(
                "skipped: cannot create a cgroup under {}: {e}",
                root.display()
            );
            return None;
        }
        let limit = PidsLimit { dir, root };
        std::fs::write(
            limit.dir.join("cgroup.procs"),
            std::process::id().to_string(),
        )
        .expect("move this process into the test cgroup");
        Some(limit)
    }

    /// Caps the cgroup at its current number of tasks plus `extra`.
    pub fn allow_more(&self, extra: usize) {
        let now: usize = std::fs::read_to_string(self.dir.join("pids.current"))
            .expect("pids.current")
            .trim()
            .parse()
            .expect("a number");
        std::fs::write(self.dir.join("pids.max"), (now + extra).to_string()).expect("pids.max");
    }

    /// Lifts the cap.
    pub fn lift(&self) {
        std::fs::write(self.dir.join("pids.max"), "max").expect("pids.max");
    }
}

impl Drop for PidsLimit {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.join("pids.max"), "max");
        let _ = std::fs::write(
            self.root.join("cgroup.procs"),
            std::process::id().to_string(),
        );
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// The calling thread's line `key` of `/proc/thread-self/status`.
pub fn status_line(key: &str) -> String {
    std::fs::read_to_string("/proc/thread-self/status")
        .unwrap()
        .lines()
        .find(|l| l.split(':').next() == Some(key))
        .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        .unwrap_or_default()
}

/// Threads of this process in the namespace of `kind` with inode `ino`.
pub fn threads_in(kind: NsKind, ino: u64) -> Vec<String> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        if try_link_ino(task.path().join("ns").join(thread_file(kind))) == Some(ino) {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            out.push(comm.trim().to_owned());
        }
    }
    out
}

/// Runs `ip` (iproute2) and returns its output; fails the test if it fails.
pub fn ip(args: &[&str]) -> String {
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

/// A private executor of at most `max_workers` workers that never starts
/// one beyond the cap (`overflow_after(MAX)`): for tests whose assertions
/// depend on the cap, or on a worker being reused.
pub fn capped_executor(max_workers: usize) -> nsguard::Executor {
    nsguard::Executor::builder()
        .max_workers(max_workers)
        .overflow_after(std::time::Duration::MAX)
        .build()
        .expect("build the executor")
}
