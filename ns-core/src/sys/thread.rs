//! Per-thread facts the kernel reports through system calls rather than
//! `/proc`: whether two threads share an fs context, and securebits.

use nix::errno::Errno as NixErrno;

use crate::errno::Errno;

/// Whether threads `a` and `b` (thread ids) share one fs context
/// (root, cwd, umask): `kcmp(2)` with `KCMP_FS` (Linux 3.5,
/// `CONFIG_KCMP`).
pub(crate) fn kcmp_fs(a: i32, b: i32) -> Result<bool, Errno> {
    const KCMP_FS: libc::c_long = 3;
    // SAFETY: kcmp(2) takes integers only.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            libc::c_long::from(a),
            libc::c_long::from(b),
            KCMP_FS,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    };
    NixErrno::result(rc)
        .map(|r| r == 0)
        .map_err(Errno::from_nix)
}

/// The calling thread's securebits (`PR_GET_SECUREBITS`).
pub(crate) fn securebits() -> Result<i32, Errno> {
    // SAFETY: PR_GET_SECUREBITS takes no pointer argument.
    let rc = unsafe { libc::prctl(libc::PR_GET_SECUREBITS, 0, 0, 0, 0) };
    NixErrno::result(rc).map_err(Errno::from_nix)
}
