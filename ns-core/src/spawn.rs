//! Spawning processes inside a set: [`CommandExt`].

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::process::{Child, Command};

use nix::fcntl::OFlag;

use crate::errno::Errno;
use crate::error::{Error, Result};
use crate::handle::namespace::Namespace;
use crate::handle::set::NsSet;
use crate::kind::{NsKind, NsKinds};
use crate::process::helper_thread::on_new_thread;
use crate::sys::probe::check_supported;
use crate::sys::{self, ChildFailure, ChildPlan, ChildStep, ExecHook};
use crate::thread::marks;

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
/// ```
/// use std::process::{Command, Stdio};
/// use nsguard::{CommandExt, NsKind, NsSet};
///
/// let sandbox = NsSet::unshare(NsKind::User | NsKind::Net)?;
/// let out = Command::new("id")
///     .arg("-u")
///     .stdout(Stdio::piped()) // else the child writes to this process's stdout
///     .spawn_in(&sandbox)?
///     .wait_with_output()?;
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
    fn spawn_in_new(&mut self, set: &NsSet, new: impl Into<NsKinds>) -> Result<Child>;

    /// Spawns the command inside every namespace of `set`, running as the
    /// user, group and supplementary groups of `creds`, which are set inside
    /// the namespaces (after `setns`, as `nsenter -S/-G` does), so that ids
    /// of the set's user namespace can be used, and the caller's privilege
    /// is still there to enter the namespaces.
    ///
    /// Use this instead of [`std::os::unix::process::CommandExt::uid`] and
    /// `gid`: std applies those in the child before any hook runs, so the
    /// child would no longer have the privilege to enter the namespaces.
    /// [`spawn_in`](Self::spawn_in) refuses a command that has them set.
    ///
    /// # Errors
    ///
    /// Those of [`spawn_in`](Self::spawn_in); [`Error::Create`] with step
    /// "setting the credentials" if the kernel refuses the ids (for
    /// instance ids not mapped in the set's user namespace).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::process::{Command, Stdio};
    /// use nsguard::{CommandExt, Credentials, NsKind, NsSet};
    ///
    /// # if !nix::unistd::geteuid().is_root() { return Ok(()); }
    /// let sandbox = NsSet::unshare(NsKind::Net)?;
    /// let out = Command::new("id")
    ///     .arg("-u")
    ///     .stdout(Stdio::piped())
    ///     .spawn_in_as(&sandbox, &Credentials::new(65534, 65534))?
    ///     .wait_with_output()?;
    /// assert_eq!(out.stdout, b"65534\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn spawn_in_as(&mut self, set: &NsSet, creds: &Credentials) -> Result<Child>;
}

/// The user, group and supplementary groups a process spawned with
/// [`CommandExt::spawn_in_as`] runs as, set inside the namespaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
}

impl Credentials {
    /// Runs as `uid` and `gid` (real, effective and saved), with no
    /// supplementary groups.
    pub fn new(uid: u32, gid: u32) -> Credentials {
        Credentials {
            uid,
            gid,
            groups: Vec::new(),
        }
    }

    /// The supplementary groups (default: none).
    #[must_use]
    pub fn groups(mut self, groups: impl IntoIterator<Item = u32>) -> Credentials {
        self.groups = groups.into_iter().collect();
        self
    }

    fn plan(&self) -> sys::ChildCreds {
        sys::ChildCreds {
            uid: self.uid,
            gid: self.gid,
            groups: self.groups.clone(),
        }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for std::process::Command {}
}

impl CommandExt for Command {
    fn spawn_in(&mut self, set: &NsSet) -> Result<Child> {
        spawn_inside(self, set, NsKinds::EMPTY, None)
    }

    fn spawn_in_new(&mut self, set: &NsSet, new: impl Into<NsKinds>) -> Result<Child> {
        spawn_inside(self, set, new.into(), None)
    }

