//! The supervisor: answers the seccomp user notifications of the emulated
//! process tree, so that the time-namespace files look absent.
//!
//! A filter cannot read a path (it sees only the registers), so every call
//! of [`path_calls`](crate::filter::path_calls) stops in the kernel and
//! comes here. The supervisor reads the path from the caller's memory
//! (`process_vm_readv`), resolves a relative one against the directory fd
//! or the cwd (their `/proc/<tid>/fd/<n>` or `/proc/<tid>/cwd` links), and
//! answers `ENOENT` when it names `/proc/.../ns/time` or
//! `/proc/.../ns/time_for_children`. Anything else continues in the kernel
//! unchanged (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`). `clone3` with
//! `CLONE_NEWTIME` in its flags gets `EINVAL`.
//!
//! This is an emulation, not a security boundary: a continued call reads
//! its path again, and another thread of the caller could have changed it.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use crate::filter::{CLONE_NEWTIME, SYS_CLONE3};

/// A system call the supervisor inspects: number, index of the directory
/// fd argument (`None`: relative to the cwd), index of the path argument.
pub type PathCall = (u32, Option<usize>, usize);

/// Serves notifications until the listener has no filter left (every
/// process of the tree has exited) or fails.
pub fn serve(listener: &OwnedFd, calls: &[PathCall]) {
    let fd = listener.as_raw_fd();
    loop {
        // SAFETY: seccomp_notif is plain data; all zeros is valid (and the
        // kernel requires a zeroed buffer).
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: NOTIF_RECV writes one seccomp_notif into `req`, which is
        // exactly that size and lives until the call returns.
        let rc = unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) };
        if rc != 0 {
            match std::io::Error::last_os_error().raw_os_error() {
                // Interrupted, or the caller died before we got to it.
                Some(libc::EINTR | libc::ENOENT) => continue,
                _ => return,
            }
        }
        let error = answer(fd, &req, calls);
        let resp = libc::seccomp_notif_resp {
            id: req.id,
            val: 0,
            error: -error,
            flags: if error == 0 {
                libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32
            } else {
                0
            },
        };
        // SAFETY: NOTIF_SEND reads one seccomp_notif_resp from `resp`. It
        // fails with ENOENT if the caller died meanwhile: nothing to do.
        unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) };
    }
}

/// The errno to answer with, or 0 to let the call continue.
fn answer(listener: i32, req: &libc::seccomp_notif, calls: &[PathCall]) -> i32 {
    let tid = req.pid as i32;
    let nr = req.data.nr as u32;
    let args = req.data.args;
    let error = if nr == SYS_CLONE3 {
        // struct clone_args starts with the u64 flags.
        let mut flags = [0u8; 8];
        let read = args[1] >= 8 && read_memory(tid, args[0], &mut flags) == 8;
        if read && u64::from_ne_bytes(flags) & u64::from(CLONE_NEWTIME) != 0 {
            libc::EINVAL
        } else {
            0
        }
    } else if let Some(&(_, dirfd, path)) = calls.iter().find(|c| c.0 == nr) {
        match read_path(tid, args[path]) {
            Some(path) if names_time_file(tid, dirfd.map(|i| args[i] as i32), &path) => {
                libc::ENOENT
            }
            _ => 0,
        }
    } else {
        0
    };
    // What was read belongs to the caller only if it is still waiting (its
    // tid could have been reused).
    if error != 0 && !still_waiting(listener, req.id) {
        return 0;
    }
    error
}

fn still_waiting(listener: i32, id: u64) -> bool {
    // SAFETY: NOTIF_ID_VALID reads one u64 from `id`.
    unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0 }
}

/// Reads `buf.len()` bytes at `addr` in task `tid`; returns how many came.
fn read_memory(tid: i32, addr: u64, buf: &mut [u8]) -> usize {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: process_vm_readv writes at most `local.iov_len` bytes into
    // `buf`, which is that long; the remote address is only read by the
    // kernel, which checks it.
    let n = unsafe { libc::process_vm_readv(tid, &local, 1, &remote, 1, 0) };
    usize::try_from(n).unwrap_or(0)
}

/// The NUL-terminated path at `addr` in task `tid`, read a page at a time
/// (a string may end just before an unmapped page).
fn read_path(tid: i32, addr: u64) -> Option<String> {
    const PAGE: u64 = 4096;
    if addr == 0 {
        return None;
    }
    let mut bytes = Vec::new();
    let mut at = addr;
    while bytes.len() < libc::PATH_MAX as usize {
        let mut chunk = vec![0u8; (PAGE - at % PAGE) as usize];
        let n = read_memory(tid, at, &mut chunk);
        if n == 0 {
            return None;
        }
        if let Some(end) = chunk[..n].iter().position(|b| *b == 0) {
            bytes.extend_from_slice(&chunk[..end]);
            return String::from_utf8(bytes).ok();
        }
        bytes.extend_from_slice(&chunk[..n]);
        at += n as u64;
    }
    None
}

/// Whether `path` (relative to `dirfd`, or to the cwd when `dirfd` is
/// `None` or `AT_FDCWD`) is a time-namespace file under `/proc`.
fn names_time_file(tid: i32, dirfd: Option<i32>, path: &str) -> bool {
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    if last != "time" && last != "time_for_children" {
        return false; // the common case: no need to look further
    }
    let full = if path.starts_with('/') {
        PathBuf::from(path)
    } else {
        let base = match dirfd {
            Some(fd) if fd != libc::AT_FDCWD => format!("/proc/{tid}/fd/{fd}"),
            _ => format!("/proc/{tid}/cwd"),
        };
        match std::fs::read_link(base) {
            Ok(dir) => dir.join(path),
            Err(_) => return false,
        }
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in full.to_str().unwrap_or("").split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    matches!(
        parts.as_slice(),
        ["proc", .., "ns", "time" | "time_for_children"]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_files_are_recognised() {
        let me = std::process::id() as i32;
        for path in [
            "/proc/self/ns/time",
            "/proc/thread-self/ns/time_for_children",
            "/proc/1/task/1/ns/time/",
            "//proc/./self/ns/../ns/time",
        ] {
            assert!(names_time_file(me, None, path), "{path}");
        }
        for path in [
            "/proc/self/ns/net",
            "/tmp/ns/time",
            "/proc/self/ns/timex",
            "time",
            "/proc/self/time",
        ] {
            assert!(!names_time_file(me, None, path), "{path}");
        }
        let dir = std::fs::File::open("/proc/self/ns").unwrap();
        assert!(names_time_file(me, Some(dir.as_raw_fd()), "time"));
    }
}
