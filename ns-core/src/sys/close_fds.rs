//! Closing every inherited fd in a forked child, async-signal-safely:
//! `close_range(2)`, else what `/proc/self/fd` lists, else every number
//! below the fd limit.

use std::os::fd::BorrowedFd;

use nix::errno::Errno as NixErrno;

use crate::errno::Errno;
use crate::sys::dirents::getdents;
use crate::sys::probe;

/// What a child knows, before the fork, about the fds it must close.
pub(crate) struct FdsToClose<'a> {
    /// The fds to keep open, sorted.
    pub(crate) keep: &'a [i32],
    /// Whether the kernel has `close_range(2)` (5.9).
    pub(crate) close_range: bool,
    /// The soft `RLIMIT_NOFILE`: no fd is numbered as high, unless the
    /// limit was lowered after it was opened.
    pub(crate) fd_limit: u32,
}

impl<'a> FdsToClose<'a> {
    /// Every fd but 0-2 and `keep` (sorted), found out in the parent.
    pub(crate) fn all_but(keep: &'a [i32]) -> FdsToClose<'a> {
        FdsToClose {
            keep,
            close_range: probe::kernel().close_range,
            fd_limit: fd_limit(),
        }
    }
}

/// The soft limit on open fds, for the last-resort close loop.
fn fd_limit() -> u32 {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft);
    u32::try_from(soft).unwrap_or(u32::MAX)
}

/// Closes every fd the child inherited except 0-2 and `inherit.keep`, so
/// that it holds none of the parent's files, sockets or pipe ends (which
/// close-on-exec does not help with: the child never execs).
/// Async-signal-safe.
///
/// `close_range(2)` where the kernel has it; else the fds that
/// `/proc/self/fd` lists, read with raw `getdents64` into a buffer on the
/// stack; else (no `/proc`) every fd below the fd limit.
pub(crate) fn close_inherited(inherit: &FdsToClose<'_>) -> Result<(), Errno> {
    if inherit.close_range && close_ranges(inherit.keep).is_ok() {
        return Ok(());
    }
    if close_listed(inherit.keep).is_ok() {
        return Ok(());
    }
    close_below(inherit.keep, inherit.fd_limit).map_err(Errno::from_nix)
}

/// `close_range(2)` over the gaps between the kept fds.
fn close_ranges(keep: &[i32]) -> Result<(), NixErrno> {
    let mut next: u32 = 3;
    for &fd in keep {
        let fd = fd as u32;
        if fd > next {
            // SAFETY: close_range(2) takes integers only.
            NixErrno::result(unsafe { libc::syscall(libc::SYS_close_range, next, fd - 1, 0) })?;
        }
        next = next.max(fd + 1);
    }
    // SAFETY: as above.
    NixErrno::result(unsafe { libc::syscall(libc::SYS_close_range, next, u32::MAX, 0) })?;
    Ok(())
}

/// Closes what `/proc/self/fd` lists, reading it again until a pass finds
/// nothing to close.
fn close_listed(keep: &[i32]) -> Result<(), NixErrno> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    // SAFETY: open(2) with a NUL-terminated path.
    let dir = unsafe { libc::open(c"/proc/self/fd".as_ptr(), flags) };
    if dir < 0 {
        return Err(NixErrno::last());
    }
    let result = (|| loop {
        // SAFETY: lseek(2) takes integers only.
        NixErrno::result(unsafe { libc::lseek(dir, 0, libc::SEEK_SET) })?;
        let mut closed = false;
        let mut buf = [0u64; 512];
        loop {
            // SAFETY: `dir` is open until after this loop.
            let dir_fd = unsafe { BorrowedFd::borrow_raw(dir) };
            let records = getdents(dir_fd, &mut buf).map_err(|e| NixErrno::from_raw(e.raw()))?;
            if records.is_empty() {
                break;
            }
            for record in records {
                let record = record.map_err(|_| NixErrno::EIO)?;
                if let Some(fd) = parse_fd(record.name) {
                    if fd > 2 && fd != dir && keep.binary_search(&fd).is_err() {
                        // SAFETY: close(2) of an fd this child inherited and
                        // nothing in it uses.
                        unsafe { libc::close(fd) };
                        closed = true;
                    }
                }
            }
        }
        if !closed {
            return Ok(());
        }
    })();
    // SAFETY: close(2) of the directory opened above.
    unsafe { libc::close(dir) };
    result
}

/// The fd number a `/proc/self/fd` entry names (`None` for `.` and `..`).
fn parse_fd(name: &[u8]) -> Option<i32> {
    let mut fd: i32 = 0;
    let mut digits = 0;
    for &b in name.iter().take_while(|b| **b != 0) {
        if !b.is_ascii_digit() {
            return None;
        }
        fd = fd.checked_mul(10)?.checked_add(i32::from(b - b'0'))?;
        digits += 1;
    }
    (digits > 0).then_some(fd)
}

/// Closes every fd from 3 below `limit` but `keep`; `EBADF` is expected.
fn close_below(keep: &[i32], limit: u32) -> Result<(), NixErrno> {
    for fd in 3..i32::try_from(limit).unwrap_or(i32::MAX) {
        if keep.binary_search(&fd).is_ok() {
            continue;
        }
        // SAFETY: close(2) of an fd number this child may have inherited.
        if unsafe { libc::close(fd) } != 0 && NixErrno::last() != NixErrno::EBADF {
            return Err(NixErrno::last());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_fd;

    #[test]
    fn fd_names_parse() {
        assert_eq!(parse_fd(b"17\0"), Some(17));
        assert_eq!(parse_fd(b"0\0\0\0"), Some(0));
        assert_eq!(parse_fd(b".\0"), None);
        assert_eq!(parse_fd(b"..\0"), None);
        assert_eq!(parse_fd(b"\0"), None);
        assert_eq!(parse_fd(b"99999999999\0"), None);
    }
}
