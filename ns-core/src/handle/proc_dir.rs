//! [`ProcDir`]: a process's `/proc/<pid>`, and [`Namespace::of_pid`].

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use crate::errno::Errno;
use crate::error::{Error, Result};
use crate::handle::namespace::{open_error, validate, Namespace};
use crate::kind::NsKind;
use crate::sys;
use crate::sys::probe::check_supported;
use crate::thread::marks;

impl Namespace {
    /// Opens the namespace of `kind` that process `pid` is in
    /// (`/proc/<pid>/ns/<kind>`).
    ///
    /// For [`NsKind::Pid`] and [`NsKind::Time`] that is the namespace the
    /// process itself is in, which is also where its children go unless it
    /// changed `pid_for_children`/`time_for_children`.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidPid`] if `pid` is zero or over `i32::MAX`;
    /// - [`Error::KindUnsupported`] if the running kernel has no namespaces
    ///   of `kind`;
    /// - [`Error::NoSuchProcess`] if no such process exists, or it has
    ///   exited (a zombie has no namespaces);
    /// - [`Error::PermissionDenied`] without ptrace read access to it;
    /// - the other errors of [`open`](Self::open).
    ///
    /// # Examples
    ///
    /// ```
    /// use nsguard::{Namespace, NsKind};
    ///
    /// let mine = Namespace::of_pid(std::process::id(), NsKind::Uts)?;
    /// assert_eq!(mine, Namespace::current(NsKind::Uts)?);
    /// # Ok::<(), nsguard::Error>(())
    /// ```
    ///
    /// `pid` is a `u32`, as [`std::process::id`] and
    /// [`Child::id`](std::process::Child::id) return it, and is looked up
    /// in the `/proc` mounted: when that `/proc` belongs to another pid
    /// namespace than the caller's (pid 1 of `unshare -pf` without
    /// `--mount-proc`), a pid from `getpid` names another process there.
    pub fn of_pid(pid: u32, kind: NsKind) -> Result<Namespace> {
        marks::check()?;
        check_supported(kind.into())?;
        ProcDir::open(pid, kind)?.namespace(kind)
    }
}

/// `/proc/<pid>`, opened once so that every namespace read from it belongs
/// to the same process even if the pid is reused meanwhile.
pub(crate) struct ProcDir {
    pid: u32,
    /// The directory's path, for messages: `/proc/<pid>` or `/proc/self`.
    path: PathBuf,
    fd: OwnedFd,
}

impl ProcDir {
    /// Opens `/proc/<pid>`; `kind` is what the caller is after, for errors.
    pub(crate) fn open(pid: u32, kind: NsKind) -> Result<ProcDir> {
        if pid == 0 || i32::try_from(pid).is_err() {
            return Err(Error::InvalidPid { pid });
        }
        let dir = PathBuf::from(format!("/proc/{pid}"));
        match sys::open_dir(&dir) {
            Ok(fd) => Ok(ProcDir { pid, path: dir, fd }),
            Err(Errno::ENOENT) => Err(Error::NoSuchProcess {
                pid,
                kind,
                path: dir.join("ns").join(kind.proc_name()),
            }),
            Err(errno) => Err(open_error(kind, &dir, errno)),
        }
    }

    /// Opens `/proc/self`: the calling process, whatever its pid is in the
    /// pid namespace of the `/proc` mounted (a pid from `getpid(2)` names
    /// another process there when that namespace is not the caller's).
    ///
    /// # Errors
    ///
    /// [`Error::ForeignProc`] if `/proc` does not show the calling process
    /// (it belongs to a pid namespace the process is not in or below);
    /// the errors of opening it otherwise.
    pub(crate) fn open_self() -> Result<ProcDir> {
        let dir = PathBuf::from("/proc/self");
        match sys::open_dir(&dir) {
            Ok(fd) => Ok(ProcDir {
                pid: std::process::id(),
                path: dir,
                fd,
            }),
            Err(Errno::ENOENT) if std::path::Path::new("/proc/1").exists() => {
                Err(Error::ForeignProc {
                    path: "/proc/self".into(),
                })
            }
            Err(errno) => Err(open_error(NsKind::Pid, &dir, errno)),
        }
    }

    /// Opens `ns/<kind>` of the process.
    pub(crate) fn namespace(&self, kind: NsKind) -> Result<Namespace> {
        self.namespace_file(kind, kind.proc_name())
    }

    /// Opens `ns/<file>` of the process, a namespace of `kind`.
    pub(crate) fn namespace_file(&self, kind: NsKind, file: &str) -> Result<Namespace> {
        check_supported(kind.into())?;
        let name = format!("ns/{file}");
        let path = self.path.join(&name);
        match sys::open_at(self.fd.as_fd(), &name) {
            Ok(fd) => validate(kind, fd, Some(&path)),
            // The directory is pinned to the process, and the kernel has the
            // kind: ENOENT or ESRCH now means the process exited (a zombie
            // has no namespaces).
            Err(Errno::ENOENT | Errno::ESRCH) => Err(Error::NoSuchProcess {
                pid: self.pid,
                kind,
                path,
            }),
            Err(errno) => Err(open_error(kind, &path, errno)),
        }
    }
}
