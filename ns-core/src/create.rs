//! Creating namespaces: [`Unshare`].

use std::fmt::Write as _;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

use crate::errno::Errno;
use crate::error::{fix, Error, Result};
use crate::handle::namespace::Namespace;
use crate::handle::proc_dir::ProcDir;
use crate::handle::set::NsSet;
use crate::kind::{NsKind, NsKinds};
use crate::process::helper_thread::on_new_thread;
use crate::sys::probe::check_supported;
use crate::sys::{self, ChildPlan, ChildStep, ForkedHelper};
use crate::thread::marks;

/// One line of a uid or gid map: ids `inside..inside+count` of the new user
/// namespace are ids `outside..outside+count` of its parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdMap {
    /// The first id inside the new user namespace.
    pub inside: u32,
    /// The id it is outside, in the parent user namespace.
    pub outside: u32,
    /// How many consecutive ids are mapped.
    pub count: u32,
}

/// Creates new namespaces without switching the calling thread, and returns
/// them as an [`NsSet`].
///
/// [`NsSet::unshare`] and [`NsSet::with_new`] cover the common cases; use
/// `Unshare` to set the uid and gid maps of a new user namespace.
///
/// - net, uts, ipc, cgroup, mnt and time are created on a short-lived
///   thread; a new mount namespace has every mount made private first
///   (`MS_REC | MS_PRIVATE`, as `unshare(1)` does), so that nothing mounted
///   in it propagates back to the host.
/// - A user namespace cannot be created by a thread of a multithreaded
///   process, so when one is asked for (or the base set has one) the
///   namespaces are created in a short-lived forked child, which makes
///   system calls only. The new user namespace gets the uid and gid maps
///   given here; by default, the caller's effective uid and gid are root
///   inside. Other namespaces created with it are owned by it.
/// - pid is refused: a new pid namespace exists only once a process lives
///   in it, and dies with that process; spawn a process in a new pid
///   namespace instead.
///
/// ```no_run
/// use nsguard::{IdMap, NsKind, Unshare};
///
/// let set = Unshare::new(NsKind::User | NsKind::Net)
///     .add_uid_map(IdMap { inside: 0, outside: 100_000, count: 65_536 })
///     .add_gid_map(IdMap { inside: 0, outside: 100_000, count: 65_536 })
///     .create()?;
/// # Ok::<(), nsguard::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Unshare {
    kinds: NsKinds,
    uid_map: Vec<IdMap>,
    gid_map: Vec<IdMap>,
}

impl Unshare {
    /// New namespaces of `kinds`.
    pub fn new(kinds: impl Into<NsKinds>) -> Unshare {
        Unshare {
            kinds: kinds.into(),
            uid_map: Vec::new(),
            gid_map: Vec::new(),
        }
    }

    /// Adds a line to the uid map of the new user namespace: each call
    /// adds one more range (default, with no call: the caller's effective
    /// uid is 0 inside, and nothing else is mapped).
    #[must_use]
    pub fn add_uid_map(mut self, map: IdMap) -> Unshare {
        self.uid_map.push(map);
        self
    }

    /// Adds a line to the gid map of the new user namespace: each call
    /// adds one more range (default, with no call: the caller's effective
    /// gid is 0 inside, and nothing else is mapped).
    #[must_use]
    pub fn add_gid_map(mut self, map: IdMap) -> Unshare {
        self.gid_map.push(map);
        self
    }

    /// Creates the namespaces from the calling thread's namespaces.
    ///
    /// # Errors
    ///
    /// - [`Error::CannotCreate`] for pid;
    /// - [`Error::KindUnsupported`] for a kind the running kernel lacks
    ///   (time before Linux 5.6 or without `CONFIG_TIME_NS`), before
    ///   anything is created;
    /// - [`Error::PermissionDenied`] without `CAP_SYS_ADMIN` (or, for user
    ///   namespaces, when the maps are not allowed);
    /// - [`Error::Create`] if the kernel refuses otherwise (`ENOSPC`: a
    ///   limit in `/proc/sys/user/max_*_namespaces` was reached);
    /// - [`Error::Poisoned`] if the calling thread is poisoned.
    pub fn create(&self) -> Result<NsSet> {
        self.create_in(&NsSet::new())
    }

