//! The system calls nsguard makes, as small safe functions over borrowed fds.
//!
//! This is the only module with `unsafe` code: the `NS_GET_NSTYPE` ioctl,
//! which no safe wrapper offers.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::{Mode, SFlag};
use nix::sys::statfs::NSFS_MAGIC;

use crate::kind::NsKind;

/// Flags every namespace fd is opened with.
///
/// `O_RDONLY|O_CLOEXEC` as `setns(2)` needs and so that no child process
/// inherits it; `O_NOCTTY` and `O_NONBLOCK` so that a wrong path naming a
/// terminal or a FIFO can neither become the controlling terminal nor block
/// the open: the file is inspected before it is used, and refused if it is
/// not a namespace.
const OPEN_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_CLOEXEC)
    .union(OFlag::O_NOCTTY)
    .union(OFlag::O_NONBLOCK);

/// `open(2)` a namespace file (or anything else, to be inspected).
pub(crate) fn open(path: &Path) -> Result<OwnedFd, Errno> {
    nix::fcntl::open(path, OPEN_FLAGS, Mode::empty())
}

/// `openat(2)` a namespace file relative to a directory fd.
pub(crate) fn open_at(dir: BorrowedFd<'_>, name: &str) -> Result<OwnedFd, Errno> {
    nix::fcntl::openat(dir, name, OPEN_FLAGS, Mode::empty())
}

/// `open(2)` a directory to resolve names in it later with [`open_at`].
pub(crate) fn open_dir(path: &Path) -> Result<OwnedFd, Errno> {
    nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// What `fstat` says about an fd: `(st_dev, st_ino, file type bits)`.
pub(crate) fn stat(fd: BorrowedFd<'_>) -> Result<(u64, u64, u32), Errno> {
    let st = nix::sys::stat::fstat(fd)?;
    #[allow(clippy::unnecessary_cast)] // the field types differ between targets
    Ok((st.st_dev as u64, st.st_ino as u64, st.st_mode as u32))
}

/// Whether the fd is on nsfs, the file system of namespace files.
pub(crate) fn is_nsfs(fd: BorrowedFd<'_>) -> Result<bool, Errno> {
    Ok(nix::sys::statfs::fstatfs(fd)?.filesystem_type() == NSFS_MAGIC)
}

/// A description of a file type from `st_mode`, for error messages.
pub(crate) fn describe_mode(mode: u32) -> &'static str {
    match SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFREG => "a regular file",
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFLNK => "a symbolic link",
        _ => "a file of unknown type",
    }
}

nix::ioctl_none!(
    /// `ioctl(fd, NS_GET_NSTYPE)` (`_IO(0xb7, 0x3)`, Linux 4.11).
    ns_get_nstype_raw,
    0xb7,
    0x3
);

/// The `CLONE_NEW*` type of the namespace behind an nsfs fd.
///
/// Call only on an fd that [`is_nsfs`]: the request number means nothing
/// to nsfs's neighbours, and a device driver might act on it.
pub(crate) fn ns_get_nstype(fd: BorrowedFd<'_>) -> Result<i32, Errno> {
    // SAFETY: NS_GET_NSTYPE takes no argument, so the kernel reads and
    // writes no user memory; it only inspects the file, which `fd` keeps
    // open for the duration of the call. The caller has checked that the
    // file is on nsfs, which defines this request.
    unsafe { ns_get_nstype_raw(fd.as_raw_fd()) }
}

/// `setns(2)` with the kind's `CLONE_NEW*` flag, so that the kernel refuses
/// an fd of any other kind.
pub(crate) fn setns(fd: impl AsFd, kind: NsKind) -> Result<(), Errno> {
    nix::sched::setns(fd, CloneFlags::from_bits_retain(kind.clone_flag()))
}

/// `fstatat(2)` following links: `(st_dev, st_ino)` of `name` in `dir`.
pub(crate) fn stat_at(dir: BorrowedFd<'_>, name: &str) -> Result<(u64, u64), Errno> {
    let st = nix::sys::stat::fstatat(dir, name, nix::fcntl::AtFlags::empty())?;
    #[allow(clippy::unnecessary_cast)] // the field types differ between targets
    Ok((st.st_dev as u64, st.st_ino as u64))
}

/// `unshare(CLONE_FS)`: gives the calling thread its own root, cwd and
/// umask, which it needs before it can change mount namespace.
pub(crate) fn unshare_fs() -> Result<(), Errno> {
    nix::sched::unshare(CloneFlags::CLONE_FS)
}
