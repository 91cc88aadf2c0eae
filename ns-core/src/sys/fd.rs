//! File descriptors: opening namespace files and directories, and what
//! `fstat`/`fstatfs` say about them; reading `/proc` files again and again.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno as NixErrno;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag};
use nix::sys::statfs::NSFS_MAGIC;

use crate::errno::Errno;

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
    nix::fcntl::open(path, OPEN_FLAGS, Mode::empty()).map_err(Errno::from_nix)
}

/// `openat(2)` a namespace file relative to a directory fd.
pub(crate) fn open_at(dir: BorrowedFd<'_>, name: &str) -> Result<OwnedFd, Errno> {
    nix::fcntl::openat(dir, name, OPEN_FLAGS, Mode::empty()).map_err(Errno::from_nix)
}

/// `open(2)` a directory to resolve names in it later with [`open_at`].
pub(crate) fn open_dir(path: &Path) -> Result<OwnedFd, Errno> {
    nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(Errno::from_nix)
}

/// What `fstat` says about an fd: `(st_dev, st_ino, file type bits)`.
pub(crate) fn stat(fd: BorrowedFd<'_>) -> Result<(u64, u64, u32), Errno> {
    let st = nix::sys::stat::fstat(fd).map_err(Errno::from_nix)?;
    #[allow(clippy::unnecessary_cast)] // the field types differ between targets
    Ok((st.st_dev as u64, st.st_ino as u64, st.st_mode as u32))
}

/// Whether the fd is on nsfs, the file system of namespace files.
pub(crate) fn is_nsfs(fd: BorrowedFd<'_>) -> Result<bool, Errno> {
    let fs = nix::sys::statfs::fstatfs(fd).map_err(Errno::from_nix)?;
    Ok(fs.filesystem_type() == NSFS_MAGIC)
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

/// The whole content of a (proc) file from offset 0, with `pread`, into
/// `buf` (its capacity is kept from call to call): a `/proc` file kept open
/// is generated anew by each read at offset 0. A read that leaves room in
/// the buffer has read it all (a seq_file hands over all it generated);
/// only a full buffer needs another read.
pub(crate) fn pread_into(fd: BorrowedFd<'_>, buf: &mut Vec<u8>) -> Result<(), Errno> {
    let size = buf.capacity().max(4096);
    buf.clear();
    buf.resize(size, 0);
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let offset = libc::off_t::try_from(len).map_err(|_| Errno::EOVERFLOW)?;
        match nix::sys::uio::pread(fd, &mut buf[len..], offset) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if len < buf.len() {
                    break;
                }
            }
            Err(NixErrno::EINTR) => continue,
            Err(errno) => return Err(Errno::from_nix(errno)),
        }
    }
    buf.truncate(len);
    Ok(())
}

/// Where a directory is: its `(st_dev, st_ino)` and the id of the mount
/// it is seen through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DirId {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    /// `STATX_MNT_ID` (Linux 5.8); `None` where the kernel does not say. A
    /// bind mount of a directory has the directory's device and inode, and
    /// only the mount tells them apart.
    pub(crate) mount: Option<u64>,
}

/// The [`DirId`] of what `name` in `dir` refers to, following links (for
/// `/proc/thread-self/root` and `cwd`: the directories themselves), with
/// `statx(2)` (Linux 4.11).
pub(crate) fn dir_id_at(dir: BorrowedFd<'_>, name: &std::ffi::CStr) -> Result<DirId, Errno> {
    const STATX_MNT_ID: u32 = 0x1000;
    // SAFETY: statx only writes into the struct; all zeros is a valid one.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: statx(2) with a valid directory fd, a NUL-terminated name and
    // a pointer to a struct statx it may write.
    let rc = unsafe {
        libc::statx(
            dir.as_raw_fd(),
            name.as_ptr(),
            0,
            libc::STATX_INO | STATX_MNT_ID,
            &mut stx,
        )
    };
    NixErrno::result(rc).map_err(Errno::from_nix)?;
    Ok(DirId {
        dev: libc::makedev(stx.stx_dev_major, stx.stx_dev_minor),
        ino: stx.stx_ino,
        mount: (stx.stx_mask & STATX_MNT_ID != 0).then_some(stx.stx_mnt_id),
    })
}

/// `socket(2)` with `SOCK_CLOEXEC` added to `ty`.
pub(crate) fn socket(domain: i32, ty: i32, protocol: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: socket(2) takes integers only.
    let raw = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) };
    let raw = NixErrno::result(raw).map_err(Errno::from_nix)?;
    // SAFETY: on success socket(2) returns a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}
