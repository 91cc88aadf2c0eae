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
    /// - [`Error::Io`] naming the working directory if
    ///   [`Command::current_dir`] does not exist inside the set's mount
    ///   namespace;
    /// - [`Error::InvalidConfig`] if std's `uid` or `gid` is set on the
    ///   command and the set needs a user or time namespace switched (use
    ///   [`spawn_in_as`](Self::spawn_in_as));
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
    /// std's [`uid`](std::os::unix::process::CommandExt::uid) and `gid`
    /// work with [`spawn_in`](Self::spawn_in) too, for sets that a thread
    /// can enter (all kinds but user and time): the process is then forked
    /// from a thread inside the namespaces, and std applies the ids there.
    /// Only this method can set ids for a process that enters a user or
    /// time namespace: std applies its ids before any hook runs, which
    /// would take the privilege to enter them.
    ///
    /// # Errors
    ///
    /// Those of [`spawn_in`](Self::spawn_in); [`Error::Io`] naming
    /// `setresuid` if the kernel refuses the ids (for instance ids not
    /// mapped in the set's user namespace).
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

/// Which of std's `Command::uid` and `Command::gid` is set on `cmd`, if
/// either. std has no getters for them; its alternate `Debug` shows each
/// as a field of the command, on a line of its own indented once (an
/// argument or an environment value is quoted and indented deeper, and
/// cannot span lines: `Debug` escapes newlines), so only such a line counts.
fn ids_set_on(cmd: &Command) -> Option<&'static str> {
    let shown = format!("{cmd:#?}");
    let field = |name: &str| {
        shown.lines().any(|line| {
            line.strip_prefix("    ").is_some_and(|rest| {
                rest.starts_with(name) && rest[name.len()..].starts_with(": Some(")
            })
        })
    };
    if field("uid") {
        Some("Command::uid")
    } else if field("gid") {
        Some("Command::gid")
    } else {
        None
    }
}

/// Spawns `cmd` with ids set on it (`Command::uid`/`gid`): std applies them
/// in the child before any hook could enter the namespaces, so the child
/// is forked from a short-lived thread that has entered `set` and made the
/// namespaces of `new` already, and std applies the ids inside. Only kinds
/// a thread can enter can be reached this way.
fn spawn_from_a_thread_inside(
    cmd: &mut Command,
    setting: &'static str,
    set: &NsSet,
    new: NsKinds,
    creds: Option<&Credentials>,
) -> Result<Child> {
    let refuse = |reason: String| Error::InvalidConfig { setting, reason };
    if creds.is_some() {
        return Err(refuse(
            "spawn_in_as sets the ids itself, inside the namespaces; set them either there \
             or on the Command, not both"
                .into(),
        ));
    }
    let unreachable = set
        .kinds()
        .union(new)
        .intersection(NsKind::User | NsKind::Time);
    if let Some(kind) = unreachable.iter().next() {
        return Err(refuse(format!(
            "std applies it in the child before any hook runs, and the child must enter (or \
             make) a {kind} namespace, which no thread can do for it: only a hook could, and \
             the ids would have taken the privilege to. Leave it unset and use \
             CommandExt::spawn_in_as with nsguard::Credentials, which sets the ids inside"
        )));
    }
    let spawned = on_new_thread(
        "spawn a process from inside the namespaces",
        || -> Result<std::io::Result<Child>> {
            for ns in set.entry_order(NsKinds::EMPTY) {
                if ns.kind() == NsKind::Mnt {
                    sys::unshare_fs().map_err(|errno| Error::Io {
                        op: "unshare(CLONE_FS) before entering",
                        kind: Some(NsKind::Mnt),
                        path: ns.path().map(Into::into),
                        errno,
                    })?;
                }
                sys::setns(ns, ns.kind())
                    .map_err(|errno| Error::enter(ns.id(), ns.path(), errno))?;
            }
            if !new.is_empty() {
                let flags = new.iter().fold(0, |f, k| f | k.clone_flag());
                nix::sched::unshare(nix::sched::CloneFlags::from_bits_retain(flags)).map_err(
                    |errno| Error::Create {
                        kinds: new,
                        step: "unshare",
                        errno: Errno::from_nix(errno),
                    },
                )?;
                if new.contains(NsKind::Mnt) {
                    sys::make_mounts_private().map_err(|errno| Error::Create {
                        kinds: new,
                        step: "making the new mount namespace private",
                        errno,
                    })?;
                }
            }
            Ok(cmd.spawn())
        },
    )??;
    spawned.map_err(|io| Error::Spawn {
        program: cmd.get_program().to_string_lossy().into_owned(),
        source: std::sync::Arc::new(Box::new(io)),
    })
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
    if let Some(setting) = ids_set_on(cmd).filter(|_| switching) {
        return spawn_from_a_thread_inside(cmd, setting, set, new, creds);
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
        Err(io) => Err(child_failure(
            &report_r,
            &entered,
            cmd,
            cwd.as_deref(),
            new,
            io,
        )),
    }
}

/// The error for a failed spawn: what the child reported, if anything.
fn child_failure(
    report: &OwnedFd,
    entered: &[&Namespace],
    cmd: &Command,
    cwd: Option<&std::path::Path>,
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
        Some(Err(ChildFailure {
            step: step @ (ChildStep::Unshare | ChildStep::PrivateMounts),
            errno,
        })) => Error::Create {
            kinds: new,
            step: step.describe(),
            errno,
        },
        Some(Err(ChildFailure {
            step: ChildStep::Chdir,
            errno,
        })) => Error::Io {
            op: "changing the spawned process's working directory, inside its mount \
                 namespace, to",
            kind: None,
            path: cwd.map(std::path::Path::to_path_buf),
            errno,
        },
        Some(Err(ChildFailure {
            step: ChildStep::Creds,
            errno,
        })) => Error::Io {
            op: "taking the ids of spawn_in_as in the spawned process (setgroups, setresgid, \
                 setresuid; are they mapped in its user namespace?)",
            kind: None,
            path: None,
            errno,
        },
        Some(Err(failure)) => Error::Io {
            op: failure.step.describe(),
            kind: None,
            path: None,
            errno: failure.errno,
        },
        _ => Error::Spawn {
            program: cmd.get_program().to_string_lossy().into_owned(),
            source: std::sync::Arc::new(Box::new(io)),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt as _;
    use std::process::Command;

    use super::ids_set_on;

    #[test]
    fn ids_are_told_from_arguments_and_environment_values_that_look_like_them() {
        let mut cmd = Command::new("echo");
        cmd.arg("pid: 1, uid: Some(0)")
            .arg("\n    uid: Some(0)")
            .env("X", "gid: Some(3)")
            .env("    gid: Some(", "    uid: Some(");
        assert_eq!(ids_set_on(&cmd), None);
        cmd.uid(65534);
        assert_eq!(ids_set_on(&cmd), Some("Command::uid"));
        let mut cmd = Command::new("true");
        cmd.gid(65534);
        assert_eq!(ids_set_on(&cmd), Some("Command::gid"));
    }
}
