//! Spawning processes inside a set: [`CommandExt`].

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::OFlag;

use crate::error::{Error, Result};
use crate::kind::{NsKind, NsKinds};
use crate::namespace::Namespace;
use crate::set::NsSet;
use crate::sys::{self, ChildFailure, ChildPlan, ChildStep};
use crate::thread_state;

/// Spawning a [`Command`] inside the namespaces of an [`NsSet`].
///
/// Every kind works, user, pid, time and mnt included:
///
/// - pid: the process is forked by a short-lived thread that has entered
///   the pid namespace, so the process itself is inside (not only its
///   children);
/// - every other kind is entered in the child between `fork` and `exec`,
///   with async-signal-safe system calls only: first the namespaces *not*
///   owned by the set's user namespace, then the user namespace, then the
///   ones it owns (which need the capabilities it grants);
/// - after entering a mount namespace the child's working directory is the
///   root of that namespace, or [`Command::current_dir`] resolved inside it;
/// - the namespace fds are close-on-exec: none is open in the process.
///
/// Kinds the set does not name are those of the calling thread.
///
/// ```no_run
/// use std::process::Command;
/// use nsguard::{CommandExt, NsKind, NsSet};
///
/// let sandbox = NsSet::unshare(NsKind::User | NsKind::Net)?;
/// let out = Command::new("id").arg("-u").spawn_in(&sandbox)?.wait_with_output()?;
/// assert_eq!(out.stdout, b"0\n"); // root inside
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait CommandExt: sealed::Sealed {
    /// Spawns the command inside every namespace of `set`.
    ///
    /// # Errors
    ///
    /// - [`Error::PermissionDenied`] or [`Error::Enter`] if the child could
    ///   not enter a namespace (naming which one);
    /// - [`Error::Spawn`] if the process could not be started (the program
    ///   does not exist…);
    /// - [`Error::Poisoned`] if the calling thread is poisoned.
    fn spawn_in(&mut self, set: &NsSet) -> Result<Child>;

    /// Spawns the command inside every namespace of `set`, and in new
    /// namespaces of `new` made for it alone: for pid, the process is the
    /// first process (init, pid 1) of its new pid namespace.
    ///
    /// # Errors
    ///
    /// Those of [`spawn_in`](Self::spawn_in); [`Error::CannotCreate`] for
    /// user (create it first with [`NsSet::unshare`], which writes its id
    /// maps); [`Error::KindUnsupported`] for a kind of `new` the running
    /// kernel lacks (time before Linux 5.6 or without `CONFIG_TIME_NS`),
    /// before anything is started.
    fn spawn_in_new(&mut self, set: &NsSet, new: NsKinds) -> Result<Child>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for std::process::Command {}
}

impl CommandExt for Command {
    fn spawn_in(&mut self, set: &NsSet) -> Result<Child> {
        self.spawn_in_new(set, NsKinds::EMPTY)
    }

    fn spawn_in_new(&mut self, set: &NsSet, new: NsKinds) -> Result<Child> {
        thread_state::check()?;
        Error::check_supported(new)?;
        if new.contains(NsKind::User) {
            return Err(Error::CannotCreate {
                kind: NsKind::User,
                reason: "a new user namespace needs its uid and gid maps written from outside \
                         it, after it exists",
                instead: "create it with NsSet::unshare or Unshare, then spawn_in that set",
            });
        }
        // pid is entered by the forking thread instead.
        let entered = set.entry_order(NsKind::Pid.into());
        let (report_r, report_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
            .map_err(|errno| Error::Io {
                op: "creating a pipe for",
                kind: NsKind::Net,
                path: None,
                errno,
            })?;
        let cwd = self
            .get_current_dir()
            .and_then(|dir| CString::new(dir.as_os_str().as_bytes()).ok());
        let hook = Arc::new(Hook {
            armed: AtomicBool::new(true),
            plan: ChildPlan {
                setns: entered
                    .iter()
                    .map(|ns| (ns.as_fd().as_raw_fd(), ns.kind().clone_flag()))
                    .collect(),
                unshare: new
                    .difference(NsKind::Pid.into())
                    .iter()
                    .fold(0, |f, k| f | k.clone_flag()),
                private_mounts: new.contains(NsKind::Mnt),
                chdir: if set.contains(NsKind::Mnt) || new.contains(NsKind::Mnt) {
                    cwd
                } else {
                    None
                },
            },
            report: report_w.as_raw_fd(),
        });
        let in_child = Arc::clone(&hook);
        // SAFETY: the hook runs in the forked child before exec and makes
        // only async-signal-safe system calls (ChildPlan::apply's setns,
        // unshare, mount, chdir, and a write) on data prepared before the
        // fork; it allocates nothing (an io::Error from an errno does not).
        unsafe {
            self.pre_exec(move || in_child.run());
        }
        let pid_ns = set.get(NsKind::Pid);
        let spawned = if pid_ns.is_some() || new.contains(NsKind::Pid) {
            // The forking thread must be in the pid namespace: a short-lived
            // thread enters it (or makes a new one), then forks.
            std::thread::scope(|s| {
                s.spawn(|| -> Result<std::io::Result<Child>> {
                    if let Some(ns) = pid_ns {
                        sys::setns(ns, NsKind::Pid)
                            .map_err(|errno| Error::enter(ns.id(), ns.path(), errno))?;
                    }
                    if new.contains(NsKind::Pid) {
                        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWPID).map_err(
                            |errno| Error::Create {
                                kinds: NsKind::Pid.into(),
                                step: "unshare",
                                errno,
                            },
                        )?;
                    }
                    Ok(self.spawn())
                })
                .join()
                .unwrap_or_else(|_| {
                    Err(Error::Worker {
                        reason: "the spawning thread panicked".into(),
                    })
                })
            })
        } else {
            Ok(self.spawn())
        };
        // The hook stays on the Command (there is no way to remove it) but
        // does nothing from now on: its fds are about to close.
        hook.armed.store(false, Ordering::SeqCst);
        drop(report_w);
        match spawned? {
            Ok(child) => Ok(child),
            Err(io) => Err(child_failure(&report_r, &entered, self, new, io)),
        }
    }
}

/// What the child does before exec. Shared with the hook through an `Arc`,
/// read-only while armed.
struct Hook {
    armed: AtomicBool,
    plan: ChildPlan,
    /// Where the child reports which step failed.
    report: RawFd,
}

impl Hook {
    /// In the child: async-signal-safe system calls only.
    fn run(&self) -> std::io::Result<()> {
        if !self.armed.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.plan
            .apply()
            .map_err(|failure| failure.send(self.report))
    }
}

/// The error for a failed spawn: what the child reported, if anything.
fn child_failure(
    report: &OwnedFd,
    entered: &[&Namespace],
    cmd: &Command,
    new: NsKinds,
    io: std::io::Error,
) -> Error {
    match ChildFailure::receive(report.as_fd()) {
        Some(Err(ChildFailure {
            step: ChildStep::Setns(i),
            errno,
        })) if i < entered.len() => {
            let ns = entered[i];
            Error::enter(ns.id(), ns.path(), errno)
        }
        Some(Err(failure)) => Error::Create {
            kinds: new,
            step: failure.step.describe(),
            errno: failure.errno,
        },
        _ => Error::Spawn {
            program: cmd.get_program().to_string_lossy().into_owned(),
            errno: Errno::from_raw(io.raw_os_error().unwrap_or(0)),
        },
    }
}
