//! [`Namespace`]: one open namespace.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::errno::Errno;
use crate::error::{fix, Error, Result};
use crate::handle::registry::Registration;
use crate::id::NsId;
use crate::kind::NsKind;
use crate::sys;
use crate::sys::probe::check_supported;
use crate::thread::{marks, ns_links};

/// Where `ip netns` keeps named network namespaces, in the order searched.
pub const NETNS_DIRS: [&str; 2] = ["/run/netns", "/var/run/netns"];

/// The longest file name the kernel accepts (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// One open namespace: a file descriptor of its nsfs file, its kind and its
/// [`NsId`].
///
/// Holding a `Namespace` keeps the namespace alive, even after every process
/// in it has exited and its bind mount was removed. Every constructor checks
/// that the file really is a namespace of the requested kind before it
/// returns; the fd is opened `O_RDONLY | O_CLOEXEC`, so no child process
/// inherits it.
///
/// Two `Namespace`s are equal when they name the same namespace (same
/// [`NsId`]), whatever paths they were opened from.
///
/// ```no_run
/// use nsguard::{Namespace, NsKind};
///
/// let blue = Namespace::named("blue")?; // /run/netns/blue, as made by `ip netns add blue`
/// let here = Namespace::current(NsKind::Net)?;
/// println!("{} -> {}", here.id(), blue.id()); // net:[4026531833] -> net:[4026532291]
/// assert_ne!(here, blue);
/// # Ok::<(), nsguard::Error>(())
/// ```
pub struct Namespace {
    fd: OwnedFd,
    id: NsId,
    path: Option<PathBuf>,
    /// Counts this handle among the program's handles to the namespace;
    /// dropped last, after the fd is closed.
    _registration: Registration,
}

impl Namespace {
    /// Opens the namespace file at `path`, which must be a namespace of
    /// `kind`. (Every constructor takes where the namespace comes from
    /// first, then its kind: `open(path, kind)`, `of_pid(pid, kind)`,
    /// `from_fd(fd, kind)`, [`NsSet::from_dir(dir, kinds)`](crate::NsSet::from_dir).)
    ///
    /// `path` is `/proc/<pid>/ns/<kind>`, a bind mount of one (like
    /// `/run/netns/NAME`), or `/proc/<pid>/fd/<n>` of a namespace fd.
    ///
    /// The file is checked to be on nsfs (`fstatfs`) and of the right kind
    /// (`NS_GET_NSTYPE`) before anything else is done with it.
    ///
    /// # Errors
    ///
    /// - [`Error::KindUnsupported`] if the running kernel has no namespaces
    ///   of `kind` (time before Linux 5.6 or without `CONFIG_TIME_NS`);
    /// - [`Error::NotFound`] if `path` does not exist;
    /// - [`Error::PermissionDenied`] if it cannot be read (for
    ///   `/proc/<pid>/ns/*` of another user's process: ptrace access);
    /// - [`Error::NotANamespace`] if it is a regular file, a directory, a
    ///   device, a socket…;
    /// - [`Error::WrongKind`] if it is a namespace of another kind;
    /// - [`Error::Poisoned`] if the calling thread is poisoned;
    /// - [`Error::Io`] for any other failure of `open`/`fstat`.
    ///
    /// # Examples
    ///
    /// ```
    /// use nsguard::{Error, Namespace, NsKind};
    ///
    /// let net = Namespace::open("/proc/self/ns/net", NsKind::Net)?;
    /// assert_eq!(net.kind(), NsKind::Net);
    ///
    /// let err = Namespace::open("/proc/self/ns/net", NsKind::Uts).unwrap_err();
    /// assert!(matches!(err, Error::WrongKind { found: NsKind::Net, .. }));
    /// # Ok::<(), nsguard::Error>(())
    /// ```
    pub fn open(path: impl AsRef<Path>, kind: NsKind) -> Result<Namespace> {
        marks::check()?;
        check_supported(kind.into())?;
        open_path(kind, path.as_ref())
    }

    /// Opens the network namespace that `ip netns add NAME` created:
    /// `/run/netns/NAME`, else `/var/run/netns/NAME`.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidName`] if `name` is empty, `.` or `..`, contains `/`
    ///   or a NUL byte, or is longer than 255 bytes; nothing is opened;
    /// - [`Error::NotFound`] if neither directory holds `name`;
    /// - the errors of [`open`](Self::open) for the file found.
    ///
    /// # Examples
    ///
    /// ```
    /// use nsguard::{Error, Namespace};
    ///
    /// let err = Namespace::named("../etc").unwrap_err();
    /// assert!(matches!(err, Error::InvalidName { .. }));
    /// ```
    pub fn named(name: &str) -> Result<Namespace> {
        marks::check()?;
        validate_name(name)?;
        let mut not_found = None;
        for dir in NETNS_DIRS {
            match open_path(NsKind::Net, &Path::new(dir).join(name)) {
                Err(err @ Error::NotFound { .. }) => {
                    not_found.get_or_insert(err);
                }
                other => return other,
            }
        }
        Err(not_found.unwrap_or_else(|| Error::NotFound {
            kind: NsKind::Net,
            path: Path::new(NETNS_DIRS[0]).join(name),
            errno: Errno::ENOENT,
        }))
    }

