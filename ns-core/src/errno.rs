//! [`Errno`]: nsguard's own error number type, so that no other crate's
//! version is part of nsguard's API.

use std::fmt;
use std::io;

/// An error number (`errno`) that a system call returned.
///
/// nsguard's own type rather than `nix::errno::Errno` or `rustix::io::Errno`:
/// a dependency's type in [`Error`](crate::Error)'s fields would make each
/// major release of that dependency a breaking release of nsguard, and tie
/// users to its version. `Errno` is a plain number with names for the
/// values nsguard documents; convert it to the type of your choice with
/// [`raw`](Self::raw) (`nix::errno::Errno::from_raw(e.raw())`) or into a
/// [`std::io::Error`].
///
/// `Debug` prints the name (`EPERM`), `Display` the name and the system's
/// description (`EPERM: Operation not permitted`). The associated constants
/// can be used in patterns.
///
/// # Examples
///
/// ```
/// use nsguard::{Errno, Error, Namespace, NsKind};
///
/// let err = Namespace::open("/no/such/dir/net", NsKind::Net).unwrap_err();
/// assert!(matches!(err, Error::NotFound { errno: Errno::ENOENT, .. }));
/// assert_eq!(Errno::ENOENT.raw(), 2);
/// assert_eq!(format!("{:?}", Errno::EPERM), "EPERM");
/// assert_eq!(Errno::EPERM.to_string(), "EPERM: Operation not permitted");
/// let io = std::io::Error::from(Errno::EACCES);
/// assert_eq!(io.kind(), std::io::ErrorKind::PermissionDenied);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct Errno(i32);

impl Errno {
    /// The `Errno` for the number `raw` (any value is accepted).
    pub const fn from_raw(raw: i32) -> Errno {
        Errno(raw)
    }

    /// The number, as the C library and `std::io::Error::raw_os_error` have
    /// it.
    pub const fn raw(self) -> i32 {
        self.0
    }

    /// The errno of a `nix` call, inside the crate only: nsguard's API never
    /// names nix's type.
    pub(crate) fn from_nix(errno: nix::errno::Errno) -> Errno {
        Errno(errno as i32)
    }

    /// The errno of an [`io::Error`] that has one.
    pub(crate) fn of_io(err: &io::Error) -> Option<Errno> {
        err.raw_os_error().map(Errno)
    }

    /// The errno `errno(3)` holds now, right after a failed libc call.
    pub(crate) fn last() -> Errno {
        Errno::from_nix(nix::errno::Errno::last())
    }

    fn nix(self) -> nix::errno::Errno {
        nix::errno::Errno::from_raw(self.0)
    }

    /// The symbolic name, such as `"EPERM"`, if the number has one.
    fn name(self) -> Option<String> {
        let nix = self.nix();
        (nix != nix::errno::Errno::UnknownErrno).then(|| format!("{nix:?}"))
    }
}

/// Names for the error numbers nsguard documents and returns.
macro_rules! names {
    ($($name:ident: $what:literal,)*) => {
        impl Errno {
            $(
                #[doc = concat!("`", stringify!($name), "`: ", $what, ".")]
                pub const $name: Errno = Errno(libc::$name);
            )*
        }
    };
}

names! {
    EPERM: "operation not permitted (a capability is missing)",
    ENOENT: "no such file or directory",
    ESRCH: "no such process",
    EINTR: "interrupted system call",
    EIO: "input/output error",
    ENXIO: "no such device or address",
    ECHILD: "no child processes",
    EBADF: "bad file descriptor",
    EAGAIN: "resource temporarily unavailable (a limit on threads or processes)",
    ENOMEM: "out of memory",
    EACCES: "permission denied",
    EBUSY: "device or resource busy",
    EEXIST: "file exists",
    ENODEV: "no such device",
    ENOTDIR: "not a directory",
    EINVAL: "invalid argument",
    EMFILE: "too many open files",
    ENOSPC: "no space left (for namespaces: a limit in `/proc/sys/user/max_*_namespaces`)",
    EDOM: "argument out of domain",
    ENOSYS: "function not implemented (the kernel lacks the system call)",
    EOVERFLOW: "value too large",
    EUSERS: "too many users (`setns` into a time namespace from a multithreaded process)",
    EOPNOTSUPP: "operation not supported",
    EAFNOSUPPORT: "address family not supported",
    EADDRINUSE: "address already in use",
    EADDRNOTAVAIL: "address not available",
    ECONNREFUSED: "connection refused",
    ETIMEDOUT: "timed out",
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(&name),
            None => write!(f, "Errno({})", self.0),
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}: {}", self.nix().desc()),
            None => write!(f, "errno {}", self.0),
        }
    }
}

impl std::error::Error for Errno {}

impl From<Errno> for io::Error {
    fn from(errno: Errno) -> io::Error {
        io::Error::from_raw_os_error(errno.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_the_name_and_the_description() {
        assert_eq!(format!("{:?}", Errno::EUSERS), "EUSERS");
        assert_eq!(
            Errno::ENOENT.to_string(),
            "ENOENT: No such file or directory"
        );
        assert_eq!(format!("{:?}", Errno::from_raw(9999)), "Errno(9999)");
        assert_eq!(Errno::from_raw(9999).to_string(), "errno 9999");
        // Numbers without a constant here still print their name.
        assert_eq!(
            format!("{:?}", Errno::from_raw(libc::EHOSTUNREACH)),
            "EHOSTUNREACH"
        );
    }

    #[test]
    fn converts_both_ways() {
        assert_eq!(Errno::from_raw(1), Errno::EPERM);
        assert_eq!(Errno::EINVAL.raw(), libc::EINVAL);
        assert_eq!(Errno::from_nix(nix::errno::Errno::ESRCH), Errno::ESRCH);
        let io = io::Error::from(Errno::ENOENT);
        assert_eq!(io.raw_os_error(), Some(libc::ENOENT));
        assert_eq!(io.kind(), io::ErrorKind::NotFound);
        assert_eq!(Errno::of_io(&io), Some(Errno::ENOENT));
    }
}
