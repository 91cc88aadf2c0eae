//! Namespace system calls: `setns(2)`, `unshare(2)`, and the nsfs ioctls
//! (`NS_GET_NSTYPE`, `NS_GET_USERNS`, `NS_GET_PARENT`) that no safe
//! wrapper offers.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::sched::CloneFlags;

use crate::errno::Errno;
use crate::kind::NsKind;

nix::ioctl_none!(
    /// `ioctl(fd, NS_GET_NSTYPE)` (`_IO(0xb7, 0x3)`, Linux 4.11).
    ns_get_nstype_raw,
    0xb7,
    0x3
);

/// The `CLONE_NEW*` type of the namespace behind an nsfs fd.
///
/// Call only on an fd that [`is_nsfs`](crate::sys::is_nsfs): the request number means nothing
/// to nsfs's neighbours, and a device driver might act on it.
pub(crate) fn ns_get_nstype(fd: BorrowedFd<'_>) -> Result<i32, Errno> {
    // SAFETY: NS_GET_NSTYPE takes no argument, so the kernel reads and
    // writes no user memory; it only inspects the file, which `fd` keeps
    // open for the duration of the call. The caller has checked that the
    // file is on nsfs, which defines this request.
    unsafe { ns_get_nstype_raw(fd.as_raw_fd()) }.map_err(Errno::from_nix)
}

/// `setns(2)` with the kind's `CLONE_NEW*` flag, so that the kernel refuses
/// an fd of any other kind.
pub(crate) fn setns(fd: impl AsFd, kind: NsKind) -> Result<(), Errno> {
    nix::sched::setns(fd, CloneFlags::from_bits_retain(kind.clone_flag())).map_err(Errno::from_nix)
}

/// `unshare(CLONE_FS)`: gives the calling thread its own root, cwd and
/// umask, which it needs before it can change mount namespace.
pub(crate) fn unshare_fs() -> Result<(), Errno> {
    nix::sched::unshare(CloneFlags::CLONE_FS).map_err(Errno::from_nix)
}

nix::ioctl_none!(
    /// `ioctl(fd, NS_GET_USERNS)` (`_IO(0xb7, 0x1)`, Linux 4.9).
    ns_get_userns_raw,
    0xb7,
    0x1
);

/// An fd of the user namespace that owns the namespace behind `fd`.
/// Call only on an nsfs fd (see [`ns_get_nstype`]).
pub(crate) fn ns_get_userns(fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    // SAFETY: NS_GET_USERNS takes no argument: the kernel reads and writes
    // no user memory and returns a new fd, or -1.
    let raw = unsafe { ns_get_userns_raw(fd.as_raw_fd()) }.map_err(Errno::from_nix)?;
    // SAFETY: on success the ioctl returns a new file descriptor that
    // nothing else owns (opened O_CLOEXEC by the kernel).
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Makes every mount of the calling thread's mount namespace private,
/// recursively, so that nothing mounted there propagates elsewhere.
pub(crate) fn make_mounts_private() -> Result<(), Errno> {
    use nix::mount::MsFlags;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(Errno::from_nix)
}

nix::ioctl_none!(
    /// `ioctl(fd, NS_GET_PARENT)` (`_IO(0xb7, 0x2)`, Linux 4.9).
    ns_get_parent_raw,
    0xb7,
    0x2
);

/// An fd of the parent of the (user or pid) namespace behind `fd`; `EPERM`
/// when the parent is outside the caller's reach. Call only on nsfs fds.
pub(crate) fn ns_get_parent(fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    // SAFETY: NS_GET_PARENT takes no argument: the kernel reads and writes
    // no user memory and returns a new fd, or -1.
    let raw = unsafe { ns_get_parent_raw(fd.as_raw_fd()) }.map_err(Errno::from_nix)?;
    // SAFETY: on success the ioctl returns a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}