    /// Creates the namespaces from inside `base`, and returns `base` plus
    /// them. A new mount namespace is then a copy of `base`'s, and new
    /// namespaces are owned by `base`'s user namespace, if it has one.
    ///
    /// # Errors
    ///
    /// Those of [`create`](Self::create), and those of entering `base`.
    pub fn create_in(&self, base: &NsSet) -> Result<NsSet> {
        marks::check()?;
        check_supported(self.kinds)?;
        if self.kinds.contains(NsKind::Pid) {
            return Err(Error::CannotCreate {
                kind: NsKind::Pid,
                reason: "a new pid namespace exists only once a first process lives in it, and \
                         cannot take new processes once that process has exited",
                instead: "spawn a process in a new pid namespace (it becomes its init)",
            });
        }
        let mut result = base.try_clone()?;
        if self.kinds.is_empty() {
            return Ok(result);
        }
        // Kinds of `base` the calling thread is in need no switch (a
        // container's set often has the host's user or time namespace).
        let base = &base.to_enter()?;
        let created = if self.kinds.contains(NsKind::User) || base.contains(NsKind::User) {
            self.create_in_child(base)?
        } else {
            let kinds = self.kinds;
            on_new_thread("create namespaces", || create_on_this_thread(kinds, base))??
        };
        result.extend(created);
        Ok(result)
    }

    /// Creation in a forked, single-threaded child.
    fn create_in_child(&self, base: &NsSet) -> Result<Vec<Namespace>> {
        let entered = base.entry_order(NOT_ENTERED);
        let plan = ChildPlan {
            setns: entered
                .iter()
                .map(|ns| (ns.as_fd().as_raw_fd(), ns.kind().clone_flag()))
                .collect(),
            unshare: self.kinds.iter().fold(0, |flags, k| flags | k.clone_flag()),
            private_mounts: self.kinds.contains(NsKind::Mnt),
            creds: None,
            chdir: None,
        };
        let mut child = ForkedHelper::spawn(&plan).map_err(|failure| match failure.step {
            ChildStep::Setns(i) if i < entered.len() => {
                Error::enter(entered[i].id(), entered[i].path(), failure.errno)
            }
            step => self.failed(step.describe(), failure.errno),
        })?;
        // The pid fork(2) returned is numbered in this process's pid
        // namespace, /proc's may be another: the child said which it is.
        let pid = child.proc_pid().ok_or_else(|| Error::ForeignProc {
            path: "/proc/self".into(),
        })?;
        if self.kinds.contains(NsKind::User) {
            self.write_maps(pid)?;
        }
        let proc = ProcDir::open(pid, NsKind::User)?;
        let created = self
            .kinds
            .into_iter()
            .map(|kind| proc.namespace_file(kind, kind.thread_proc_name()))
            .collect::<Result<Vec<_>>>();
        child.release();
        created
    }

    fn write_maps(&self, pid: u32) -> Result<()> {
        let dir = PathBuf::from(format!("/proc/{pid}"));
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        let default = |id| {
            vec![IdMap {
                inside: 0,
                outside: id,
                count: 1,
            }]
        };
        let uid_map = if self.uid_map.is_empty() {
            default(uid)
        } else {
            self.uid_map.clone()
        };
        let gid_map = if self.gid_map.is_empty() {
            default(gid)
        } else {
            self.gid_map.clone()
        };
        write_map(&dir.join("uid_map"), &uid_map)?;
        match write_map(&dir.join("gid_map"), &gid_map) {
            // Without CAP_SETGID in the parent namespace, a gid map may only
            // be written once setgroups(2) is denied in the child namespace.
            Err(Error::PermissionDenied { .. }) => {
                write_file(&dir.join("setgroups"), "deny")?;
                write_map(&dir.join("gid_map"), &gid_map)
            }
            other => other,
        }
    }

    fn failed(&self, step: &'static str, errno: Errno) -> Error {
        create_error(self.kinds, step, errno)
    }
}