    /// Opens the namespace of `kind` that the **calling thread** is in,
    /// from `/proc/thread-self/ns` (never `/proc/self`, which is the main
    /// thread's and may differ).
    ///
    /// For [`NsKind::Pid`] and [`NsKind::Time`] this is the namespace that
    /// `setns` changes on a thread, the one its children will be created in
    /// (`pid_for_children`, `time_for_children`); see
    /// [`NsKind::thread_proc_name`].
    ///
    /// # Errors
    ///
    /// [`Error::Poisoned`] if the thread is poisoned (its namespaces are
    /// unknown); [`Error::KindUnsupported`] if the running kernel has no
    /// namespaces of `kind` (see [`NsKinds::supported`]);
    /// [`Error::NotFound`] if `/proc` is not mounted.
    ///
    /// [`NsKinds::supported`]: crate::NsKinds::supported
    ///
    /// # Examples
    ///
    /// ```
    /// use nsguard::{Namespace, NsKind};
    ///
    /// let net = Namespace::current(NsKind::Net)?;
    /// println!("this thread is in {}", net.id()); // net:[4026531833]
    /// # Ok::<(), nsguard::Error>(())
    /// ```
    pub fn current(kind: NsKind) -> Result<Namespace> {
        marks::check()?;
        Self::current_unchecked(kind)
    }

    /// [`current`](Self::current) without the poison check, for restoring.
    pub(crate) fn current_unchecked(kind: NsKind) -> Result<Namespace> {
        check_supported(kind.into())?;
        let dir = ns_links::ns_dir()?;
        let name = kind.thread_proc_name();
        let fd = sys::open_at(dir.as_fd(), name).map_err(|errno| {
            open_error(kind, &Path::new(ns_links::THREAD_NS_DIR).join(name), errno)
        })?;
        // The file is the kernel's own link for this kind; its identity is
        // all that is needed. setns(2) checks the type again through the
        // CLONE_NEW* flag whenever the fd is used.
        let (dev, ino, _) = sys::stat(fd.as_fd()).map_err(|errno| Error::Io {
            op: "inspecting",
            kind: Some(kind),
            path: Some(Path::new(ns_links::THREAD_NS_DIR).join(name)),
            errno,
        })?;
        Ok(Namespace::from_parts(fd, NsId::new(kind, dev, ino), None))
    }

    /// Takes an fd that refers to a namespace of `kind` (from a pidfd's
    /// `PIDFD_GET_*_NAMESPACE`, a socket's `SIOCGSKNS`, another library…),
    /// after checking that it does.
    ///
    /// # Errors
    ///
    /// [`Error::NotANamespace`] or [`Error::WrongKind`] if it does not (the
    /// fd is closed); [`Error::Io`] if it cannot be inspected.
    pub fn from_fd(fd: OwnedFd, kind: NsKind) -> Result<Namespace> {
        validate(kind, fd, None)
    }

    /// The user namespace that owns this namespace (`NS_GET_USERNS`): the
    /// one in which capabilities over it are checked. For a user namespace,
    /// its parent.
    ///
    /// # Errors
    ///
    /// [`Error::PermissionDenied`] if the owner is outside the caller's user
    /// namespace (`EPERM`); [`Error::Io`] otherwise.
    pub fn owner(&self) -> Result<Namespace> {
        let fd = sys::ns_get_userns(self.fd.as_fd()).map_err(|errno| match errno {
            Errno::EPERM => Error::PermissionDenied {
                op: "finding the owner of",
                kind: Some(self.kind()),
                path: self.path.clone(),
                needs: "the owner to be in the caller's user namespace or below it",
                errno,
                fix: fix::ENTER,
            },
            errno => Error::Io {
                op: "finding the owner of",
                kind: Some(self.kind()),
                path: self.path.clone(),
                errno,
            },
        })?;
        validate(NsKind::User, fd, None)
    }

    /// The kind of the namespace.
    pub fn kind(&self) -> NsKind {
        self.id.kind()
    }

    /// The identity of the namespace.
    pub fn id(&self) -> NsId {
        self.id
    }

    /// The path this handle was opened from, if it was opened from a path
    /// by [`open`](Self::open), [`named`](Self::named),
    /// [`of_pid`](Self::of_pid) or from a directory.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Another handle to the same namespace, with a new fd
    /// (`F_DUPFD_CLOEXEC`).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the fd cannot be duplicated (`EMFILE`…).
    pub fn try_clone(&self) -> Result<Namespace> {
        let fd = self.fd.try_clone().map_err(|e| Error::Io {
            op: "duplicating the fd of",
            kind: Some(self.kind()),
            path: self.path.clone(),
            errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        })?;
        Ok(Namespace::from_parts(fd, self.id, self.path.clone()))
    }
}