    fn spawn_in_as(&mut self, set: &NsSet, creds: &Credentials) -> Result<Child> {
        spawn_inside(self, set, NsKinds::EMPTY, Some(creds))
    }
}

/// std's `Command::uid`/`gid` have no getters; its alternate `Debug` shows
/// them when set. They are applied before the hook that enters the
/// namespaces, which would then fail for lack of privilege ("run as root"
/// as root): refuse them with the way that works.
fn refuse_ids_set_on_the_command(cmd: &Command) -> Result<()> {
    let shown = format!("{cmd:#?}");
    for (field, setting) in [
        ("uid: Some(", "Command::uid"),
        ("gid: Some(", "Command::gid"),
    ] {
        if shown.contains(field) {
            return Err(Error::InvalidConfig {
                setting,
                reason: "std applies it in the child before nsguard enters the namespaces, so \
                         the child would lose the privilege to enter them; leave it unset and \
                         use CommandExt::spawn_in_as with nsguard::Credentials, which sets the \
                         ids inside"
                    .into(),
            });
        }
    }
    Ok(())
}

fn spawn_inside(
    cmd: &mut Command,
    set: &NsSet,
    new: NsKinds,
    creds: Option<&Credentials>,
) -> Result<Child> {
    marks::check()?;
    check_supported(new)?;
    if new.contains(NsKind::User) {
        return Err(Error::CannotCreate {
            kind: NsKind::User,
            reason: "a new user namespace needs its uid and gid maps written from outside \
                     it, after it exists",
            instead: "create it with NsSet::unshare or Unshare, then spawn_in that set",
        });
    }
    // Kinds the calling thread is in need no switch: the child is in
    // them already (entering its own user namespace would even fail).
    let to_enter = set.to_enter()?;
    let set = &to_enter;
    let switching = !set.is_empty() || !new.is_empty();
    if switching {
        refuse_ids_set_on_the_command(cmd)?;
    }
    // pid is entered by the forking thread instead.
    let entered = set.entry_order(NsKind::Pid.into());
    let (report_r, report_w) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(|errno| Error::Io {
            op: "creating a pipe for",
            kind: None,
            path: None,
            errno: Errno::from_nix(errno),
        })?;
    let cwd = cmd.get_current_dir().map(std::path::Path::to_path_buf);
    let changes_mounts = set.contains(NsKind::Mnt) || new.contains(NsKind::Mnt);
    let chdir = match &cwd {
        Some(dir) if changes_mounts => Some(CString::new(dir.as_os_str().as_bytes()).map_err(
            |_| Error::InvalidConfig {
                setting: "Command::current_dir",
                reason: format!("{} contains a NUL byte", dir.display()),
            },
        )?),
        _ => None,
    };
    if chdir.is_some() {
        // std changes directory in the child before the hook runs, where
        // the directory may not exist: let it change to "." (a no-op),
        // and change to the real one inside, after setns. The Command
        // gets its directory back below.
        cmd.current_dir(".");
    }
    let creds = creds.map(Credentials::plan);
    let plan = ChildPlan {
        setns: entered
            .iter()
            .map(|ns| (ns.as_fd().as_raw_fd(), ns.kind().clone_flag()))
            .collect(),
        unshare: new
            .difference(NsKind::Pid.into())
            .iter()
            .fold(0, |f, k| f | k.clone_flag()),
        private_mounts: new.contains(NsKind::Mnt),
        creds,
        chdir,
    };
    let hook = ExecHook::install(cmd, plan, report_w.as_raw_fd());
    let pid_ns = set.get(NsKind::Pid);
    let spawned = if pid_ns.is_some() || new.contains(NsKind::Pid) {
        // The forking thread must be in the pid namespace: a short-lived
        // thread enters it (or makes a new one), then forks.
        let cmd = &mut *cmd;
        on_new_thread(
            "fork a process inside a pid namespace",
            || -> Result<std::io::Result<Child>> {
                if let Some(ns) = pid_ns {
                    sys::setns(ns, NsKind::Pid)
                        .map_err(|errno| Error::enter(ns.id(), ns.path(), errno))?;
                }
                if new.contains(NsKind::Pid) {
                    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWPID).map_err(|errno| {
                        Error::Create {
                            kinds: NsKind::Pid.into(),
                            step: "unshare",
                            errno: Errno::from_nix(errno),
                        }
                    })?;
                }
                Ok(cmd.spawn())
            },
        )
        .and_then(|spawned| spawned)
    } else {
        Ok(cmd.spawn())
    };
    if let (Some(dir), Some(_)) = (&cwd, &hook.plan().chdir) {
        cmd.current_dir(dir);
    }
    // The hook stays on the Command but does nothing from now on.
    hook.disarm();
    drop(report_w);
    match spawned? {
        Ok(child) => Ok(child),
        Err(io) => Err(child_failure(&report_r, &entered, cmd, new, io)),
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
            source: std::sync::Arc::new(Box::new(io)),
        },
    }
}