/// The base kinds that do not shape what is created (the owner and the
/// copy source do), and that a thread cannot always enter: pid and time.
const NOT_ENTERED: NsKinds = NsKinds::of(NsKind::Pid).union(NsKinds::of(NsKind::Time));

/// On a fresh thread: enter `base`, unshare `kinds`, open the new ones.
fn create_on_this_thread(kinds: NsKinds, base: &NsSet) -> Result<Vec<Namespace>> {
    for ns in base.entry_order(NOT_ENTERED) {
        if ns.kind() == NsKind::Mnt {
            sys::unshare_fs().map_err(|e| create_error(kinds, "unshare(CLONE_FS)", e))?;
        }
        sys::setns(ns, ns.kind()).map_err(|errno| Error::enter(ns.id(), ns.path(), errno))?;
    }
    let flags = kinds.iter().fold(0, |flags, k| flags | k.clone_flag());
    nix::sched::unshare(nix::sched::CloneFlags::from_bits_retain(flags))
        .map_err(|e| create_error(kinds, "unshare", Errno::from_nix(e)))?;
    if kinds.contains(NsKind::Mnt) {
        sys::make_mounts_private()
            .map_err(|e| create_error(kinds, "making the new mount namespace private", e))?;
    }
    kinds
        .into_iter()
        .map(Namespace::current_unchecked)
        .collect()
}

fn create_error(kinds: NsKinds, step: &'static str, errno: Errno) -> Error {
    if matches!(errno, Errno::EPERM | Errno::EACCES) {
        return Error::PermissionDenied {
            op: "creating",
            kind: kinds.iter().next(),
            path: None,
            needs: if kinds.contains(NsKind::User) {
                "no capability for the user namespace itself, but CAP_SYS_ADMIN for the others \
                 unless they are created with it, and CAP_SETUID/CAP_SETGID for maps other than \
                 the caller's own ids"
            } else {
                "CAP_SYS_ADMIN"
            },
            errno,
            fix: fix::CREATE,
        };
    }
    Error::Create { kinds, step, errno }
}

fn write_map(path: &Path, map: &[IdMap]) -> Result<()> {
    let mut text = String::new();
    for line in map {
        let _ = writeln!(text, "{} {} {}", line.inside, line.outside, line.count);
    }
    write_file(path, &text)
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| {
        let errno = Errno::from_raw(e.raw_os_error().unwrap_or(0));
        match errno {
            Errno::EPERM | Errno::EACCES => Error::PermissionDenied {
                op: "writing",
                kind: Some(NsKind::User),
                path: Some(path.to_path_buf()),
                needs: "CAP_SETUID/CAP_SETGID in the parent user namespace for ids other than \
                        the caller's own",
                errno,
                fix: fix::MAPS,
            },
            _ => Error::Io {
                op: "writing",
                kind: Some(NsKind::User),
                path: Some(path.to_path_buf()),
                errno,
            },
        }
    })
}

impl NsSet {
    /// New namespaces of `kinds`, created without switching the calling
    /// thread. See [`Unshare`] for how each kind is created, and for uid and
    /// gid maps (by default the caller is root in a new user namespace).
    ///
    /// # Errors
    ///
    /// See [`Unshare::create`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use nsguard::{NsKind, NsSet};
    ///
    /// let sandbox = NsSet::unshare(NsKind::Net | NsKind::Uts)?;
    /// sandbox.run(|| { /* only `lo` here */ })?;
    /// # Ok::<(), nsguard::Error>(())
    /// ```
    pub fn unshare(kinds: impl Into<NsKinds>) -> Result<NsSet> {
        Unshare::new(kinds).create()
    }

    /// This set plus new namespaces of `kinds`, created from inside it (a
    /// new mount namespace copies this set's; new namespaces are owned by
    /// this set's user namespace, if it has one).
    ///
    /// # Errors
    ///
    /// See [`Unshare::create_in`].
    pub fn with_new(&self, kinds: impl Into<NsKinds>) -> Result<NsSet> {
        Unshare::new(kinds).create_in(self)
    }
}