impl Namespace {
    fn from_parts(fd: OwnedFd, id: NsId, path: Option<PathBuf>) -> Namespace {
        Namespace {
            fd,
            id,
            path,
            _registration: Registration::new(id.ino()),
        }
    }
}

impl AsFd for Namespace {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl std::os::fd::AsRawFd for Namespace {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

impl From<Namespace> for OwnedFd {
    fn from(ns: Namespace) -> OwnedFd {
        ns.fd
    }
}

impl PartialEq for Namespace {
    fn eq(&self, other: &Namespace) -> bool {
        self.id == other.id
    }
}

impl Eq for Namespace {}

impl Hash for Namespace {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Namespace");
        d.field("id", &format_args!("{}", self.id));
        if let Some(path) = &self.path {
            d.field("path", path);
        }
        d.field("fd", &self.fd).finish()
    }
}

/// `open` + [`validate`], the path-based constructors' common part.
fn open_path(kind: NsKind, path: &Path) -> Result<Namespace> {
    let fd = sys::open(path).map_err(|errno| open_error(kind, path, errno))?;
    validate(kind, fd, Some(path))
}

/// Checks that `fd` is a namespace of `kind`: nsfs first, then its type.
pub(crate) fn validate(kind: NsKind, fd: OwnedFd, path: Option<&Path>) -> Result<Namespace> {
    let shown = || path.map_or_else(|| PathBuf::from("<fd>"), Path::to_path_buf);
    let inspect = |errno| Error::Io {
        op: "inspecting",
        kind: Some(kind),
        path: Some(shown()),
        errno,
    };
    if !sys::is_nsfs(fd.as_fd()).map_err(inspect)? {
        let (_, _, mode) = sys::stat(fd.as_fd()).map_err(inspect)?;
        return Err(Error::NotANamespace {
            kind,
            path: shown(),
            found: sys::describe_mode(mode),
        });
    }
    let nstype = sys::ns_get_nstype(fd.as_fd()).map_err(inspect)?;
    let found = NsKind::from_clone_flag(nstype).ok_or_else(|| Error::NotANamespace {
        kind,
        path: shown(),
        found: "a namespace of a kind this version of nsguard does not know",
    })?;
    if found != kind {
        return Err(Error::WrongKind {
            path: shown(),
            expected: kind,
            found,
        });
    }
    let (dev, ino, _) = sys::stat(fd.as_fd()).map_err(inspect)?;
    Ok(Namespace::from_parts(
        fd,
        NsId::new(kind, dev, ino),
        path.map(Path::to_path_buf),
    ))
}

/// The error for a failed `open` of a would-be namespace file.
pub(crate) fn open_error(kind: NsKind, path: &Path, errno: Errno) -> Error {
    let path = path.to_path_buf();
    match errno {
        Errno::ENOENT | Errno::ENOTDIR => Error::NotFound { kind, path, errno },
        Errno::EACCES | Errno::EPERM => {
            let proc = path.starts_with("/proc");
            Error::PermissionDenied {
                op: "opening",
                kind: Some(kind),
                needs: if proc {
                    "ptrace read access to the process (the same user, or CAP_SYS_PTRACE)"
                } else {
                    "read permission on the file"
                },
                path: Some(path),
                errno,
                fix: if proc { fix::PTRACE } else { fix::FILE },
            }
        }
        // open(2) of a socket, or of a device without a driver.
        Errno::ENXIO | Errno::ENODEV => {
            let found = nix::sys::stat::stat(&path)
                .map(|st| sys::describe_mode(st.st_mode))
                .unwrap_or("a special file");
            Error::NotANamespace { kind, path, found }
        }
        errno => Error::Io {
            op: "opening",
            kind: Some(kind),
            path: Some(path),
            errno,
        },
    }
}

/// Refuses names that `ip netns` could not have made, before any lookup.
pub(crate) fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "the name is empty"
    } else if name == "." || name == ".." {
        "`.` and `..` name directories, not namespaces"
    } else if name.contains('/') {
        "a name cannot contain `/`; to open a namespace by its path, use Namespace::open"
    } else if name.contains('\0') {
        "a name cannot contain a NUL byte"
    } else if name.len() > NAME_MAX {
        "the name is longer than 255 bytes, the longest file name the kernel allows"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_cannot_be_netns_names_are_refused() {
        let long = "x".repeat(256);
        for name in ["", ".", "..", "a/b", "/", "../x", "a\0b", long.as_str()] {
            let err = validate_name(name).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidName { name: n, .. } if n == name),
                "{name:?}"
            );
        }
        for name in [
            "blue",
            "a.b",
            "...",
            "x".repeat(255).as_str(),
            "with space",
            "ünï",
        ] {
            validate_name(name).unwrap();
        }
    }
}
